//! Where a flow may be dialled: the operator's `--connect-to`, or one DNS resolution whose
//! every address the engine accepts, pinned for the rest of the flow.

use std::net::{IpAddr, SocketAddr};

use egress_policy::host::Host;

use crate::state::Shared;

/// Why a destination cannot be dialled.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The status for the client: 403 for a policy denial, 502/504 for a resolution fault.
    pub status: u16,
    /// The rule that denied, if the engine did.
    pub rule: Option<String>,
    /// What happened.
    pub reason: String,
}

impl Refusal {
    fn fault(status: u16, reason: String) -> Refusal {
        Refusal {
            status,
            rule: None,
            reason,
        }
    }
}

/// Resolves `host:port` once and returns the address to dial, or why not.
///
/// - A `--connect-to` entry wins and is trusted (it is the operator's), except that it may
///   not point at the proxy itself.
/// - Otherwise every resolved address must pass `Policy::decide_addresses` (no loopback,
///   private, link-local, CGNAT, NAT64, ... ) and none may be the proxy's own listener.
pub async fn pin(shared: &Shared, host: &Host, port: u16) -> Result<SocketAddr, Refusal> {
    let name = host.to_string();
    if let Some(addr) = shared.connect_to.get(&(name.clone(), port)) {
        if is_own_address(shared, &[addr.ip()], addr.port()) {
            return Err(Refusal::fault(
                403,
                format!("--connect-to for {name}:{port} points at the proxy itself"),
            ));
        }
        return Ok(*addr);
    }
    let ips: Vec<IpAddr> = match host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(n) => {
            let lookup = tokio::net::lookup_host((n.as_str(), port));
            match tokio::time::timeout(shared.limits.dns_timeout, lookup).await {
                Err(_) => {
                    return Err(Refusal::fault(
                        504,
                        format!(
                            "DNS resolution of {n} timed out after {}s",
                            shared.limits.dns_timeout.as_secs()
                        ),
                    ))
                }
                Ok(Err(e)) => {
                    return Err(Refusal::fault(
                        502,
                        format!("DNS resolution of {n} failed: {e}"),
                    ))
                }
                Ok(Ok(addrs)) => {
                    let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                    ips.dedup();
                    ips
                }
            }
        }
    };
    if ips.is_empty() {
        return Err(Refusal::fault(502, format!("{name} has no address")));
    }
    let decision = shared.policy.decide_addresses(&name, &ips);
    if !decision.is_allowed() {
        return Err(Refusal {
            status: 403,
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
        });
    }
    if is_own_address(shared, &ips, port) {
        return Err(Refusal::fault(
            403,
            format!("{name}:{port} resolves to the proxy's own address"),
        ));
    }
    // Prefer IPv4 when both families are offered: loopback-only namespaces and many hosts
    // lack IPv6 routes; every address was checked above either way.
    let ip = ips.iter().find(|ip| ip.is_ipv4()).unwrap_or(&ips[0]);
    Ok(SocketAddr::new(*ip, port))
}

/// `true` when any of `ips` with `port` is one of the proxy's listening sockets.
fn is_own_address(shared: &Shared, ips: &[IpAddr], port: u16) -> bool {
    shared.listen_addrs.iter().any(|l| {
        l.port() == port
            && ips
                .iter()
                .any(|ip| *ip == l.ip() || l.ip().is_unspecified())
    })
}
