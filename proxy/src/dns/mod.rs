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
    rec.reason = Some(d.reason);
    rec.region = d.region;
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
                    // DNS-over-TCP clients count against the proxy's connection cap.
                    if let Ok(permit) = shared.conn_slots.clone().try_acquire_owned() {
                        let (shared, names) = (shared.clone(), names.clone());
                        tokio::spawn(async move {
                            serve_tcp_client(shared, names, tcp).await;
                            drop(permit);
                        });
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
