//! bench-upstream: a fast loopback HTTPS/1.1 server the bench controls.
//!
//! Paths (any method, request bodies are read and discarded):
//! - containing `/bytes/N`: a body of N bytes (the 64 MiB download);
//! - containing `/sse`: `text/event-stream`, chunked, `n` events `interval_ms` apart
//!   (query parameters), each `data: <unix time in ns when written>`;
//! - anything else: a small JSON answer, like an LLM API's error or short completion.
//!
//! Usage: `bench-upstream --listen 127.0.0.1:0 --pki-dir DIR [--name HOST]... [--port-file F] [--stats F]`
//! generates (or reuses) `DIR/ca.pem`, `DIR/chain.pem`, `DIR/key.pem`, and serves until
//! SIGTERM/SIGINT, or `--max-seconds` (default 3600), whichever comes first.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use loadgen::http1::Framed;
use loadgen::tls;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A kept-alive connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const SMALL_BODY: &[u8] = br#"{"id":"bench-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}"#;
const WRITE_SLICE: usize = 256 * 1024;

struct Options {
    listen: String,
    pki_dir: PathBuf,
    names: Vec<String>,
    port_file: Option<PathBuf>,
    stats: Option<PathBuf>,
    max_seconds: u64,
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        listen: "127.0.0.1:0".into(),
        pki_dir: PathBuf::new(),
        names: Vec::new(),
        port_file: None,
        stats: None,
        max_seconds: 3600,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => o.listen = val()?,
            "--pki-dir" => o.pki_dir = val()?.into(),
            "--name" => o.names.push(val()?),
            "--port-file" => o.port_file = Some(val()?.into()),
            "--stats" => o.stats = Some(val()?.into()),
            "--max-seconds" => o.max_seconds = val()?.parse().context("--max-seconds")?,
            other => {
                bail!("unknown argument {other}; see the comment at the top of bench_upstream.rs")
            }
        }
    }
    if o.pki_dir.as_os_str().is_empty() {
        bail!("--pki-dir DIR is required");
    }
    if o.names.is_empty() {
        o.names = vec!["localhost".into(), "127.0.0.1".into()];
    }
    Ok(o)
}

fn main() -> Result<()> {
    let o = parse_args()?;
    std::fs::create_dir_all(&o.pki_dir)
        .with_context(|| format!("creating {}", o.pki_dir.display()))?;
    let (ca, chain, key) = (
        o.pki_dir.join("ca.pem"),
        o.pki_dir.join("chain.pem"),
        o.pki_dir.join("key.pem"),
    );
    if !(ca.exists() && chain.exists() && key.exists()) {
        let pki = tls::generate_pki(&o.names)?;
        std::fs::write(&ca, pki.ca_cert_pem)?;
        std::fs::write(&chain, pki.chain_pem)?;
        std::fs::write(&key, pki.leaf_key_pem)?;
    }
    let config = tls::server_config(&chain, &key)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(o, TlsAcceptor::from(config)))
}

async fn serve(o: Options, acceptor: TlsAcceptor) -> Result<()> {
    let listener = TcpListener::bind(&o.listen)
        .await
        .with_context(|| format!("binding {}", o.listen))?;
    let addr = listener.local_addr()?;
    if let Some(f) = &o.port_file {
        std::fs::write(f, format!("{}\n", addr.port()))?;
    }
    eprintln!("bench-upstream: listening on {addr}");
    let served = Arc::new(AtomicU64::new(0));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let deadline = tokio::time::sleep(Duration::from_secs(o.max_seconds));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (acceptor, served) = (acceptor.clone(), served.clone());
                tokio::spawn(async move {
                    if let Err(e) = connection(tcp, acceptor, &served).await {
                        if std::env::var_os("BENCH_UPSTREAM_DEBUG").is_some() {
                            eprintln!("bench-upstream: connection ended: {e:#}");
                        }
                    }
                });
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = &mut deadline => { eprintln!("bench-upstream: --max-seconds reached"); break }
        }
    }
    let n = served.load(Ordering::Relaxed);
    if let Some(f) = &o.stats {
        std::fs::write(f, format!("{{\"requests_served\":{n}}}\n"))?;
    }
    eprintln!("bench-upstream: served {n} requests");
    Ok(())
}

async fn connection(tcp: TcpStream, acceptor: TlsAcceptor, served: &AtomicU64) -> Result<()> {
    tcp.set_nodelay(true)?;
    let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
        .await
        .context("TLS handshake timed out")??;
    let mut conn = Framed::new(tls);
    loop {
        let head = match tokio::time::timeout(IDLE_TIMEOUT, conn.read_head()).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        };
        conn.read_body(&head, |_| {}).await?;
        served.fetch_add(1, Ordering::Relaxed);
        let close = head.close;
        let conn_hdr = if close { "close" } else { "keep-alive" };
        let path = head.second.as_str();
        if let Some(n) = path.split("/bytes/").nth(1) {
            let n: u64 = n
                .split(['?', '/'])
                .next()
                .unwrap_or("")
                .parse()
                .unwrap_or(0);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {n}\r\nconnection: {conn_hdr}\r\n\r\n"
            );
            conn.send(head.as_bytes()).await?;
            let block = vec![b'x'; WRITE_SLICE];
            let mut left = n;
            while left > 0 {
                let take = left.min(WRITE_SLICE as u64) as usize;
                tokio::io::AsyncWriteExt::write_all(conn.io(), &block[..take]).await?;
                left -= take as u64;
            }
            tokio::io::AsyncWriteExt::flush(conn.io()).await?;
        } else if path.contains("/sse") {
            let n = query_param(path, "n").unwrap_or(20).min(10_000);
            let interval =
                Duration::from_millis(query_param(path, "interval_ms").unwrap_or(50).min(10_000));
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: {conn_hdr}\r\n\r\n"
            );
            conn.send(head.as_bytes()).await?;
            for i in 0..n {
                if i > 0 {
                    tokio::time::sleep(interval).await;
                }
                let ns = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let event = format!("id: {i}\ndata: {ns}\n\n");
                conn.send(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
                    .await?;
            }
            conn.send(b"0\r\n\r\n").await?;
        } else {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {conn_hdr}\r\n\r\n",
                SMALL_BODY.len()
            );
            let mut msg = head.into_bytes();
            msg.extend_from_slice(SMALL_BODY);
            conn.send(&msg).await?;
        }
        if close {
            tokio::io::AsyncWriteExt::shutdown(conn.io()).await.ok();
            return Ok(());
        }
    }
}

fn query_param(path: &str, key: &str) -> Option<u64> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}
