//! Git smart-HTTP push control: the `git-receive-pack` request's command list, parsed from
//! its pkt-lines before any byte of the pack goes upstream, each ref update decided against
//! the refs the contract lets the agent push, and the `report-status` answer that git prints
//! when a push is refused (the stream is never edited: a refused push is refused whole).
//!
//! Wire format (gitprotocol-pack): each pkt-line starts with 4 hex digits giving its length
//! including themselves; `0000` is a flush. The request is optional `shallow <oid>` lines, the
//! command list `old-oid SP new-oid SP refname` (the first with `NUL capabilities`) or a
//! `push-cert` block carrying the commands, a flush, then, when `push-options` was negotiated,
//! push options and a flush, then the pack.

use serde::Serialize;

/// The longest command list (with push options) read before the pack: beyond it the push is
/// refused, not passed unchecked.
pub const MAX_COMMAND_BYTES: usize = 1024 * 1024;

/// The refs an agent may push to when the contract names none.
pub const DEFAULT_PUSH_REFS: &[&str] = &["refs/heads/pilot/*"];

/// Why a receive-pack request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PktError {
    /// A length that is not 4 hex digits, or shorter than its own header.
    #[error("malformed pkt-line length at byte {0}")]
    BadLength(usize),
    /// The command list is longer than [`MAX_COMMAND_BYTES`].
    #[error("the push's command list is longer than {} KiB", MAX_COMMAND_BYTES / 1024)]
    TooLong,
    /// A command line that is not `old new ref`.
    #[error("malformed ref update command: {0}")]
    BadCommand(String),
    /// The body ended before the command list did.
    #[error("the push ended before its command list did")]
    Truncated,
    /// No command at all.
    #[error("the push carries no ref update")]
    Empty,
}

/// One ref update of a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefUpdate {
    /// The ref's old object id (all zeros: create).
    pub old: String,
    /// The new object id (all zeros: delete).
    pub new: String,
    /// The full ref name (`refs/heads/main`).
    pub refname: String,
}

impl RefUpdate {
    /// A delete: the new oid is all zeros.
    pub fn is_delete(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }

    /// A create: the old oid is all zeros.
    pub fn is_create(&self) -> bool {
        self.old.bytes().all(|b| b == b'0')
    }
}

/// The head of a `git-receive-pack` request: everything before the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushHead {
    /// The ref updates, in order.
    pub updates: Vec<RefUpdate>,
    /// The capabilities after the first command's NUL.
    pub capabilities: Vec<String>,
    /// Push options (`git push -o`), when negotiated.
    pub push_options: Vec<String>,
    /// The push came in a signed `push-cert` block.
    pub signed: bool,
    /// Bytes of the body the head takes (the pack starts there).
    pub head_len: usize,
}

impl PushHead {
    /// The client asked for a `report-status` (or `report-status-v2`) answer.
    pub fn wants_report(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == "report-status" || c == "report-status-v2")
    }

    /// The client multiplexes the answer in side-band packets.
    pub fn side_band(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == "side-band-64k" || c == "side-band")
    }
}

/// One pkt-line read at an offset: its payload (`None` for a flush `0000` or delim `0001`) and
/// the offset after it.
type PktRead<'a> = (Option<&'a [u8]>, usize);

/// The pkt-line at `at`, or `None` when it has not fully arrived.
fn pkt_line(buf: &[u8], at: usize) -> Result<Option<PktRead<'_>>, PktError> {
    let Some(head) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(head).map_err(|_| PktError::BadLength(at))?;
    let len = usize::from_str_radix(text, 16).map_err(|_| PktError::BadLength(at))?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PktError::BadLength(at));
    }
    match len {
        0..=2 => return Ok(Some((None, at + 4))),
        3 => return Err(PktError::BadLength(at)),
        _ => {}
    }
    if at + len > MAX_COMMAND_BYTES {
        return Err(PktError::TooLong);
    }
    match buf.get(at + 4..at + len) {
        Some(payload) => Ok(Some((Some(payload), at + len))),
        None => Ok(None),
    }
}

fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_command(line: &[u8]) -> Result<RefUpdate, PktError> {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let mut parts = text.splitn(3, ' ');
    let (Some(old), Some(new), Some(refname)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PktError::BadCommand(text.chars().take(120).collect()));
    };
    if !is_oid(old) || !is_oid(new) || refname.is_empty() {
        return Err(PktError::BadCommand(text.chars().take(120).collect()));
    }
    Ok(RefUpdate {
        old: old.to_ascii_lowercase(),
        new: new.to_ascii_lowercase(),
        refname: refname.to_string(),
    })
}

/// Reads the head of a `git-receive-pack` request body from what has arrived: `Ok(None)` when
/// more bytes are needed, the head once its command list (and push options) ended.
/// `complete` says the body has ended (then a missing end is [`PktError::Truncated`]).
pub fn parse_push_head(buf: &[u8], complete: bool) -> Result<Option<PushHead>, PktError> {
    let need_more = || {
        if complete {
            Err(PktError::Truncated)
        } else if buf.len() >= MAX_COMMAND_BYTES {
            Err(PktError::TooLong)
        } else {
            Ok(None)
        }
    };
    let mut at = 0;
    let mut updates = Vec::new();
    let mut capabilities: Vec<String> = Vec::new();
    let mut signed = false;
    let mut in_cert = false;
    let mut cert_commands = false;
    loop {
        let Some((line, next)) = pkt_line(buf, at)? else {
            return need_more();
        };
        at = next;
        let Some(line) = line else {
            // The flush after the command list.
            break;
        };
        let (line, caps) = match line.iter().position(|b| *b == 0) {
            Some(nul) if updates.is_empty() && !in_cert => (&line[..nul], Some(&line[nul + 1..])),
            _ => (line, None),
        };
        if let Some(caps) = caps {
            capabilities = String::from_utf8_lossy(caps)
                .split_whitespace()
                .map(str::to_string)
                .collect();
        }
        if line.starts_with(b"shallow ") && updates.is_empty() && !in_cert {
            continue;
        }
        if line.starts_with(b"push-cert") && updates.is_empty() && !in_cert {
            signed = true;
            in_cert = true;
            continue;
        }
        if in_cert {
            // Header lines until an empty line, then commands, then the signature.
            if line == b"push-cert-end\n" || line == b"push-cert-end" {
                in_cert = false;
            } else if line == b"\n" || line.is_empty() {
                cert_commands = true;
            } else if line.starts_with(b"-----BEGIN") {
                cert_commands = false;
            } else if cert_commands {
                updates.push(parse_command(line)?);
            }
            continue;
        }
        updates.push(parse_command(line)?);
    }
    if in_cert {
        return Err(PktError::BadCommand(
            "push-cert without push-cert-end".into(),
        ));
    }
    let mut push_options = Vec::new();
    if capabilities.iter().any(|c| c == "push-options") {
        loop {
            let Some((line, next)) = pkt_line(buf, at)? else {
                return need_more();
            };
            at = next;
            match line {
                None => break,
                Some(l) => push_options
                    .push(String::from_utf8_lossy(l.strip_suffix(b"\n").unwrap_or(l)).into_owned()),
            }
        }
    }
    if updates.is_empty() {
        return Err(PktError::Empty);
    }
    Ok(Some(PushHead {
        updates,
        capabilities,
        push_options,
        signed,
        head_len: at,
    }))
}

/// `git check-ref-format`'s rules, the ones that matter for a push: under `refs/`, no empty or
/// dot-led component, no `..`, `@{`, control characters, space, `~^:?*[\`, no `.lock` end.
pub fn valid_refname(name: &str) -> bool {
    if !name.starts_with("refs/") || name.ends_with('/') || name.ends_with(".lock") {
        return false;
    }
    if name.contains("..") || name.contains("@{") || name.contains("//") {
        return false;
    }
    if name
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b" ~^:?*[\\".contains(&b))
    {
        return false;
    }
    name.split('/')
        .all(|c| !c.is_empty() && !c.starts_with('.'))
}

/// A ref pattern: `*` matches any run of characters (slashes included).
pub fn ref_matches(pattern: &str, refname: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == refname;
    }
    let mut rest = refname;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The verdict on one ref update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefVerdict {
    /// The update.
    pub update: RefUpdate,
    /// Allowed on its own (the push may still be refused as a whole).
    pub allowed: bool,
    /// Why (shown to git as the `ng` reason when refused).
    pub why: String,
}

/// Decides each ref update against the refs the agent may push (`allowed`, patterns):
/// deletes are never allowed, tags only under a pattern that names `refs/tags/`, any other
/// ref only when a pattern matches it. The push goes ahead only when every update is allowed.
pub fn decide_updates(updates: &[RefUpdate], allowed: &[String]) -> Vec<RefVerdict> {
    let shown = allowed.join(", ");
    updates
        .iter()
        .map(|u| {
            let (ok, why) = if !valid_refname(&u.refname) {
                (false, "not a valid ref name".to_string())
            } else if u.is_delete() {
                (
                    false,
                    "the agent never deletes a ref (sandbox contract)".to_string(),
                )
            } else if u.refname.starts_with("refs/tags/")
                && !allowed
                    .iter()
                    .any(|p| p.starts_with("refs/tags/") && ref_matches(p, &u.refname))
            {
                (
                    false,
                    "the agent never pushes tags (sandbox contract)".to_string(),
                )
            } else if allowed.iter().any(|p| ref_matches(p, &u.refname)) {
                (true, format!("allowed: matches {shown}"))
            } else if allowed.is_empty() {
                (
                    false,
                    "this contract allows no push (sandbox [git] push = [])".to_string(),
                )
            } else {
                (
                    false,
                    format!("the agent may push only to {shown} (sandbox contract)"),
                )
            };
            RefVerdict {
                update: u.clone(),
                allowed: ok,
                why,
            }
        })
        .collect()
}

/// One pkt-line with `payload`.
pub fn pkt(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", payload.len() + 4).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The flush pkt-line.
pub const FLUSH: &[u8] = b"0000";

/// The `git-receive-pack` answer refusing the whole push: `unpack ok` (nothing was unpacked:
/// the pack never left), one `ng <ref> <reason>` per update (an allowed update of a refused
/// push names the refused ones), in side-band packets when the client multiplexes, with a
/// progress line git prints as `remote: ...`.
pub fn refusal_report(head: &PushHead, verdicts: &[RefVerdict]) -> Vec<u8> {
    let refused: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.allowed)
        .map(|v| v.update.refname.as_str())
        .collect();
    let mut report = pkt(b"unpack ok\n");
    for v in verdicts {
        let why = if v.allowed {
            format!(
                "push refused as a whole: {} not allowed",
                refused.join(", ")
            )
        } else {
            v.why.clone()
        };
        let line = format!("ng {} {}\n", v.update.refname, why.replace('\n', " "));
        report.extend(pkt(line.as_bytes()));
    }
    report.extend_from_slice(FLUSH);
    if !head.side_band() {
        return report;
    }
    let mut out = Vec::new();
    let progress = format!(
        "sandbox: push refused: {}\n",
        verdicts
            .iter()
            .filter(|v| !v.allowed)
            .map(|v| format!("{} ({})", v.update.refname, v.why))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut band2 = vec![2u8];
    band2.extend_from_slice(progress.as_bytes());
    out.extend(pkt(&band2));
    // Band 1 carries the report-status stream itself, in packets of at most 65515 bytes.
    for chunk in report.chunks(65515) {
        let mut band1 = vec![1u8];
        band1.extend_from_slice(chunk);
        out.extend(pkt(&band1));
    }
    out.extend_from_slice(FLUSH);
    out
}

/// The git service a smart-HTTP request is part of, from its path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GitService {
    /// `GET .../info/refs?service=git-receive-pack`: the ref advertisement before a push.
    PushAdvertisement,
    /// `POST .../git-receive-pack`: the push itself.
    Push,
    /// `GET .../info/refs?service=git-upload-pack` or `POST .../git-upload-pack`: a fetch.
    Fetch,
}

/// Which git service `path` (normalised, no query) with `query` (raw, without `?`) is, if any.
pub fn git_service(method: &str, path: &str, query: Option<&str>) -> Option<GitService> {
    let service = || {
        query.and_then(|q| {
            q.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == "service").then(|| crate::url::percent_decode_lossy(v))
            })
        })
    };
    if path.ends_with("/git-receive-pack") {
        return Some(GitService::Push);
    }
    if path.ends_with("/git-upload-pack") {
        return Some(GitService::Fetch);
    }
    if path.ends_with("/info/refs") && method.eq_ignore_ascii_case("GET") {
        return match service().as_deref() {
            Some("git-receive-pack") => Some(GitService::PushAdvertisement),
            Some("git-upload-pack") => Some(GitService::Fetch),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z: &str = "0000000000000000000000000000000000000000";
    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn body(commands: &[(&str, &str, &str)], caps: &str, options: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (o, n, r)) in commands.iter().enumerate() {
            let line = if i == 0 {
                format!("{o} {n} {r}\0{caps}\n")
            } else {
                format!("{o} {n} {r}\n")
            };
            out.extend(pkt(line.as_bytes()));
        }
        out.extend_from_slice(FLUSH);
        if !options.is_empty() {
            for o in options {
                out.extend(pkt(format!("{o}\n").as_bytes()));
            }
            out.extend_from_slice(FLUSH);
        }
        out.extend_from_slice(b"PACK\0\0\0\x02");
        out
    }

    #[test]
    fn parses_commands_capabilities_and_options_before_the_pack() {
        let b = body(
            &[(A, B, "refs/heads/pilot/x"), (Z, A, "refs/heads/main")],
            "report-status side-band-64k push-options agent=git/2.47",
            &["ci.skip"],
        );
        let head = parse_push_head(&b, true).unwrap().unwrap();
        assert_eq!(head.updates.len(), 2);
        assert_eq!(head.updates[1].refname, "refs/heads/main");
        assert!(head.updates[1].is_create());
        assert!(head.wants_report() && head.side_band());
        assert_eq!(head.push_options, vec!["ci.skip"]);
        assert_eq!(&b[head.head_len..head.head_len + 4], b"PACK");
        // Every prefix short of the end needs more bytes; none is misread.
        for cut in 0..head.head_len {
            assert_eq!(parse_push_head(&b[..cut], false), Ok(None), "cut at {cut}");
            assert!(parse_push_head(&b[..cut], true).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn shallow_lines_and_push_certs_are_read() {
        let mut b = pkt(format!("shallow {A}\n").as_bytes());
        b.extend(pkt(b"push-cert\0report-status\n"));
        for l in [
            "certificate version 0.1\n",
            "pusher a <a@example.invalid> 0 +0000\n",
            "\n",
            &format!("{A} {B} refs/heads/main\n"),
            "-----BEGIN PGP SIGNATURE-----\n",
            "xyz\n",
            "-----END PGP SIGNATURE-----\n",
            "push-cert-end\n",
        ] {
            b.extend(pkt(l.as_bytes()));
        }
        b.extend_from_slice(FLUSH);
        let head = parse_push_head(&b, true).unwrap().unwrap();
        assert!(head.signed);
        assert_eq!(head.updates.len(), 1);
        assert_eq!(head.updates[0].refname, "refs/heads/main");
        assert!(head.wants_report());
    }

    #[test]
    fn malformed_heads_are_errors() {
        assert!(parse_push_head(b"zzzz", false).is_err());
        assert!(parse_push_head(b"0003", false).is_err());
        assert_eq!(parse_push_head(b"0000", true), Err(PktError::Empty));
        let bad = [pkt(b"not a command\n"), FLUSH.to_vec()].concat();
        assert!(matches!(
            parse_push_head(&bad, true),
            Err(PktError::BadCommand(_))
        ));
        let huge = format!("{:04x}", 0xffff).into_bytes();
        let mut long = Vec::new();
        while long.len() < MAX_COMMAND_BYTES + 10 {
            long.extend_from_slice(&huge);
            long.extend(std::iter::repeat_n(b'a', 0xffff - 4));
        }
        assert!(parse_push_head(&long, false).is_err());
    }

    #[test]
    fn ref_decisions() {
        let allowed = vec!["refs/heads/pilot/*".to_string()];
        let u = |o: &str, n: &str, r: &str| RefUpdate {
            old: o.into(),
            new: n.into(),
            refname: r.into(),
        };
        let v = decide_updates(
            &[
                u(A, B, "refs/heads/pilot/x"),
                u(A, B, "refs/heads/pilot/deep/er"),
                u(A, B, "refs/heads/main"),
                u(A, Z, "refs/heads/pilot/x"),
                u(Z, A, "refs/tags/v1"),
                u(A, B, "refs/heads/pilot/../main"),
                u(A, B, "refs/heads/pilotx"),
            ],
            &allowed,
        );
        let ok: Vec<bool> = v.iter().map(|v| v.allowed).collect();
        assert_eq!(ok, vec![true, true, false, false, false, false, false]);
        assert!(v[3].why.contains("never deletes"));
        assert!(v[4].why.contains("never pushes tags"));
        assert!(v[2].why.contains("refs/heads/pilot/*"));
        let tags = decide_updates(&[u(Z, A, "refs/tags/v1")], &["refs/tags/agent-*".into()]);
        assert!(!tags[0].allowed);
        let tags = decide_updates(
            &[u(Z, A, "refs/tags/agent-1")],
            &["refs/tags/agent-*".into()],
        );
        assert!(tags[0].allowed);
        assert!(!decide_updates(&[u(A, B, "refs/heads/x")], &[])[0].allowed);
    }

    #[test]
    fn the_refusal_report_is_what_git_reads() {
        let b = body(&[(A, B, "refs/heads/main")], "report-status", &[]);
        let head = parse_push_head(&b, true).unwrap().unwrap();
        let v = decide_updates(&head.updates, &["refs/heads/pilot/*".into()]);
        let plain = refusal_report(&head, &v);
        let text = String::from_utf8(plain).unwrap();
        assert!(text.starts_with("000eunpack ok\n"), "{text}");
        assert!(text.contains("ng refs/heads/main the agent may push only to refs/heads/pilot/*"));
        assert!(text.ends_with("0000"));
        let b = body(
            &[(A, B, "refs/heads/main")],
            "report-status side-band-64k",
            &[],
        );
        let head = parse_push_head(&b, true).unwrap().unwrap();
        let banded = refusal_report(&head, &v);
        assert_eq!(banded[4], 2, "progress first");
        assert!(banded.ends_with(b"0000"));
    }

    #[test]
    fn services() {
        use GitService::*;
        assert_eq!(
            git_service("POST", "/o/r.git/git-receive-pack", None),
            Some(Push)
        );
        assert_eq!(
            git_service(
                "GET",
                "/o/r.git/info/refs",
                Some("service=git-receive-pack")
            ),
            Some(PushAdvertisement)
        );
        assert_eq!(
            git_service("GET", "/o/r/info/refs", Some("service=git%2Dreceive-pack")),
            Some(PushAdvertisement)
        );
        assert_eq!(
            git_service("GET", "/o/r.git/info/refs", Some("service=git-upload-pack")),
            Some(Fetch)
        );
        assert_eq!(
            git_service("POST", "/o/r.git/git-upload-pack", None),
            Some(Fetch)
        );
        assert_eq!(git_service("GET", "/o/r/info/refs", None), None);
        assert_eq!(git_service("GET", "/repos/o/r/pulls", None), None);
    }
}
