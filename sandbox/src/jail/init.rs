//! Pid 1 of the sandbox: sets the namespaces up, starts the agent, reaps zombies and forwards
//! signals. Runs in the child of the supervisor's clone, single-threaded, with the capabilities
//! of the new user namespace (never handed to the agent).

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{listen, Backlog};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::jail::channel::{Channel, Tag, MAX_PAYLOAD};
use crate::jail::{agent, capture, checks, mounts, sys, wire, JailSpec, LaunchSpec, EXIT_SETUP};

/// Signals the init forwards to the agent (and blocks for itself).
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
];

/// The signal set the init waits on: the forwarded ones plus SIGCHLD and SIGALRM (the time
/// limit of a `done` check, `jail::checks`).
pub fn wait_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    set.add(Signal::SIGALRM);
    set
}

/// The child's entry point after the clone; never returns.
pub fn main(launch: &LaunchSpec, chan: &Channel) -> ! {
    let code = match set_up(launch, chan) {
        Ok((agent, spec)) => {
            let (code, peak_tasks) = supervise(agent);
            let mut report = code.to_le_bytes().to_vec();
            report.extend_from_slice(&peak_tasks.to_le_bytes());
            report.extend_from_slice(&sys::children_max_rss_bytes().to_le_bytes());
            // Tell the supervisor now, and exit only once it has: tearing down the mounts
            // and the network namespace at the init's exit takes a while, and nothing in the
            // sandbox is left to wait for it (the agent and everything else in the pid
            // namespace is dead and reaped). The supervisor's channel closes when it exits,
            // or PR_SET_PDEATHSIG kills the init then.
            // Until then it runs the contract's `done` checks the supervisor asks for.
            if chan.send(Tag::Exited, &report, None).is_ok() {
                checks::serve(&spec, chan);
            }
            code
        }
        Err(message) => {
            let _ = chan.send(Tag::Failed, message.as_bytes(), None);
            EXIT_SETUP
        }
    };
    sys::exit_now(code)
}

fn write_id_maps(uid: u32, gid: u32) -> Result<(), String> {
    let w =
        |path: &str, text: String| fs::write(path, text).map_err(|e| format!("write {path}: {e}"));
    w("/proc/self/setgroups", "deny".to_owned())?;
    w("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    w("/proc/self/gid_map", format!("{gid} {gid} 1\n"))
}

fn bind_listener(port: u16) -> Result<std::os::fd::OwnedFd, String> {
    // Std binds with SO_REUSEADDR and close-on-exec; listen() again raises the backlog.
    let listener = std::net::TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("bind 127.0.0.1:{port} inside the sandbox: {e}"))?;
    listen(&listener, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| format!("listen on 127.0.0.1:{port}: {e}"))?;
    Ok(listener.into())
}

/// Largest encoded spec the init accepts (the environment and the arguments are bounded by
/// the kernel's ARG_MAX well below this).
const MAX_SPEC: usize = 64 * 1024 * 1024;

/// Receives the [`JailSpec`] the supervisor planned from the contract (`Sandbox::send_spec`).
fn receive_spec(chan: &Channel) -> Result<JailSpec, String> {
    let mut bytes = Vec::new();
    loop {
        let msg = chan
            .recv()
            .map_err(|e| format!("receive the sandbox spec: {e}"))?
            .ok_or_else(|| "the supervisor went away before sending the sandbox spec".to_owned())?;
        if bytes.len() + msg.payload.len() > MAX_SPEC {
            return Err(format!(
                "the sandbox spec is larger than {} MiB",
                MAX_SPEC / (1024 * 1024)
            ));
        }
        bytes.extend_from_slice(&msg.payload);
        match msg.tag {
            Tag::SpecPart if msg.payload.len() == MAX_PAYLOAD => {}
            Tag::Spec => break,
            tag => {
                return Err(format!(
                    "unexpected message {tag:?} ({} bytes) instead of the sandbox spec",
                    msg.payload.len()
                ))
            }
        }
    }
    wire::decode(&bytes).map_err(|e| e.to_string())
}

/// Everything up to the agent's fork. Errors are one line naming the step.
fn set_up(launch: &LaunchSpec, chan: &Channel) -> Result<(Pid, JailSpec), String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    block_signals().map_err(|e| format!("block signals in the init: {e}"))?;
    // Before anything touches the network: from here on the only interface is our own `lo`.
    // The namespace belongs to the sandbox's user namespace, as if the clone had created it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("create the sandbox's network namespace (unshare): {e}"))?;
    write_id_maps(launch.uid, launch.gid)?;
    nix::unistd::sethostname("sandbox").map_err(|e| format!("sethostname: {e}"))?;
    // The listener first, so that the supervisor can start the proxy as soon as it has planned.
    sys::bring_loopback_up().map_err(|e| format!("bring up lo: {e}"))?;
    if let Some(port) = launch.proxy_port {
        let listener = bind_listener(port)?;
        chan.send(Tag::Listener, &[], Some(listener.as_raw_fd()))
            .map_err(|e| format!("pass the proxy socket to the supervisor: {e}"))?;
        // Transparent capture of clients that ignore the proxy variables (issue 6), set up
        // while the supervisor starts the proxy.
        capture::set_up(chan)?;
    }
    mounts::enter_new_root().map_err(|e| e.to_string())?;
    let master = mounts::mount_proc_and_dev(launch.interactive).map_err(|e| e.to_string())?;
    // All of the above ran while the supervisor read the contract; the view comes from it.
    let spec = receive_spec(chan)?;
    if let Some(pid_max) = spec.limits.pid_max {
        // This pid namespace's own (Linux 6.14 and later; the supervisor checked the kernel,
        // since on an older one the knob is the host's).
        fs::write("/proc/sys/kernel/pid_max", pid_max.to_string())
            .map_err(|e| format!("limit the processes of the sandbox (pid_max): {e}"))?;
    }
    mounts::seal_proc_knobs().map_err(|e| e.to_string())?;
    mounts::apply_view(&spec.mounts).map_err(|e| e.to_string())?;
    for (path, contents) in &spec.home_files {
        write_home_file(path, contents)?;
    }
    let mut slave: Option<PathBuf> = None;
    if let Some(master) = &master {
        let n = sys::unlock_pty(master.as_fd()).map_err(|e| format!("unlock the pty: {e}"))?;
        slave = Some(PathBuf::from(format!("/dev/pts/{n}")));
        // The agent's terminal starts with the user's size (the init's stdin is still the
        // user's terminal): the agent may ask before the supervisor relays any resize.
        let stdin = std::io::stdin();
        if let Ok(ws) = sys::window_size(stdin.as_fd()) {
            let _ = sys::set_window_size(master.as_fd(), &ws);
        }
        chan.send(Tag::PtyMaster, &[], Some(master.as_raw_fd()))
            .map_err(|e| format!("pass the pty to the supervisor: {e}"))?;
    }
    drop(master);
    if launch.proxy_port.is_some() {
        // The host roots are copied while the supervisor is still starting the proxy.
        let bundle = mounts::prepare_ca_bundle(&spec.mounts).map_err(|e| e.to_string())?;
        let msg = chan
            .recv()
            .map_err(|e| format!("receive the session CA: {e}"))?
            .ok_or_else(|| "the supervisor went away before sending the session CA".to_owned())?;
        if msg.tag != Tag::SessionCa {
            return Err(format!(
                "unexpected message {:?} instead of the session CA",
                msg.tag
            ));
        }
        mounts::install_ca(&spec.mounts, bundle, &msg.payload).map_err(|e| e.to_string())?;
        capture::install_resolv_conf()?;
    }
    mounts::seal_root().map_err(|e| e.to_string())?;
    if launch.proxy_port.is_some() {
        // No agent before its session is in the flow log.
        let msg = chan
            .recv()
            .map_err(|e| format!("receive the start signal: {e}"))?
            .ok_or_else(|| "the supervisor went away before the agent could start".to_owned())?;
        if msg.tag != Tag::Start {
            return Err(format!(
                "unexpected message {:?} instead of the start signal",
                msg.tag
            ));
        }
    }
    let _ = nix::sys::prctl::set_dumpable(false);
    match sys::fork_single_threaded().map_err(|e| format!("fork the agent: {e}"))? {
        sys::ForkResult::Child => agent::exec(&spec, slave.as_deref()),
        sys::ForkResult::Parent(child) => {
            let _ = chan.send(Tag::Ready, &[], None);
            release_stdio();
            Ok((child, spec))
        }
    }
}

/// Points the init's standard descriptors at `/dev/null`: the agent has the terminal or the
/// pipes now, and they must close when the agent and the supervisor are done, not when the
/// init, which lingers until the supervisor exits, is torn down. The init writes nothing.
fn release_stdio() {
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// Writes one `[agent]` preset file into the private `$HOME` (its directories created), owned
/// by the agent's uid like everything the init creates.
fn write_home_file(path: &std::path::Path, contents: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    fs::write(path, contents)
        .map_err(|e| format!("write the agent preset's {}: {e}", path.display()))
}

/// How often the init counts the processes and threads of the sandbox.
const SAMPLE_EVERY_MS: u32 = 250;

/// Reaps every process until the agent exits, forwarding signals to the agent's process group;
/// then kills what is left in the pid namespace and returns the agent's exit code and the most
/// processes and threads seen at once.
fn supervise(agent: Pid) -> (i32, u32) {
    let set = wait_set();
    let mut code: Option<i32> = None;
    let mut peak = 0u32;
    while code.is_none() {
        let sig = match sys::wait_signal_for(&set, SAMPLE_EVERY_MS) {
            Ok(Some(s)) => s,
            Ok(None) => {
                peak = peak.max(count_tasks());
                continue;
            }
            Err(_) => continue,
        };
        if sig == Signal::SIGCHLD {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, c)) if pid == agent => code = Some(c),
                    Ok(WaitStatus::Signaled(pid, s, _)) if pid == agent => {
                        code = Some(128 + s as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        } else if sig == Signal::SIGALRM {
            // No time limit runs while the agent does.
        } else if kill(Pid::from_raw(-agent.as_raw()), sig).is_err() {
            let _ = kill(agent, sig);
        }
    }
    // The agent is gone: nothing else may outlive it.
    peak = peak.max(count_tasks());
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
    (code.unwrap_or(EXIT_SETUP), peak)
}

/// The processes and threads in the pid namespace now (the `Threads:` of every process in
/// this namespace's /proc).
fn count_tasks() -> u32 {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0u32;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let status = fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(1);
        n = n.saturating_add(threads);
    }
    n
}

/// Blocks the init's signal set in the calling thread (the agent unblocks it before exec).
pub fn block_signals() -> nix::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&wait_set()), None)
}
