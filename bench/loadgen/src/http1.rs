//! A minimal HTTP/1.1 framing layer over any async byte stream: request and response heads,
//! `Content-Length` and chunked bodies. Enough for the bench, strict where it matters.

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest head (request or response) accepted.
pub const MAX_HEAD: usize = 32 * 1024;

/// A stream with a read buffer, so heads and chunk lines can be parsed without over-reading.
pub struct Framed<S> {
    io: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A parsed head: the first line's three parts and the headers that matter for framing.
#[derive(Debug, Default)]
pub struct Head {
    /// Request method, or the response's HTTP version.
    pub first: String,
    /// Request target, or the response status code.
    pub second: String,
    /// `Content-Length`, if present.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked` was present.
    pub chunked: bool,
    /// `Connection: close` was present.
    pub close: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    /// Wraps `io` with a 64 KiB read buffer.
    pub fn new(io: S) -> Self {
        Framed {
            io,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// The underlying stream, for writing.
    pub fn io(&mut self) -> &mut S {
        &mut self.io
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> Result<usize> {
        if self.start > 0 && self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start == 0 {
                bail!(
                    "a head or chunk line is longer than the {} byte buffer",
                    self.buf.len()
                );
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Reads one head. `Ok(None)` when the peer closed cleanly before sending a byte.
    pub async fn read_head(&mut self) -> Result<Option<Head>> {
        loop {
            let window = &self.buf[self.start..self.end];
            if let Some(pos) = find(window, b"\r\n\r\n") {
                let head = parse_head(&window[..pos])?;
                self.start += pos + 4;
                return Ok(Some(head));
            }
            if self.end - self.start > MAX_HEAD {
                bail!("head larger than {MAX_HEAD} bytes");
            }
            if self.fill().await? == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                bail!("the peer closed the connection in the middle of a head");
            }
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    async fn read_line(&mut self) -> Result<String> {
        loop {
            let window = &self.buf[self.start..self.end];
            if let Some(pos) = find(window, b"\r\n") {
                let line = String::from_utf8_lossy(&window[..pos]).into_owned();
                self.start += pos + 2;
                return Ok(line);
            }
            if self.fill().await? == 0 {
                bail!("the peer closed the connection in the middle of a chunked body");
            }
        }
    }

    /// Reads exactly `n` body bytes, handing each piece to `sink`.
    pub async fn read_exact_with(
        &mut self,
        mut n: u64,
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<()> {
        while n > 0 {
            if self.start == self.end && self.fill().await? == 0 {
                bail!("the peer closed the connection with {n} body bytes missing");
            }
            let take = ((self.end - self.start) as u64).min(n) as usize;
            sink(&self.buf[self.start..self.start + take]);
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads the body that `head` announces, handing each piece to `sink`; returns its length.
    /// A response with neither length nor chunking is read to end of stream.
    pub async fn read_body(&mut self, head: &Head, mut sink: impl FnMut(&[u8])) -> Result<u64> {
        if head.chunked {
            let mut total = 0u64;
            loop {
                let line = self.read_line().await?;
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_text, 16)
                    .map_err(|_| anyhow!("bad chunk size line {line:?}"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    while !self.read_line().await?.is_empty() {}
                    return Ok(total);
                }
                self.read_exact_with(size, &mut sink).await?;
                total += size;
                if !self.read_line().await?.is_empty() {
                    bail!("a chunk is not followed by CRLF");
                }
            }
        } else if let Some(n) = head.content_length {
            self.read_exact_with(n, &mut sink).await?;
            Ok(n)
        } else if head.first.starts_with("HTTP/") {
            let mut total = 0u64;
            loop {
                if self.start == self.end && self.fill().await? == 0 {
                    return Ok(total);
                }
                sink(&self.buf[self.start..self.end]);
                total += (self.end - self.start) as u64;
                self.start = self.end;
            }
        } else {
            Ok(0)
        }
    }

    /// Writes `bytes` and flushes them.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.io
            .write_all(bytes)
            .await
            .context("writing to the peer")?;
        self.io.flush().await.context("flushing to the peer")?;
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a head's text (without the final blank line).
pub fn parse_head(raw: &[u8]) -> Result<Head> {
    let text = std::str::from_utf8(raw).context("a head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let first_line = lines.next().unwrap_or_default();
    let mut parts = first_line.splitn(3, ' ');
    let mut head = Head {
        first: parts.next().unwrap_or_default().to_string(),
        second: parts.next().unwrap_or_default().to_string(),
        ..Head::default()
    };
    if head.first.is_empty() || head.second.is_empty() {
        bail!("malformed first line {first_line:?}");
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("malformed header line {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| anyhow!("bad Content-Length {value:?}"))?;
            if head.content_length.replace(n).is_some_and(|old| old != n) {
                bail!("conflicting Content-Length headers");
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    if head.chunked && head.content_length.is_some() {
        bail!("both Content-Length and Transfer-Encoding: chunked");
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response_head() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close").unwrap();
        assert_eq!(h.second, "200");
        assert_eq!(h.content_length, Some(12));
        assert!(h.close && !h.chunked);
    }

    #[test]
    fn rejects_ambiguous_framing() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2").is_err());
        assert!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked")
                .is_err()
        );
        assert!(parse_head(b"HTTP/1.1\r\n").is_err());
    }

    #[tokio::test]
    async fn reads_chunked_and_length_bodies() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let (mut a, b) = tokio::io::duplex(1024);
        a.write_all(wire).await.unwrap();
        drop(a);
        let mut f = Framed::new(b);
        let h = f.read_head().await.unwrap().unwrap();
        let mut got = Vec::new();
        assert_eq!(
            f.read_body(&h, |p| got.extend_from_slice(p)).await.unwrap(),
            6
        );
        assert_eq!(got, b"hello!");
        let h = f.read_head().await.unwrap().unwrap();
        got.clear();
        assert_eq!(
            f.read_body(&h, |p| got.extend_from_slice(p)).await.unwrap(),
            3
        );
        assert_eq!(got, b"abc");
        assert!(f.read_head().await.unwrap().is_none());
    }
}
