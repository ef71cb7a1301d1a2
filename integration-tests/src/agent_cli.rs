//! The real agent CLIs for the compatibility tests: installed once per pinned version into a
//! cache outside the checkout (`$SANDBOX_IT_CACHE`, default `/var/cache/sandbox-it`), and a
//! contract for one from `sandbox init`, adapted to the test (the CLI's directory readable, the
//! log in the test directory).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bin::sandbox_bin;
use crate::sandbox_harness::TestDir;

/// Installs `package@version` with npm into the cache (once) and returns its directory.
pub fn npm_cached(package: &str, version: &str) -> PathBuf {
    let root = std::env::var_os("SANDBOX_IT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/sandbox-it"));
    let name = package.trim_start_matches('@').replace('/', "-");
    let dir = root.join(format!("{name}-{version}"));
    let marker = dir.join(".installed");
    if marker.exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("create the CLI cache");
    let out = Command::new("npm")
        .args(["install", "--prefix"])
        .arg(&dir)
        .arg(format!("{package}@{version}"))
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .output()
        .expect("run npm (install Node.js with its npm)");
    assert!(
        out.status.success(),
        "could not install {package}@{version} from the npm registry (is it reachable?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, version).expect("mark the cache entry");
    dir
}

/// `sandbox init --agent AGENT --provider PROVIDER [--residency eu]` as written, with `cli`
/// made readable, `done` set and the log moved into `dir`.
pub fn init_contract(
    dir: &TestDir,
    agent: &str,
    provider: &str,
    eu: bool,
    cli: &Path,
    done: &str,
) -> PathBuf {
    let out = dir.root.join("init.toml");
    let mut cmd = Command::new(sandbox_bin());
    cmd.args([
        "init",
        "--agent",
        agent,
        "--provider",
        provider,
        "--force",
        "-o",
    ])
    .arg(&out)
    .env("PATH", "/usr/bin:/bin");
    if eu {
        cmd.args(["--residency", "eu"]);
    }
    let o = cmd.output().expect("run sandbox init");
    assert!(
        o.status.success(),
        "sandbox init: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("read the contract sandbox init wrote");
    let text = text
        .replace(
            "write = [\".\"]  #",
            &format!("read = [\"{}\"]\nwrite = [\".\"]  #", cli.display()),
        )
        .replace("done = []", &format!("done = [{done:?}]"))
        .replace(
            &format!("path = \"~/.local/state/sandbox/{agent}-flows.jsonl\""),
            &format!("path = \"{}\"", dir.log_path().display()),
        );
    assert!(
        text.contains(&dir.log_path().display().to_string()),
        "{text}"
    );
    dir.write("contract.toml", &text)
}

/// Installs the pinned `package@version` (once) and checks that its `bin` reports that
/// version; returns the package directory and the binary.
pub fn pinned_cli(package: &str, version: &str, bin: &str) -> (PathBuf, PathBuf) {
    let dir = npm_cached(package, version);
    let binary = dir.join("node_modules/.bin").join(bin);
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(version),
        "{bin} --version: {out:?}"
    );
    (dir, binary)
}

/// One agent session: `sandbox run --contract CONTRACT --connect-to CONNECT --upstream-ca
/// (dir/upstream-ca.pem) -- sh -c ...` as `user`, bounded at 120 s. The script saves the
/// agent's environment to `agent-env.txt` in the workspace, runs `command` and prints
/// `TAG-EXIT <code>`. `host_env` are the variables of `sandbox run` itself (the real keys),
/// `host_env_removed` the ones it must not have.
#[allow(clippy::too_many_arguments)]
pub fn run_agent(
    user: crate::users::User,
    dir: &TestDir,
    contract: &Path,
    connect: &str,
    upstream_ca_pem: &str,
    command: &str,
    tag: &str,
    host_env: &[(&str, &str)],
    host_env_removed: &[&str],
) -> crate::sandbox_harness::RunOutput {
    let ca = dir.write("upstream-ca.pem", upstream_ca_pem);
    let script = format!("env > \"$PWD/agent-env.txt\"\n{command}\necho \"{tag}-EXIT $?\"\n");
    let mut cmd = crate::sandbox_harness::run_command(
        user,
        dir,
        &[
            "--contract",
            contract.to_str().expect("a UTF-8 path"),
            "--connect-to",
            connect,
            "--upstream-ca",
            ca.to_str().expect("a UTF-8 path"),
        ],
        &script,
    );
    for (k, v) in host_env {
        cmd.env(k, v);
    }
    for k in host_env_removed {
        cmd.env_remove(k);
    }
    crate::sandbox_harness::wait_bounded(
        cmd.spawn().expect("spawn sandbox run"),
        std::time::Duration::from_secs(120),
    )
}

/// The credentials never reached the agent: not in its environment (`agent-env.txt`), its
/// output, any file in the workspace, nor the flow log `log`. Returns the environment.
pub fn assert_never_inside(
    dir: &TestDir,
    out: &crate::sandbox_harness::RunOutput,
    log: &str,
    secrets: &[&str],
) -> String {
    let env = std::fs::read_to_string(dir.workspace.join("agent-env.txt"))
        .expect("the agent saved its environment");
    for s in secrets {
        assert!(!env.contains(s), "in the agent's environment: {env}");
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "in the agent's output"
        );
        assert!(
            crate::sandbox_harness::file_containing(&dir.workspace, s).is_none(),
            "in a file the agent wrote"
        );
        assert!(!log.contains(s), "in the flow log");
    }
    env
}
