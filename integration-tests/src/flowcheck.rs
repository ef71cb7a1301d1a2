//! An independent check of the flow log's hash chain, written from `docs/flow-log.md` alone
//! (it does not reuse the proxy's code), plus helpers to read records.

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The keys every record must have, in this order.
pub const KEYS: [&str; 25] = [
    "ts",
    "session",
    "seq",
    "flow",
    "event",
    "kind",
    "decision",
    "rule",
    "reason",
    "host",
    "port",
    "addr",
    "method",
    "path",
    "query_keys",
    "status",
    "bytes_out",
    "bytes_in",
    "duration_ms",
    "region",
    "jurisdiction",
    "tls",
    "detail",
    "prev",
    "hash",
];

/// Verifies the chain of the log at `path` and returns its records.
///
/// Checks, per line: `\n` termination, the key set and order, `prev` equal to the previous
/// `hash` (64 zeros first), and `hash == sha256(prev ‖ canonical bytes)` where the canonical
/// bytes are the line up to `,"hash":"` plus `}`. Also checks that `seq` counts 1, 2, 3 within
/// each session.
pub fn verify_chain(path: &Path) -> Result<Vec<Value>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.is_empty() {
        return Ok(Vec::new());
    }
    if data.last() != Some(&b'\n') {
        return Err("the last line has no terminating newline".into());
    }
    let mut prev = "0".repeat(64);
    let mut records = Vec::new();
    let mut seqs: std::collections::HashMap<String, u64> = Default::default();
    for (i, line) in data[..data.len() - 1].split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let value: Value =
            serde_json::from_slice(line).map_err(|e| format!("line {n} is not JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or(format!("line {n} is not an object"))?;
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut sorted_expected: Vec<&str> = KEYS.to_vec();
        sorted_expected.sort_unstable();
        if keys != sorted_expected {
            return Err(format!("line {n} has keys {keys:?}"));
        }
        // Key order, on the raw bytes.
        let text = std::str::from_utf8(line).map_err(|_| format!("line {n} is not UTF-8"))?;
        let mut at = 0;
        for key in KEYS {
            let needle = format!("\"{key}\":");
            let found = text[at..]
                .find(&needle)
                .ok_or(format!("line {n}: key {key} out of order"))?;
            at += found + needle.len();
        }
        let mark = b",\"hash\":\"";
        let pos = line
            .windows(mark.len())
            .rposition(|w| w == mark)
            .ok_or(format!("line {n} has no hash member"))?;
        let mut canonical = line[..pos].to_vec();
        canonical.push(b'}');
        let claimed = obj["hash"].as_str().unwrap_or_default();
        if obj["prev"].as_str() != Some(prev.as_str()) {
            return Err(format!("line {n}: prev does not match the previous hash"));
        }
        let mut h = Sha256::new();
        h.update(prev.as_bytes());
        h.update(&canonical);
        let computed = hex::encode(h.finalize());
        if computed != claimed {
            return Err(format!("line {n}: hash mismatch"));
        }
        let session = obj["session"].as_str().unwrap_or_default().to_string();
        let seq = obj["seq"]
            .as_u64()
            .ok_or(format!("line {n}: seq is not a number"))?;
        let expected = seqs.get(&session).copied().unwrap_or(0) + 1;
        if seq != expected {
            return Err(format!("line {n}: seq {seq}, expected {expected}"));
        }
        seqs.insert(session, seq);
        prev = computed;
        records.push(value);
    }
    Ok(records)
}

/// The `decision` records whose `host` is `host`.
pub fn decisions_for<'a>(records: &'a [Value], host: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["event"] == "decision" && r["host"] == host)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_an_edited_line() {
        let dir = std::env::temp_dir().join(format!("flowcheck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let log = proxy::FlowLog::open(&path, "s-0000000000000001").unwrap();
        for _ in 0..3 {
            log.append(proxy::FlowRecord::new(
                proxy::flowlog::Event::Decision,
                proxy::flowlog::Kind::Request,
            ))
            .unwrap();
        }
        drop(log);
        assert_eq!(verify_chain(&path).unwrap().len(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"seq\":2", "\"seq\":7", 1)).unwrap();
        assert!(verify_chain(&path).is_err());
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(
            verify_chain(&path).is_err(),
            "a deleted line must break the chain"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
