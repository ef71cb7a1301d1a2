//! Reading the contract's sections: the document as a whole, `[task]`, `[files]`, `[env]`,
//! `[log]` and `[secrets]`. `[network]` is in `network.rs`.

use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

use super::checks::*;
use super::reader::*;
use super::*;
use crate::error::{did_you_mean, Diagnostic, Warning};
use crate::files::{self, PathGrant};

impl Parser<'_> {
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
        let git = self.parse_git(root, network.as_ref());
        let sockets = self.parse_sockets(root);
        let limits = self.parse_limits(root);
        let agent = self.parse_agent(root, network.as_ref());

        let contract = match (
            task, files, network, env, log, secrets, git, sockets, limits, agent,
        ) {
            (
                Some(task),
                Some(files),
                Some(network),
                Some(env),
                Some(log),
                Some(secrets),
                Some(git),
                Some(sockets),
                Some(limits),
                Some(agent),
            ) if self.diags.is_empty() => Some(Contract {
                version: 1,
                task,
                files,
                network,
                env,
                log,
                secrets,
                git,
                sockets,
                limits,
                agent,
            }),
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

    pub(super) fn finish(
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

    pub(super) fn parse_task(&mut self, root: &DeTable<'_>) -> Option<Task> {
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
        let done_timeout = self
            .str_at(t, "task", "done_timeout", "done_timeout = \"10m\"")
            .and_then(|(text, sp)| match parse_duration_secs(&text) {
                Some(secs) if secs > 0 && secs <= MAX_DONE_TIMEOUT_SECS => Some(secs),
                _ => {
                    self.err(
                        &sp,
                        "task.done_timeout",
                        format!("`{text}` is not a time limit between 1s and 24h"),
                        Some("write seconds, minutes or hours: \"90s\", \"10m\", \"1h\"".into()),
                    );
                    None
                }
            });
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
            done_timeout_secs: done_timeout.unwrap_or(super::DEFAULT_DONE_TIMEOUT_SECS),
            rollback: rollback.map(|r| r.0),
            approved_by: approved_by.map(|r| r.0),
            ticket: ticket.map(|r| r.0),
        })
    }

    /// Resolve a `[files]` entry to an absolute path.
    pub(super) fn resolve_path(&mut self, raw: &str, span: &Span, key: &str) -> Option<PathBuf> {
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

    pub(super) fn parse_grants(&mut self, t: &DeTable<'_>, key: &str) -> Vec<(PathGrant, Span)> {
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

    pub(super) fn parse_files(
        &mut self,
        root: &DeTable<'_>,
        class: Option<Class>,
    ) -> Option<Files> {
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
        let unprotect = self.parse_grants(t, "unprotect");
        let home = self.ctx.home.clone();
        for (i, (g, span)) in unprotect.iter().enumerate() {
            let key = format!("files.unprotect[{i}]");
            if !crate::planted::may_be_protected(&g.path) {
                self.err(
                    span,
                    &key,
                    format!("`{}` is not a protected path", g.written),
                    Some("name a protected path exactly, e.g. \"tests/fixtures/repo/.git/hooks\" or \".vscode/settings.json\"".into()),
                );
                continue;
            }
            if !write
                .iter()
                .any(|(w, _)| files::is_within(&g.path, &w.path))
            {
                self.err(
                    span,
                    &key,
                    format!(
                        "`{}` is not inside a `write` entry, so unprotecting it changes nothing",
                        g.written
                    ),
                    Some("remove it, or grant write on a tree that holds it".into()),
                );
                continue;
            }
            self.warn(
                Some(span),
                &key,
                format!(
                    "the agent may write the protected path `{}`: the host may run what it puts there (review it before you use the workspace)",
                    g.written
                ),
            );
        }
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
            unprotect: strip(unprotect),
        })
    }

    pub(super) fn parse_env(&mut self, root: &DeTable<'_>, class: Option<Class>) -> Option<Env> {
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

    pub(super) fn parse_log(&mut self, root: &DeTable<'_>) -> Option<Log> {
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
        if let Some((v, span)) = self.str_at(t, "log", "sync", "sync = \"flow\"") {
            match v.as_str() {
                "flow" => log.sync = LogSync::Flow,
                "session" => {
                    log.sync = LogSync::Session;
                    self.warn(
                        Some(&span),
                        "log.sync",
                        "records are synced to disk at the session's end only: a host crash can lose the last ones",
                    );
                }
                other => self.err(
                    &span,
                    "log.sync",
                    format!("unknown sync `{other}`"),
                    Some("valid: \"flow\" (default: each allowed flow's record on disk before the flow) or \"session\"".into()),
                ),
            }
        }
        Some(log)
    }

    pub(super) fn parse_secrets(&mut self, root: &DeTable<'_>) -> Option<Secrets> {
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
}

/// The longest `done_timeout` a contract may set: a day.
const MAX_DONE_TIMEOUT_SECS: u64 = 24 * 3600;

/// `"90s"`, `"10m"`, `"1h"` (or a bare number of seconds) in seconds; `None` for anything else.
pub(super) fn parse_duration_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration_secs;

    #[test]
    fn durations_in_seconds_minutes_and_hours() {
        assert_eq!(parse_duration_secs("90s"), Some(90));
        assert_eq!(parse_duration_secs("10m"), Some(600));
        assert_eq!(parse_duration_secs("1h"), Some(3600));
        assert_eq!(parse_duration_secs("45"), Some(45));
        assert_eq!(parse_duration_secs("10 m"), Some(600));
        for bad in [
            "",
            "m",
            "-5s",
            "1.5m",
            "10d",
            "99999999999999999999h",
            "1h30m",
        ] {
            assert_eq!(parse_duration_secs(bad), None, "{bad}");
        }
    }
}
