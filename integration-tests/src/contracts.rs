//! The contracts the proxy tests run with.

/// EU residency; only `POST /v1/chat/completions` (and the test's SSE, slow and echo routes) on
/// api.eu.mistral.ai, with the credential injected from `$IT_MISTRAL_AUTH`.
pub const EU: &str = include_str!("../fixtures/contract-eu.toml");

/// The credential the EU contract injects in the tests.
pub const INJECTED: &str = "Bearer sk-injected-CANARY-7f3a9c";

/// No residency: a passthrough host, a name that resolves to loopback, a plain-http host, an
/// name for DNS tricks (rebind.example), and api.openai.com for POST /v1/*.
pub const OPEN: &str = include_str!("../fixtures/contract-open.toml");
