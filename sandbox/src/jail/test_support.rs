//! Test helpers shared by the `jail` modules' unit tests and, through `#[path]`, by the
//! crate's integration tests (`tests/cli_check.rs`, `tests/run_setup_failures.rs`); each user
//! needs only some of the methods.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// A scratch directory under the system temporary directory, removed (with its contents) when
/// dropped. Its path is canonical, so that tests can compare it with resolved paths.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// Creates `sandbox-{name}-{pid}` in the temporary directory, emptied first if a previous
    /// run left it behind. `name` must be unique among the crate's tests (they run in parallel).
    pub(crate) fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sandbox-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(fs::canonicalize(dir).unwrap())
    }

    /// The directory's canonical path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Creates the directory `rel` (and its parents) inside the scratch directory and returns
    /// its path.
    pub(crate) fn subdir(&self, rel: &str) -> PathBuf {
        let dir = self.0.join(rel);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes `text` to the file `name` inside the scratch directory and returns its path.
    pub(crate) fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
