//! Starting and stopping the proxy: the library API used by `sandbox proxy` and by the
//! supervisor of `sandbox run`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use crate::ca::SessionCa;
use crate::config::ProxyConfig;
use crate::error::ProxyError;
use crate::flowlog::FlowLog;
use crate::server::accept_loop;
use crate::state::{Counters, RateLimit, Shared, Stats};
use crate::tls::{provider, InterceptConfigs, UpstreamTls};
use crate::upstream::Pools;
use crate::workers::Workers;

/// How long [`ProxyHandle::shutdown`] lets open connections finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The listen backlog the proxy asks for on every listener.
pub const LISTEN_BACKLOG: i32 = 1024;

/// What a finished session did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The session id.
    pub session_id: String,
    /// Flow counts.
    pub stats: Stats,
    /// The hash of the last record written (to anchor the chain elsewhere).
    pub last_hash: String,
}

/// A running proxy. Dropping it stops the proxy without waiting; call [`ProxyHandle::shutdown`]
/// for an orderly stop.
pub struct ProxyHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    local_addrs: Vec<SocketAddr>,
    /// The transparent capture's NFLOG readers, finished at shutdown.
    nflog: std::sync::Mutex<Vec<Arc<crate::capture::nflog::NflogReader>>>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("session", &self.session_id())
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The session CA certificate (PEM): install it as the only extra root in the sandbox.
    pub fn ca_cert_pem(&self) -> String {
        self.shared.ca.cert_pem().to_string()
    }

    /// The session id stamped on every record.
    pub fn session_id(&self) -> &str {
        self.shared.log.session()
    }

    /// The flow log, to append `session_start` / `session_end` records to the same chain.
    pub fn flow_log(&self) -> FlowLog {
        self.shared.log.clone()
    }

    /// Flow counts so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Serves the sandbox's transparent capture and DNS resolver on sockets created inside
    /// its network namespace (see [`crate::capture`]), until the proxy stops.
    pub fn serve_capture(&self, sockets: crate::capture::CaptureSockets) -> Result<(), ProxyError> {
        if self.shared.workers.is_stopping() {
            return Err(ProxyError::Runtime(std::io::Error::other(
                "the proxy runtime has stopped",
            )));
        }
        let reader = crate::capture::spawn(self.shared.clone(), self.stop.subscribe(), sockets)?;
        if let Some(r) = reader {
            self.nflog.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        }
        Ok(())
    }

    /// The addresses the proxy listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Installs SIGINT and SIGTERM handlers, calls `ready` (e.g. to announce the proxy: a
    /// signal sent after that is never lost), then blocks until one of them arrives.
    pub fn wait_for_termination_signal(&self, ready: impl FnOnce()) -> std::io::Result<()> {
        if self.shared.workers.is_stopping() {
            ready();
            return Ok(());
        }
        // A runtime of its own for the signal streams: the workers are driven by their threads.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = {
            let _guard = rt.enter();
            (
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            )
        };
        ready();
        rt.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        Ok(())
    }

    /// Stops accepting, gives open flows two seconds to finish, ends the rest (their `end`
    /// records are written), syncs the flow log to disk, and reports.
    pub fn shutdown(self) -> Report {
        let log = self.shared.log.clone();
        let report = self.shutdown_unsynced();
        let _ = log.sync();
        report
    }

    /// [`ProxyHandle::shutdown`] without the final sync of the flow log, for a caller that
    /// appends more records (e.g. `session_end`) and then calls [`FlowLog::sync`] itself: one
    /// `fdatasync` at the end of a session instead of two. The caller must sync before exit.
    pub fn shutdown_unsynced(self) -> Report {
        let _ = self.stop.send(true);
        // Grace: wait until every client connection has closed, for at most two seconds.
        let all = self.shared.limits.max_connections.max(1);
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
        while self.shared.conn_slots.available_permits() < all
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Cancels what is left; dropping a flow writes its end record.
        self.shared.workers.shutdown(Duration::from_secs(1));
        for reader in self
            .nflog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            reader.finish();
        }
        Report {
            session_id: self.session_id().to_string(),
            stats: self.stats(),
            last_hash: self.shared.log.last_hash(),
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for reader in self
            .nflog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            reader.finish();
        }
        // Already stopped by `shutdown`, which waited for the workers: nothing left to do.
        if !self.shared.workers.is_stopping() {
            self.shared.workers.shutdown_background();
        }
    }
}

/// Binds a TCP listener on `addr` the way the proxy wants it (SO_REUSEADDR, backlog 1024).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// A fresh session id: `s-` and 16 lowercase hex digits from the system CSPRNG.
pub fn new_session_id() -> String {
    let mut raw = [0u8; 8];
    let rng = rustls::crypto::ring::default_provider().secure_random;
    if rng.fill(&mut raw).is_err() {
        // The CSPRNG failing is not recoverable in a meaningful way; fall back to time+pid,
        // which is unique enough to tell sessions apart (it protects nothing).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        raw = (t ^ ((std::process::id() as u64) << 32)).to_be_bytes();
    }
    format!("s-{}", hex::encode(raw))
}

/// Starts the proxy on already-bound listeners, on its own worker threads (one
/// single-threaded tokio runtime per core).
///
/// Each listener's backlog is raised to 1024. The flow log is opened (and its chain checked)
/// before anything is accepted; the session CA is generated in memory.
pub fn start(
    config: ProxyConfig,
    listeners: Vec<std::net::TcpListener>,
) -> Result<ProxyHandle, ProxyError> {
    if listeners.is_empty() {
        return Err(ProxyError::NoListener);
    }
    let session = config.session_id.clone().unwrap_or_else(new_session_id);
    let log = match &config.log_path {
        Some(path) => FlowLog::open(path, &session)?,
        None => FlowLog::in_memory(&session),
    };
    let provider = provider();
    let ca = Arc::new(SessionCa::generate(
        &session,
        config.limits.session_validity,
        provider.clone(),
    )?);
    let upstream_tls = UpstreamTls::new(provider.clone(), config.upstream_roots.clone())?;
    let mut local_addrs = Vec::new();
    for l in &listeners {
        socket2::SockRef::from(l)
            .listen(LISTEN_BACKLOG)
            .map_err(ProxyError::Runtime)?;
        l.set_nonblocking(true).map_err(ProxyError::Runtime)?;
        local_addrs.push(l.local_addr().map_err(ProxyError::Runtime)?);
    }
    let connect_to: HashMap<(String, u16), SocketAddr> = config
        .connect_to
        .iter()
        .map(|c| ((c.host.clone(), c.port), c.addr))
        .collect();
    // One worker per core (at least two, so that one busy connection cannot stall the rest),
    // unless the operator chose.
    let count = match config.limits.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 16),
        n => n.min(256),
    };
    let workers = Arc::new(Workers::start(count).map_err(ProxyError::Runtime)?);
    let shared = Arc::new(Shared {
        policy: config.policy.clone(),
        log,
        intercept: InterceptConfigs::new(ca.clone(), provider),
        ca,
        upstream_tls,
        connect_to,
        conn_slots: Arc::new(Semaphore::new(config.limits.max_connections.max(1))),
        limits: config.limits.clone(),
        credentials: config.credentials.clone(),
        needles: config
            .credentials
            .iter()
            .filter_map(|(key, credential)| {
                crate::scrub::Needles::for_credentials(credential.secret_strings())
                    .map(|n| (key.clone(), n))
            })
            .collect(),
        counters: Counters::default(),
        next_flow: AtomicU64::new(0),
        listen_addrs: local_addrs.clone(),
        pools: Pools::per_worker(workers.len()),
        workers: workers.clone(),
        rate: RateLimit::new(config.limits.requests_per_second),
    });
    let (stop, stop_rx) = watch::channel(false);
    for l in listeners {
        let rt = workers.first();
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(l).map_err(ProxyError::Runtime)?
        };
        rt.spawn(accept_loop(shared.clone(), listener, stop_rx.clone()));
    }
    Ok(ProxyHandle {
        shared,
        stop,
        local_addrs,
        nflog: std::sync::Mutex::new(Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::test_support::start_proxy;
    use crate::capture::CaptureSockets;

    fn no_sockets() -> CaptureSockets {
        CaptureSockets {
            tcp: Vec::new(),
            dns_udp: Vec::new(),
            dns_tcp: Vec::new(),
            nflog: None,
        }
    }

    /// Once the workers are stopping, the capture is refused and the signal wait returns at
    /// once (it would otherwise block until a signal that never comes).
    #[test]
    fn a_stopping_proxy_refuses_the_capture_and_does_not_wait_for_signals() {
        let (handle, _log) = start_proxy("handle-stopping", |_| {});
        assert!(!handle.shared.workers.is_stopping());
        handle
            .serve_capture(no_sockets())
            .expect("a running proxy serves the capture");
        handle.shared.workers.shutdown(Duration::from_millis(50));
        assert!(handle.shared.workers.is_stopping());
        assert!(matches!(
            handle.serve_capture(no_sockets()),
            Err(ProxyError::Runtime(_))
        ));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let mut announced = false;
            let waited = handle.wait_for_termination_signal(|| announced = true);
            let _ = done_tx.send((waited.is_ok(), announced));
            handle
        });
        let got = done_rx.recv_timeout(Duration::from_secs(5));
        assert_eq!(
            got,
            Ok((true, true)),
            "the signal wait returned, after `ready`"
        );
        // Shutting down the already stopped proxy is harmless.
        let report = waiter.join().expect("the waiter thread").shutdown();
        assert_eq!(report.stats, Stats::default());
    }

    /// A connection that could not be handed to a worker leaves a `deny` record of its kind.
    #[test]
    fn a_lost_connection_is_a_deny_record() {
        let (handle, log) = start_proxy("handle-lost", |_| {});
        handle.shared.log_lost(
            crate::flowlog::Kind::Tcp,
            &std::io::Error::other("no room in the event loop"),
        );
        let _report = handle.shutdown();
        let recs = crate::capture::test_support::records(&log);
        let lost: Vec<_> = recs
            .iter()
            .filter(|r| r["event"] == "decision" && r["kind"] == "tcp")
            .collect();
        assert_eq!(lost.len(), 1, "{recs:#?}");
        assert_eq!(lost[0]["decision"], "deny");
        assert_eq!(
            lost[0]["reason"],
            "the proxy could not take the connection (no room in the event loop); it was closed"
        );
        assert!(lost[0]["host"].is_null() && lost[0]["port"].is_null());
    }

    /// Dropping a running proxy tells its workers to stop; dropping it after `shutdown` finds
    /// them stopped.
    #[test]
    fn dropping_a_running_proxy_stops_its_workers() {
        let (handle, _log) = start_proxy("handle-drop", |_| {});
        let workers = handle.shared.workers.clone();
        assert!(!workers.is_stopping());
        drop(handle);
        assert!(workers.is_stopping());

        let (handle, _log) = start_proxy("handle-drop-after-shutdown", |_| {});
        let workers = handle.shared.workers.clone();
        let _report = handle.shutdown();
        assert!(workers.is_stopping());
    }
}
