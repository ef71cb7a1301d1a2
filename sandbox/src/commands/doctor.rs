//! `sandbox doctor`: what this host lets `sandbox run` enforce, and the fix for what is missing.

use std::process::ExitCode;

use crate::jail::probe::{self, LANDLOCK_FEATURES, WANTED_LANDLOCK_ABI};

/// Arguments of `sandbox doctor`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when `sandbox run` can enforce everything here, 1 otherwise.\n\nExample:\n  sandbox doctor"
)]
pub struct Args {}

/// One line of the report.
struct Check {
    name: String,
    ok: bool,
    detail: String,
    fix: Option<String>,
}

fn user_namespace_checks() -> Vec<Check> {
    let facts = probe::user_ns_facts();
    let mut checks = Vec::new();
    let max_ok = facts.max_user_namespaces.is_none_or(|n| n > 0);
    checks.push(Check {
        name: "user namespaces (user.max_user_namespaces)".into(),
        ok: max_ok,
        detail: facts
            .max_user_namespaces
            .map_or("sysctl absent".into(), |n| n.to_string()),
        fix: (!max_ok).then(|| {
            "sudo sysctl -w user.max_user_namespaces=15000 (persist it in /etc/sysctl.d/99-sandbox.conf)".into()
        }),
    });
    if let Some(v) = facts.unprivileged_userns_clone {
        checks.push(Check {
            name: "unprivileged user namespaces (kernel.unprivileged_userns_clone)".into(),
            ok: v == 1,
            detail: v.to_string(),
            fix: (v != 1).then(|| "sudo sysctl -w kernel.unprivileged_userns_clone=1".into()),
        });
    }
    if let Some(v) = facts.apparmor_restrict {
        checks.push(Check {
            name: "AppArmor userns restriction (kernel.apparmor_restrict_unprivileged_userns)".into(),
            ok: v == 0,
            detail: v.to_string(),
            fix: (v != 0).then(|| {
                let exe = std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "/usr/local/bin/sandbox".into());
                format!(
                    "allow this binary to create user namespaces with an AppArmor profile:\n  \
                     printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile sandbox {exe} flags=(unconfined) {{\\n  userns,\\n}}\\n' | sudo tee /etc/apparmor.d/sandbox\n  \
                     sudo apparmor_parser -r /etc/apparmor.d/sandbox\n  \
                     (or, for the whole machine: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)"
                )
            }),
        });
    }
    // The real test: can this process create the namespaces `run` needs?
    let live = live_namespace_probe();
    checks.push(Check {
        name: "creating user+mount+pid+net namespaces".into(),
        ok: live.is_ok(),
        detail: match &live {
            Ok(()) => "works".into(),
            Err(e) => format!("fails: {e}"),
        },
        fix: live.err().map(|_| {
            if probe::in_container() {
                "inside a container: run it with --security-opt seccomp=unconfined --security-opt apparmor=unconfined (Docker/Podman) or allow unshare in its seccomp profile".into()
            } else {
                "apply the user-namespace fixes above".into()
            }
        }),
    });
    checks
}

/// Forks a child that unshares the namespaces `run` uses, and reports whether it worked.
fn live_namespace_probe() -> Result<(), String> {
    use crate::jail::sys::{clone_into_namespaces, CloneResult};
    let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET;
    // Read before the clone: inside a fresh user namespace the ids are unmapped (65534).
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    match clone_into_namespaces(flags) {
        Err(e) => Err(e.to_string()),
        // The child checks that it really holds the capabilities of its namespace (AppArmor's
        // userns restriction lets the clone succeed and takes them away).
        Ok(CloneResult::Child) => crate::jail::sys::exit_now(namespace_child_check(uid, gid)),
        Ok(CloneResult::Parent(pid)) => {
            match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(nix::sys::wait::WaitStatus::Exited(_, 2)) => {
                    Err("the user namespace has no capabilities (cannot write uid_map)".into())
                }
                Ok(nix::sys::wait::WaitStatus::Exited(_, 3)) => {
                    Err("mounting inside the new namespaces is refused".into())
                }
                Ok(nix::sys::wait::WaitStatus::Exited(_, 4)) => Err(
                    "the transparent capture cannot be set up in the new network namespace \
                     (nftables redirect and NFLOG: needs CONFIG_NF_TABLES_INET, CONFIG_NFT_NAT, \
                     CONFIG_NFT_REDIR, CONFIG_NFT_LOG); `sandbox run` with network refuses to start"
                        .into(),
                ),
                other => Err(format!("the probe ended unexpectedly: {other:?}")),
            }
        }
    }
}

/// In the probe's child: map the uid, mount a tmpfs in the new mount namespace, set up the
/// transparent capture in the new network namespace.
/// 0 = works, 2 = no uid map, 3 = no mount, 4 = no capture.
fn namespace_child_check(uid: u32, gid: u32) -> i32 {
    let maps = std::fs::write("/proc/self/setgroups", "deny")
        .and_then(|()| std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n")))
        .and_then(|()| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n")));
    if maps.is_err() {
        return 2;
    }
    use nix::mount::{mount, MsFlags};
    let private = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    );
    let tmpfs = private.and_then(|()| {
        mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("size=4k"),
        )
    });
    if tmpfs.is_err() {
        return 3;
    }
    if crate::jail::capture::probe().is_err() {
        return 4;
    }
    0
}

fn landlock_checks(abi: i32) -> Vec<Check> {
    let mut checks = vec![Check {
        name: "Landlock".into(),
        ok: abi >= 1,
        detail: if abi >= 1 {
            format!("ABI {abi} (sandbox uses up to {WANTED_LANDLOCK_ABI})")
        } else {
            "not available".into()
        },
        fix: (abi < 1).then(|| {
            "boot with Landlock enabled: add `lsm=landlock,lockdown,yama,integrity,apparmor,bpf` to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot); needs CONFIG_SECURITY_LANDLOCK=y".into()
        }),
    }];
    for f in LANDLOCK_FEATURES {
        let ok = abi >= f.abi;
        checks.push(Check {
            name: format!("  {} ({})", f.name, f.purpose),
            ok,
            detail: if ok { "enforced".into() } else { format!("needs ABI {}", f.abi) },
            fix: (!ok).then(|| format!("upgrade to Linux {} or newer, or run with --best-effort (recorded in the flow log)", f.linux)),
        });
    }
    checks
}

/// Runs `sandbox doctor`.
pub fn run(_args: Args) -> ExitCode {
    let abi = probe::landlock_abi();
    println!("sandbox doctor");
    println!("  kernel: Linux {}", probe::kernel_release());
    if probe::in_container() {
        println!("  running inside a container");
    }
    let mut checks = user_namespace_checks();
    checks.extend(landlock_checks(abi));
    let seccomp = probe::seccomp_available();
    checks.push(Check {
        name: "seccomp filters (io_uring, ptrace, mount, new namespaces, TIOCSTI ... denied)"
            .into(),
        ok: seccomp,
        detail: if seccomp {
            "available".into()
        } else {
            "not available".into()
        },
        fix: (!seccomp)
            .then(|| "use a kernel built with CONFIG_SECCOMP=y and CONFIG_SECCOMP_FILTER=y".into()),
    });
    println!();
    println!("What `sandbox run` enforces here:");
    let mut all_ok = true;
    for c in &checks {
        all_ok &= c.ok;
        println!(
            "  [{}] {}: {}",
            if c.ok { " ok " } else { "MISS" },
            c.name,
            c.detail
        );
        if let Some(fix) = &c.fix {
            println!("         fix: {fix}");
        }
    }
    print_limits();
    println!();
    println!("Always, when the namespaces work: private /tmp, /proc of its own pid namespace, minimal /dev,");
    println!("$HOME invisible except contract paths, deny paths covered by mounts, a network namespace whose only");
    println!("way out is the proxy, no capabilities, no_new_privs, and the sandbox dies with its supervisor.");
    if all_ok {
        println!("\nEverything `sandbox run` needs is available.");
        ExitCode::SUCCESS
    } else {
        println!("\nSome features are missing: `sandbox run` refuses to start unless --best-effort is given (apply the fixes above).");
        ExitCode::from(1)
    }
}

/// The controllers a cgroup v2 hierarchy offers this process's cgroup, and where it is
/// mounted (`None`: no cgroup v2 mount).
fn cgroup_v2_controllers() -> Option<(String, String)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split_whitespace().nth(4).map(str::to_owned))
            .flatten()
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim_start_matches('/');
    let path = std::path::Path::new(&mount)
        .join(rel)
        .join("cgroup.controllers");
    let controllers = std::fs::read_to_string(path).unwrap_or_default();
    Some((mount, controllers.trim().to_owned()))
}

/// How `[limits]` applies on this host (informational: every limit has a fallback).
fn print_limits() {
    let limits = crate::jail::limits::resolve(&egress_policy::contract::Limits::default());
    println!();
    println!("Limits ([limits], defaults shown) on this host:");
    println!("  {}", limits.describe());
    match cgroup_v2_controllers() {
        Some((mount, c)) if c.split_whitespace().any(|x| x == "pids") && c.split_whitespace().any(|x| x == "memory") => println!(
            "  cgroup v2 at {mount} offers pids and memory here, but sandbox does not use cgroups yet: the limits above apply"
        ),
        Some((mount, c)) => println!(
            "  cgroup v2 at {mount} offers only [{}]: no pids or memory delegation, so the per-process limits above apply (memory is not capped for the session as a whole)",
            c
        ),
        None => println!(
            "  no cgroup v2 mount: the per-process limits above apply (memory is not capped for the session as a whole)"
        ),
    }
    if probe::landlock_abi() < 8 {
        println!("  unix sockets: Landlock ABI 8 (pathname socket scoping) is missing, so the agent gets no unix socket at all (seccomp) unless the contract's [sockets] asks for them");
    }
}
