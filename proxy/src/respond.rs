//! The proxy's own responses: JSON bodies a model can read.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::body::ProxyBody;

/// A JSON response with `status` and `body`; with `close` (HTTP/1 only: the header is
/// forbidden in HTTP/2) the connection is closed after it.
pub fn json(status: u16, body: serde_json::Value, close: bool) -> Response<ProxyBody> {
    let bytes = Bytes::from(body.to_string());
    let mut resp = Response::new(Full::new(bytes).map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    if close {
        headers.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// 403 for a policy denial: `{"error":"egress_denied","rule":...,"reason":...,"host":...}`.
pub fn denied(rule: Option<&str>, reason: &str, host: &str, close: bool) -> Response<ProxyBody> {
    json(
        403,
        serde_json::json!({
            "error": "egress_denied",
            "rule": rule,
            "reason": reason,
            "host": host,
        }),
        close,
    )
}

/// A refused git push, answered as `git-receive-pack` answers: 200 with the
/// `report-status` stream (`egress_policy::git::refusal_report`), which git prints.
pub fn git_refusal(report: Vec<u8>) -> Response<ProxyBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(report))
            .map_err(|never| match never {})
            .boxed(),
    );
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-git-receive-pack-result"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    resp
}

/// A non-policy refusal or fault (400, 421, 502, 503, 504) with a machine-readable `error`.
/// It never sets `Connection` (forbidden in HTTP/2); HTTP/1 connections stay usable.
pub fn fault(status: u16, error: &str, reason: &str, host: Option<&str>) -> Response<ProxyBody> {
    json(
        status,
        serde_json::json!({
            "error": error,
            "reason": reason,
            "host": host,
        }),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn denial_body_is_the_documented_json() {
        let resp = denied(
            Some("mistral"),
            "GET is not allowed",
            "api.eu.mistral.ai",
            false,
        );
        assert_eq!(resp.status(), 403);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "egress_denied");
        assert_eq!(v["rule"], "mistral");
        assert_eq!(v["reason"], "GET is not allowed");
        assert_eq!(v["host"], "api.eu.mistral.ai");
    }
}
