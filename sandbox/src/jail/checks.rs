//! The contract's `done` checks, run after the agent in the same sandbox: the init forks each
//! command with the agent's file view, environment, Landlock ruleset and seccomp filter, and
//! the proxy still decides its network traffic. The supervisor streams the output to its own
//! stderr and keeps the last lines for the log.
//!
//! Protocol, after `Exited`: the supervisor sends `Check` (time limit in seconds, then the
//! command); the init answers `CheckOutput` with the read end of the check's stdout+stderr
//! pipe, and `CheckDone` (exit code, timed-out flag, or a set-up error) once the check and
//! everything it started are dead. The init ends when the supervisor closes the channel.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::jail::channel::{Channel, Tag, MAX_PAYLOAD};
use crate::jail::supervisor::{Sandbox, SpawnError};
use crate::jail::{agent, init, sys, JailSpec, EXIT_SETUP};

/// The exit code recorded for a check that ran out of time (as `timeout(1)` does).
pub const EXIT_TIMED_OUT: i32 = 124;

/// How much of a check's output the supervisor keeps for the log: the last this many lines...
pub const TAIL_LINES: usize = 20;
/// ...and at most this many bytes of them.
pub const TAIL_BYTES: usize = 4096;

/// What one check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    /// The command, as the contract writes it.
    pub command: String,
    /// Its exit code (128 + signal when killed; [`EXIT_TIMED_OUT`] when out of time).
    pub exit_code: i32,
    /// It ran out of time and was killed.
    pub timed_out: bool,
    /// Wall-clock time from the request to the report.
    pub duration: Duration,
    /// The last lines of its stdout and stderr (at most [`TAIL_LINES`] and [`TAIL_BYTES`]).
    pub output_tail: Vec<u8>,
    /// Why it could not start, if it did not.
    pub error: Option<String>,
}

impl CheckRun {
    /// Exit 0 in time.
    pub fn passed(&self) -> bool {
        self.exit_code == 0 && !self.timed_out && self.error.is_none()
    }
}

// ---- inside: the init ----

/// The init's side, after the agent's exit was reported: runs each requested check until the
/// supervisor closes the channel.
pub fn serve(spec: &JailSpec, chan: &Channel) {
    while let Ok(Some(msg)) = chan.recv() {
        if msg.tag != Tag::Check || msg.payload.len() < 4 {
            continue;
        }
        let mut secs = [0u8; 4];
        secs.copy_from_slice(&msg.payload[..4]);
        let secs = u32::from_le_bytes(secs);
        let reply = match run_inside(spec, &msg.payload[4..], secs, chan) {
            Ok((code, timed_out)) => done_payload(code, timed_out, ""),
            Err(e) => done_payload(EXIT_SETUP, false, &e),
        };
        if chan.send(Tag::CheckDone, &reply, None).is_err() {
            return;
        }
    }
}

fn done_payload(code: i32, timed_out: bool, error: &str) -> Vec<u8> {
    let mut out = code.to_le_bytes().to_vec();
    out.push(u8::from(timed_out));
    let room = MAX_PAYLOAD - out.len();
    out.extend_from_slice(&error.as_bytes()[..error.len().min(room)]);
    out
}

/// Forks `sh -c COMMAND` as the agent was forked, hands the output pipe to the supervisor and
/// waits, killing the check's process group when `secs` run out; afterwards nothing it
/// started is left.
fn run_inside(
    spec: &JailSpec,
    command: &[u8],
    secs: u32,
    chan: &Channel,
) -> Result<(i32, bool), String> {
    let command = CString::new(command).map_err(|_| "the command holds a NUL byte".to_owned())?;
    let mut check = spec.clone();
    check.argv = vec![c"sh".to_owned(), c"-c".to_owned(), command];
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("create the output pipe: {e}"))?;
    let child = match sys::fork_single_threaded().map_err(|e| format!("fork the check: {e}"))? {
        sys::ForkResult::Child => {
            let _ = nix::unistd::dup2_stdout(&write);
            let _ = nix::unistd::dup2_stderr(&write);
            agent::exec(&check, None)
        }
        sys::ForkResult::Parent(child) => child,
    };
    drop(write);
    let sent = chan.send(Tag::CheckOutput, &[], Some(read.as_raw_fd()));
    drop(read);
    if let Err(e) = sent {
        let _ = kill(Pid::from_raw(-child.as_raw()), Signal::SIGKILL);
        kill_the_rest();
        return Err(format!("pass the check's output to the supervisor: {e}"));
    }
    nix::unistd::alarm::set(secs.max(1));
    let result = wait_for(child);
    nix::unistd::alarm::cancel();
    kill_the_rest();
    Ok(result)
}

/// Waits for `child`, forwarding signals to its process group; SIGALRM (the time limit)
/// kills the group.
fn wait_for(child: Pid) -> (i32, bool) {
    let set = init::wait_set();
    let mut timed_out = false;
    loop {
        let Ok(sig) = set.wait() else { continue };
        match sig {
            Signal::SIGCHLD => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, c)) if pid == child => {
                        return (if timed_out { EXIT_TIMED_OUT } else { c }, timed_out)
                    }
                    Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => {
                        let code = if timed_out {
                            EXIT_TIMED_OUT
                        } else {
                            128 + s as i32
                        };
                        return (code, timed_out);
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            Signal::SIGALRM => {
                timed_out = true;
                let _ = kill(Pid::from_raw(-child.as_raw()), Signal::SIGKILL);
                let _ = kill(child, Signal::SIGKILL);
            }
            other => {
                if kill(Pid::from_raw(-child.as_raw()), other).is_err() {
                    let _ = kill(child, other);
                }
            }
        }
    }
}

/// Kills and reaps every process of the pid namespace but the init.
fn kill_the_rest() {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
}

// ---- outside: the supervisor ----

/// The last [`TAIL_LINES`] lines of a stream, at most [`TAIL_BYTES`] bytes, kept while it is
/// read.
#[derive(Debug, Default)]
struct Tail {
    bytes: VecDeque<u8>,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend(data);
        // Keep a margin beyond the bound: the line cut happens at the end.
        let keep = TAIL_BYTES * 2;
        if self.bytes.len() > keep {
            let drop = self.bytes.len() - keep;
            self.bytes.drain(..drop);
        }
    }

    fn finish(self) -> Vec<u8> {
        let all: Vec<u8> = self.bytes.into_iter().collect();
        let body = all.strip_suffix(b"\n").unwrap_or(&all);
        let mut start = 0;
        let mut lines = 0;
        for (i, b) in body.iter().enumerate().rev() {
            if *b == b'\n' {
                lines += 1;
                if lines == TAIL_LINES {
                    start = i + 1;
                    break;
                }
            }
        }
        let mut out = &all[start..];
        if out.len() > TAIL_BYTES {
            out = &out[out.len() - TAIL_BYTES..];
            // Start at a line (or at least a character) boundary.
            if let Some(nl) = out.iter().position(|b| *b == b'\n') {
                out = &out[nl + 1..];
            }
        }
        out.to_vec()
    }
}

impl Sandbox {
    /// Runs `command` in the sandbox after the agent exited (see the module doc), copying its
    /// output to stderr when `echo`, with at most `limit` of time. Signals to the supervisor
    /// (Ctrl-C) go to the check.
    pub fn run_check(
        &mut self,
        command: &str,
        limit: Duration,
        echo: bool,
    ) -> Result<CheckRun, SpawnError> {
        let started = Instant::now();
        let secs = u32::try_from(limit.as_secs().max(1)).unwrap_or(u32::MAX);
        let mut payload = secs.to_le_bytes().to_vec();
        payload.extend_from_slice(command.as_bytes());
        if payload.len() > MAX_PAYLOAD {
            return Err(SpawnError::Protocol(format!(
                "the done command is longer than {} KiB",
                MAX_PAYLOAD / 1024
            )));
        }
        self.chan
            .send(Tag::Check, &payload, None)
            .map_err(|e| SpawnError::Protocol(format!("send a done check: {e}")))?;
        let sfd = SignalFd::with_flags(&init::wait_set(), SfdFlags::SFD_CLOEXEC)
            .map_err(|e| SpawnError::Protocol(format!("signalfd: {e}")))?;
        let mut output: Option<OwnedFd> = None;
        let mut done: Option<(i32, bool, Option<String>)> = None;
        let mut tail = Tail::default();
        let mut buf = vec![0u8; 16 * 1024];
        while done.is_none() || output.is_some() {
            let mut fds = vec![
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.chan.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(out) = &output {
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            }
            if done.is_some() {
                // The check is over: what is left in the pipe is all there is.
                fds.truncate(0);
            }
            if !fds.is_empty() {
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(SpawnError::Protocol(format!("poll: {e}"))),
                }
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| !f.revents().unwrap_or(PollFlags::empty()).is_empty())
                .collect();
            drop(fds);
            if ready.first() == Some(&true) {
                if let Ok(Some(info)) = sfd.read_signal() {
                    if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                        if sig != Signal::SIGCHLD && sig != Signal::SIGALRM {
                            let _ = kill(self.init, sig);
                        }
                    }
                }
            }
            if ready.get(1) == Some(&true) {
                match self.chan.recv() {
                    Ok(Some(msg)) if msg.tag == Tag::CheckOutput && msg.fd.is_some() => {
                        output = msg.fd;
                    }
                    Ok(Some(msg)) if msg.tag == Tag::CheckDone && msg.payload.len() >= 5 => {
                        let mut code = [0u8; 4];
                        code.copy_from_slice(&msg.payload[..4]);
                        let error = (msg.payload.len() > 5)
                            .then(|| String::from_utf8_lossy(&msg.payload[5..]).into_owned());
                        done = Some((i32::from_le_bytes(code), msg.payload[4] == 1, error));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        return Err(SpawnError::Protocol(
                            "the sandbox ended while a done check ran".into(),
                        ))
                    }
                }
            }
            let pipe_ready = ready.get(2) == Some(&true) || done.is_some();
            if let (true, Some(out)) = (pipe_ready, &output) {
                match nix::unistd::read(out, &mut buf) {
                    Ok(0) | Err(_) => output = None,
                    Ok(n) => {
                        tail.push(&buf[..n]);
                        if echo {
                            let mut err = std::io::stderr().lock();
                            let _ = err.write_all(&buf[..n]);
                            let _ = err.flush();
                        }
                    }
                }
            }
        }
        let (exit_code, timed_out, error) = done.unwrap_or((EXIT_SETUP, false, None));
        Ok(CheckRun {
            command: command.to_owned(),
            exit_code,
            timed_out,
            duration: started.elapsed(),
            output_tail: tail.finish(),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_within_the_byte_bound() {
        let mut t = Tail::default();
        for i in 0..100 {
            t.push(format!("line {i}\n").as_bytes());
        }
        let out = String::from_utf8(t.finish()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.first(), Some(&"line 80"));
        assert_eq!(lines.last(), Some(&"line 99"));

        let mut long = Tail::default();
        long.push(&vec![b'x'; 10_000]);
        long.push(b"\nlast line\n");
        let out = long.finish();
        assert!(out.len() <= TAIL_BYTES);
        assert!(out.ends_with(b"last line\n"));

        assert!(Tail::default().finish().is_empty());
    }
}
