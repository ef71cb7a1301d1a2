//! What every connection task shares: the policy, the log, the CA, pools, counters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use egress_policy::{Decision, Policy, Verdict};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::ca::SessionCa;
use crate::config::Limits;
use crate::flowlog::{Event, FlowLog, FlowLogError, FlowRecord, Kind};
use crate::tls::InterceptConfigs;
use crate::upstream::Pools;

/// Flow counts of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Client connections accepted (including those refused with 503).
    pub connections: u64,
    /// Flows decided (each has a `decision` record).
    pub flows: u64,
    /// Flows allowed.
    pub allowed: u64,
    /// Flows denied.
    pub denied: u64,
    /// Records that could not be written (each refused its flow).
    pub log_failures: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub log_failures: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        let allowed = self.allowed.load(Ordering::Relaxed);
        let denied = self.denied.load(Ordering::Relaxed);
        Stats {
            connections: self.connections.load(Ordering::Relaxed),
            flows: allowed + denied,
            allowed,
            denied,
            log_failures: self.log_failures.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct Shared {
    pub policy: Arc<Policy>,
    pub log: FlowLog,
    pub ca: Arc<SessionCa>,
    pub intercept: InterceptConfigs,
    pub upstream_tls: crate::tls::UpstreamTls,
    pub connect_to: HashMap<(String, u16), SocketAddr>,
    pub limits: Limits,
    pub credentials: HashMap<String, crate::credentials::Credential>,
    /// The forms of each credential to scrub from responses, by credential key.
    pub needles: HashMap<String, Arc<crate::scrub::Needles>>,
    pub counters: Counters,
    pub next_flow: AtomicU64,
    pub listen_addrs: Vec<SocketAddr>,
    pub pools: Pools,
    /// The worker threads every connection is handed to.
    pub workers: Arc<crate::workers::Workers>,
    pub conn_slots: Arc<Semaphore>,
    pub rate: RateLimit,
}

/// A token bucket: `per_second` tokens a second, at most `per_second` saved up (one second of
/// burst), without a lock.
///
/// Kept as the generic cell rate algorithm: one atomic "theoretical arrival time" (TAT, in
/// nanoseconds since the bucket was made). Each token moves it one interval
/// (`1 s / per_second`) later; a token is granted when the moved TAT is at most one second
/// ahead of now, which is the same as a bucket of `per_second` tokens refilled continuously.
/// Concurrent takers race with a compare-and-swap, so a request never waits on a mutex.
pub(crate) struct RateLimit {
    /// Nanoseconds per token; 0 never limits.
    interval_ns: u64,
    /// How far the TAT may run ahead of now: one second, minus nothing (full burst).
    burst_ns: u64,
    epoch: Instant,
    tat_ns: AtomicU64,
}

impl RateLimit {
    /// A full bucket; `per_second == 0` never limits.
    pub fn new(per_second: u32) -> RateLimit {
        const SECOND_NS: u64 = 1_000_000_000;
        let interval_ns = if per_second == 0 {
            0
        } else {
            (SECOND_NS / u64::from(per_second)).max(1)
        };
        RateLimit {
            interval_ns,
            burst_ns: interval_ns.saturating_mul(u64::from(per_second)),
            epoch: Instant::now(),
            tat_ns: AtomicU64::new(0),
        }
    }

    /// Takes one token; `false` when the bucket is empty.
    pub fn take(&self) -> bool {
        if self.interval_ns == 0 {
            return true;
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(self.interval_ns);
            if next - now > self.burst_ns {
                return false;
            }
            match self
                .tat_ns
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

impl Shared {
    pub fn flow_id(&self) -> u64 {
        self.next_flow.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Writes a `decision` record and counts it. An `Err` means the flow must not proceed.
    pub fn log_decision(&self, rec: FlowRecord) -> Result<FlowRecord, FlowLogError> {
        let allowed = rec.decision == Some(Verdict::Allow);
        let res = self.log.append(rec);
        match (&res, allowed) {
            (Err(_), _) => {
                self.counters.log_failures.fetch_add(1, Ordering::Relaxed);
                self.counters.denied.fetch_add(1, Ordering::Relaxed);
            }
            (Ok(_), true) => {
                self.counters.allowed.fetch_add(1, Ordering::Relaxed);
            }
            (Ok(_), false) => {
                self.counters.denied.fetch_add(1, Ordering::Relaxed);
            }
        }
        res
    }

    /// Logs an allowed decision and, when the contract's `[log] sync` is `flow` (the
    /// default), waits until it is on stable storage (group-committed with concurrent flows)
    /// before the caller lets the flow go ahead. An `Err` means the flow must not go ahead.
    pub async fn log_decision_durable(&self, rec: FlowRecord) -> Result<FlowRecord, FlowLogError> {
        let rec = self.log_decision(rec)?;
        if self.policy.contract().log.sync != egress_policy::LogSync::Flow {
            return Ok(rec);
        }
        let ticket = self.log.durable_ticket();
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.wait_durable(ticket)).await {
            Ok(Ok(())) => Ok(rec),
            Ok(Err(e)) => {
                self.counters.log_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            Err(_) => {
                self.counters.log_failures.fetch_add(1, Ordering::Relaxed);
                Err(FlowLogError::Write {
                    path: self
                        .log
                        .path()
                        .map(std::path::Path::to_path_buf)
                        .unwrap_or_default(),
                    source: std::io::Error::other("the flow log's sync task failed"),
                })
            }
        }
    }

    /// Logs a connection the proxy accepted but could not hand to a worker (it is closed):
    /// a `deny` record of `kind` with no host, port or status.
    pub fn log_lost(&self, kind: Kind, e: &std::io::Error) {
        let reason = format!("the proxy could not take the connection ({e}); it was closed");
        let _ = self.log_decision(refusal_record(
            kind,
            self.flow_id(),
            None,
            None,
            None,
            &reason,
        ));
    }

    /// Writes an `end` record; a failure is counted (the flow is already over).
    pub fn log_end(&self, rec: FlowRecord) {
        if self.log.append(rec).is_err() {
            self.counters.log_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A `decision` record for `flow` carrying the engine's answer.
pub(crate) fn decision_record(
    kind: Kind,
    flow: u64,
    host: &str,
    port: u16,
    d: &Decision,
) -> FlowRecord {
    let mut rec = FlowRecord::new(Event::Decision, kind);
    rec.flow = Some(flow);
    rec.decision = Some(d.verdict);
    rec.rule = d.rule.clone();
    rec.reason = Some(d.reason.clone());
    rec.region = d.region_field().map(str::to_string);
    rec.jurisdiction = d.jurisdiction.clone();
    rec.host = Some(host.to_string());
    rec.port = Some(port);
    rec
}

/// A `decision` record for a refusal that is the proxy's own (protocol check, fault), not
/// the engine's.
pub(crate) fn refusal_record(
    kind: Kind,
    flow: u64,
    host: Option<&str>,
    port: Option<u16>,
    status: Option<u16>,
    reason: &str,
) -> FlowRecord {
    let mut rec = FlowRecord::new(Event::Decision, kind);
    rec.flow = Some(flow);
    rec.decision = Some(Verdict::Deny);
    rec.reason = Some(reason.to_string());
    rec.host = host.map(str::to_string);
    rec.port = port;
    rec.status = status;
    rec
}

/// Writes a flow's `end` record when dropped: when the response body finished, failed, or the
/// client went away.
pub(crate) struct FlowEnd {
    pub shared: Arc<Shared>,
    pub template: FlowRecord,
    pub start: Instant,
    pub bytes_out: Arc<AtomicU64>,
    pub bytes_in: Arc<AtomicU64>,
    pub fault: Arc<Mutex<Option<String>>>,
}

impl FlowEnd {
    pub fn new(shared: Arc<Shared>, decision: &FlowRecord, start: Instant) -> FlowEnd {
        let mut template = FlowRecord::new(Event::End, decision.kind);
        template.flow = decision.flow;
        template.rule = decision.rule.clone();
        template.host = decision.host.clone();
        template.port = decision.port;
        template.addr = decision.addr.clone();
        template.method = decision.method.clone();
        template.path = decision.path.clone();
        template.region = decision.region.clone();
        template.jurisdiction = decision.jurisdiction.clone();
        template.tls = decision.tls.clone();
        FlowEnd {
            shared,
            template,
            start,
            bytes_out: Arc::new(AtomicU64::new(0)),
            bytes_in: Arc::new(AtomicU64::new(0)),
            fault: Arc::new(Mutex::new(None)),
        }
    }
}

impl FlowEnd {
    /// Records how the flow ended before a response came: the status the client got and,
    /// when it failed, why (the `end` record's `reason`).
    pub fn set_outcome(&mut self, status: u16, reason: Option<&str>) {
        self.template.status = Some(status);
        if let Some(r) = reason {
            *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.to_string());
        }
    }
}

impl Drop for FlowEnd {
    fn drop(&mut self) {
        let mut rec = self.template.clone();
        rec.bytes_out = Some(self.bytes_out.load(Ordering::Relaxed));
        rec.bytes_in = Some(self.bytes_in.load(Ordering::Relaxed));
        rec.duration_ms = Some((self.start.elapsed().as_micros() as f64) / 1000.0);
        if let Some(fault) = self.fault.lock().unwrap_or_else(|e| e.into_inner()).take() {
            rec.reason = Some(fault);
        }
        self.shared.log_end(rec);
        // The client's next request usually follows at once.
        crate::workers::stay_awake();
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimit;
    use std::time::Duration;

    #[test]
    fn a_full_bucket_grants_one_second_of_burst_then_refuses() {
        let rate = RateLimit::new(1000);
        let granted = (0..1500).filter(|_| rate.take()).count();
        // 1000 saved up, plus what refilled while the loop ran (a token per millisecond).
        assert!((1000..1400).contains(&granted), "granted {granted}");
        assert!(!rate.take() || !rate.take(), "an empty bucket refuses");
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let rate = RateLimit::new(100);
        while rate.take() {}
        std::thread::sleep(Duration::from_millis(60));
        let refilled = (0..100).filter(|_| rate.take()).count();
        // 60 ms at 100/s is 6 tokens; the sleep may run long on a busy machine.
        assert!((5..=40).contains(&refilled), "refilled {refilled}");
    }

    #[test]
    fn zero_never_limits() {
        let rate = RateLimit::new(0);
        assert!((0..100_000).all(|_| rate.take()));
    }

    #[test]
    fn concurrent_takers_share_one_bucket_without_overdrawing_it() {
        let rate = std::sync::Arc::new(RateLimit::new(2000));
        let start = std::time::Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let rate = rate.clone();
                std::thread::spawn(move || (0..5000).filter(|_| rate.take()).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let elapsed = start.elapsed().as_secs_f64();
        // The burst plus at most the refill over the elapsed time, never more.
        let ceiling = 2000.0 + 2000.0 * elapsed + 1.0;
        assert!(granted >= 2000, "granted {granted}");
        assert!(granted as f64 <= ceiling, "granted {granted} > {ceiling}");
    }
}
