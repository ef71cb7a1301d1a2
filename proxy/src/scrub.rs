//! Scrubbing injected credentials out of responses: the agent must never see the key the
//! proxy injected, even when an upstream echoes it back (raw, base64, hex or percent-encoded).
//!
//! Every occurrence is overwritten with `*` of the same length, so lengths (and
//! `Content-Length`) stay valid. Streaming is preserved: only a frame's tail that could be the
//! start of a credential is held back until the next frame decides it.

use std::sync::Arc;

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue};
use regex::bytes::Regex;

use crate::body::{BoxError, HoldBack, StreamFilter};
use crate::encode::{base64, STANDARD, URL_SAFE};

/// Shorter forms are not scrubbed (they would match ordinary text).
const MIN_NEEDLE: usize = 8;

/// The byte strings to scrub for a set of credentials.
#[derive(Debug)]
pub struct Needles {
    needles: Vec<Vec<u8>>,
    any: Regex,
}

impl Needles {
    /// The raw, base64 (standard, unpadded, URL-safe), hex and percent-encoded forms of each
    /// value, and of its last word (`sk-...` of `Bearer sk-...`). `None` when nothing is long
    /// enough to scrub.
    pub fn for_credentials<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Arc<Needles>> {
        let mut bases: Vec<&str> = Vec::new();
        for v in values {
            bases.push(v);
            if let Some((_, last)) = v.rsplit_once(' ') {
                bases.push(last);
            }
        }
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for b in bases {
            let raw = b.as_bytes();
            for form in [
                raw.to_vec(),
                base64(raw, STANDARD, true).into_bytes(),
                base64(raw, STANDARD, false).into_bytes(),
                base64(raw, URL_SAFE, false).into_bytes(),
                hex::encode(raw).into_bytes(),
                hex::encode_upper(raw).into_bytes(),
                crate::encode::percent_encode(raw, b"").into_bytes(),
            ] {
                if form.len() >= MIN_NEEDLE && !needles.contains(&form) {
                    needles.push(form);
                }
            }
        }
        if needles.is_empty() {
            return None;
        }
        // Longest first, so that a longer form wins over a form it contains.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let pattern = needles
            .iter()
            .map(|n| regex::escape(&String::from_utf8_lossy(n)))
            .collect::<Vec<_>>()
            .join("|");
        let any = Regex::new(&pattern).ok()?;
        Some(Arc::new(Needles { needles, any }))
    }

    /// Overwrites every occurrence in `buf`; returns how many.
    pub fn mask(&self, buf: &mut [u8]) -> usize {
        let spans: Vec<(usize, usize)> = self
            .any
            .find_iter(buf)
            .map(|m| (m.start(), m.end()))
            .collect();
        for (s, e) in &spans {
            buf[*s..*e].fill(b'*');
        }
        spans.len()
    }

    /// The length of the longest tail of `buf` that is a proper prefix of some needle.
    fn risky_tail(&self, buf: &[u8]) -> usize {
        let longest = self.needles.first().map_or(0, Vec::len);
        let max = longest.saturating_sub(1).min(buf.len());
        (1..=max)
            .rev()
            .find(|&k| {
                let tail = &buf[buf.len() - k..];
                self.needles
                    .iter()
                    .any(|n| n.len() > k && n.starts_with(tail))
            })
            .unwrap_or(0)
    }

    /// Scrubs header values in place.
    pub fn scrub_headers(&self, headers: &mut HeaderMap) {
        for value in headers.values_mut() {
            let mut bytes = value.as_bytes().to_vec();
            if self.mask(&mut bytes) > 0 {
                if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                    *value = v;
                }
            }
        }
    }
}

/// The inbound filter: masks every credential form; holds back only a tail that could be
/// the start of one.
pub struct Scrub(Arc<Needles>);

impl StreamFilter for Scrub {
    fn filter(&mut self, held: &mut BytesMut, _new_len: usize) -> Result<usize, BoxError> {
        self.0.mask(held);
        Ok(self.0.risky_tail(held))
    }

    fn trailers(&mut self, trailers: &mut HeaderMap) {
        self.0.scrub_headers(trailers);
    }
}

/// A response body with the credential forms masked.
pub type ScrubBody<B> = HoldBack<B, Scrub>;

impl<B> HoldBack<B, Scrub> {
    /// Scrubs `inner` with `needles`.
    pub fn scrubbing(inner: B, needles: Arc<Needles>) -> Self {
        HoldBack::new(inner, Scrub(needles))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::chunks;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn every_form_is_masked_even_across_frames() {
        let secret = "Bearer sk-live-0123456789abcdef";
        let n = Needles::for_credentials([secret]).unwrap();
        let key = "sk-live-0123456789abcdef";
        let b64 = base64(key.as_bytes(), STANDARD, true);
        let hexed = hex::encode(key);
        let text = format!(
            "{{\"echo\":\"{secret}\",\"b\":\"{b64}\",\"h\":\"{hexed}\",\"p\":\"{}\"}}",
            crate::encode::percent_encode(secret.as_bytes(), b"")
        );
        // Split at every position into two frames.
        for cut in 1..text.len() {
            let frames = chunks(&[&text.as_bytes()[..cut], &text.as_bytes()[cut..]]);
            let out = ScrubBody::scrubbing(frames, n.clone())
                .collect()
                .await
                .unwrap()
                .to_bytes();
            let out = String::from_utf8(out.to_vec()).unwrap();
            assert_eq!(out.len(), text.len());
            assert!(!out.contains("sk-live"), "cut {cut}: {out}");
            assert!(
                !out.contains(&b64) && !out.contains(&hexed),
                "cut {cut}: {out}"
            );
            assert!(!out.contains("0123456789abcdef"), "cut {cut}: {out}");
        }
    }

    #[tokio::test]
    async fn ordinary_streams_pass_without_delay() {
        let n = Needles::for_credentials(["sk-live-0123456789abcdef"]).unwrap();
        let mut body = ScrubBody::scrubbing(chunks(&[b"data: {\"t\":1}\n\n"]), n);
        let first = std::pin::Pin::new(&mut body)
            .frame()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.data_ref().unwrap().as_ref(), b"data: {\"t\":1}\n\n");
    }

    #[test]
    fn short_values_are_not_scrubbed() {
        assert!(Needles::for_credentials(["abc"]).is_none());
        let mut h = HeaderMap::new();
        h.insert(
            "x-echo",
            HeaderValue::from_static("key=sk-live-0123456789abcdef;"),
        );
        Needles::for_credentials(["sk-live-0123456789abcdef"])
            .unwrap()
            .scrub_headers(&mut h);
        assert_eq!(h["x-echo"], "key=************************;");
    }
}
