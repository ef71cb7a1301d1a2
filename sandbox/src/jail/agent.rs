//! The agent's last steps before execve, in the process forked by the init: a new session,
//! the terminal, no capabilities, no_new_privs, Landlock, seccomp, then the command.
//!
//! A failure here is reported on the agent's stderr and ends the process with 125 (set-up),
//! 126 (not executable) or 127 (not found), which the init and the supervisor pass on.

use std::ffi::{CStr, CString, OsStr};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::jail::{
    landlock_rules, seccomp, sys, JailSpec, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_SETUP,
};

fn fail(code: i32, message: &str) -> ! {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "sandbox: {message}");
    let _ = err.flush();
    sys::exit_now(code)
}

fn attach_terminal(slave: &Path) {
    let tty = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave)
    {
        Ok(f) => f,
        Err(e) => fail(
            EXIT_SETUP,
            &format!("open the sandbox terminal {}: {e}", slave.display()),
        ),
    };
    if let Err(e) = sys::set_controlling_terminal(tty.as_fd()) {
        fail(
            EXIT_SETUP,
            &format!("make {} the controlling terminal: {e}", slave.display()),
        );
    }
    for dup in [
        nix::unistd::dup2_stdin,
        nix::unistd::dup2_stdout,
        nix::unistd::dup2_stderr,
    ] {
        if let Err(e) = dup(&tty) {
            fail(EXIT_SETUP, &format!("attach the sandbox terminal: {e}"));
        }
    }
}

/// Where the command resolves: an explicit path, or the first executable match on PATH.
enum Resolved {
    Found(CString),
    NotExecutable(PathBuf),
    NotFound,
}

fn resolve(program: &CStr, search_path: &OsStr) -> Resolved {
    let bytes = program.to_bytes();
    let candidates: Vec<PathBuf> = if bytes.contains(&b'/') {
        vec![PathBuf::from(OsStr::from_bytes(bytes))]
    } else {
        search_path
            .as_bytes()
            .split(|b| *b == b':')
            .map(|dir| {
                let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
                Path::new(OsStr::from_bytes(dir)).join(OsStr::from_bytes(bytes))
            })
            .collect()
    };
    let mut not_executable = None;
    for candidate in candidates {
        let Ok(md) = std::fs::metadata(&candidate) else {
            continue;
        };
        if md.is_dir() {
            not_executable.get_or_insert(candidate);
            continue;
        }
        let Ok(c) = CString::new(candidate.as_os_str().as_bytes()) else {
            continue;
        };
        match nix::unistd::access(c.as_c_str(), nix::unistd::AccessFlags::X_OK) {
            Ok(()) => return Resolved::Found(c),
            Err(_) => {
                not_executable.get_or_insert(candidate);
            }
        }
    }
    match not_executable {
        Some(p) => Resolved::NotExecutable(p),
        None => Resolved::NotFound,
    }
}

/// Hardens the process and execs the agent's command; never returns.
pub fn exec(spec: &JailSpec, slave: Option<&Path>) -> ! {
    if let Err(e) = nix::unistd::setsid() {
        fail(EXIT_SETUP, &format!("setsid: {e}"));
    }
    if let Some(slave) = slave {
        attach_terminal(slave);
    }
    if let Err(e) = sys::close_descriptors_from_3() {
        fail(EXIT_SETUP, &format!("close inherited descriptors: {e}"));
    }
    if let Err(e) = nix::unistd::chdir(&spec.workdir) {
        fail(
            EXIT_SETUP,
            &format!(
                "cannot enter the working directory {}: {e}",
                spec.workdir.display()
            ),
        );
    }
    sys::reset_signals();
    if let Err(e) = sys::apply_limits(&spec.limits) {
        fail(
            EXIT_SETUP,
            &format!("apply the [limits] of the contract: {e}"),
        );
    }
    if let Err(e) = sys::drop_all_capabilities() {
        fail(EXIT_SETUP, &format!("drop capabilities: {e}"));
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        fail(EXIT_SETUP, &format!("set no_new_privs: {e}"));
    }
    if let Err(e) = landlock_rules::restrict_self(&spec.landlock) {
        fail(
            EXIT_SETUP,
            &format!(
                "Landlock refused the ruleset: {e}. This kernel lacks a Landlock feature the sandbox \
                 needs; run `sandbox doctor` for the fix, or pass --best-effort to run with less"
            ),
        );
    }
    let Some(program) = spec.argv.first() else {
        fail(EXIT_SETUP, "no command given");
    };
    let path = match resolve(program, &spec.search_path) {
        Resolved::Found(p) => p,
        Resolved::NotExecutable(p) => fail(
            EXIT_NOT_EXECUTABLE,
            &format!(
                "`{}` ({}) is not executable inside the sandbox: it is a directory, lacks the x bit, \
                 or lies outside the paths the contract lets you execute",
                program.to_string_lossy(),
                p.display()
            ),
        ),
        Resolved::NotFound => fail(
            EXIT_NOT_FOUND,
            &format!(
                "`{}`: command not found inside the sandbox (PATH={}); only system directories, the \
                 workspace and the contract's paths are visible",
                program.to_string_lossy(),
                spec.search_path.to_string_lossy()
            ),
        ),
    };
    if let Err(e) = seccomp::install(&spec.seccomp) {
        fail(EXIT_SETUP, &format!("install the seccomp filter: {e}"));
    }
    let err = match nix::unistd::execve(&path, &spec.argv, &spec.envp) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = if err == Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_NOT_EXECUTABLE
    };
    fail(
        code,
        &format!("cannot execute `{}`: {err}", path.to_string_lossy()),
    )
}
