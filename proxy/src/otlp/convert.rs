//! Flow-log records as OTLP data: a log record per flow-log record, a span per finished flow,
//! and cumulative flow and byte counters per destination and decision.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, Sum,
};
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

use crate::flowlog::{Event, FlowRecord};

/// The instrumentation scope of everything exported.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "sandbox.proxy.flowlog".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute.
pub fn kv_str(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_string()))
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn kv_f64(key: &str, value: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(value))
}

/// `ts` of a record as Unix nanoseconds (0 when it does not parse).
pub fn unix_nanos(ts: &str) -> u64 {
    time::OffsetDateTime::parse(ts, &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp_nanos()).ok())
        .unwrap_or(0)
}

fn event_name(event: Event) -> &'static str {
    match event {
        Event::Decision => "decision",
        Event::End => "end",
        Event::SessionStart => "session_start",
        Event::SessionEnd => "session_end",
        Event::Check => "check",
        Event::Changes => "changes",
        Event::RollbackDrill => "rollback_drill",
        Event::RefUpdate => "ref_update",
        Event::SessionRecovered => "session_recovered",
    }
}

fn kind_name(rec: &FlowRecord) -> String {
    serde_json::to_value(rec.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn decision_name(rec: &FlowRecord) -> Option<&'static str> {
    rec.decision.map(|d| match d {
        egress_policy::Verdict::Allow => "allow",
        egress_policy::Verdict::Deny => "deny",
    })
}

/// The attributes of a record: decision, rule, host, method, path, status, bytes, region,
/// jurisdiction, session, and the flow-log position (seq, flow, hash).
pub fn attributes(rec: &FlowRecord) -> Vec<KeyValue> {
    let mut a = vec![
        kv_str("sandbox.session", &rec.session),
        kv_int("sandbox.seq", rec.seq as i64),
        kv_str("sandbox.event", event_name(rec.event)),
        kv_str("sandbox.kind", &kind_name(rec)),
        kv_str("sandbox.log.hash", &rec.hash),
    ];
    if let Some(flow) = rec.flow {
        a.push(kv_int("sandbox.flow", flow as i64));
    }
    if let Some(d) = decision_name(rec) {
        a.push(kv_str("sandbox.decision", d));
    }
    let opt = |a: &mut Vec<KeyValue>, key: &str, v: &Option<String>| {
        if let Some(v) = v {
            a.push(kv_str(key, v));
        }
    };
    opt(&mut a, "sandbox.rule", &rec.rule);
    opt(&mut a, "sandbox.reason", &rec.reason);
    opt(&mut a, "server.address", &rec.host);
    if let Some(port) = rec.port {
        a.push(kv_int("server.port", i64::from(port)));
    }
    opt(&mut a, "network.peer.address", &rec.addr);
    opt(&mut a, "http.request.method", &rec.method);
    opt(&mut a, "url.path", &rec.path);
    if let Some(status) = rec.status {
        a.push(kv_int("http.response.status_code", i64::from(status)));
    }
    if let Some(b) = rec.bytes_out {
        a.push(kv_int("sandbox.bytes_out", b as i64));
    }
    if let Some(b) = rec.bytes_in {
        a.push(kv_int("sandbox.bytes_in", b as i64));
    }
    if let Some(d) = rec.duration_ms.filter(|d| d.is_finite()) {
        a.push(kv_f64("sandbox.duration_ms", d));
    }
    opt(&mut a, "sandbox.region", &rec.region);
    opt(&mut a, "sandbox.jurisdiction", &rec.jurisdiction);
    a
}

/// One OTLP log record for one flow-log record; its body is the record's JSON line.
pub fn log_record(rec: &FlowRecord) -> LogRecord {
    let ts = unix_nanos(&rec.ts);
    let denied = rec.decision == Some(egress_policy::Verdict::Deny);
    LogRecord {
        time_unix_nano: ts,
        observed_time_unix_nano: ts,
        severity_number: if denied {
            SeverityNumber::Warn as i32
        } else {
            SeverityNumber::Info as i32
        },
        severity_text: if denied { "WARN" } else { "INFO" }.to_string(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(
                serde_json::to_string(rec).unwrap_or_default(),
            )),
        }),
        attributes: attributes(rec),
        dropped_attributes_count: 0,
        flags: 0,
        trace_id: trace_id(&rec.session).to_vec(),
        span_id: rec
            .flow
            .map(|f| span_id(&rec.session, f).to_vec())
            .unwrap_or_default(),
        event_name: format!("sandbox.flow.{}", event_name(rec.event)),
    }
}

/// All flows of a session share one trace: the first 16 bytes of SHA-256("trace" ‖ session).
pub fn trace_id(session: &str) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"trace")
        .chain_update(session.as_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// Each flow is one span: the first 8 bytes of SHA-256("span" ‖ session ‖ flow).
pub fn span_id(session: &str, flow: u64) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(b"span")
        .chain_update(session.as_bytes())
        .chain_update(flow.to_be_bytes())
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

/// The span of a finished flow: `decision` is its decision record, `end` its end record
/// (none for a denied flow, which ends at its decision).
pub fn flow_span(decision: &FlowRecord, end: Option<&FlowRecord>) -> Span {
    let start = unix_nanos(&decision.ts);
    let end_ts = end.map_or(start, |e| unix_nanos(&e.ts)).max(start);
    let mut attributes = attributes(decision);
    if let Some(e) = end {
        attributes.retain(|kv| {
            !matches!(
                kv.key.as_str(),
                "sandbox.event" | "sandbox.seq" | "sandbox.log.hash"
            )
        });
        for kv in self::attributes(e) {
            if !attributes.iter().any(|a| a.key == kv.key) {
                attributes.push(kv);
            }
        }
    }
    let denied = decision.decision == Some(egress_policy::Verdict::Deny);
    let name = match (&decision.method, &decision.host) {
        (Some(m), Some(h)) => format!("{m} {h}"),
        (None, Some(h)) => format!("{} {h}", kind_name(decision)),
        _ => kind_name(decision),
    };
    Span {
        trace_id: trace_id(&decision.session).to_vec(),
        span_id: span_id(&decision.session, decision.flow.unwrap_or(0)).to_vec(),
        trace_state: String::new(),
        parent_span_id: Vec::new(),
        flags: 0,
        name,
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end_ts,
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(Status {
            message: if denied {
                decision.reason.clone().unwrap_or_default()
            } else {
                String::new()
            },
            code: if denied {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Ok as i32
            },
        }),
    }
}

/// Cumulative counters per (destination, decision).
#[derive(Debug, Default, Clone)]
pub struct FlowCounters {
    start_nanos: u64,
    by_key: HashMap<(String, String), Counts>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    flows: u64,
    bytes_out: u64,
    bytes_in: u64,
}

/// At most this many (destination, decision) series are kept; further ones are folded into
/// destination `(other)`.
pub const MAX_SERIES: usize = 2000;

impl FlowCounters {
    /// Counters whose cumulative start time is `start_nanos`.
    pub fn new(start_nanos: u64) -> Self {
        FlowCounters {
            start_nanos,
            by_key: HashMap::new(),
        }
    }

    fn entry(&mut self, host: &str, decision: &str) -> &mut Counts {
        let mut key = (host.to_string(), decision.to_string());
        if !self.by_key.contains_key(&key) && self.by_key.len() >= MAX_SERIES {
            key.0 = "(other)".to_string();
        }
        self.by_key.entry(key).or_default()
    }

    /// Counts a flow decision.
    pub fn count_decision(&mut self, host: &str, decision: &str) {
        self.entry(host, decision).flows += 1;
    }

    /// Adds the bytes of a finished flow.
    pub fn add_bytes(&mut self, host: &str, decision: &str, out: u64, inn: u64) {
        let c = self.entry(host, decision);
        c.bytes_out += out;
        c.bytes_in += inn;
    }

    /// `true` before anything was counted.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The metrics at `now_nanos`: `sandbox.flows` and `sandbox.flow.bytes` (with
    /// `sandbox.direction` = `out` or `in`), cumulative monotonic sums.
    pub fn metrics(&self, now_nanos: u64) -> Vec<Metric> {
        let point = |host: &str, decision: &str, extra: Option<(&str, &str)>, value: u64| {
            let mut attributes = vec![
                kv_str("server.address", host),
                kv_str("sandbox.decision", decision),
            ];
            if let Some((k, v)) = extra {
                attributes.push(kv_str(k, v));
            }
            NumberDataPoint {
                attributes,
                start_time_unix_nano: self.start_nanos,
                time_unix_nano: now_nanos,
                exemplars: Vec::new(),
                flags: 0,
                value: Some(number_data_point::Value::AsInt(value as i64)),
            }
        };
        let mut keys: Vec<&(String, String)> = self.by_key.keys().collect();
        keys.sort();
        let mut flows = Vec::new();
        let mut bytes = Vec::new();
        for key in keys {
            let c = self.by_key[key];
            flows.push(point(&key.0, &key.1, None, c.flows));
            bytes.push(point(
                &key.0,
                &key.1,
                Some(("sandbox.direction", "out")),
                c.bytes_out,
            ));
            bytes.push(point(
                &key.0,
                &key.1,
                Some(("sandbox.direction", "in")),
                c.bytes_in,
            ));
        }
        let sum = |name: &str, description: &str, unit: &str, data_points| Metric {
            name: name.to_string(),
            description: description.to_string(),
            unit: unit.to_string(),
            metadata: Vec::new(),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
        };
        vec![
            sum(
                "sandbox.flows",
                "Flow decisions per destination and decision",
                "{flow}",
                flows,
            ),
            sum(
                "sandbox.flow.bytes",
                "Body or tunnel bytes per destination, decision and direction",
                "By",
                bytes,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::Kind;

    fn find<'a>(a: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        a.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn timestamps_and_ids() {
        assert_eq!(
            unix_nanos("2026-11-21T10:04:05.123456Z"),
            1_795_255_445_123_456_000
        );
        assert_eq!(unix_nanos("not a time"), 0);
        assert_eq!(trace_id("s-1"), trace_id("s-1"));
        assert_ne!(trace_id("s-1"), trace_id("s-2"));
        assert_ne!(span_id("s-1", 1), span_id("s-1", 2));
        assert_ne!(span_id("s-1", 1), span_id("s-2", 1));
    }

    #[test]
    fn attributes_carry_the_flow_facts_and_omit_nulls() {
        let mut r = FlowRecord::new(Event::Decision, Kind::Request);
        r.session = "s-1".into();
        r.flow = Some(4);
        r.decision = Some(egress_policy::Verdict::Deny);
        r.host = Some("api.openai.com".into());
        r.status = Some(403);
        let a = attributes(&r);
        assert_eq!(
            find(&a, "sandbox.decision"),
            Some(&any_value::Value::StringValue("deny".into()))
        );
        assert_eq!(
            find(&a, "http.response.status_code"),
            Some(&any_value::Value::IntValue(403))
        );
        assert_eq!(
            find(&a, "sandbox.kind"),
            Some(&any_value::Value::StringValue("request".into()))
        );
        assert!(find(&a, "url.path").is_none(), "null keys are not exported");
        let span = flow_span(&r, None);
        assert_eq!(span.status.unwrap().code, status::StatusCode::Error as i32);
    }

    #[test]
    fn counters_fold_beyond_the_series_cap() {
        let mut c = FlowCounters::new(1);
        for i in 0..(MAX_SERIES + 10) {
            c.count_decision(&format!("h{i}.example"), "allow");
        }
        assert_eq!(c.by_key.len(), MAX_SERIES + 1);
        assert_eq!(
            c.by_key[&("(other)".to_string(), "allow".to_string())].flows,
            10
        );
        let metrics = c.metrics(2);
        assert_eq!(metrics.len(), 2);
    }
}
