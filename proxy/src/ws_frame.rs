//! WebSocket frames (RFC 6455 §5) as the relay sees them: an incremental reader that cuts a
//! byte stream into whole frames, the unmasked payload for scanning, and the frames the proxy
//! writes itself (a close with a code).

use bytes::{Buf, BytesMut};

/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;

/// One whole frame, as received (masked or not) and with its parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's bytes as they arrived: forwarded unchanged (unless scrubbed).
    pub raw: BytesMut,
    /// FIN bit.
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// Where the payload starts in `raw`.
    pub payload_at: usize,
    /// The masking key, when masked.
    pub mask: Option<[u8; 4]>,
}

impl Frame {
    /// The payload, unmasked.
    pub fn payload(&self) -> Vec<u8> {
        let mut p = self.raw[self.payload_at..].to_vec();
        if let Some(m) = self.mask {
            for (i, b) in p.iter_mut().enumerate() {
                *b ^= m[i % 4];
            }
        }
        p
    }

    /// Replaces the payload by `new` of the same length (masking it again when the frame is
    /// masked).
    pub fn set_payload(&mut self, new: &[u8]) {
        let at = self.payload_at;
        debug_assert_eq!(new.len(), self.raw.len() - at);
        for (i, b) in new.iter().enumerate() {
            self.raw[at + i] = match self.mask {
                Some(m) => b ^ m[i % 4],
                None => *b,
            };
        }
    }

    /// A data frame (text, binary or continuation) that ends a message.
    pub fn ends_message(&self) -> bool {
        self.fin && matches!(self.opcode, OP_TEXT | OP_BINARY | OP_CONTINUATION)
    }

    /// The close code of a close frame (`None` when it carries none).
    pub fn close_code(&self) -> Option<u16> {
        if self.opcode != OP_CLOSE {
            return None;
        }
        let p = self.payload();
        (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]))
    }
}

/// Why a byte stream is not WebSocket frames the relay passes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame larger than the relay holds at once.
    #[error(
        "a WebSocket frame of {0} bytes is larger than the {1} bytes the proxy inspects at once"
    )]
    TooLarge(u64, usize),
    /// Reserved bits set: an extension the proxy did not let the two sides negotiate.
    #[error("a WebSocket frame uses reserved bits (an extension the proxy did not negotiate)")]
    Reserved,
    /// A client frame without a mask, or a server frame with one.
    #[error("a WebSocket frame is {0}")]
    Masking(&'static str),
}

/// Cuts a stream into frames.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    max_frame: usize,
    from_client: bool,
}

impl FrameReader {
    /// A reader for the client's side (`from_client`: frames must be masked) or the server's
    /// (must not be), holding at most `max_frame` bytes of one frame.
    pub fn new(from_client: bool, max_frame: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            max_frame,
            from_client,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let b = &self.buf[..];
        if b.len() < 2 {
            return Ok(None);
        }
        if b[0] & 0x70 != 0 {
            return Err(FrameError::Reserved);
        }
        let masked = b[1] & 0x80 != 0;
        if masked != self.from_client {
            return Err(FrameError::Masking(if self.from_client {
                "from the client without a mask"
            } else {
                "from the server with a mask"
            }));
        }
        let (len, mut at) = match b[1] & 0x7f {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (u64::from(n), 2),
        };
        if len > self.max_frame as u64 {
            return Err(FrameError::TooLarge(len, self.max_frame));
        }
        let mask = if masked {
            if b.len() < at + 4 {
                return Ok(None);
            }
            let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        let total = at + len as usize;
        if b.len() < total {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        let opcode = b[0] & 0x0f;
        let raw = self.buf.split_to(total);
        Ok(Some(Frame {
            raw,
            fin,
            opcode,
            payload_at: at,
            mask,
        }))
    }

    /// Bytes buffered that are not a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.remaining()
    }
}

/// One frame: `fin`, `opcode`, `payload`, masked with `mask` (frames to the server must be).
pub fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n < 65536 => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A close frame with `code` and `reason` (cut to 120 bytes), masked with `mask` when it goes
/// to the server.
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(120)]);
    encode(true, OP_CLOSE, &payload, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        encode(fin, opcode, payload, Some([1, 2, 3, 4]))
    }

    #[test]
    fn frames_are_cut_whole_from_any_split_and_unmasked() {
        let mut stream = client_frame(OP_TEXT, true, b"hello");
        stream.extend(client_frame(OP_BINARY, false, &[0u8; 300]));
        stream.extend(client_frame(OP_CONTINUATION, true, &vec![7u8; 70_000]));
        stream.extend(close_frame(1000, "bye", Some([9, 9, 9, 9])));
        for split in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut r = FrameReader::new(true, 1 << 20);
            let mut frames = Vec::new();
            for chunk in stream.chunks(split) {
                r.push(chunk);
                while let Some(f) = r.next_frame().unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(r.pending(), 0);
            assert_eq!(frames.len(), 4, "split {split}");
            assert_eq!(frames[0].payload(), b"hello");
            assert!(frames[0].ends_message());
            assert!(!frames[1].ends_message());
            assert_eq!(frames[2].payload().len(), 70_000);
            assert!(frames[2].ends_message());
            assert_eq!(frames[3].close_code(), Some(1000));
            let whole: Vec<u8> = frames.iter().flat_map(|f| f.raw.to_vec()).collect();
            assert_eq!(whole, stream, "forwarded unchanged");
        }
    }

    #[test]
    fn masking_reserved_bits_and_size_are_enforced() {
        let mut r = FrameReader::new(true, 1 << 20);
        r.push(&[0x81, 0x05, b'h', b'e', b'l', b'l', b'o']);
        assert!(matches!(r.next_frame(), Err(FrameError::Masking(_))));
        let mut r = FrameReader::new(false, 1 << 20);
        r.push(&client_frame(OP_TEXT, true, b"x"));
        assert!(matches!(r.next_frame(), Err(FrameError::Masking(_))));
        let mut r = FrameReader::new(true, 1 << 20);
        let mut f = client_frame(OP_TEXT, true, b"x");
        f[0] |= 0x40; // RSV1: permessage-deflate
        r.push(&f);
        assert_eq!(r.next_frame(), Err(FrameError::Reserved));
        let mut r = FrameReader::new(true, 1000);
        r.push(&client_frame(OP_BINARY, true, &[0u8; 2000]));
        assert_eq!(r.next_frame(), Err(FrameError::TooLarge(2000, 1000)));
        // a 64-bit length far beyond memory is refused from its header alone
        let mut r = FrameReader::new(false, 1000);
        r.push(&[0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(r.next_frame(), Err(FrameError::TooLarge(_, 1000))));
    }

    #[test]
    fn a_scrubbed_payload_is_masked_again() {
        let mut r = FrameReader::new(true, 1 << 20);
        r.push(&client_frame(OP_TEXT, true, b"key=SECRET"));
        let mut f = r.next_frame().unwrap().unwrap();
        f.set_payload(b"key=******");
        assert_eq!(f.payload(), b"key=******");
        let server = close_frame(1008, "secret", None);
        let mut r = FrameReader::new(false, 1 << 20);
        r.push(&server);
        assert_eq!(r.next_frame().unwrap().unwrap().close_code(), Some(1008));
    }
}
