//! A loopback WebSocket server over TLS (HTTP/1.1 upgrade, RFC 6455) that echoes every data
//! frame with the same opcode, answers a close with a close, and records each upgrade request
//! it got. A path containing `reject` is answered `403` instead of `101`. A text frame
//! `send:TEXT` makes it send `TEXT` back instead of the echo (for scrubbing tests).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use proxy::ws_frame::{FrameReader, OP_CLOSE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::upstream::{base64_std, TestCa};

/// One upgrade request as the server received it.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The request line's path.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
}

impl Upgrade {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server saw: upgrade requests, and the payloads of the data frames it got.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Upgrade requests.
    pub upgrades: Vec<Upgrade>,
    /// `(opcode, payload)` of every data frame received.
    pub frames: Vec<(u8, Vec<u8>)>,
}

/// Answers one text message with the text messages to send back (`None`: echo it).
pub type WsResponder = Arc<dyn Fn(&[u8]) -> Option<Vec<String>> + Send + Sync>;

/// A running WebSocket server; stopped when dropped.
pub struct WsUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl WsUpstream {
    /// Starts an echo server with a certificate for `hosts` signed by `ca`.
    pub fn start(ca: &TestCa, hosts: &[&str]) -> WsUpstream {
        WsUpstream::start_with(ca, hosts, None)
    }

    /// Starts a server whose text messages `responder` answers (a vendor's wire format).
    pub fn start_with(ca: &TestCa, hosts: &[&str], responder: Option<WsResponder>) -> WsUpstream {
        let (certs, key) = ca.leaf(hosts);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen = s.clone();
                let responder = responder.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, seen, responder).await;
                    }
                });
            }
        });
        WsUpstream {
            addr,
            seen,
            runtime: Some(runtime),
        }
    }

    /// What it saw so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// `--connect-to` for `host:443`.
    pub fn connect_to(&self, host: &str) -> String {
        format!("{host}:443:{}", self.addr)
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// `Sec-WebSocket-Accept` for `key`.
pub fn accept_key(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64_std(digest.as_ref())
}

/// An unmasked server frame.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    proxy::ws_frame::encode(true, opcode, payload, None)
}

async fn serve<S>(mut io: S, seen: Arc<Mutex<Seen>>, responder: Option<WsResponder>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match io.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
        if head.len() > 65536 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let upgrade = Upgrade { path, headers };
    let key = upgrade
        .header("sec-websocket-key")
        .unwrap_or_default()
        .to_owned();
    let reject = upgrade.path.contains("reject")
        || !upgrade
            .header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    seen.lock().unwrap().upgrades.push(upgrade);
    if reject {
        let _ = io
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 9\r\nconnection: close\r\n\r\nforbidden")
            .await;
        return;
    }
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        accept_key(&key)
    );
    if io.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let mut reader = FrameReader::new(true, 32 << 20);
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        reader.push(&buf[..n]);
        while let Ok(Some(frame)) = reader.next_frame() {
            let payload = frame.payload();
            if frame.opcode == OP_CLOSE {
                let _ = io.write_all(&server_frame(OP_CLOSE, &payload)).await;
                let _ = io.shutdown().await;
                return;
            }
            seen.lock()
                .unwrap()
                .frames
                .push((frame.opcode, payload.clone()));
            if let Some(answers) = responder
                .as_ref()
                .filter(|_| frame.opcode == proxy::ws_frame::OP_TEXT)
                .and_then(|r| r(&payload))
            {
                for a in answers {
                    let f = server_frame(proxy::ws_frame::OP_TEXT, a.as_bytes());
                    if io.write_all(&f).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            let reply = match payload.strip_prefix(b"send:") {
                Some(rest) => rest.to_vec(),
                None => payload,
            };
            if io
                .write_all(&server_frame(frame.opcode, &reply))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
