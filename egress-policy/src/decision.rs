//! The outcome of every network decision, and the facts a decision is made from.

use serde::Serialize;

/// The URL scheme of a request, or of a CONNECT tunnel (always `Https` for a tunnel
/// that will be intercepted or spliced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP: denied unless a rule lists `schemes = ["http"]` explicitly.
    Http,
    /// HTTPS (TLS), the default of every rule.
    Https,
}

/// allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The flow may proceed.
    Allow,
    /// The flow is refused.
    Deny,
}

/// A destination before any request is seen: what CONNECT names, or what a
/// transparent capture learns from SNI.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `Https` for CONNECT tunnels, `Http` for absolute-form plain requests.
    pub scheme: Scheme,
    /// The host as the client wrote it (name or IP literal, any case, maybe a trailing dot,
    /// maybe Unicode). The engine normalises it.
    pub host: &'a str,
    /// The destination port.
    pub port: u16,
}

/// Everything the engine may look at for one HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method, as sent (`POST`, `GET`, ...).
    pub method: &'a str,
    /// `Https` inside an intercepted tunnel, `Http` for a plain proxy request.
    pub scheme: Scheme,
    /// The host the request goes to (the tunnel host; Host/:authority was already checked
    /// to be equal to it by the proxy).
    pub host: &'a str,
    /// The destination port.
    pub port: u16,
    /// The raw request target: path plus optional `?query`, exactly as received.
    pub path_and_query: &'a str,
    /// Request headers, for rules that need them (name lowercase, raw value).
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// The engine's answer for a network flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// allow or deny.
    pub verdict: Verdict,
    /// The rule that decided (`None` when no rule matched: deny by default).
    pub rule: Option<String>,
    /// A human-readable reason, safe to show to a model and to log (never contains a
    /// credential or query value).
    pub reason: String,
    /// The region the data goes to, from the catalog or the rule's attestation; the flow
    /// log's `region` field is its [`Region::field`](crate::Region::field).
    pub region: Option<crate::Region>,
    /// The legal jurisdiction of the provider, from the catalog.
    pub jurisdiction: Option<String>,
    /// The provider the catalog knows the host as (e.g. `Mistral`).
    pub provider: Option<String>,
    /// `true` when the region comes from the rule's `region = "..."` attestation rather
    /// than the built-in catalog.
    pub region_attested: bool,
    /// For CONNECT decisions: `false` when the matching rule says `intercept = false`
    /// (the tunnel is spliced untouched after the SNI check).
    pub intercept: bool,
    /// For an allowed request: what the proxy must read of its body before it may go ahead
    /// (a git push's command list, a GitHub GraphQL document or review, the model an EU
    /// request names in its body), decided then by [`Policy::decide_body`](crate::Policy::decide_body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_check: Option<crate::forge::BodyCheck>,
}

impl Decision {
    /// `true` for [`Verdict::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// The flow log's `region` field for this decision (see [`crate::Region::field`]).
    pub fn region_field(&self) -> Option<&str> {
        self.region.as_ref().map(crate::Region::field)
    }
}
