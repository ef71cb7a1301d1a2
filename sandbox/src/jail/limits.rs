//! `[limits]` as this host can apply them without a cgroup: the pid namespace's own
//! `pid_max` (Linux 6.14 and later; `RLIMIT_NPROC` in the sandbox's user namespace before
//! that), `RLIMIT_DATA` on every process for memory, and a nice value for CPU. The session
//! records which limits were in force, and at the end what was reached.

use egress_policy::contract::Limits;
use serde_json::json;

use crate::jail::probe;
use crate::jail::JailLimits;

/// The first kernel with a `pid_max` per pid namespace.
const PID_MAX_PER_NAMESPACE: (u32, u32) = (6, 14);

/// The limits resolved for this host, and how each is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLimits {
    /// What the init and the agent apply.
    pub jail: JailLimits,
    /// The contract's process limit.
    pub pids: u64,
    /// The memory limit per process, in bytes.
    pub memory_bytes: u64,
    /// How the process limit is enforced.
    pub pids_mechanism: &'static str,
}

/// The kernel release's `(major, minor)`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The machine's memory (`MemTotal` of /proc/meminfo), in bytes.
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Resolves the contract's limits on this host.
pub fn resolve(limits: &Limits) -> ResolvedLimits {
    let per_namespace =
        kernel_version(&probe::kernel_release()).is_some_and(|v| v >= PID_MAX_PER_NAMESPACE);
    let total = machine_memory().unwrap_or(u64::MAX / 2);
    let memory_bytes = limits.memory.bytes(total);
    let (pid_max, nproc, pids_mechanism) = if per_namespace {
        // pids 1 .. pid_max-1; the init is pid 1.
        let pid_max = u32::try_from(limits.pids + 1).unwrap_or(u32::MAX);
        (Some(pid_max), None, "pid namespace pid_max")
    } else if nix::unistd::geteuid().is_root() {
        // root's own processes are exempt from RLIMIT_NPROC: no process limit holds.
        (None, None, "none (kernel before 6.14, running as root)")
    } else {
        (None, Some(limits.pids), "RLIMIT_NPROC")
    };
    ResolvedLimits {
        jail: JailLimits {
            pid_max,
            data_bytes: Some(memory_bytes),
            nproc,
            nice: limits.nice,
        },
        pids: limits.pids,
        memory_bytes,
        pids_mechanism,
    }
}

impl ResolvedLimits {
    /// Every limit holds (a process limit is in force).
    pub fn full(&self) -> bool {
        self.jail.pid_max.is_some() || self.jail.nproc.is_some()
    }

    /// The `limits` object of `session_start`.
    pub fn record(&self) -> serde_json::Value {
        json!({
            "pids": self.pids,
            "pids_enforced_by": self.pids_mechanism,
            "memory_per_process_bytes": self.memory_bytes,
            "memory_enforced_by": "RLIMIT_DATA per process (no cgroup)",
            "nice": self.jail.nice,
        })
    }

    /// One line for `layers` and `doctor`.
    pub fn describe(&self) -> String {
        format!(
            "{} processes and threads ({}); {} of private memory per process (RLIMIT_DATA; no cgroup, so not for the session as a whole); nice {}",
            self.pids,
            self.pids_mechanism,
            human_bytes(self.memory_bytes),
            self.jail.nice
        )
    }
}

/// `12.0 GiB`, `512 MiB`.
pub fn human_bytes(b: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if b >= GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
    } else {
        format!("{} MiB", b / MIB)
    }
}

/// What the session reached, from the init's report at the agent's exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reached {
    /// The most processes and threads seen at once (sampled every 200 ms).
    pub peak_tasks: u32,
    /// The largest resident set of any process that exited (`ru_maxrss`), in bytes.
    pub peak_rss_bytes: u64,
}

impl Reached {
    /// The `limits` object of `session_end`: the peaks, and which limit was (nearly) reached,
    /// so that an agent that failed on a fork bomb or a memory hog has its cause recorded.
    pub fn record(&self, limits: &ResolvedLimits) -> serde_json::Value {
        let pids_reached = u64::from(self.peak_tasks) * 100 >= limits.pids * 95;
        let memory_reached = self.peak_rss_bytes / 100 * 100 >= limits.memory_bytes / 100 * 90;
        let mut reached = Vec::new();
        if pids_reached {
            reached.push("pids");
        }
        if memory_reached {
            reached.push("memory");
        }
        json!({
            "pids": limits.pids,
            "peak_tasks": self.peak_tasks,
            "memory_per_process_bytes": limits.memory_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "reached": reached,
        })
    }
}

/// Says on stderr which `[limits]` the session ran into, the likely cause of an agent that
/// failed on a fork bomb or a memory hog.
pub fn report_reached(record: &serde_json::Value) {
    for what in record["reached"].as_array().into_iter().flatten() {
        match what.as_str() {
            Some("pids") => eprintln!(
                "sandbox: the session reached its process limit ([limits] pids = {}, {} processes and threads at the peak): forks failed inside",
                record["pids"], record["peak_tasks"]
            ),
            Some("memory") => eprintln!(
                "sandbox: a process reached the memory limit per process ([limits] memory, {} bytes; largest process {} bytes): its allocations failed",
                record["memory_per_process_bytes"], record["peak_rss_bytes"]
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_policy::contract::MemoryLimit;

    #[test]
    fn kernel_releases_parse() {
        assert_eq!(kernel_version("6.18.44-fc-v1300"), Some((6, 18)));
        assert_eq!(kernel_version("5.15.0-105-generic"), Some((5, 15)));
        assert_eq!(kernel_version("6.14"), Some((6, 14)));
        assert_eq!(kernel_version("garbage"), None);
        assert!((6, 9) < PID_MAX_PER_NAMESPACE && (7, 0) > PID_MAX_PER_NAMESPACE);
    }

    #[test]
    fn the_defaults_resolve_to_a_process_limit_and_half_the_memory() {
        let r = resolve(&Limits::default());
        assert_eq!(r.pids, 4096);
        let total = machine_memory().unwrap();
        assert_eq!(r.memory_bytes, MemoryLimit::Percent(50).bytes(total));
        assert_eq!(r.jail.data_bytes, Some(r.memory_bytes));
        if kernel_version(&probe::kernel_release()).unwrap() >= PID_MAX_PER_NAMESPACE {
            assert_eq!(r.jail.pid_max, Some(4097));
        }
    }

    #[test]
    fn reaching_a_limit_is_recorded() {
        let r = ResolvedLimits {
            jail: JailLimits::default(),
            pids: 1000,
            memory_bytes: 1 << 30,
            pids_mechanism: "pid namespace pid_max",
        };
        let quiet = Reached {
            peak_tasks: 12,
            peak_rss_bytes: 50 << 20,
        };
        assert_eq!(quiet.record(&r)["reached"], json!([]));
        let bomb = Reached {
            peak_tasks: 999,
            peak_rss_bytes: 1 << 30,
        };
        assert_eq!(bomb.record(&r)["reached"], json!(["pids", "memory"]));
    }
}
