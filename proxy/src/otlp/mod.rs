//! OpenTelemetry export of the flow log over OTLP/HTTP protobuf.
//!
//! [`OtlpExporter::start`] returns a [`crate::flowlog::FlowSink`] to register with
//! `FlowLog::add_sink` and an [`OtlpHandle`]. Every record the log writes is queued without
//! blocking (a full queue drops and counts), batched, and exported as an OTLP log record; each
//! finished flow is also a span (one trace per session), and flows and bytes per destination
//! and decision are cumulative metrics. A collector that is down or slow costs neither traffic
//! nor a line of the local log: the sink runs after the line was written, and failures are
//! only counted, for [`OtlpHandle::finish`] to report at session end.

pub mod convert;
mod exporter;
mod transport;

pub use exporter::{
    parse_headers, record_time_nanos, resolve_endpoint, OtlpConfig, OtlpError, OtlpExporter,
    OtlpHandle, OtlpReport, StartedExporter, ENV_ENDPOINT, ENV_HEADERS, MAX_OPEN_FLOWS,
};
