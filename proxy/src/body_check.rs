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

/// A body with a content encoding cannot be checked here; it is refused (git does not
/// compress a push, GitHub clients send GraphQL uncompressed).
pub(crate) fn encoding_problem(headers: &http::HeaderMap) -> Option<String> {
    let enc = headers.get(http::header::CONTENT_ENCODING)?;
    let enc = enc.to_str().unwrap_or("?").trim();
    (!enc.eq_ignore_ascii_case("identity")).then(|| {
        format!("a request body that must be checked arrived with Content-Encoding `{enc}`, which the proxy does not decode; send it uncompressed")
    })
}

/// Reads `body` until `policy` can decide `check`, within [`READ_TIMEOUT`].
pub(crate) async fn read_and_decide(
    policy: &Policy,
    check: &BodyCheck,
    body: &mut Incoming,
) -> Checked {
    match tokio::time::timeout(READ_TIMEOUT, read(policy, check, body)).await {
        Ok(c) => c,
        Err(_) => Checked::Deny(format!(
            "the part of the request body that must be checked did not arrive within {} s",
            READ_TIMEOUT.as_secs()
        )),
    }
}

async fn read(policy: &Policy, check: &BodyCheck, body: &mut Incoming) -> Checked {
    let mut buf = BytesMut::new();
    let mut complete = false;
    loop {
        match policy.decide_body(check, &buf, complete) {
            BodyVerdict::NeedMore if !complete => {}
            BodyVerdict::NeedMore => {
                return Checked::Deny("the request body ended before it could be checked".into())
            }
            BodyVerdict::Allow => {
                return Checked::Go {
                    prefix: buf.freeze(),
                }
            }
            BodyVerdict::Deny(why) => return Checked::Deny(why),
            BodyVerdict::Push { head, verdicts } => {
                return Checked::Push {
                    head: Box::new(head),
                    verdicts,
                    prefix: buf.freeze(),
                }
            }
        }
        match body.frame().await {
            None => complete = true,
            Some(Err(_)) => {
                return Checked::Deny("the request body could not be read".into());
            }
            Some(Ok(frame)) => {
                // Whole frames (hyper bounds them): what is read is forwarded as it came. The
                // policy refuses a body past its bound, so `buf` stays near `check.limit()`.
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                }
            }
        }
    }
}
