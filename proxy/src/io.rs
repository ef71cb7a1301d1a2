//! Byte-stream adapters: replaying peeked bytes, counting bytes, and the idle watchdog (which
//! a request waiting on its upstream holds off).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Counts the bytes of a stream in each direction and the time of its last activity.
///
/// A connection waiting on the upstream for a response head is busy, not idle: no byte
/// moves, yet closing it would cut off a request that `upstream_response_timeout` still
/// allows (a long non-streaming model call). [`Activity::while_busy`] marks that wait.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    /// Requests on this connection whose response head has not been produced yet.
    in_flight: AtomicU32,
    /// Bytes read from the wrapped stream.
    pub read: AtomicU64,
    /// Bytes written to the wrapped stream.
    pub written: AtomicU64,
}

impl Activity {
    /// A fresh counter, active now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            read: AtomicU64::new(0),
            written: AtomicU64::new(0),
        })
    }

    /// Marks activity now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last byte in either direction; zero while a request is in flight.
    pub fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Marks a request in flight (its handler is producing the response head).
    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Runs a request's handler (`handler` resolves to the response, head first) with the
    /// connection marked busy from now until it resolves.
    pub fn while_busy<F: Future>(self: &Arc<Self>, handler: F) -> impl Future<Output = F::Output> {
        let busy = self.busy();
        async move {
            let out = handler.await;
            drop(busy);
            out
        }
    }
}

/// Marks one request in flight until dropped; dropping it restarts the idle clock.
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once the activity has been idle for `limit`; checks a few times per limit.
pub async fn idle_watchdog(activity: Arc<Activity>, limit: Duration) {
    let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::time::sleep(tick).await;
        if activity.idle_for() >= limit {
            return;
        }
    }
}

/// A stream that first yields `prefix` (bytes already read while peeking), then `inner`; it
/// records every byte in an [`Activity`].
pub struct Tracked<T> {
    prefix: Bytes,
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    /// Wraps `inner`, replaying `prefix` first.
    pub fn new(prefix: Bytes, inner: T, activity: Arc<Activity>) -> Tracked<T> {
        Tracked {
            prefix,
            inner,
            activity,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.read.fetch_add(n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                self.activity.written.fetch_add(n as u64, Ordering::Relaxed);
                self.activity.touch();
            }
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                self.activity.written.fetch_add(n as u64, Ordering::Relaxed);
                self.activity.touch();
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_the_prefix_then_counts() {
        let (a, mut b) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut t = Tracked::new(Bytes::from_static(b"hello "), a, activity.clone());
        b.write_all(b"world").await.unwrap();
        let mut got = vec![0u8; 11];
        t.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
        assert_eq!(activity.read.load(Ordering::Relaxed), 5);
        t.write_all(b"xyz").await.unwrap();
        assert_eq!(activity.written.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn watchdog_fires_only_after_idleness() {
        let activity = Activity::new();
        let start = Instant::now();
        idle_watchdog(activity, Duration::from_millis(200)).await;
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_request_in_flight_holds_off_the_watchdog_and_its_end_restarts_the_clock() {
        let activity = Activity::new();
        let busy = activity.busy();
        let second = activity.busy();
        let limit = Duration::from_millis(100);
        let held = tokio::time::timeout(
            Duration::from_millis(400),
            idle_watchdog(activity.clone(), limit),
        )
        .await;
        assert!(
            held.is_err(),
            "the watchdog fired while requests were in flight"
        );
        drop(busy);
        assert_eq!(
            activity.idle_for(),
            Duration::ZERO,
            "one request is still in flight"
        );
        drop(second);
        assert!(
            activity.idle_for() < limit,
            "the end of the wait did not restart the clock"
        );
        let start = Instant::now();
        idle_watchdog(activity, limit).await;
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}
