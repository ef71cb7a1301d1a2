//! TLS configuration: trust roots from PEM files, the bench CA and the upstream's leaf.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The one crypto provider used everywhere in the bench: ring, passed explicitly.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config that trusts every certificate found in `pem_files` (bundles allowed),
/// offers only `http/1.1`, and keeps rustls' default in-memory session cache (resumption on,
/// as curl, Node and Python clients do by default).
pub fn client_config(pem_files: &[&Path]) -> Result<Arc<ClientConfig>> {
    client_config_with(pem_files, true)
}

/// As [`client_config`], with TLS session resumption on or off. Off, every connection does a
/// full handshake, as a client process started per request (a `curl` in a shell loop) does.
pub fn client_config_with(pem_files: &[&Path], resumption: bool) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for file in pem_files {
        let mut added = 0usize;
        for cert in CertificateDer::pem_file_iter(file)
            .with_context(|| format!("reading trust roots from {}", file.display()))?
        {
            let cert = cert.with_context(|| format!("parsing PEM in {}", file.display()))?;
            // A system bundle may hold a certificate webpki cannot parse; skip it, count the rest.
            if roots.add(cert).is_ok() {
                added += 1;
            }
        }
        if added == 0 {
            bail!("no usable CA certificate in {}", file.display());
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("building the TLS client config")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// A server config presenting `chain_pem` (leaf first) with `key_pem`, ALPN `http/1.1`.
pub fn server_config(chain_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(chain_pem)
        .with_context(|| format!("reading {}", chain_pem.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", chain_pem.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .with_context(|| format!("reading the private key {}", key_pem.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("building the TLS server config")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the upstream certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// PEM texts of a fresh bench CA and of a leaf it signed for `names`.
pub struct GeneratedPki {
    /// The CA certificate: what clients and proxies are told to trust (`--upstream-ca`).
    pub ca_cert_pem: String,
    /// The leaf certificate followed by the CA certificate.
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8).
    pub leaf_key_pem: String,
}

/// Generates a CA (ECDSA P-256) and a leaf for `names` (DNS names or IP literals).
pub fn generate_pki(names: &[String]) -> Result<GeneratedPki> {
    let ca_key = KeyPair::generate().context("generating the bench CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sandbox bench upstream CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("self-signing the bench CA")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().context("generating the upstream leaf key")?;
    let mut leaf_params =
        CertificateParams::new(names.to_vec()).context("an upstream name is not valid")?;
    leaf_params.distinguished_name.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("upstream"),
    );
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .context("signing the upstream leaf")?;
    Ok(GeneratedPki {
        ca_cert_pem: ca_cert.pem(),
        chain_pem: format!("{}{}", leaf.pem(), ca_cert.pem()),
        leaf_key_pem: leaf_key.serialize_pem(),
    })
}
