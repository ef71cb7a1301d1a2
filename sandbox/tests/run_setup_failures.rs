//! `sandbox run` clones the sandbox before it reads the contract (the namespaces are built while
//! the contract is planned). A failure found after the clone must still stop everything: exit
//! 125 with the contract's own message, the agent never started, nothing left on the host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox");

#[path = "../src/jail/test_support.rs"]
mod test_support;
use test_support::Scratch;

/// A scratch directory with the agent's workspace `ws` in it.
fn ws_scratch(name: &str) -> Scratch {
    let s = Scratch::new(name);
    s.subdir("ws");
    s
}

/// The workspace of `s`.
fn ws(s: &Scratch) -> PathBuf {
    s.path().join("ws")
}

const CONTRACT: &str = include_str!("fixtures/contract-setup-failures.toml");

/// Runs `sandbox run` with `args`, the agent being a shell that leaves `ran` in the workspace.
fn run(s: &Scratch, args: &[&str]) -> Output {
    let marker = ws(s).join("ran");
    Command::new(BIN)
        .arg("run")
        .arg("--workspace")
        .arg(ws(s))
        .args(args)
        .arg("--")
        .arg("/bin/sh")
        .arg("-c")
        .arg(format!("touch {}", marker.display()))
        .env_remove("SETUP_TEST_UNSET_KEY")
        .output()
        .expect("run sandbox")
}

fn assert_refused_before_the_agent(s: &Scratch, out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "stderr: {stderr}");
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in: {stderr}"
    );
    assert!(
        !ws(s).join("ran").exists(),
        "the agent ran although the set-up failed: {stderr}"
    );
    // The mount point planned for the missing deny path is removed again.
    assert!(
        !ws(s).join("not-yet").exists(),
        "a placeholder was left in the workspace: {stderr}"
    );
}

#[test]
fn an_unreadable_upstream_ca_stops_the_cloned_sandbox_before_the_agent() {
    let s = ws_scratch("run-setup-ca");
    let contract = s.file("c.toml", CONTRACT);
    let missing = s.path().join("no-such-ca.pem");
    let out = run(
        &s,
        &[
            "--contract",
            &contract.display().to_string(),
            "--upstream-ca",
            &missing.display().to_string(),
        ],
    );
    assert_refused_before_the_agent(&s, &out, "cannot read --upstream-ca");
}

#[test]
fn a_missing_injected_credential_stops_the_cloned_sandbox_before_the_agent() {
    let s = ws_scratch("run-setup-inject");
    let with_inject = CONTRACT.replace(
        "paths = [\"^/v1/chat/completions$\"]",
        "paths = [\"^/v1/chat/completions$\"]\ninject = { header = \"authorization\", env = \"SETUP_TEST_UNSET_KEY\" }",
    );
    let contract = s.file("c.toml", &with_inject);
    let out = run(&s, &["--contract", &contract.display().to_string()]);
    assert_refused_before_the_agent(&s, &out, "injects $SETUP_TEST_UNSET_KEY but it is not set");
}

#[test]
fn an_invalid_contract_is_reported_as_such_and_nothing_runs() {
    let s = ws_scratch("run-setup-invalid");
    let contract = s.file(
        "c.toml",
        &CONTRACT.replace("residency = \"EU\"", "residency = 7"),
    );
    let out = run(&s, &["--contract", &contract.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "stderr: {stderr}");
    assert!(stderr.contains("is invalid"), "stderr: {stderr}");
    assert!(!ws(&s).join("ran").exists(), "the agent ran: {stderr}");
    assert!(!Path::new(&ws(&s).join("not-yet")).exists());
}

/// The init fails while mounting the view (a `$HOME` below a file cannot get its tmpfs): the
/// supervisor reports the init's own explanation, with and without network, whichever message
/// it was sending or waiting for when the init gave up.
#[test]
fn a_failure_inside_the_sandbox_is_reported_with_the_inits_explanation() {
    for network in [false, true] {
        let s = ws_scratch(if network {
            "run-setup-init-net"
        } else {
            "run-setup-init"
        });
        let contract = s.file("c.toml", CONTRACT);
        let mut args = vec!["--contract".to_owned(), contract.display().to_string()];
        if !network {
            args.clear();
        }
        let marker = ws(&s).join("ran");
        let out = Command::new(BIN)
            .current_dir(ws(&s))
            .arg("run")
            .arg("--workspace")
            .arg(ws(&s))
            .args(&args)
            .arg("--")
            .arg("/bin/sh")
            .arg("-c")
            .arg(format!("touch {}", marker.display()))
            .env("HOME", "/dev/null/home")
            .output()
            .expect("run sandbox");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "network {network}: {stderr}");
        assert!(
            stderr.contains("create mount point /dev/null/home"),
            "network {network}: the init's explanation is missing: {stderr}"
        );
        assert!(
            !marker.exists(),
            "network {network}: the agent ran: {stderr}"
        );
    }
}
