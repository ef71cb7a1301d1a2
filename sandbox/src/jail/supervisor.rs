//! The host side: cloning the sandbox, the set-up handshake, and waiting for the agent while
//! forwarding signals and relaying the terminal.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::jail::channel::MAX_PAYLOAD;
use crate::jail::channel::{Channel, Tag};
use crate::jail::{init, pty, sys, wire, JailSpec, LaunchSpec};

/// Why the sandbox could not be created or set up.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// clone() with the namespace flags failed.
    #[error("cannot create the sandbox namespaces (clone: {0}). Unprivileged user namespaces are probably disabled or restricted here; run `sandbox doctor` for the fix")]
    Clone(std::io::Error),
    /// The socketpair failed.
    #[error("cannot create the supervisor channel: {0}")]
    Channel(nix::Error),
    /// The child reported a failed step.
    #[error("setting up the sandbox failed: {0}. If this is a permission error, user namespaces are restricted on this host (AppArmor, a container's seccomp profile); `sandbox doctor` shows the fix")]
    Setup(String),
    /// The child died or spoke out of turn.
    #[error("the sandbox init ended during set-up ({0})")]
    Protocol(String),
}

/// A running sandbox, seen from the supervisor.
#[derive(Debug)]
pub struct Sandbox {
    /// The init's pid (in the host's pid namespace).
    pub init: Pid,
    pub(super) chan: Channel,
    /// The pty master, in interactive sessions.
    pub pty_master: Option<OwnedFd>,
    /// What the session reached of its limits, from the init's report at the agent's exit.
    pub reached: crate::jail::limits::Reached,
}

/// Signals the supervisor handles: forwarded ones plus SIGCHLD. Blocked in every thread.
fn supervisor_set() -> SigSet {
    init::wait_set()
}

/// Blocks the supervisor's signals in the calling thread. Call before any thread exists so that
/// every thread inherits the mask and only the wait loop's signalfd sees them.
pub fn block_signals() -> nix::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&supervisor_set()), None)
}

/// Clones the sandbox. Must be called while the process is single-threaded. The child sets up
/// its namespaces and then waits for [`Sandbox::send_spec`].
pub fn spawn(launch: &LaunchSpec) -> Result<Sandbox, SpawnError> {
    let (ours, theirs) = Channel::pair().map_err(SpawnError::Channel)?;
    // The network namespace is created by the child itself (`init`), first thing: it costs
    // the kernel most of a millisecond, which the child spends while we read the contract.
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    match sys::clone_into_namespaces(flags).map_err(SpawnError::Clone)? {
        sys::CloneResult::Child => {
            drop(ours);
            init::main(launch, &theirs)
        }
        sys::CloneResult::Parent(pid) => {
            drop(theirs);
            Ok(Sandbox {
                init: Pid::from_raw(pid),
                chan: ours,
                pty_master: None,
                reached: Default::default(),
            })
        }
    }
}

impl Sandbox {
    fn next(&mut self, waiting_for: &str) -> Result<crate::jail::channel::Message, SpawnError> {
        loop {
            let msg = self
                .chan
                .recv()
                .map_err(|e| SpawnError::Protocol(format!("reading the channel: {e}")))?
                .ok_or_else(|| SpawnError::Protocol(format!("it exited before {waiting_for}")))?;
            match msg.tag {
                Tag::Failed => {
                    return Err(SpawnError::Setup(
                        String::from_utf8_lossy(&msg.payload).into_owned(),
                    ))
                }
                Tag::PtyMaster => self.pty_master = msg.fd,
                _ => return Ok(msg),
            }
        }
    }

    /// Sends the rest of the sandbox (the file view, the command, its environment, Landlock),
    /// planned from the contract after the clone, in parts of at most [`MAX_PAYLOAD`] bytes.
    pub fn send_spec(&mut self, spec: &JailSpec) -> Result<(), SpawnError> {
        let bytes = wire::encode(spec);
        let mut parts = bytes.chunks(MAX_PAYLOAD).peekable();
        while let Some(part) = parts.next() {
            let tag = if parts.peek().is_some() {
                Tag::SpecPart
            } else {
                Tag::Spec
            };
            self.send(tag, part, "the sandbox spec")?;
        }
        Ok(())
    }

    /// Sends one message; when the child is gone, its own explanation (if it sent one) says
    /// more than the broken pipe.
    fn send(&self, tag: Tag, payload: &[u8], what: &str) -> Result<(), SpawnError> {
        match self.chan.send(tag, payload, None) {
            Ok(()) => Ok(()),
            Err(e @ (nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET)) => {
                Err(self.failure_after(format!("sending {what}: {e}")))
            }
            Err(e) => Err(SpawnError::Protocol(format!("sending {what}: {e}"))),
        }
    }

    /// The child's `Failed` message if it sent one before it closed the channel, else a
    /// protocol error saying `what` went wrong. Call only once the child closed its end.
    fn failure_after(&self, what: String) -> SpawnError {
        loop {
            match self.chan.recv() {
                Ok(Some(msg)) if msg.tag == Tag::Failed => {
                    return SpawnError::Setup(String::from_utf8_lossy(&msg.payload).into_owned())
                }
                Ok(Some(_)) => continue,
                _ => return SpawnError::Protocol(what),
            }
        }
    }

    /// Waits for the proxy listener the child bound inside its network namespace.
    pub fn receive_listener(&mut self) -> Result<TcpListener, SpawnError> {
        let msg = self.next("passing the proxy socket")?;
        match (msg.tag, msg.fd) {
            (Tag::Listener, Some(fd)) => Ok(TcpListener::from(fd)),
            (tag, _) => Err(SpawnError::Protocol(format!(
                "got {tag:?} instead of the proxy socket"
            ))),
        }
    }

    /// Waits for the transparent capture's sockets (`jail::capture`), which the child sends
    /// after the proxy listener, ending with the NFLOG socket.
    pub fn receive_capture(
        &mut self,
    ) -> Result<Vec<(crate::jail::capture::SocketRole, OwnedFd)>, SpawnError> {
        use crate::jail::capture::SocketRole;
        let mut sockets = Vec::new();
        loop {
            let msg = self.next("passing the capture sockets")?;
            let role = msg.payload.first().and_then(|b| SocketRole::from_byte(*b));
            match (msg.tag, role, msg.fd) {
                (Tag::Capture, Some(role), Some(fd)) => {
                    sockets.push((role, fd));
                    if role == SocketRole::Nflog {
                        return Ok(sockets);
                    }
                }
                (tag, _, _) => {
                    return Err(SpawnError::Protocol(format!(
                        "got {tag:?} instead of a capture socket"
                    )))
                }
            }
        }
    }

    /// Sends the session CA certificate (PEM) for the bundle.
    pub fn send_session_ca(&self, pem: &[u8]) -> Result<(), SpawnError> {
        self.send(Tag::SessionCa, pem, "the session CA")
    }

    /// Lets the agent start: with network, the init forks it only after this message, which
    /// the supervisor sends once `session_start` is in the flow log and the capture is served.
    pub fn send_start(&self) -> Result<(), SpawnError> {
        self.send(Tag::Start, &[], "the start signal")
    }

    /// Waits for the pty master of an interactive session (the init sends it once the view is
    /// mounted, before the agent starts).
    pub fn receive_pty(&mut self) -> Result<(), SpawnError> {
        let msg = self
            .chan
            .recv()
            .map_err(|e| SpawnError::Protocol(format!("reading the channel: {e}")))?
            .ok_or_else(|| {
                SpawnError::Protocol("it exited before passing the terminal".to_owned())
            })?;
        match (msg.tag, msg.fd) {
            (Tag::PtyMaster, Some(fd)) => {
                self.pty_master = Some(fd);
                Ok(())
            }
            (Tag::Failed, _) => Err(SpawnError::Setup(
                String::from_utf8_lossy(&msg.payload).into_owned(),
            )),
            (tag, _) => Err(SpawnError::Protocol(format!(
                "got {tag:?} instead of the terminal"
            ))),
        }
    }

    /// Kills the sandbox (every process in it dies with its init).
    pub fn kill(&self) {
        let _ = kill(self.init, Signal::SIGKILL);
        let _ = waitpid(self.init, None);
    }

    /// Waits for the init to exit, forwarding signals and relaying the pty; returns the exit
    /// code (128 + signal when the init was killed), or the init's explanation when the set-up
    /// failed after the last message the supervisor waited for (the agent's fork).
    ///
    /// The init's `Ready` is taken here rather than waited for first: one wake-up fewer.
    ///
    /// After the agent's exit the init lingers until this `Sandbox` is dropped (its channel
    /// closes), so that its namespaces are torn down after the session is finished rather
    /// than during it: keep the `Sandbox` until the `session_end` record is written.
    pub fn wait(&mut self) -> Result<i32, SpawnError> {
        let set = supervisor_set();
        let sfd = match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) {
            Ok(s) => s,
            Err(_) => {
                let code = wait_blocking(self.init);
                return self.unless_failed(code, false);
            }
        };
        let mut ready = false;
        let stdin = std::io::stdin();
        let stdin_fd = stdin.as_fd();
        let _raw = match &self.pty_master {
            Some(master) => {
                pty::copy_window_size(stdin_fd, master);
                pty::RawTerminal::enter(stdin_fd).ok()
            }
            None => None,
        };
        let mut stdin_open = self.pty_master.is_some();
        let mut master_open = self.pty_master.is_some();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if let Some(code) = reap(self.init) {
                if let Some(master) = &self.pty_master {
                    drain(master.as_fd(), &mut buf);
                }
                return self.unless_failed(code, ready);
            }
            let chan_fd = self.chan.as_fd();
            let mut fds = vec![
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(chan_fd, PollFlags::POLLIN),
            ];
            let master_fd = self.pty_master.as_ref().map(|m| m.as_fd());
            if let (true, Some(m)) = (master_open, master_fd) {
                fds.push(PollFd::new(m, PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    let code = wait_blocking(self.init);
                    return self.unless_failed(code, ready);
                }
            }
            let revents: Vec<PollFlags> = fds
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            if !revents[0].is_empty() {
                while let Ok(Some(info)) = sfd.read_signal() {
                    let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                        continue;
                    };
                    match sig {
                        Signal::SIGCHLD => {}
                        Signal::SIGWINCH => {
                            if let Some(m) = &self.pty_master {
                                pty::copy_window_size(stdin_fd, m);
                            }
                        }
                        // The init's own timer for `done` checks, never forwarded.
                        Signal::SIGALRM => {}
                        other => {
                            let _ = kill(self.init, other);
                        }
                    }
                    break;
                }
            }
            if !revents[1].is_empty() {
                match self.chan.recv() {
                    Ok(Some(msg)) if msg.tag == Tag::Ready => ready = true,
                    Ok(Some(msg)) if msg.tag == Tag::Failed => {
                        self.kill();
                        return Err(SpawnError::Setup(
                            String::from_utf8_lossy(&msg.payload).into_owned(),
                        ));
                    }
                    Ok(Some(msg)) if msg.tag == Tag::Exited && msg.payload.len() == 16 => {
                        if let Some(master) = &self.pty_master {
                            drain(master.as_fd(), &mut buf);
                        }
                        let p = &msg.payload;
                        let code: [u8; 4] = p[0..4].try_into().expect("4 bytes");
                        self.reached = crate::jail::limits::Reached {
                            peak_tasks: u32::from_le_bytes(p[4..8].try_into().expect("4 bytes")),
                            peak_rss_bytes: u64::from_le_bytes(
                                p[8..16].try_into().expect("8 bytes"),
                            ),
                        };
                        // The init exits when our channel closes (or with us, by
                        // PR_SET_PDEATHSIG).
                        return Ok(i32::from_le_bytes(code));
                    }
                    // Closed or unexpected: fall back to waiting for the init itself.
                    _ => {
                        let code = wait_blocking(self.init);
                        return self.unless_failed(code, ready);
                    }
                }
            }
            let mut i = 2;
            if master_open && master_fd.is_some() {
                if !revents[i].is_empty() {
                    let m = master_fd.unwrap_or(stdin_fd);
                    match nix::unistd::read(m, &mut buf) {
                        Ok(0) | Err(_) => master_open = false,
                        Ok(n) => {
                            let mut out = std::io::stdout().lock();
                            let _ = out.write_all(&buf[..n]);
                            let _ = out.flush();
                        }
                    }
                }
                i += 1;
            }
            if stdin_open && !revents[i].is_empty() {
                match std::io::stdin().lock().read(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        if let Some(m) = &self.pty_master {
                            if write_all(m.as_fd(), &buf[..n]).is_err() {
                                stdin_open = false;
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Sandbox {
    /// After the init was reaped with `code`: its `Failed` explanation if the agent never
    /// started and one is queued on the channel (the init is gone, so reading cannot block
    /// for long), else `code`.
    fn unless_failed(&self, code: i32, ready: bool) -> Result<i32, SpawnError> {
        if ready {
            return Ok(code);
        }
        while let Ok(Some(msg)) = self.chan.recv() {
            match msg.tag {
                Tag::Failed => {
                    return Err(SpawnError::Setup(
                        String::from_utf8_lossy(&msg.payload).into_owned(),
                    ))
                }
                Tag::Ready => return Ok(code),
                _ => {}
            }
        }
        Ok(code)
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copies what is left in the pty to stdout after the agent exited.
fn drain(master: BorrowedFd<'_>, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(
        master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut out = std::io::stdout().lock();
    while let Ok(n) = nix::unistd::read(master, buf) {
        if n == 0 {
            break;
        }
        let _ = out.write_all(&buf[..n]);
    }
    let _ = out.flush();
}

fn status_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

fn reap(init: Pid) -> Option<i32> {
    waitpid(init, Some(WaitPidFlag::WNOHANG))
        .ok()
        .and_then(status_code)
}

fn wait_blocking(init: Pid) -> i32 {
    loop {
        match waitpid(init, None) {
            Ok(s) => {
                if let Some(c) = status_code(s) {
                    return c;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return crate::jail::EXIT_SETUP,
        }
    }
}
