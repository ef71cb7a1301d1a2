//! WebSocket through the proxy (RFC 6455 over HTTP/1.1). The upgrade request is decided like
//! any request (host, method, path, residency, secrets in headers) and logged before anything
//! leaves; on allow it goes to the upstream on a connection of its own (HTTP/1.1 only, no
//! compression extension, so every frame can be read), and after both sides switched protocols
//! the frames are relayed one by one: client text frames are scanned for secrets (a finding
//! closes both sides with 1008 under `[secrets] action = "block"`), the injected credential is
//! masked in server frames, and the flow's `end` record counts bytes and messages each way,
//! the close code and who closed. RFC 8441 (WebSocket over HTTP/2) is not offered: the proxy
//! never advertises extended CONNECT, so clients use HTTP/1.1 for WebSockets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::{BoxError, ProxyBody};
use crate::forward::FlowTarget;
use crate::headers;
use crate::io::{idle_watchdog, Activity};
use crate::scrub::Needles;
use crate::state::{FlowEnd, Shared};
use crate::ws_frame::{close_frame, Frame, FrameReader, OP_CLOSE, OP_CONTINUATION, OP_TEXT};

/// The largest frame the relay holds to inspect it.
pub const MAX_FRAME: usize = 16 << 20;

/// `req` asks to switch to the WebSocket protocol: an HTTP/1.1 `GET` with `Upgrade: websocket`
/// and `Connection: upgrade`.
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.method() == http::Method::GET
        && req.version() == Version::HTTP_11
        && has(http::header::UPGRADE, "websocket")
        && has(http::header::CONNECTION, "upgrade")
}

/// What one direction of the relay saw.
#[derive(Debug, Default)]
struct Side {
    messages: AtomicU64,
    bytes: AtomicU64,
}

/// How the relay ended.
#[derive(Debug, Default)]
struct Closing {
    close_code: Option<u16>,
    closed_by: Option<&'static str>,
    fault: Option<String>,
}

/// Sends the allowed upgrade request (`parts`: hop-by-hop headers stripped, credential
/// injected, `uri` absolute) to the pinned upstream and, on `101`, relays the frames in a task
/// that `target` keeps (the tunnel waits for it). Anything else the upstream answers goes back
/// to the client as is, and the connection closes.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn forward(
    shared: Arc<Shared>,
    target: Arc<FlowTarget>,
    addr: SocketAddr,
    mut parts: http::request::Parts,
    client_upgrade: hyper::upgrade::OnUpgrade,
    mut end: FlowEnd,
    needles: Option<Arc<Needles>>,
    block: bool,
) -> Response<ProxyBody> {
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| target.host_label.clone());
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    parts.uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return fail(&mut end, 400, "bad_request", "unusable request target"),
    };
    parts.version = Version::HTTP_11;
    let h = &mut parts.headers;
    h.remove(http::header::SEC_WEBSOCKET_EXTENSIONS);
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    match HeaderValue::from_str(&authority) {
        Ok(v) => {
            h.insert(http::header::HOST, v);
        }
        Err(_) => return fail(&mut end, 400, "bad_request", "unusable host"),
    }
    let tls = target.tls.as_ref().map(|_| shared.upstream_tls.clone());
    let io = match crate::upstream::connect_http1(
        addr,
        &target.host_label,
        tls,
        shared.limits.upstream_connect_timeout,
    )
    .await
    {
        Ok(io) => io,
        Err(e) => {
            let reason = format!("upstream connect failed: {e}");
            return fail(&mut end, 502, "upstream_failed", &reason);
        }
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(x) => x,
        Err(e) => {
            let reason = format!("upstream HTTP/1.1 handshake failed: {e}");
            return fail(&mut end, 502, "upstream_failed", &reason);
        }
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let req = Request::from_parts(parts, Empty::<Bytes>::new());
    let sent = tokio::time::timeout(
        shared.limits.upstream_response_timeout,
        sender.send_request(req),
    )
    .await;
    let mut resp = match sent {
        Err(_) => {
            return fail(
                &mut end,
                504,
                "upstream_timeout",
                "upstream response timeout",
            )
        }
        Ok(Err(e)) => {
            let reason = format!("upstream failed: {e}");
            return fail(&mut end, 502, "upstream_failed", &reason);
        }
        Ok(Ok(r)) => r,
    };
    end.template.status = Some(resp.status().as_u16());
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Refused upstream (401, 404, ...): the answer goes back, and the connection closes
        // (the request framing is passed through after an upgrade request).
        let (mut p, body) = resp.into_parts();
        headers::strip_response(&mut p.headers);
        p.headers
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        if let Some(n) = &needles {
            n.scrub_headers(&mut p.headers);
        }
        let bytes_in = end.bytes_in.clone();
        let body: ProxyBody = match needles {
            Some(n) => crate::scrub::ScrubBody::scrubbing(body, n).boxed(),
            None => body.map_err(BoxError::from).boxed(),
        };
        return Response::from_parts(p, crate::body::CountBody::new(body, bytes_in, end).boxed());
    }
    if resp
        .headers()
        .contains_key(http::header::SEC_WEBSOCKET_EXTENSIONS)
    {
        return fail(
            &mut end,
            502,
            "upstream_failed",
            "the upstream accepted a WebSocket extension the client was not allowed to offer",
        );
    }
    let mut answer = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "upgrade")
        .header(http::header::UPGRADE, "websocket");
    for name in [
        http::header::SEC_WEBSOCKET_ACCEPT,
        http::header::SEC_WEBSOCKET_PROTOCOL,
    ] {
        if let Some(v) = resp.headers().get(&name) {
            answer = answer.header(name, v.clone());
        }
    }
    let upstream_upgrade = hyper::upgrade::on(&mut resp);
    let relay_shared = shared.clone();
    let task = tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client_upgrade, upstream_upgrade) {
            (Ok(c), Ok(u)) => (TokioIo::new(c), TokioIo::new(u)),
            (c, u) => {
                let why = c
                    .err()
                    .or(u.err())
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                *end.fault.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("the protocol switch failed: {why}"));
                return;
            }
        };
        relay(relay_shared, client, upstream, end, needles, block).await;
    });
    target
        .ws_tasks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(task);
    answer
        .body(
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| crate::respond::fault(500, "internal", "bad 101 response", None))
}

fn fail(end: &mut FlowEnd, status: u16, error: &str, reason: &str) -> Response<ProxyBody> {
    end.template.status = Some(status);
    *end.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    let mut resp = crate::respond::fault(status, error, reason, end.template.host.as_deref());
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Relays frames both ways until either side closes, a frame breaks the rules, a secret is
/// found (with `block`), or nothing moves for the idle timeout; then writes the `end` record.
async fn relay<C, U>(
    shared: Arc<Shared>,
    client: C,
    upstream: U,
    end: FlowEnd,
    needles: Option<Arc<Needles>>,
    block: bool,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = std::time::Instant::now();
    let activity = Activity::new();
    let out = Side::default();
    let inn = Side::default();
    let closing = std::sync::Mutex::new(Closing::default());
    let (mut client_r, client_w) = tokio::io::split(client);
    let (mut up_r, up_w) = tokio::io::split(upstream);
    // Both directions may write to either side (the proxy's own close frames).
    let client_w = tokio::sync::Mutex::new(client_w);
    let up_w = tokio::sync::Mutex::new(up_w);
    let to_upstream = async {
        let mut reader = FrameReader::new(true, MAX_FRAME);
        let mut scanner = egress_policy::secrets::SecretScanner::new();
        let mut in_text = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            activity.touch();
            reader.push(&buf[..n]);
            loop {
                let frame = match reader.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        refuse_both(&closing, &client_w, &up_w, 1002, &e.to_string()).await;
                        return;
                    }
                };
                let text = frame.opcode == OP_TEXT || (frame.opcode == OP_CONTINUATION && in_text);
                if matches!(frame.opcode, OP_TEXT | crate::ws_frame::OP_BINARY) {
                    in_text = frame.opcode == OP_TEXT && !frame.fin;
                } else if frame.opcode == OP_CONTINUATION && frame.fin {
                    in_text = false;
                }
                if text {
                    if let Some(found) = scanner.feed(&frame.payload()).first() {
                        let kind = found.kind.as_str().to_owned();
                        if block {
                            let why = format!("a WebSocket text frame from the client carries a secret ({kind}); [secrets] action = \"block\"");
                            refuse_both(&closing, &client_w, &up_w, 1008, &why).await;
                            return;
                        }
                        closing.lock().unwrap_or_else(|p| p.into_inner()).fault.get_or_insert(
                            format!("a WebSocket text frame from the client carries a secret ({kind}), forwarded because [secrets] action = \"log\""),
                        );
                    }
                }
                note_frame(&frame, &out, &closing, "client");
                if up_w.lock().await.write_all(&frame.raw).await.is_err() {
                    return;
                }
            }
        }
        let _ = up_w.lock().await.shutdown().await;
    };
    let to_client = async {
        let mut reader = FrameReader::new(false, MAX_FRAME);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match up_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            activity.touch();
            reader.push(&buf[..n]);
            loop {
                let mut frame = match reader.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        let mut c = closing.lock().unwrap_or_else(|p| p.into_inner());
                        c.fault.get_or_insert(format!(
                            "the upstream broke the WebSocket framing: {e}"
                        ));
                        return;
                    }
                };
                if let Some(n) = &needles {
                    let mut payload = frame.payload();
                    if n.mask(&mut payload) > 0 {
                        frame.set_payload(&payload);
                    }
                }
                note_frame(&frame, &inn, &closing, "server");
                if client_w.lock().await.write_all(&frame.raw).await.is_err() {
                    return;
                }
            }
        }
        let _ = client_w.lock().await.shutdown().await;
    };
    let idle = idle_watchdog(activity.clone(), shared.limits.idle_timeout);
    tokio::select! {
        _ = async { tokio::join!(to_upstream, to_client) } => {}
        _ = idle => {
            closing.lock().unwrap_or_else(|p| p.into_inner()).fault.get_or_insert("idle timeout".into());
        }
    }
    let c = closing.into_inner().unwrap_or_else(|p| p.into_inner());
    end.bytes_out
        .fetch_add(out.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    end.bytes_in
        .fetch_add(inn.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    if let Some(f) = c.fault.clone() {
        *end.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }
    let mut end = end;
    end.template.detail = Some(serde_json::json!({
        "websocket": {
            "messages_out": out.messages.load(Ordering::Relaxed),
            "messages_in": inn.messages.load(Ordering::Relaxed),
            "close_code": c.close_code,
            "closed_by": c.closed_by,
            "open_ms": started.elapsed().as_secs_f64() * 1000.0,
        }
    }));
    drop(end);
}

fn note_frame(frame: &Frame, side: &Side, closing: &std::sync::Mutex<Closing>, who: &'static str) {
    side.bytes
        .fetch_add(frame.raw.len() as u64, Ordering::Relaxed);
    if frame.ends_message() {
        side.messages.fetch_add(1, Ordering::Relaxed);
    }
    if frame.opcode == OP_CLOSE {
        let mut c = closing.lock().unwrap_or_else(|p| p.into_inner());
        if c.closed_by.is_none() {
            c.closed_by = Some(who);
            c.close_code = frame.close_code();
        }
    }
}

/// Ends both sides with a close frame of the proxy's (`code`, `why` as the reason, cut to fit).
async fn refuse_both<A: AsyncWrite + Unpin, B: AsyncWrite + Unpin>(
    closing: &std::sync::Mutex<Closing>,
    client: &tokio::sync::Mutex<A>,
    upstream: &tokio::sync::Mutex<B>,
    code: u16,
    why: &str,
) {
    {
        let mut c = closing.lock().unwrap_or_else(|p| p.into_inner());
        c.closed_by = Some("proxy");
        c.close_code = Some(code);
        c.fault = Some(why.to_owned());
    }
    let short = if code == 1008 {
        "policy violation: secret"
    } else {
        "protocol error"
    };
    {
        let mut c = client.lock().await;
        let _ = c.write_all(&close_frame(code, short, None)).await;
        let _ = c.shutdown().await;
    }
    let mut u = upstream.lock().await;
    let _ = u
        .write_all(&close_frame(code, short, Some(rand_mask())))
        .await;
    let _ = u.shutdown().await;
}

/// A masking key for the proxy's own close frame to the server.
fn rand_mask() -> [u8; 4] {
    use ring::rand::SecureRandom;
    let mut m = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut m);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, upgrade: &str, connection: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri("/v1/responses")
            .header("upgrade", upgrade)
            .header("connection", connection)
            .body(())
            .unwrap()
    }

    #[test]
    fn only_a_get_with_both_headers_is_an_upgrade() {
        assert!(is_upgrade(&req("GET", "websocket", "Upgrade")));
        assert!(is_upgrade(&req("GET", "WebSocket", "keep-alive, upgrade")));
        assert!(!is_upgrade(&req("POST", "websocket", "upgrade")));
        assert!(!is_upgrade(&req("GET", "h2c", "upgrade")));
        assert!(!is_upgrade(&req("GET", "websocket", "keep-alive")));
    }
}
