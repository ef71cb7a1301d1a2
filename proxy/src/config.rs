//! What the proxy is told at start: the policy, the log, operator overrides and limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use egress_policy::Policy;
use rustls_pki_types::CertificateDer;

/// Everything [`crate::start`] needs.
#[derive(Clone)]
pub struct ProxyConfig {
    /// The compiled contract: every allow/deny comes from it.
    pub policy: Arc<Policy>,
    /// The flow log file (appended to, chain continued). `None` keeps the chain in memory and
    /// only feeds the sinks.
    pub log_path: Option<PathBuf>,
    /// curl-style `--connect-to` overrides: the only way to reach loopback or private
    /// addresses.
    pub connect_to: Vec<ConnectTo>,
    /// Extra trust roots for upstream TLS, on top of the system roots.
    pub upstream_roots: Vec<CertificateDer<'static>>,
    /// Resource bounds and timeouts.
    pub limits: Limits,
    /// Credentials for rules with `inject`, by [`egress_policy::Inject::credential_key`]. They
    /// go only into upstream requests of the rule they belong to, never into the log.
    pub credentials: HashMap<String, crate::credentials::Credential>,
    /// The session id (`s-` and 16 hex digits); a fresh one when `None`.
    pub session_id: Option<String>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credential values are never printed.
        let credential_names: Vec<&String> = self.credentials.keys().collect();
        f.debug_struct("ProxyConfig")
            .field("log_path", &self.log_path)
            .field("connect_to", &self.connect_to)
            .field("upstream_roots", &self.upstream_roots.len())
            .field("limits", &self.limits)
            .field("credentials", &credential_names)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl ProxyConfig {
    /// A configuration with default limits, no log file, no overrides and no credentials.
    pub fn new(policy: Arc<Policy>) -> ProxyConfig {
        ProxyConfig {
            policy,
            log_path: None,
            connect_to: Vec::new(),
            upstream_roots: Vec::new(),
            limits: Limits::default(),
            credentials: HashMap::new(),
            session_id: None,
        }
    }
}

/// Resource bounds. The defaults suit one agent session.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Client connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head (slowloris).
    pub header_read_timeout: Duration,
    /// Time a client has to complete the TLS handshake inside a tunnel.
    pub tls_handshake_timeout: Duration,
    /// A connection or tunnel with no byte in either direction for this long is closed. A
    /// request waiting on its upstream response head keeps its connection busy (that wait is
    /// bounded by `upstream_response_timeout` instead).
    pub idle_timeout: Duration,
    /// Time allowed for one DNS resolution.
    pub dns_timeout: Duration,
    /// Time allowed to open the upstream TCP connection and finish its TLS handshake.
    pub upstream_connect_timeout: Duration,
    /// Time allowed for the upstream to answer with a response head.
    pub upstream_response_timeout: Duration,
    /// Lifetime of the session CA (capped at 24 hours).
    pub session_validity: Duration,
    /// HTTP requests per second across the session (a lock-free token bucket with one second
    /// of burst); beyond it a request is answered 429. 0 disables the limit. The default,
    /// 50 000, is above what the proxy forwards on a small machine and above half of what a
    /// client reaches directly there (the benchmark's target), so it never shapes real work,
    /// yet it cuts off a runaway request loop on a large one (see `docs/proxy.md`).
    pub requests_per_second: u32,
    /// Worker threads (each one single-threaded runtime that keeps its connections and their
    /// upstream pools to itself); 0 means one per core, at least 2 and at most 16.
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            dns_timeout: Duration::from_secs(5),
            upstream_connect_timeout: Duration::from_secs(10),
            upstream_response_timeout: Duration::from_secs(600),
            session_validity: Duration::from_secs(24 * 3600),
            requests_per_second: 50_000,
            workers: 0,
        }
    }
}

/// One `--connect-to HOST:PORT:ADDR:PORT`: connections for HOST:PORT are dialled at
/// ADDR:PORT, while SNI, Host and policy stay those of HOST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    /// The normalised host this override applies to.
    pub host: String,
    /// The port this override applies to.
    pub port: u16,
    /// Where to dial instead.
    pub addr: SocketAddr,
}

/// A `--connect-to` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --connect-to `{value}`: {problem}; expected HOST:PORT:ADDR:PORT, e.g. api.eu.mistral.ai:443:127.0.0.1:8443 (IPv6 as [::1])")]
pub struct ConnectToError {
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl std::str::FromStr for ConnectTo {
    type Err = ConnectToError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let err = |problem: &str| ConnectToError {
            value: value.to_string(),
            problem: problem.to_string(),
        };
        let (host, rest) = split_host(value).ok_or_else(|| err("missing HOST"))?;
        let (port, rest) = rest.split_once(':').ok_or_else(|| err("missing PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| err("PORT is not a number 1-65535"))?;
        let (addr, addr_port) = split_host(rest).ok_or_else(|| err("missing ADDR"))?;
        let addr_port: u16 = addr_port
            .parse()
            .map_err(|_| err("the second PORT is not a number 1-65535"))?;
        if port == 0 || addr_port == 0 {
            return Err(err("port 0 is not a destination"));
        }
        let ip: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| err("ADDR must be an IP address"))?;
        let host = egress_policy::host::normalize_host(host)
            .map_err(|e| err(&e.to_string()))?
            .to_string();
        Ok(ConnectTo {
            host,
            port,
            addr: SocketAddr::new(ip, addr_port),
        })
    }
}

/// Splits `HOST:rest` where HOST may be a bracketed IPv6 literal.
fn split_host(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let rest = s[end + 1..].strip_prefix(':')?;
        Some((&s[..=end], rest))
    } else {
        let (h, rest) = s.split_once(':')?;
        (!h.is_empty()).then_some((h, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_curl_style_overrides() {
        let c: ConnectTo = "API.EU.Mistral.AI.:443:127.0.0.1:8443".parse().unwrap();
        assert_eq!(c.host, "api.eu.mistral.ai");
        assert_eq!(c.port, 443);
        assert_eq!(c.addr, "127.0.0.1:8443".parse().unwrap());
        let c: ConnectTo = "api.openai.com:443:[::1]:9000".parse().unwrap();
        assert_eq!(c.addr, "[::1]:9000".parse().unwrap());
    }

    #[test]
    fn rejects_malformed_overrides() {
        for bad in [
            "",
            "host",
            "host:443",
            "host:443:127.0.0.1",
            "host:x:127.0.0.1:1",
            "host:443:not-an-ip:1",
            "host:0:127.0.0.1:1",
            ":443:127.0.0.1:1",
            "host:443:[::1:1",
        ] {
            assert!(bad.parse::<ConnectTo>().is_err(), "{bad} was accepted");
        }
    }
}
