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
