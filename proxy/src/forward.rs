//! One HTTP request: checks, the engine's decision, the log, then streaming it upstream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use egress_policy::host::{normalize_host, Host};
use egress_policy::{Decision, RequestFacts, Scheme, SecretAction};
use http::header::{HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use bytes::Bytes;

use crate::body::{BoxError, CountBody, DrainOnDrop, ProxyBody, ScanBody};
use crate::body_check::{self, Checked};
use crate::flowlog::{Event, FlowRecord, Kind, TlsInfo};
use crate::guard::ViolationSlot;
use crate::headers;
use crate::inject::{injection, read_to_sign, Injection, SignError, MAX_SIGNED_BODY};
use crate::resolve;
use crate::respond;
use crate::scrub::ScrubBody;
use crate::state::{decision_record, refusal_record, FlowEnd, Shared};
use crate::upstream::classify_error;

/// Where the requests of a tunnel (or one plain request) go.
pub(crate) struct FlowTarget {
    pub host: Host,
    pub host_label: String,
    pub port: u16,
    /// Pinned at CONNECT for tunnels; `None` for plain requests (pinned after the decision).
    pub addr: Option<SocketAddr>,
    /// `Some` inside an intercepted tunnel (https), `None` for plain http.
    pub tls: Option<TlsInfo>,
    /// The WebSocket relays started on this connection: the tunnel waits for them before its
    /// own `end` record.
    pub ws_tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl FlowTarget {
    fn scheme(&self) -> Scheme {
        if self.tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        }
    }

    fn default_port(&self) -> u16 {
        if self.tls.is_some() {
            443
        } else {
            80
        }
    }
}

/// Facts about the request, captured before the body is taken.
struct Seen {
    flow: u64,
    method: String,
    path_and_query: String,
    path: String,
    query_keys: Option<Vec<String>>,
}

impl Seen {
    fn of<B>(flow: u64, req: &Request<B>) -> Seen {
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let (path, query_keys) = headers::path_and_query_keys(&path_and_query);
        Seen {
            flow,
            method: req.method().as_str().to_string(),
            path_and_query,
            path,
            query_keys,
        }
    }

    fn fill(&self, mut rec: FlowRecord, target: &FlowTarget) -> FlowRecord {
        rec.method = Some(self.method.clone());
        rec.path = Some(self.path.clone());
        rec.query_keys = self.query_keys.clone();
        rec.addr = target.addr.map(|a| a.ip().to_string());
        rec.tls = target.tls.clone();
        rec
    }
}

/// Logs a refusal of the proxy's own (not the engine's) and builds the client's answer.
fn refuse(
    shared: &Shared,
    target: &FlowTarget,
    seen: &Seen,
    status: u16,
    error: &str,
    reason: &str,
) -> Response<ProxyBody> {
    let rec = refusal_record(
        Kind::Request,
        seen.flow,
        Some(&target.host_label),
        Some(target.port),
        Some(status),
        reason,
    );
    let _ = shared.log_decision(seen.fill(rec, target));
    respond::fault(status, error, reason, Some(&target.host_label))
}

/// Logs an engine denial and answers 403 with the documented JSON.
fn deny(shared: &Shared, target: &FlowTarget, seen: &Seen, d: &Decision) -> Response<ProxyBody> {
    let mut rec = decision_record(Kind::Request, seen.flow, &target.host_label, target.port, d);
    rec.decision = Some(egress_policy::Verdict::Deny);
    rec.status = Some(403);
    let _ = shared.log_decision(seen.fill(rec, target));
    respond::denied(d.rule.as_deref(), &d.reason, &target.host_label, false)
}

/// Checks that `authority` names the target host and port.
fn same_authority(target: &FlowTarget, authority: &str) -> bool {
    let Ok(a) = authority.parse::<Authority>() else {
        return false;
    };
    let port = a.port_u16().unwrap_or(target.default_port());
    matches!(normalize_host(a.host()), Ok(h) if h == target.host) && port == target.port
}

/// The Host / `:authority` check: every authority the request carries must be the target's.
fn authority_problem<B>(target: &FlowTarget, req: &Request<B>) -> Option<String> {
    let mut seen_any = false;
    if let Some(a) = req.uri().authority() {
        seen_any = true;
        if !same_authority(target, a.as_str()) {
            return Some(format!(
                "the request is for `{}` but the tunnel is for {}:{}",
                a.as_str().escape_default(),
                target.host_label,
                target.port
            ));
        }
    }
    let hosts: Vec<&HeaderValue> = req.headers().get_all(HOST).iter().collect();
    if hosts.len() > 1 {
        return Some("more than one Host header".into());
    }
    if let Some(h) = hosts.first() {
        seen_any = true;
        let ok = h
            .to_str()
            .map(|s| same_authority(target, s))
            .unwrap_or(false);
        if !ok {
            return Some(format!(
                "Host `{}` does not match the tunnel host {}:{}",
                String::from_utf8_lossy(h.as_bytes()).escape_default(),
                target.host_label,
                target.port
            ));
        }
    }
    if !seen_any {
        return Some("the request names no host (no Host header or :authority)".into());
    }
    None
}

/// Header shapes that HTTP/2 and the guard do not already refuse.
fn header_problem<B>(req: &Request<B>) -> Option<&'static str> {
    let h = req.headers();
    if h.get_all(CONTENT_LENGTH).iter().count() > 1 {
        return Some("duplicate Content-Length headers (request smuggling shape)");
    }
    if req.version() == Version::HTTP_2 && h.contains_key(TRANSFER_ENCODING) {
        return Some("Transfer-Encoding in an HTTP/2 request (request smuggling shape)");
    }
    if h.contains_key(CONTENT_LENGTH) && h.contains_key(TRANSFER_ENCODING) {
        return Some("Content-Length together with Transfer-Encoding (request smuggling shape)");
    }
    if headers::has_invalid_bytes(h) {
        return Some("invalid bytes in a header value");
    }
    None
}

/// A request inside an intercepted tunnel.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    target: Arc<FlowTarget>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let websocket = crate::websocket::is_upgrade(&req);
    close_unless_switched(websocket, handle_request(shared, target, req).await)
}

/// After a WebSocket upgrade request the request framing is passed through
/// ([`crate::guard`]), so a connection whose upgrade was refused ends with the answer.
fn close_unless_switched(websocket: bool, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    if websocket && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn handle_request(
    shared: Arc<Shared>,
    target: Arc<FlowTarget>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let head = Request::from_parts(parts, ());
    let seen = Seen::of(shared.flow_id(), &head);
    if head.method() == http::Method::CONNECT {
        // HTTP/2 extended CONNECT: a tunnel inside the tunnel would escape request decisions.
        let reason = "CONNECT inside a tunnel is not allowed";
        let resp = refuse(&shared, &target, &seen, 405, "method_not_allowed", reason);
        crate::body::drain(body).await;
        return resp;
    }
    if let Some(problem) = authority_problem(&target, &head) {
        let resp = refuse(
            &shared,
            &target,
            &seen,
            421,
            "misdirected_request",
            &problem,
        );
        crate::body::drain(body).await;
        return resp;
    }
    decide_and_forward(shared, target, seen, head, body).await
}

/// A plain `http://` proxy request (absolute form on the proxy listener).
pub(crate) async fn plain(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ProxyBody> {
    let websocket = crate::websocket::is_upgrade(&req);
    close_unless_switched(websocket, plain_request(shared, req).await)
}

async fn plain_request(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ProxyBody> {
    let flow = shared.flow_id();
    let (parts, body) = req.into_parts();
    let head = Request::from_parts(parts, ());
    let authority = head.uri().authority().cloned();
    let host = authority.as_ref().map(|a| normalize_host(a.host()));
    let (host, authority) = match (host, authority) {
        (Some(Ok(h)), Some(a)) => (h, a),
        _ => {
            let reason = "the request URL has no valid host";
            let _ = shared.log_decision(refusal_record(
                Kind::Request,
                flow,
                None,
                None,
                Some(400),
                reason,
            ));
            crate::body::drain(body).await;
            return respond::fault(400, "bad_request", reason, None);
        }
    };
    let target = Arc::new(FlowTarget {
        host_label: host.to_string(),
        host,
        port: authority.port_u16().unwrap_or(80),
        addr: None,
        tls: None,
        ws_tasks: Default::default(),
    });
    let seen = Seen::of(flow, &head);
    if let Some(problem) = authority_problem(&target, &head) {
        let resp = refuse(
            &shared,
            &target,
            &seen,
            421,
            "misdirected_request",
            &problem,
        );
        crate::body::drain(body).await;
        return resp;
    }
    decide_and_forward(shared, target, seen, head, body).await
}

/// Decides and forwards; whatever is refused before the body is used gets its body drained.
async fn decide_and_forward(
    shared: Arc<Shared>,
    target: Arc<FlowTarget>,
    seen: Seen,
    head: Request<()>,
    body: Incoming,
) -> Response<ProxyBody> {
    if !shared.rate.take() {
        let reason = format!(
            "more than {} requests per second through the proxy; retry later",
            shared.limits.requests_per_second
        );
        let mut resp = refuse(&shared, &target, &seen, 429, "rate_limited", &reason);
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        crate::body::drain(body).await;
        return resp;
    }
    let mut body = Some(body);
    let resp = decide_and_forward_inner(shared, target, seen, head, &mut body).await;
    if let Some(unused) = body {
        crate::body::drain(unused).await;
    }
    resp
}

async fn decide_and_forward_inner(
    shared: Arc<Shared>,
    target: Arc<FlowTarget>,
    seen: Seen,
    req: Request<()>,
    body_slot: &mut Option<Incoming>,
) -> Response<ProxyBody> {
    if let Some(problem) = header_problem(&req) {
        return refuse(&shared, &target, &seen, 400, "bad_request", problem);
    }
    let facts_headers = headers::header_facts(req.headers());
    let host_str = target.host_label.clone();
    let decision = shared.policy.decide_request(&RequestFacts {
        method: &seen.method,
        scheme: target.scheme(),
        host: &host_str,
        port: target.port,
        path_and_query: &seen.path_and_query,
        headers: &facts_headers,
    });
    drop(facts_headers);
    if !decision.is_allowed() {
        return deny(&shared, &target, &seen, &decision);
    }
    // Secrets in headers other than the credential headers (which carry the API's own key):
    // a header is as good an exfiltration channel as the URL.
    let block = shared.policy.contract().secrets.action == SecretAction::Block;
    let header_secret = headers::secret_in_headers(req.headers());
    if let (Some((name, kind)), true) = (&header_secret, block) {
        let mut d = decision.clone();
        d.reason = format!(
            "the request header `{name}` carries a secret ({kind}); [secrets] action = \"block\""
        );
        return deny(&shared, &target, &seen, &d);
    }
    // Bodies egress-policy must see first (a git push's ref updates, a GitHub GraphQL
    // document or review): read and decided before the flow is logged as allowed, and
    // before anything is sent.
    let mut prefix = Bytes::new();
    let mut ref_verdicts = None;
    if let Some(check) = decision.body_check.clone() {
        let refused = |why: String| {
            let mut d = decision.clone();
            d.reason = why;
            d
        };
        if let Some(why) = body_check::encoding_problem(req.headers()) {
            return deny(&shared, &target, &seen, &refused(why));
        }
        let Some(body) = body_slot.as_mut() else {
            return respond::fault(500, "internal", "the request body was already used", None);
        };
        match body_check::read_and_decide(&shared.policy, &check, req.headers(), body).await {
            Checked::Go { prefix: read } => prefix = read,
            Checked::Deny(why) => return deny(&shared, &target, &seen, &refused(why)),
            Checked::Push {
                head,
                verdicts,
                prefix: read,
            } => {
                if verdicts.iter().all(|v| v.allowed) {
                    prefix = read;
                    ref_verdicts = Some(verdicts);
                } else {
                    if let Some(rest) = body_slot.take() {
                        crate::body::drain_up_to(rest, REFUSED_PUSH_DRAIN, REFUSED_PUSH_WAIT).await;
                    }
                    return refuse_push(&shared, &target, &seen, &decision, &head, &verdicts);
                }
            }
        }
    }
    let rule = decision.rule.as_deref().and_then(|r| shared.policy.rule(r));
    let inject = rule.and_then(|r| r.inject.clone());
    let needles = inject
        .as_ref()
        .and_then(|i| shared.needles.get(&i.credential_key()).cloned());
    // Credential injection: only into TLS requests of the rule it belongs to.
    let injected = match (&inject, target.tls.is_some()) {
        (None, _) => None,
        (Some(_), false) => {
            return refuse(
                &shared,
                &target,
                &seen,
                403,
                "egress_denied",
                "a credential is never injected over plain http",
            );
        }
        (Some(i), true) => match injection(&shared, i, &target) {
            Ok(injection) => Some(injection),
            Err(why) => {
                let reason = format!(
                    "rule `{}` {why}",
                    decision.rule.as_deref().unwrap_or_default()
                );
                return refuse(
                    &shared,
                    &target,
                    &seen,
                    502,
                    "credential_unavailable",
                    &reason,
                );
            }
        },
    };
    // Plain requests are pinned now: after the decision, before the log.
    let addr = match target.addr {
        Some(a) => a,
        None => match resolve::pin(&shared, &target.host, target.port).await {
            Ok(a) => a,
            Err(r) => {
                let mut rec = refusal_record(
                    Kind::Request,
                    seen.flow,
                    Some(&target.host_label),
                    Some(target.port),
                    Some(r.status),
                    &r.reason,
                );
                rec.rule = r.rule.clone();
                let _ = shared.log_decision(seen.fill(rec, &target));
                return if r.status == 403 {
                    respond::denied(r.rule.as_deref(), &r.reason, &target.host_label, false)
                } else {
                    respond::fault(
                        r.status,
                        "upstream_unreachable",
                        &r.reason,
                        Some(&target.host_label),
                    )
                };
            }
        },
    };
    let mut rec = decision_record(
        Kind::Request,
        seen.flow,
        &target.host_label,
        target.port,
        &decision,
    );
    rec = seen.fill(rec, &target);
    if let Some((name, kind)) = &header_secret {
        rec.reason = Some(format!(
            "{}; the request header `{name}` carries a secret ({kind}), logged because [secrets] action = \"log\"",
            decision.reason
        ));
    }
    rec.addr = Some(addr.ip().to_string());
    // Log before egress: nothing below runs unless the record was written.
    let rec = match shared.log_decision_durable(rec).await {
        Ok(r) => r,
        Err(e) => {
            return respond::fault(
                503,
                "flow_log_unavailable",
                &format!("the flow could not be logged, so it was not sent: {e}"),
                Some(&target.host_label),
            );
        }
    };
    if let Some(verdicts) = &ref_verdicts {
        log_ref_updates(&shared, &target, &seen, &decision, verdicts);
    }
    let start = Instant::now();
    let mut end = FlowEnd::new(shared.clone(), &rec, start);

    let websocket = crate::websocket::is_upgrade(&req);
    let mut req = req;
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, ()) = req.into_parts();
    let Some(body) = body_slot.take() else {
        return respond::fault(500, "internal", "the request body was already used", None);
    };
    headers::strip_hop_by_hop(&mut parts.headers);
    let mut signer = None;
    match injected {
        Some(Injection::Header(name, value)) => {
            headers::strip_credentials(&mut parts.headers, Some(name.as_str()));
            parts.headers.insert(name, value);
        }
        Some(Injection::Sigv4(s)) => {
            headers::strip_credentials(&mut parts.headers, None);
            signer = Some(s);
        }
        Some(Injection::Google(g)) => {
            headers::strip_credentials(&mut parts.headers, None);
            let rule = decision.rule.as_deref().unwrap_or_default();
            match crate::google_oauth::token_for(&shared, &g, rule).await {
                Ok(token) => match HeaderValue::from_str(&format!("Bearer {token}")) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        parts.headers.insert(http::header::AUTHORIZATION, v);
                    }
                    Err(_) => {
                        let reason = "the minted access token is not a valid header value";
                        return fail(&mut end, &target, 502, "credential_unavailable", reason);
                    }
                },
                Err(why) => {
                    let reason = format!("rule `{rule}` needs a Google access token, which could not be minted: {why}");
                    return fail(&mut end, &target, 502, "credential_unavailable", &reason);
                }
            }
        }
        None => {}
    }
    let authority = match &target.host {
        Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        h => h.to_string(),
    };
    let authority = if target.port == target.default_port() {
        authority
    } else {
        format!("{authority}:{}", target.port)
    };
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    parts.uri = match Uri::try_from(format!("{scheme}://{authority}{}", seen.path_and_query)) {
        Ok(u) => u,
        Err(_) => {
            return fail(
                &mut end,
                &target,
                400,
                "bad_request",
                "unusable request target",
            )
        }
    };
    parts.version = Version::HTTP_11;
    if let Some(client_upgrade) = client_upgrade {
        if signer.is_some() {
            let reason =
                "a WebSocket is not signed with AWS SigV4; use HTTP requests for this rule";
            return fail(&mut end, &target, 400, "bad_request", reason);
        }
        drop(body);
        return crate::websocket::forward(
            shared.clone(),
            target.clone(),
            addr,
            parts,
            client_upgrade,
            end,
            needles,
            block,
        )
        .await;
    }
    let body = ScanBody::scanning(
        DrainOnDrop::with_prefix(body, prefix),
        end.bytes_out.clone(),
        end.fault.clone(),
        block,
    )
    .boxed();
    // SigV4 signs the body's hash, so the (bounded) body is read, scanned, then signed as it
    // will be forwarded.
    let body = match signer {
        None => body,
        Some(signer) => match read_to_sign(body).await {
            Ok(bytes) => {
                signer.sign(&mut parts, &authority, &bytes);
                http_body_util::Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed()
            }
            Err(SignError::TooLarge) => {
                let reason = format!(
                    "a request body signed with AWS SigV4 is read whole before it is signed, and this one is over {} MiB",
                    MAX_SIGNED_BODY >> 20
                );
                return fail(&mut end, &target, 413, "body_too_large", &reason);
            }
            Err(SignError::Body) => {
                if let Some(denied) = secret_denial(&mut end, block, &decision, &target) {
                    return denied;
                }
                return fail(
                    &mut end,
                    &target,
                    400,
                    "bad_request",
                    "the request body ended early",
                );
            }
        },
    };
    let upstream_req = Request::from_parts(parts, body);
    let tls = target.tls.as_ref().map(|_| shared.upstream_tls.clone());
    let client = shared.pools.client(
        &target.host_label,
        target.port,
        addr,
        tls,
        shared.limits.upstream_connect_timeout,
    );
    crate::workers::stay_awake();
    let sent = tokio::time::timeout(
        shared.limits.upstream_response_timeout,
        client.request(upstream_req),
    )
    .await;
    match sent {
        Err(_) => {
            let reason = format!(
                "upstream response timeout after {}s",
                shared.limits.upstream_response_timeout.as_secs()
            );
            fail(&mut end, &target, 504, "upstream_timeout", &reason)
        }
        Ok(Err(e)) => {
            if let Some(denied) = secret_denial(&mut end, block, &decision, &target) {
                return denied;
            }
            let (status, reason) = classify_error(&e);
            let error = if status == 504 {
                "upstream_timeout"
            } else {
                "upstream_failed"
            };
            fail(&mut end, &target, status, error, &reason)
        }
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            headers::strip_response(&mut parts.headers);
            parts.version = Version::HTTP_11;
            end.template.status = Some(parts.status.as_u16());
            let bytes_in = end.bytes_in.clone();
            // The injected credential never flows back to the agent.
            let body: ProxyBody = match needles {
                Some(n) => {
                    n.scrub_headers(&mut parts.headers);
                    ScrubBody::scrubbing(body, n).boxed()
                }
                None => body.map_err(BoxError::from).boxed(),
            };
            let body = CountBody::new(body, bytes_in, end).boxed();
            Response::from_parts(parts, body)
        }
    }
}

/// The most of a refused push's pack that is read (and discarded) before the answer: git
/// sends the whole request before it reads the response.
const REFUSED_PUSH_DRAIN: u64 = 256 * 1024 * 1024;
/// How long a refused push's pack is read at most.
const REFUSED_PUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One `ref_update` record per ref of a push, after its decision record.
fn log_ref_updates(
    shared: &Shared,
    target: &FlowTarget,
    seen: &Seen,
    decision: &Decision,
    verdicts: &[egress_policy::git::RefVerdict],
) {
    for v in verdicts {
        let mut rec = FlowRecord::new(Event::RefUpdate, Kind::Request);
        rec.flow = Some(seen.flow);
        rec.decision = Some(if v.allowed {
            egress_policy::Verdict::Allow
        } else {
            egress_policy::Verdict::Deny
        });
        rec.rule = decision.rule.clone();
        rec.reason = Some(v.why.clone());
        rec.host = Some(target.host_label.clone());
        rec.port = Some(target.port);
        rec.detail = Some(serde_json::json!({
            "ref": v.update.refname,
            "old": v.update.old,
            "new": v.update.new,
            "create": v.update.is_create(),
            "delete": v.update.is_delete(),
        }));
        let _ = shared.log_decision(seen.fill(rec, target));
    }
}

/// A push with a refused ref: refused whole, logged (the push, then each ref), answered with
/// the `report-status` git prints (or a 403 for a client that asked for no report).
fn refuse_push(
    shared: &Shared,
    target: &FlowTarget,
    seen: &Seen,
    decision: &Decision,
    head: &egress_policy::git::PushHead,
    verdicts: &[egress_policy::git::RefVerdict],
) -> Response<ProxyBody> {
    let refused: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.allowed)
        .map(|v| format!("{} ({})", v.update.refname, v.why))
        .collect();
    let mut d = decision.clone();
    d.reason = format!("git push refused as a whole: {}", refused.join("; "));
    let wants_report = head.wants_report();
    let mut rec = decision_record(
        Kind::Request,
        seen.flow,
        &target.host_label,
        target.port,
        &d,
    );
    rec.decision = Some(egress_policy::Verdict::Deny);
    rec.status = Some(if wants_report { 200 } else { 403 });
    let _ = shared.log_decision(seen.fill(rec, target));
    log_ref_updates(shared, target, seen, decision, verdicts);
    if wants_report {
        respond::git_refusal(egress_policy::git::refusal_report(head, verdicts))
    } else {
        respond::denied(d.rule.as_deref(), &d.reason, &target.host_label, false)
    }
}

/// Logs a request the HTTP/1 guard refused (it already answered the client).
pub(crate) fn log_violation(shared: &Shared, slot: &ViolationSlot, target: Option<&FlowTarget>) {
    let Some(v) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let flow = shared.flow_id();
    let mut rec = refusal_record(
        Kind::Request,
        flow,
        target.map(|t| t.host_label.as_str()),
        target.map(|t| t.port),
        Some(v.status),
        &v.reason,
    );
    rec.method = v.method;
    rec.path = v.path;
    if let Some(t) = target {
        rec.addr = t.addr.map(|a| a.ip().to_string());
        rec.tls = t.tls.clone();
    }
    let _ = shared.log_decision(rec);
}

/// Ends an allowed flow that failed before its response: the `end` record gets `status` and
/// `reason`, the client the same as a JSON fault.
fn fail(
    end: &mut FlowEnd,
    target: &FlowTarget,
    status: u16,
    error: &str,
    reason: &str,
) -> Response<ProxyBody> {
    end.set_outcome(status, Some(reason));
    respond::fault(status, error, reason, Some(&target.host_label))
}

/// The 403 for a request body the secret scan cut (under `action = "block"`), if it did.
fn secret_denial(
    end: &mut FlowEnd,
    block: bool,
    decision: &Decision,
    target: &FlowTarget,
) -> Option<Response<ProxyBody>> {
    let finding = end
        .fault
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()?;
    if !block {
        return None;
    }
    end.set_outcome(403, None);
    Some(respond::denied(
        decision.rule.as_deref(),
        &finding,
        &target.host_label,
        false,
    ))
}
