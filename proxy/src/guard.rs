//! The HTTP/1 request-framing guard: it sits between the client socket and hyper and refuses
//! the request shapes that smuggling and header-flooding attacks use.
//!
//! hyper is lenient by design: it silently merges duplicate identical `Content-Length`
//! headers and lets `Transfer-Encoding` win over `Content-Length`. A proxy must not be lenient,
//! because the upstream may frame the same bytes differently. The guard therefore holds back
//! each request head until it is complete, validates it, and only then hands it to hyper. It
//! follows the body framing (fixed length or chunked) so that it finds the next head on a
//! keep-alive connection. On a violation it answers 400 (431 for an oversize head) itself,
//! records the violation for the flow log, and ends the stream.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A refused request head: what the client was told and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The status sent to the client (400 or 431, 405 for CONNECT inside a tunnel).
    pub status: u16,
    /// Why, for the client and the log (never contains header values).
    pub reason: String,
    /// The request method and path, when the request line was readable.
    pub method: Option<String>,
    /// The request path without query.
    pub path: Option<String>,
}

/// Where a violation is reported to the connection's owner.
pub type ViolationSlot = Arc<Mutex<Option<Violation>>>;

const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size {
        digits: u32,
        in_ext: bool,
        len: usize,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    Trailer {
        len: usize,
    },
    TrailerLf {
        empty: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Fixed(u64),
    Chunked(Chunk, u64),
    Tunnel,
}

/// The framing checker without I/O (also what the unit tests drive).
#[derive(Debug)]
pub struct Framer {
    state: State,
    head: Vec<u8>,
    max_head: usize,
    allow_connect: bool,
    trailer_bytes: usize,
}

impl Framer {
    /// A checker for heads of at most `max_head` bytes. `allow_connect` is true on the
    /// proxy's own listener and false inside an intercepted tunnel.
    pub fn new(max_head: usize, allow_connect: bool) -> Framer {
        Framer {
            state: State::Head,
            head: Vec::new(),
            max_head,
            allow_connect,
            trailer_bytes: 0,
        }
    }

    /// Feeds received bytes; appends the bytes that may go to hyper to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut BytesMut) -> Result<(), Violation> {
        while !data.is_empty() {
            match self.state {
                State::Tunnel => {
                    out.extend_from_slice(data);
                    return Ok(());
                }
                State::Fixed(n) => {
                    let take = (n.min(data.len() as u64)) as usize;
                    out.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.state = if n == take as u64 {
                        State::Head
                    } else {
                        State::Fixed(n - take as u64)
                    };
                }
                State::Head => {
                    let old = self.head.len();
                    let search_from = old.saturating_sub(3);
                    self.head.extend_from_slice(data);
                    let end = find_head_end(&self.head[search_from..]).map(|e| e + search_from);
                    if bare_lf(&self.head, old.saturating_sub(1)).is_some() {
                        return Err(self.violation(400, "bare LF line ending in the request head"));
                    }
                    match end {
                        None => {
                            if self.head.len() > self.max_head {
                                return Err(self.violation(
                                    431,
                                    "request head larger than the proxy's header size limit",
                                ));
                            }
                            data = &[];
                        }
                        Some(end) => {
                            if end > self.max_head {
                                return Err(self.violation(
                                    431,
                                    "request head larger than the proxy's header size limit",
                                ));
                            }
                            let consumed = end - old;
                            data = &data[consumed..];
                            self.head.truncate(end);
                            let next = self.check_head()?;
                            out.extend_from_slice(&self.head);
                            self.head.clear();
                            self.state = next;
                        }
                    }
                }
                State::Chunked(chunk, size) => {
                    data = self.feed_chunked(chunk, size, data, out)?;
                }
            }
        }
        Ok(())
    }

    fn feed_chunked<'a>(
        &mut self,
        mut chunk: Chunk,
        mut size: u64,
        mut data: &'a [u8],
        out: &mut BytesMut,
    ) -> Result<&'a [u8], Violation> {
        let bad = |s: &mut Framer, what: &str| Err(s.violation(400, what));
        while let Some(&b) = data.first() {
            if let Chunk::Data(n) = chunk {
                let take = (n.min(data.len() as u64)) as usize;
                out.extend_from_slice(&data[..take]);
                data = &data[take..];
                chunk = if n == take as u64 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(n - take as u64)
                };
                continue;
            }
            out.extend_from_slice(&[b]);
            data = &data[1..];
            chunk = match chunk {
                Chunk::Size {
                    digits,
                    in_ext,
                    len,
                } => {
                    if len > MAX_CHUNK_LINE {
                        return bad(self, "chunk size line too long");
                    }
                    if b == b'\r' {
                        if digits == 0 {
                            return bad(self, "chunk without a size");
                        }
                        Chunk::SizeLf { size }
                    } else if in_ext {
                        if b == b'\n' || b < 0x09 || (0x0a..0x20).contains(&b) || b == 0x7f {
                            return bad(self, "invalid byte in a chunk extension");
                        }
                        Chunk::Size {
                            digits,
                            in_ext,
                            len: len + 1,
                        }
                    } else if b == b';' && digits > 0 {
                        Chunk::Size {
                            digits,
                            in_ext: true,
                            len: len + 1,
                        }
                    } else if let Some(v) = (b as char).to_digit(16) {
                        if digits >= 15 {
                            return bad(self, "chunk size too large");
                        }
                        size = size * 16 + v as u64;
                        Chunk::Size {
                            digits: digits + 1,
                            in_ext,
                            len: len + 1,
                        }
                    } else {
                        return bad(self, "invalid chunk size");
                    }
                }
                Chunk::SizeLf { size: s } => {
                    if b != b'\n' {
                        return bad(self, "chunk size line not ended by CRLF");
                    }
                    if s == 0 {
                        self.trailer_bytes = 0;
                        Chunk::Trailer { len: 0 }
                    } else {
                        Chunk::Data(s)
                    }
                }
                Chunk::DataCr => {
                    if b != b'\r' {
                        return bad(self, "chunk data longer than its size");
                    }
                    Chunk::DataLf
                }
                Chunk::DataLf => {
                    if b != b'\n' {
                        return bad(self, "chunk data not followed by CRLF");
                    }
                    size = 0;
                    Chunk::Size {
                        digits: 0,
                        in_ext: false,
                        len: 0,
                    }
                }
                Chunk::Trailer { len } => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > self.max_head {
                        return Err(self.violation(431, "chunked trailers larger than the limit"));
                    }
                    if b == b'\r' {
                        Chunk::TrailerLf { empty: len == 0 }
                    } else if b == b'\n' {
                        return bad(self, "bare LF in chunked trailers");
                    } else {
                        Chunk::Trailer { len: len + 1 }
                    }
                }
                Chunk::TrailerLf { empty } => {
                    if b != b'\n' {
                        return bad(self, "trailer line not ended by CRLF");
                    }
                    if empty {
                        self.state = State::Head;
                        return Ok(data);
                    }
                    Chunk::Trailer { len: 0 }
                }
                Chunk::Data(_) => unreachable!("handled above"),
            };
        }
        self.state = State::Chunked(chunk, size);
        Ok(data)
    }

    /// Validates the complete head in `self.head`; returns the state for its body.
    fn check_head(&mut self) -> Result<State, Violation> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = req.parse(&self.head);
        let method = req.method.map(str::to_string);
        let path = req
            .path
            .map(|p| p.split('?').next().unwrap_or_default().to_string());
        let fail = |status: u16, reason: &str| Violation {
            status,
            reason: reason.to_string(),
            method: method.clone(),
            path: path.clone(),
        };
        match parsed {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(fail(400, "incomplete request head")),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(fail(431, "too many request headers"))
            }
            Err(e) => return Err(fail(400, &format!("malformed request head ({e})"))),
        }
        let mut content_lengths = 0;
        let mut length: u64 = 0;
        let mut transfer_encodings = 0;
        let mut chunked = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                content_lengths += 1;
                let v = trim_ows(h.value);
                if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                    return Err(fail(400, "invalid Content-Length"));
                }
                length = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| fail(400, "invalid Content-Length"))?;
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encodings += 1;
                chunked = trim_ows(h.value).eq_ignore_ascii_case(b"chunked");
                if !chunked {
                    return Err(fail(
                        400,
                        "unsupported Transfer-Encoding (only `chunked` alone is accepted)",
                    ));
                }
            }
        }
        if content_lengths > 1 {
            return Err(fail(
                400,
                "duplicate Content-Length headers (request smuggling shape)",
            ));
        }
        if transfer_encodings > 1 {
            return Err(fail(
                400,
                "duplicate Transfer-Encoding headers (request smuggling shape)",
            ));
        }
        if content_lengths > 0 && transfer_encodings > 0 {
            return Err(fail(
                400,
                "Content-Length together with Transfer-Encoding (request smuggling shape)",
            ));
        }
        if transfer_encodings > 0 && req.version == Some(0) {
            return Err(fail(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if req.method == Some("CONNECT") {
            if !self.allow_connect {
                return Err(fail(405, "CONNECT inside a tunnel is not allowed"));
            }
            return Ok(State::Tunnel);
        }
        // A WebSocket upgrade: what follows is frames once the answer is `101`, or nothing
        // (the proxy closes the connection after any other answer to it).
        let upgrade_ws = req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("upgrade")
                && h.value
                    .split(|b| *b == b',')
                    .any(|t| trim_ows(t).eq_ignore_ascii_case(b"websocket"))
        });
        if req.method == Some("GET") && upgrade_ws && length == 0 && !chunked {
            return Ok(State::Tunnel);
        }
        Ok(if chunked {
            State::Chunked(
                Chunk::Size {
                    digits: 0,
                    in_ext: false,
                    len: 0,
                },
                0,
            )
        } else if length > 0 {
            State::Fixed(length)
        } else {
            State::Head
        })
    }

    fn violation(&self, status: u16, reason: &str) -> Violation {
        let mut headers = [httparse::EMPTY_HEADER; 0];
        let mut req = httparse::Request::new(&mut headers);
        let _ = req.parse(&self.head);
        Violation {
            status,
            reason: reason.to_string(),
            method: req.method.map(str::to_string),
            path: req
                .path
                .map(|p| p.split('?').next().unwrap_or_default().to_string()),
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The index of a `\n` not preceded by `\r`, looking from `from`. Leading empty lines are
/// tolerated by neither side, so any bare LF is refused.
fn bare_lf(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find(|&i| buf[i] == b'\n' && (i == 0 || buf[i - 1] != b'\r'))
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// The reason phrase of the statuses the guard sends.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    }
}

/// The raw response the guard writes for a violation.
fn rejection(v: &Violation) -> Bytes {
    let body = serde_json::json!({
        "error": "bad_request",
        "reason": v.reason,
    })
    .to_string();
    Bytes::from(format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        v.status,
        reason_phrase(v.status),
        body.len(),
        body
    ))
}

/// The guard as a byte stream: reads pass through the [`Framer`]; writes go straight through.
pub struct H1Guard<T> {
    inner: T,
    framer: Framer,
    out: BytesMut,
    rejecting: Option<Bytes>,
    slot: ViolationSlot,
    eof: bool,
}

impl<T> H1Guard<T> {
    /// Guards `inner`; violations are reported into `slot`.
    pub fn new(inner: T, max_head: usize, allow_connect: bool, slot: ViolationSlot) -> Self {
        H1Guard {
            inner,
            framer: Framer::new(max_head, allow_connect),
            out: BytesMut::new(),
            rejecting: None,
            slot,
            eof: false,
        }
    }
}

/// Read buffers (16 KiB, zeroed once) reused by every guard on this thread. Guards nest (the
/// guard of a CONNECT connection sits under the TLS stream of the guard inside its tunnel), so
/// this is a small stack: each read takes one and gives it back, and a nested read takes the
/// next. Zeroing 16 KiB on every read cost more than the rest of the guard.
fn take_scratch() -> Box<[u8]> {
    SCRATCH
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; SCRATCH_LEN].into_boxed_slice())
}

fn give_back_scratch(buf: Box<[u8]>) {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < 4 {
            s.push(buf);
        }
    });
}

const SCRATCH_LEN: usize = 16 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<Box<[u8]>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for H1Guard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if let Some(pending) = this.rejecting.as_mut() {
                while !pending.is_empty() {
                    match Pin::new(&mut this.inner).poll_write(cx, pending) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            pending.clear();
                        }
                        Poll::Ready(Ok(n)) => pending.advance(n),
                    }
                }
                let _ = Pin::new(&mut this.inner).poll_flush(cx);
                // End of stream for hyper: the connection closes after the rejection.
                return Poll::Ready(Ok(()));
            }
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut tmp = take_scratch();
            let mut rb = ReadBuf::new(&mut tmp);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut rb);
            let got = rb.filled().len();
            let result = match polled {
                Poll::Pending => Some(Poll::Pending),
                Poll::Ready(Err(e)) => Some(Poll::Ready(Err(e))),
                Poll::Ready(Ok(())) if got == 0 => {
                    this.eof = true;
                    None
                }
                Poll::Ready(Ok(())) => {
                    if let Err(v) = this.framer.feed(&tmp[..got], &mut this.out) {
                        this.out.clear();
                        this.rejecting = Some(rejection(&v));
                        *this.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
                    }
                    None
                }
            };
            give_back_scratch(tmp);
            if let Some(result) = result {
                return result;
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for H1Guard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Result<(), Violation>, Vec<u8>) {
        let mut f = Framer::new(1024, false);
        let mut out = BytesMut::new();
        let r = f.feed(input, &mut out);
        (r, out.to_vec())
    }

    fn run_bytewise(input: &[u8]) -> (Result<(), Violation>, Vec<u8>) {
        let mut f = Framer::new(1024, false);
        let mut out = BytesMut::new();
        for b in input {
            if let Err(v) = f.feed(std::slice::from_ref(b), &mut out) {
                return (Err(v), out.to_vec());
            }
        }
        (Ok(()), out.to_vec())
    }

    fn rejected(input: &[u8], status: u16) {
        for (r, _) in [run(input), run_bytewise(input)] {
            let v = r.expect_err("must be rejected");
            assert_eq!(v.status, status, "{v:?}");
        }
    }

    #[test]
    fn passes_valid_keep_alive_requests_through_unchanged() {
        let input = b"POST /v1/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n";
        for (r, out) in [run(input), run_bytewise(input)] {
            r.unwrap();
            assert_eq!(out, input.to_vec());
        }
    }

    #[test]
    fn holds_back_an_incomplete_head() {
        let (r, out) = run(b"GET / HTTP/1.1\r\nHost: x\r\n");
        r.unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn rejects_smuggling_shapes() {
        rejected(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
        rejected(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400);
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            400,
        );
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n",
            400,
        );
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            400,
        );
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
            400,
        );
        rejected(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            400,
        );
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
            400,
        );
        rejected(
            b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        );
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
            400,
        );
        rejected(b"GET / HTTP/1.1\nHost: x\n\n", 400);
        rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\nb\r\n\r\n", 400);
        rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400);
        rejected(b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400);
        rejected(
            b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
            405,
        );
    }

    #[test]
    fn rejects_bad_chunk_framing() {
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        );
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n",
            400,
        );
        rejected(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
            400,
        );
        rejected(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400);
        // A smuggled second request hidden in a bad chunk is never passed on.
        let (r, out) = run(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /admin HTTP/1.1\r\n\r\n");
        // `0\r\n` then a trailer line `GET /admin HTTP/1.1`, then the empty line: valid
        // framing, and the "request" is only a trailer to both parsers.
        r.unwrap();
        assert!(out.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn rejects_oversize_heads() {
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 2000));
        big.extend_from_slice(b"\r\n\r\n");
        rejected(&big, 431);
        // Even before the head ends.
        rejected(&big[..1500], 431);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("a{i}:b\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let mut f = Framer::new(1 << 20, false);
        let v = f.feed(&many, &mut BytesMut::new()).unwrap_err();
        assert_eq!(v.status, 431);
    }

    #[test]
    fn connect_switches_to_tunnel_on_the_proxy_listener() {
        let mut f = Framer::new(1024, true);
        let mut out = BytesMut::new();
        let input = b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03\x01garbage\r\n\r\n";
        f.feed(input, &mut out).unwrap();
        assert_eq!(out.to_vec(), input.to_vec());
    }

    #[tokio::test]
    async fn the_stream_answers_the_violation_and_ends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(4096);
        let slot: ViolationSlot = Arc::default();
        let mut guard = H1Guard::new(server, 1024, false, slot.clone());
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(b"POST /x?k=secret HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nA")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let n = guard.read_buf(&mut seen).await.unwrap();
        assert_eq!(n, 0, "hyper must see nothing of the refused request");
        let mut answer = String::new();
        drop(guard);
        cr.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        let v = slot.lock().unwrap().clone().unwrap();
        assert_eq!(v.path.as_deref(), Some("/x"));
        assert_eq!(v.method.as_deref(), Some("POST"));
    }
}
