//! Streaming bodies: forwarded frame by frame, counted, and (outbound) scanned for secrets.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use egress_policy::secrets::SecretScanner;
use http::HeaderMap;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, SizeHint};

/// Any error a forwarded body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response the proxy builds.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Bytes kept back at the end of what was received, so that a secret split across frames is
/// found before any part of it is forwarded. Larger than the scanner's longest pattern window.
const HOLD_BACK: usize = 320;

/// What a [`HoldBack`] body does to the bytes it streams: it sees every data frame appended to
/// the bytes still held back, may change them in place (keeping their length) or refuse the
/// body, and says how many bytes at the end must wait for the next frame.
pub trait StreamFilter {
    /// `held` holds the bytes kept back so far followed by the new frame's `new_len` bytes.
    /// Returns how many bytes at the end of `held` to keep back, or an error that ends the body
    /// before anything still held is forwarded.
    fn filter(&mut self, held: &mut BytesMut, new_len: usize) -> Result<usize, BoxError>;

    /// Sees the trailers before they are forwarded.
    fn trailers(&mut self, _trailers: &mut HeaderMap) {}
}

/// A body forwarded frame by frame through a [`StreamFilter`], with a tail held back only as
/// long as the filter needs it: the one streaming wrapper behind the outbound secret scan
/// ([`ScanBody`]) and the inbound credential scrub (`scrub::ScrubBody`). Lengths never change,
/// so the inner body's size hint stays true.
pub struct HoldBack<B, F> {
    inner: B,
    filter: F,
    held: BytesMut,
    trailers: Option<HeaderMap>,
    done: bool,
}

impl<B, F> HoldBack<B, F> {
    /// Streams `inner` through `filter`.
    pub fn new(inner: B, filter: F) -> Self {
        HoldBack {
            inner,
            filter,
            held: BytesMut::new(),
            trailers: None,
            done: false,
        }
    }
}

impl<B, F> Body for HoldBack<B, F>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    F: StreamFilter + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done || this.trailers.is_some() {
                if !this.held.is_empty() {
                    // Nothing follows: the held tail cannot be completed any more.
                    return Poll::Ready(Some(Ok(Frame::data(this.held.split().freeze()))));
                }
                if let Some(mut t) = this.trailers.take() {
                    this.filter.trailers(&mut t);
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.held.extend_from_slice(&data);
                        match this.filter.filter(&mut this.held, data.len()) {
                            Err(e) => {
                                this.held.clear();
                                this.done = true;
                                return Poll::Ready(Some(Err(e)));
                            }
                            Ok(hold) => {
                                let emit = this.held.len().saturating_sub(hold);
                                if emit > 0 {
                                    let out = this.held.split_to(emit).freeze();
                                    return Poll::Ready(Some(Ok(Frame::data(out))));
                                }
                            }
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            this.trailers = Some(t);
                        }
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // The filters keep lengths, so the inner body's length still holds.
        self.inner.size_hint()
    }
}

/// The upload was cut because it carried a secret.
#[derive(Debug, thiserror::Error)]
#[error("request body aborted by the egress proxy: it contains a {kind} credential")]
pub struct SecretInBody {
    /// What kind of secret (`aws_access_key`, `github_token`, ...).
    pub kind: String,
}

/// The outbound filter: counts a request body's bytes and scans them for secrets.
pub struct SecretScan {
    scanner: SecretScanner,
    bytes: Arc<AtomicU64>,
    finding: Arc<Mutex<Option<String>>>,
    block: bool,
}

impl StreamFilter for SecretScan {
    fn filter(&mut self, held: &mut BytesMut, new_len: usize) -> Result<usize, BoxError> {
        let data = &held[held.len() - new_len..];
        self.bytes.fetch_add(new_len as u64, Ordering::Relaxed);
        if let Some(first) = self.scanner.feed(data).first() {
            let kind = first.kind.as_str().to_string();
            let what = if self.block {
                "upstream request aborted"
            } else {
                "forwarded because [secrets] action = \"log\""
            };
            *self.finding.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                "the request body carries a secret ({kind}); {what}"
            ));
            if self.block {
                return Err(Box::new(SecretInBody { kind }));
            }
        }
        Ok(held.len().min(HOLD_BACK))
    }
}

/// A request body that counts its bytes and scans them; on a finding it ends with an error,
/// which aborts the upstream request before the chunk holding the secret is sent.
pub type ScanBody<B> = HoldBack<B, SecretScan>;

impl<B> HoldBack<B, SecretScan> {
    /// Scans `inner`; counts into `bytes`; reports a finding into `finding`. With `block`
    /// (the contract's `[secrets] action = "block"`) a finding ends the body with an error;
    /// otherwise it is only reported.
    pub fn scanning(
        inner: B,
        bytes: Arc<AtomicU64>,
        finding: Arc<Mutex<Option<String>>>,
        block: bool,
    ) -> Self {
        HoldBack::new(
            inner,
            SecretScan {
                scanner: SecretScanner::new(),
                bytes,
                finding,
                block,
            },
        )
    }
}

/// The most of an abandoned request body that is read (and discarded) in the background.
const DRAIN_MAX: u64 = 1024 * 1024;

/// A client request body that, when dropped before its end (the upstream failed, or the
/// request was aborted), keeps reading and discarding it in the background for a while.
/// HTTP/2 clients then get the proxy's answer instead of a stream reset.
pub struct DrainOnDrop {
    inner: Option<hyper::body::Incoming>,
    ended: bool,
    /// Bytes already read from `inner` (a checked body's head), sent first.
    prefix: Option<Bytes>,
}

impl DrainOnDrop {
    /// Wraps a request body.
    pub fn new(inner: hyper::body::Incoming) -> Self {
        DrainOnDrop {
            inner: Some(inner),
            ended: false,
            prefix: None,
        }
    }

    /// Wraps a request body of which `prefix` was already read: it comes first.
    pub fn with_prefix(inner: hyper::body::Incoming, prefix: Bytes) -> Self {
        DrainOnDrop {
            inner: Some(inner),
            ended: false,
            prefix: (!prefix.is_empty()).then_some(prefix),
        }
    }
}

impl Body for DrainOnDrop {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let res = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = res {
            self.ended = true;
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self
            .inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
        let Some(prefix) = &self.prefix else {
            return rest;
        };
        // Incoming's hint counts what is left to read, after the prefix.
        let n = prefix.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + n);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + n);
        }
        hint
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.ended || body.is_end_stream() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drain(body));
        }
    }
}

/// Reads and discards `body`: at most 1 MiB, for at most 2 s.
pub async fn drain<B: Body + Unpin>(body: B) {
    drain_up_to(body, DRAIN_MAX, std::time::Duration::from_secs(2)).await
}

/// Reads and discards `body`: at most `max` bytes, for at most `wait`.
pub async fn drain_up_to<B: Body + Unpin>(mut body: B, max: u64, wait: std::time::Duration) {
    use http_body_util::BodyExt;
    let read = async {
        let mut total = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                total += d.remaining() as u64;
                if total > max {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(wait, read).await;
}

/// A response body that counts its bytes and keeps `guard` alive until the body is finished
/// or dropped (the guard writes the flow's `end` record when dropped).
pub struct CountBody<B, G> {
    inner: B,
    bytes: Arc<AtomicU64>,
    guard: Option<G>,
}

impl<B, G> CountBody<B, G> {
    /// Counts `inner` into `bytes`; drops `guard` at the end.
    pub fn new(inner: B, bytes: Arc<AtomicU64>, guard: G) -> Self {
        CountBody {
            inner,
            bytes,
            guard: Some(guard),
        }
    }
}

impl<B, G> Body for CountBody<B, G>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    G: Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.guard.take();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.guard.take();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body made of given data frames, for the body wrappers' tests.
#[cfg(test)]
pub(crate) struct Chunks(pub(crate) std::collections::VecDeque<Frame<Bytes>>);

#[cfg(test)]
impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// The frames `parts`, in order.
#[cfg(test)]
pub(crate) fn chunks(parts: &[&[u8]]) -> Chunks {
    Chunks(
        parts
            .iter()
            .map(|p| Frame::data(Bytes::copy_from_slice(p)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Holds back the last `n` bytes and upper-cases everything; refuses a `!`.
    struct Upper(usize);

    impl StreamFilter for Upper {
        fn filter(&mut self, held: &mut BytesMut, _new: usize) -> Result<usize, BoxError> {
            if held.contains(&b'!') {
                return Err("bang".into());
            }
            held.make_ascii_uppercase();
            Ok(held.len().min(self.0))
        }
        fn trailers(&mut self, t: &mut HeaderMap) {
            t.insert("x-seen", http::HeaderValue::from_static("1"));
        }
    }

    #[tokio::test]
    async fn the_wrapper_holds_back_the_tail_and_flushes_it_at_the_end() {
        let mut body = std::pin::pin!(HoldBack::new(chunks(&[b"abcdef", b"gh"]), Upper(4)));
        let mut frames = Vec::new();
        while let Some(f) = body.frame().await {
            frames.push(f.unwrap().into_data().unwrap());
        }
        assert_eq!(frames, [&b"AB"[..], b"CD", b"EFGH"]);
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_refusal_forwards_nothing_still_held() {
        let mut body = std::pin::pin!(HoldBack::new(chunks(&[b"abc", b"d!"]), Upper(8)));
        let first = body.frame().await.unwrap();
        assert!(
            first.is_err(),
            "nothing held back may be sent before the refusal"
        );
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn trailers_pass_through_the_filter() {
        let mut t = HeaderMap::new();
        t.insert("x-t", http::HeaderValue::from_static("v"));
        let mut inner = chunks(&[b"abc"]);
        inner.0.push_back(Frame::trailers(t));
        let collected = HoldBack::new(inner, Upper(8)).collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-seen"], "1");
        assert_eq!(collected.to_bytes().as_ref(), b"ABC");
    }

    #[tokio::test]
    async fn clean_bodies_pass_unchanged() {
        let bytes = Arc::new(AtomicU64::new(0));
        let finding = Arc::new(Mutex::new(None));
        let big: &'static [u8] = Box::leak(vec![b'x'; 5000].into_boxed_slice());
        let body = ScanBody::scanning(
            chunks(&[b"{\"a\":", big, b"}"]),
            bytes.clone(),
            finding.clone(),
            true,
        );
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(out.len(), 5 + 5000 + 1);
        assert_eq!(bytes.load(Ordering::Relaxed), 5006);
        assert!(finding.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_secret_split_across_frames_aborts_before_it_is_sent() {
        let bytes = Arc::new(AtomicU64::new(0));
        let finding = Arc::new(Mutex::new(None));
        let body = ScanBody::scanning(
            chunks(&[b"{\"k\":\"AKIA", b"IOSFODNN7EXAMPLE\"}"]),
            bytes,
            finding.clone(),
            true,
        );
        let mut body = std::pin::pin!(body);
        let mut sent = Vec::new();
        let mut failed = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => sent.extend_from_slice(f.data_ref().unwrap()),
                Err(e) => {
                    assert!(e.to_string().contains("credential"));
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "the body must end with an error");
        assert!(
            !String::from_utf8_lossy(&sent).contains("AKIA"),
            "part of the key leaked: {sent:?}"
        );
        assert!(finding.lock().unwrap().is_some());
    }
}
