//! What this kernel can enforce: the Landlock ABI, unprivileged user namespaces, seccomp.
//!
//! Shared by `sandbox doctor` (which reports it) and `sandbox run` (which refuses to run
//! weaker than asked). Every probe is a cheap syscall or a small /proc read.

use std::fs;

/// The Landlock ABI version the running kernel offers (0 when Landlock is unavailable).
pub fn landlock_abi() -> i32 {
    crate::jail::sys::landlock_abi_version()
}

/// One Landlock feature, the ABI that introduced it, and the kernel that shipped that ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LandlockFeature {
    /// Short name, as printed by `doctor` and logged in `session_start`.
    pub name: &'static str,
    /// What the sandbox uses the feature for.
    pub purpose: &'static str,
    /// The first ABI that has it.
    pub abi: i32,
    /// The first Linux release with that ABI.
    pub linux: &'static str,
}

/// Every Landlock feature `sandbox run` uses, in ABI order.
pub const LANDLOCK_FEATURES: &[LandlockFeature] = &[
    LandlockFeature {
        name: "landlock-fs",
        purpose: "file access limited to the contract's paths",
        abi: 1,
        linux: "5.13",
    },
    LandlockFeature {
        name: "landlock-refer",
        purpose: "rename and hard link checked across directories",
        abi: 2,
        linux: "5.19",
    },
    LandlockFeature {
        name: "landlock-truncate",
        purpose: "truncate limited to writable paths",
        abi: 3,
        linux: "6.2",
    },
    LandlockFeature {
        name: "landlock-tcp",
        purpose: "TCP connect denied without network; with network the transparent capture takes every connect",
        abi: 4,
        linux: "6.7",
    },
    LandlockFeature {
        name: "landlock-ioctl-dev",
        purpose: "ioctl on devices limited to the terminal and /dev basics",
        abi: 5,
        linux: "6.10",
    },
    LandlockFeature {
        name: "landlock-scope",
        purpose: "signals and abstract unix sockets scoped to the sandbox",
        abi: 6,
        linux: "6.12",
    },
];

/// The highest Landlock ABI `sandbox run` asks for.
pub const WANTED_LANDLOCK_ABI: i32 = 6;

/// Facts about unprivileged user namespaces on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNsFacts {
    /// `user.max_user_namespaces` (None when the file is missing).
    pub max_user_namespaces: Option<u64>,
    /// Ubuntu's `kernel.apparmor_restrict_unprivileged_userns` (None when absent).
    pub apparmor_restrict: Option<u64>,
    /// Debian's older `kernel.unprivileged_userns_clone` (None when absent).
    pub unprivileged_userns_clone: Option<u64>,
}

fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads the user-namespace sysctls.
pub fn user_ns_facts() -> UserNsFacts {
    UserNsFacts {
        max_user_namespaces: read_number("/proc/sys/user/max_user_namespaces"),
        apparmor_restrict: read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        unprivileged_userns_clone: read_number("/proc/sys/kernel/unprivileged_userns_clone"),
    }
}

/// `true` when the kernel has seccomp filters (`Seccomp:` line in /proc/self/status).
pub fn seccomp_available() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false)
}

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// `true` when this looks like a container (Docker, Podman, Kubernetes).
pub fn in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}
