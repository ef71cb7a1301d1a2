//! The prompt contract: its model, and the parser that turns TOML into a validated model
//! with `file:line:col` diagnostics for everything that is wrong.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Serialize, Serializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::catalog::{self, Placement};
use crate::decision::Scheme;
use crate::error::{did_you_mean, Diagnostic, Location, Warning};
use crate::files::{self, PathGrant};
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

/// Credential injection: the proxy sets `header` to the value of the supervisor's
/// environment variable `env`, removing whatever the client sent in that header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inject {
    /// The header (lowercase), e.g. `x-api-key`.
    pub header: String,
    /// The supervisor's environment variable holding the credential.
    pub env: String,
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
}

type Span = Range<usize>;

const TOP_KEYS: &[&str] = &[
    "version", "task", "files", "network", "env", "log", "secrets",
];
const TASK_KEYS: &[&str] = &[
    "id",
    "class",
    "objective",
    "done",
    "rollback",
    "approved_by",
    "ticket",
];
const FILES_KEYS: &[&str] = &["read", "write", "deny"];
const NETWORK_KEYS: &[&str] = &["residency", "allow"];
const RULE_KEYS: &[&str] = &[
    "name",
    "host",
    "port",
    "schemes",
    "methods",
    "paths",
    "intercept",
    "region",
    "protocol",
    "inject",
];
const INJECT_KEYS: &[&str] = &["header", "env"];
const ENV_KEYS: &[&str] = &["pass"];
const LOG_KEYS: &[&str] = &["path", "otlp"];
const SECRETS_KEYS: &[&str] = &["action"];

/// Upper bound on the compiled size of one `paths` regex.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) struct Parser<'a> {
    src: &'a str,
    origin: &'a str,
    ctx: &'a PathContext,
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Warning>,
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, origin: &'a str, ctx: &'a PathContext) -> Self {
        Parser {
            src,
            origin,
            ctx,
            diags: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn loc(&self, span: &Span) -> Location {
        Location::of_offset(self.src, span.start)
    }

    fn err(&mut self, span: &Span, key: &str, message: impl Into<String>, hint: Option<String>) {
        let location = self.loc(span);
        self.diags.push(Diagnostic {
            origin: self.origin.to_string(),
            location,
            key: key.to_string(),
            message: message.into(),
            hint,
        });
    }

    fn warn(&mut self, span: Option<&Span>, key: &str, message: impl Into<String>) {
        let location = span.map(|s| self.loc(s));
        self.warnings.push(Warning {
            origin: self.origin.to_string(),
            location,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Report every key of `table` not in `allowed`, with a did-you-mean.
    fn check_keys(&mut self, table: &DeTable<'_>, prefix: &str, allowed: &[&str]) {
        for (k, _) in table.iter() {
            let name: &str = k.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let hint = match did_you_mean(name, allowed) {
                Some(s) => format!(
                    "did you mean `{s}`? valid keys here: {}",
                    allowed.join(", ")
                ),
                None => format!("valid keys here: {}", allowed.join(", ")),
            };
            let where_ = if prefix.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{prefix}]")
            };
            self.err(
                &k.span(),
                &join_key(prefix, name),
                format!("unknown key `{name}` {where_}"),
                Some(hint),
            );
        }
    }

    fn wrong_type(&mut self, v: &Spanned<DeValue<'_>>, key: &str, expected: &str, example: &str) {
        let found = type_name(v.get_ref());
        self.err(
            &v.span(),
            key,
            format!("expected {expected}, found {found}"),
            Some(format!("for example: {example}")),
        );
    }

    fn str_at(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        key: &str,
        example: &str,
    ) -> Option<(String, Span)> {
        let v = table.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            _ => {
                self.wrong_type(v, &join_key(prefix, key), "a string", example);
                None
            }
        }
    }

    fn bool_at(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        key: &str,
        example: &str,
    ) -> Option<(bool, Span)> {
        let v = table.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some((*b, v.span())),
            _ => {
                self.wrong_type(
                    v,
                    &join_key(prefix, key),
                    "a boolean (true or false)",
                    example,
                );
                None
            }
        }
    }

    fn str_list_at(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        key: &str,
        example: &str,
    ) -> Option<(Vec<(String, Span)>, Span)> {
        let v = table.get(key)?;
        let full = join_key(prefix, key);
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(v, &full, "an array of strings", example);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => {
                    self.wrong_type(item, &format!("{full}[{i}]"), "a string", example);
                    ok = false;
                }
            }
        }
        ok.then_some((out, v.span()))
    }

    fn table_at<'t, 'i>(
        &mut self,
        table: &'t DeTable<'i>,
        prefix: &str,
        key: &str,
        example: &str,
    ) -> Option<(&'t DeTable<'i>, Span)> {
        let v = table.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some((t, v.span())),
            _ => {
                self.wrong_type(v, &join_key(prefix, key), "a table", example);
                None
            }
        }
    }

    fn required<T>(
        &mut self,
        value: Option<T>,
        present: bool,
        span: &Span,
        key: &str,
        example: &str,
    ) -> Option<T> {
        if value.is_none() && !present {
            self.err(
                span,
                key,
                format!("missing required key `{key}`"),
                Some(format!("add: {example}")),
            );
        }
        value
    }

    pub(crate) fn parse(mut self) -> (Option<Contract>, Vec<Diagnostic>, Vec<Warning>) {
        let (doc, errors) = DeTable::parse_recoverable(self.src);
        for e in &errors {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_string();
            self.err(
                &span,
                "",
                format!("TOML syntax: {msg}"),
                Some("see https://toml.io for the syntax".into()),
            );
        }
        if !errors.is_empty() {
            return self.finish(None);
        }
        let root = doc.get_ref();
        let doc_span = 0..0;
        self.check_keys(root, "", TOP_KEYS);

        // version
        match root.get("version") {
            None => self.err(
                &doc_span,
                "version",
                "missing required key `version`",
                Some("add `version = 1` as the first line".into()),
            ),
            Some(v) => match v.get_ref() {
                DeValue::Integer(i) if i.as_str() == "1" => {}
                DeValue::Integer(i) => {
                    let s = i.as_str().to_string();
                    self.err(
                        &v.span(),
                        "version",
                        format!("unsupported contract version {s}"),
                        Some("this sandbox understands `version = 1`".into()),
                    );
                }
                _ => self.wrong_type(v, "version", "an integer", "version = 1"),
            },
        }

        let task = self.parse_task(root);
        let files = self.parse_files(root, task.as_ref().map(|t| t.class));
        let env = self.parse_env(root, task.as_ref().map(|t| t.class));
        let network = self.parse_network(root, task.as_ref().map(|t| t.class), &env);
        let log = self.parse_log(root);
        let secrets = self.parse_secrets(root);

        let contract = match (task, files, network, env, log, secrets) {
            (Some(task), Some(files), Some(network), Some(env), Some(log), Some(secrets))
                if self.diags.is_empty() =>
            {
                Some(Contract {
                    version: 1,
                    task,
                    files,
                    network,
                    env,
                    log,
                    secrets,
                })
            }
            _ => None,
        };
        if let Some(c) = &contract {
            if c.files.read.is_empty() && c.files.write.is_empty() {
                self.warn(
                    None,
                    "files",
                    "no file is readable or writable: the agent sees an empty workspace",
                );
            }
            if c.network.allow.is_empty() {
                self.warn(
                    None,
                    "network.allow",
                    "no network rule: every connection is denied",
                );
            }
        }
        self.finish(contract)
    }

    fn finish(
        mut self,
        contract: Option<Contract>,
    ) -> (Option<Contract>, Vec<Diagnostic>, Vec<Warning>) {
        self.diags
            .sort_by_key(|d| (d.location.line, d.location.col));
        let contract = if self.diags.is_empty() {
            contract
        } else {
            None
        };
        (contract, self.diags, self.warnings)
    }

    fn parse_task(&mut self, root: &DeTable<'_>) -> Option<Task> {
        let Some((t, span)) = self.table_at(
            root,
            "",
            "task",
            "a [task] section with `id = \"PILOT-42\"`",
        ) else {
            if root.contains_key("task") {
                return None;
            }
            self.err(
                &(0..0),
                "task",
                "missing required table [task]",
                Some("add [task] with id, class, objective and done".into()),
            );
            return None;
        };
        self.check_keys(t, "task", TASK_KEYS);
        let id = self.str_at(t, "task", "id", "id = \"PILOT-42\"");
        let id = self.required(
            id,
            t.contains_key("id"),
            &span,
            "task.id",
            "id = \"PILOT-42\"",
        );
        let objective = self.str_at(t, "task", "objective", "objective = \"Add retry logic\"");
        let objective = self.required(
            objective,
            t.contains_key("objective"),
            &span,
            "task.objective",
            "objective = \"...\"",
        );
        let class_v = self.str_at(t, "task", "class", "class = \"B\"");
        let class_v = self.required(
            class_v,
            t.contains_key("class"),
            &span,
            "task.class",
            "class = \"A\" | \"B\" | \"C\"",
        );
        let class = class_v.and_then(|(c, cspan)| match c.as_str() {
            "A" => Some(Class::A),
            "B" => Some(Class::B),
            "C" => Some(Class::C),
            other => {
                let up = other.trim().to_ascii_uppercase();
                let hint = if ["A", "B", "C"].contains(&up.as_str()) {
                    format!("write `class = \"{up}\"` (upper case)")
                } else {
                    "valid classes: \"A\" (docs, tests, formatting), \"B\" (feature code), \"C\" (restricted)".to_string()
                };
                self.err(&cspan, "task.class", format!("unknown class `{other}`"), Some(hint));
                None
            }
        });
        let done = self.str_list_at(t, "task", "done", "done = [\"cargo test\"]");
        let rollback = self.str_at(t, "task", "rollback", "rollback = \"git revert ...\"");
        let approved_by = self.str_at(t, "task", "approved_by", "approved_by = \"jane.doe\"");
        let ticket = self.str_at(t, "task", "ticket", "ticket = \"SEC-123\"");
        for (name, v) in [
            ("id", &id),
            ("objective", &objective),
            ("rollback", &rollback),
            ("approved_by", &approved_by),
            ("ticket", &ticket),
        ] {
            if let Some((s, sp)) = v {
                if s.trim().is_empty() {
                    self.err(
                        sp,
                        &format!("task.{name}"),
                        format!("`{name}` is empty"),
                        Some("write a non-empty value or remove the key".into()),
                    );
                }
            }
        }
        let class = class?;
        if class == Class::C {
            if approved_by.is_none() && !t.contains_key("approved_by") {
                self.err(
                    &span,
                    "task.approved_by",
                    "class C requires `approved_by`",
                    Some("add `approved_by = \"<the approver>\"` to [task]".into()),
                );
            }
            if ticket.is_none() && !t.contains_key("ticket") {
                self.err(
                    &span,
                    "task.ticket",
                    "class C requires `ticket`",
                    Some("add `ticket = \"<ticket id>\"` to [task]".into()),
                );
            }
        }
        let done_list: Vec<String> = done
            .as_ref()
            .map(|(d, _)| d.iter().map(|(s, _)| s.clone()).collect())
            .unwrap_or_default();
        if !t.contains_key("done") || done_list.is_empty() {
            if class == Class::C {
                self.err(
                    &span,
                    "task.done",
                    "class C requires a definition of done",
                    Some("add `done = [\"<command that must pass>\"]`".into()),
                );
            } else {
                self.warn(
                    Some(&span),
                    "task.done",
                    "no definition of done: add the commands that must pass",
                );
            }
        }
        if rollback.is_none() && !t.contains_key("rollback") {
            if class == Class::C {
                self.err(
                    &span,
                    "task.rollback",
                    "class C requires rollback instructions",
                    Some("add `rollback = \"...\"`".into()),
                );
            } else {
                self.warn(Some(&span), "task.rollback", "no rollback instructions");
            }
        }
        Some(Task {
            id: id?.0,
            class,
            objective: objective?.0,
            done: done_list,
            rollback: rollback.map(|r| r.0),
            approved_by: approved_by.map(|r| r.0),
            ticket: ticket.map(|r| r.0),
        })
    }

    /// Resolve a `[files]` entry to an absolute path.
    fn resolve_path(&mut self, raw: &str, span: &Span, key: &str) -> Option<PathBuf> {
        let bad = |why: &str| {
            (format!("`{raw}` {why}"), "write a path relative to the workspace (`src`), `~/...` for $HOME, or an absolute path".to_string())
        };
        let problem = if raw.is_empty() {
            Some(bad("is empty"))
        } else if raw.contains('\0') {
            Some(bad("contains NUL"))
        } else if raw.contains('*') || raw.contains('?') || raw.contains('[') {
            Some((
                format!("`{raw}`: wildcards are not supported in [files]"),
                "name the directory instead; entries cover everything below them".to_string(),
            ))
        } else if raw.starts_with('~') && !(raw == "~" || raw.starts_with("~/")) {
            Some(bad("uses `~user`, which is not supported"))
        } else if Path::new(raw)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            Some((
                format!("`{raw}` contains `..`"),
                "write the path without `..` (an absolute path if it lies outside the workspace)"
                    .to_string(),
            ))
        } else {
            None
        };
        if let Some((msg, hint)) = problem {
            self.err(span, key, msg, Some(hint));
            return None;
        }
        let joined = if raw == "~" {
            self.ctx.home.clone()
        } else if let Some(rest) = raw.strip_prefix("~/") {
            // `~//x` is `$HOME/x`, never `/x` (joining an absolute path would replace $HOME)
            self.ctx.home.join(rest.trim_start_matches('/'))
        } else if Path::new(raw).is_absolute() {
            PathBuf::from(raw)
        } else {
            self.ctx.workspace.join(raw)
        };
        files::normalize_lexically(&joined)
    }

    fn parse_grants(&mut self, t: &DeTable<'_>, key: &str) -> Vec<(PathGrant, Span)> {
        let full = format!("files.{key}");
        let example = format!("{key} = [\"src\", \"tests\"]");
        let Some((items, _)) = self.str_list_at(t, "files", key, &example) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, (raw, span)) in items.into_iter().enumerate() {
            if let Some(path) = self.resolve_path(&raw, &span, &format!("{full}[{i}]")) {
                out.push((PathGrant { written: raw, path }, span));
            }
        }
        out
    }

    fn parse_files(&mut self, root: &DeTable<'_>, class: Option<Class>) -> Option<Files> {
        let Some((t, _)) =
            self.table_at(root, "", "files", "a [files] section with `read = [\".\"]`")
        else {
            return if root.contains_key("files") {
                None
            } else {
                Some(Files::default())
            };
        };
        self.check_keys(t, "files", FILES_KEYS);
        let read = self.parse_grants(t, "read");
        let write = self.parse_grants(t, "write");
        let deny = self.parse_grants(t, "deny");
        let home = self.ctx.home.clone();
        let workspace = self.ctx.workspace.clone();
        for (kind, grants) in [("read", &read), ("write", &write)] {
            for (i, (g, span)) in grants.iter().enumerate() {
                let key = format!("files.{kind}[{i}]");
                // (write grants there are refused as system directories below)
                if let Some(alias) = files::proc_alias_for(&g.path).filter(|_| kind == "read") {
                    self.err(
                        span,
                        &key,
                        format!(
                            "`{}` is below `{}`, a link to another place in the file system",
                            g.written,
                            alias.display()
                        ),
                        Some("name the real path instead".into()),
                    );
                    continue;
                }
                if let Some(store) = files::credential_store_for(&g.path, &home) {
                    self.err(span, &key, format!("`{}` is (inside) the credential store `{}`, which is never accessible in any class", g.written, store.display()), Some("remove it; give the agent credentials through `inject` on a network rule instead".into()));
                    continue;
                }
                if kind != "write" {
                    continue;
                }
                if let Some(p) = files::protected_pattern_for(&g.path) {
                    self.err(span, &key, format!("`{}` is protected (`{}`: {}) and never writable in any class", g.written, p.pattern, p.why), Some("remove it; a broader grant such as `write = [\".\"]` is allowed and keeps protected paths read-only".into()));
                    continue;
                }
                let system = if files::is_within(&g.path, &workspace) {
                    // the workspace is the caller's choice, wherever it lies (a CI runner's
                    // /var/lib/jenkins/...), but a grant that *is* or *contains* a system
                    // tree (a workspace of `/`, `/etc` or `/var`) is still refused
                    files::system_dir_inside(&g.path)
                } else {
                    files::system_dir_for(&g.path)
                };
                if let Some(sys) = system {
                    self.err(
                        span,
                        &key,
                        format!(
                            "`{}` is (inside) the system directory `{sys}`, never writable in any class",
                            g.written
                        ),
                        Some("grant write inside the workspace or a scratch directory instead".into()),
                    );
                    continue;
                }
                if let Some(p) = files::protected_home_for(&g.path, &home) {
                    self.err(
                        span,
                        &key,
                        format!(
                            "`{}` is the protected start-up path `{}`, never writable in any class",
                            g.written,
                            p.display()
                        ),
                        Some("remove it".into()),
                    );
                    continue;
                }
                match class {
                    Some(Class::A) | Some(Class::C) if !files::is_within(&g.path, &workspace) => {
                        let c = class.map(|c| c.to_string()).unwrap_or_default();
                        self.err(span, &key, format!("class {c} may write only inside the workspace, and `{}` is outside it", g.written), Some("write a path relative to the workspace".into()));
                    }
                    Some(Class::A) => {
                        let rel = g.path.strip_prefix(&workspace).unwrap_or(&g.path);
                        if !files::looks_like_docs_tests_or_format(rel) {
                            self.err(span, &key, format!("class A may write only docs, tests or formatting config, and `{}` is none of these", g.written), Some("grant write on e.g. `docs`, `tests`, `README.md` or `rustfmt.toml`, or raise the task to class B".into()));
                        }
                    }
                    _ => {}
                }
            }
        }
        let strip = |v: Vec<(PathGrant, Span)>| v.into_iter().map(|(g, _)| g).collect::<Vec<_>>();
        Some(Files {
            read: strip(read),
            write: strip(write),
            deny: strip(deny),
        })
    }

    fn parse_env(&mut self, root: &DeTable<'_>, class: Option<Class>) -> Option<Env> {
        let Some((t, _)) = self.table_at(
            root,
            "",
            "env",
            "an [env] section with `pass = [\"RUST_LOG\"]`",
        ) else {
            return if root.contains_key("env") {
                None
            } else {
                Some(Env::default())
            };
        };
        self.check_keys(t, "env", ENV_KEYS);
        let Some((items, _)) = self.str_list_at(t, "env", "pass", "pass = [\"RUST_LOG\"]") else {
            return if t.contains_key("pass") {
                None
            } else {
                Some(Env::default())
            };
        };
        let mut pass = Vec::new();
        for (i, (name, span)) in items.into_iter().enumerate() {
            let key = format!("env.pass[{i}]");
            if !valid_env_name(&name) {
                self.err(
                    &span,
                    &key,
                    format!("`{name}` is not an environment variable name"),
                    Some("use letters, digits and `_`, not starting with a digit".into()),
                );
                continue;
            }
            if looks_sensitive(&name) {
                if class == Some(Class::C) {
                    self.err(&span, &key, format!("class C may not pass `{name}`, which looks like a credential, into the sandbox"), Some("use `inject` on the network rule that needs it, so the agent never holds it".into()));
                } else {
                    self.warn(Some(&span), &key, format!("`{name}` looks like a credential; the agent will be able to read and leak it (prefer `inject`)"));
                }
            }
            pass.push(name);
        }
        Some(Env { pass })
    }

    fn parse_log(&mut self, root: &DeTable<'_>) -> Option<Log> {
        let Some((t, _)) = self.table_at(
            root,
            "",
            "log",
            "a [log] section with `path = \"flows.jsonl\"`",
        ) else {
            return if root.contains_key("log") {
                None
            } else {
                Some(Log::default())
            };
        };
        self.check_keys(t, "log", LOG_KEYS);
        let mut log = Log::default();
        if let Some((p, span)) = self.str_at(t, "log", "path", "path = \"flows.jsonl\"") {
            if let Some(abs) = self.resolve_path(&p, &span, "log.path") {
                if files::is_within(&abs, &self.ctx.workspace) {
                    self.warn(Some(&span), "log.path", format!("the log file `{}` lies inside the workspace: the sandbox hides it from the agent, but tools run outside the sandbox (and git) will see it", abs.display()));
                }
                log.path = Some(abs);
            }
        }
        if let Some((u, span)) = self.str_at(t, "log", "otlp", "otlp = \"http://127.0.0.1:4318\"") {
            match validate_otlp(&u) {
                Ok(()) => log.otlp = Some(u.trim_end_matches('/').to_string()),
                Err(why) => self.err(
                    &span,
                    "log.otlp",
                    format!("`{u}` is not an OTLP/HTTP endpoint: {why}"),
                    Some("write it as `http://HOST:4318` or `https://HOST:PORT`".into()),
                ),
            }
        }
        Some(log)
    }

    fn parse_secrets(&mut self, root: &DeTable<'_>) -> Option<Secrets> {
        let Some((t, _)) = self.table_at(
            root,
            "",
            "secrets",
            "a [secrets] section with `action = \"block\"`",
        ) else {
            return if root.contains_key("secrets") {
                None
            } else {
                Some(Secrets::default())
            };
        };
        self.check_keys(t, "secrets", SECRETS_KEYS);
        let Some((a, span)) = self.str_at(t, "secrets", "action", "action = \"block\"") else {
            return Some(Secrets::default());
        };
        match a.as_str() {
            "block" => Some(Secrets {
                action: SecretAction::Block,
            }),
            "log" => {
                self.warn(
                    Some(&span),
                    "secrets.action",
                    "secrets found in outbound URLs are logged, not blocked",
                );
                Some(Secrets {
                    action: SecretAction::Log,
                })
            }
            other => {
                let hint = match did_you_mean(other, &["block", "log"]) {
                    Some(s) => format!("did you mean \"{s}\"? valid: \"block\" (default), \"log\""),
                    None => "valid: \"block\" (default), \"log\"".into(),
                };
                self.err(
                    &span,
                    "secrets.action",
                    format!("unknown action `{other}`"),
                    Some(hint),
                );
                None
            }
        }
    }

    fn parse_network(
        &mut self,
        root: &DeTable<'_>,
        class: Option<Class>,
        env: &Option<Env>,
    ) -> Option<Network> {
        let Some((t, _)) = self.table_at(
            root,
            "",
            "network",
            "a [network] section with `residency = \"EU\"`",
        ) else {
            return if root.contains_key("network") {
                None
            } else {
                Some(Network::default())
            };
        };
        self.check_keys(t, "network", NETWORK_KEYS);
        let mut residency = None;
        if let Some((r, span)) = self.str_at(t, "network", "residency", "residency = \"EU\"") {
            if r == "EU" {
                residency = Some(Residency::Eu);
            } else {
                let hint = if r.eq_ignore_ascii_case("eu") {
                    "write `residency = \"EU\"` (upper case)".to_string()
                } else {
                    "the only residency is \"EU\"; remove the key for none".to_string()
                };
                self.err(
                    &span,
                    "network.residency",
                    format!("unknown residency `{r}`"),
                    Some(hint),
                );
            }
        }
        let mut rules: Vec<(Rule, Span)> = Vec::new();
        if let Some(v) = t.get("allow") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let key = format!("network.allow[{i}]");
                        match item.get_ref() {
                            DeValue::Table(rt) => {
                                if let Some(rule) = self.parse_rule(rt, &item.span(), &key, class, residency, env) {
                                    rules.push((rule, item.span()));
                                }
                            }
                            _ => self.wrong_type(item, &key, "a table", "a [[network.allow]] section with `name = \"mistral-eu\"` and `host = \"api.eu.mistral.ai\"`"),
                        }
                    }
                }
                _ => self.wrong_type(
                    v,
                    "network.allow",
                    "an array of tables ([[network.allow]])",
                    "a [[network.allow]] section with `name = \"mistral-eu\"` and `host = \"api.eu.mistral.ai\"`",
                ),
            }
        }
        // unique names, and no two rules that cover the same host:port but carry it differently
        for i in 0..rules.len() {
            for j in 0..i {
                let (a, _) = &rules[j];
                let (b, bspan) = &rules[i];
                if a.name == b.name {
                    let (name, span) = (b.name.clone(), bspan.clone());
                    self.err(
                        &span,
                        &format!("network.allow[{i}].name"),
                        format!("rule name `{name}` is used twice"),
                        Some("give every rule a unique name; decisions report it".into()),
                    );
                    continue;
                }
                let overlap =
                    a.port == b.port && (a.host.covers(&b.host) || b.host.covers(&a.host));
                if overlap && (a.intercept != b.intercept || a.protocol != b.protocol) {
                    let msg = format!("rules `{}` and `{}` both cover {}:{} but one intercepts TLS (or carries HTTP) and the other does not", a.name, b.name, b.host, b.port);
                    let span = bspan.clone();
                    self.err(&span, &format!("network.allow[{i}]"), msg, Some("a host:port is either inspected or passed through: make `intercept` and `protocol` agree".into()));
                }
                if overlap && a.inject != b.inject && (a.inject.is_some() || b.inject.is_some()) {
                    let msg = format!(
                        "rules `{}` and `{}` both cover {}:{} with different `inject` settings",
                        a.name, b.name, b.host, b.port
                    );
                    let span = bspan.clone();
                    self.err(&span, &format!("network.allow[{i}]"), msg, Some("the credential a host receives must not depend on which rule matches first: give both the same `inject`".into()));
                }
            }
        }
        Some(Network {
            residency,
            allow: rules.into_iter().map(|(r, _)| r).collect(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn parse_rule(
        &mut self,
        t: &DeTable<'_>,
        span: &Span,
        key: &str,
        class: Option<Class>,
        residency: Option<Residency>,
        env: &Option<Env>,
    ) -> Option<Rule> {
        self.check_keys(t, key, RULE_KEYS);
        let k = |s: &str| format!("{key}.{s}");
        let errs_before = self.diags.len();

        let name = self.str_at(t, key, "name", "name = \"mistral-eu\"");
        let name = self.required(
            name,
            t.contains_key("name"),
            span,
            &k("name"),
            "name = \"mistral-eu\"",
        );
        if let Some((n, nspan)) = &name {
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !ok {
                self.err(
                    nspan,
                    &k("name"),
                    format!("rule name `{n}` is not valid"),
                    Some("use 1-64 letters, digits, `-`, `_` or `.`".into()),
                );
            }
        }
        let host = self.str_at(t, key, "host", "host = \"api.eu.mistral.ai\"");
        let host = self.required(
            host,
            t.contains_key("host"),
            span,
            &k("host"),
            "host = \"api.eu.mistral.ai\"",
        );
        let host = host.and_then(|(h, hspan)| match HostPattern::parse(&h) {
            Ok(HostPattern::Ip(ip)) if never_dialled(ip) => {
                let class = crate::addr::classify(ip);
                self.err(&hspan, &k("host"), format!("`{h}` is a {} address, which the proxy never dials", class.as_str()), Some("only global unicast addresses can be named; loopback, link-local, metadata and other special addresses are never reached".into()));
                None
            }
            Ok(HostPattern::Ip(ip)) if is_internal(ip) => {
                let class = crate::addr::classify(ip);
                self.err(&hspan, &k("host"), format!("`{h}` is a {} address: a contract never opens a private or CGNAT address", class.as_str()), Some("name the host (`gateway.corp.example`) and have the operator map it to the internal address with `--connect-to HOST:PORT:ADDR:PORT`, the only way to reach internal gateways".into()));
                None
            }
            Ok(p) => Some((p, hspan)),
            Err(why) => {
                self.err(&hspan, &k("host"), why, Some("write an exact host (`api.eu.mistral.ai`), a leading wildcard (`*.example.com`) or a global IP literal".into()));
                None
            }
        });

        let protocol = match self.str_at(t, key, "protocol", "protocol = \"tcp\"") {
            None => Protocol::Http,
            Some((p, pspan)) => match p.as_str() {
                "http" => Protocol::Http,
                "tcp" => Protocol::Tcp,
                other => {
                    self.err(&pspan, &k("protocol"), format!("unknown protocol `{other}`"), Some("valid: \"http\" (default: HTTP(S) requests) or \"tcp\" (a raw TCP stream such as ssh)".into()));
                    Protocol::Http
                }
            },
        };

        let mut port = 443u16;
        if let Some(v) = t.get("port") {
            match v.get_ref() {
                DeValue::Integer(i) => match parse_int(i.as_str(), i.radix())
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0)
                {
                    Some(p) => port = p,
                    None => self.err(
                        &v.span(),
                        &k("port"),
                        format!("port {} is out of range", i.as_str()),
                        Some("a port is 1..=65535 (default 443)".into()),
                    ),
                },
                _ => self.wrong_type(v, &k("port"), "an integer", "port = 443"),
            }
        }

        let mut schemes = vec![Scheme::Https];
        let mut schemes_span = span.clone();
        if let Some((list, sspan)) = self.str_list_at(t, key, "schemes", "schemes = [\"https\"]") {
            schemes_span = sspan.clone();
            let before = self.diags.len();
            let mut out = Vec::new();
            for (s, ispan) in list {
                match s.as_str() {
                    "https" => out.push(Scheme::Https),
                    "http" => out.push(Scheme::Http),
                    other => {
                        let hint = match did_you_mean(other, &["https", "http"]) {
                            Some(m) => format!("did you mean \"{m}\"? valid: \"https\", \"http\""),
                            None => "valid: \"https\" (default), \"http\" (plain text, must be explicit)".into(),
                        };
                        self.err(
                            &ispan,
                            &k("schemes"),
                            format!("unknown scheme `{other}`"),
                            Some(hint),
                        );
                    }
                }
            }
            out.dedup();
            if out.is_empty() && self.diags.len() == before {
                self.err(
                    &sspan,
                    &k("schemes"),
                    "`schemes` is empty",
                    Some("write `schemes = [\"https\"]` or remove the key".into()),
                );
            }
            schemes = out;
        }

        let mut methods = None;
        if let Some((list, mspan)) = self.str_list_at(t, key, "methods", "methods = [\"POST\"]") {
            let before = self.diags.len();
            let mut out = Vec::new();
            for (m, ispan) in list {
                let token = !m.is_empty()
                    && m.bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
                if m == "CONNECT" {
                    self.err(
                        &ispan,
                        &k("methods"),
                        "CONNECT is never forwarded as a request (a tunnel inside a tunnel)",
                        Some("remove it: tunnels are decided by the rule's host and port".into()),
                    );
                } else if token {
                    out.push(m);
                } else {
                    let up = m.to_ascii_uppercase();
                    self.err(
                        &ispan,
                        &k("methods"),
                        format!("`{m}` is not an HTTP method as sent on the wire"),
                        Some(format!(
                            "methods are case-sensitive upper-case tokens: write \"{up}\""
                        )),
                    );
                }
            }
            if out.is_empty() && self.diags.len() == before {
                self.err(
                    &mspan,
                    &k("methods"),
                    "`methods` is empty: the rule could never match",
                    Some(
                        "list the methods (`methods = [\"POST\"]`) or remove the key to allow any"
                            .into(),
                    ),
                );
            }
            methods = Some(out);
        }

        let mut paths = Vec::new();
        if let Some((list, _)) =
            self.str_list_at(t, key, "paths", "paths = [\"^/v1/chat/completions$\"]")
        {
            for (i, (p, pspan)) in list.into_iter().enumerate() {
                // The pattern must be a whole regex on its own: otherwise `a)|(.*` would close
                // the anchoring group and match every path. Parsing it alone (the regex
                // crate's own parser and defaults) checks that without compiling it twice; the
                // size limit is enforced on the anchored build.
                let alone = regex_syntax::Parser::new()
                    .parse(&p)
                    .map(|_| ())
                    .map_err(|e| regex::Error::Syntax(e.to_string()));
                let anchored = format!("^(?:{p})$");
                let built = alone.and_then(|()| {
                    regex::RegexBuilder::new(&anchored)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                });
                match built {
                    Ok(regex) => paths.push(PathPattern { source: p, regex }),
                    Err(e) => {
                        let detail = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        self.err(&pspan, &format!("{key}.paths[{i}]"), format!("`{p}` is not a valid regex: {detail}"), Some("paths are Rust regexes matched against the whole path, e.g. \"^/v1/models/[^/]+$\"; escape literal `.`, `(` and `[` with `\\\\`".into()));
                    }
                }
            }
        }

        let intercept_v = self.bool_at(t, key, "intercept", "intercept = false");
        let intercept = match (protocol, intercept_v.as_ref()) {
            (Protocol::Tcp, Some((true, ispan))) => {
                self.err(
                    ispan,
                    &k("intercept"),
                    "a `tcp` rule cannot intercept",
                    Some(
                        "remove `intercept` (tcp streams are spliced after the host:port check)"
                            .into(),
                    ),
                );
                false
            }
            (Protocol::Tcp, _) => false,
            (_, Some((b, _))) => *b,
            (_, None) => true,
        };

        let mut region = None;
        let mut region_span = None;
        if let Some((r, rspan)) = self.str_at(t, key, "region", "region = \"swedencentral\"") {
            if r.trim().is_empty() {
                self.err(
                    &rspan,
                    &k("region"),
                    "`region` is empty",
                    Some(
                        "name the region the endpoint processes data in, e.g. \"swedencentral\""
                            .into(),
                    ),
                );
            } else {
                region = Some(r);
            }
            region_span = Some(rspan);
        }

        let mut inject = None;
        if let Some((it, ispan)) = self.table_at(
            t,
            key,
            "inject",
            "inject = { header = \"x-api-key\", env = \"ANTHROPIC_API_KEY\" }",
        ) {
            let ik = k("inject");
            self.check_keys(it, &ik, INJECT_KEYS);
            let header = self.str_at(it, &ik, "header", "header = \"x-api-key\"");
            let header = self.required(
                header,
                it.contains_key("header"),
                &ispan,
                &format!("{ik}.header"),
                "header = \"x-api-key\"",
            );
            let envv = self.str_at(it, &ik, "env", "env = \"ANTHROPIC_API_KEY\"");
            let envv = self.required(
                envv,
                it.contains_key("env"),
                &ispan,
                &format!("{ik}.env"),
                "env = \"ANTHROPIC_API_KEY\"",
            );
            if let (Some((h, hspan)), Some((e, espan))) = (header, envv) {
                let hl = h.to_ascii_lowercase();
                let mut ok = true;
                if hl.is_empty()
                    || !hl
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    self.err(
                        &hspan,
                        &format!("{ik}.header"),
                        format!("`{h}` is not a header name"),
                        Some("e.g. \"x-api-key\" or \"authorization\"".into()),
                    );
                    ok = false;
                }
                if [
                    "host",
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "upgrade",
                    "te",
                    "trailer",
                    "proxy-authorization",
                    "cookie",
                ]
                .contains(&hl.as_str())
                {
                    self.err(&hspan, &format!("{ik}.header"), format!("`{h}` cannot carry an injected credential"), Some("inject into the header the API expects, e.g. \"x-api-key\", \"authorization\", \"api-key\"".into()));
                    ok = false;
                }
                if !valid_env_name(&e) {
                    self.err(
                        &espan,
                        &format!("{ik}.env"),
                        format!("`{e}` is not an environment variable name"),
                        Some("use letters, digits and `_`".into()),
                    );
                    ok = false;
                }
                if env.as_ref().is_some_and(|env| env.pass.contains(&e)) {
                    self.err(&espan, &format!("{ik}.env"), format!("`{e}` is injected by the proxy and also passed into the sandbox by [env] pass"), Some(format!("remove `{e}` from [env] pass: the point of `inject` is that the agent never holds the credential")));
                    ok = false;
                }
                if ok {
                    inject = Some(Inject { header: hl, env: e });
                }
            }
        }

        // combinations
        if protocol == Protocol::Tcp {
            for (present, what) in [
                (t.contains_key("methods"), "methods"),
                (t.contains_key("paths"), "paths"),
                (t.contains_key("inject"), "inject"),
                (t.contains_key("schemes"), "schemes"),
            ] {
                if present {
                    let sp = t.get(what).map(|v| v.span()).unwrap_or(span.clone());
                    self.err(
                        &sp,
                        &k(what),
                        format!("`{what}` does not apply to a `tcp` rule: the stream is not HTTP"),
                        Some(format!("remove `{what}`, or use `protocol = \"http\"`")),
                    );
                }
            }
        } else if !intercept {
            for (present, what) in [
                (t.contains_key("methods"), "methods"),
                (t.contains_key("paths"), "paths"),
                (t.contains_key("inject"), "inject"),
            ] {
                if present {
                    let sp = t.get(what).map(|v| v.span()).unwrap_or(span.clone());
                    self.err(&sp, &k(what), format!("`{what}` needs the proxy to see requests, but `intercept = false` passes TLS through unopened"), Some(format!("remove `{what}` or `intercept = false`")));
                }
            }
            if schemes.contains(&Scheme::Http) {
                self.err(
                    &schemes_span,
                    &k("schemes"),
                    "`intercept = false` is TLS passthrough: it cannot carry plain `http`",
                    Some("use `schemes = [\"https\"]`".into()),
                );
            }
        }
        if let (Some(_), Some((h, hspan))) = (&inject, &host) {
            if h.is_wildcard() {
                self.err(
                    hspan,
                    &k("inject"),
                    format!("a credential would be injected into requests to every host under `{h}`, including names other tenants can create"),
                    Some("inject only on a rule with an exact host".into()),
                );
            }
        }
        if inject.is_some() && schemes.contains(&Scheme::Http) {
            self.err(
                &schemes_span,
                &k("schemes"),
                "a credential is never injected over plain http",
                Some("use `schemes = [\"https\"]` on a rule with `inject`".into()),
            );
        }

        // class baselines
        if let Some(c) = class {
            if c != Class::B {
                let who = format!("class {c}");
                if let Some((h, hspan)) = &host {
                    if c == Class::C && h.is_wildcard() {
                        self.err(
                            hspan,
                            &k("host"),
                            format!("{who} forbids wildcard hosts (`{h}`)"),
                            Some("name every host exactly".into()),
                        );
                    }
                }
                if protocol == Protocol::Tcp {
                    self.err(
                        span,
                        &k("protocol"),
                        format!("{who} forbids raw `tcp` rules"),
                        Some("only class B may splice raw TCP streams".into()),
                    );
                } else if !intercept {
                    let sp = intercept_v
                        .as_ref()
                        .map(|(_, s)| s.clone())
                        .unwrap_or(span.clone());
                    self.err(&sp, &k("intercept"), format!("{who} forbids TLS passthrough (`intercept = false`): requests must be inspected"), Some("remove `intercept = false`; only class B may pass TLS through".into()));
                }
                if schemes.contains(&Scheme::Http) {
                    self.err(
                        &schemes_span,
                        &k("schemes"),
                        format!("{who} forbids plain `http`"),
                        Some("use `schemes = [\"https\"]`; only class B may use plain http".into()),
                    );
                }
            }
        }
        if protocol == Protocol::Http && intercept && schemes.contains(&Scheme::Http) {
            self.warn(
                Some(&schemes_span),
                &k("schemes"),
                "plain http: request and response travel unencrypted beyond the proxy",
            );
        }
        if protocol == Protocol::Http && !intercept {
            self.warn(Some(span), key, "TLS passthrough: methods, paths, secrets and per-request residency are not checked inside this tunnel");
        }

        // residency
        let (host, hspan) = host?;
        let placement = match &host {
            HostPattern::Exact(n) => catalog::place(n),
            _ => None,
        };
        if let Some(Residency::Eu) = residency {
            self.check_residency(
                &host,
                &hspan,
                placement.as_ref(),
                region.as_deref(),
                region_span.as_ref(),
                key,
            );
            let spliced = protocol == Protocol::Tcp || !intercept;
            let per_request = match &host {
                HostPattern::Exact(n) => catalog::per_request_for(
                    &crate::host::Host::Name(n.clone()),
                    placement.as_ref(),
                ),
                _ => catalog::PerRequest::None,
            };
            if spliced && per_request != catalog::PerRequest::None {
                self.err(span, key, format!("residency = \"EU\", but where `{host}` sends data depends on each request (the model id or location in its path), and this rule splices the tunnel unseen"), Some("remove `intercept = false` / `protocol = \"tcp\"` so that each request is decided".into()));
            }
        } else if let (Some(p), Some(r), Some(rs)) =
            (placement.as_ref(), region.as_ref(), region_span.as_ref())
        {
            if p.region.is_some() {
                self.warn(Some(rs), &k("region"), format!("the catalog already places `{host}` ({}, {}); the attestation `{r}` is ignored", p.provider, p.region.as_deref().unwrap_or("")));
            }
        }

        if self.diags.len() > errs_before {
            return None;
        }
        Some(Rule {
            name: name?.0,
            host,
            port,
            schemes,
            methods,
            paths,
            intercept,
            region,
            protocol,
            inject,
            placement,
        })
    }

    fn check_residency(
        &mut self,
        host: &HostPattern,
        hspan: &Span,
        placement: Option<&Placement>,
        region: Option<&str>,
        region_span: Option<&Span>,
        key: &str,
    ) {
        let rkey = format!("{key}.region");
        let hkey = format!("{key}.host");
        if let HostPattern::Wildcard(_) = host {
            for sample in catalog::SAMPLE_HOSTS {
                let Ok(h) = crate::host::normalize_host(sample) else {
                    continue;
                };
                if host.matches(&h) {
                    if let Some(p) = catalog::place(sample) {
                        if p.in_eu == Some(false) {
                            self.err(hspan, &hkey, format!("`{host}` covers `{sample}`, which the catalog places outside the EU ({}, region {})", p.provider, p.region.as_deref().unwrap_or("?")), Some("under residency = \"EU\", name the EU hosts exactly".into()));
                            return;
                        }
                    }
                }
            }
        }
        match placement.and_then(|p| p.in_eu.map(|eu| (p, eu))) {
            Some((p, false)) => {
                let region_s = p.region.clone().unwrap_or_default();
                let hint = eu_alternative(p.provider);
                self.err(hspan, &hkey, format!("residency = \"EU\", but the catalog places `{host}` outside the EU: {} ({}), region {region_s}, jurisdiction {}", p.provider, p.note, p.jurisdiction), Some(hint));
            }
            Some((p, true)) => {
                if let (Some(r), Some(rs)) = (region, region_span) {
                    if !catalog::region_is_eu(r) {
                        self.err(rs, &rkey, format!("the attested region `{r}` is not in the EU, and the catalog places `{host}` in {}", p.region.as_deref().unwrap_or("the EU")), Some("remove `region`: the catalog already places this host".into()));
                    }
                }
            }
            None => {
                let what = match (placement, host) {
                    (Some(p), _) => format!(
                        "the catalog knows `{host}` ({}) but cannot place it: {}",
                        p.provider, p.note
                    ),
                    (None, HostPattern::Wildcard(_)) => {
                        format!("the catalog cannot place every host under `{host}`")
                    }
                    (None, _) => format!("the catalog cannot place `{host}`"),
                };
                match (region, region_span) {
                    (None, _) => self.err(hspan, &rkey, format!("residency = \"EU\" and {what}"), Some("add `region = \"<EU region>\"` to attest where it processes data (e.g. \"swedencentral\", \"eu-central-1\", \"EU\"), or remove the rule".into())),
                    (Some(r), Some(rs)) if !catalog::region_is_eu(r) => {
                        self.err(rs, &rkey, format!("residency = \"EU\", but the attested region `{r}` is not an EU region"), Some(format!("valid attestations: \"EU\", AWS {}, Google {}, Azure {}", catalog::AWS_EU_REGIONS.join("/"), catalog::GCP_EU_REGIONS.join("/"), catalog::AZURE_EU_REGIONS.join("/"))));
                    }
                    _ => {}
                }
            }
        }
    }
}

fn eu_alternative(provider: &str) -> String {
    match provider {
        "OpenAI" | "OpenAI data residency" => "use `eu.api.openai.com` with an EU data-residency project".into(),
        "Mistral" => "use `api.eu.mistral.ai`".into(),
        "AWS Bedrock" | "AWS Bedrock (OpenAI-compatible)" => "use an EU region such as eu-central-1, eu-west-1, eu-west-3 or eu-north-1".into(),
        "Google Vertex AI" => "use a regional EU endpoint such as `europe-west4-aiplatform.googleapis.com` or `aiplatform.eu.rep.googleapis.com`".into(),
        "Anthropic" => "Anthropic's API has no EU inference option: reach Claude through Bedrock in an EU region (`eu.` profile) or Vertex in an EU region".into(),
        "OpenRouter" => "eu.openrouter.ai routes to UK and Swiss providers too; it is not EU-only".into(),
        _ => "remove the rule, or use a provider endpoint inside the EU".into(),
    }
}

fn parse_int(s: &str, radix: u32) -> Option<i64> {
    let cleaned: String = s.chars().filter(|c| *c != '_').collect();
    let digits = match radix {
        16 => cleaned.trim_start_matches("0x"),
        8 => cleaned.trim_start_matches("0o"),
        2 => cleaned.trim_start_matches("0b"),
        _ => cleaned.as_str(),
    };
    i64::from_str_radix(digits, radix).ok()
}

/// Addresses that `decide_addresses` never dials (metadata, loopback, link-local, ...).
fn never_dialled(ip: std::net::IpAddr) -> bool {
    use crate::addr::AddrClass;
    crate::addr::is_metadata(ip)
        || matches!(
            crate::addr::classify(ip),
            AddrClass::Loopback
                | AddrClass::LinkLocal
                | AddrClass::Unspecified
                | AddrClass::Multicast
                | AddrClass::Broadcast
        )
}

/// Private (RFC 1918, fc00::/7, fec0::/10) and CGNAT addresses: reachable only through the
/// operator's `--connect-to`, never through a contract rule (issue 3).
fn is_internal(ip: std::net::IpAddr) -> bool {
    use crate::addr::AddrClass;
    matches!(
        crate::addr::classify(ip),
        AddrClass::Private | AddrClass::Cgnat
    )
}

fn valid_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn looks_sensitive(name: &str) -> bool {
    let u = name.to_ascii_uppercase();
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "AUTH",
        "COOKIE",
        "SESSION",
    ]
    .iter()
    .any(|w| u.contains(w))
}

fn validate_otlp(u: &str) -> Result<(), &'static str> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or("the scheme must be http or https")?;
    let authority = rest.split('/').next().unwrap_or("");
    if rest.contains('?') || rest.contains('#') {
        return Err("no query or fragment");
    }
    if authority.contains('@') {
        return Err("no user information");
    }
    let (host, port) = if let Some(end) = authority.strip_prefix('[').and_then(|a| a.find(']')) {
        let host = &authority[..end + 2];
        (host, authority[end + 2..].strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    crate::host::normalize_host(host).map_err(|_| "the host is not valid")?;
    if let Some(p) = port {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("the port is not valid")?;
    }
    Ok(())
}
