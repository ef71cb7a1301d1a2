//! egress-policy: the prompt contract and every security decision of `sandbox`.
//!
//! Pure: no I/O, no async, no clock. Callers hand in text and facts; this crate answers.
//!
//! - [`Policy::parse`] turns a contract (TOML) into a validated [`Policy`], or a
//!   [`ContractError`] listing every problem with `file:line:col`.
//! - [`Policy::decide_connect`], [`Policy::decide_request`] and [`Policy::decide_addresses`]
//!   decide network flows; [`Policy::decide_file`] and [`Policy::file_plan`] decide files.
//! - [`addr`] classifies IP addresses, [`secrets`] finds credentials in outbound data,
//!   [`catalog`] places LLM endpoints in regions and jurisdictions.

pub mod addr;
pub mod agents;
pub mod catalog;
pub mod contract;
pub mod decision;
pub mod diagram;
pub mod dns;
pub mod error;
pub mod files;
pub mod forge;
pub mod git;
pub mod host;
pub mod memo;
pub mod planted;
pub mod policy;
pub mod region;
pub mod request_path;
pub mod secrets;
pub mod url;

pub use contract::{
    Class, Contract, Env, Files, Inject, Log, LogSync, Network, PathContext, PathPattern, Protocol,
    Residency, Rule, SecretAction, Secrets, Task,
};
pub use decision::{Decision, RequestFacts, Scheme, Target, Verdict};
pub use error::{ContractError, Diagnostic, Location, Warning};
pub use files::{FileAccess, FileDecision, FilePlan, FileRule, PathGrant};
pub use host::{Host, HostPattern};
pub use memo::BoundedMemo;
pub use policy::Policy;
pub use region::Region;
