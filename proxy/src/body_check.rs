//! Requests whose body egress-policy must see before they go ahead ([`BodyCheck`]): a git
//! push's command list (read up to the pack, then the rest streams), a GitHub GraphQL
//! document or review (read whole, bounded). The bytes read are forwarded as they came, in
//! front of the rest of the body; nothing is sent upstream before the verdict.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use egress_policy::forge::{BodyCheck, BodyVerdict};
use egress_policy::git::{PushHead, RefVerdict};
use egress_policy::Policy;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// How long the proxy waits for the part of a body it must check.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What reading a checked body came to.
pub(crate) enum Checked {
    /// Go ahead; `prefix` is what was read (to be sent first).
    Go {
        /// The bytes read.
        prefix: Bytes,
    },
    /// Refused with this reason.
    Deny(String),
    /// A push: its head and a verdict per ref update (refused unless all are allowed).
    Push {
        /// The command list.
        head: Box<PushHead>,
        /// The verdicts.
        verdicts: Vec<RefVerdict>,
        /// The bytes read.
        prefix: Bytes,
    },
}

/// How a checked body is encoded: what the policy reads is the decoded body, what is
/// forwarded the body as it came.
enum Decoding {
    /// No content encoding.
    Identity,
    /// `Content-Encoding: gzip` (or `x-gzip`).
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    /// `Content-Encoding: deflate` (zlib).
    Deflate(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
}

impl Decoding {
    /// The decoding for `headers`, or why the body cannot be checked (an encoding the proxy
    /// does not decode, such as `br`, or several stacked).
    fn for_headers(headers: &http::HeaderMap) -> Result<Decoding, String> {
        let Some(enc) = headers.get(http::header::CONTENT_ENCODING) else {
            return Ok(Decoding::Identity);
        };
        let enc = enc.to_str().unwrap_or("?").trim().to_ascii_lowercase();
        match enc.as_str() {
            "identity" | "" => Ok(Decoding::Identity),
            "gzip" | "x-gzip" => Ok(Decoding::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new())))),
            "deflate" => Ok(Decoding::Deflate(Box::new(flate2::write::ZlibDecoder::new(Vec::new())))),
            other => Err(format!(
                "a request body that must be checked arrived with Content-Encoding `{other}`, which the proxy does not decode (gzip and deflate it does); send it uncompressed"
            )),
        }
    }

    /// Takes in `raw` bytes; `Err` when they do not decode.
    fn feed(&mut self, raw: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Decoding::Identity => Ok(()),
            Decoding::Gzip(d) => d.write_all(raw),
            Decoding::Deflate(d) => d.write_all(raw),
        }
    }

    /// The end of the body: `Err` when the encoded stream is cut or corrupt.
    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Decoding::Identity => Ok(()),
            Decoding::Gzip(d) => d.try_finish(),
            Decoding::Deflate(d) => d.try_finish(),
        }
    }

    /// What the policy reads: the decoded body so far (`raw` itself without an encoding).
    fn decoded<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        match self {
            Decoding::Identity => raw,
            Decoding::Gzip(d) => d.get_ref(),
            Decoding::Deflate(d) => d.get_ref(),
        }
    }
}

/// Why a body's encoding makes it uncheckable, if it does (`for_headers`).
pub(crate) fn encoding_problem(headers: &http::HeaderMap) -> Option<String> {
    Decoding::for_headers(headers).err()
}

/// Reads `body` (encoded as `headers` say) until `policy` can decide `check`, within
/// [`READ_TIMEOUT`].
pub(crate) async fn read_and_decide(
    policy: &Policy,
    check: &BodyCheck,
    headers: &http::HeaderMap,
    body: &mut Incoming,
) -> Checked {
    let decoding = match Decoding::for_headers(headers) {
        Ok(d) => d,
        Err(why) => return Checked::Deny(why),
    };
    match tokio::time::timeout(READ_TIMEOUT, read(policy, check, decoding, body)).await {
        Ok(c) => c,
        Err(_) => Checked::Deny(format!(
            "the part of the request body that must be checked did not arrive within {} s",
            READ_TIMEOUT.as_secs()
        )),
    }
}

async fn read(
    policy: &Policy,
    check: &BodyCheck,
    mut decoding: Decoding,
    body: &mut Incoming,
) -> Checked {
    let mut raw = BytesMut::new();
    let mut complete = false;
    loop {
        let decoded = decoding.decoded(&raw);
        if decoded.len() > check.limit().saturating_mul(2) {
            return Checked::Deny(format!(
                "the request body decodes to more than {} KiB, the most that is checked",
                check.limit() / 1024
            ));
        }
        match policy.decide_body(check, decoded, complete) {
            BodyVerdict::NeedMore if !complete => {}
            BodyVerdict::NeedMore => {
                return Checked::Deny("the request body ended before it could be checked".into())
            }
            BodyVerdict::Allow => {
                return Checked::Go {
                    prefix: raw.freeze(),
                }
            }
            BodyVerdict::Deny(why) => return Checked::Deny(why),
            BodyVerdict::Push { head, verdicts } => {
                return Checked::Push {
                    head: Box::new(head),
                    verdicts,
                    prefix: raw.freeze(),
                }
            }
        }
        match body.frame().await {
            None => {
                complete = true;
                if decoding.finish().is_err() {
                    return Checked::Deny("the request body's encoding is cut or corrupt".into());
                }
            }
            Some(Err(_)) => {
                return Checked::Deny("the request body could not be read".into());
            }
            Some(Ok(frame)) => {
                // Whole frames (hyper bounds them): what is read is forwarded as it came.
                if let Some(data) = frame.data_ref() {
                    raw.extend_from_slice(data);
                    if decoding.feed(data).is_err() {
                        return Checked::Deny("the request body's encoding is corrupt".into());
                    }
                }
            }
        }
    }
}
