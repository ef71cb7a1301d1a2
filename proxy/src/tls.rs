//! TLS configuration: the one crypto provider, the upstream client config, and the per-host
//! server configs that present session-CA leaves to the agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

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
    let mut provider = rustls::crypto::ring::default_provider();
    // AES-128-GCM first (as BoringSSL, Go and the browsers order them): 10 AES rounds against
    // 14, and a SHA-256 key schedule (hardware-accelerated) against SHA-384's. Every suite
    // stays available; only the preference changes.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite_preference(suite.suite()));
    Arc::new(provider)
}

/// Lower is preferred: AES-128-GCM, then AES-256-GCM, then ChaCha20-Poly1305.
fn suite_preference(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384 => 1,
        S::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 4,
        _ => 5,
    }
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

/// The upstream client config of a running proxy, built off the start-up path.
///
/// Scanning the system trust store costs milliseconds of CPU (hundreds of files), which every
/// `sandbox run` would otherwise pay before the agent starts, and which a session that never
/// reaches an upstream (`sandbox run -- true`) does not need at all. So the config of
/// [`upstream_client_config`] is built on a thread of its own, started by the first client
/// connection ([`UpstreamTls::warm`], while the agent's TLS handshake with the proxy runs) or
/// at the latest by the first upstream TLS dial, which awaits it ([`UpstreamTls::get`]).
/// The semantics are unchanged: system roots plus the `--upstream-ca` roots, full
/// verification. Bad `--upstream-ca` roots still fail the start; an empty trust store fails
/// the dial (a 502 naming the reason).
#[derive(Clone)]
pub struct UpstreamTls {
    inner: Arc<LazyUpstream>,
}

struct LazyUpstream {
    /// What the build needs, until it is started.
    pending: Mutex<Option<PendingBuild>>,
    /// The config once a `get` has seen it (the fast path).
    ready: OnceLock<Arc<ClientConfig>>,
    /// The build's outcome: `None` until it finishes.
    built: tokio::sync::watch::Receiver<Option<Result<Arc<ClientConfig>, String>>>,
}

/// Where the build sends its outcome.
type BuiltSender = tokio::sync::watch::Sender<Option<Result<Arc<ClientConfig>, String>>>;

/// The provider, the extra roots and the outcome's sender, until the build starts.
type PendingBuild = (
    Arc<CryptoProvider>,
    Vec<CertificateDer<'static>>,
    BuiltSender,
);

impl UpstreamTls {
    /// Checks the `extra_roots` now (an unusable `--upstream-ca` still fails the start); the
    /// config itself is built later, off the start-up path.
    pub fn new(
        provider: Arc<CryptoProvider>,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Result<UpstreamTls, ProxyError> {
        let mut check = RootCertStore::empty();
        for root in &extra_roots {
            check.add(root.clone()).map_err(|e| {
                ProxyError::Tls(format!("an --upstream-ca certificate is unusable: {e}"))
            })?;
        }
        let (sender, built) = tokio::sync::watch::channel(None);
        Ok(UpstreamTls {
            inner: Arc::new(LazyUpstream {
                pending: Mutex::new(Some((provider, extra_roots, sender))),
                ready: OnceLock::new(),
                built,
            }),
        })
    }

    /// Starts building the config on a background thread, once; later calls do nothing.
    pub fn warm(&self) {
        let pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some((provider, extra_roots, sender)) = pending else {
            return;
        };
        let build = move || {
            let config = upstream_client_config(provider, &extra_roots).map_err(|e| e.to_string());
            // No receiver left means the proxy has stopped: nothing to hand over.
            let _ = sender.send(Some(config));
        };
        // If the thread cannot start, the closure and its sender are dropped, and `get`
        // reports that the roots could not be loaded.
        let _ = std::thread::Builder::new()
            .name("upstream-roots".into())
            .spawn(build);
    }

    /// The config, starting its build if needed and waiting for it.
    pub async fn get(&self) -> Result<Arc<ClientConfig>, ProxyError> {
        if let Some(config) = self.inner.ready.get() {
            return Ok(config.clone());
        }
        self.warm();
        let mut built = self.inner.built.clone();
        let outcome = match built.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        };
        match outcome {
            Some(Ok(config)) => Ok(self.inner.ready.get_or_init(|| config).clone()),
            Some(Err(reason)) => Err(ProxyError::Tls(reason)),
            None => Err(ProxyError::Tls(
                "the thread that loads the upstream trust roots could not run (out of threads?): \
                 restart the session"
                    .into(),
            )),
        }
    }
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
        // Our preference (see `provider`), not the client's: any suite it offers still works.
        config.ignore_client_order = true;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_upstream_ca_fails_the_start_not_the_first_dial() {
        // A DER SEQUENCE holding one INTEGER: well-formed DER, not a certificate.
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let err = UpstreamTls::new(provider(), vec![garbage])
            .err()
            .expect("an unusable --upstream-ca is refused at start");
        assert!(err.to_string().contains("--upstream-ca"), "{err}");
    }

    #[test]
    fn interception_prefers_aes_128_whatever_the_client_prefers_and_drops_no_suite() {
        let default = rustls::crypto::ring::default_provider();
        let ours = provider();
        assert_eq!(
            ours.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        let mut a: Vec<_> = default.cipher_suites.iter().map(|s| s.suite()).collect();
        let mut b: Vec<_> = ours.cipher_suites.iter().map(|s| s.suite()).collect();
        a.sort_by_key(|s| u16::from(*s));
        b.sort_by_key(|s| u16::from(*s));
        assert_eq!(a, b, "only the order changes");

        // A client that offers AES-256 first still gets AES-128 from an intercepting config;
        // a client offering only AES-256 still gets AES-256.
        let ca = Arc::new(
            SessionCa::generate(
                "s-0123456789abcdef",
                std::time::Duration::from_secs(3600),
                ours.clone(),
            )
            .unwrap(),
        );
        let configs = InterceptConfigs::new(ca.clone(), ours.clone());
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let roots = Arc::new(roots);
        for (offer, expect) in [
            (
                vec![
                    rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
                    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
                ],
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            ),
            (
                vec![rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384],
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
            ),
        ] {
            let mut client_provider = rustls::crypto::ring::default_provider();
            client_provider.cipher_suites = offer;
            let client_config = ClientConfig::builder_with_provider(Arc::new(client_provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            let name = rustls_pki_types::ServerName::try_from("api.eu.mistral.ai").unwrap();
            let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
            let mut server =
                rustls::ServerConnection::new(configs.for_host("api.eu.mistral.ai").unwrap())
                    .unwrap();
            for _ in 0..10 {
                let mut wire = Vec::new();
                while client.wants_write() {
                    client.write_tls(&mut wire).unwrap();
                }
                let mut rd = &wire[..];
                while !rd.is_empty() {
                    server.read_tls(&mut rd).unwrap();
                }
                server.process_new_packets().unwrap();
                let mut back = Vec::new();
                while server.wants_write() {
                    server.write_tls(&mut back).unwrap();
                }
                let mut rd = &back[..];
                while !rd.is_empty() {
                    client.read_tls(&mut rd).unwrap();
                }
                client.process_new_packets().unwrap();
                if !client.is_handshaking() && !server.is_handshaking() {
                    break;
                }
            }
            assert!(!client.is_handshaking(), "the handshake completes");
            assert_eq!(
                server.negotiated_cipher_suite().map(|s| s.suite()),
                Some(expect)
            );
        }
    }

    #[tokio::test]
    async fn the_background_config_is_built_once_and_shared() {
        let ca = SessionCa::generate(
            "s-0123456789abcdef",
            std::time::Duration::from_secs(3600),
            provider(),
        )
        .unwrap();
        let tls = UpstreamTls::new(provider(), vec![ca.cert_der().clone()]).unwrap();
        assert!(
            tls.inner.pending.lock().unwrap().is_some(),
            "nothing is loaded at start"
        );
        tls.warm();
        tls.warm();
        let first = tls.get().await.unwrap();
        let again = tls.clone().get().await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one config for the session");
        assert_eq!(
            first.alpn_protocols,
            vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
        );
    }
}
