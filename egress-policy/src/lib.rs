//! egress-policy: the prompt contract and every security decision of `sandbox`.
//!
//! Pure: no I/O, no async, no clock. Callers hand in text and facts; this crate answers.

pub mod decision;
pub mod diagram;

pub use decision::{Decision, RequestFacts, Scheme, Target, Verdict};
