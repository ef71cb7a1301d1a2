//! The proxy's threads: one single-threaded tokio runtime per core ("thread per core").
//!
//! Every connection lives on one worker from accept to close: its client side, its tunnel,
//! and the upstream connections it uses (each worker has its own upstream pools, see
//! [`crate::upstream::Pools`]). A request therefore never hops between threads: no futex
//! wake-ups between the tunnel task and the upstream connection task, no cache lines shared
//! per request, and no work-stealing on the kept-alive path, which on a small machine
//! costs more than it saves. New connections go to the worker with the fewest open ones.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// The index of the worker this thread drives; `None` off the proxy's threads.
    static WORKER_INDEX: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The index of the worker running the caller, or 0 off the proxy's threads.
pub(crate) fn current_index() -> usize {
    WORKER_INDEX.with(|w| w.get()).unwrap_or(0)
}

/// How long a lone connection's worker keeps polling after [`stay_awake`] instead of sleeping.
const STAY_AWAKE: Duration = Duration::from_micros(100);

/// A worker with at most this many open connections stays awake on [`stay_awake`]; a busier
/// one always has work and needs no help.
const STAY_AWAKE_MAX_OPEN: usize = 2;

/// What the current worker's thread needs to stay awake: its open count and its wake-up.
struct Awake {
    open: Arc<AtomicUsize>,
    kick: Arc<tokio::sync::Notify>,
}

thread_local! {
    static AWAKE: std::cell::RefCell<Option<Awake>> = const { std::cell::RefCell::new(None) };
}

/// Called when a connection is about to wait for a quick answer (the upstream's response, the
/// client's next request): a worker with few connections keeps polling its sockets for
/// [`STAY_AWAKE`] instead of going to sleep, so the answer is picked up without the wake-up of
/// an idle CPU, which on a virtual machine costs more than the proxy's whole work on a request.
/// Busy workers do nothing here.
pub(crate) fn stay_awake() {
    AWAKE.with(|a| {
        if let Some(a) = a.borrow().as_ref() {
            if a.open.load(Ordering::Relaxed) <= STAY_AWAKE_MAX_OPEN {
                a.kick.notify_one();
            }
        }
    });
}

/// The task behind [`stay_awake`]: after each kick, it yields for [`STAY_AWAKE`], which makes
/// the runtime poll its sockets (without blocking) between the other tasks instead of parking,
/// and gives the CPU to any other runnable thread on each round (`sched_yield`).
async fn keep_awake(kick: Arc<tokio::sync::Notify>) {
    loop {
        kick.notified().await;
        let until = std::time::Instant::now() + STAY_AWAKE;
        while std::time::Instant::now() < until {
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
    }
}

struct Worker {
    /// The runtime, once its thread runs: worker 0 starts with the proxy, the others with the
    /// first connection handed to them (a session that never connects, like `sandbox run --
    /// true`, pays for one thread only). `None` inside when the thread could not start: that
    /// worker's connections go to worker 0.
    handle: OnceLock<Option<Handle>>,
    /// Connections open on this worker.
    open: Arc<AtomicUsize>,
    stop: Mutex<Option<oneshot::Sender<Duration>>>,
    /// The thread, and word from it once its runtime has shut down (every task dropped).
    thread: Mutex<Option<(JoinHandle<()>, std::sync::mpsc::Receiver<()>)>>,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            handle: OnceLock::new(),
            open: Arc::new(AtomicUsize::new(0)),
            stop: Mutex::new(None),
            thread: Mutex::new(None),
        }
    }

    /// Starts the thread of worker `index` and its runtime, unless `stopping` is set. The
    /// check and the hand-over of the stop sender happen under the `stop` lock, which
    /// [`Workers::tell_to_stop`] takes after setting `stopping`: a worker either starts in
    /// time to be told to stop, or does not start at all (a thread started in between would
    /// never be told, and [`Workers::shutdown`] would wait for it forever).
    fn spawn(&self, index: usize, stopping: &AtomicBool) -> std::io::Result<Handle> {
        let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        if stopping.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the proxy is stopping"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop_tx, stop_rx) = oneshot::channel::<Duration>();
        let kick = Arc::new(tokio::sync::Notify::new());
        runtime.spawn(keep_awake(kick.clone()));
        let open = self.open.clone();
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name(format!("sandbox-proxy-{index}"))
            .spawn(move || {
                WORKER_INDEX.with(|w| w.set(Some(index)));
                AWAKE.with(|a| *a.borrow_mut() = Some(Awake { open, kick }));
                // Drive the runtime until told to stop; a dropped sender stops at once.
                let grace = runtime.block_on(stop_rx).unwrap_or(Duration::ZERO);
                // Cancels what is left; dropping a flow writes its end record.
                runtime.shutdown_timeout(grace);
                // Said before the thread's own exit, which nobody needs to wait for.
                let _ = done_tx.send(());
            })?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some((thread, done_rx));
        *stop = Some(stop_tx);
        Ok(handle)
    }
}

/// The set of worker threads. Stopping is explicit ([`Workers::shutdown`]); dropping the set
/// without it stops the threads in the background.
pub(crate) struct Workers {
    workers: Vec<Worker>,
    next: AtomicUsize,
    /// Set by the first shutdown: no worker starts after it.
    stopping: AtomicBool,
    /// Makes the next move of a socket to another worker fail (tests of `lost`).
    #[cfg(test)]
    fail_next_registration: AtomicBool,
}

/// Decrements a worker's open-connection count when the connection ends.
struct OpenGuard(Arc<AtomicUsize>);

/// What one client connection holds for as long as it lives, tunnel included: its place under
/// the connection cap and its count on its worker (which the dispatch balances on).
pub(crate) struct ConnSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _open: OpenGuard,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// Prepares `count` (at least 1) worker threads named `sandbox-proxy-N` and starts the
    /// first; the others start when a connection is first handed to them.
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let workers = Workers {
            workers: (0..count.max(1)).map(|_| Worker::new()).collect(),
            next: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            #[cfg(test)]
            fail_next_registration: AtomicBool::new(false),
        };
        let first = workers.workers[0].spawn(0, &workers.stopping)?;
        let _ = workers.workers[0].handle.set(Some(first));
        Ok(workers)
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// The runtime of the first worker, which runs the accept loops and resolvers.
    pub fn first(&self) -> &Handle {
        self.started(0).expect("worker 0 is started with the proxy")
    }

    /// The runtime of worker `index`, started now if it was not; `None` if its thread cannot
    /// start (or the proxy is stopping).
    fn started(&self, index: usize) -> Option<&Handle> {
        let worker = &self.workers[index];
        worker
            .handle
            .get_or_init(|| worker.spawn(index, &self.stopping).ok())
            .as_ref()
    }

    /// The worker with the fewest open connections (round-robin among equals).
    fn pick(&self) -> usize {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| (start + i) % n)
            .min_by_key(|&i| self.workers[i].open.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Hands an accepted connection to the least busy worker, which runs `serve` on it until
    /// the connection ends. Called from a worker (the accept loops run on workers). If the
    /// socket cannot be moved to that worker's reactor, it is closed and `lost` says why (so
    /// that the caller can log it: no connection ends without a record).
    pub fn dispatch<F, Fut, L>(
        &self,
        tcp: TcpStream,
        permit: tokio::sync::OwnedSemaphorePermit,
        serve: F,
        lost: L,
    ) where
        F: FnOnce(TcpStream, Arc<ConnSlot>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        L: FnOnce(std::io::Error) + Send + 'static,
    {
        let mut index = self.pick();
        let handle = match self.started(index) {
            Some(h) => h.clone(),
            None => {
                index = 0;
                self.first().clone()
            }
        };
        let worker = &self.workers[index];
        worker.open.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(ConnSlot {
            _permit: permit,
            _open: OpenGuard(worker.open.clone()),
        });
        if WORKER_INDEX.with(|w| w.get()) == Some(index) {
            tokio::spawn(serve(tcp, slot));
            return;
        }
        // Move the socket to the other worker's reactor: deregister here, register there.
        let std_tcp = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => return lost(e),
        };
        #[cfg(test)]
        let fail = self.fail_next_registration.swap(false, Ordering::SeqCst);
        #[cfg(not(test))]
        let fail = false;
        handle.spawn(async move {
            let registered = if fail {
                Err(std::io::Error::other(
                    "registration failure injected by a test",
                ))
            } else {
                TcpStream::from_std(std_tcp)
            };
            match registered {
                Ok(tcp) => serve(tcp, slot).await,
                Err(e) => {
                    drop(slot);
                    lost(e)
                }
            }
        });
    }

    /// Stops every worker: tasks still running get `grace` to finish, then are dropped.
    /// Returns once every worker's runtime has shut down (all its tasks dropped, so every
    /// flow's end record written), without waiting for the threads' own exit.
    pub fn shutdown(&self, grace: Duration) {
        self.tell_to_stop(grace);
        for w in &self.workers {
            if let Some((_thread, done)) = w.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
            {
                // An error means the thread ended without saying so (it panicked): it is gone.
                let _ = done.recv();
            }
        }
    }

    /// Stops every worker without waiting.
    pub fn shutdown_background(&self) {
        self.tell_to_stop(Duration::ZERO);
    }

    /// Whether the workers were told to stop ([`Workers::shutdown`] or
    /// [`Workers::shutdown_background`] was called).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Prevents workers from starting and tells each running one to stop after `grace`.
    fn tell_to_stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        for w in &self.workers {
            if let Some(stop) = w.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = stop.send(grace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_workers_and_counts_return_to_zero() {
        let workers = Arc::new(Workers::start(2).unwrap());
        assert!(
            workers.workers[1].handle.get().is_none(),
            "worker 1 starts with its first connection, not before"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel::<usize>();
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let w = workers.clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(8));
        let held = slots.clone();
        workers.first().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            for _ in 0..4 {
                let (tcp, _) = listener.accept().await.unwrap();
                let seen = seen_tx.clone();
                let mut release = release_rx.clone();
                let permit = slots.clone().try_acquire_owned().unwrap();
                w.dispatch(
                    tcp,
                    permit,
                    move |_tcp, slot| async move {
                        let _ = seen.send(current_index());
                        // The slot outlives the task that received it (as a tunnel's does).
                        tokio::spawn(async move {
                            let _slot = slot;
                            let _ = release.wait_for(|r| *r).await;
                        });
                    },
                    |e| panic!("connection lost: {e}"),
                );
            }
        });
        let clients: Vec<_> = (0..4)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut seen: Vec<usize> = (0..4)
            .map(|_| seen_rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            vec![0, 0, 1, 1],
            "least-loaded dispatch balances 4 connections"
        );
        assert_eq!(
            held.available_permits(),
            4,
            "each connection holds its slot"
        );
        release_tx.send(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while workers
            .workers
            .iter()
            .any(|w| w.open.load(Ordering::Relaxed) > 0)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "open counts never returned to 0"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(clients);
        workers.shutdown(Duration::from_millis(100));
    }

    #[test]
    fn a_connection_that_cannot_move_to_its_worker_is_reported_and_frees_its_slot() {
        let workers = Arc::new(Workers::start(2).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (lost_tx, lost_rx) = std::sync::mpsc::channel::<String>();
        let slots = Arc::new(tokio::sync::Semaphore::new(4));
        let held = slots.clone();
        let w = workers.clone();
        workers.first().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            // Two connections: the second goes to worker 1 (least loaded) and must move.
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let permit = slots.clone().try_acquire_owned().unwrap();
                w.fail_next_registration.store(true, Ordering::SeqCst);
                let lost = lost_tx.clone();
                w.dispatch(
                    tcp,
                    permit,
                    |_tcp, slot| async move {
                        let _slot = slot;
                        std::future::pending::<()>().await;
                    },
                    move |e| {
                        let _ = lost.send(e.to_string());
                    },
                );
            }
        });
        let clients: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let why = lost_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the lost connection is reported");
        assert!(why.contains("injected"), "{why}");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while workers.workers[1].open.load(Ordering::Relaxed) > 0 || held.available_permits() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the lost connection still holds its slot"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(clients);
        workers.shutdown(Duration::from_millis(50));
    }

    #[test]
    fn no_worker_starts_once_the_workers_are_told_to_stop() {
        let workers = Workers::start(2).unwrap();
        workers.shutdown_background();
        assert!(
            workers.started(1).is_none(),
            "worker 1 started after the stop"
        );
        assert!(workers.workers[1].thread.lock().unwrap().is_none());
        assert!(workers.workers[1].stop.lock().unwrap().is_none());
        // Returns: the only thread, worker 0's, was told to stop.
        workers.shutdown(Duration::from_millis(50));
    }

    #[test]
    fn shutdown_drops_tasks_still_running() {
        let workers = Workers::start(2).unwrap();
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        workers.started(1).unwrap().spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        workers.shutdown(Duration::from_millis(50));
        assert!(
            dropped.load(Ordering::SeqCst),
            "a pending task must be dropped at shutdown"
        );
    }
}
