//! Locating the `sandbox` binary that `cargo test --workspace` builds next to the test binaries.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The path of the `sandbox` binary of this build (`target/<profile>/sandbox`).
///
/// Test executables live in `target/<profile>/deps/`; cargo puts the workspace binaries one level
/// up. Panics with the command to run when the binary is missing, because every end-to-end test
/// needs it.
pub fn sandbox_bin() -> PathBuf {
    if let Some(explicit) = std::env::var_os("SANDBOX_BIN") {
        return PathBuf::from(explicit);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps");
    let bin = profile_dir.join("sandbox");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p sandbox` (or `cargo test --workspace`), or set SANDBOX_BIN",
        bin.display()
    );
    bin
}

/// Runs `sandbox ARGS...` to completion and returns its output.
pub fn sandbox_output(args: &[&str]) -> Output {
    Command::new(sandbox_bin())
        .args(args)
        .output()
        .expect("run sandbox")
}
