//! The OTLP/HTTP exporter: a [`FlowSink`] that queues each written record (bounded, never
//! blocking, dropping and counting when full), and a background task that batches records
//! into OTLP log records and spans, keeps flow and byte counters, and posts protobuf to the
//! collector with a timeout. Failures are counted and reported by [`OtlpHandle::finish`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::convert::{flow_span, kv_str, log_record, scope, unix_nanos, FlowCounters};
use super::transport::Collector;
use crate::flowlog::{Event, FlowLog, FlowRecord, FlowSink};

/// The standard environment variable for the collector's base URL.
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The standard environment variable for extra request headers (`key=value,key2=value2`,
/// values percent-encoded), e.g. a collector's API key.
pub const ENV_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";

/// Allowed flows waiting for their `end` record; beyond this, a flow's span is sent without
/// waiting for its end.
pub const MAX_OPEN_FLOWS: usize = 65_536;

/// How the exporter runs.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector's base URL, `http://HOST:PORT` or `https://HOST[:PORT]` (the paths
    /// `/v1/logs`, `/v1/traces` and `/v1/metrics` are appended).
    pub endpoint: String,
    /// Extra headers on every export request (see [`parse_headers`]). Never logged.
    pub headers: Vec<(String, String)>,
    /// Trust roots for an `https` collector on top of the system roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Resource attributes (`service.name` is set to `sandbox-proxy` unless given).
    pub resource: Vec<(String, String)>,
    /// Records queued at most; further records are dropped and counted.
    pub queue_capacity: usize,
    /// Records per export request.
    pub batch_size: usize,
    /// Export at least this often, and metrics at this interval.
    pub flush_interval: Duration,
    /// Timeout of one export request.
    pub request_timeout: Duration,
}

impl OtlpConfig {
    /// Defaults: queue 8192, batches of 512, flush every second, 5 s request timeout.
    pub fn new(endpoint: impl Into<String>) -> Self {
        OtlpConfig {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            extra_roots: Vec::new(),
            resource: Vec::new(),
            queue_capacity: 8192,
            batch_size: 512,
            flush_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// The endpoint to use: the contract's `[log] otlp` wins over `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (pass the variable's value, e.g. `std::env::var(ENV_ENDPOINT).ok()`). Empty values count
/// as unset.
pub fn resolve_endpoint(contract: Option<&str>, env: Option<&str>) -> Option<String> {
    contract
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .or_else(|| env.map(str::trim).filter(|s| !s.is_empty()))
        .map(str::to_string)
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS`: comma-separated `key=value` pairs, values
/// percent-decoded. Malformed pairs are skipped.
pub fn parse_headers(value: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    value
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (decode(k), decode(v.trim())))
        })
        .collect()
}

/// Why the exporter cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The endpoint is not a usable `http://HOST:PORT` URL.
    #[error("OTLP endpoint `{endpoint}` is not usable: {reason}")]
    BadEndpoint {
        /// The endpoint given.
        endpoint: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// Outside a tokio runtime, the exporter's own thread could not be started.
    #[error("cannot start the OTLP export thread: {reason}")]
    Thread {
        /// The system's answer.
        reason: String,
    },
}

#[derive(Debug, Default)]
struct Stats {
    records_seen: AtomicU64,
    records_dropped_queue_full: AtomicU64,
    records_exported: AtomicU64,
    records_failed: AtomicU64,
    spans_exported: AtomicU64,
    spans_failed: AtomicU64,
    requests_failed: AtomicU64,
    metric_exports: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// What the exporter did, for the end-of-session report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtlpReport {
    /// The collector's base URL.
    pub endpoint: String,
    /// Records handed to the sink.
    pub records_seen: u64,
    /// Records dropped because the queue was full (the collector was slower than traffic).
    pub records_dropped_queue_full: u64,
    /// Records the collector accepted as log records.
    pub records_exported: u64,
    /// Records whose export request failed.
    pub records_failed: u64,
    /// Spans the collector accepted.
    pub spans_exported: u64,
    /// Spans whose export request failed.
    pub spans_failed: u64,
    /// Export requests that failed (any signal).
    pub requests_failed: u64,
    /// Successful metric exports.
    pub metric_exports: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

impl OtlpReport {
    /// `true` when every record seen was exported.
    pub fn complete(&self) -> bool {
        self.records_exported == self.records_seen && self.requests_failed == 0
    }
}

impl fmt::Display for OtlpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OTLP export to {}: {} of {} records exported as log records, {} spans",
            self.endpoint, self.records_exported, self.records_seen, self.spans_exported
        )?;
        if self.records_dropped_queue_full > 0 {
            write!(
                f,
                "; {} dropped because the queue was full",
                self.records_dropped_queue_full
            )?;
        }
        if self.requests_failed > 0 {
            write!(
                f,
                "; {} export requests failed ({} records, {} spans not delivered)",
                self.requests_failed, self.records_failed, self.spans_failed
            )?;
        }
        if let Some(e) = &self.last_error {
            write!(f, "; last error: {e}")?;
        }
        if !self.complete() {
            write!(f, " (the local flow log is complete; only the export is)")?;
        }
        Ok(())
    }
}

impl Stats {
    fn report(&self, endpoint: &str) -> OtlpReport {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OtlpReport {
            endpoint: endpoint.to_string(),
            records_seen: get(&self.records_seen),
            records_dropped_queue_full: get(&self.records_dropped_queue_full),
            records_exported: get(&self.records_exported),
            records_failed: get(&self.records_failed),
            spans_exported: get(&self.spans_exported),
            spans_failed: get(&self.spans_failed),
            requests_failed: get(&self.requests_failed),
            metric_exports: get(&self.metric_exports),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn fail(&self, error: String) {
        self.requests_failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }
}

struct QueueSink {
    tx: mpsc::Sender<FlowRecord>,
    stats: Arc<Stats>,
}

impl FlowSink for QueueSink {
    fn on_record(&self, rec: &FlowRecord) {
        self.stats.records_seen.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(rec.clone()).is_err() {
            self.stats
                .records_dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where the export worker runs.
enum Task {
    /// On the caller's tokio runtime.
    Tokio(tokio::task::JoinHandle<()>),
    /// On its own thread with a current-thread runtime (the caller had none).
    Thread(std::thread::JoinHandle<()>),
}

impl Task {
    fn is_finished(&self) -> bool {
        match self {
            Task::Tokio(t) => t.is_finished(),
            Task::Thread(t) => t.is_finished(),
        }
    }

    /// Stops a tokio task now; a thread ends on its own after its current request, whose
    /// time is bounded by the request timeout.
    fn abandon(self) {
        if let Task::Tokio(t) = self {
            t.abort();
        }
    }
}

/// Controls a running exporter.
pub struct OtlpHandle {
    endpoint: String,
    stats: Arc<Stats>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Task,
}

impl OtlpHandle {
    /// The counters so far.
    pub fn report(&self) -> OtlpReport {
        self.stats.report(&self.endpoint)
    }

    /// Exports what is still queued (and the final metrics), waiting at most `grace`, then
    /// stops the exporter and returns the final counts. Records still queued after `grace`
    /// count as failed.
    pub async fn finish(mut self, grace: Duration) -> OtlpReport {
        self.request_shutdown();
        let start = std::time::Instant::now();
        while !self.task.is_finished() && start.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.conclude(grace)
    }

    /// [`OtlpHandle::finish`] for synchronous callers (not on a runtime thread).
    pub fn finish_blocking(mut self, grace: Duration) -> OtlpReport {
        self.request_shutdown();
        let start = std::time::Instant::now();
        while !self.task.is_finished() && start.elapsed() < grace {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.conclude(grace)
    }

    fn request_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    fn conclude(self, grace: Duration) -> OtlpReport {
        if !self.task.is_finished() {
            let report = self.stats.report(&self.endpoint);
            let lost = report
                .records_seen
                .saturating_sub(report.records_dropped_queue_full)
                .saturating_sub(report.records_exported)
                .saturating_sub(report.records_failed);
            self.stats.records_failed.fetch_add(lost, Ordering::Relaxed);
            self.stats.fail(format!(
                "export did not finish within {} ms",
                grace.as_millis()
            ));
            let report = self.stats.report(&self.endpoint);
            self.task.abandon();
            return report;
        }
        self.stats.report(&self.endpoint)
    }
}

/// Starts OTLP/HTTP protobuf export of every flow-log record.
pub struct OtlpExporter;

/// A started exporter: the sink to register and the handle to finish at session end.
pub type StartedExporter = (Arc<dyn FlowSink>, OtlpHandle);

impl OtlpExporter {
    /// Starts the exporter for a session when one is configured: the contract's `[log] otlp`
    /// (`contract_endpoint`), else `OTEL_EXPORTER_OTLP_ENDPOINT`; headers from
    /// `OTEL_EXPORTER_OTLP_HEADERS`. `Ok(None)` when neither names a collector.
    pub fn start_configured(
        contract_endpoint: Option<&str>,
        resource: Vec<(String, String)>,
    ) -> Result<Option<StartedExporter>, OtlpError> {
        OtlpExporter::start_with(
            contract_endpoint,
            std::env::var(ENV_ENDPOINT).ok().as_deref(),
            std::env::var(ENV_HEADERS).ok().as_deref(),
            resource,
        )
    }

    /// [`OtlpExporter::start_configured`], with the sink registered on `log`: what a session
    /// does at start. Returns the handle to finish at session end (`None`: no collector named).
    pub fn attach_configured(
        log: &FlowLog,
        contract_endpoint: Option<&str>,
        resource: Vec<(String, String)>,
    ) -> Result<Option<OtlpHandle>, OtlpError> {
        Ok(
            OtlpExporter::start_configured(contract_endpoint, resource)?.map(|(sink, handle)| {
                log.add_sink(sink);
                handle
            }),
        )
    }

    /// [`OtlpExporter::start_configured`] with the environment's values passed in.
    pub fn start_with(
        contract_endpoint: Option<&str>,
        env_endpoint: Option<&str>,
        env_headers: Option<&str>,
        resource: Vec<(String, String)>,
    ) -> Result<Option<StartedExporter>, OtlpError> {
        let Some(endpoint) = resolve_endpoint(contract_endpoint, env_endpoint) else {
            return Ok(None);
        };
        let mut config = OtlpConfig::new(endpoint);
        config.headers = env_headers.map(parse_headers).unwrap_or_default();
        config.resource = resource;
        OtlpExporter::start(config).map(Some)
    }

    /// Starts the exporter: on the current tokio runtime when there is one, otherwise on its
    /// own thread. Register the returned sink with `FlowLog::add_sink`; at session end call
    /// [`OtlpHandle::finish`] (or `finish_blocking`) and report its result.
    pub fn start(config: OtlpConfig) -> Result<(Arc<dyn FlowSink>, OtlpHandle), OtlpError> {
        let collector = Collector::new(&config.endpoint, &config.extra_roots, &config.headers)?;
        let endpoint = collector.base.clone();
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let mut resource: Vec<(String, String)> = config.resource.clone();
        if !resource.iter().any(|(k, _)| k == "service.name") {
            resource.insert(0, ("service.name".to_string(), "sandbox-proxy".to_string()));
        }
        let worker = Worker {
            collector,
            resource: Resource {
                attributes: resource.iter().map(|(k, v)| kv_str(k, v)).collect(),
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            },
            stats: stats.clone(),
            batch_size: config.batch_size.max(1),
            flush_interval: config.flush_interval,
            timeout: config.request_timeout,
            open: HashMap::new(),
            counters: FlowCounters::new(now_nanos()),
            metrics_dirty: false,
        };
        let task = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Task::Tokio(runtime.spawn(worker.run(rx, shutdown_rx))),
            Err(_) => {
                let thread_err = |e: std::io::Error| OtlpError::Thread {
                    reason: e.to_string(),
                };
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(thread_err)?;
                let thread = std::thread::Builder::new()
                    .name("otlp-export".to_string())
                    .spawn(move || runtime.block_on(worker.run(rx, shutdown_rx)))
                    .map_err(thread_err)?;
                Task::Thread(thread)
            }
        };
        let sink: Arc<dyn FlowSink> = Arc::new(QueueSink {
            tx,
            stats: stats.clone(),
        });
        Ok((
            sink,
            OtlpHandle {
                endpoint,
                stats,
                shutdown: Some(shutdown_tx),
                task,
            },
        ))
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct Worker {
    collector: Collector,
    resource: Resource,
    stats: Arc<Stats>,
    batch_size: usize,
    flush_interval: Duration,
    timeout: Duration,
    open: HashMap<(String, u64), FlowRecord>,
    counters: FlowCounters,
    metrics_dirty: bool,
}

impl Worker {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<FlowRecord>,
        mut shutdown: oneshot::Receiver<()>,
    ) {
        let mut buf: Vec<FlowRecord> = Vec::with_capacity(self.batch_size);
        let mut ticker = tokio::time::interval(self.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                n = rx.recv_many(&mut buf, self.batch_size) => {
                    if n == 0 {
                        break;
                    }
                    if buf.len() >= self.batch_size {
                        self.export(std::mem::take(&mut buf)).await;
                    }
                }
                _ = ticker.tick() => {
                    if !buf.is_empty() {
                        self.export(std::mem::take(&mut buf)).await;
                    }
                    self.export_metrics().await;
                }
            }
        }
        // Drain: everything queued before shutdown is exported.
        rx.close();
        while let Ok(rec) = rx.try_recv() {
            buf.push(rec);
            if buf.len() >= self.batch_size {
                self.export(std::mem::take(&mut buf)).await;
            }
        }
        let open: Vec<FlowRecord> = self.open.drain().map(|(_, d)| d).collect();
        let unfinished: Vec<Span> = open.iter().map(|d| flow_span(d, None)).collect();
        if !buf.is_empty() {
            self.export(std::mem::take(&mut buf)).await;
        }
        if !unfinished.is_empty() {
            self.send_spans(unfinished).await;
        }
        self.metrics_dirty = true;
        self.export_metrics().await;
    }

    fn observe(&mut self, rec: &FlowRecord, spans: &mut Vec<Span>) {
        let host = rec.host.clone().unwrap_or_else(|| "(none)".to_string());
        match rec.event {
            Event::Decision => {
                let decision = match rec.decision {
                    Some(egress_policy::Verdict::Allow) => "allow",
                    Some(egress_policy::Verdict::Deny) => "deny",
                    None => return,
                };
                self.counters.count_decision(&host, decision);
                self.metrics_dirty = true;
                match (decision, rec.flow) {
                    ("allow", Some(flow)) if self.open.len() < MAX_OPEN_FLOWS => {
                        self.open.insert((rec.session.clone(), flow), rec.clone());
                    }
                    _ => spans.push(flow_span(rec, None)),
                }
            }
            Event::End => {
                let decision = rec
                    .flow
                    .and_then(|f| self.open.remove(&(rec.session.clone(), f)));
                let host = decision
                    .as_ref()
                    .and_then(|d| d.host.clone())
                    .unwrap_or(host);
                self.counters.add_bytes(
                    &host,
                    "allow",
                    rec.bytes_out.unwrap_or(0),
                    rec.bytes_in.unwrap_or(0),
                );
                self.metrics_dirty = true;
                if let Some(d) = decision {
                    spans.push(flow_span(&d, Some(rec)));
                }
            }
            Event::SessionStart
            | Event::SessionEnd
            | Event::Check
            | Event::Changes
            | Event::RollbackDrill
            | Event::RefUpdate
            | Event::SessionRecovered => {}
        }
    }

    async fn export(&mut self, records: Vec<FlowRecord>) {
        let mut spans = Vec::new();
        for rec in &records {
            self.observe(rec, &mut spans);
        }
        let count = records.len() as u64;
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(self.resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope()),
                    log_records: records.iter().map(log_record).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        match self.post("/v1/logs", request.encode_to_vec()).await {
            Ok(()) => {
                self.stats
                    .records_exported
                    .fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats
                    .records_failed
                    .fetch_add(count, Ordering::Relaxed);
                self.stats.fail(e);
            }
        }
        if !spans.is_empty() {
            self.send_spans(spans).await;
        }
    }

    async fn send_spans(&mut self, spans: Vec<Span>) {
        let count = spans.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        match self.post("/v1/traces", request.encode_to_vec()).await {
            Ok(()) => {
                self.stats
                    .spans_exported
                    .fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.spans_failed.fetch_add(count, Ordering::Relaxed);
                self.stats.fail(e);
            }
        }
    }

    async fn export_metrics(&mut self) {
        if !self.metrics_dirty || self.counters.is_empty() {
            return;
        }
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics: self.counters.metrics(now_nanos()),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        match self.post("/v1/metrics", request.encode_to_vec()).await {
            Ok(()) => {
                self.metrics_dirty = false;
                self.stats.metric_exports.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.stats.fail(e),
        }
    }

    async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<(), String> {
        let base = self.collector.base.clone();
        match tokio::time::timeout(self.timeout, self.collector.post(path, body)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "POST {base}{path}: no answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

/// `ts` of a record as Unix nanoseconds; re-exported for receivers and tests.
pub fn record_time_nanos(rec: &FlowRecord) -> u64 {
    unix_nanos(&rec.ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            resolve_endpoint(Some("http://a:4318"), Some("http://b:4318")).as_deref(),
            Some("http://a:4318")
        );
        assert_eq!(
            resolve_endpoint(Some(" "), Some("http://b:4318")).as_deref(),
            Some("http://b:4318")
        );
        assert_eq!(resolve_endpoint(None, None), None);
        let ok = |e: &str| Collector::new(e, &[], &[]).map(|c| c.base);
        assert_eq!(
            ok("http://127.0.0.1:4318/").unwrap(),
            "http://127.0.0.1:4318"
        );
        assert_eq!(
            ok("http://127.0.0.1:4318/otlp/").unwrap(),
            "http://127.0.0.1:4318/otlp"
        );
        assert!(ok("127.0.0.1:4318").is_err());
        assert!(ok("ftp://a:1").is_err());
        assert!(ok("http://a:1/?x=1").is_err());
        assert!(ok("http://user:pw@a:1").is_err());
        assert!(Collector::new("http://a:1", &[], &[("bad name".into(), "v".into())]).is_err());
    }

    #[test]
    fn headers_from_the_environment_format() {
        assert_eq!(
            parse_headers("api-key=abc%3D%3D, x-tenant = eu ,broken,=x,k=%e2%82%ac%,u=%é1"),
            vec![
                ("api-key".to_string(), "abc==".to_string()),
                ("x-tenant".to_string(), "eu".to_string()),
                ("k".to_string(), "€%".to_string()),
                ("u".to_string(), "%é1".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn start_with_prefers_the_contract_and_is_off_without_an_endpoint() {
        assert!(OtlpExporter::start_with(None, None, None, Vec::new())
            .unwrap()
            .is_none());
        let (_, handle) = OtlpExporter::start_with(
            Some("http://127.0.0.1:9"),
            Some("http://collector.example:4318"),
            Some("k=v"),
            Vec::new(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(handle.report().endpoint, "http://127.0.0.1:9");
        handle.finish(Duration::from_secs(1)).await;
        let (_, handle) =
            OtlpExporter::start_with(None, Some("http://127.0.0.1:9/"), None, Vec::new())
                .unwrap()
                .unwrap();
        assert_eq!(handle.report().endpoint, "http://127.0.0.1:9");
        handle.finish(Duration::from_secs(1)).await;
        assert!(OtlpExporter::start_with(Some("nonsense"), None, None, Vec::new()).is_err());
    }

    #[test]
    fn outside_a_runtime_it_runs_on_its_own_thread() {
        let (sink, handle) = OtlpExporter::start(OtlpConfig::new("http://127.0.0.1:9")).unwrap();
        assert!(matches!(handle.task, Task::Thread(_)));
        drop(sink);
        let report = handle.finish_blocking(Duration::from_secs(5));
        assert_eq!(report.records_seen, 0);
        assert!(report.complete(), "{report}");
    }
}
