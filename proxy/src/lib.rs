//! proxy: the TLS-terminating egress proxy of `sandbox`.
//!
//! Mechanism only: every allow/deny comes from [`egress_policy`]. This crate terminates TLS
//! with a per-session CA, asks the engine about each CONNECT, each resolved address and each
//! request, forwards allowed traffic frame by frame, and writes every flow to the hash-chained
//! [`flowlog`] before any byte goes upstream.
//!
//! Entry point: [`start`] with a [`ProxyConfig`] and already-bound listeners (see [`bind`]).

pub mod body;
mod body_check;
pub mod ca;
pub mod capture;
pub mod config;
pub mod credentials;
pub mod dns;
mod encode;
pub mod error;
pub mod flowlog;
mod forward;
pub mod google_oauth;
pub mod guard;
mod handle;
pub mod headers;
mod inject;
pub mod io;
pub mod otlp;
pub mod read_ahead;
mod resolve;
pub mod respond;
pub mod scrub;
mod server;
pub mod sigv4;
mod state;
pub mod tls;
mod tunnel;
pub mod upstream;
mod websocket;
mod workers;
pub mod ws_frame;

pub use config::{ConnectTo, ConnectToError, Limits, ProxyConfig};
pub use error::ProxyError;
pub use flowlog::{FlowLog, FlowRecord, FlowSink};
pub use handle::{bind, new_session_id, start, ProxyHandle, Report, LISTEN_BACKLOG};
pub use state::Stats;
