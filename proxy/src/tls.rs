//! TLS configuration: the one crypto provider, the upstream client config, and the per-host
//! server configs that present session-CA leaves to the agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;

use crate::ca::{CaError, SessionCa};
use crate::error::ProxyError;

/// ALPN protocol ids.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol ids.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The crypto provider of every TLS config in this crate: ring, passed explicitly so that a
/// second provider compiled into the binary cannot cause a run-time panic.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The upstream client config: system roots plus `extra_roots`, full certificate and host
/// name verification, ALPN h2 and http/1.1.
pub fn upstream_client_config(
    provider: Arc<CryptoProvider>,
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, ProxyError> {
    let mut roots = RootCertStore::empty();
    // System roots: a missing or partly unreadable store is not fatal when extra roots exist.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for root in extra_roots {
        roots.add(root.clone()).map_err(|e| {
            ProxyError::Tls(format!("an --upstream-ca certificate is unusable: {e}"))
        })?;
    }
    if roots.is_empty() {
        return Err(ProxyError::Tls(
            "no upstream trust roots: the system store is empty and no --upstream-ca was given"
                .into(),
        ));
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ProxyError::Tls(format!("cannot build the upstream verifier: {e}")))?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Server configs for intercepted hosts, one per host, each presenting that host's leaf.
pub struct InterceptConfigs {
    ca: Arc<SessionCa>,
    provider: Arc<CryptoProvider>,
    configs: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl InterceptConfigs {
    /// Configs signed by `ca`.
    pub fn new(ca: Arc<SessionCa>, provider: Arc<CryptoProvider>) -> InterceptConfigs {
        InterceptConfigs {
            ca,
            provider,
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// The server config for `host`: its leaf, ALPN h2 and http/1.1.
    pub fn for_host(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        if let Some(hit) = self.lock().get(host) {
            return Ok(hit.clone());
        }
        let leaf = self.ca.leaf(host)?;
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| CaError::Key {
                host: host.to_string(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(FixedLeaf(leaf)));
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        let config = Arc::new(config);
        let mut configs = self.lock();
        if configs.len() >= 4096 {
            configs.clear();
        }
        Ok(configs.entry(host.to_string()).or_insert(config).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ServerConfig>>> {
        self.configs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Always presents the same leaf: the SNI was already checked against the CONNECT host.
#[derive(Debug)]
struct FixedLeaf(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedLeaf {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
