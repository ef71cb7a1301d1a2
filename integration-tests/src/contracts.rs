//! The contracts the proxy tests run with.

/// EU residency; only `POST /v1/chat/completions` (and the test's SSE, slow and echo routes) on
/// api.eu.mistral.ai, with the credential injected from `$IT_MISTRAL_AUTH`.
pub const EU: &str = r#"
version = 1

[task]
id = "IT-PROXY"
class = "B"
objective = "Exercise the egress proxy"
done = ["true"]
rollback = "nothing to roll back"

[files]
read = ["."]
write = ["."]

[network]
residency = "EU"

[[network.allow]]
name = "mistral-eu"
host = "api.eu.mistral.ai"
methods = ["POST"]
paths = ["^/v1/chat/completions$", "^/v1/sse$", "^/v1/slow-head$", "^/v1/echo-auth$"]
inject = { header = "authorization", env = "IT_MISTRAL_AUTH" }
"#;

/// The credential the EU contract injects in the tests.
pub const INJECTED: &str = "Bearer sk-injected-CANARY-7f3a9c";

/// No residency: a passthrough host, a name that resolves to loopback, a plain-http host, an
/// name for DNS tricks (rebind.example), and api.openai.com for POST /v1/*.
pub const OPEN: &str = r#"
version = 1

[task]
id = "IT-PROXY-OPEN"
class = "B"
objective = "Exercise the egress proxy without residency"
done = ["true"]
rollback = "nothing to roll back"

[files]
read = ["."]
write = ["."]

[[network.allow]]
name = "pinned"
host = "pinned.example"
intercept = false
region = "eu-west-1"

[[network.allow]]
name = "loopback-name"
host = "localhost"
region = "eu-west-1"

[[network.allow]]
name = "plain"
host = "plain.example"
port = 80
schemes = ["http"]
region = "eu-west-1"

[[network.allow]]
name = "openai"
host = "api.openai.com"
methods = ["POST"]
paths = ["^/v1/.*$"]

[[network.allow]]
name = "rebind"
host = "rebind.example"
region = "eu-west-1"
"#;
