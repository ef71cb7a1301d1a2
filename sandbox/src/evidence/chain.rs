//! The hash chain of `docs/flow-log.md`, checked on the raw bytes of each line:
//! `hash = lowercase_hex(SHA-256(prev ‖ canonical_bytes))`, where the canonical bytes are the
//! line without its `,"hash":"…"` member.

use proxy::flowlog::{canonical_and_hash, chain_hash};
use serde::Serialize;

/// The `prev` of the first record of a file (the writer's constant: one definition).
pub use proxy::flowlog::GENESIS_PREV;

/// What the chain says about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChainStatus {
    /// Every line is a record that links to the one before it.
    Intact {
        /// Number of records.
        records: u64,
        /// The hash of the last record (the head of the chain), to compare with an anchor.
        head: String,
    },
    /// The chain is intact up to `line`, the last line, which has no terminating `\n`: the
    /// writer was cut off (a crash), not a forgery.
    Truncated {
        /// Number of intact records before the cut.
        records: u64,
        /// The 1-based line that is cut off.
        line: u64,
        /// The hash of the last intact record.
        head: String,
    },
    /// A record was edited, deleted, inserted or reordered: the first bad line.
    Broken {
        /// The 1-based first line that does not verify.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be read.
    Unreadable {
        /// The I/O error.
        reason: String,
    },
}

impl ChainStatus {
    /// `true` for an intact chain.
    pub fn is_intact(&self) -> bool {
        matches!(self, ChainStatus::Intact { .. })
    }

    /// `true` when the records that were read can be trusted (intact, or intact up to a
    /// crash-truncated last line).
    pub fn is_trustworthy(&self) -> bool {
        matches!(
            self,
            ChainStatus::Intact { .. } | ChainStatus::Truncated { .. }
        )
    }
}

/// Why one line does not continue the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFault {
    /// The line does not end with a well-formed `hash` member.
    NotARecord(String),
    /// The line is well-formed but its hash does not match `prev ‖ canonical`.
    Mismatch(String),
}

/// Checks lines one after the other against the running chain.
#[derive(Debug, Clone)]
pub struct ChainChecker {
    prev: String,
    records: u64,
}

impl Default for ChainChecker {
    fn default() -> Self {
        ChainChecker {
            prev: GENESIS_PREV.to_string(),
            records: 0,
        }
    }
}

/// The `"prev":"…"` value a canonical line claims, for explaining a mismatch.
fn claimed_prev(canonical: &[u8]) -> Option<&str> {
    const MARK: &[u8] = b",\"prev\":\"";
    let pos = canonical.windows(MARK.len()).rposition(|w| w == MARK)?;
    let rest = canonical.get(pos + MARK.len()..pos + MARK.len() + 64)?;
    std::str::from_utf8(rest).ok()
}

impl ChainChecker {
    /// Number of records accepted so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The hash of the last accepted record.
    pub fn head(&self) -> &str {
        &self.prev
    }

    /// Checks one raw line (without its `\n`) and, when it continues the chain, advances.
    pub fn check(&mut self, line: &[u8]) -> Result<(), LineFault> {
        let Some((canonical, claimed)) = canonical_and_hash(line) else {
            return Err(LineFault::NotARecord(
                "does not end with a `\"hash\":\"<64 hex>\"` member".to_string(),
            ));
        };
        let actual = chain_hash(&self.prev, &canonical);
        if actual != claimed {
            let reason = match claimed_prev(&canonical) {
                Some(p) if p != self.prev => {
                    if self.records == 0 && p != GENESIS_PREV {
                        "is not the first record of a chain (its prev is not 64 zeros): records before it were removed".to_string()
                    } else {
                        "does not follow the record before it: a record was deleted, inserted or reordered here".to_string()
                    }
                }
                _ => "was modified: its hash does not match its content".to_string(),
            };
            return Err(LineFault::Mismatch(reason));
        }
        self.prev = actual;
        self.records += 1;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    // The tests seal lines with their own SHA-256, not the writer's `chain_hash`.
    use sha2::{Digest, Sha256};

    /// Seals a canonical JSON object (ending in `"prev":"…"}`-less form) into a chained line.
    pub(crate) fn seal(body_without_prev: &str, prev: &str) -> (String, String) {
        let canonical = format!(
            "{},\"prev\":\"{prev}\"}}",
            body_without_prev.trim_end_matches('}')
        );
        let mut hasher = Sha256::new();
        hasher.update(prev.as_bytes());
        hasher.update(canonical.as_bytes());
        let hash = hex::encode(hasher.finalize());
        let line = format!(
            "{},\"hash\":\"{hash}\"}}",
            &canonical[..canonical.len() - 1]
        );
        (line, hash)
    }

    fn chain(n: usize) -> Vec<String> {
        let mut prev = GENESIS_PREV.to_string();
        (0..n)
            .map(|i| {
                let (line, hash) = seal(&format!("{{\"seq\":{i}}}"), &prev);
                prev = hash;
                line
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let mut c = ChainChecker::default();
        for line in chain(5) {
            c.check(line.as_bytes()).unwrap();
        }
        assert_eq!(c.records(), 5);
    }

    #[test]
    fn every_single_byte_edit_is_detected() {
        let lines = chain(3);
        let target = &lines[1];
        for i in 0..target.len() {
            let mut bytes = target.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            let mut c = ChainChecker::default();
            c.check(lines[0].as_bytes()).unwrap();
            assert!(c.check(&bytes).is_err(), "edit at byte {i} not detected");
        }
    }

    #[test]
    fn deletion_reordering_and_head_removal_are_explained() {
        let lines = chain(3);
        let mut c = ChainChecker::default();
        c.check(lines[0].as_bytes()).unwrap();
        let err = c.check(lines[2].as_bytes()).unwrap_err();
        assert!(
            matches!(err, LineFault::Mismatch(r) if r.contains("deleted, inserted or reordered"))
        );
        let mut c = ChainChecker::default();
        let err = c.check(lines[1].as_bytes()).unwrap_err();
        assert!(matches!(err, LineFault::Mismatch(r) if r.contains("removed")));
    }
}
