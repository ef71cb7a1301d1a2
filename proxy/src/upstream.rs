//! The upstream side: dialling the pinned address, TLS with full verification, and one
//! connection pool per (host, port, address, scheme).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::body::ProxyBody;
use crate::read_ahead::ReadAhead;
use crate::tls::{UpstreamTls, ALPN_H2};

/// Dials one pinned address; with `tls`, verifies the upstream certificate for `host`.
#[derive(Clone)]
pub struct Connector {
    addr: SocketAddr,
    host: String,
    tls: Option<UpstreamTls>,
    timeout: Duration,
    /// Offer only `http/1.1` in ALPN.
    http1_only: bool,
}

/// An upstream connection: plain TCP (for rules that allow `http`) or TLS.
pub enum UpstreamStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<ReadAhead<TcpStream>>>),
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            UpstreamStream::Plain(_) => Connected::new(),
            UpstreamStream::Tls(s) => {
                if s.get_ref().1.alpn_protocol() == Some(ALPN_H2) {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Opens a TCP connection to `addr` with TCP_NODELAY, within `timeout`.
pub async fn dial(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("upstream connect timeout after {}s", timeout.as_secs()),
            )
        })??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

impl Connector {
    async fn connect(self) -> io::Result<TokioIo<UpstreamStream>> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let tcp = dial(self.addr, self.timeout).await?;
        let Some(tls) = self.tls else {
            return Ok(TokioIo::new(UpstreamStream::Plain(tcp)));
        };
        // The first dial may wait for the trust roots still loading in the background.
        let tls = tokio::time::timeout_at(deadline, tls.get())
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the upstream trust roots were not loaded within {}s",
                        self.timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e| io::Error::other(e.to_string()))?;
        let tls = if self.http1_only {
            let mut only = (*tls).clone();
            only.alpn_protocols = vec![b"http/1.1".to_vec()];
            std::sync::Arc::new(only)
        } else {
            tls
        };
        let name = match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        };
        let handshake = TlsConnector::from(tls).connect(name, ReadAhead::new(tcp));
        let stream = tokio::time::timeout_at(deadline, handshake)
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "upstream TLS handshake timeout after {}s",
                        self.timeout.as_secs()
                    ),
                )
            })??;
        Ok(TokioIo::new(UpstreamStream::Tls(Box::new(stream))))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<UpstreamStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<UpstreamStream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        // The URI only names the pool; the address was pinned when the flow was decided.
        Box::pin(self.clone().connect())
    }
}

/// A connection of its own to one pinned upstream that speaks HTTP/1.1 only (TLS offers only
/// `http/1.1` in ALPN): what a WebSocket needs.
pub async fn connect_http1(
    addr: SocketAddr,
    host: &str,
    tls: Option<UpstreamTls>,
    timeout: Duration,
) -> io::Result<TokioIo<UpstreamStream>> {
    Connector {
        addr,
        host: host.to_string(),
        tls,
        timeout,
        http1_only: true,
    }
    .connect()
    .await
}

/// An HTTP client bound to one pinned upstream.
pub type UpstreamClient = Client<Connector, ProxyBody>;

type PoolKey = (String, u16, SocketAddr, bool);

/// Upstream clients by (host, port, pinned address, TLS), so that keep-alive and HTTP/2
/// connections are reused across tunnels.
///
/// One set per proxy worker thread: an upstream connection is driven by a task on the worker
/// that opened it, and only that worker's tunnels use it, so a request and its upstream
/// exchange stay on one thread (see `workers`).
pub struct Pools {
    maps: Vec<Mutex<HashMap<PoolKey, UpstreamClient>>>,
}

impl Pools {
    /// Empty pools for `workers` worker threads.
    pub fn per_worker(workers: usize) -> Pools {
        Pools {
            maps: (0..workers.max(1))
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    /// The client for this pinned upstream, from the calling worker's pools.
    pub fn client(
        &self,
        host: &str,
        port: u16,
        addr: SocketAddr,
        tls: Option<UpstreamTls>,
        timeout: Duration,
    ) -> UpstreamClient {
        let key = (host.to_string(), port, addr, tls.is_some());
        let here = crate::workers::current_index() % self.maps.len();
        let mut map = self.maps[here].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            return c.clone();
        }
        if map.len() >= 1024 {
            map.clear();
        }
        let connector = Connector {
            addr,
            host: host.to_string(),
            tls,
            timeout,
            http1_only: false,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(512)
            .http2_adaptive_window(true)
            .build(connector);
        map.insert(key, client.clone());
        client
    }
}

/// The status and reason for a failed upstream exchange: 504 for timeouts, else 502.
pub fn classify_error(err: &(dyn std::error::Error + 'static)) -> (u16, String) {
    let mut timed_out = false;
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                timed_out = true;
            }
        }
        let text = e.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    let reason = format!("upstream failed: {}", parts.join(": "));
    (if timed_out { 504 } else { 502 }, reason)
}
