//! The proxy listener: accepting clients, the connection cap, and the first request on each
//! connection (CONNECT, a plain `http://` request, or a refusal).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egress_policy::host::normalize_host;
use egress_policy::{Protocol, Scheme, Target};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::flowlog::Kind;
use crate::forward;
use crate::guard::{H1Guard, ViolationSlot};
use crate::io::{idle_watchdog, Activity, Tracked};
use crate::resolve;
use crate::respond;
use crate::state::{decision_record, refusal_record, Shared};
use crate::tunnel::{self, TunnelCtx};

/// Accepts clients until `shutdown` flips.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    let _ = tcp.set_nodelay(true);
                    // The first client starts loading the upstream trust roots (once).
                    shared.upstream_tls.warm();
                    shared.counters.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    match shared.conn_slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let (conn_shared, lost_shared) = (shared.clone(), shared.clone());
                            shared.workers.dispatch(
                                tcp,
                                permit,
                                move |tcp, slot| serve_client(conn_shared, tcp, slot),
                                move |e| lost_shared.log_lost(Kind::Connect, &e),
                            );
                        }
                        Err(_) => {
                            tokio::spawn(refuse_busy(shared.clone(), tcp));
                        }
                    }
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

/// Answers a connection beyond the cap with 503 and logs it.
async fn refuse_busy(shared: Arc<Shared>, mut tcp: TcpStream) {
    let flow = shared.flow_id();
    let reason = format!(
        "connection limit reached ({} concurrent connections); retry later",
        shared.limits.max_connections
    );
    let _ = shared.log_decision(refusal_record(
        Kind::Connect,
        flow,
        None,
        None,
        Some(503),
        &reason,
    ));
    // Read what the client sent first (briefly), so that closing does not reset the answer.
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await;
    let body = serde_json::json!({"error": "proxy_busy", "reason": reason}).to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tcp.write_all(head.as_bytes()).await;
    let _ = tcp.write_all(body.as_bytes()).await;
    let _ = tcp.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await;
}

/// Serves one client connection of the proxy listener (HTTP/1.1 with CONNECT upgrades).
async fn serve_client(shared: Arc<Shared>, tcp: TcpStream, permit: Arc<crate::workers::ConnSlot>) {
    let activity = Activity::new();
    let slot = ViolationSlot::default();
    let io = H1Guard::new(
        Tracked::new(Bytes::new(), tcp, activity.clone()),
        shared.limits.max_header_bytes,
        true,
        slot.clone(),
    );
    let svc_shared = shared.clone();
    let svc_activity = activity.clone();
    let svc = service_fn(move |req| {
        let shared = svc_shared.clone();
        let permit = permit.clone();
        let handler = svc_activity.while_busy(route_request(shared, req, permit));
        async move { Ok::<_, Infallible>(handler.await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout)
        .max_buf_size((shared.limits.max_header_bytes + 16 * 1024).max(8192))
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::select! {
        _ = conn => {}
        _ = idle_watchdog(activity, shared.limits.idle_timeout) => {}
    }
    forward::log_violation(&shared, &slot, None);
}

/// Routes one request on the proxy listener: CONNECT, absolute `http://`, or a refusal.
async fn route_request(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    permit: Arc<crate::workers::ConnSlot>,
) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT {
        return connect(shared, req, permit).await;
    }
    match req.uri().scheme_str() {
        Some("http") => forward::plain(shared, req).await,
        Some(_) => {
            let flow = shared.flow_id();
            let reason = "an absolute https:// request must use CONNECT";
            let mut rec = refusal_record(Kind::Request, flow, None, None, Some(400), reason);
            rec.method = Some(req.method().to_string());
            let _ = shared.log_decision(rec);
            respond::fault(400, "bad_request", reason, None)
        }
        None => {
            let flow = shared.flow_id();
            let reason =
                "this is an egress proxy: send CONNECT host:port or an absolute http:// URL";
            let mut rec = refusal_record(Kind::Request, flow, None, None, Some(400), reason);
            rec.method = Some(req.method().to_string());
            rec.path = Some(req.uri().path().to_string());
            let _ = shared.log_decision(rec);
            respond::fault(400, "bad_request", reason, None)
        }
    }
}

/// CONNECT: the engine's gate, one DNS resolution, then 200 and the tunnel task.
async fn connect(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    permit: Arc<crate::workers::ConnSlot>,
) -> Response<ProxyBody> {
    let flow = shared.flow_id();
    let Some(authority) = req.uri().authority().cloned() else {
        let reason = "CONNECT needs host:port";
        let _ = shared.log_decision(refusal_record(
            Kind::Connect,
            flow,
            None,
            None,
            Some(400),
            reason,
        ));
        return respond::fault(400, "bad_request", reason, None);
    };
    let raw_host = authority.host();
    let Some(port) = authority.port_u16() else {
        let reason = "CONNECT needs an explicit port (host:port)";
        let _ = shared.log_decision(refusal_record(
            Kind::Connect,
            flow,
            Some(raw_host),
            None,
            Some(400),
            reason,
        ));
        return respond::fault(400, "bad_request", reason, Some(raw_host));
    };
    let decision = shared.policy.decide_connect(Target {
        scheme: Scheme::Https,
        host: raw_host,
        port,
    });
    let host = normalize_host(raw_host);
    let host_label = match &host {
        Ok(h) => h.to_string(),
        Err(_) => raw_host.to_ascii_lowercase(),
    };
    let host = match (decision.is_allowed(), host) {
        (true, Ok(h)) => h,
        _ => {
            let mut rec = decision_record(Kind::Connect, flow, &host_label, port, &decision);
            rec.decision = Some(egress_policy::Verdict::Deny);
            rec.status = Some(403);
            let _ = shared.log_decision(rec);
            return respond::denied(
                decision.rule.as_deref(),
                &decision.reason,
                &host_label,
                true,
            );
        }
    };
    let addr: SocketAddr = match resolve::pin(&shared, &host, port).await {
        Ok(a) => a,
        Err(refusal) => {
            let mut rec = refusal_record(
                Kind::Connect,
                flow,
                Some(&host_label),
                Some(port),
                Some(refusal.status),
                &refusal.reason,
            );
            rec.rule = refusal.rule.clone();
            let _ = shared.log_decision(rec);
            return if refusal.status == 403 {
                respond::denied(refusal.rule.as_deref(), &refusal.reason, &host_label, true)
            } else {
                respond::fault(
                    refusal.status,
                    "upstream_unreachable",
                    &refusal.reason,
                    Some(&host_label),
                )
            };
        }
    };
    let raw_tcp = decision
        .rule
        .as_deref()
        .and_then(|r| shared.policy.rule(r))
        .is_some_and(|r| r.protocol == Protocol::Tcp);
    let ctx = TunnelCtx {
        flow,
        host,
        host_label,
        port,
        addr,
        decision,
        raw_tcp,
        client_status: Some(200),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => tunnel::run(shared, ctx, TokioIo::new(upgraded), permit).await,
            Err(e) => {
                let rec = refusal_record(
                    Kind::Connect,
                    ctx.flow,
                    Some(&ctx.host_label),
                    Some(ctx.port),
                    None,
                    &format!("the client left before the tunnel opened: {e}"),
                );
                let _ = shared.log_decision(rec);
            }
        }
    });
    Response::new(
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}
