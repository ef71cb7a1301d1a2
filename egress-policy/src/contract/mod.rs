//! The prompt contract: its model, and the parser that turns TOML into a validated model
//! with `file:line:col` diagnostics for everything that is wrong.
//!
//! - this file: the model, the types a parsed contract is made of;
//! - [`reader`]: the parser state and the typed accessors behind every diagnostic;
//! - `parse`: the document and its sections (`[task]`, `[files]`, `[env]`, `[log]`, `[secrets]`);
//! - `network`: `[network]` and its rules, with the residency check against the catalog;
//! - `checks`: validation rules for single values.

mod checks;
mod git_section;
pub mod host_section;
mod network;
mod parse;
pub(crate) mod reader;

pub(crate) use reader::Parser;

use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Serialize, Serializer};

use crate::catalog::Placement;
use crate::decision::Scheme;
use crate::files::PathGrant;
use crate::host::HostPattern;

/// Where relative paths in a contract resolve: both absolute, given by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathContext {
    /// The workspace the agent works in (relative `[files]` entries resolve here).
    pub workspace: PathBuf,
    /// `$HOME` (`~` resolves here).
    pub home: PathBuf,
}

/// A scope class: policy, not a label (see `docs/contract.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Class {
    /// Docs, tests, formatting: low risk.
    A,
    /// Non-critical feature code, with mandatory human review.
    B,
    /// Security-critical or infrastructure code: restricted.
    C,
}

impl Class {
    /// One line describing the class.
    pub fn describe(&self) -> &'static str {
        match self {
            Class::A => "docs, tests, formatting (low risk)",
            Class::B => "non-critical feature code, mandatory human review",
            Class::C => "security-critical or infrastructure code (restricted)",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::A => "A",
            Class::B => "B",
            Class::C => "C",
        })
    }
}

/// The time limit of one `done` command when the contract sets no `done_timeout`: 10 minutes.
pub const DEFAULT_DONE_TIMEOUT_SECS: u64 = 600;

/// `[task]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    /// Task id (`PILOT-42`).
    pub id: String,
    /// Scope class.
    pub class: Class,
    /// What the agent is asked to do.
    pub objective: String,
    /// Definition of done: commands that must pass.
    pub done: Vec<String>,
    /// The time limit of each `done` command, in seconds (`done_timeout`, default
    /// [`DEFAULT_DONE_TIMEOUT_SECS`]).
    pub done_timeout_secs: u64,
    /// What to do when the checks fail.
    pub rollback: Option<String>,
    /// Who approved the task (required for class C).
    pub approved_by: Option<String>,
    /// The ticket that tracks the task (required for class C).
    pub ticket: Option<String>,
}

/// `[files]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Files {
    /// Readable trees.
    pub read: Vec<PathGrant>,
    /// Writable trees (write implies read).
    pub write: Vec<PathGrant>,
    /// Hidden trees; deny wins over read and write at any depth.
    pub deny: Vec<PathGrant>,
    /// Protected paths the contract lets the agent write after all (exact paths, each a
    /// warning): not read-only, not moved aside.
    pub unprotect: Vec<PathGrant>,
}

/// Data-residency requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Residency {
    /// Every endpoint must process data inside the EU.
    #[serde(rename = "EU")]
    Eu,
}

/// How an allowed connection is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP(S) requests, decided one by one.
    Http,
    /// A raw TCP stream (e.g. ssh on 22), spliced after the host:port check.
    Tcp,
}

/// Credential injection: how the proxy puts the supervisor's credential on the requests a rule
/// allows. The agent never holds it; whatever the client sent in its place is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", rename_all = "kebab-case")]
pub enum Inject {
    /// `header` is set to the raw value of the supervisor's variable `env`
    /// (`x-api-key` for Anthropic, `x-goog-api-key` for Gemini).
    Header {
        /// The header (lowercase), e.g. `x-api-key`.
        header: String,
        /// The supervisor's environment variable holding the credential.
        env: String,
    },
    /// `Authorization: Bearer <value of env>` (OpenAI, Mistral, OpenAI-compatible gateways).
    Bearer {
        /// The supervisor's environment variable holding the token.
        env: String,
    },
    /// Azure OpenAI's `api-key: <value of env>`.
    AzureApiKey {
        /// The supervisor's environment variable holding the key.
        env: String,
    },
    /// AWS Signature Version 4: the proxy strips the agent's signature and signs the request
    /// it forwards (method, path, query, headers and the SHA-256 of the body) with the
    /// supervisor's AWS credentials.
    AwsSigv4 {
        /// The signing name of the service (`bedrock` for Bedrock runtime).
        service: String,
        /// The signing region; `None` takes it from the host (`bedrock-runtime.REGION...`).
        region: Option<String>,
        /// A named profile of the supervisor's `~/.aws/credentials`; `None` takes
        /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, then `AWS_PROFILE`
        /// (or `default`) from the shared credentials file.
        profile: Option<String>,
    },
    /// Google OAuth access tokens (Vertex AI): the supervisor mints them from a service-account
    /// key or application default credentials and sends `Authorization: Bearer <token>`.
    GoogleOauth {
        /// The key file; `None` takes `GOOGLE_APPLICATION_CREDENTIALS`, then
        /// `~/.config/gcloud/application_default_credentials.json`.
        credentials: Option<PathBuf>,
        /// The OAuth scopes (default `https://www.googleapis.com/auth/cloud-platform`).
        scopes: Vec<String>,
    },
}

impl Inject {
    /// The header this form sets (`authorization` for bearer and SigV4).
    pub fn header(&self) -> &str {
        match self {
            Inject::Header { header, .. } => header,
            Inject::Bearer { .. } | Inject::AwsSigv4 { .. } | Inject::GoogleOauth { .. } => {
                "authorization"
            }
            Inject::AzureApiKey { .. } => "api-key",
        }
    }

    /// The supervisor's variable holding a static credential (`None` for SigV4, whose
    /// credentials the supervisor loads as a set).
    pub fn env(&self) -> Option<&str> {
        match self {
            Inject::Header { env, .. } | Inject::Bearer { env } | Inject::AzureApiKey { env } => {
                Some(env)
            }
            Inject::AwsSigv4 { .. } | Inject::GoogleOauth { .. } => None,
        }
    }

    /// The header value for a static credential (or a minted token) `value`.
    pub fn header_value(&self, value: &str) -> String {
        match self {
            Inject::Bearer { .. } | Inject::GoogleOauth { .. } => format!("Bearer {value}"),
            _ => value.to_string(),
        }
    }

    /// The SigV4 signing region for a request to `host`: the form's `region`, else the region
    /// the host names (`bedrock-runtime.eu-central-1.amazonaws.com`). `None` for other forms.
    pub fn signing_region(&self, host: &str) -> Option<String> {
        match self {
            Inject::AwsSigv4 { region, .. } => {
                region.clone().or_else(|| checks::aws_region_of_host(host))
            }
            _ => None,
        }
    }

    /// The key the supervisor files this rule's credential under, and the proxy looks it up
    /// by: the variable's name, or `aws-sigv4:PROFILE` (`aws-sigv4:` for the environment).
    pub fn credential_key(&self) -> String {
        match self {
            Inject::AwsSigv4 { profile, .. } => {
                format!("aws-sigv4:{}", profile.as_deref().unwrap_or(""))
            }
            Inject::GoogleOauth {
                credentials,
                scopes,
            } => format!(
                "google-oauth:{}:{}",
                credentials
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
                scopes.join(" ")
            ),
            other => other.env().unwrap_or_default().to_string(),
        }
    }
}

/// A compiled `paths` regex, anchored whole.
#[derive(Debug, Clone)]
pub struct PathPattern {
    /// As written in the contract.
    pub source: String,
    /// `^(?:source)$`.
    pub regex: Regex,
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PathPattern {}

impl Serialize for PathPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// One `[[network.allow]]` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Unique name, reported in every decision it makes.
    pub name: String,
    /// Which hosts.
    pub host: HostPattern,
    /// Destination port (default 443).
    pub port: u16,
    /// Allowed schemes (default `https` only).
    pub schemes: Vec<Scheme>,
    /// Allowed methods (`None` = any).
    pub methods: Option<Vec<String>>,
    /// Allowed paths (empty = any path), anchored regexes.
    pub paths: Vec<PathPattern>,
    /// `false`: TLS passthrough after the SNI check (no request inspection).
    pub intercept: bool,
    /// Region attestation for hosts the catalog cannot place.
    pub region: Option<String>,
    /// `http` (default) or `tcp`.
    pub protocol: Protocol,
    /// Credential injection.
    pub inject: Option<Inject>,
    /// Where the catalog places the host (exact hosts only).
    pub placement: Option<Placement>,
    /// The host is a GitHub Enterprise Server API (`/api/v3`, `/api/graphql`): the GitHub
    /// controls apply as on `api.github.com` (`github_api = true`).
    pub github_api: bool,
    /// The host is a self-managed GitLab: the GitLab controls apply under `/api/v4` and
    /// `/api/graphql` as on `gitlab.com` (`gitlab_api = true`).
    pub gitlab_api: bool,
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Network {
    /// `Some(Eu)` under `residency = "EU"`.
    pub residency: Option<Residency>,
    /// The allow rules, in contract order. Everything else is denied.
    pub allow: Vec<Rule>,
}

/// `[env]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Env {
    /// Extra host environment variables passed into the sandbox.
    pub pass: Vec<String>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Log {
    /// The flow log file, absolute (relative paths resolve in the workspace, `~` in `$HOME`).
    pub path: Option<PathBuf>,
    /// OTLP/HTTP collector base URL (`http://HOST:4318`).
    pub otlp: Option<String>,
    /// When records reach stable storage (`sync`).
    pub sync: LogSync,
}

/// When the flow log's records reach stable storage (`[log] sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogSync {
    /// Every allowed flow's decision record is on disk (`fdatasync`, group-committed across
    /// concurrent flows) before the flow goes ahead (default).
    #[default]
    Flow,
    /// Records are handed to the kernel before their flow and synced at the session's end: a
    /// host crash can lose the last ones (a killed supervisor cannot).
    Session,
}

/// What happens when outbound data carries a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecretAction {
    /// Refuse the request (default).
    #[default]
    Block,
    /// Allow it and record the finding.
    Log,
}

/// `[secrets]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Secrets {
    /// `block` (default) or `log`.
    pub action: SecretAction,
}

/// A whole, validated contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    /// Always 1.
    pub version: u32,
    /// `[task]`.
    pub task: Task,
    /// `[files]`.
    pub files: Files,
    /// `[network]`.
    pub network: Network,
    /// `[env]`.
    pub env: Env,
    /// `[log]`.
    pub log: Log,
    /// `[secrets]`.
    pub secrets: Secrets,
    /// `[git]`.
    pub git: Git,
    /// `[sockets]`.
    pub sockets: Sockets,
    /// `[limits]`.
    pub limits: Limits,
    /// `[agent]`: the preset the supervisor applies, if any.
    pub agent: Option<AgentSection>,
}

/// `[agent]`: which coding-agent CLI runs, so that the supervisor applies its preset
/// ([`crate::agents`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentSection {
    /// The preset (`claude`, `codex`, `gemini`, `aider`, `opencode`).
    pub name: String,
    /// The provider (default: the agent's first).
    pub provider: crate::agents::Provider,
}

/// `[sockets]`: unix sockets. By default the agent can reach no host socket at all (pathname
/// sockets in the workspace, a forwarded `SSH_AUTH_SOCK`, a desktop bus) and its programs cannot
/// create unix sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Sockets {
    /// Host sockets the agent may connect to (absolute paths); each is a flow in the log.
    pub connect: Vec<PathBuf>,
    /// The agent's programs may create unix sockets among themselves (Python's forkserver,
    /// language servers); default `false`.
    pub internal: bool,
}

impl Sockets {
    /// The agent needs `socket(AF_UNIX)` at all.
    pub fn unix_sockets_needed(&self) -> bool {
        self.internal || !self.connect.is_empty()
    }
}

/// A memory limit: bytes, or a share of the machine's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryLimit {
    /// This many bytes.
    Bytes(u64),
    /// This percentage (1 to 100) of the machine's memory.
    Percent(u8),
}

impl MemoryLimit {
    /// The limit in bytes on a machine with `total` bytes of memory.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MemoryLimit::Bytes(b) => b,
            MemoryLimit::Percent(p) => (u128::from(total) * u128::from(p) / 100) as u64,
        }
    }
}

/// `[limits]`: what the session may take from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Processes and threads in the sandbox at once (default 4096).
    pub pids: u64,
    /// Memory (default half of the machine's).
    pub memory: MemoryLimit,
    /// CPU priority of the agent's processes, 0 to 19 (default 0: the invoker's).
    pub nice: u8,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            pids: 4096,
            memory: MemoryLimit::Percent(50),
            nice: 0,
        }
    }
}

/// `[git]`: what the agent may do with git over smart HTTP, whatever rule allowed the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Git {
    /// The refs the agent may push to (patterns, `*` matches any run of characters); default
    /// [`crate::git::DEFAULT_PUSH_REFS`]; empty: no push at all.
    pub push: Vec<String>,
    /// Fetch (`git-upload-pack`) is allowed where a rule allows the host (default `true`).
    pub fetch: bool,
    /// A `protocol = "tcp"` rule to port 22 (SSH git, pushes unchecked) is accepted, with a
    /// warning (default `false`: refused, use HTTPS).
    pub unchecked_ssh: bool,
}

impl Default for Git {
    fn default() -> Git {
        Git {
            push: crate::git::DEFAULT_PUSH_REFS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            fetch: true,
            unchecked_ssh: false,
        }
    }
}
