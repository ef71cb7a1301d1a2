//! Putting a rule's credential on the request it allows: a header (raw, bearer, Azure
//! `api-key`), an AWS SigV4 signature over the exact forwarded bytes, or a Google access token
//! the supervisor minted. Which credential comes from the contract (`egress_policy::Inject`);
//! this module is the mechanism.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body_util::BodyExt;

use crate::body::ProxyBody;
use crate::forward::FlowTarget;
use crate::state::Shared;

/// The largest request body the proxy reads whole to sign it with SigV4 (Bedrock's request
/// bodies are JSON, well under this; only responses stream).
pub(crate) const MAX_SIGNED_BODY: usize = 32 << 20;

/// How a rule's credential goes onto the request.
pub(crate) enum Injection {
    /// A header set to the credential.
    Header(HeaderName, HeaderValue),
    /// The request is signed with AWS SigV4 once its body is known.
    Sigv4(Sigv4Signer),
    /// A Google access token, minted (or taken from the cache) once the flow is logged.
    Google(crate::google_oauth::GoogleCredentials),
}

/// Everything SigV4 needs but the request itself.
pub(crate) struct Sigv4Signer {
    creds: crate::sigv4::AwsCredentials,
    region: String,
    service: String,
}

pub(crate) enum SignError {
    TooLarge,
    Body,
}

/// Reads a body to be signed: at most [`MAX_SIGNED_BODY`].
pub(crate) async fn read_to_sign(mut body: ProxyBody) -> Result<Bytes, SignError> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| SignError::Body)?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > MAX_SIGNED_BODY {
                return Err(SignError::TooLarge);
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out.freeze())
}

impl Sigv4Signer {
    /// Signs `parts` over `body`, the exact bytes forwarded.
    pub(crate) fn sign(&self, parts: &mut http::request::Parts, authority: &str, body: &[u8]) {
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let method = parts.method.as_str().to_string();
        crate::sigv4::sign(
            &mut parts.headers,
            &crate::sigv4::SigningRequest {
                method: &method,
                host: authority,
                path: &path,
                query: &query,
                body,
            },
            &self.creds,
            &self.region,
            &self.service,
            std::time::SystemTime::now(),
        );
        parts.headers.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(body.len() as u64),
        );
        parts.headers.remove(http::header::TRANSFER_ENCODING);
    }
}

/// What rule injection `i` puts on a request to `target`, or why it cannot.
pub(crate) fn injection(
    shared: &Shared,
    i: &egress_policy::Inject,
    target: &FlowTarget,
) -> Result<Injection, String> {
    let key = i.credential_key();
    let credential = shared.credentials.get(&key);
    match (i, credential) {
        (
            egress_policy::Inject::AwsSigv4 { service, .. },
            Some(crate::credentials::Credential::Aws(creds)),
        ) => {
            let region = i.signing_region(&target.host_label).ok_or_else(|| {
                format!(
                    "signs with AWS SigV4 but no signing region is known for {}",
                    target.host_label
                )
            })?;
            Ok(Injection::Sigv4(Sigv4Signer {
                creds: creds.clone(),
                region,
                service: service.clone(),
            }))
        }
        (egress_policy::Inject::GoogleOauth { .. }, Some(crate::credentials::Credential::Google(g))) => {
            Ok(Injection::Google(g.clone()))
        }
        (egress_policy::Inject::GoogleOauth { .. }, _) => Err(
            "mints Google access tokens but the proxy holds no Google credentials (GOOGLE_APPLICATION_CREDENTIALS or application default credentials)".to_string(),
        ),
        (egress_policy::Inject::AwsSigv4 { profile, .. }, _) => Err(format!(
            "signs with AWS SigV4 but the proxy holds no AWS credentials ({})",
            match profile {
                Some(p) => format!("profile `{p}`"),
                None => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile".to_string(),
            }
        )),
        (_, Some(crate::credentials::Credential::Secret(value))) => {
            let value = HeaderValue::from_str(&i.header_value(value)).ok();
            let name = HeaderName::from_bytes(i.header().as_bytes()).ok();
            match (name, value) {
                (Some(n), Some(mut v)) => {
                    v.set_sensitive(true);
                    Ok(Injection::Header(n, v))
                }
                _ => Err(format!(
                    "injects ${} but its value is not a valid header value",
                    i.env().unwrap_or_default()
                )),
            }
        }
        _ => Err(format!(
            "injects ${} but the proxy was not given that credential",
            i.env().unwrap_or_default()
        )),
    }
}
