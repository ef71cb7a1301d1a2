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

/// The upload was cut because it carried a secret.
#[derive(Debug, thiserror::Error)]
#[error("request body aborted by the egress proxy: it contains a {kind} credential")]
pub struct SecretInBody {
    /// What kind of secret (`aws_access_key`, `github_token`, ...).
    pub kind: String,
}

/// A request body that counts its bytes and scans them; on a finding it ends with an error,
/// which aborts the upstream request before the chunk holding the secret is sent.
pub struct ScanBody<B> {
    inner: B,
    scanner: SecretScanner,
    held: BytesMut,
    trailers: Option<HeaderMap>,
    done: bool,
    bytes: Arc<AtomicU64>,
    finding: Arc<Mutex<Option<String>>>,
    block: bool,
}

impl<B> ScanBody<B> {
    /// Scans `inner`; counts into `bytes`; reports a finding into `finding`. With `block`
    /// (the contract's `[secrets] action = "block"`) a finding ends the body with an error;
    /// otherwise it is only reported.
    pub fn new(
        inner: B,
        bytes: Arc<AtomicU64>,
        finding: Arc<Mutex<Option<String>>>,
        block: bool,
    ) -> Self {
        ScanBody {
            block,
            inner,
            scanner: SecretScanner::new(),
            held: BytesMut::new(),
            trailers: None,
            done: false,
            bytes,
            finding,
        }
    }
}

impl<B> Body for ScanBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
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
                    return Poll::Ready(Some(Ok(Frame::data(this.held.split().freeze()))));
                }
                if let Some(t) = this.trailers.take() {
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
                        this.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        let found = this.scanner.feed(&data);
                        if let Some(first) = found.first() {
                            let kind = first.kind.as_str().to_string();
                            let what = if this.block {
                                "upstream request aborted"
                            } else {
                                "forwarded because [secrets] action = \"log\""
                            };
                            *this.finding.lock().unwrap_or_else(|e| e.into_inner()) = Some(
                                format!("the request body carries a secret ({kind}); {what}"),
                            );
                        }
                        if let (Some(first), true) = (found.first(), this.block) {
                            let kind = first.kind.as_str().to_string();
                            this.held.clear();
                            this.done = true;
                            return Poll::Ready(Some(Err(Box::new(SecretInBody { kind }))));
                        }
                        this.held.extend_from_slice(&data);
                        if this.held.len() > HOLD_BACK {
                            let emit = this.held.split_to(this.held.len() - HOLD_BACK);
                            return Poll::Ready(Some(Ok(Frame::data(emit.freeze()))));
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
        // The bytes are forwarded unchanged, so the client's length still holds.
        self.inner.size_hint()
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
}

impl DrainOnDrop {
    /// Wraps a request body.
    pub fn new(inner: hyper::body::Incoming) -> Self {
        DrainOnDrop {
            inner: Some(inner),
            ended: false,
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
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
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
pub async fn drain<B: Body + Unpin>(mut body: B) {
    use http_body_util::BodyExt;
    let read = async {
        let mut total = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                total += d.remaining() as u64;
                if total > DRAIN_MAX {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| Bytes::from_static(p)).collect())
    }

    #[tokio::test]
    async fn clean_bodies_pass_unchanged() {
        let bytes = Arc::new(AtomicU64::new(0));
        let finding = Arc::new(Mutex::new(None));
        let big: &'static [u8] = Box::leak(vec![b'x'; 5000].into_boxed_slice());
        let body = ScanBody::new(
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
        let body = ScanBody::new(
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
