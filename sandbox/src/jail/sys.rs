//! The few raw syscalls nix does not wrap. Every `unsafe` block of the sandbox lives here, each
//! one small and commented with why it is sound.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`: the ABI version, or 0
/// when Landlock is not available (ENOSYS, EOPNOTSUPP).
pub fn landlock_abi_version() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1;
    // SAFETY: with a NULL attribute pointer and size 0 the kernel reads no memory; the call
    // only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        0
    } else {
        v as i32
    }
}

/// Where a fork-like clone returned.
pub enum CloneResult {
    /// In the parent: the child's pid (in the parent's pid namespace).
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// `clone(flags | SIGCHLD)` without a new stack: fork semantics plus new namespaces.
///
/// Must be called while the process has a single thread (nothing else may hold a lock the
/// child would need, and `CLONE_NEWUSER` is refused in a multithreaded process).
pub fn clone_into_namespaces(flags: libc::c_int) -> io::Result<CloneResult> {
    // SAFETY: without CLONE_VM and with a NULL stack the raw clone syscall behaves like fork():
    // the child gets a copy-on-write copy of the address space and continues on a copy of
    // this stack. The caller guarantees the process is single-threaded, so no lock is held by
    // another thread at the time of the copy. The trailing pointer arguments are unused (NULL)
    // because CLONE_PARENT_SETTID/CHILD_SETTID/SETTLS are not passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(CloneResult::Child),
        pid => Ok(CloneResult::Parent(pid as libc::pid_t)),
    }
}

/// Sets IFF_UP on `lo` in the current network namespace.
pub fn bring_loopback_up() -> io::Result<()> {
    // SAFETY: socket() has no memory arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write exactly one `ifreq`, which lives on this
    // stack frame for the duration of both calls; `fd` is a socket we own and close below.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: `fd` was returned by socket() above and is closed exactly once.
    unsafe { libc::close(fd) };
    result
}

/// Drops every capability for good: the bounding set, the ambient set, and the permitted,
/// effective and inheritable sets, so that even a uid 0 inside the user namespace gains none
/// at execve.
pub fn drop_all_capabilities() -> io::Result<()> {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(63);
    for cap in 0..=last_cap {
        // SAFETY: prctl with integer arguments only. EINVAL for caps this kernel lacks is fine.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads one header and, for version 3, exactly two CapData structs; both
    // live on this stack frame and have the kernel's layout (repr(C), u32 fields).
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the terminal `fd` the controlling terminal of the calling session leader.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument, no memory.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the window size of the terminal `fd`.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<libc::winsize> {
    // SAFETY: winsize is plain old data; TIOCGWINSZ writes exactly one into it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ws)
}

/// Sets the window size of the terminal `fd`.
pub fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads exactly one winsize from the reference.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unlocks the pty slave of the master `fd` and returns the slave's number (`/dev/pts/N`).
pub fn unlock_pty(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let unlock: libc::c_int = 0;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCSPTLCK reads one int; TIOCGPTN writes one unsigned int; both are locals.
    unsafe {
        if libc::ioctl(fd.as_raw_fd(), libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut number) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(number)
}

/// Closes every descriptor from 3 up (descriptors the invoking process leaked to us must not
/// reach the agent: a directory descriptor outside the view would be a way out of it).
pub fn close_descriptors_from_3() -> io::Result<()> {
    // SAFETY: close_range takes integers only; after it returns no Rust object of this
    // process may use a descriptor >= 3, which holds in the agent right before execve (the
    // caller has no open File or socket beyond stdio at that point).
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ends the process at once with `code`: no atexit handlers, no flushing of buffers copied from
/// the supervisor at the clone or fork.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns; it runs no user-space code.
    unsafe { libc::_exit(code) }
}

/// Where a fork returned.
pub enum ForkResult {
    /// In the parent: the child's pid.
    Parent(nix::unistd::Pid),
    /// In the child.
    Child,
}

/// `fork()` of a single-threaded process (the sandbox's init starting the agent).
pub fn fork_single_threaded() -> nix::Result<ForkResult> {
    // SAFETY: the caller is single-threaded (the init never starts a thread and was cloned
    // before the supervisor started any), so no lock can be held by another thread and the
    // child may allocate and run ordinary Rust code.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(ForkResult::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(ForkResult::Child),
    }
}

/// Resets every catchable signal to its default disposition and unblocks all signals, so the
/// agent starts as if from a fresh exec (ignored signals would otherwise stay ignored).
pub fn reset_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { sigaction(sig, &default) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Waits up to `ms` milliseconds for a signal of `set` (blocked by the caller): `Ok(None)` when
/// none came.
pub fn wait_signal_for(
    set: &nix::sys::signal::SigSet,
    ms: u32,
) -> io::Result<Option<nix::sys::signal::Signal>> {
    let timeout = libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) as libc::c_long) * 1_000_000,
    };
    // SAFETY: the set and the timeout are valid for the call; no siginfo is asked for.
    let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(e),
        };
    }
    nix::sys::signal::Signal::try_from(r)
        .map(Some)
        .map_err(|_| io::Error::other(format!("unknown signal {r}")))
}

/// The largest resident set (bytes) of any waited-for descendant (`RUSAGE_CHILDREN`).
pub fn children_max_rss_bytes() -> u64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u64::try_from(u.max_rss()).unwrap_or(0).saturating_mul(1024))
        .unwrap_or(0)
}

/// Applies the per-process limits to the calling process (inherited by what it runs):
/// `RLIMIT_DATA`, `RLIMIT_NPROC` and the nice value.
pub fn apply_limits(limits: &crate::jail::JailLimits) -> io::Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    if let Some(bytes) = limits.data_bytes {
        setrlimit(Resource::RLIMIT_DATA, bytes, bytes).map_err(io::Error::from)?;
    }
    if let Some(n) = limits.nproc {
        setrlimit(Resource::RLIMIT_NPROC, n, n).map_err(io::Error::from)?;
    }
    if limits.nice > 0 {
        // SAFETY: setpriority takes plain integers; 0 is the calling process.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, libc::c_int::from(limits.nice)) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
