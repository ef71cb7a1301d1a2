//! Transparent capture (issue 6): TCP connections the agent opened to any address and port,
//! redirected inside the sandbox's network namespace to a capture listener, arrive here with
//! their original destination (`SO_ORIGINAL_DST`).
//!
//! Mechanism only, reusing the CONNECT path: the destination is the name behind a synthetic
//! address ([`crate::dns::names`]) or the IP literal the agent dialled; the engine decides
//! (`decide_connect`); the proxy resolves once and pins ([`crate::resolve::pin`]); then
//! - a `protocol = "tcp"` rule is spliced at once (server-first protocols work) and logged
//!   with bytes (`kind: tcp`);
//! - TLS goes through [`crate::tunnel::run`] exactly like a CONNECT: the SNI must name the
//!   synthetic address's host, then interception or passthrough;
//! - plain HTTP is served like an absolute-form proxy request to the captured host, so the
//!   Host header must agree with it ([`crate::forward`]);
//! - anything else is closed and logged with destination, port and the length of its first
//!   bytes (`kind: tcp`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egress_policy::host::Host;
use egress_policy::{Decision, Protocol, Scheme, Target, Verdict};
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::dns::names::{is_synthetic, SyntheticNames};
use crate::error::ProxyError;
use crate::flowlog::Kind;
use crate::forward;
use crate::guard::{H1Guard, ViolationSlot};
use crate::io::{idle_watchdog, Activity, Tracked};
use crate::resolve;
use crate::state::{decision_record, refusal_record, Shared};
use crate::tunnel::{self, TunnelCtx};

pub mod nflog;
#[cfg(test)]
pub(crate) mod test_support;

/// How long a captured connection may stay silent before the capture gives up on learning
/// what protocol it speaks (it is then closed and logged with `first_bytes_len: 0`).
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(5);
/// How many first bytes the capture looks at.
const PEEK_LEN: usize = 4096;
/// How long the capture waits before peeking again at an incomplete HTTP request line.
const PEEK_RETRY: Duration = Duration::from_millis(10);

/// The sockets the sandbox created inside its network namespace for the capture, already
/// bound (and, for TCP, listening).
#[derive(Debug, Default)]
pub struct CaptureSockets {
    /// Where the namespace's redirect sends every TCP connection (IPv4 and IPv6).
    pub tcp: Vec<std::net::TcpListener>,
    /// The resolver over UDP.
    pub dns_udp: Vec<std::net::UdpSocket>,
    /// The resolver over TCP.
    pub dns_tcp: Vec<std::net::TcpListener>,
    /// The NFLOG netlink socket of the namespace's drop rule (UDP, ICMP and other packets).
    pub nflog: Option<std::os::fd::OwnedFd>,
}

/// Starts serving `sockets` on the proxy's workers until `stop` flips; returns the NFLOG
/// reader, which the caller finishes when the session ends.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    sockets: CaptureSockets,
) -> Result<Option<Arc<nflog::NflogReader>>, ProxyError> {
    let names = Arc::new(SyntheticNames::new());
    // Listeners and resolvers run on the first worker; each accepted connection is then
    // handed to the least busy one.
    let rt = shared.workers.first().clone();
    let _guard = rt.enter();
    for l in sockets.tcp {
        l.set_nonblocking(true).map_err(ProxyError::Runtime)?;
        let l = TcpListener::from_std(l).map_err(ProxyError::Runtime)?;
        rt.spawn(accept_loop(shared.clone(), names.clone(), l, stop.clone()));
    }
    for s in sockets.dns_udp {
        s.set_nonblocking(true).map_err(ProxyError::Runtime)?;
        let s = UdpSocket::from_std(s).map_err(ProxyError::Runtime)?;
        rt.spawn(crate::dns::serve_udp(
            shared.clone(),
            names.clone(),
            s,
            stop.clone(),
        ));
    }
    let mut reader = None;
    if let Some(fd) = sockets.nflog {
        // On the first worker's reactor; `NflogReader::finish` logs what is left in order
        // when the session ends.
        let r = nflog::NflogReader::new(shared.clone(), names.clone(), fd);
        rt.spawn(r.clone().serve());
        reader = Some(r);
    }
    for l in sockets.dns_tcp {
        l.set_nonblocking(true).map_err(ProxyError::Runtime)?;
        let l = TcpListener::from_std(l).map_err(ProxyError::Runtime)?;
        rt.spawn(crate::dns::serve_tcp(
            shared.clone(),
            names.clone(),
            l,
            stop.clone(),
        ));
    }
    Ok(reader)
}

async fn accept_loop(
    shared: Arc<Shared>,
    names: Arc<SyntheticNames>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    let _ = tcp.set_nodelay(true);
                    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                    match shared.conn_slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let (conn_shared, names) = (shared.clone(), names.clone());
                            let lost_shared = shared.clone();
                            shared.workers.dispatch(
                                tcp,
                                permit,
                                move |tcp, slot| serve(conn_shared, names, tcp, slot),
                                move |e| lost_shared.log_lost(Kind::Tcp, &e),
                            );
                        }
                        Err(_) => {
                            let flow = shared.flow_id();
                            let reason = format!(
                                "connection limit reached ({} concurrent connections); captured connection closed",
                                shared.limits.max_connections
                            );
                            let _ = shared.log_decision(refusal_record(Kind::Tcp, flow, None, None, None, &reason));
                        }
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

/// The destination the agent dialled, before the namespace's redirect.
fn original_destination(tcp: &TcpStream) -> std::io::Result<SocketAddr> {
    let sock = socket2::SockRef::from(tcp);
    let local = tcp.local_addr()?;
    let raw = if local.is_ipv4() {
        sock.original_dst_v4()?
    } else {
        sock.original_dst_v6()?
    };
    let addr = raw
        .as_socket()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an IP address"))?;
    // An IPv4 destination dialled from an IPv6 socket shows as ::ffff:a.b.c.d.
    Ok(match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    })
}

/// What the first bytes look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Tls,
    Http,
    /// The start of an HTTP/1.x request line, not yet complete: worth waiting for more bytes.
    HttpPrefix,
    Other,
}

/// `tchar` of RFC 9110: the characters of a method token.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Recognises TLS (a handshake record) and HTTP/1.x by the shape of its request line,
/// `token SP request-target SP HTTP/1.x CRLF`, so that any method (PROPFIND, MKCOL, extension
/// methods) reaches the HTTP path and the policy rather than being reset as unknown bytes.
fn shape(first: &[u8]) -> Shape {
    if first.first() == Some(&0x16) {
        return Shape::Tls;
    }
    let line_end = first.iter().position(|&b| b == b'\n');
    let line = &first[..line_end.unwrap_or(first.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let complete = line_end.is_some();
    let method_len = line.iter().take_while(|&&b| is_tchar(b)).count();
    let rest = &line[method_len..];
    if method_len == 0 {
        return Shape::Other;
    }
    let Some(rest) = rest.strip_prefix(b" ") else {
        return prefix_or_other(rest.is_empty() && !complete);
    };
    let target_len = rest.iter().take_while(|&&b| b.is_ascii_graphic()).count();
    let after = &rest[target_len..];
    if target_len == 0 {
        return prefix_or_other(after.is_empty() && !complete);
    }
    let Some(version) = after.strip_prefix(b" ") else {
        return prefix_or_other(after.is_empty() && !complete);
    };
    const VERSION: &[u8] = b"HTTP/1.";
    let well_formed = version.len() == VERSION.len() + 1
        && version.starts_with(VERSION)
        && version[VERSION.len()].is_ascii_digit();
    if complete {
        return if well_formed {
            Shape::Http
        } else {
            Shape::Other
        };
    }
    let could_grow = version.len() <= VERSION.len() + 1
        && VERSION.iter().zip(version).all(|(want, got)| want == got)
        && version.get(VERSION.len()).is_none_or(u8::is_ascii_digit);
    prefix_or_other(could_grow)
}

fn prefix_or_other(could_grow: bool) -> Shape {
    if could_grow {
        Shape::HttpPrefix
    } else {
        Shape::Other
    }
}

fn shape_name(s: Option<Shape>) -> &'static str {
    match s {
        Some(Shape::Tls) => "tls",
        Some(Shape::Http) => "http",
        Some(Shape::Other | Shape::HttpPrefix) => "other",
        None => "none",
    }
}

/// Logs a captured connection that goes no further (`kind: tcp`).
#[allow(clippy::too_many_arguments)]
fn refuse(
    shared: &Shared,
    flow: u64,
    host: Option<&str>,
    orig: Option<SocketAddr>,
    decision: Option<&Decision>,
    reason: &str,
    first_bytes_len: usize,
    seen: Option<Shape>,
) {
    let port = orig.map(|o| o.port());
    let mut rec = match (decision, host, port) {
        (Some(d), Some(h), Some(p)) => decision_record(Kind::Tcp, flow, h, p, d),
        _ => refusal_record(Kind::Tcp, flow, host, port, None, reason),
    };
    rec.decision = Some(Verdict::Deny);
    rec.reason = Some(reason.to_string());
    rec.detail = Some(json!({
        "first_bytes_len": first_bytes_len,
        "original_dst": orig.map(|o| o.to_string()),
        "first_bytes": shape_name(seen),
    }));
    let _ = shared.log_decision(rec);
}

/// The client's first bytes, left queued for whoever serves the connection: up to
/// [`PEEK_LEN`], waiting (within [`FIRST_BYTES_TIMEOUT`]) while they are an incomplete HTTP
/// request line, so that a request line split across packets is still recognised.
async fn peek_first(tcp: &TcpStream) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + FIRST_BYTES_TIMEOUT;
    let mut buf = vec![0u8; PEEK_LEN];
    let mut seen = 0;
    loop {
        match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
            Ok(Ok(n)) => seen = n,
            _ => break,
        }
        if seen == 0 || seen == PEEK_LEN || shape(&buf[..seen]) != Shape::HttpPrefix {
            break;
        }
        // `peek` returns at once while bytes are queued: wait a little before looking again.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(PEEK_RETRY))
            .await
            .is_err()
        {
            break;
        }
    }
    buf.truncate(seen);
    buf
}

/// Makes the close of a refused connection a reset, so that the agent sees "connection reset"
/// rather than an empty answer.
fn reset(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
}

/// One captured connection.
async fn serve(
    shared: Arc<Shared>,
    names: Arc<SyntheticNames>,
    tcp: TcpStream,
    permit: Arc<crate::workers::ConnSlot>,
) {
    let flow = shared.flow_id();
    let orig = match original_destination(&tcp) {
        Ok(o) => o,
        Err(e) => {
            let reason = format!(
                "captured connection without an original destination ({e}); only redirected connections are served"
            );
            reset(&tcp);
            return refuse(&shared, flow, None, None, None, &reason, 0, None);
        }
    };
    let host = match names.name_of(orig.ip()) {
        Some(name) => Host::Name(name),
        None if is_synthetic(orig.ip()) => {
            let reason = format!(
                "{} is in the sandbox resolver's synthetic range but was never handed out; connection closed",
                orig.ip()
            );
            reset(&tcp);
            return refuse(&shared, flow, None, Some(orig), None, &reason, 0, None);
        }
        None => Host::Ip(orig.ip()),
    };
    let host_label = host.to_string();
    let port = orig.port();
    let decision = shared.policy.decide_connect(Target {
        scheme: Scheme::Https,
        host: &host_label,
        port,
    });
    let raw_tcp = decision.is_allowed()
        && decision
            .rule
            .as_deref()
            .and_then(|r| shared.policy.rule(r))
            .is_some_and(|r| r.protocol == Protocol::Tcp);
    let first: Vec<u8> = if raw_tcp {
        Vec::new()
    } else {
        peek_first(&tcp).await
    };
    let seen = (!first.is_empty()).then(|| shape(&first));
    match (raw_tcp, seen) {
        (true, _) | (false, Some(Shape::Tls)) => {
            if !decision.is_allowed() {
                reset(&tcp);
                return refuse(
                    &shared,
                    flow,
                    Some(&host_label),
                    Some(orig),
                    Some(&decision),
                    &decision.reason,
                    first.len(),
                    seen,
                );
            }
            let addr = match resolve::pin(&shared, &host, port).await {
                Ok(a) => a,
                Err(refusal) => {
                    let mut d = decision.clone();
                    d.rule = refusal.rule.or(d.rule);
                    reset(&tcp);
                    return refuse(
                        &shared,
                        flow,
                        Some(&host_label),
                        Some(orig),
                        Some(&d),
                        &refusal.reason,
                        first.len(),
                        seen,
                    );
                }
            };
            let ctx = TunnelCtx {
                flow,
                host,
                host_label,
                port,
                addr,
                decision,
                raw_tcp,
                client_status: None,
            };
            tunnel::run(shared, ctx, tcp, permit).await
        }
        (false, Some(Shape::Http)) => serve_plain(shared, host, port, tcp).await,
        (false, _) => {
            let reason = match (&decision.rule, decision.is_allowed()) {
                (Some(rule), true) => format!(
                    "{host_label}:{port} sent neither TLS nor HTTP, and rule `{rule}` is not `protocol = \"tcp\"`; connection closed"
                ),
                _ if first.is_empty() => format!(
                    "{host_label}:{port}: no rule allows a raw TCP connection there ({}); connection closed",
                    decision.reason
                ),
                _ => format!(
                    "{host_label}:{port}: not TLS or HTTP, and no `protocol = \"tcp\"` rule allows it ({}); connection closed",
                    decision.reason
                ),
            };
            reset(&tcp);
            refuse(
                &shared,
                flow,
                Some(&host_label),
                Some(orig),
                Some(&decision),
                &reason,
                first.len(),
                seen,
            )
        }
    }
}

/// Plain HTTP to a captured destination: each request is handled like an absolute-form
/// `http://` proxy request to that host and port (so a `Host` naming another host is 421).
async fn serve_plain(shared: Arc<Shared>, host: Host, port: u16, tcp: TcpStream) {
    let authority = match host {
        Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        other => format!("{other}:{port}"),
    };
    let activity = Activity::new();
    let slot = ViolationSlot::default();
    let io = H1Guard::new(
        Tracked::new(Bytes::new(), tcp, activity.clone()),
        shared.limits.max_header_bytes,
        false,
        slot.clone(),
    );
    let svc_shared = shared.clone();
    let svc_activity = activity.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let (mut parts, body) = req.into_parts();
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        // An absolute-form target naming another host is rewritten too: the captured
        // destination is where the request goes, and the Host check below compares.
        match format!("http://{authority}{pq}").parse::<Uri>() {
            Ok(uri) => parts.uri = uri,
            Err(_) => parts.uri = Uri::from_static("http://invalid.invalid/"),
        }
        let request = Request::from_parts(parts, body);
        let handler = svc_activity.while_busy(forward::plain(svc_shared.clone(), request));
        async move { Ok::<_, Infallible>(handler.await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout)
        .max_buf_size((shared.limits.max_header_bytes + 16 * 1024).max(8192))
        .serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        _ = conn => {}
        _ = idle_watchdog(activity, shared.limits.idle_timeout) => {}
    }
    forward::log_violation(&shared, &slot, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_shapes() {
        assert_eq!(shape(&[0x16, 3, 1]), Shape::Tls);
        assert_eq!(shape(b"GET / HTTP/1.1\r\n"), Shape::Http);
        assert_eq!(shape(b"POST /v1 HTTP/1.1\r\nHost: x\r\n\r\n"), Shape::Http);
        assert_eq!(shape(b"GET / HTTP/1.0\n"), Shape::Http);
        assert_eq!(shape(b"SSH-2.0-OpenSSH_9.2\r\n"), Shape::Other);
        assert_eq!(shape(b"EHLO x\r\n"), Shape::Other);
        assert_eq!(shape(b"EHLO x y\r\n"), Shape::Other);
        assert_eq!(shape(b"GET / HTTP/2.0\r\n"), Shape::Other);
        assert_eq!(shape(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Shape::Other);
        assert_eq!(shape(b"GET  / HTTP/1.1\r\n"), Shape::Other);
        assert_eq!(shape(b"GET / HTTP/1.1 x\r\n"), Shape::Other);
        assert_eq!(shape(b"GET /\x00 HTTP/1.1\r\n"), Shape::Other);
        assert_eq!(shape(b"\r\nGET / HTTP/1.1\r\n"), Shape::Other);
        assert_eq!(shape(b""), Shape::Other);
    }

    /// Any method token is HTTP: the policy decides about the method, not the capture.
    #[test]
    fn http_is_recognised_by_the_request_line_whatever_the_method() {
        for line in [
            &b"PROPFIND /dav/ HTTP/1.1\r\n"[..],
            b"MKCOL /dav/new HTTP/1.1\r\n",
            b"REPORT /cal HTTP/1.1\r\n",
            b"X-SYNC_2 * HTTP/1.1\r\n",
            b"GETX / HTTP/1.1\r\n",
            b"OPTIONS * HTTP/1.1\r\n",
            b"GET http://a.example/x?y=1 HTTP/1.1\r\n",
        ] {
            assert_eq!(shape(line), Shape::Http, "{}", line.escape_ascii());
        }
    }

    /// A request line cut short is worth waiting for; bytes that cannot become one are not.
    #[test]
    fn incomplete_request_lines() {
        for part in [
            &b"PROPF"[..],
            b"PROPFIND",
            b"PROPFIND ",
            b"PROPFIND /dav",
            b"PROPFIND /dav ",
            b"PROPFIND /dav HTTP/1",
            b"PROPFIND /dav HTTP/1.1",
            b"PROPFIND /dav HTTP/1.1\r",
        ] {
            assert_eq!(shape(part), Shape::HttpPrefix, "{}", part.escape_ascii());
        }
        for other in [
            &b"PROPFIND  "[..],
            b"PROPFIND /dav HTTP/2",
            b"PROPFIND /dav HTTP/1.1x",
            b"{\"json\": 1}",
            b"\x00\x01",
        ] {
            assert_eq!(shape(other), Shape::Other, "{}", other.escape_ascii());
        }
    }
}
