//! The HTTP/1.1 connection to the collector: plain `http://` or `https://` (rustls with the
//! ring provider, system roots plus any extra roots, full certificate and name verification),
//! one kept-alive connection, reconnected when the collector closed it.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::OtlpError;
use crate::tls::{provider, upstream_client_config, ALPN_HTTP11};

/// Where and how to post.
pub(crate) struct Collector {
    /// `scheme://authority/base` without a trailing slash, for messages.
    pub(crate) base: String,
    base_path: String,
    host: String,
    port: u16,
    authority: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

fn bad(endpoint: &str, reason: impl Into<String>) -> OtlpError {
    OtlpError::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.into(),
    }
}

impl Collector {
    /// Parses `http(s)://HOST[:PORT][/base]` and prepares TLS for `https`.
    pub(crate) fn new(
        endpoint: &str,
        extra_roots: &[CertificateDer<'static>],
        headers: &[(String, String)],
    ) -> Result<Collector, OtlpError> {
        let uri: http::Uri = endpoint
            .trim_end_matches('/')
            .parse()
            .map_err(|_| bad(endpoint, "not a URL; use http://HOST:4318"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad(endpoint, "the scheme must be http:// or https://")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| bad(endpoint, "no host; use http://HOST:4318"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                endpoint,
                "credentials in the URL are not allowed; use headers",
            ));
        }
        if uri.query().is_some() {
            return Err(bad(
                endpoint,
                "a query string is not allowed in the base URL",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let mut parsed_headers = Vec::new();
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| bad(endpoint, format!("header name `{name}` is not valid")))?;
            let value = http::HeaderValue::from_str(value.trim()).map_err(|_| {
                bad(
                    endpoint,
                    format!("the value of header `{name}` is not valid"),
                )
            })?;
            parsed_headers.push((name, value));
        }
        let tls = if https {
            let base = upstream_client_config(provider(), extra_roots)
                .map_err(|e| bad(endpoint, e.to_string()))?;
            let mut config = (*base).clone();
            config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
            let name = ServerName::try_from(host.clone())
                .map_err(|_| bad(endpoint, "the host is not a valid TLS server name"))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Collector {
            base: format!(
                "{}://{}{}",
                if https { "https" } else { "http" },
                authority,
                base_path
            ),
            base_path,
            host,
            port,
            authority: authority.to_string(),
            headers: parsed_headers,
            tls,
            sender: None,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        // The connection task ends when the sender is dropped or the peer closes.
        match &self.tls {
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| format!("HTTP handshake with {}: {e}", self.authority))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(sender)
            }
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", self.authority))?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP handshake with {}: {e}", self.authority))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(sender)
            }
        }
    }

    /// Posts `body` (protobuf) to `path` (e.g. `/v1/logs`); `Ok` on a 2xx answer. When the
    /// future is dropped (a timeout), the connection is dropped with it.
    pub(crate) async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<(), String> {
        let body = Bytes::from(body);
        // A kept-alive connection the collector closed fails at once: retry once, fresh.
        for attempt in 0..2 {
            let reused = self.sender.is_some();
            let mut sender = match self.sender.take() {
                Some(s) if !s.is_closed() => s,
                _ => self.connect().await?,
            };
            if sender.ready().await.is_err() {
                if reused && attempt == 0 {
                    continue;
                }
                return Err(format!("the connection to {} closed", self.authority));
            }
            let mut request = http::Request::post(format!("{}{path}", self.base_path))
                .header(http::header::HOST, self.authority.as_str())
                .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                .body(Full::new(body.clone()))
                .map_err(|e| format!("POST {}{path}: {e}", self.base))?;
            for (name, value) in &self.headers {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                Err(e) if reused && attempt == 0 && e.is_closed() => continue,
                Err(e) => return Err(format!("POST {}{path}: {e}", self.base)),
            };
            let status = response.status();
            // Read the (small) answer so the connection can be reused.
            let complete = response.into_body().collect().await.is_ok();
            if complete {
                self.sender = Some(sender);
            }
            return if status.is_success() {
                Ok(())
            } else {
                Err(format!(
                    "POST {}{path}: the collector answered {status}",
                    self.base
                ))
            };
        }
        Err(format!(
            "POST {}{path}: the connection closed twice",
            self.base
        ))
    }
}
