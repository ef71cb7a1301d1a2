//! A loopback HTTPS upstream that impersonates real API hosts (with a test CA), speaks HTTP/1.1
//! and HTTP/2, records every request it receives, and can stream server-sent events.
//!
//! Routes:
//! - any path containing `sse`: `text/event-stream`, [`SSE_EVENTS`] events [`SSE_GAP`] apart;
//! - any path containing `slow-head`: waits 30 s before answering (timeout tests);
//! - any path containing `echo-auth`: echoes the `authorization` it received, raw and in
//!   base64, in the body and in an `x-echo` header (credential scrubbing tests);
//! - everything else: `200` with a JSON echo of the method, path and body length.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How many events the SSE route sends.
pub const SSE_EVENTS: usize = 5;
/// The pause between two SSE events.
pub const SSE_GAP: Duration = Duration::from_millis(400);

/// A test certificate authority whose root the proxy gets via `--upstream-ca`.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "integration-tests upstream CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate the test CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-sign the test CA"),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `hosts` and its key.
    pub fn leaf(&self, hosts: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("generate a leaf key");
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .expect("leaf names");
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query as received.
    pub path_and_query: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body, as far as it arrived.
    pub body: Vec<u8>,
    /// `false` when the body ended in an error (the proxy aborted it).
    pub body_complete: bool,
    /// When the request head arrived.
    pub arrived: std::time::SystemTime,
}

impl Received {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running upstream; stopped when dropped.
pub struct Upstream {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// A vendor's answer to a request, for upstreams that speak a wire format
/// ([`Upstream::start_with`]): status, headers and body, or `None` for the default routes.
pub type Responder = Arc<dyn Fn(&Received) -> Option<Canned> + Send + Sync>;

/// A complete response a [`Responder`] gives.
#[derive(Debug, Clone)]
pub struct Canned {
    /// The status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Upstream {
    /// Starts an upstream presenting a certificate for `hosts` signed by `ca`, offering the
    /// ALPN protocols `alpn` (e.g. `["h2", "http/1.1"]` or `["http/1.1"]`).
    pub fn start(ca: &TestCa, hosts: &[&str], alpn: &[&str]) -> Upstream {
        Upstream::start_with(ca, hosts, alpn, None)
    }

    /// [`Upstream::start`], answering first through `responder` (a fake vendor API).
    pub fn start_with(
        ca: &TestCa,
        hosts: &[&str],
        alpn: &[&str],
        responder: Option<Responder>,
    ) -> Upstream {
        let (chain, key) = ca.leaf(hosts);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("upstream certificate");
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("upstream runtime");
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the upstream on loopback");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("upstream address");
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let rec = received.clone();
        let conns = connections.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let rec = rec.clone();
                let responder = responder.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| handle(req, rec.clone(), responder.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            received,
            connections,
            runtime: Some(runtime),
        }
    }

    /// Starts a plain-HTTP upstream (no TLS) on loopback, with the same routes.
    pub fn start_plain() -> Upstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("upstream runtime");
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the upstream on loopback");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("upstream address");
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let rec = received.clone();
        let conns = connections.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let rec = rec.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, rec.clone(), None));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            received,
            connections,
            runtime: Some(runtime),
        }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// A `--connect-to` value sending `host:443` here.
    pub fn connect_to(&self, host: &str) -> String {
        format!("{host}:443:{}:{}", self.addr.ip(), self.addr.port())
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn handle(
    req: Request<Incoming>,
    rec: Arc<Mutex<Vec<Received>>>,
    responder: Option<Responder>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let index = {
        let mut all = rec.lock().unwrap();
        all.push(Received {
            method: parts.method.to_string(),
            path_and_query: path_and_query.clone(),
            version: format!("{:?}", parts.version),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: Vec::new(),
            body_complete: false,
            arrived: std::time::SystemTime::now(),
        });
        all.len() - 1
    };
    let (body, complete) = match body.collect().await {
        Ok(b) => (b.to_bytes().to_vec(), true),
        Err(_) => (Vec::new(), false),
    };
    let len = body.len();
    let received = {
        let mut all = rec.lock().unwrap();
        all[index].body = body;
        all[index].body_complete = complete;
        all[index].clone()
    };
    if let Some(canned) = responder.and_then(|r| r(&received)) {
        let mut resp = Response::new(
            Full::new(Bytes::from(canned.body))
                .map_err(|never| match never {})
                .boxed(),
        );
        *resp.status_mut() = hyper::StatusCode::from_u16(canned.status).unwrap_or_default();
        for (k, v) in canned.headers {
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                hyper::header::HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        return Ok(resp);
    }
    if path_and_query.contains("slow-head") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if path_and_query.contains("echo-auth") {
        let auth = parts
            .headers
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let token = auth.rsplit(' ').next().unwrap_or_default().to_string();
        let body = serde_json::json!({
            "authorization": auth,
            "token_base64": base64_std(token.as_bytes()),
            "token_hex": hex::encode(token.as_bytes()),
        });
        let mut resp = Response::new(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        );
        resp.headers_mut().insert(
            "x-echo",
            auth.parse()
                .unwrap_or(hyper::header::HeaderValue::from_static("none")),
        );
        return Ok(resp);
    }
    if path_and_query.contains("sse") {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        tokio::spawn(async move {
            for i in 0..SSE_EVENTS {
                let event = format!("id: {i}\ndata: {{\"token\":\"t{i}\"}}\n\n");
                if tx.send(Bytes::from(event)).await.is_err() {
                    return;
                }
                tokio::time::sleep(SSE_GAP).await;
            }
        });
        let mut resp = Response::new(ChannelBody(rx).boxed());
        resp.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        resp.headers_mut()
            .insert("cache-control", "no-cache".parse().unwrap());
        return Ok(resp);
    }
    let echo = serde_json::json!({
        "ok": true,
        "method": parts.method.as_str(),
        "path": path_and_query,
        "body_len": len,
        "version": format!("{:?}", parts.version),
    });
    let mut resp = Response::new(
        Full::new(Bytes::from(echo.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp.headers_mut()
        .insert("alt-svc", "h3=\":443\"".parse().unwrap());
    Ok(resp)
}

/// A body whose frames come from a channel, sent as they arrive.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Standard base64 with padding (test-side, independent of the proxy's encoder).
pub fn base64_std(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
