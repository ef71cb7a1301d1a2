//! Google OAuth access tokens for `inject = { form = "google-oauth" }` (Vertex AI): the
//! supervisor holds the service-account key or the application-default credentials, mints a
//! short-lived access token at the key's token endpoint when a request needs one, keeps it until
//! a minute before it expires, and the proxy sends it as `Authorization: Bearer`. The agent holds
//! neither the key nor the token.
//!
//! - A service account (`"type": "service_account"`) signs a JWT (RS256, `iss` the account,
//!   `scope`, `aud` the token URI, one hour) and trades it with the
//!   `urn:ietf:params:oauth:grant-type:jwt-bearer` grant (RFC 7523).
//! - Application default credentials of a user (`"type": "authorized_user"`, what `gcloud auth
//!   application-default login` writes) trade their refresh token (`grant_type=refresh_token`).
//!
//! Every mint is a flow of the supervisor's own, logged before it is sent like any flow.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::encode::{base64, percent_encode, URL_SAFE};

/// Google's token endpoint, when a key file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The scope Vertex AI needs.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// What the supervisor authenticates with.
enum Key {
    ServiceAccount {
        client_email: String,
        key: Arc<RsaKeyPair>,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
}

/// A Google credential and its cached access token.
#[derive(Clone)]
pub struct GoogleCredentials {
    key: Arc<Key>,
    /// Where tokens are minted (`https://oauth2.googleapis.com/token`).
    pub token_uri: String,
    /// The OAuth scopes asked for.
    pub scopes: Vec<String>,
    /// Where the key came from, for messages.
    pub source: String,
    /// The secrets of the key file, for the response scrub.
    secrets: Vec<String>,
    cache: Arc<tokio::sync::Mutex<Option<(String, Instant)>>>,
}

impl PartialEq for GoogleCredentials {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.key, &other.key)
    }
}
impl Eq for GoogleCredentials {}

impl std::fmt::Debug for GoogleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleCredentials")
            .field("token_uri", &self.token_uri)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A token endpoint's answer.
#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl GoogleCredentials {
    /// Reads a key file's JSON (`source` names it in messages).
    pub fn from_json(text: &str, source: &str, scopes: Vec<String>) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("{source} is not a Google credentials JSON file: {e}"))?;
        let field = |name: &str| {
            v[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{source} has no `{name}`"))
        };
        let token_uri = v["token_uri"]
            .as_str()
            .unwrap_or(DEFAULT_TOKEN_URI)
            .to_string();
        if !token_uri.starts_with("https://") {
            return Err(format!("{source}: token_uri {token_uri} is not https"));
        }
        let (key, secrets) = match v["type"].as_str() {
            Some("service_account") => {
                let pem = field("private_key")?;
                let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
                    .map_err(|e| format!("{source}: private_key is not a PKCS#8 PEM key: {e}"))?;
                let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
                    .map_err(|e| format!("{source}: private_key is not an RSA key: {e}"))?;
                (
                    Key::ServiceAccount {
                        client_email: field("client_email")?,
                        key: Arc::new(key),
                    },
                    vec![pem],
                )
            }
            Some("authorized_user") => {
                let secret = field("client_secret")?;
                let refresh = field("refresh_token")?;
                (
                    Key::AuthorizedUser {
                        client_id: field("client_id")?,
                        client_secret: secret.clone(),
                        refresh_token: refresh.clone(),
                    },
                    vec![secret, refresh],
                )
            }
            other => {
                return Err(format!(
                    "{source}: credentials of type {} cannot mint tokens here (use a service-account key or `gcloud auth application-default login`)",
                    other.unwrap_or("(none)")
                ))
            }
        };
        Ok(GoogleCredentials {
            key: Arc::new(key),
            token_uri,
            scopes,
            source: source.to_string(),
            secrets,
            cache: Arc::default(),
        })
    }

    /// Strings of the key file that must never reach the agent.
    pub fn secret_strings(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }

    /// The form body that trades this credential for a token, at `now` (seconds since the
    /// epoch).
    pub fn token_request_body(&self, now: u64) -> Result<String, String> {
        match &*self.key {
            Key::ServiceAccount { client_email, key } => {
                let header = base64(br#"{"alg":"RS256","typ":"JWT"}"#, URL_SAFE, false);
                let claims = serde_json::json!({
                    "iss": client_email,
                    "scope": self.scopes.join(" "),
                    "aud": self.token_uri,
                    "iat": now,
                    "exp": now + 3600,
                });
                let claims = base64(claims.to_string().as_bytes(), URL_SAFE, false);
                let input = format!("{header}.{claims}");
                let mut sig = vec![0u8; key.public().modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| "signing the token request failed".to_string())?;
                Ok(format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={input}.{}",
                    base64(&sig, URL_SAFE, false)
                ))
            }
            Key::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
            } => Ok(format!(
                "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                percent_encode(client_id.as_bytes(), b""),
                percent_encode(client_secret.as_bytes(), b""),
                percent_encode(refresh_token.as_bytes(), b"")
            )),
        }
    }

    /// A valid access token: the cached one, or a new one minted through `mint` (which sends
    /// the form body to the token URI and returns the response body).
    pub async fn access_token<F, Fut>(&self, mint: F) -> Result<String, String>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, String>>,
    {
        let mut cache = self.cache.lock().await;
        if let Some((token, until)) = cache.as_ref() {
            if Instant::now() + RENEW_BEFORE < *until {
                return Ok(token.clone());
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = mint(self.token_request_body(now)?).await?;
        let answer: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            format!(
                "the token endpoint {} did not answer with an access token",
                self.token_uri
            )
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        *cache = Some((answer.access_token.clone(), Instant::now() + lifetime));
        Ok(answer.access_token)
    }
}

/// The body of a token request as the proxy sends it.
pub(crate) fn form_body(body: String) -> crate::body::ProxyBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

/// The most of a token endpoint's answer that is read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A token for a request rule `rule` allowed: the cached one, or one minted now at the key's
/// token endpoint. The mint is the supervisor's own flow: logged (a `request` record whose
/// reason says so) before it is sent, with its `end` record after, through the same pinned
/// dial, upstream TLS verification and `--connect-to` overrides as every flow.
pub(crate) async fn token_for(
    shared: &Arc<crate::state::Shared>,
    creds: &GoogleCredentials,
    rule: &str,
) -> Result<String, String> {
    creds
        .access_token(|body| mint(shared.clone(), creds.clone(), rule.to_string(), body))
        .await
}

async fn mint(
    shared: Arc<crate::state::Shared>,
    creds: GoogleCredentials,
    rule: String,
    body: String,
) -> Result<Bytes, String> {
    use crate::flowlog::{Event, FlowRecord, Kind};
    use egress_policy::host::{normalize_host, Host};
    let uri: http::Uri = creds.token_uri.parse().map_err(|_| {
        format!(
            "token_uri {} of {} is not a URL",
            creds.token_uri, creds.source
        )
    })?;
    let host_text = uri.host().unwrap_or_default().to_string();
    let port = uri.port_u16().unwrap_or(443);
    let host: Host = normalize_host(&host_text)
        .map_err(|_| format!("token_uri host {host_text} is not valid"))?;
    let path = uri.path().to_string();
    let addr = crate::resolve::pin(&shared, &host, port)
        .await
        .map_err(|r| {
            format!(
                "the token endpoint {host_text} cannot be reached: {}",
                r.reason
            )
        })?;
    let mut rec = FlowRecord::new(Event::Decision, Kind::Request);
    rec.flow = Some(shared.flow_id());
    rec.decision = Some(egress_policy::Verdict::Allow);
    rec.rule = Some(rule.clone());
    rec.reason = Some(format!(
        "the supervisor mints a Google OAuth access token for rule `{rule}` ({}); the agent never holds it",
        creds.source
    ));
    rec.host = Some(host.to_string());
    rec.port = Some(port);
    rec.addr = Some(addr.ip().to_string());
    rec.method = Some("POST".into());
    rec.path = Some(path.clone());
    let rec = shared
        .log_decision(rec)
        .map_err(|e| format!("the token request could not be logged, so it was not sent: {e}"))?;
    let mut end = crate::state::FlowEnd::new(shared.clone(), &rec, Instant::now());
    end.bytes_out
        .store(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let authority = if port == 443 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let request = http::Request::post(format!("https://{authority}{path}"))
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(form_body(body))
        .map_err(|e| format!("token request: {e}"))?;
    let client = shared.pools.client(
        &host.to_string(),
        port,
        addr,
        Some(shared.upstream_tls.clone()),
        shared.limits.upstream_connect_timeout,
    );
    let failed = |end: &mut crate::state::FlowEnd, why: String| {
        *end.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        why
    };
    let resp = match tokio::time::timeout(
        shared.limits.upstream_response_timeout,
        client.request(request),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(failed(
                &mut end,
                format!("the token endpoint {host_text} failed: {e}"),
            ))
        }
        Err(_) => {
            return Err(failed(
                &mut end,
                format!("the token endpoint {host_text} timed out"),
            ))
        }
    };
    let status = resp.status().as_u16();
    end.template.status = Some(status);
    let mut body = resp.into_body();
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(&mut end, format!("token response: {e}")))?;
        if let Some(d) = frame.data_ref() {
            if out.len() + d.len() > MAX_TOKEN_RESPONSE {
                return Err(failed(&mut end, "the token response is too large".into()));
            }
            out.extend_from_slice(d);
        }
    }
    end.bytes_in
        .store(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
    if status != 200 {
        return Err(failed(
            &mut end,
            format!(
                "the token endpoint {host_text} refused the credentials of {} (HTTP {status})",
                creds.source
            ),
        ));
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_credentials_trade_their_refresh_token() {
        let json = r#"{"type":"authorized_user","client_id":"cid.apps","client_secret":"s e/c","refresh_token":"1//rt"}"#;
        let c =
            GoogleCredentials::from_json(json, "adc.json", vec![CLOUD_PLATFORM.into()]).unwrap();
        assert_eq!(c.token_uri, DEFAULT_TOKEN_URI);
        assert_eq!(
            c.token_request_body(0).unwrap(),
            "grant_type=refresh_token&client_id=cid.apps&client_secret=s%20e%2Fc&refresh_token=1%2F%2Frt"
        );
        assert_eq!(c.secret_strings(), ["s e/c", "1//rt"]);
    }

    #[test]
    fn unusable_files_say_why() {
        for (json, why) in [
            ("{", "not a Google credentials JSON"),
            (r#"{"type":"external_account"}"#, "cannot mint tokens"),
            (
                r#"{"type":"service_account","client_email":"a@b","private_key":"x"}"#,
                "PKCS#8",
            ),
            (
                r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","token_uri":"http://x"}"#,
                "not https",
            ),
        ] {
            let e = GoogleCredentials::from_json(json, "k.json", vec![]).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[tokio::test]
    async fn a_token_is_kept_until_a_minute_before_it_expires() {
        let json =
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#;
        let c = GoogleCredentials::from_json(json, "adc.json", vec![]).unwrap();
        let minted = std::sync::atomic::AtomicU32::new(0);
        let mint = |answer: &'static str| {
            minted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok::<_, String>(Bytes::from_static(answer.as_bytes())) }
        };
        let long = r#"{"access_token":"ya29.long","expires_in":3600}"#;
        assert_eq!(c.access_token(|_| mint(long)).await.unwrap(), "ya29.long");
        assert_eq!(c.access_token(|_| mint(long)).await.unwrap(), "ya29.long");
        assert_eq!(minted.load(std::sync::atomic::Ordering::SeqCst), 1);
        let c2 = GoogleCredentials::from_json(json, "adc.json", vec![]).unwrap();
        let short = r#"{"access_token":"ya29.short","expires_in":30}"#;
        c2.access_token(|_| mint(short)).await.unwrap();
        c2.access_token(|_| mint(short)).await.unwrap();
        assert_eq!(
            minted.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "a token within a minute of expiry is renewed"
        );
        let bad = c2.access_token(|_| mint("{}")).await.unwrap_err();
        assert!(bad.contains("did not answer with an access token"), "{bad}");
    }
}
