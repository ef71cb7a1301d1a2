//! Reading a socket in large bursts for a TLS layer that asks for a few KiB at a time.
//!
//! rustls reads its records in 4 KiB steps, so a 16 KiB record costs about four `recvfrom`
//! calls and a 64 MiB download about 16,000. Once a read fills what the TLS layer asked for
//! (more is likely waiting), [`ReadAhead`] takes whatever the socket holds, up to
//! [`READ_AHEAD`] bytes, with one call and serves the TLS layer's small reads from memory.
//! Small exchanges (a request, a short answer) read straight through and allocate nothing,
//! and the buffer exists only while it holds data: an idle connection keeps none.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest burst read from the socket at once.
pub const READ_AHEAD: usize = 64 * 1024;

/// A stream whose reads are served from bursts of up to [`READ_AHEAD`] bytes; writes pass
/// straight through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    buf: BytesMut,
    /// The last read filled the reader's buffer: the next one goes through memory.
    bulk: bool,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            buf: BytesMut::new(),
            bulk: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buf.is_empty() {
            if !this.bulk || dst.remaining() >= READ_AHEAD {
                // Straight through; a read that fills `dst` suggests more is waiting.
                let before = dst.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, dst))?;
                this.bulk = dst.remaining() == 0 && dst.filled().len() > before;
                return Poll::Ready(Ok(()));
            }
            this.buf.reserve(READ_AHEAD);
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.buf
            ))?;
            // A short burst means the socket is keeping up: back to reading straight through.
            this.bulk = n >= READ_AHEAD / 4;
            if n == 0 {
                // End of stream (or an empty `dst`, which reads nothing either way).
                this.buf = BytesMut::new();
                return Poll::Ready(Ok(()));
            }
        }
        let n = this.buf.len().min(dst.remaining());
        dst.put_slice(&this.buf[..n]);
        this.buf.advance(n);
        if this.buf.is_empty() {
            // Drained: give the memory back, so idle connections hold no buffer.
            this.buf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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
    async fn small_reads_see_every_byte_in_order_and_eof() {
        let (mut w, r) = tokio::io::duplex(256 * 1024);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(10_007) {
                w.write_all(chunk).await.unwrap();
            }
        });
        let mut r = ReadAhead::new(r);
        let mut got = Vec::new();
        let mut small = [0u8; 4096];
        loop {
            let n = r.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        writer.await.unwrap();
        assert_eq!(got, data);
        assert!(
            r.buf.is_empty() && r.buf.capacity() == 0,
            "no buffer kept at end"
        );
    }

    #[tokio::test]
    async fn a_burst_is_read_once_and_released_when_drained() {
        let (mut w, r) = tokio::io::duplex(256 * 1024);
        w.write_all(&[1u8; 20_000]).await.unwrap();
        let mut r = ReadAhead::new(r);
        let mut small = [0u8; 4096];
        // The first read goes straight through and fills `small`: more is likely waiting ...
        assert_eq!(r.read(&mut small).await.unwrap(), 4096);
        assert_eq!(r.buf.capacity(), 0);
        // ... so the next one takes the whole rest in one burst and holds it in memory ...
        assert_eq!(r.read(&mut small).await.unwrap(), 4096);
        assert_eq!(r.buf.len(), 20_000 - 2 * 4096);
        let mut rest = vec![0u8; 20_000];
        let n = r.read(&mut rest).await.unwrap();
        assert_eq!(n, 20_000 - 2 * 4096);
        // ... and gives it back once drained.
        assert_eq!(r.buf.capacity(), 0);
        // A small exchange reads straight through and allocates nothing.
        w.write_all(b"ping").await.unwrap();
        assert_eq!(r.read(&mut small).await.unwrap(), 4);
        assert!(!r.bulk && r.buf.capacity() == 0);
        // Writes pass through.
        r.write_all(b"pong").await.unwrap();
        let mut back = [0u8; 4];
        w.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"pong");
    }
}
