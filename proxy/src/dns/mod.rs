//! The sandbox's DNS resolver (transparent capture, issue 6), served by the supervisor on UDP
//! and TCP sockets created inside the sandbox's network namespace.
//!
//! It never forwards a query. A name some rule could allow ([`egress_policy::dns::decide_name`])
//! gets a synthetic address per name ([`names`]) that routes back into the capture; every
//! other name gets NXDOMAIN. Every query is a `dns` flow record with `qname` and `qtype` in
//! `detail`, so tunnelling attempts (data in labels, TXT lookups) show up in the log.

pub mod names;
pub mod wire;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_policy::host::{normalize_host, Host};
use egress_policy::Verdict;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::flowlog::{Event, FlowRecord, Kind};
use crate::state::Shared;
use names::SyntheticNames;
use wire::{Query, Rcode, WireError, QCLASS_IN, QTYPE_A, QTYPE_AAAA};

/// TTL of synthetic answers: short, so that a long-running agent re-asks (and is re-logged).
pub const ANSWER_TTL: u32 = 60;
/// Queries one DNS-over-TCP connection may carry.
const MAX_TCP_QUERIES: usize = 64;
/// Time a DNS-over-TCP client has for each query.
const TCP_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers one DNS message, logging the query; `None` when nothing should be sent back (a
/// message that is a response itself).
pub(crate) fn respond(
    shared: &Shared,
    names: &SyntheticNames,
    msg: &[u8],
    transport: &str,
) -> Option<Vec<u8>> {
    let started = Instant::now();
    let query = match wire::parse_query(msg) {
        Ok(q) => q,
        Err(e) => {
            log_malformed(shared, msg.len(), transport, &e);
            return match e {
                WireError::NotQuery => None,
                _ => WireError::id(msg).map(|id| wire::error_answer(id, Rcode::FormErr)),
            };
        }
    };
    let (rcode, addrs, decision) = decide(shared, names, &query);
    let reply = wire::answer(msg, &query, rcode, &addrs, ANSWER_TTL);
    log_query(
        shared,
        &query,
        rcode,
        &addrs,
        decision,
        transport,
        msg.len(),
        reply.len(),
        started,
    );
    Some(reply)
}

/// What to answer, and the engine's decision behind it.
fn decide(
    shared: &Shared,
    names: &SyntheticNames,
    q: &Query,
) -> (Rcode, Vec<IpAddr>, egress_policy::Decision) {
    let refused = |reason: String| egress_policy::Decision {
        verdict: Verdict::Deny,
        rule: None,
        reason,
        region: None,
        jurisdiction: None,
        provider: None,
        region_attested: false,
        intercept: true,
        body_check: None,
    };
    if q.opcode != 0 {
        return (
            Rcode::NotImp,
            Vec::new(),
            refused(format!("DNS opcode {} is not supported", q.opcode)),
        );
    }
    if q.qclass != QCLASS_IN {
        return (
            Rcode::Refused,
            Vec::new(),
            refused(format!("DNS class {} is not answered (only IN)", q.qclass)),
        );
    }
    if !shared.rate.take() {
        return (
            Rcode::Refused,
            Vec::new(),
            refused(format!(
                "more than {} requests per second; DNS query refused",
                shared.limits.requests_per_second
            )),
        );
    }
    let decision = egress_policy::dns::decide_name(&shared.policy, &q.qname);
    if !decision.is_allowed() {
        return (Rcode::NxDomain, Vec::new(), decision);
    }
    let name = match normalize_host(&q.qname) {
        Ok(Host::Name(n)) => n,
        _ => return (Rcode::NxDomain, Vec::new(), refused("invalid name".into())),
    };
    match names.assign(&name) {
        Ok((v4, v6)) => {
            let addrs = match q.qtype {
                QTYPE_A => vec![IpAddr::V4(v4)],
                QTYPE_AAAA => vec![IpAddr::V6(v6)],
                // The name exists; other record types are empty (NODATA): MX, TXT, HTTPS ...
                // records would name other hosts or carry data.
                _ => Vec::new(),
            };
            (Rcode::NoError, addrs, decision)
        }
        Err(full) => {
            let mut d = decision;
            d.verdict = Verdict::Deny;
            d.reason = full.to_string();
            (Rcode::Refused, Vec::new(), d)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn log_query(
    shared: &Shared,
    q: &Query,
    rcode: Rcode,
    addrs: &[IpAddr],
    d: egress_policy::Decision,
    transport: &str,
    query_len: usize,
    reply_len: usize,
    started: Instant,
) {
    let flow = shared.flow_id();
    let mut rec = FlowRecord::new(Event::Decision, Kind::Dns);
    rec.flow = Some(flow);
    rec.decision = Some(d.verdict);
    rec.rule = d.rule;
    rec.region = d.region.map(|r| r.field().to_string());
    rec.reason = Some(d.reason);
    rec.jurisdiction = d.jurisdiction;
    rec.host = match normalize_host(&q.qname) {
        Ok(h) => Some(h.to_string()),
        Err(_) => None,
    };
    rec.detail = Some(json!({
        "qname": q.qname,
        "qtype": wire::qtype_name(q.qtype),
        "rcode": format!("{rcode:?}").to_uppercase(),
        "answer": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "transport": transport,
    }));
    let allowed = rec.decision == Some(Verdict::Allow);
    let Ok(rec) = shared.log_decision(rec) else {
        return;
    };
    if allowed {
        let mut end = FlowRecord::new(Event::End, Kind::Dns);
        end.flow = rec.flow;
        end.rule = rec.rule.clone();
        end.host = rec.host.clone();
        end.region = rec.region.clone();
        end.jurisdiction = rec.jurisdiction.clone();
        end.bytes_out = Some(query_len as u64);
        end.bytes_in = Some(reply_len as u64);
        end.duration_ms = Some(started.elapsed().as_micros() as f64 / 1000.0);
        shared.log_end(end);
    }
}

fn log_malformed(shared: &Shared, len: usize, transport: &str, e: &WireError) {
    let flow = shared.flow_id();
    let mut rec = FlowRecord::new(Event::Decision, Kind::Dns);
    rec.flow = Some(flow);
    rec.decision = Some(Verdict::Deny);
    rec.reason = Some(e.to_string());
    rec.detail =
        Some(json!({"qname": null, "qtype": null, "message_len": len, "transport": transport}));
    let _ = shared.log_decision(rec);
}

/// Logs a DNS-over-TCP connection closed unread because the proxy is at its connection
/// limit: a `dns` deny record without a query (`message_len` is `null`: nothing was read).
fn log_tcp_refused(shared: &Shared) {
    let flow = shared.flow_id();
    let mut rec = FlowRecord::new(Event::Decision, Kind::Dns);
    rec.flow = Some(flow);
    rec.decision = Some(Verdict::Deny);
    rec.reason = Some(format!(
        "connection limit reached ({} concurrent connections); DNS-over-TCP connection closed unread",
        shared.limits.max_connections
    ));
    rec.detail =
        Some(json!({"qname": null, "qtype": null, "message_len": null, "transport": "tcp"}));
    let _ = shared.log_decision(rec);
}

/// Serves DNS over UDP until `shutdown` flips.
pub(crate) async fn serve_udp(
    shared: Arc<Shared>,
    names: Arc<SyntheticNames>,
    socket: UdpSocket,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            got = socket.recv_from(&mut buf) => match got {
                Ok((n, peer)) => {
                    if let Some(reply) = respond(&shared, &names, &buf[..n], "udp") {
                        // Classic DNS over UDP: answers above 512 bytes would need EDNS; ours
                        // hold one question and at most one record.
                        let _ = socket.send_to(&reply, peer).await;
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

/// Serves DNS over TCP (length-prefixed messages) until `shutdown` flips.
pub(crate) async fn serve_tcp(
    shared: Arc<Shared>,
    names: Arc<SyntheticNames>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            got = listener.accept() => match got {
                Ok((tcp, _)) => {
                    // DNS-over-TCP clients count against the proxy's connection cap, and are
                    // counted and logged like every other client connection.
                    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                    match shared.conn_slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let (shared, names) = (shared.clone(), names.clone());
                            tokio::spawn(async move {
                                serve_tcp_client(shared, names, tcp).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            log_tcp_refused(&shared);
                            drop(tcp);
                        }
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

async fn serve_tcp_client(shared: Arc<Shared>, names: Arc<SyntheticNames>, mut tcp: TcpStream) {
    for _ in 0..MAX_TCP_QUERIES {
        let read = async {
            let len = tcp.read_u16().await? as usize;
            let mut msg = vec![0u8; len];
            tcp.read_exact(&mut msg).await?;
            Ok::<_, std::io::Error>(msg)
        };
        let Ok(Ok(msg)) = tokio::time::timeout(TCP_QUERY_TIMEOUT, read).await else {
            return;
        };
        let Some(reply) = respond(&shared, &names, &msg, "tcp") else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        if tcp.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdTcpStream;

    use crate::capture::test_support::{records, start_proxy};
    use crate::capture::CaptureSockets;

    /// A DNS-over-TCP message: the length prefix and a query for `api.anthropic.com` (A).
    fn framed_query() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in [&b"api"[..], b"anthropic", b"com"] {
            m.push(l.len() as u8);
            m.extend_from_slice(l);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend(m);
        framed
    }

    #[test]
    fn tcp_client_beyond_the_connection_limit_is_counted_and_logged() {
        let (handle, log) = start_proxy("dns-tcp-limit", |l| l.max_connections = 1);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        handle
            .serve_capture(CaptureSockets {
                dns_tcp: vec![listener],
                ..Default::default()
            })
            .unwrap();
        let timeout = Some(std::time::Duration::from_secs(5));
        // The first client takes the only slot: it is answered, then keeps the connection.
        let mut first = StdTcpStream::connect(addr).unwrap();
        first.set_read_timeout(timeout).unwrap();
        first.write_all(&framed_query()).unwrap();
        let mut len = [0u8; 2];
        first.read_exact(&mut len).unwrap();
        // The second is closed unread.
        let mut second = StdTcpStream::connect(addr).unwrap();
        second.set_read_timeout(timeout).unwrap();
        let _ = second.write_all(&framed_query());
        let mut buf = [0u8; 64];
        assert!(
            matches!(second.read(&mut buf), Ok(0) | Err(_)),
            "a client beyond the limit gets no answer"
        );
        drop((first, second));
        let report = handle.shutdown();
        assert_eq!(report.stats.connections, 2, "both clients are counted");
        let recs = records(&log);
        let refused: Vec<_> = recs
            .iter()
            .filter(|r| r["kind"] == "dns" && r["detail"].get("message_len").is_some())
            .collect();
        assert_eq!(refused.len(), 1, "one refusal record: {recs:?}");
        let r = refused[0];
        assert_eq!(r["event"], "decision");
        assert_eq!(r["decision"], "deny");
        assert_eq!(r["detail"]["transport"], "tcp");
        assert!(r["detail"]["message_len"].is_null() && r["detail"]["qname"].is_null());
        assert!(r["reason"]
            .as_str()
            .unwrap()
            .contains("connection limit reached (1 concurrent connections)"));
        // The answered query is logged as usual.
        assert!(recs
            .iter()
            .any(|r| r["kind"] == "dns" && r["detail"]["qname"] == "api.anthropic.com"));
    }
}
