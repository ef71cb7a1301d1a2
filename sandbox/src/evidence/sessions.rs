//! What the session records (`session_start`, `session_end`) say about each session: the
//! command, the contract and its class, the user, the enforcement and the exit code.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::record::LogRecord;

/// One session as the log tells it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SessionInfo {
    /// The session id.
    pub session: String,
    /// `ts` of `session_start`, or of the first record seen.
    pub started: Option<String>,
    /// `ts` of `session_end`.
    pub ended: Option<String>,
    /// The command the session ran.
    pub command: Option<String>,
    /// The contract file.
    pub contract: Option<String>,
    /// The contract's SHA-256.
    pub contract_sha256: Option<String>,
    /// The scope class of the contract (A, B, C), when logged.
    pub class: Option<String>,
    /// The user the agent ran as.
    pub user: Option<String>,
    /// The exit code of the command.
    pub exit_code: Option<i64>,
    /// Enforcement per feature (`landlock: enforced`, ...).
    pub enforcement: BTreeMap<String, String>,
    /// Flow decisions seen in this session.
    pub decisions: u64,
    /// Denied decisions in this session.
    pub denied: u64,
    /// `true` when a `session_start` record was seen.
    pub has_start: bool,
    /// `true` when a `session_end` record was seen.
    pub has_end: bool,
    /// The contract's task id.
    pub task_id: Option<String>,
    /// The workspace.
    pub workspace: Option<String>,
    /// `sandbox run`'s own exit code (the agent's and the checks' together).
    pub sandbox_exit_code: Option<i64>,
    /// The statement of the protections in force (`session_start` `layers`).
    pub layers: Option<Value>,
    /// `--best-effort` was given.
    pub best_effort: bool,
    /// What ran weaker than the contract asks.
    pub weaker: Vec<String>,
    /// Protected paths the agent created, moved aside after it.
    pub quarantined: u64,
    /// The `done` checks, in order.
    pub checks: Vec<CheckInfo>,
    /// How many `done` checks the contract lists (`session_end`).
    pub checks_listed: Option<u64>,
    /// Why the checks did not run, if they did not.
    pub checks_skipped: Option<String>,
    /// The `changes` record's detail.
    pub changes: Option<Value>,
    /// The rollback drills of this session (`rollback_drill` details).
    pub drills: Vec<Value>,
}

/// One `done` check as its `check` record tells it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CheckInfo {
    /// The command.
    pub command: String,
    /// Its exit code.
    pub exit_code: Option<i64>,
    /// Exit 0 within its time limit.
    pub passed: bool,
    /// It ran out of time.
    pub timed_out: bool,
    /// How long it took.
    pub duration_ms: Option<f64>,
}

impl SessionInfo {
    /// `true` when the session's statement of layers says every protection was in force.
    /// `None` for a session without a statement (an older log, `sandbox proxy`).
    pub fn layers_full(&self) -> Option<bool> {
        let full = self.layers.as_ref()?.get("full")?.as_bool()?;
        Some(full && !self.best_effort && self.weaker.is_empty())
    }

    /// Lines added plus removed, from the `changes` record (when git recorded it).
    pub fn changed_lines(&self) -> Option<u64> {
        let c = self.changes.as_ref()?;
        if c.get("git")?.as_bool() != Some(true) {
            return None;
        }
        Some(c.get("lines_added")?.as_u64()? + c.get("lines_removed")?.as_u64()?)
    }

    /// The files changed outside the contract's scope (`changes` record).
    pub fn out_of_scope(&self) -> Vec<String> {
        self.changes
            .as_ref()
            .and_then(|c| c.get("out_of_scope"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|f| f.get("path").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Looks up the first of several dotted paths in a JSON object.
fn lookup<'a>(detail: &'a Value, paths: &[&str]) -> Option<&'a Value> {
    paths.iter().find_map(|path| {
        path.split('.')
            .try_fold(detail, |v, key| v.get(key))
            .filter(|v| !v.is_null())
    })
}

fn text(detail: &Value, paths: &[&str]) -> Option<String> {
    match lookup(detail, paths)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl SessionInfo {
    /// A session first seen through `record`.
    pub fn new(record: &LogRecord) -> SessionInfo {
        SessionInfo {
            session: record.session.clone(),
            started: Some(record.ts.clone()),
            ..Default::default()
        }
    }

    /// Takes in a flow or session record of this session.
    pub fn observe(&mut self, record: &LogRecord) {
        if record.is_decision() {
            self.decisions += 1;
            if record.is_denied() {
                self.denied += 1;
            }
        }
        if record.event == "session_start" {
            self.has_start = true;
            self.started = Some(record.ts.clone());
        }
        if record.event == "session_end" {
            self.has_end = true;
            self.ended = Some(record.ts.clone());
        }
        let Some(detail) = &record.detail else { return };
        match record.event.as_str() {
            "check" => self.checks.push(CheckInfo {
                command: text(detail, &["command"]).unwrap_or_default(),
                exit_code: lookup(detail, &["exit_code"]).and_then(Value::as_i64),
                passed: lookup(detail, &["passed"]).and_then(Value::as_bool) == Some(true),
                timed_out: lookup(detail, &["timed_out"]).and_then(Value::as_bool) == Some(true),
                duration_ms: record
                    .duration_ms
                    .or_else(|| lookup(detail, &["duration_ms"]).and_then(Value::as_f64)),
            }),
            "changes" => self.changes = Some(detail.clone()),
            "rollback_drill" => self.drills.push(detail.clone()),
            _ => self.take_detail(detail),
        }
    }

    fn take_detail(&mut self, d: &Value) {
        let set = |slot: &mut Option<String>, value: Option<String>| {
            if value.is_some() {
                *slot = value;
            }
        };
        set(&mut self.command, text(d, &["command", "cmd", "argv"]));
        set(
            &mut self.contract,
            text(d, &["contract.path", "contract_path", "contract"])
                .filter(|c| !c.starts_with('{')),
        );
        set(
            &mut self.contract_sha256,
            text(d, &["contract.sha256", "contract_sha256", "contract_hash"]),
        );
        set(
            &mut self.class,
            text(
                d,
                &[
                    "contract.class",
                    "class",
                    "scope_class",
                    "contract.scope_class",
                ],
            ),
        );
        let user = text(d, &["user.name"])
            .filter(|name| !name.is_empty())
            .or_else(|| text(d, &["user.uid"]).map(|uid| format!("uid {uid}")))
            .or_else(|| text(d, &["user"]))
            .or_else(|| text(d, &["uid"]).map(|uid| format!("uid {uid}")));
        set(&mut self.user, user);
        if let Some(code) =
            lookup(d, &["exit_code", "exit.code", "exit_status", "exit"]).and_then(Value::as_i64)
        {
            self.exit_code = Some(code);
        }
        if let Some(Value::Object(map)) = lookup(d, &["enforcement"]) {
            for (feature, value) in map {
                let v = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                self.enforcement.insert(feature.clone(), v);
            }
        }
        if let Some(abi) = text(d, &["landlock_abi"]) {
            self.enforcement.insert("landlock_abi".to_string(), abi);
        }
        set(&mut self.task_id, text(d, &["task_id"]));
        set(&mut self.workspace, text(d, &["workspace"]));
        if let Some(code) = lookup(d, &["sandbox_exit_code"]).and_then(Value::as_i64) {
            self.sandbox_exit_code = Some(code);
        }
        if let Some(layers) = lookup(d, &["layers"]) {
            self.layers = Some(layers.clone());
        }
        if lookup(d, &["best_effort"]).and_then(Value::as_bool) == Some(true) {
            self.best_effort = true;
        }
        if let Some(Value::Array(list)) = lookup(d, &["weaker_than_contract"]) {
            self.weaker = list
                .iter()
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect();
        }
        if let Some(Value::Array(list)) = lookup(d, &["protected_paths_quarantined"]) {
            self.quarantined = list.len() as u64;
        }
        if let Some(checks) = lookup(d, &["checks"]).filter(|c| c.is_object()) {
            self.checks_listed = checks.get("listed").and_then(Value::as_u64);
            self.checks_skipped = checks
                .get("skipped")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_session_details_in_either_shape() {
        let mut s = SessionInfo::default();
        let mut r = LogRecord {
            ts: "t1".into(),
            session: "s-1".into(),
            event: "session_start".into(),
            kind: "session".into(),
            detail: Some(serde_json::json!({
                "contract": {"path": "task.toml", "sha256": "ab", "class": "B"},
                "command": ["claude", "-p", "fix it"],
                "user": {"uid": 1000, "name": ""},
                "enforcement": {"landlock": "enforced", "seccomp": "enforced"},
                "landlock_abi": 6
            })),
            ..Default::default()
        };
        s.observe(&r);
        r.event = "session_end".into();
        r.ts = "t2".into();
        r.detail = Some(serde_json::json!({"exit_code": 3, "contract_sha256": "cd"}));
        s.observe(&r);
        assert_eq!(s.contract.as_deref(), Some("task.toml"));
        assert_eq!(s.contract_sha256.as_deref(), Some("cd"));
        assert_eq!(s.class.as_deref(), Some("B"));
        assert_eq!(s.command.as_deref(), Some("claude -p fix it"));
        assert_eq!(s.exit_code, Some(3));
        assert_eq!(s.user.as_deref(), Some("uid 1000"));
        assert_eq!(
            s.enforcement.get("landlock_abi").map(String::as_str),
            Some("6")
        );
        assert!(s.has_start && s.has_end);
        assert_eq!(s.ended.as_deref(), Some("t2"));
    }

    /// `sandbox proxy` logs written before its session records took `sandbox run`'s shapes
    /// (command a string, top-level `uid`, no `task_id`) read the same as the current ones.
    #[test]
    fn reads_old_and_new_proxy_session_starts() {
        let start = |detail: Value| LogRecord {
            ts: "t1".into(),
            session: "s-2".into(),
            event: "session_start".into(),
            kind: "session".into(),
            detail: Some(detail),
            ..Default::default()
        };
        let old = serde_json::json!({
            "command": "sandbox proxy",
            "contract_path": "/c/gw.toml",
            "contract_sha256": "ab",
            "class": "B",
            "listen": "127.0.0.1:8080",
            "connect_to": [],
            "uid": 1000
        });
        let new = serde_json::json!({
            "contract_path": "/c/gw.toml",
            "contract_sha256": "ab",
            "task_id": "GW-1",
            "class": "B",
            "command": ["sandbox", "proxy", "--listen", "127.0.0.1:8080"],
            "user": {"uid": 1000, "name": ""},
            "listen": "127.0.0.1:8080",
            "connect_to": []
        });
        let mut seen = Vec::new();
        for detail in [old, new] {
            let mut s = SessionInfo::default();
            s.observe(&start(detail));
            assert_eq!(s.user.as_deref(), Some("uid 1000"));
            assert_eq!(s.class.as_deref(), Some("B"));
            assert_eq!(s.contract.as_deref(), Some("/c/gw.toml"));
            assert!(s.has_start);
            seen.push(s.command.unwrap_or_default());
        }
        assert_eq!(
            seen,
            ["sandbox proxy", "sandbox proxy --listen 127.0.0.1:8080"]
        );
        let mut s = SessionInfo::default();
        s.observe(&start(serde_json::json!({
            "command": ["sandbox", "proxy"],
            "user": {"uid": 1000, "name": "alice"}
        })));
        assert_eq!(s.user.as_deref(), Some("alice"));
    }
}
