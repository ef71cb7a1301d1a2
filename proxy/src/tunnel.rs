//! Inside an accepted CONNECT: read the ClientHello, check its SNI against the CONNECT host,
//! then either terminate TLS and serve requests (intercept) or splice bytes (passthrough).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use egress_policy::host::{normalize_host, Host};
use egress_policy::Decision;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::flowlog::{Kind, TlsInfo};
use crate::forward::{self, FlowTarget};
use crate::guard::{H1Guard, ViolationSlot};
use crate::io::{idle_watchdog, Activity, Tracked};
use crate::state::{decision_record, refusal_record, FlowEnd, Shared};
use crate::tls::ALPN_H2;
use crate::upstream::dial;

/// The largest ClientHello the proxy reads before giving up.
const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// What the CONNECT decided.
pub(crate) struct TunnelCtx {
    pub flow: u64,
    pub host: Host,
    pub host_label: String,
    pub port: u16,
    pub addr: SocketAddr,
    pub decision: Decision,
    pub raw_tcp: bool,
    /// The HTTP status the client got before the tunnel: 200 for the answer to a CONNECT,
    /// `None` for a connection the transparent capture accepted (no HTTP was spoken).
    pub client_status: Option<u16>,
}

/// The first TLS flight of the client.
struct Hello {
    bytes: Vec<u8>,
    sni: Option<String>,
}

/// Runs the tunnel to its end; every outcome is logged.
///
/// `io` is the client's byte stream after the CONNECT (`TokioIo<Upgraded>`), or a connection
/// the transparent capture accepted (`crate::capture`).
pub(crate) async fn run<I>(
    shared: Arc<Shared>,
    ctx: TunnelCtx,
    mut io: I,
    _permit: Arc<crate::workers::ConnSlot>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if ctx.raw_tcp {
        return splice(shared, &ctx, io, Vec::new(), None).await;
    }
    let hello = match tokio::time::timeout(
        shared.limits.tls_handshake_timeout,
        read_client_hello(&mut io),
    )
    .await
    {
        Ok(Ok(h)) => h,
        Ok(Err(reason)) => return refuse(&shared, &ctx, &reason, None),
        Err(_) => {
            let reason = format!(
                "no TLS ClientHello within {}s",
                shared.limits.tls_handshake_timeout.as_secs()
            );
            return refuse(&shared, &ctx, &reason, None);
        }
    };
    if let Err(reason) = check_sni(&ctx, hello.sni.as_deref()) {
        return refuse(&shared, &ctx, &reason, hello.sni.clone());
    }
    if ctx.decision.intercept {
        intercept(shared, &ctx, io, hello).await
    } else {
        let sni = hello.sni.clone();
        splice(shared, &ctx, io, hello.bytes, Some(sni)).await
    }
}

/// Logs a refused tunnel (the client already got 200, so only the log and a close remain).
fn refuse(shared: &Shared, ctx: &TunnelCtx, reason: &str, sni: Option<String>) {
    let kind = if ctx.decision.intercept {
        Kind::Connect
    } else {
        Kind::Tunnel
    };
    let mut rec = refusal_record(
        kind,
        ctx.flow,
        Some(&ctx.host_label),
        Some(ctx.port),
        None,
        reason,
    );
    rec.rule = ctx.decision.rule.clone();
    rec.addr = Some(ctx.addr.ip().to_string());
    rec.tls = Some(TlsInfo {
        intercepted: false,
        sni,
        alpn: None,
    });
    let _ = shared.log_decision(rec);
}

/// The SNI must name the CONNECT host (domain fronting defence). A tunnel to an IP literal
/// may omit SNI, as clients do not send IP addresses there.
fn check_sni(ctx: &TunnelCtx, sni: Option<&str>) -> Result<(), String> {
    match (sni, &ctx.host) {
        (None, Host::Ip(_)) => Ok(()),
        (None, Host::Name(_)) => Err(format!(
            "the TLS ClientHello has no SNI, but the CONNECT named {}; tunnel closed",
            ctx.host_label
        )),
        (Some(sni), _) => match normalize_host(sni) {
            Ok(h) if h == ctx.host => Ok(()),
            _ => Err(format!(
                "TLS SNI `{}` does not match the CONNECT host `{}` (domain fronting); tunnel closed",
                sni.escape_default(),
                ctx.host_label
            )),
        },
    }
}

/// Reads the client's first TLS bytes until a complete ClientHello is parsed.
async fn read_client_hello<R: AsyncRead + Unpin>(io: &mut R) -> Result<Hello, String> {
    let mut bytes = Vec::new();
    let mut acceptor = rustls::server::Acceptor::default();
    let mut chunk = [0u8; 8192];
    loop {
        let n = io
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the TLS ClientHello failed: {e}"))?;
        if n == 0 {
            return Err("the client closed the tunnel before sending a TLS ClientHello".into());
        }
        if bytes.is_empty() && chunk[0] != 0x16 {
            return Err(
                "the tunnel does not start with a TLS handshake (plain data through CONNECT is refused)"
                    .into(),
            );
        }
        bytes.extend_from_slice(&chunk[..n]);
        if bytes.len() > MAX_CLIENT_HELLO {
            return Err("the TLS ClientHello is larger than 64 KiB".into());
        }
        let mut rd: &[u8] = &chunk[..n];
        while !rd.is_empty() {
            match acceptor.read_tls(&mut rd) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("invalid TLS record: {e}")),
            }
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_string);
                return Ok(Hello { bytes, sni });
            }
            Err((e, _alert)) => return Err(format!("invalid TLS ClientHello: {e}")),
        }
    }
}

/// Passthrough (`intercept = false`) and raw TCP rules: log, dial, replay, splice.
async fn splice<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    shared: Arc<Shared>,
    ctx: &TunnelCtx,
    client: I,
    hello: Vec<u8>,
    sni: Option<Option<String>>,
) {
    let kind = if ctx.raw_tcp { Kind::Tcp } else { Kind::Tunnel };
    let mut rec = decision_record(kind, ctx.flow, &ctx.host_label, ctx.port, &ctx.decision);
    rec.addr = Some(ctx.addr.ip().to_string());
    rec.status = ctx.client_status;
    rec.tls = sni.map(|sni| TlsInfo {
        intercepted: false,
        sni,
        alpn: None,
    });
    // Spliced bytes follow at once: the record is on disk first (`[log] sync`).
    let Ok(rec) = shared.log_decision_durable(rec).await else {
        return;
    };
    let end = FlowEnd::new(shared.clone(), &rec, Instant::now());
    let mut upstream = match dial(ctx.addr, shared.limits.upstream_connect_timeout).await {
        Ok(u) => u,
        Err(e) => {
            *end.fault.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("upstream connect failed: {e}"));
            return;
        }
    };
    if upstream.write_all(&hello).await.is_err() {
        *end.fault.lock().unwrap_or_else(|p| p.into_inner()) =
            Some("upstream closed before the ClientHello was sent".into());
        return;
    }
    end.bytes_out
        .fetch_add(hello.len() as u64, Ordering::Relaxed);
    let activity = Activity::new();
    let mut client = Tracked::new(Bytes::new(), client, activity.clone());
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = idle_watchdog(activity.clone(), shared.limits.idle_timeout) => {
            *end.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some("idle timeout".into());
        }
    }
    end.bytes_out
        .fetch_add(activity.read.load(Ordering::Relaxed), Ordering::Relaxed);
    end.bytes_in
        .fetch_add(activity.written.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Interception: TLS with a session-CA leaf, then each request is decided and forwarded.
async fn intercept<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    shared: Arc<Shared>,
    ctx: &TunnelCtx,
    client: I,
    hello: Hello,
) {
    let config = match shared.intercept.for_host(&ctx.host_label) {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                &shared,
                ctx,
                &format!("cannot make a certificate: {e}"),
                hello.sni,
            )
        }
    };
    let activity = Activity::new();
    let hello_len = hello.bytes.len() as u64;
    let tracked = Tracked::new(Bytes::from(hello.bytes), client, activity.clone());
    let handshake = TlsAcceptor::from(config).accept(tracked);
    let tls = match tokio::time::timeout(shared.limits.tls_handshake_timeout, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = format!(
                "TLS handshake with the client failed (does it trust the session CA?): {e}"
            );
            return refuse(&shared, ctx, &reason, hello.sni);
        }
        Err(_) => {
            return refuse(
                &shared,
                ctx,
                "TLS handshake with the client timed out",
                hello.sni,
            )
        }
    };
    let alpn = tls
        .get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let is_h2 = alpn.as_deref().map(str::as_bytes) == Some(ALPN_H2);
    let tls_info = TlsInfo {
        intercepted: true,
        sni: hello.sni.clone(),
        alpn,
    };
    let mut rec = decision_record(
        Kind::Connect,
        ctx.flow,
        &ctx.host_label,
        ctx.port,
        &ctx.decision,
    );
    rec.addr = Some(ctx.addr.ip().to_string());
    rec.status = ctx.client_status;
    rec.tls = Some(tls_info.clone());
    let Ok(rec) = shared.log_decision(rec) else {
        return;
    };
    let end = FlowEnd::new(shared.clone(), &rec, Instant::now());
    let target = Arc::new(FlowTarget {
        host: ctx.host.clone(),
        host_label: ctx.host_label.clone(),
        port: ctx.port,
        addr: Some(ctx.addr),
        tls: Some(tls_info),
        ws_tasks: Default::default(),
    });
    let svc_shared = shared.clone();
    let svc_target = target.clone();
    let svc_activity = activity.clone();
    let svc = service_fn(move |req| {
        let shared = svc_shared.clone();
        let target = svc_target.clone();
        let handler = svc_activity.while_busy(forward::handle(shared, target, req));
        async move { Ok::<_, Infallible>(handler.await) }
    });
    let slot = ViolationSlot::default();
    let idle = idle_watchdog(activity.clone(), shared.limits.idle_timeout);
    if is_h2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(shared.limits.max_header_bytes as u32)
            .max_concurrent_streams(256)
            .adaptive_window(true)
            .serve_connection(TokioIo::new(tls), svc);
        tokio::select! {
            _ = conn => {}
            _ = idle => {}
        }
    } else {
        let guarded = H1Guard::new(tls, shared.limits.max_header_bytes, false, slot.clone());
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(shared.limits.header_read_timeout)
            .max_buf_size((shared.limits.max_header_bytes + 16 * 1024).max(8192))
            .serve_connection(TokioIo::new(guarded), svc)
            .with_upgrades();
        tokio::select! {
            _ = conn => {}
            _ = idle => {}
        }
        // A WebSocket took the connection over: it ends (and is logged) first.
        let tasks: Vec<_> =
            std::mem::take(&mut *target.ws_tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
    forward::log_violation(&shared, &slot, Some(&target));
    end.bytes_out.fetch_add(
        hello_len + activity.read.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    end.bytes_in
        .fetch_add(activity.written.load(Ordering::Relaxed), Ordering::Relaxed);
}
