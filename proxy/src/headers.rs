//! Header hygiene: hop-by-hop and proxy-internal headers, credential headers, and the
//! query-key extraction that keeps query values out of the log.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) and legacy proxy headers: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Headers that carry an API credential. A rule that injects a credential removes all of these
/// from the client's request first, so the agent cannot smuggle its own key alongside.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
];

/// Prefix of headers that only the proxy may set; stripped in both directions.
const INTERNAL_PREFIX: &str = "x-sandbox-";

/// Removes hop-by-hop headers (including those named by `Connection`) and proxy-internal
/// headers. `te: trailers` survives, as HTTP/2 allows it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let keep_te_trailers = headers
        .get_all(http::header::TE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(INTERNAL_PREFIX))
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
    if keep_te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Response headers that would steer the client around the proxy: dropped.
pub fn strip_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    // Alt-Svc would invite the client to try HTTP/3 over UDP directly.
    headers.remove(http::header::ALT_SVC);
}

/// Removes every credential header the client sent (before the proxy injects its own).
pub fn strip_credentials(headers: &mut HeaderMap, also: Option<&str>) {
    for name in CREDENTIAL_HEADERS {
        headers.remove(*name);
    }
    if let Some(extra) = also {
        if let Ok(name) = HeaderName::from_bytes(extra.as_bytes()) {
            headers.remove(name);
        }
    }
}

/// Splits a request target into the path (no query) and the query's keys (no values).
/// Keys are percent-decoded only for display; an empty query gives `None`.
pub fn path_and_query_keys(path_and_query: &str) -> (String, Option<Vec<String>>) {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let keys = query.filter(|q| !q.is_empty()).map(|q| {
        q.split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split('=').next().unwrap_or_default().to_string())
            .collect()
    });
    (path.to_string(), keys)
}

/// Header names and raw values, for the engine's request facts.
pub fn header_facts(headers: &HeaderMap) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect()
}

/// The first header outside [`CREDENTIAL_HEADERS`] whose value carries a secret, with the
/// secret's kind. Credential headers are exempt: they carry the API's own key.
pub fn secret_in_headers(headers: &HeaderMap) -> Option<(String, &'static str)> {
    headers
        .iter()
        .filter(|(k, _)| !CREDENTIAL_HEADERS.contains(&k.as_str()))
        .find_map(|(k, v)| {
            egress_policy::secrets::scan(v.as_bytes())
                .first()
                .map(|f| (k.as_str().to_string(), f.kind.as_str()))
        })
}

/// Rejects header values with bytes no honest client sends (controls other than tab, DEL).
/// HTTP/1 heads were already checked by the guard; this covers HTTP/2.
pub fn has_invalid_bytes(headers: &HeaderMap) -> bool {
    headers.values().any(|v| {
        v.as_bytes()
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_connection_named_and_internal_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic abc"));
        h.insert("x-sandbox-flow", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("host", HeaderValue::from_static("evil.example"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["content-type", "te"]);
    }

    #[test]
    fn strips_every_client_credential() {
        let mut h = HeaderMap::new();
        for n in CREDENTIAL_HEADERS {
            h.insert(*n, HeaderValue::from_static("v"));
        }
        h.insert("x-custom-key", HeaderValue::from_static("v"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_credentials(&mut h, Some("x-custom-key"));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn finds_secrets_outside_credential_headers_only() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-api-key",
            HeaderValue::from_static("AKIAIOSFODNN7EXAMPLE"),
        );
        h.insert("accept", HeaderValue::from_static("*/*"));
        assert_eq!(secret_in_headers(&h), None);
        h.insert(
            "x-debug",
            HeaderValue::from_static("k=AKIAIOSFODNN7EXAMPLE"),
        );
        assert_eq!(
            secret_in_headers(&h),
            Some(("x-debug".into(), "aws-access-key"))
        );
    }

    #[test]
    fn query_values_never_survive() {
        let (p, k) = path_and_query_keys("/v1/x?key=sk-secret&b&c=1&=zz");
        assert_eq!(p, "/v1/x");
        assert_eq!(k.unwrap(), vec!["key", "b", "c", ""]);
        assert_eq!(path_and_query_keys("/a"), ("/a".into(), None));
        assert_eq!(path_and_query_keys("?"), ("/".into(), None));
    }
}
