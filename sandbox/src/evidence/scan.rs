//! One streaming pass over flow-log files: the chain is checked on each raw line, and every
//! record the chain vouches for is parsed and handed to a visitor. Memory stays bounded by the
//! longest line, whatever the size of the file.
//!
//! Truncated or forged: the writer puts each line, `\n` included, into the file with one
//! `write`, so a crash can only leave a last line *without* its `\n`. Such a line is reported
//! as truncated (whether or not it parses). A last line that does end in `\n` must verify like
//! every other: a line that ends in `\n` but does not parse or does not chain was edited.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use super::chain::{ChainChecker, ChainStatus, LineFault};
use super::record::LogRecord;

/// Lines longer than this are refused rather than buffered.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The chain status of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// The file as given.
    pub file: String,
    /// What its chain says.
    #[serde(flatten)]
    pub status: ChainStatus,
}

/// Where a visited record sits.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// The file as given.
    pub file: &'a str,
    /// 1-based line.
    pub line: u64,
}

fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.clear();
    reader
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)
}

/// Checks the chain of one file and visits each verified record. Records after the first bad
/// line are not read: nothing after a break can be trusted.
pub fn scan_file<F>(path: &Path, visit: &mut F) -> FileReport
where
    F: FnMut(Position<'_>, LogRecord),
{
    let file_name = path.display().to_string();
    let report = |status| FileReport {
        file: file_name.clone(),
        status,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            return report(ChainStatus::Unreadable {
                reason: format!("cannot open {}: {e}", path.display()),
            })
        }
    };
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut checker = ChainChecker::default();
    let mut cur = Vec::with_capacity(4096);
    let mut next = Vec::with_capacity(4096);
    let unreadable = |e: std::io::Error| ChainStatus::Unreadable {
        reason: format!("cannot read {}: {e}", path.display()),
    };
    match read_line(&mut reader, &mut cur) {
        Ok(0) => {
            return report(ChainStatus::Intact {
                records: 0,
                head: checker.head().to_string(),
            })
        }
        Ok(_) => {}
        Err(e) => return report(unreadable(e)),
    }
    let mut line_no: u64 = 0;
    loop {
        line_no += 1;
        if cur.len() > MAX_LINE_BYTES {
            return report(ChainStatus::Broken {
                line: line_no,
                reason: format!("is longer than {MAX_LINE_BYTES} bytes: not a flow-log record"),
            });
        }
        let has_newline = cur.last() == Some(&b'\n');
        let truncated = |checker: &ChainChecker| ChainStatus::Truncated {
            records: checker.records(),
            line: line_no,
            head: checker.head().to_string(),
        };
        if !has_newline {
            return report(truncated(&checker));
        }
        let is_last = match read_line(&mut reader, &mut next) {
            Ok(n) => n == 0,
            Err(e) => return report(unreadable(e)),
        };
        let body = &cur[..cur.len() - 1];
        match checker.check(body) {
            Ok(()) => match serde_json::from_slice::<LogRecord>(body) {
                Ok(record) => visit(
                    Position {
                        file: &file_name,
                        line: line_no,
                    },
                    record,
                ),
                Err(e) => {
                    return report(ChainStatus::Broken {
                        line: line_no,
                        reason: format!("is not a flow-log record: {e}"),
                    })
                }
            },
            Err(LineFault::NotARecord(reason)) | Err(LineFault::Mismatch(reason)) => {
                return report(ChainStatus::Broken {
                    line: line_no,
                    reason,
                })
            }
        }
        if is_last {
            return report(ChainStatus::Intact {
                records: checker.records(),
                head: checker.head().to_string(),
            });
        }
        std::mem::swap(&mut cur, &mut next);
    }
}

/// Scans several files in order (each file is its own chain).
pub fn scan_files<P, F>(paths: &[P], mut visit: F) -> Vec<FileReport>
where
    P: AsRef<Path>,
    F: FnMut(Position<'_>, LogRecord),
{
    paths
        .iter()
        .map(|p| scan_file(p.as_ref(), &mut visit))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::chain::tests::seal;
    use super::super::chain::GENESIS_PREV;
    use super::*;

    fn record_body(seq: u64) -> String {
        format!(
            "{{\"ts\":\"2026-11-21T10:00:0{seq}.000000Z\",\"session\":\"s-0123456789abcdef\",\"seq\":{seq},\"flow\":null,\"event\":\"session_start\",\"kind\":\"session\"}}"
        )
    }

    fn log(n: u64) -> String {
        let mut prev = GENESIS_PREV.to_string();
        let mut out = String::new();
        for seq in 1..=n {
            let (line, hash) = seal(&record_body(seq), &prev);
            prev = hash;
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    fn scan_text(text: &[u8]) -> (FileReport, u64) {
        let dir = std::env::temp_dir().join(format!(
            "evidence-scan-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::write(&dir, text).unwrap();
        let mut seen = 0;
        let report = scan_file(&dir, &mut |_, _| seen += 1);
        std::fs::remove_file(&dir).unwrap();
        (report, seen)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn intact_truncated_and_broken() {
        let text = log(3);
        let (r, seen) = scan_text(text.as_bytes());
        assert!(
            matches!(r.status, ChainStatus::Intact { records: 3, .. }),
            "{r:?}"
        );
        assert_eq!(seen, 3);

        // Cut in the middle of the last line.
        let cut = &text.as_bytes()[..text.len() - 20];
        let (r, seen) = scan_text(cut);
        assert!(
            matches!(
                r.status,
                ChainStatus::Truncated {
                    records: 2,
                    line: 3,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(seen, 2);

        // Last line intact but its newline missing.
        let (r, _) = scan_text(&text.as_bytes()[..text.len() - 1]);
        assert!(
            matches!(r.status, ChainStatus::Truncated { line: 3, .. }),
            "{r:?}"
        );

        // A cut line in the middle is forgery, not truncation.
        let mut lines: Vec<&str> = text.lines().collect();
        let half = &lines[1][..40];
        lines[1] = half;
        let joined = lines.join("\n") + "\n";
        let (r, _) = scan_text(joined.as_bytes());
        assert!(
            matches!(r.status, ChainStatus::Broken { line: 2, .. }),
            "{r:?}"
        );

        // Swapping two lines breaks at the first swapped one.
        let lines: Vec<&str> = text.lines().collect();
        let swapped = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        let (r, _) = scan_text(swapped.as_bytes());
        assert!(
            matches!(r.status, ChainStatus::Broken { line: 2, .. }),
            "{r:?}"
        );

        // An empty file is an intact, empty chain.
        let (r, _) = scan_text(b"");
        assert!(
            matches!(r.status, ChainStatus::Intact { records: 0, .. }),
            "{r:?}"
        );
    }
}
