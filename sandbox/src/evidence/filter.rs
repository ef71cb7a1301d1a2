//! Which records a summary looks at: `--denied`, `--host`, `--session`, `--since`, `--until`.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

use super::record::LogRecord;

/// A time bound given on the command line that is not a time.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not a time: use RFC 3339 (2026-11-21T10:04:05Z, 2026-11-21T11:04:05+01:00) or a date (2026-11-21)")]
pub struct BadTime {
    /// What was given.
    pub input: String,
}

/// Formats a UTC instant exactly as the log writes `ts`, so that bounds compare as strings.
fn canonical(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .unwrap_or_default()
}

/// Normalises a user-given time (RFC 3339 with any offset, or a bare date meaning its
/// midnight UTC) to the log's `ts` format.
pub fn parse_time_bound(input: &str) -> Result<String, BadTime> {
    let trimmed = input.trim();
    if let Ok(t) = OffsetDateTime::parse(trimmed, &Rfc3339) {
        return Ok(canonical(t));
    }
    if let Ok(d) = Date::parse(trimmed, format_description!("[year]-[month]-[day]")) {
        return Ok(canonical(d.midnight().assume_utc()));
    }
    Err(BadTime {
        input: input.to_string(),
    })
}

/// The record's time in the canonical form (the fast path is the record's own `ts`).
fn record_time(ts: &str) -> Option<String> {
    let b = ts.as_bytes();
    if b.len() == 27 && b[26] == b'Z' && b[10] == b'T' {
        return Some(ts.to_string());
    }
    OffsetDateTime::parse(ts, &Rfc3339).ok().map(canonical)
}

/// A host filter: an exact host, or a `*` glob (case-insensitive).
fn host_matches(pattern: &str, host: &str) -> bool {
    egress_policy::diagram::matching::glob_matches(
        pattern.trim_end_matches('.'),
        host.trim_end_matches('.'),
    )
}

/// The record filters of `sandbox log summary`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only denied decisions (and no end records).
    pub denied_only: bool,
    /// Only flows to this host (exact or `*` glob).
    pub host: Option<String>,
    /// Only this session.
    pub session: Option<String>,
    /// Only records at or after this time (canonical `ts` form).
    pub since: Option<String>,
    /// Only records at or before this time (canonical `ts` form).
    pub until: Option<String>,
}

impl Filter {
    /// `true` when no filter is set.
    pub fn is_empty(&self) -> bool {
        !self.denied_only
            && self.host.is_none()
            && self.session.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    /// Session and time filters, which apply to every record, session records included.
    pub fn admits_time_and_session(&self, record: &LogRecord) -> bool {
        if let Some(session) = &self.session {
            if record.session != *session {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(ts) = record_time(&record.ts) else {
                return false;
            };
            if self.since.as_ref().is_some_and(|s| ts < *s) {
                return false;
            }
            if self.until.as_ref().is_some_and(|u| ts > *u) {
                return false;
            }
        }
        true
    }

    /// Every filter, for a flow record whose destination host is `host` (the decision's host
    /// for an `end` record that does not repeat it).
    pub fn admits_flow(&self, record: &LogRecord, host: Option<&str>) -> bool {
        if !self.admits_time_and_session(record) {
            return false;
        }
        if self.denied_only && !record.is_denied() {
            return false;
        }
        if let Some(pattern) = &self.host {
            if !host.is_some_and(|h| host_matches(pattern, h)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_normalise_to_the_log_format() {
        assert_eq!(
            parse_time_bound("2026-11-21T10:04:05Z").unwrap(),
            "2026-11-21T10:04:05.000000Z"
        );
        assert_eq!(
            parse_time_bound("2026-11-21T11:04:05.5+01:00").unwrap(),
            "2026-11-21T10:04:05.500000Z"
        );
        assert_eq!(
            parse_time_bound("2026-11-21").unwrap(),
            "2026-11-21T00:00:00.000000Z"
        );
        assert!(parse_time_bound("yesterday").is_err());
        assert!(parse_time_bound("2026-13-01").is_err());
    }

    #[test]
    fn filters_apply() {
        let mut r = LogRecord {
            ts: "2026-11-21T10:04:05.123456Z".into(),
            session: "s-1".into(),
            event: "decision".into(),
            kind: "request".into(),
            decision: Some("allow".into()),
            ..Default::default()
        };
        let f = Filter {
            since: Some(parse_time_bound("2026-11-21T10:04:05Z").unwrap()),
            until: Some(parse_time_bound("2026-11-21T10:04:06Z").unwrap()),
            host: Some("*.mistral.ai".into()),
            ..Default::default()
        };
        assert!(f.admits_flow(&r, Some("api.eu.mistral.ai")));
        assert!(!f.admits_flow(&r, Some("mistral.ai.evil.example")));
        assert!(!f.admits_flow(&r, None));
        r.ts = "2026-11-21T10:04:06.000001Z".into();
        assert!(!f.admits_flow(&r, Some("api.eu.mistral.ai")));
        let denied = Filter {
            denied_only: true,
            ..Default::default()
        };
        assert!(!denied.admits_flow(&r, None));
        r.decision = Some("deny".into());
        assert!(denied.admits_flow(&r, None));
        let s = Filter {
            session: Some("s-2".into()),
            ..Default::default()
        };
        assert!(!s.admits_time_and_session(&r));
    }
}
