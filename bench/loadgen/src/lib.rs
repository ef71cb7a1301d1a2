//! loadgen: the pieces shared by the `loadgen` client and the `bench-upstream` server.
//!
//! Everything here speaks HTTP/1.1 by hand over rustls, so that what is timed is the
//! network path under test (direct, or through a CONNECT proxy), not a client library.

pub mod dial;
pub mod http1;
pub mod stats;
pub mod tls;
