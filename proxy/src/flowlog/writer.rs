//! The flow-log writer: numbering, timestamps, the hash chain, the file, and the sinks.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::record::{canonical_and_hash, chain_hash, FlowRecord, GENESIS_PREV};

/// Receives every record after it was written: the hook of the OTLP exporter.
///
/// `on_record` is called on the proxy's hot path while the log lock is held (so sinks see
/// records in chain order), so it must never block: hand the record to a channel or a bounded
/// queue and return.
pub trait FlowSink: Send + Sync {
    /// One record, sealed (`hash` set) and with its place in the file reserved. Its line is
    /// written right after; if that write fails, the log closes and the flow is refused.
    fn on_record(&self, rec: &FlowRecord);
}

/// Why the flow log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum FlowLogError {
    /// The file could not be opened, read or created.
    #[error("cannot open the flow log {path}: {source}; check that its directory exists and is writable")]
    Open {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The existing file ends in a line that is not a valid record; appending would hide it.
    #[error("refusing to append to the flow log {path}: its last line {reason}; run `sandbox log verify {path}` and move the damaged file aside")]
    DamagedTail {
        /// The log file.
        path: PathBuf,
        /// What is wrong with the last line.
        reason: String,
    },
    /// Writing a record failed: the flow it describes must not go upstream.
    #[error("cannot write to the flow log {path}: {source}")]
    Write {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another session holds the file: two writers would interleave two chains and break both.
    #[error("the flow log {path} is being written by another session; give this one its own log (--log FILE or [log] path)")]
    Busy {
        /// The log file.
        path: PathBuf,
    },
    /// An earlier write failed; the file may hold a partial line, so nothing more is written.
    #[error("the flow log {path} failed earlier and is closed; no further flows are allowed")]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },
}

const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The current time as the log's RFC 3339 UTC timestamp with microseconds.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(TS_FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_string())
}

/// Credentials never reach the log. Every text field of a record that the agent can influence
/// (host, SNI, method, path, query keys, reason, and every string inside `detail` such as a DNS
/// name or a command line) is checked with the engine's secret scanner, in every encoding it
/// knows (raw, percent-encoded up to four rounds, base64); a field that carries a secret is
/// replaced by a marker that names only the kind. This is the single place every record passes,
/// so no flow kind can forget it.
fn redact_secrets(rec: &mut FlowRecord) {
    use egress_policy::secrets::{scan_any_case, scan_encoded};
    use egress_policy::BoundedMemo;
    use std::cell::RefCell;
    // Hosts, SNI and API paths repeat on every request of a session: texts already found clean
    // are remembered per thread (one bounded set per kind of scan).
    const CLEAN_MAX: usize = 4096;
    thread_local! {
        static CLEAN: RefCell<[BoundedMemo<String, ()>; 2]> =
            RefCell::new([BoundedMemo::new(CLEAN_MAX), BoundedMemo::new(CLEAN_MAX)]);
    }
    const CLEAN_MAX_LEN: usize = 256;
    /// `any_case`: the text is case-folded on the way (DNS names, SNI, `detail` strings such as
    /// a queried name), so a secret may arrive in any case.
    fn clean_with(text: &mut String, any_case: bool) {
        // No recognised secret is shorter than 15 characters (`xoxb-` and ten more).
        let set = usize::from(any_case);
        if text.len() < 15 || CLEAN.with(|c| c.borrow()[set].contains_key(text.as_str())) {
            return;
        }
        let kinds = if any_case {
            scan_any_case(text)
        } else {
            scan_encoded(text)
        };
        if kinds.is_empty() {
            if text.len() <= CLEAN_MAX_LEN {
                CLEAN.with(|c| c.borrow_mut()[set].insert(text.clone(), ()));
            }
        } else {
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            *text = format!("[redacted: carries a secret ({})]", names.join(", "));
        }
    }
    fn clean_json(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => clean_with(s, true),
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean_json),
            serde_json::Value::Object(map) => map.values_mut().for_each(clean_json),
            _ => {}
        }
    }
    if let Some(host) = rec.host.as_mut() {
        clean_with(host, true);
    }
    if let Some(sni) = rec.tls.as_mut().and_then(|t| t.sni.as_mut()) {
        clean_with(sni, true);
    }
    for field in [&mut rec.method, &mut rec.path, &mut rec.reason] {
        if let Some(text) = field.as_mut() {
            clean_with(text, false);
        }
    }
    if let Some(keys) = rec.query_keys.as_mut() {
        keys.iter_mut().for_each(|k| clean_with(k, false));
    }
    if let Some(detail) = rec.detail.as_mut() {
        clean_json(detail);
    }
}

struct State {
    prev: String,
    seq: u64,
    /// Where the next line goes in the file.
    offset: u64,
}

struct Inner {
    session: String,
    path: Option<PathBuf>,
    /// Written with positioned writes (`pwrite`) outside the lock: each line's place is
    /// reserved under the lock, in chain order, and the lines then land in parallel.
    file: Option<File>,
    state: Mutex<State>,
    /// Set by the first failed write: nothing more is written (the file may hold a partial line).
    poisoned: AtomicBool,
    sinks: RwLock<Vec<Arc<dyn FlowSink>>>,
    /// The exclusive lock on the file, released when the last clone of the log is dropped.
    writer_lock: Option<nix::fcntl::Flock<File>>,
    /// Group commit: which `fdatasync`s have started and finished.
    syncs: Mutex<Syncs>,
    /// Signalled when a sync finishes.
    synced: std::sync::Condvar,
}

/// The group commit's counters: a record written before sync number `n` started is on
/// stable storage once `finished >= n`.
#[derive(Default)]
struct Syncs {
    started: u64,
    finished: u64,
    running: bool,
}

/// What a record needs to be durable: the number of the first `fdatasync` that starts after
/// its write ([`FlowLog::durable_ticket`], [`FlowLog::wait_durable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableTicket(u64);

/// The hash-chained flow log of one session. Cheap to clone; all clones write the same chain.
#[derive(Clone)]
pub struct FlowLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FlowLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowLog")
            .field("session", &self.inner.session)
            .field("path", &self.inner.path)
            .finish()
    }
}

impl FlowLog {
    /// A log for `session` that writes to `path`, appending to (and continuing the chain of)
    /// an existing file. Creates the file with mode 0600 when missing. Refuses a file whose
    /// last line is not an intact record.
    pub fn open(path: &Path, session: &str) -> Result<FlowLog, FlowLogError> {
        let open_err = |source| FlowLogError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut opts = OpenOptions::new();
        // Not O_APPEND: lines are placed with positioned writes at offsets reserved in order.
        opts.read(true).write(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(open_err)?;
        // One writer per file: an exclusive advisory lock on the open file description, held
        // (through a duplicate descriptor) as long as this log lives.
        let lock = {
            use nix::fcntl::{Flock, FlockArg};
            let dup = file.try_clone().map_err(open_err)?;
            match Flock::lock(dup, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(FlowLogError::Busy {
                        path: path.to_path_buf(),
                    })
                }
                Err((_, errno)) => return Err(open_err(std::io::Error::from(errno))),
            }
        };
        let prev = last_hash(&mut file, path)?;
        let end = file.seek(SeekFrom::End(0)).map_err(open_err)?;
        let mut log = FlowLog::build(session, Some(path.to_path_buf()), Some(file), prev, end);
        if let Some(inner) = Arc::get_mut(&mut log.inner) {
            inner.writer_lock = Some(lock);
        }
        Ok(log)
    }

    /// A log that keeps no file: records are chained and handed to the sinks only.
    pub fn in_memory(session: &str) -> FlowLog {
        FlowLog::build(session, None, None, GENESIS_PREV.to_string(), 0)
    }

    fn build(
        session: &str,
        path: Option<PathBuf>,
        file: Option<File>,
        prev: String,
        offset: u64,
    ) -> FlowLog {
        FlowLog {
            inner: Arc::new(Inner {
                session: session.to_string(),
                path,
                file,
                state: Mutex::new(State {
                    prev,
                    seq: 0,
                    offset,
                }),
                poisoned: AtomicBool::new(false),
                sinks: RwLock::new(Vec::new()),
                writer_lock: None,
                syncs: Mutex::new(Syncs::default()),
                synced: std::sync::Condvar::new(),
            }),
        }
    }

    /// The session id this log stamps on every record.
    pub fn session(&self) -> &str {
        &self.inner.session
    }

    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Registers a sink that receives every record written from now on.
    pub fn add_sink(&self, sink: Arc<dyn FlowSink>) {
        self.inner
            .sinks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
    }

    /// Stamps `rec` (ts, session, seq, prev, hash), writes it as one line, and returns the
    /// sealed record. When this returns `Ok`, the line was handed to the kernel (one positioned
    /// `write`, at the place reserved for it in chain order); when it returns `Err`, the flow
    /// must not go upstream.
    ///
    /// Only numbering, stamping, hashing and reserving the line's place happen under the lock;
    /// the redaction before and the write after run in parallel across threads.
    pub fn append(&self, mut rec: FlowRecord) -> Result<FlowRecord, FlowLogError> {
        // Outside the lock: the scan is the costly part of a record.
        redact_secrets(&mut rec);
        rec.session = self.inner.session.clone();
        let (line, at) = {
            let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
            if self.inner.poisoned.load(Ordering::Acquire) {
                return Err(self.poisoned());
            }
            rec.ts = now_rfc3339();
            rec.seq = state.seq + 1;
            rec.prev = std::mem::take(&mut state.prev);
            let line = rec.seal();
            let at = state.offset;
            state.offset += line.len() as u64;
            state.seq = rec.seq;
            state.prev = rec.hash.clone();
            // Sinks run under the lock so that they see records in chain order; they must not
            // block.
            let sinks = self.inner.sinks.read().unwrap_or_else(|e| e.into_inner());
            for sink in sinks.iter() {
                sink.on_record(&rec);
            }
            (line, at)
        };
        if let Some(file) = self.inner.file.as_ref() {
            use std::os::unix::fs::FileExt;
            if let Err(source) = file.write_all_at(&line, at) {
                self.inner.poisoned.store(true, Ordering::Release);
                return Err(FlowLogError::Write {
                    path: self.inner.path.clone().unwrap_or_default(),
                    source,
                });
            }
        }
        Ok(rec)
    }

    fn poisoned(&self) -> FlowLogError {
        FlowLogError::Poisoned {
            path: self.inner.path.clone().unwrap_or_default(),
        }
    }

    /// How many records this log's session has written so far.
    pub fn records(&self) -> u64 {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seq
    }

    /// The hash of the last record written (64 `0`s before the first).
    pub fn last_hash(&self) -> String {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .prev
            .clone()
    }

    /// Taken right after [`FlowLog::append`] returned: what [`FlowLog::wait_durable`] waits
    /// for to know that record is on stable storage.
    pub fn durable_ticket(&self) -> DurableTicket {
        let syncs = self.inner.syncs.lock().unwrap_or_else(|e| e.into_inner());
        // A sync already running may have started before the write: only the next counts.
        DurableTicket(syncs.started + 1)
    }

    /// Blocks until a record whose ticket is `ticket` is on stable storage. Group commit:
    /// one caller runs `fdatasync` while the others wait, and every record written before a
    /// sync started is covered by it, so under load many records share one sync.
    pub fn wait_durable(&self, ticket: DurableTicket) -> Result<(), FlowLogError> {
        let Some(file) = self.inner.file.as_ref() else {
            return Ok(());
        };
        let mut syncs = self.inner.syncs.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if syncs.finished >= ticket.0 {
                return Ok(());
            }
            if syncs.running {
                syncs = self
                    .inner
                    .synced
                    .wait(syncs)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            syncs.started += 1;
            let number = syncs.started;
            syncs.running = true;
            drop(syncs);
            let result = file.sync_data();
            syncs = self.inner.syncs.lock().unwrap_or_else(|e| e.into_inner());
            syncs.running = false;
            if result.is_ok() {
                syncs.finished = number;
            }
            self.inner.synced.notify_all();
            if let Err(source) = result {
                self.inner.poisoned.store(true, Ordering::Release);
                return Err(FlowLogError::Write {
                    path: self.inner.path.clone().unwrap_or_default(),
                    source,
                });
            }
        }
    }

    /// Forces the written records to stable storage (`fsync`).
    pub fn sync(&self) -> Result<(), FlowLogError> {
        if let Some(file) = self.inner.file.as_ref() {
            file.sync_data().map_err(|source| FlowLogError::Write {
                path: self.inner.path.clone().unwrap_or_default(),
                source,
            })?;
        }
        Ok(())
    }
}

/// The hash of the last line of an existing log (genesis for an empty file), after checking
/// that the line is complete and hashes correctly.
fn last_hash(file: &mut File, path: &Path) -> Result<String, FlowLogError> {
    let damaged = |reason: &str| FlowLogError::DamagedTail {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let open_err = |source| FlowLogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let len = file.seek(SeekFrom::End(0)).map_err(open_err)?;
    if len == 0 {
        return Ok(GENESIS_PREV.to_string());
    }
    // Read the tail: a record is far below 1 MiB; read more only if no line break is found.
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).map_err(open_err)?;
        let mut tail = Vec::with_capacity((len - start) as usize);
        Read::by_ref(file)
            .take(len - start)
            .read_to_end(&mut tail)
            .map_err(open_err)?;
        if tail.last() != Some(&b'\n') {
            return Err(damaged("has no terminating newline (the file was cut off)"));
        }
        let body = &tail[..tail.len() - 1];
        let line = match body.iter().rposition(|&b| b == b'\n') {
            Some(nl) => &body[nl + 1..],
            None if start == 0 => body,
            None => {
                window = window.saturating_mul(4);
                continue;
            }
        };
        let (canonical, hash) =
            canonical_and_hash(line).ok_or_else(|| damaged("does not end with a hash member"))?;
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|_| damaged("is not valid JSON"))?;
        let prev = value
            .get("prev")
            .and_then(|p| p.as_str())
            .ok_or_else(|| damaged("has no prev"))?;
        if chain_hash(prev, &canonical) != hash {
            return Err(damaged("has a hash that does not match its contents"));
        }
        return Ok(hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::{Event, Kind};
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("proxy-flowlog-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("flows.jsonl")
    }

    fn verify(path: &Path) -> usize {
        let data = std::fs::read(path).unwrap();
        assert_eq!(data.last(), Some(&b'\n'));
        let mut prev = GENESIS_PREV.to_string();
        let mut n = 0;
        for line in data[..data.len() - 1].split(|&b| b == b'\n') {
            let (canonical, hash) = canonical_and_hash(line).unwrap();
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["prev"].as_str().unwrap(), prev);
            assert_eq!(chain_hash(&prev, &canonical), hash);
            prev = hash;
            n += 1;
        }
        n
    }

    struct Counter(AtomicUsize);
    impl FlowSink for Counter {
        fn on_record(&self, rec: &FlowRecord) {
            assert_eq!(rec.hash.len(), 64);
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn secrets_in_any_agent_controlled_field_are_redacted_before_writing() {
        let path = temp_path("redact");
        let log = FlowLog::open(&path, "s-0000000000000001").unwrap();
        let key = "AKIAIOSFODNN7EXAMPLE";
        let mut rec = FlowRecord::new(Event::Decision, Kind::Request);
        rec.host = Some(format!("{}.tunnel.example", key.to_lowercase()));
        rec.method = Some(key.to_string());
        rec.path = Some(format!("/v1/%2541{}", &key[1..]));
        rec.query_keys = Some(vec![
            "stream".into(),
            format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
        ]);
        rec.tls = Some(crate::flowlog::TlsInfo {
            intercepted: true,
            sni: Some(format!("{key}.example")),
            alpn: None,
        });
        rec.detail = Some(
            serde_json::json!({"qname": format!("{key}.x.example"), "n": 1,
            "argv": ["agent", "--key", key]}),
        );
        let sealed = log.append(rec).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.to_uppercase().contains(key), "{text}");
        assert!(!text.contains("ghp_"), "{text}");
        assert_eq!(
            sealed.query_keys.as_ref().unwrap()[0],
            "stream",
            "clean keys stay"
        );
        assert_eq!(sealed.detail.as_ref().unwrap()["n"], 1);
        assert_eq!(
            verify(&path),
            1,
            "the redacted record is what the chain seals"
        );
        // Ordinary values are untouched.
        let mut plain = FlowRecord::new(Event::Decision, Kind::Request);
        plain.host = Some("api.eu.mistral.ai".into());
        plain.path = Some("/v1/chat/completions".into());
        let sealed = log.append(plain).unwrap();
        assert_eq!(sealed.path.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(sealed.host.as_deref(), Some("api.eu.mistral.ai"));
        // A text found clean by the case-sensitive scan (a lower-case key id in a path) is not
        // taken as clean where names are case-folded (a host), and repeats are still caught.
        let folded = "akiaiosfodnn7example.tunnel.example";
        for _ in 0..2 {
            let mut a = FlowRecord::new(Event::Decision, Kind::Request);
            a.path = Some(folded.to_string());
            let sealed = log.append(a).unwrap();
            assert_eq!(sealed.path.as_deref(), Some(folded));
            let mut b = FlowRecord::new(Event::Decision, Kind::Connect);
            b.host = Some(folded.to_string());
            let sealed = log.append(b).unwrap();
            assert!(sealed.host.unwrap().starts_with("[redacted"), "host");
        }
    }

    #[test]
    fn durable_waits_are_group_committed_and_cover_every_record() {
        let path = temp_path("durable");
        let log = FlowLog::open(&path, "s-0000000000000001").unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        log.append(FlowRecord::new(Event::Decision, Kind::Request))
                            .unwrap();
                        let ticket = log.durable_ticket();
                        log.wait_durable(ticket).unwrap();
                        let syncs = log.inner.syncs.lock().unwrap();
                        // The record was written before sync `ticket` started, which finished.
                        assert!(syncs.finished >= ticket.0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let syncs = log.inner.syncs.lock().unwrap();
        assert!(
            syncs.finished >= 1 && syncs.finished <= 400,
            "{}",
            syncs.finished
        );
        assert!(!syncs.running);
        drop(syncs);
        assert_eq!(verify(&path), 400);
        // A log without a file has nothing to wait for.
        let mem = FlowLog::in_memory("s-0000000000000002");
        mem.wait_durable(mem.durable_ticket()).unwrap();
    }

    #[test]
    fn a_second_writer_of_the_same_file_is_refused_until_the_first_is_gone() {
        let path = temp_path("busy");
        let first = FlowLog::open(&path, "s-0000000000000001").unwrap();
        let clone = first.clone();
        let err = FlowLog::open(&path, "s-0000000000000002").unwrap_err();
        assert!(matches!(err, FlowLogError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("another session"));
        clone
            .append(FlowRecord::new(Event::Decision, Kind::Request))
            .unwrap();
        drop(first);
        drop(clone);
        let second = FlowLog::open(&path, "s-0000000000000002").unwrap();
        second
            .append(FlowRecord::new(Event::Decision, Kind::Request))
            .unwrap();
        assert_eq!(verify(&path), 2, "the second session continues the chain");
    }

    #[test]
    fn appends_continue_the_chain_across_sessions() {
        let path = temp_path("continue");
        let log = FlowLog::open(&path, "s-0000000000000001").unwrap();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        log.add_sink(counter.clone());
        let a = log
            .append(FlowRecord::new(Event::SessionStart, Kind::Session))
            .unwrap();
        let b = log
            .append(FlowRecord::new(Event::Decision, Kind::Connect))
            .unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.prev, GENESIS_PREV);
        assert_eq!(b.prev, a.hash);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        drop(log);
        let log2 = FlowLog::open(&path, "s-0000000000000002").unwrap();
        let c = log2
            .append(FlowRecord::new(Event::SessionStart, Kind::Session))
            .unwrap();
        assert_eq!(c.prev, b.hash);
        assert_eq!(c.seq, 1);
        assert_eq!(verify(&path), 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the log must not be readable by others");
        }
    }

    #[test]
    fn refuses_a_damaged_tail() {
        let path = temp_path("damaged");
        let log = FlowLog::open(&path, "s-0000000000000001").unwrap();
        log.append(FlowRecord::new(Event::SessionStart, Kind::Session))
            .unwrap();
        drop(log);
        // A cut-off line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"ts\":").unwrap();
        drop(f);
        let err = FlowLog::open(&path, "s-0000000000000002").unwrap_err();
        assert!(matches!(err, FlowLogError::DamagedTail { .. }), "{err}");

        // A complete line whose content was edited after hashing.
        let path = temp_path("edited");
        let log = FlowLog::open(&path, "s-0000000000000001").unwrap();
        log.append(FlowRecord::new(Event::SessionStart, Kind::Session))
            .unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("session_start", "session_end")).unwrap();
        let err = FlowLog::open(&path, "s-0000000000000002").unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn a_failed_write_refuses_the_flow_and_all_later_ones() {
        // /dev/full accepts open and fails every write with ENOSPC.
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let file = OpenOptions::new().write(true).open(full).unwrap();
        let log = FlowLog::build(
            "s-0000000000000001",
            Some(full.into()),
            Some(file),
            GENESIS_PREV.into(),
            0,
        );
        let err = log
            .append(FlowRecord::new(Event::Decision, Kind::Request))
            .unwrap_err();
        assert!(matches!(err, FlowLogError::Write { .. }));
        let err = log
            .append(FlowRecord::new(Event::Decision, Kind::Request))
            .unwrap_err();
        assert!(matches!(err, FlowLogError::Poisoned { .. }));
    }

    #[test]
    fn parallel_writers_leave_one_intact_chain_in_file_order() {
        // Lines are placed with positioned writes outside the lock: whatever the interleaving,
        // the file must hold every record once, in seq order, each chained to the one before,
        // and every record a sink saw must be in the file.
        let path = temp_path("parallel");
        let log = FlowLog::open(&path, "s-0000000000000003").unwrap();
        let sink = Arc::new(Counter(AtomicUsize::new(0)));
        log.add_sink(sink.clone());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let mut rec = FlowRecord::new(Event::Decision, Kind::Request);
                        rec.path = Some(format!("/v1/thread-{t}/request-{i}"));
                        let sealed = log.append(rec).unwrap();
                        if i % 50 != 0 {
                            continue;
                        }
                        // Before `append` returns, the line is in the file.
                        let data = std::fs::read(log.path().unwrap()).unwrap();
                        let needle = format!("\"hash\":\"{}\"", sealed.hash);
                        assert!(
                            data.windows(needle.len()).any(|w| w == needle.as_bytes()),
                            "record {} not in the file when append returned",
                            sealed.seq
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(verify(&path), 2000);
        assert_eq!(sink.0.load(Ordering::SeqCst), 2000);
        let data = std::fs::read_to_string(&path).unwrap();
        let seqs: Vec<u64> = data
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seqs, (1..=2000).collect::<Vec<u64>>());
        // A later session continues after the last line, not over it.
        drop(log);
        let again = FlowLog::open(&path, "s-0000000000000004").unwrap();
        again
            .append(FlowRecord::new(Event::Decision, Kind::Request))
            .unwrap();
        assert_eq!(verify(&path), 2001);
    }

    #[test]
    fn timestamps_have_microseconds() {
        let ts = now_rfc3339();
        assert_eq!(ts.len(), "2026-11-21T10:04:05.123456Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
    }
}
