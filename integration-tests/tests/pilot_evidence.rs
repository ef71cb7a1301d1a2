//! The pilot's evidence from sessions: a rollback drill reverts an agent commit in a scratch
//! copy, re-runs the checks that passed before the session and records its time; `sandbox
//! report` over several logs renders the seven-dimension table, checked in headless Chromium
//! (Playwright) at laptop width: no sideways scrolling, no towering cells. Loopback only: the
//! sessions have no allowed host.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::bin::sandbox_bin;
use integration_tests::flowcheck::verify_chain;
use integration_tests::git_repo::{git_out, repo};
use integration_tests::sandbox_harness::{run, sandbox_as, TestDir};
use integration_tests::synthetic_log::{Request, SyntheticLog};
use integration_tests::users::{each_user, User};
use serde_json::{json, Value};

const REVERT: &str = "git -c user.email=r@example.invalid -c user.name=r revert --no-edit HEAD";

fn contract(dir: &TestDir, name: &str, rollback: &str) -> String {
    let text = format!(
        "version = 1\n[task]\nid = \"IT-17-drill\"\nclass = \"B\"\nobjective = \"add a feature\"\ndone = [\"test -f README.md\", \"test -f feature.txt\"]\nrollback = {rollback:?}\n[files]\nwrite = [\".\"]\n[network]\n[log]\npath = \"{}\"\n",
        dir.log_path().display()
    );
    dir.write(name, &text).display().to_string()
}

const AGENT: &str = "echo feature > feature.txt \
    && git -c user.email=a@example.invalid -c user.name=agent add feature.txt \
    && git -c user.email=a@example.invalid -c user.name=agent commit -qm 'agent: feature'";

fn drills(log: &Path) -> Vec<Value> {
    verify_chain(log)
        .expect("the chain verifies")
        .into_iter()
        .filter(|r| r["event"] == "rollback_drill")
        .map(|r| r["detail"].clone())
        .collect()
}

fn leftover_scratch(session: &str) -> Vec<PathBuf> {
    let prefix = format!("sandbox-drill-{}", &session[..session.len().min(16)]);
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// A session that commits a feature, then its drill; returns the session id.
fn session_and_drill(user: User, dir: &TestDir) -> String {
    let c = contract(dir, "contract.toml", REVERT);
    let out = run(user, dir, &["--contract", &c], AGENT);
    assert_eq!(
        out.code,
        0,
        "both checks pass after the agent: {}",
        out.both()
    );
    let head = git_out(&dir.workspace, &["rev-parse", "HEAD"]);
    let log = dir.log_path();
    let started = Instant::now();
    let out = sandbox_as(user, dir, &["rollback", "--drill", log.to_str().unwrap()]);
    assert_eq!(out.code, 0, "as {}: {}", user.label(), out.both());
    assert!(
        out.stderr.contains("within 5 minutes: success"),
        "{}",
        out.both()
    );
    let d = drills(&log).pop().expect("a rollback_drill record");
    assert_eq!(d["kind"], "command", "{d}");
    assert_eq!(d["result"], "success", "{d}");
    assert_eq!(d["exit_code"], 0, "{d}");
    assert_eq!(d["contract_matches_session"], true, "{d}");
    // Before the session only the README check passed; after the revert it passes again.
    assert_eq!(
        d["baseline"],
        json!([{"command": "test -f README.md", "passed": true}, {"command": "test -f feature.txt", "passed": false}]),
        "{d}"
    );
    assert_eq!(d["checks_after"][0]["passed"], true, "{d}");
    assert_eq!(d["checks_after"][1]["passed"], false, "reverted: {d}");
    assert_eq!(d["regressions"], json!([]), "{d}");
    let ms = d["total_ms"].as_f64().unwrap();
    assert!(
        ms > 0.0 && ms < started.elapsed().as_secs_f64() * 1000.0,
        "{d}"
    );
    assert_eq!(d["thresholds_s"]["success_within"], 300);
    assert_eq!(d["thresholds_s"]["red_flag_beyond"], 600);
    // The workspace itself is untouched, the scratch copies are gone.
    assert_eq!(git_out(&dir.workspace, &["rev-parse", "HEAD"]), head);
    assert!(dir.workspace.join("feature.txt").exists());
    let session = d["session"].as_str().unwrap().to_string();
    assert!(leftover_scratch(&session).is_empty());
    session
}

#[test]
fn a_rollback_drill_reverts_the_agent_commit_and_records_its_time() {
    for user in each_user() {
        let dir = repo(user, "drill");
        session_and_drill(user, &dir);
        let log = dir.log_path();
        let log_arg = log.to_str().unwrap();

        // A rollback that fails is recorded as failed (exit 1).
        let broken = contract(&dir, "broken.toml", "git revert --no-edit HEAD~40");
        let out = sandbox_as(
            user,
            &dir,
            &["rollback", "--drill", log_arg, "--contract", &broken],
        );
        assert_eq!(out.code, 1, "{}", out.both());
        let d = drills(&log).pop().unwrap();
        assert_eq!(d["result"], "failed", "{d}");
        assert_eq!(d["contract_matches_session"], false, "{d}");
        assert_ne!(d["exit_code"], 0, "{d}");

        // A rollback text that is not a command is manual, with no time.
        let manual = contract(
            &dir,
            "manual.toml",
            "Ask the team lead to revert the branch.",
        );
        let out = sandbox_as(
            user,
            &dir,
            &["rollback", "--drill", log_arg, "--contract", &manual],
        );
        assert_eq!(out.code, 1, "{}", out.both());
        assert!(out.stderr.contains("recorded as manual"), "{}", out.both());
        let d = drills(&log).pop().unwrap();
        assert_eq!(d["kind"], "manual", "{d}");
        assert!(d.get("total_ms").is_none(), "{d}");

        // The contract changed since the session: refused unless given explicitly.
        std::fs::write(
            dir.root.join("contract.toml"),
            std::fs::read_to_string(dir.root.join("contract.toml")).unwrap() + "\n# edited\n",
        )
        .unwrap();
        let out = sandbox_as(user, &dir, &["rollback", "--drill", log_arg]);
        assert_eq!(out.code, 2, "{}", out.both());
        assert!(
            out.stderr.contains("changed since session"),
            "{}",
            out.both()
        );
    }
}

/// A log of several synthetic sessions that fail dimensions, with long paths and commands.
fn stress_log(path: &Path) {
    let mut log = SyntheticLog::create(path).unwrap();
    for i in 0..6 {
        log.set_session(&format!("s-{i:016x}"));
        log.session_start(json!({
            "contract_path": format!("/srv/pilot/tasks/very/deeply/nested/directory/structure/for/task-{i}/contract-with-a-long-name.toml"),
            "contract_sha256": "ab".repeat(32),
            "task_id": format!("PILOT-{i}"),
            "class": "B",
            "command": ["claude", "-p", "refactor the whole parser module so that it streams its input instead of reading everything into memory first, and add tests"],
            "user": {"uid": 1000 + i, "name": ""},
            "workspace": "/srv/ws",
            "layers": {"full": i != 2, "list": [{"layer": "landlock", "state": if i == 2 { "partial" } else { "enforced" }, "detail": "ABI 7"}]},
        }))
        .unwrap();
        let long = format!("/v1/projects/acme-pilot-project-with-a-long-name/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict/{i}");
        let mut req = Request::new("europe-west4-aiplatform.googleapis.com", "POST", &long);
        req.region = Some("europe-west4");
        req.rule = Some("vertex-eu");
        log.allowed(&req).unwrap();
        let mut check = proxy::flowlog::FlowRecord::new(
            proxy::flowlog::Event::Check,
            proxy::flowlog::Kind::Session,
        );
        check.detail = Some(
            json!({"command": "cargo test --workspace --all-features -- --include-ignored", "exit_code": if i == 4 { 101 } else { 0 }, "passed": i != 4, "timed_out": false, "duration_ms": 12000.0}),
        );
        log.write(check).unwrap();
        let mut changes = proxy::flowlog::FlowRecord::new(
            proxy::flowlog::Event::Changes,
            proxy::flowlog::Kind::Session,
        );
        changes.detail = Some(
            json!({"git": true, "commit_count": 1, "files_changed": 3, "lines_added": if i == 5 { 900 } else { 40 }, "lines_removed": 2, "history_rewritten": false, "out_of_scope": [], "after": {"branch": "pilot/agent-suggestions/with-a-long-branch-name"}}),
        );
        log.write(changes).unwrap();
        log.session_end(json!({"exit_code": 0, "checks": {"listed": 1, "run": 1, "passed": 1, "failed": 0, "skipped": null}})).unwrap();
    }
    log.finish().unwrap();
}

/// Loads `html` in headless Chromium at `width` through Playwright (integration-tests/node),
/// screenshots it to `png`, and returns the layout facts the script measures.
fn layout(html: &Path, png: &Path, width: u32) -> Value {
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        node_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix integration-tests/node` (.ci/test does)"
    );
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Chromium is required: apt-get install chromium (.ci/test installs it)");
    let mut child = Command::new("node")
        .arg(node_dir.join("report-layout.mjs"))
        .arg(html)
        .arg(png)
        .arg(width.to_string())
        .env("CHROMIUM", chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the layout probe took longer than 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "layout probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the probe prints JSON")
}

fn statuses(facts: &Value) -> Vec<(String, String)> {
    facts["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn report_over_several_logs_shows_seven_dimensions_at_laptop_width() {
    let user = each_user()[0];
    let dir = repo(user, "report7");
    session_and_drill(user, &dir);
    let c = dir.root.join("contract.toml");
    let diagram = dir.root.join("approved.toml");
    let out = Command::new(sandbox_bin())
        .args(["diagram", "--from-contract"])
        .arg(&c)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&diagram, &out.stdout).unwrap();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();

    // One real session with its drill: every measured dimension passes.
    let html = dir.root.join("one.html");
    let out = Command::new(sandbox_bin())
        .arg("report")
        .arg(dir.log_path())
        .arg("--approved")
        .arg(&diagram)
        .arg("-o")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let facts = layout(&html, &artifacts.join("pilot-report-one-session.png"), 1280);
    let expect = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        statuses(&facts),
        expect(&[
            ("Security posture", "pass"),
            ("Maintainability", "pass"),
            ("Developer adoption", "not measured"),
            ("Data flow", "pass"),
            ("CI fit", "pass"),
            ("Review quality", "pass"),
            ("Rollback feasibility", "pass"),
        ]),
        "{facts}"
    );
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.contains("within 5 minutes: success"),
        "the drill against the thresholds"
    );
    assert!(!text.to_ascii_lowercase().contains("<script"), "no scripts");

    // Several logs: the stress log's sessions fail security (weakened), CI fit (a failing
    // check) and maintainability (900 lines); each names its session.
    let stress = dir.root.join("stress.jsonl");
    stress_log(&stress);
    let html = dir.root.join("many.html");
    let out = Command::new(sandbox_bin())
        .arg("report")
        .arg(dir.log_path())
        .arg(&stress)
        .arg("--approved")
        .arg(&diagram)
        .arg("-o")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the stress log deviates");
    let png = artifacts.join("pilot-report-many-sessions-1280.png");
    let facts = layout(&html, &png, 1280);
    let got = statuses(&facts);
    assert_eq!(got.len(), 7, "{facts}");
    for (name, status) in [
        ("Security posture", "fail"),
        ("Maintainability", "fail"),
        ("Developer adoption", "not measured"),
        ("Data flow", "fail"),
        ("CI fit", "fail"),
        ("Review quality", "fail"),
        ("Rollback feasibility", "pass"),
    ] {
        assert!(
            got.contains(&(name.to_string(), status.to_string())),
            "{name} {status}: {got:?}"
        );
    }
    let text = std::fs::read_to_string(&html).unwrap();
    for session in [
        "s-000000000000",
        "failed: cargo test",
        "902 lines changed",
        "ran with weakened protections",
    ] {
        assert!(text.contains(session), "{session}");
    }
    assert_eq!(
        facts["page_scroll_width"], facts["page_client_width"],
        "no sideways scrolling: {facts}"
    );
    assert_eq!(
        facts["wide"],
        json!([]),
        "no section or table wider than its box: {facts}"
    );
    assert!(
        facts["tallest"]["height"].as_f64().unwrap() < 400.0,
        "no towering cell: {facts}"
    );
    assert!(png.exists());
}
