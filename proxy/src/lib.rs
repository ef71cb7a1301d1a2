//! proxy: the TLS-terminating egress proxy of `sandbox`.
