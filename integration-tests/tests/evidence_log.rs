//! `sandbox log verify` and `sandbox log summary` on synthetic logs written per
//! docs/flow-log.md: tampering of any kind is detected and named by line, truncation is not
//! forgery, summaries aggregate and filter, and pipes get no colour.

use std::path::Path;
use std::process::{Command, Output};

use integration_tests::bin::{sandbox_bin, sandbox_output};
use integration_tests::gateway::Scratch;
use integration_tests::synthetic_log::{write_pilot_scenario, Request, SyntheticLog};

/// A scratch directory, removed when the test ends.
fn temp_dir(name: &str) -> Scratch {
    Scratch::new(&format!("evidence-log-{name}"))
}

fn sandbox(args: &[&str]) -> Output {
    sandbox_output(args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn verify(path: &Path) -> Output {
    sandbox(&["log", "verify", path.to_str().unwrap()])
}

#[test]
fn intact_log_verifies() {
    let dir = temp_dir("intact");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    let out = verify(&log);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("intact, 12 records"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains('\x1b'), "colour in a pipe");
    let json = sandbox(&["log", "verify", "--json", log.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["intact"], true);
    assert_eq!(v["files"][0]["status"], "intact");
    assert_eq!(v["files"][0]["records"], 12);
}

#[test]
fn colour_only_on_a_terminal() {
    let dir = temp_dir("tty");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    // `script` (util-linux) runs the command on a pseudo-terminal.
    let command = format!("{} log summary {}", sandbox_bin().display(), log.display());
    let run = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec", &command, "/dev/null"]);
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        c.output().expect("run script (apt-get install util-linux)")
    };
    let tty = run(false);
    assert_eq!(tty.status.code(), Some(0), "{}", stdout(&tty));
    assert!(tty.stdout.contains(&0x1b), "no colour on a terminal");
    let no_color = run(true);
    assert!(!no_color.stdout.contains(&0x1b), "colour despite NO_COLOR");
}

#[test]
fn editing_any_single_byte_is_detected_and_named() {
    let dir = temp_dir("bytes");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    let original = std::fs::read(&log).unwrap();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            original
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let line_of = |offset: usize| line_starts.iter().filter(|s| **s <= offset).count();
    let tampered = dir.join("tampered.jsonl");
    // Every byte of the third line and a sample across the file (every 7th byte): each edit
    // is caught, and the named line is the edited one (or, for an edited newline, the line
    // it ended).
    let third = line_starts[2]..line_starts[3];
    let offsets: Vec<usize> = third.chain((0..original.len()).step_by(7)).collect();
    for offset in offsets {
        let mut bytes = original.clone();
        bytes[offset] = if bytes[offset] == b'x' { b'y' } else { b'x' };
        std::fs::write(&tampered, &bytes).unwrap();
        let out = verify(&tampered);
        let text = stdout(&out);
        let last_byte = offset == original.len() - 1;
        if last_byte {
            // The final newline replaced: the last line is cut off, reported as truncated.
            assert!(text.contains("truncated"), "offset {offset}: {text}");
            continue;
        }
        assert_eq!(
            out.status.code(),
            Some(1),
            "edit at offset {offset} not detected: {text}"
        );
        let line = line_of(offset);
        assert!(
            text.contains(&format!(":{line}: NOT INTACT")),
            "edit at offset {offset} (line {line}) named wrongly: {text}"
        );
    }
}

#[test]
fn deletion_insertion_reordering_are_detected() {
    let dir = temp_dir("order");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let check = |name: &str, new_lines: Vec<&str>, bad_line: usize| {
        let path = dir.join(format!("{name}.jsonl"));
        std::fs::write(&path, new_lines.join("\n") + "\n").unwrap();
        let out = verify(&path);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stdout(&out));
        assert!(
            stdout(&out).contains(&format!(":{bad_line}: NOT INTACT")),
            "{name}: {}",
            stdout(&out)
        );
    };
    let mut deleted = lines.clone();
    deleted.remove(4);
    check("deleted", deleted, 5);
    let mut inserted = lines.clone();
    inserted.insert(3, lines[7]);
    check("inserted", inserted, 4);
    let mut swapped = lines.clone();
    swapped.swap(2, 6);
    check("swapped", swapped, 3);
    let mut head_removed = lines.clone();
    head_removed.remove(0);
    check("head-removed", head_removed, 1);
    let mut blank = lines.clone();
    blank.insert(2, "");
    check("blank-line", blank, 3);
}

#[test]
fn truncation_is_not_forgery() {
    let dir = temp_dir("trunc");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    let bytes = std::fs::read(&log).unwrap();
    let cut = dir.join("cut.jsonl");
    std::fs::write(&cut, &bytes[..bytes.len() - 30]).unwrap();
    let out = verify(&cut);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("truncated at line 12"), "{text}");
    assert!(text.contains("not forged"), "{text}");
    let strict = sandbox(&["log", "verify", "--strict", cut.to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(1));
    // Several files: one broken file fails the whole run and is named.
    let mut broken = bytes.clone();
    broken[200] ^= 0x01;
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, &broken).unwrap();
    let out = sandbox(&[
        "log",
        "verify",
        log.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("{}: intact", log.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}:1: NOT INTACT", bad.display())),
        "{text}"
    );
    // A missing file is not intact, and says why.
    let out = sandbox(&["log", "verify", dir.join("missing.jsonl").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("cannot open"), "{}", stdout(&out));
}

#[test]
fn summary_tables_filters_and_json() {
    let dir = temp_dir("summary");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    let path = log.to_str().unwrap();
    let out = sandbox(&["log", "summary", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains('\x1b'), "colour in a pipe: {text}");
    let mistral = text
        .lines()
        .find(|l| l.starts_with("api.eu.mistral.ai"))
        .expect(&text);
    let cols: Vec<&str> = mistral.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["3", "3", "0"], "{mistral}");
    assert!(
        mistral.contains("5.9 KiB"),
        "bytes out 2000+2001+2002: {mistral}"
    );
    assert!(mistral.contains("26.4 KiB"), "bytes in 3*9000: {mistral}");
    assert!(mistral.contains("/v1/chat/completions (3)"), "{mistral}");
    assert!(
        mistral.contains("EU") && mistral.contains("FR"),
        "{mistral}"
    );
    assert!(
        text.contains("residency: api.openai.com is global (US)"),
        "{text}"
    );
    assert!(
        text.contains("no rule allows host paste.evil.example"),
        "{text}"
    );
    assert!(text.contains("claude -p fix the parser"), "{text}");
    assert!(text.contains("tasks/fix-parser.toml"), "{text}");

    let json = sandbox(&["log", "summary", "--json", path]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let m = &v["destinations"]["api.eu.mistral.ai"];
    assert_eq!(m["flows"], 3);
    assert_eq!(m["tunnels"], 1);
    assert_eq!(
        m["bytes_out"], 6003,
        "tunnel bytes are not added to its requests' bytes"
    );
    assert_eq!(m["bytes_in"], 27000);
    assert_eq!(v["denials"].as_array().unwrap().len(), 2);
    assert_eq!(v["sessions"]["s-0123456789abcdef"]["exit_code"], 0);
    assert_eq!(v["sessions"]["s-0123456789abcdef"]["class"], "B");
    assert_eq!(v["files"][0]["status"], "intact");

    let denied = sandbox(&["log", "summary", "--json", "--denied", path]);
    let v: serde_json::Value = serde_json::from_slice(&denied.stdout).unwrap();
    let hosts: Vec<&String> = v["destinations"].as_object().unwrap().keys().collect();
    assert_eq!(hosts, ["api.openai.com", "paste.evil.example"]);

    let host = sandbox(&["log", "summary", "--json", "--host", "*.mistral.ai", path]);
    let v: serde_json::Value = serde_json::from_slice(&host.stdout).unwrap();
    assert_eq!(v["destinations"].as_object().unwrap().len(), 1);
    assert_eq!(v["denials"].as_array().unwrap().len(), 0);

    let other = sandbox(&[
        "log",
        "summary",
        "--json",
        "--session",
        "s-ffffffffffffffff",
        path,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    assert_eq!(v["matched"], 0);

    // Records are 1 ms apart from 10:00:00.001: the first five are session_start, the
    // CONNECT and the first request's decision/end and the second decision.
    let until = sandbox(&[
        "log",
        "summary",
        "--json",
        "--until",
        "2026-11-21T10:00:00.005Z",
        path,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&until.stdout).unwrap();
    assert_eq!(v["matched"], 5, "{v}");
    let since = sandbox(&[
        "log",
        "summary",
        "--json",
        "--since",
        "2026-11-21T11:00:00+01:00",
        "--until",
        "2026-11-21T10:00:00.002Z",
        path,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&since.stdout).unwrap();
    assert_eq!(v["matched"], 2, "{v}");

    let bad = sandbox(&["log", "summary", "--since", "yesterday", path]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a time"));
}

#[test]
fn log_content_cannot_drive_the_terminal() {
    let dir = temp_dir("escape");
    let log = dir.join("flows.jsonl");
    let mut w = SyntheticLog::create(&log).unwrap();
    let mut req = Request::new("evil.example", "POST", "/\u{1b}[2J\u{1b}]0;pwned\u{7}");
    req.rule = None;
    w.denied(&req, "denied \u{1b}[31m").unwrap();
    w.finish().unwrap();
    let out = sandbox(&["log", "summary", log.to_str().unwrap()]);
    assert!(!out.stdout.contains(&0x1b), "{}", stdout(&out));
    assert!(!out.stdout.contains(&0x07));
}

#[test]
fn anchors_detect_removed_tails_and_rewritten_chains() {
    let dir = temp_dir("anchor");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let hash_of = |line: &str| -> String {
        serde_json::from_str::<serde_json::Value>(line).unwrap()["hash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let lines: Vec<&str> = text.lines().collect();
    let anchor = hash_of(lines[9]);
    let ok = sandbox(&["log", "verify", "--anchor", &anchor, log.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains(&format!("anchor {anchor}: found at {}:10", log.display())));

    // Whole lines removed from the end leave an intact chain: only the anchor shows it.
    let cut = dir.join("cut.jsonl");
    std::fs::write(&cut, lines[..8].join("\n") + "\n").unwrap();
    let plain = sandbox(&["log", "verify", cut.to_str().unwrap()]);
    assert_eq!(plain.status.code(), Some(0), "{}", stdout(&plain));
    let anchored = sandbox(&["log", "verify", "--anchor", &anchor, cut.to_str().unwrap()]);
    assert_eq!(anchored.status.code(), Some(1), "{}", stdout(&anchored));
    assert!(
        stdout(&anchored).contains("NOT FOUND"),
        "{}",
        stdout(&anchored)
    );

    // A chain rewritten from scratch (different content, valid hashes) lacks the anchor too.
    let rewritten = dir.join("rewritten.jsonl");
    let mut w = SyntheticLog::create(&rewritten).unwrap();
    w.set_session("s-0123456789abcdef");
    for _ in 0..12 {
        w.allowed(&Request::new(
            "api.eu.mistral.ai",
            "POST",
            "/v1/chat/completions",
        ))
        .unwrap();
    }
    w.finish().unwrap();
    let out = sandbox(&[
        "log",
        "verify",
        "--anchor",
        &anchor,
        rewritten.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    let bad = sandbox(&["log", "verify", "--anchor", "xyz", log.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
}
