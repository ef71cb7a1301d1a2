//! Criterion benches for the flow log's hot path: what the proxy pays per record (two records
//! per allowed request: `decision` before egress, `end` after). Run with
//! `cargo bench -p proxy --bench flowlog`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use egress_policy::Verdict;
use proxy::flowlog::{chain_hash, Event, FlowLog, FlowRecord, Kind, TlsInfo, GENESIS_PREV};

/// A request decision record as the proxy writes it for an allowed LLM API call.
fn decision_record() -> FlowRecord {
    let mut rec = FlowRecord::new(Event::Decision, Kind::Request);
    rec.flow = Some(4242);
    rec.decision = Some(Verdict::Allow);
    rec.rule = Some("mistral-eu-chat".into());
    rec.reason = Some("POST /v1/chat/completions allowed by rule `mistral-eu-chat`".into());
    rec.host = Some("api.eu.mistral.ai".into());
    rec.port = Some(443);
    rec.addr = Some("51.159.0.1".into());
    rec.method = Some("POST".into());
    rec.path = Some("/v1/chat/completions".into());
    rec.region = Some("EU".into());
    rec.jurisdiction = Some("FR".into());
    rec.tls = Some(TlsInfo {
        intercepted: true,
        sni: Some("api.eu.mistral.ai".into()),
        alpn: Some("http/1.1".into()),
    });
    rec
}

/// The matching `end` record.
fn end_record() -> FlowRecord {
    let mut rec = decision_record();
    rec.event = Event::End;
    rec.decision = None;
    rec.reason = None;
    rec.status = Some(200);
    rec.bytes_out = Some(68);
    rec.bytes_in = Some(113);
    rec.duration_ms = Some(0.412);
    rec
}

/// A scratch log file that is removed when dropped.
struct ScratchFile(PathBuf);

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn benches(c: &mut Criterion) {
    let mut sealed = decision_record();
    sealed.ts = "2026-11-21T10:04:05.123456Z".into();
    sealed.session = "s-0123456789abcdef".into();
    sealed.seq = 7;
    sealed.prev = GENESIS_PREV.to_string();
    let canonical = sealed.canonical_bytes();

    c.bench_function("canonical_bytes (request decision)", |b| {
        b.iter(|| black_box(&sealed).canonical_bytes())
    });
    c.bench_function("chain_hash (request decision)", |b| {
        b.iter(|| chain_hash(black_box(GENESIS_PREV), black_box(&canonical)))
    });
    c.bench_function("seal (encode + hash)", |b| {
        b.iter(|| black_box(sealed.clone()).seal())
    });

    let memory = FlowLog::in_memory("s-0123456789abcdef");
    c.bench_function("append decision + end, in memory", |b| {
        b.iter(|| {
            memory.append(decision_record()).ok();
            memory.append(end_record()).ok()
        })
    });

    let path =
        std::env::temp_dir().join(format!("proxy-bench-flowlog-{}.jsonl", std::process::id()));
    let _scratch = ScratchFile(path.clone());
    let file_log = match FlowLog::open(&path, "s-0123456789abcdef") {
        Ok(log) => log,
        Err(e) => panic!("cannot open the scratch flow log {}: {e}", path.display()),
    };
    c.bench_function("append decision + end, to a file", |b| {
        b.iter(|| {
            file_log.append(decision_record()).ok();
            file_log.append(end_record()).ok()
        })
    });
}

criterion_group!(flowlog_benches, benches);
criterion_main!(flowlog_benches);
