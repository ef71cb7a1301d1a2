//! Errors of starting and running the proxy.

use crate::ca::CaError;
use crate::flowlog::FlowLogError;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The flow log could not be opened.
    #[error(transparent)]
    FlowLog(#[from] FlowLogError),
    /// The session CA could not be created.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// The async runtime or a listener could not be set up.
    #[error("cannot start the proxy runtime: {0}")]
    Runtime(std::io::Error),
    /// No listener was given.
    #[error(
        "the proxy was started without a listening socket; bind one (e.g. 127.0.0.1:0) and pass it"
    )]
    NoListener,
}
