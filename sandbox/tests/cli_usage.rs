//! Usage errors: `sandbox run` keeps every exit code below 125 for the agent, so its own usage
//! errors exit 125; every other subcommand exits 2; help and version exit 0.

use std::process::Command;

fn code(args: &[&str]) -> i32 {
    let out = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(args)
        .output()
        .expect("run sandbox");
    out.status.code().expect("exited normally")
}

#[test]
fn run_usage_errors_exit_125_and_others_exit_2() {
    assert_eq!(code(&["run"]), 125, "run without a command");
    assert_eq!(
        code(&["run", "--contract"]),
        125,
        "run --contract without a value"
    );
    assert_eq!(code(&["check"]), 2, "check without a contract");
    assert_eq!(code(&["check", "--no-such-flag", "x.toml"]), 2);
    assert_eq!(code(&[]), 2, "no subcommand");
    assert_eq!(code(&["no-such-subcommand"]), 2);
}

#[test]
fn help_and_version_exit_0() {
    assert_eq!(code(&["--help"]), 0);
    assert_eq!(code(&["--version"]), 0);
    assert_eq!(code(&["run", "--help"]), 0);
    assert_eq!(code(&["check", "--help"]), 0);
}
