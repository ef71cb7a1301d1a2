//! The contract reader's machinery: the parser state, the typed accessors that report a wrong
//! type or an unknown key at its `file:line:col`, and the keys each table accepts.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::PathContext;
use crate::error::{did_you_mean, Diagnostic, Location, Warning};

pub(crate) type Span = Range<usize>;

pub(super) const TOP_KEYS: &[&str] = &[
    "version", "task", "files", "network", "env", "log", "secrets", "git", "sockets", "limits",
    "agent",
];
pub(super) const AGENT_KEYS: &[&str] = &["name", "provider"];
pub(super) const TASK_KEYS: &[&str] = &[
    "id",
    "class",
    "objective",
    "done",
    "done_timeout",
    "rollback",
    "approved_by",
    "ticket",
];
pub(super) const FILES_KEYS: &[&str] = &["read", "write", "deny", "unprotect"];
pub(super) const NETWORK_KEYS: &[&str] = &["residency", "allow"];
pub(super) const RULE_KEYS: &[&str] = &[
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
    "github_api",
    "gitlab_api",
];
pub(super) const INJECT_KEYS: &[&str] = &[
    "form",
    "header",
    "env",
    "service",
    "region",
    "profile",
    "credentials",
    "scopes",
];
pub(super) const INJECT_FORMS: &[&str] = &[
    "header",
    "bearer",
    "azure-api-key",
    "aws-sigv4",
    "google-oauth",
];
/// Headers an injected credential may never go into.
pub(super) const NOT_A_CREDENTIAL_HEADER: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "cookie",
];
pub(super) const ENV_KEYS: &[&str] = &["pass"];
pub(super) const LOG_KEYS: &[&str] = &["path", "otlp", "sync"];
pub(super) const SECRETS_KEYS: &[&str] = &["action"];
pub(super) const GIT_KEYS: &[&str] = &["push", "fetch", "unchecked_ssh"];
pub(super) const SOCKETS_KEYS: &[&str] = &["connect", "internal"];
pub(super) const LIMITS_KEYS: &[&str] = &["pids", "memory", "nice"];

/// Upper bound on the compiled size of one `paths` regex.
pub(super) const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) origin: &'a str,
    pub(super) ctx: &'a PathContext,
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Warning>,
}

pub(super) fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

pub(super) fn type_name(v: &DeValue<'_>) -> &'static str {
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

    pub(super) fn loc(&self, span: &Span) -> Location {
        Location::of_offset(self.src, span.start)
    }

    pub(super) fn err(
        &mut self,
        span: &Span,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let location = self.loc(span);
        self.diags.push(Diagnostic {
            origin: self.origin.to_string(),
            location,
            key: key.to_string(),
            message: message.into(),
            hint,
        });
    }

    pub(super) fn warn(&mut self, span: Option<&Span>, key: &str, message: impl Into<String>) {
        let location = span.map(|s| self.loc(s));
        self.warnings.push(Warning {
            origin: self.origin.to_string(),
            location,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Report every key of `table` not in `allowed`, with a did-you-mean.
    pub(super) fn check_keys(&mut self, table: &DeTable<'_>, prefix: &str, allowed: &[&str]) {
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

    pub(super) fn wrong_type(
        &mut self,
        v: &Spanned<DeValue<'_>>,
        key: &str,
        expected: &str,
        example: &str,
    ) {
        let found = type_name(v.get_ref());
        self.err(
            &v.span(),
            key,
            format!("expected {expected}, found {found}"),
            Some(format!("for example: {example}")),
        );
    }

    pub(super) fn str_at(
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

    pub(super) fn bool_at(
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

    pub(super) fn str_list_at(
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

    pub(super) fn table_at<'t, 'i>(
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

    pub(super) fn required<T>(
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
}
