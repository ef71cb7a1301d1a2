//! A session whose supervisor was killed has no `session_end`. Before a new session writes to
//! the same log (`sandbox run`, `sandbox proxy`), or on `sandbox log recover`, the log's tail
//! is read and, when its last session never ended, one chained `session_recovered` record
//! says so and up to which record that session is whole. `sandbox log verify --strict` then
//! tells a recovered killed session (whole up to its last record) from a log cut after the
//! fact (whose missing end, or missing recovery record, fails).
//!
//! Sessions write one at a time (the writer holds an exclusive lock on the file), so only the
//! last session of a log can be open: reading the last line is enough.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use proxy::flowlog::{Event, Kind};
use proxy::{FlowLog, FlowRecord};
use serde_json::{json, Value};

/// The longest line read back from the end of a log (as the readers accept).
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// Events that close a session, or that are complete on their own.
const CLOSING: &[&str] = &["session_end", "session_recovered", "rollback_drill"];

/// What a recovery recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The session that never ended.
    pub session: String,
    /// How many of its records the log holds (it is whole up to the last of them).
    pub records: u64,
    /// The hash of its last record.
    pub last_hash: String,
}

/// The last complete line of `path`, or `None` for a missing or empty file.
fn last_line(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        file.by_ref().take(len - start).read_to_end(&mut buf)?;
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match body.iter().rposition(|b| *b == b'\n') {
            Some(nl) => return Ok(Some(body[nl + 1..].to_vec())),
            None if start == 0 => return Ok(Some(body.to_vec())),
            None if window >= MAX_LINE => {
                anyhow::bail!("the last line of {} is longer than 16 MiB", path.display())
            }
            None => window *= 4,
        }
    }
}

/// A session id for the recovery's own record (`s-` and 16 hex digits).
fn recovery_session() -> String {
    use sha2::Digest;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("recovery-{nanos}-{}", std::process::id());
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("s-{hex}")
}

/// Appends a `session_recovered` record when the last session in `path` never ended;
/// `by` names who recovers (`sandbox run`, `sandbox log recover`). `Ok(None)` when there was
/// nothing to recover.
pub fn recover_tail(path: &Path, by: &str) -> Result<Option<Recovered>> {
    let Some(line) = last_line(path)? else {
        return Ok(None);
    };
    // A torn or edited last line is left to `sandbox log verify` (and the writer refuses to
    // append after it): recovery never rewrites the log.
    let Ok(last) = serde_json::from_slice::<Value>(&line) else {
        return Ok(None);
    };
    let event = last["event"].as_str().unwrap_or_default();
    if CLOSING.contains(&event) {
        return Ok(None);
    }
    let (Some(session), Some(records), Some(hash)) = (
        last["session"].as_str(),
        last["seq"].as_u64(),
        last["hash"].as_str(),
    ) else {
        return Ok(None);
    };
    let log = FlowLog::open(path, &recovery_session()).with_context(|| {
        format!(
            "open {} to record that session {session} was killed",
            path.display()
        )
    })?;
    let mut rec = FlowRecord::new(Event::SessionRecovered, Kind::Session);
    rec.detail = Some(json!({
        "session": session,
        "records": records,
        "last_hash": hash,
        "reason": "the session has no session_end record: its supervisor was killed (or the host crashed); the log is whole up to its last record",
        "recovered_by": by,
    }));
    log.append(rec)
        .context("append the session_recovered record")?;
    log.sync().context("flush the flow log")?;
    Ok(Some(Recovered {
        session: session.to_string(),
        records,
        last_hash: hash.to_string(),
    }))
}
