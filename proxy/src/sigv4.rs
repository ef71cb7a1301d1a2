//! AWS Signature Version 4, for `inject = { form = "aws-sigv4" }`: the proxy signs the exact
//! request it forwards with the supervisor's AWS credentials, so the agent holds only dummy
//! keys. Follows AWS's "Create a signed AWS API request" (SigV4, header form):
//!
//! - canonical request: method, the path URI-encoded once more than on the wire (every byte but
//!   `A-Za-z0-9-._~` and `/`, so a model id's `%3A` becomes `%253A`, as AWS canonicalises it for
//!   every service but S3), the query sorted by encoded name and value, the signed headers
//!   (`host`, `content-type` when present, and every `x-amz-*`) lowercased, trimmed and
//!   sorted, and the hex SHA-256 of the body;
//! - string to sign: `AWS4-HMAC-SHA256`, the time, the scope `DATE/REGION/SERVICE/aws4_request`
//!   and the hash of the canonical request;
//! - signature: HMAC-SHA256 with the key derived from the secret through date, region and
//!   service.
//!
//! Whatever the agent sent in `authorization`, `x-amz-date`, `x-amz-security-token` and
//! `x-amz-content-sha256` is removed first: nothing of its dummy signature is verified or kept.

use std::fmt;
use std::time::SystemTime;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST};
use http::HeaderMap;
use ring::hmac;
use sha2::{Digest, Sha256};

/// AWS credentials the supervisor holds.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
    /// Where they came from, for messages (`the environment`, `profile pilot of ~/.aws/...`).
    pub source: String,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret; the key id only by its first characters.
        f.debug_struct("AwsCredentials")
            .field(
                "access_key_id",
                &format!("{}…", self.access_key_id.get(..4).unwrap_or("")),
            )
            .field("session_token", &self.session_token.is_some())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What to sign: the parts of the request SigV4 covers.
pub struct SigningRequest<'a> {
    /// The method as sent (`POST`).
    pub method: &'a str,
    /// The host header value as sent (`bedrock-runtime.eu-central-1.amazonaws.com`, with
    /// `:port` when not the default).
    pub host: &'a str,
    /// The path as sent on the wire (percent-encoded as the client encoded it).
    pub path: &'a str,
    /// The query as sent, without `?` (may be empty).
    pub query: &'a str,
    /// The exact body bytes forwarded.
    pub body: &'a [u8],
}

/// Headers the proxy replaces: the agent's signature and its inputs.
const REPLACED: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Signs `req` into `headers` (which are the headers to forward): removes the agent's
/// signature, sets `host`, `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (for
/// temporary credentials) and `authorization`.
pub fn sign(
    headers: &mut HeaderMap,
    req: &SigningRequest<'_>,
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
) {
    for h in REPLACED {
        headers.remove(*h);
    }
    let amz_date = amz_date(now);
    let body_hash = hex::encode(Sha256::digest(req.body));
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    if let Ok(v) = HeaderValue::from_str(req.host) {
        headers.insert(HOST, v);
    }
    set(headers, "x-amz-date", &amz_date);
    set(headers, "x-amz-content-sha256", &body_hash);
    if let Some(t) = &creds.session_token {
        set(headers, "x-amz-security-token", t);
    }
    let authorization = authorization(headers, req, creds, region, service, &amz_date, &body_hash);
    if let Ok(mut v) = HeaderValue::from_str(&authorization) {
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
}

/// The `authorization` value for a request whose signed headers are already in `headers`.
fn authorization(
    headers: &HeaderMap,
    req: &SigningRequest<'_>,
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    amz_date: &str,
    body_hash: &str,
) -> String {
    let date = &amz_date[..8];
    let (signed_headers, canonical_headers) = canonical_headers(headers);
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(req.path, false),
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        body_hash
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&creds.secret_access_key, date, region, service);
    let signature = hex::encode(hmac::sign(&key, to_sign.as_bytes()).as_ref());
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    )
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
            .as_ref()
            .to_vec()
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(&k_date, region);
    let k_service = step(&k_region, service);
    let k_signing = step(&k_service, "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, &k_signing)
}

/// `20150830T123600Z` for `now`, in UTC.
fn amz_date(now: SystemTime) -> String {
    let t = time::OffsetDateTime::from(now);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The signed headers (`host`, `content-type`, every `x-amz-*`), lowercased and sorted, as
/// `SignedHeaders` and as the canonical header block (each `name:value\n`).
fn canonical_headers(headers: &HeaderMap) -> (String, String) {
    let mut names: Vec<&str> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| *k == "host" || *k == "content-type" || k.starts_with("x-amz-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut block = String::new();
    for name in &names {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    (names.join(";"), block)
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The query as AWS canonicalises it: each name and value decoded, then encoded with
/// [`uri_encode`], the pairs sorted.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&egress_policy::url::percent_decode_lossy(k), true),
                uri_encode(&egress_policy::url::percent_decode_lossy(v), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// AWS's UriEncode: every byte but `A-Za-z0-9-._~` as `%XX` (upper-case hex); `/` too when
/// `encode_slash`.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    crate::encode::percent_encode(s.as_bytes(), if encode_slash { b"" } else { b"/" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn creds() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            source: "test".into(),
        }
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's published examples.
    fn example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn signature(h: &HeaderMap) -> String {
        let auth = h["authorization"].to_str().unwrap();
        auth.rsplit("Signature=").next().unwrap().to_string()
    }

    /// AWS's documented example request (IAM ListUsers, 2015-08-30), with its published
    /// signature.
    #[test]
    fn the_documented_example_signature() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        h.insert("host", HeaderValue::from_static("iam.amazonaws.com"));
        h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let req = SigningRequest {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            body: b"",
        };
        let body_hash = hex::encode(Sha256::digest(b""));
        let auth = authorization(
            &h,
            &req,
            &creds(),
            "us-east-1",
            "iam",
            "20150830T123600Z",
            &body_hash,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert_eq!(amz_date(example_time()), "20150830T123600Z");
    }

    /// The signing key of AWS's documented example (secret, 20150830, us-east-1, iam).
    #[test]
    fn the_documented_signing_key() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        // Signing the empty string with the derived key equals HMAC(kSigning, "") computed
        // from the documented kSigning value.
        let documented =
            hex::decode("c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
                .unwrap();
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &documented), b"x");
        assert_eq!(hmac::sign(&key, b"x").as_ref(), expected.as_ref());
    }

    #[test]
    fn sign_sets_the_headers_it_signs() {
        let mut h = HeaderMap::new();
        sign(
            &mut h,
            &SigningRequest {
                method: "GET",
                host: "example.amazonaws.com",
                path: "/",
                query: "",
                body: b"",
            },
            &creds(),
            "us-east-1",
            "service",
            example_time(),
        );
        let auth = h["authorization"].to_str().unwrap();
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        ));
        assert_eq!(h["host"], "example.amazonaws.com");
        assert_eq!(h["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            h["x-amz-content-sha256"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signature(&h).len(), 64);
    }

    #[test]
    fn the_agents_signature_is_replaced_and_the_path_is_encoded_once_more() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIADUMMY/x"),
        );
        h.insert("x-amz-security-token", HeaderValue::from_static("dummy"));
        h.insert("x-amz-date", HeaderValue::from_static("19700101T000000Z"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-amz-target", HeaderValue::from_static("  a   b "));
        let mut c = creds();
        c.session_token = Some("FQoGZXIvYXdzEXAMPLE".into());
        sign(
            &mut h,
            &SigningRequest {
                method: "POST",
                host: "bedrock-runtime.eu-central-1.amazonaws.com",
                path: "/model/eu.anthropic.claude-v2%3A1/invoke",
                query: "",
                body: b"{}",
            },
            &c,
            "eu-central-1",
            "bedrock",
            example_time(),
        );
        let auth = h["authorization"].to_str().unwrap();
        assert!(auth.contains("Credential=AKIDEXAMPLE/20150830/eu-central-1/bedrock/aws4_request"));
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-amz-target,"));
        assert!(!auth.contains("DUMMY"));
        assert_eq!(h["x-amz-security-token"], "FQoGZXIvYXdzEXAMPLE");
        assert_eq!(h["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            uri_encode("/model/eu.anthropic.claude-v2%3A1/invoke", false),
            "/model/eu.anthropic.claude-v2%253A1/invoke"
        );
        assert_eq!(
            uri_encode("/model/x:1/invoke", false),
            "/model/x%3A1/invoke"
        );
        assert_eq!(canonical_query("b=2&a=1&a=%20x"), "a=%20x&a=1&b=2");
        assert_eq!(collapse_spaces("  a   b "), "a b");
    }
}
