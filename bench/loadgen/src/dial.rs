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
    /// The HTTP proxy to CONNECT through.
    pub proxy: Option<ProxyUrl>,
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
                    Some(addr) => {
                        timed(TcpStream::connect(addr), "connecting to the target").await?
                    }
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
        timed(
            connector.connect(name, tcp),
            "the TLS handshake with the target",
        )
        .await
    }

    async fn connect_tunnel(&self, proxy: &ProxyUrl) -> Result<TcpStream> {
        let mut tcp = timed(
            TcpStream::connect(proxy.authority.as_str()),
            "connecting to the proxy",
        )
        .await?;
        tcp.set_nodelay(true)?;
        let authority = format!("{}:{}", self.host, self.port);
        let auth = match &proxy.basic_auth {
            Some(creds) => format!("Proxy-Authorization: Basic {creds}\r\n"),
            None => String::new(),
        };
        let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n");
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
                .map_err(|_| {
                    anyhow!("the proxy did not answer CONNECT within {STEP_TIMEOUT:?}")
                })??;
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

/// An HTTP proxy: where it listens and, if the URL carried `user:password@`, the
/// base64 credentials for `Proxy-Authorization: Basic` (srt's proxy requires them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUrl {
    /// `host:port` to dial.
    pub authority: String,
    /// base64 of `user:password`, percent-decoded first.
    pub basic_auth: Option<String>,
}

/// Parses a proxy setting such as `http://127.0.0.1:3128/`, `http://u:p@localhost:9` or
/// `localhost:8080`.
pub fn parse_proxy_url(url: &str) -> Result<ProxyUrl> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("HTTP://"))
        .unwrap_or(url);
    if rest.contains("://") {
        bail!("unsupported proxy URL {url}: only http:// proxies are supported");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if hostport.is_empty() || hostport.starts_with(':') {
        bail!("the proxy URL {url} names no host");
    }
    let authority = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let basic_auth = userinfo.map(|u| base64(&percent_decode(u)));
    Ok(ProxyUrl {
        authority,
        basic_auth,
    })
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_become_authorities() {
        let p = parse_proxy_url("http://127.0.0.1:3128/").unwrap();
        assert_eq!(
            p,
            ProxyUrl {
                authority: "127.0.0.1:3128".into(),
                basic_auth: None
            }
        );
        assert_eq!(
            parse_proxy_url("localhost").unwrap().authority,
            "localhost:80"
        );
        assert!(parse_proxy_url("socks5://localhost:1080").is_err());
        assert!(parse_proxy_url("http:///x").is_err());
        assert!(parse_proxy_url("http://u:p@:9").is_err());
    }

    #[test]
    fn userinfo_becomes_basic_credentials() {
        // "Aladdin:open sesame", the RFC 7617 example, with the space percent-encoded.
        let p = parse_proxy_url("http://Aladdin:open%20sesame@localhost:3128").unwrap();
        assert_eq!(p.authority, "localhost:3128");
        assert_eq!(
            p.basic_auth.as_deref(),
            Some("QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(percent_decode("a%3D%3Db%"), b"a==b%");
        assert_eq!(percent_decode("%é%zz"), "%é%zz".as_bytes());
    }
}
