//! The seccomp filters of the agent, compiled with seccompiler (no hand-written BPF).
//!
//! Denied calls fail with EPERM so the agent sees a clear "Operation not permitted"; `clone3`
//! fails with ENOSYS so that libc falls back to `clone`, whose flags a filter can inspect.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The two compiled programs, installed in this order just before execve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompPrograms {
    /// EPERM for the deny list.
    pub deny: BpfProgram,
    /// ENOSYS for clone3.
    pub clone3: BpfProgram,
}

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile the seccomp filter: {0}")]
pub struct SeccompBuildError(String);

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// Syscalls denied outright (EPERM), whatever their arguments.
pub fn denied_syscalls() -> Vec<(&'static str, i64)> {
    vec![
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("chroot", libc::SYS_chroot),
        ("move_mount", libc::SYS_move_mount),
        ("open_tree", libc::SYS_open_tree),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("reboot", libc::SYS_reboot),
        ("acct", libc::SYS_acct),
        ("quotactl", libc::SYS_quotactl),
        ("syslog", libc::SYS_syslog),
    ]
}

/// The namespace flags `clone` may not carry.
pub const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80, // CLONE_NEWTIME
];

/// The terminal ioctls that inject input or poke the console.
#[allow(clippy::unnecessary_cast)] // libc's ioctl request type is u64 on glibc, i32 on musl.
pub const DENIED_IOCTLS: &[u64] = &[libc::TIOCSTI as u64, libc::TIOCLINUX as u64];

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SeccompBuildError> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| SeccompBuildError(e.to_string()))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompBuildError> {
    SeccompRule::new(conditions).map_err(|e| SeccompBuildError(e.to_string()))
}

/// Compiles both programs. Unless `unix_sockets`, the agent cannot create a unix socket
/// (`socket(AF_UNIX)`, `socketpair(AF_UNIX, SOCK_DGRAM)`): connecting to a pathname socket,
/// or sending to one, needs one, and Landlock below ABI 8 does not govern either, so this is
/// what keeps a host process's socket in the workspace out of reach. Connected stream and
/// seqpacket pairs (`socketpair`, what Node, Python and git use between their own processes)
/// stay allowed: they cannot be pointed at another address.
pub fn compile(unix_sockets: bool) -> Result<SeccompPrograms, SeccompBuildError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in denied_syscalls() {
        rules.insert(nr, Vec::new());
    }
    let mut clone_rules = Vec::new();
    for flag in NAMESPACE_FLAGS {
        clone_rules.push(rule(vec![cond(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(*flag),
            *flag,
        )?])?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let mut socket_rules = vec![rule(vec![cond(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_VSOCK as u64,
    )?])?];
    if !unix_sockets {
        socket_rules.push(rule(vec![cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            libc::AF_UNIX as u64,
        )?])?);
        rules.insert(
            libc::SYS_socketpair,
            vec![rule(vec![
                cond(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    libc::AF_UNIX as u64,
                )?,
                // the type without SOCK_NONBLOCK / SOCK_CLOEXEC
                cond(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(0xf),
                    libc::SOCK_DGRAM as u64,
                )?,
            ])?],
        );
    }
    rules.insert(libc::SYS_socket, socket_rules);
    rules.insert(
        libc::SYS_ioctl,
        DENIED_IOCTLS
            .iter()
            .map(|req| {
                rule(vec![cond(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    *req,
                )?])
            })
            .collect::<Result<_, _>>()?,
    );
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        ARCH,
    )
    .map_err(|e| SeccompBuildError(e.to_string()))?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let clone3 = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        ARCH,
    )
    .map_err(|e| SeccompBuildError(e.to_string()))?;
    Ok(SeccompPrograms {
        deny: deny
            .try_into()
            .map_err(|e: seccompiler::BackendError| SeccompBuildError(e.to_string()))?,
        clone3: clone3
            .try_into()
            .map_err(|e: seccompiler::BackendError| SeccompBuildError(e.to_string()))?,
    })
}

/// Installs both programs on the calling thread (no_new_privs must already be set).
pub fn install(programs: &SeccompPrograms) -> Result<(), seccompiler::Error> {
    seccompiler::apply_filter(&programs.deny)?;
    seccompiler::apply_filter(&programs.clone3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_deny_list_is_complete_and_compiles() {
        let names: Vec<&str> = denied_syscalls().iter().map(|(n, _)| *n).collect();
        for required in [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "kexec_load",
            "kexec_file_load",
            "mount",
            "umount2",
            "pivot_root",
            "move_mount",
            "open_tree",
            "fsopen",
            "fsmount",
            "unshare",
            "setns",
        ] {
            assert!(names.contains(&required), "{required} is not denied");
        }
        for flag in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
        ] {
            assert!(NAMESPACE_FLAGS.contains(&(flag as u64)));
        }
        #[allow(clippy::unnecessary_cast)] // the request type differs between glibc and musl
        let tiocsti = libc::TIOCSTI as u64;
        assert!(DENIED_IOCTLS.contains(&tiocsti));
        let programs = compile(false).expect("the filter compiles");
        assert!(!programs.deny.is_empty() && !programs.clone3.is_empty());
    }

    /// Runs the filter in a forked child and returns one bit per refused call: `socket(AF_UNIX,
    /// SOCK_STREAM)`, `socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC)`, `socketpair(AF_UNIX,
    /// SOCK_DGRAM)`, `socketpair(AF_UNIX, SOCK_STREAM)`, `socket(AF_INET)`.
    fn refused_in_child(unix_sockets: bool) -> i32 {
        let programs = compile(unix_sockets).unwrap();
        // SAFETY: the child only makes raw system calls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if install(&programs).is_err() {
                    libc::_exit(100);
                }
                let mut bits = 0;
                let mut pair = [0i32; 2];
                let refused = |r: i32| r < 0 && *libc::__errno_location() == libc::EPERM;
                let attempts = [
                    refused(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)),
                    refused(libc::socket(
                        libc::AF_UNIX,
                        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                        0,
                    )),
                    refused(libc::socketpair(
                        libc::AF_UNIX,
                        libc::SOCK_DGRAM,
                        0,
                        pair.as_mut_ptr(),
                    )),
                    refused(libc::socketpair(
                        libc::AF_UNIX,
                        libc::SOCK_STREAM,
                        0,
                        pair.as_mut_ptr(),
                    )),
                    refused(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0)),
                ];
                for (i, r) in attempts.iter().enumerate() {
                    if *r {
                        bits |= 1 << i;
                    }
                }
                libc::_exit(bits);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        libc::WEXITSTATUS(status)
    }

    #[test]
    fn unix_sockets_are_refused_unless_asked_for_and_stream_pairs_stay() {
        assert_eq!(refused_in_child(false), 0b00111);
        assert_eq!(refused_in_child(true), 0);
    }
}
