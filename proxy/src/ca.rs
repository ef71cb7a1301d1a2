//! The per-session certificate authority and the leaf certificates it signs.
//!
//! A fresh ECDSA P-256 CA is generated for every session. Its key never leaves this process's
//! memory. It is valid from one minute ago until the end of the session (at most 24 hours).
//! Leaves are signed on first use for a host, carry an Authority Key Identifier equal to the
//! CA's Subject Key Identifier, and are cached per host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

/// The longest a session CA may be valid.
pub const MAX_CA_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// How many leaves are kept; beyond this the cache is emptied (a session talks to few hosts).
const LEAF_CACHE_MAX: usize = 4096;

/// Why the CA or a leaf could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen failed to generate a key or sign a certificate.
    #[error("cannot create the {what}: {source}")]
    Generate {
        /// What was being created.
        what: &'static str,
        /// The rcgen error.
        source: rcgen::Error,
    },
    /// rustls did not accept the generated key.
    #[error("the TLS library rejected the generated key for {host}: {source}")]
    Key {
        /// The leaf host.
        host: String,
        /// The rustls error.
        source: rustls::Error,
    },
}

/// A per-session CA: signs leaves for intercepted hosts.
pub struct SessionCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: String,
    not_after: OffsetDateTime,
    provider: Arc<CryptoProvider>,
    leaves: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for SessionCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCa")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl SessionCa {
    /// Generates a CA named after `session`, valid for `validity` (capped at 24 hours).
    pub fn generate(
        session: &str,
        validity: Duration,
        provider: Arc<CryptoProvider>,
    ) -> Result<SessionCa, CaError> {
        let validity = validity.min(MAX_CA_VALIDITY);
        let now = OffsetDateTime::now_utc();
        let not_after = now + validity;
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CaError::Generate {
                what: "session CA key",
                source,
            })?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("sandbox session CA {session}"));
        dn.push(DnType::OrganizationName, "sandbox egress proxy");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = not_after;
        let issuer =
            CertifiedIssuer::self_signed(params, key).map_err(|source| CaError::Generate {
                what: "session CA certificate",
                source,
            })?;
        let pem = issuer.pem();
        Ok(SessionCa {
            issuer,
            pem,
            not_after,
            provider,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM-encoded: what clients must trust.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate, DER-encoded.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        self.issuer.der()
    }

    /// The end of the CA's validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The leaf for `host` (a normalised name or IP literal), from the cache or freshly signed.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, CaError> {
        if let Some(hit) = self.cache().get(host) {
            return Ok(hit.clone());
        }
        let leaf = Arc::new(self.sign_leaf(host)?);
        let mut cache = self.cache();
        if cache.len() >= LEAF_CACHE_MAX {
            cache.clear();
        }
        Ok(cache.entry(host.to_string()).or_insert(leaf).clone())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        self.leaves.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sign_leaf(&self, host: &str) -> Result<CertifiedKey, CaError> {
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CaError::Generate {
                what: "leaf key",
                source,
            })?;
        let mut params = CertificateParams::default();
        let san = match host.trim_start_matches('[').trim_end_matches(']').parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.to_string().try_into().map_err(|source| {
                CaError::Generate {
                    what: "leaf subject name",
                    source,
                }
            })?),
        };
        params.subject_alt_names = vec![san];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        params.not_after = self.not_after;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| CaError::Generate {
                what: "leaf certificate",
                source,
            })?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = self
            .provider
            .key_provider
            .load_private_key(der)
            .map_err(|source| CaError::Key {
                host: host.to_string(),
                source,
            })?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), self.issuer.der().clone()],
            signing_key,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::*;

    fn ca() -> SessionCa {
        SessionCa::generate(
            "s-0123456789abcdef",
            Duration::from_secs(48 * 3600),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap()
    }

    fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .expect("the CA has a subject key identifier")
    }

    fn aki(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(k) => {
                    k.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .expect("the leaf has an authority key identifier")
    }

    #[test]
    fn ca_is_p256_constrained_and_at_most_24h() {
        let ca = ca();
        let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
        let validity = cert.validity();
        let span = validity.not_after.timestamp() - validity.not_before.timestamp();
        assert!(
            span <= 24 * 3600 + 60,
            "validity {span}s exceeds the session cap"
        );
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        assert_eq!(
            cert.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn leaf_aki_equals_ca_ski_and_names_the_host() {
        let ca = ca();
        let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
        let leaf = ca.leaf("api.eu.mistral.ai").unwrap();
        let (_, leaf_cert) = X509Certificate::from_der(&leaf.cert[0]).unwrap();
        assert_eq!(aki(&leaf_cert), ski(&ca_cert));
        assert_eq!(leaf_cert.issuer(), ca_cert.subject());
        let sans = leaf_cert.subject_alternative_name().unwrap().unwrap();
        assert!(sans
            .value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName("api.eu.mistral.ai"))));
        assert!(leaf_cert.validity().not_after <= ca_cert.validity().not_after);
        assert!(!leaf_cert
            .basic_constraints()
            .unwrap()
            .is_some_and(|b| b.value.ca));
    }

    #[test]
    fn leaves_are_cached_per_host() {
        let ca = ca();
        let a = ca.leaf("a.example").unwrap();
        let b = ca.leaf("a.example").unwrap();
        let c = ca.leaf("b.example").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn ip_literal_leaves_use_an_ip_san() {
        let ca = ca();
        let leaf = ca.leaf("192.0.2.7").unwrap();
        let (_, cert) = X509Certificate::from_der(&leaf.cert[0]).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        assert!(sans
            .value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(b) if *b == [192, 0, 2, 7])));
    }
}
