//! `sandbox init`, run as the real binary: for every agent and every provider it supports in
//! the EU the contract it writes passes `sandbox check` as written; a combination that cannot
//! stay in the EU, or that the agent does not speak, fails with a message naming why; an
//! existing file is kept without `--force`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use egress_policy::agents::{Provider, PRESETS};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox");

#[path = "../src/jail/test_support.rs"]
mod test_support;
use test_support::Scratch;

fn sandbox(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HOME", "/home/agent")
        .env("PATH", "/usr/bin:/bin")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the sandbox binary")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_agent_and_eu_provider_gives_a_contract_that_checks() {
    let s = Scratch::new("cli-init");
    let dir = s.subdir("ws");
    let mut checked = 0;
    for preset in PRESETS {
        for provider in preset.providers {
            let out = dir.join(format!("{}-{}.toml", preset.name, provider.name()));
            let o = out.to_str().unwrap();
            let args = [
                "init",
                "--agent",
                preset.name,
                "--provider",
                provider.name(),
                "--residency",
                "eu",
                "--azure-resource",
                "pilot",
                "-o",
                o,
            ];
            let r = sandbox(&dir, &args);
            match provider.eu() {
                Ok(_) => {
                    assert!(r.status.success(), "{}", text(&r));
                    let c = sandbox(&dir, &["check", o]);
                    assert!(
                        c.status.success(),
                        "{}\n{}",
                        std::fs::read_to_string(&out).unwrap(),
                        text(&c)
                    );
                    let summary = String::from_utf8_lossy(&c.stdout).into_owned();
                    assert!(summary.contains("residency EU"), "{summary}");
                    assert!(
                        summary
                            .contains(&format!("agent preset: {} ({})", preset.cli, preset.name)),
                        "{summary}"
                    );
                    checked += 1;
                }
                Err(why) => {
                    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
                    let msg = String::from_utf8_lossy(&r.stderr).into_owned();
                    assert!(
                        msg.contains("cannot keep data in the EU") && msg.contains(why),
                        "{msg}"
                    );
                    assert!(!out.exists());
                }
            }
        }
    }
    assert!(checked >= 10, "{checked}");
    // without --provider under EU: the agent's first EU provider, said on stderr
    let out = dir.join("auto.toml");
    let r = sandbox(
        &dir,
        &[
            "init",
            "--agent",
            "claude",
            "--residency",
            "eu",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("provider bedrock"),
        "{}",
        text(&r)
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.contains("bedrock-runtime.eu-central-1.amazonaws.com"),
        "{written}"
    );
    // an existing file is kept without --force
    let r = sandbox(
        &dir,
        &["init", "--agent", "codex", "-o", out.to_str().unwrap()],
    );
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("--force"),
        "{}",
        text(&r)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), written);
    let r = sandbox(
        &dir,
        &[
            "init",
            "--agent",
            "codex",
            "-o",
            out.to_str().unwrap(),
            "--force",
        ],
    );
    assert!(r.status.success(), "{}", text(&r));
    // an agent that does not speak to the provider, an unknown agent, no terminal
    let r = sandbox(
        &dir,
        &["init", "--agent", "gemini", "--provider", "bedrock"],
    );
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("does not support the provider `bedrock`"),
        "{}",
        text(&r)
    );
    let r = sandbox(&dir, &["init", "--agent", "vim"]);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("claude, codex, gemini, aider, opencode"),
        "{}",
        text(&r)
    );
    let r = sandbox(&dir, &["init"]);
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("no terminal"),
        "{}",
        text(&r)
    );
    assert!(String::from_utf8_lossy(&r.stdout).contains("name = \"claude\""));
    // Azure needs its resource
    let r = sandbox(
        &dir,
        &[
            "init",
            "--agent",
            "codex",
            "--provider",
            "azure",
            "--residency",
            "eu",
        ],
    );
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("--azure-resource"),
        "{}",
        text(&r)
    );
    let _ = Provider::ALL;
}

#[test]
fn an_agent_section_that_cannot_stay_in_the_eu_is_a_contract_error() {
    let s = Scratch::new("cli-init-eu");
    let dir = s.subdir("ws");
    let c = dir.join("c.toml");
    std::fs::write(
        &c,
        "version = 1\n[task]\nid = \"T\"\nclass = \"B\"\nobjective = \"o\"\n[agent]\nname = \"claude\"\nprovider = \"anthropic\"\n[network]\nresidency = \"EU\"\n",
    )
    .unwrap();
    let r = sandbox(&dir, &["check", c.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    assert!(
        text(&r).contains("cannot keep data in the EU"),
        "{}",
        text(&r)
    );
}
