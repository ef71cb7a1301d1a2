//! Opening a TLS connection to the target, directly or through an HTTP CONNECT proxy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long any single connect, CONNECT exchange or TLS handshake may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest CONNECT response head accepted from a proxy.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// Where and how to reach the target.
#[derive(Clone)]
pub struct Route {
    /// The host name used for SNI, `Host` and the CONNECT request.
    pub host: String,
    /// The target port.
    pub port: u16,
    /// Dial this address instead of resolving `host` (direct mode only, like curl's `--connect-to`).
    pub connect_addr: Option<SocketAddr>,
    /// The HTTP proxy to CONNECT through, as `host:port`.
    pub proxy: Option<String>,
    /// TLS client settings (trust roots, ALPN, session cache).
    pub tls: Arc<ClientConfig>,
    /// Counts CONNECT tunnels the proxy accepted.
    pub tunnels: Arc<AtomicU64>,
}

impl Route {
    /// Opens TCP (with TCP_NODELAY), the CONNECT tunnel if a proxy is set, and TLS.
    pub async fn open(&self) -> Result<TlsStream<TcpStream>> {
        let tcp = match &self.proxy {
            Some(proxy) => self.connect_tunnel(proxy).await?,
            None => {
                let tcp = match self.connect_addr {
                    Some(addr) => timed(TcpStream::connect(addr), "connecting to the target").await?,
                    None => {
                        let hp = format!("{}:{}", self.host, self.port);
                        timed(TcpStream::connect(hp.as_str()), "connecting to the target").await?
                    }
                };
                tcp.set_nodelay(true)?;
                tcp
            }
        };
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| anyhow!("{} is not a valid TLS server name: {e}", self.host))?;
        let connector = TlsConnector::from(self.tls.clone());
        timed(connector.connect(name, tcp), "the TLS handshake with the target").await
    }

    async fn connect_tunnel(&self, proxy: &str) -> Result<TcpStream> {
        let mut tcp = timed(TcpStream::connect(proxy), "connecting to the proxy").await?;
        tcp.set_nodelay(true)?;
        let authority = format!("{}:{}", self.host, self.port);
        let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        tcp.write_all(req.as_bytes()).await?;
        // Read byte-exact up to the end of the head: nothing after it belongs to us.
        let mut head = Vec::with_capacity(256);
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > MAX_CONNECT_HEAD {
                bail!("the proxy's CONNECT response head is larger than {MAX_CONNECT_HEAD} bytes");
            }
            let n = tokio::time::timeout_at(deadline, tcp.read(&mut byte))
                .await
                .map_err(|_| anyhow!("the proxy did not answer CONNECT within {STEP_TIMEOUT:?}"))??;
            if n == 0 {
                bail!("the proxy closed the connection during CONNECT");
            }
            head.push(byte[0]);
        }
        let status_line = head.split(|b| *b == b'\r').next().unwrap_or_default();
        let status_line = String::from_utf8_lossy(status_line);
        let code = status_line.split_whitespace().nth(1).unwrap_or("");
        if code != "200" {
            bail!("the proxy refused CONNECT {authority}: {status_line}");
        }
        self.tunnels.fetch_add(1, Ordering::Relaxed);
        Ok(tcp)
    }
}

/// Runs `fut` within [`STEP_TIMEOUT`], naming `what` on failure.
async fn timed<T, E>(fut: impl std::future::Future<Output = Result<T, E>>, what: &str) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(r) => r.with_context(|| format!("{what} failed")),
        Err(_) => bail!("{what} took longer than {STEP_TIMEOUT:?}"),
    }
}

/// Parses a proxy setting such as `http://127.0.0.1:3128/` or `localhost:8080` to `host:port`.
pub fn proxy_authority(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("HTTP://"))
        .unwrap_or(url);
    if rest.starts_with("https://") || rest.contains("://") {
        bail!("unsupported proxy URL {url}: only http:// proxies are supported");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.is_empty() {
        bail!("the proxy URL {url} names no host");
    }
    if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        Ok(authority.to_string())
    } else {
        Ok(format!("{authority}:80"))
    }
}

#[cfg(test)]
mod tests {
    use super::proxy_authority;

    #[test]
    fn proxy_urls_become_authorities() {
        assert_eq!(proxy_authority("http://127.0.0.1:3128/").unwrap(), "127.0.0.1:3128");
        assert_eq!(proxy_authority("http://u:p@localhost:9").unwrap(), "localhost:9");
        assert_eq!(proxy_authority("localhost").unwrap(), "localhost:80");
        assert!(proxy_authority("socks5://localhost:1080").is_err());
        assert!(proxy_authority("http:///x").is_err());
    }
}
