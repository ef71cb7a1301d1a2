//! proxy: the TLS-terminating egress proxy of `sandbox`.
//!
//! Mechanism only: every allow/deny comes from [`egress_policy`]. This crate terminates TLS
//! with a per-session CA, asks the engine about each CONNECT, each resolved address and each
//! request, forwards allowed traffic frame by frame, and writes every flow to the hash-chained
//! [`flowlog`] before any byte goes upstream.

pub mod flowlog;
