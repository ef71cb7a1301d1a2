//! Detection of credentials in outbound data (URLs, bodies). A finding names the kind of
//! secret and where it starts, never the value.

use std::collections::VecDeque;
use std::sync::LazyLock;

use regex::bytes::Regex;
use serde::Serialize;

/// The kinds of secret the scanner recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// `AKIA...` / `ASIA...` AWS access key id.
    AwsAccessKey,
    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` GitHub tokens.
    GithubToken,
    /// `github_pat_` fine-grained GitHub token.
    GithubFineGrainedToken,
    /// `-----BEGIN ... PRIVATE KEY-----` (PEM, OpenSSH, PGP).
    PrivateKey,
    /// `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-` Slack tokens.
    SlackToken,
    /// `sk_live_` / `rk_live_` Stripe keys.
    StripeKey,
    /// `sk-ant-` Anthropic API keys.
    AnthropicKey,
    /// `sk-proj-`, `sk-svcacct-`, `sk-admin-` and legacy `sk-` OpenAI keys.
    OpenaiKey,
    /// `AIza...` Google API keys.
    GoogleApiKey,
}

impl SecretKind {
    /// A stable name for logs and messages (`aws-access-key`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretKind::AwsAccessKey => "aws-access-key",
            SecretKind::GithubToken => "github-token",
            SecretKind::GithubFineGrainedToken => "github-fine-grained-token",
            SecretKind::PrivateKey => "private-key",
            SecretKind::SlackToken => "slack-token",
            SecretKind::StripeKey => "stripe-key",
            SecretKind::AnthropicKey => "anthropic-key",
            SecretKind::OpenaiKey => "openai-key",
            SecretKind::GoogleApiKey => "google-api-key",
        }
    }
}

/// One secret found: its kind and the byte offset where it starts (from the start of the
/// scanned slice, or of the whole stream for [`SecretScanner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SecretFinding {
    /// What kind of secret.
    pub kind: SecretKind,
    /// Byte offset of its first byte.
    pub offset: u64,
}

struct Pattern {
    kind: SecretKind,
    regex: Regex,
    /// Require a non-word byte (or the start) before the match.
    boundary_before: bool,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |kind, re: &str, boundary_before| Pattern {
        kind,
        regex: Regex::new(re).expect("built-in secret pattern compiles"),
        boundary_before,
    };
    vec![
        p(SecretKind::AwsAccessKey, r"(?:AKIA|ASIA)[A-Z0-9]{16}", true),
        p(
            SecretKind::GithubToken,
            r"gh[pousr]_[A-Za-z0-9]{36,255}",
            true,
        ),
        p(
            SecretKind::GithubFineGrainedToken,
            r"github_pat_[A-Za-z0-9_]{22,255}",
            true,
        ),
        p(
            SecretKind::PrivateKey,
            r"-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----",
            false,
        ),
        p(
            SecretKind::SlackToken,
            r"xox[abposr]-[A-Za-z0-9-]{10,255}",
            true,
        ),
        p(
            SecretKind::StripeKey,
            r"(?:sk|rk)_live_[A-Za-z0-9]{20,255}",
            true,
        ),
        p(
            SecretKind::AnthropicKey,
            r"sk-ant-[A-Za-z0-9_-]{20,255}",
            true,
        ),
        p(
            SecretKind::OpenaiKey,
            r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,255}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|sk-[A-Za-z0-9]{48}",
            true,
        ),
        p(SecretKind::GoogleApiKey, r"AIza[0-9A-Za-z_-]{35}", true),
    ]
});

/// The literal every pattern starts with: a text holding none of them holds no secret, and
/// most texts (paths, header values, bodies) hold none, so [`scan`] looks for these first, in
/// one pass, instead of running every pattern's regex (each of which takes a cache from a pool
/// shared by all threads). Keep in step with [`PATTERNS`]: the test
/// `every_pattern_starts_with_an_anchor` checks each sample secret against both.
const ANCHORS: &[&str] = &[
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "-----BEGIN ",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxo-",
    "xoxs-",
    "xoxr-",
    "sk_live_",
    "rk_live_",
    "sk-",
    "AIza",
];

static ANCHOR_FINDER: LazyLock<aho_corasick::AhoCorasick> = LazyLock::new(|| {
    aho_corasick::AhoCorasick::new(ANCHORS).expect("built-in secret anchors compile")
});

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Findings in `data` with offsets relative to its start; at most one finding per start offset,
/// sorted by offset.
pub fn scan(data: &[u8]) -> Vec<SecretFinding> {
    let mut found: Vec<SecretFinding> = Vec::new();
    if !ANCHOR_FINDER.is_match(data) {
        return found;
    }
    for pattern in PATTERNS.iter() {
        for m in pattern.regex.find_iter(data) {
            if pattern.boundary_before && m.start() > 0 && is_word(data[m.start() - 1]) {
                continue;
            }
            found.push(SecretFinding {
                kind: pattern.kind,
                offset: m.start() as u64,
            });
        }
    }
    found.sort_by_key(|f| f.offset);
    found.dedup_by_key(|f| f.offset);
    found
}

/// `data` with every secret replaced by `[redacted <kind>]`, and the kinds replaced (each once,
/// in order of appearance). For texts the tool itself records, such as the last lines of a
/// `done` check's output: a finding never names the value, and the record never holds it.
pub fn redact(data: &[u8]) -> (Vec<u8>, Vec<SecretKind>) {
    let mut spans: Vec<(usize, usize, SecretKind)> = Vec::new();
    if ANCHOR_FINDER.is_match(data) {
        for pattern in PATTERNS.iter() {
            for m in pattern.regex.find_iter(data) {
                if pattern.boundary_before && m.start() > 0 && is_word(data[m.start() - 1]) {
                    continue;
                }
                spans.push((m.start(), m.end(), pattern.kind));
            }
        }
    }
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut out = Vec::with_capacity(data.len());
    let mut kinds: Vec<SecretKind> = Vec::new();
    let mut at = 0;
    for (start, end, kind) in spans {
        if end <= at {
            continue;
        }
        out.extend_from_slice(&data[at..start.max(at)]);
        out.extend_from_slice(format!("[redacted {}]", kind.as_str()).as_bytes());
        at = end;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    out.extend_from_slice(&data[at..]);
    (out, kinds)
}

/// No pattern matches fewer bytes (`xoxb-` and ten characters), and decoding never lengthens
/// a text, so a shorter text holds no secret in any form.
const SHORTEST_SECRET: usize = 15;

/// How many rounds of percent-decoding [`scan_encoded`] undoes (`%252541` is three).
const PERCENT_ROUNDS: usize = 4;

/// Shortest base64 run worth decoding: the shortest secret (20 bytes) takes 27 characters.
const MIN_BASE64_RUN: usize = 24;

/// [`scan_encoded`] of `text` as sent, folded to lower case and folded to upper case: for
/// texts that are case-folded on the way, such as host names and SNI (an AWS key id folded to
/// lower case is still the key).
pub fn scan_any_case(text: &str) -> Vec<SecretKind> {
    if text.len() < SHORTEST_SECRET {
        return Vec::new();
    }
    let mut kinds = scan_encoded(text);
    for folded in [text.to_ascii_lowercase(), text.to_ascii_uppercase()] {
        for kind in scan_encoded(&folded) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    kinds
}

/// The kinds of secret in `text` as sent, after undoing up to four rounds of
/// percent-encoding (`%41KIA`, `%2541KIA`), `+` for space, and inside base64 runs (standard
/// or URL-safe alphabet, padded or not, at any alignment). Meant for short texts such as a
/// URL or a header value; each kind is reported once, in the order first found.
pub fn scan_encoded(text: &str) -> Vec<SecretKind> {
    let mut kinds: Vec<SecretKind> = Vec::new();
    let mut add = |found: Vec<SecretFinding>| {
        for f in found {
            if !kinds.contains(&f.kind) {
                kinds.push(f.kind);
            }
        }
    };
    let mut forms: Vec<String> = vec![text.to_string()];
    for _ in 0..PERCENT_ROUNDS {
        let last = forms.last().map(String::as_str).unwrap_or("");
        let next = crate::url::percent_decode_lossy(last);
        if next == last {
            break;
        }
        forms.push(next);
    }
    if let Some(spaced) = forms.last().map(|f| f.replace('+', " ")) {
        forms.push(spaced);
    }
    for form in &forms {
        add(scan(form.as_bytes()));
        for run in base64_runs(form.as_bytes()) {
            for shift in 0..4 {
                if let Some(decoded) = run.get(shift..).map(decode_base64) {
                    add(scan(&decoded));
                }
            }
        }
    }
    kinds
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Maximal runs of base64 characters (either alphabet) at least [`MIN_BASE64_RUN`] long.
fn base64_runs(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| !is_base64_byte(*b))
        .filter(|run| run.len() >= MIN_BASE64_RUN)
        .collect()
}

/// Decode base64 (standard or URL-safe, no padding needed); a trailing partial group gives
/// the whole bytes it holds.
fn decode_base64(run: &[u8]) -> Vec<u8> {
    fn value(b: u8) -> u32 {
        match b {
            b'A'..=b'Z' => u32::from(b - b'A'),
            b'a'..=b'z' => u32::from(b - b'a') + 26,
            b'0'..=b'9' => u32::from(b - b'0') + 52,
            b'+' | b'-' => 62,
            _ => 63, // `/` and `_`: the only other bytes a run holds
        }
    }
    let mut out = Vec::with_capacity(run.len() / 4 * 3);
    for group in run.chunks(4) {
        let n = group.iter().fold(0u32, |acc, b| (acc << 6) | value(*b)) << (6 * (4 - group.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // 4 characters carry 3 bytes, 3 carry 2, 2 carry 1, 1 carries none
        out.extend_from_slice(&bytes[..group.len().saturating_sub(1)]);
    }
    out
}

/// The longest secret prefix the patterns need to see at once, plus one boundary byte.
const WINDOW: usize = 300;

/// A scanner for data that arrives in chunks: it finds a secret split across chunk
/// boundaries, and reports each secret once, with its offset in the whole stream.
#[derive(Debug, Default)]
pub struct SecretScanner {
    tail: VecDeque<u8>,
    consumed: u64,
    /// Stream offsets already reported (only those still inside the window are kept).
    reported: Vec<u64>,
}

impl SecretScanner {
    /// A scanner at stream offset 0.
    pub fn new() -> SecretScanner {
        SecretScanner::default()
    }

    /// Scan the next chunk; returns the secrets that this chunk completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SecretFinding> {
        let tail_len = self.tail.len();
        let base = self.consumed - tail_len as u64;
        let mut buf = Vec::with_capacity(tail_len + chunk.len());
        buf.extend(self.tail.iter());
        buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        for f in scan(&buf) {
            let offset = base + f.offset;
            // A match that starts at the first byte of the window may have lost its boundary
            // byte; it was seen (or rejected) when that byte was fresh, unless the stream
            // starts there.
            if f.offset == 0 && base > 0 {
                continue;
            }
            if !self.reported.contains(&offset) {
                self.reported.push(offset);
                out.push(SecretFinding {
                    kind: f.kind,
                    offset,
                });
            }
        }
        self.consumed += chunk.len() as u64;
        let keep = buf.len().min(WINDOW);
        self.tail = buf[buf.len() - keep..].iter().copied().collect();
        let window_start = self.consumed - keep as u64;
        self.reported.retain(|&o| o >= window_start);
        out
    }

    /// Total bytes fed so far.
    pub fn bytes_scanned(&self) -> u64 {
        self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_replaces_every_sample_and_keeps_the_rest() {
        for (kind, sample) in SAMPLES {
            let text = format!("token: {sample} end\n");
            let (out, kinds) = redact(text.as_bytes());
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains(sample), "{sample} survived: {out}");
            assert!(out.starts_with("token: [redacted "), "{out}");
            assert!(out.ends_with(" end\n"), "{out}");
            assert_eq!(kinds, vec![*kind], "{sample}");
            assert!(scan(out.as_bytes()).is_empty(), "{out}");
        }
        let (same, none) = redact(b"no secret in here, sk- alone is not one");
        assert_eq!(same, b"no secret in here, sk- alone is not one");
        assert!(none.is_empty());
        let two = format!("{} and {}", SAMPLES[0].1, SAMPLES[2].1);
        let (out, kinds) = redact(two.as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[redacted aws-access-key] and [redacted github-token]"
        );
        assert_eq!(kinds.len(), 2);
    }

    const SAMPLES: &[(SecretKind, &str)] = &[
        (SecretKind::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
        (SecretKind::AwsAccessKey, "ASIAIOSFODNN7EXAMPLE"),
        (
            SecretKind::GithubToken,
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        ),
        (
            SecretKind::GithubToken,
            "gho_0123456789abcdefghijABCDEFGHIJ012345",
        ),
        (
            SecretKind::GithubToken,
            "ghu_0123456789abcdefghijABCDEFGHIJ012345",
        ),
        (
            SecretKind::GithubToken,
            "ghs_0123456789abcdefghijABCDEFGHIJ012345",
        ),
        (
            SecretKind::GithubToken,
            "ghr_0123456789abcdefghijABCDEFGHIJ012345",
        ),
        (
            SecretKind::GithubFineGrainedToken,
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        ),
        (SecretKind::PrivateKey, "-----BEGIN RSA PRIVATE KEY-----"),
        (
            SecretKind::PrivateKey,
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ),
        (SecretKind::PrivateKey, "-----BEGIN PRIVATE KEY-----"),
        (SecretKind::SlackToken, "xoxb-123456789012-abcdefghijkl"),
        (SecretKind::StripeKey, "sk_live_0123456789abcdefghijABCD"),
        (SecretKind::StripeKey, "rk_live_0123456789abcdefghijABCD"),
        (
            SecretKind::AnthropicKey,
            "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        (
            SecretKind::OpenaiKey,
            "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        (
            SecretKind::OpenaiKey,
            "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL",
        ),
        (
            SecretKind::GoogleApiKey,
            "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
        ),
    ];

    #[test]
    fn no_pattern_matches_fewer_bytes_than_the_short_cut_assumes() {
        // `scan_any_case` returns at once for texts shorter than SHORTEST_SECRET.
        for p in PATTERNS.iter() {
            let hir = regex_syntax::parse(p.regex.as_str()).unwrap();
            let min = hir.properties().minimum_len().unwrap();
            assert!(
                min >= SHORTEST_SECRET,
                "{} matches {min} bytes",
                p.regex.as_str()
            );
        }
        let shortest = SAMPLES.iter().map(|(_, s)| s.len()).min().unwrap();
        assert!(shortest >= SHORTEST_SECRET);
    }

    #[test]
    fn every_pattern_starts_with_an_anchor() {
        // `scan` skips the regexes when no anchor is present: every string a pattern can match
        // must start with an anchor. The prefixes come from the regex parser itself.
        use regex_syntax::hir::literal::Extractor;
        for p in PATTERNS.iter() {
            let hir = regex_syntax::parse(p.regex.as_str()).unwrap();
            let seq = Extractor::new().extract(&hir);
            let lits = seq.literals().expect("a finite set of prefixes");
            assert!(!lits.is_empty(), "{}", p.regex.as_str());
            for lit in lits {
                assert!(
                    ANCHORS
                        .iter()
                        .any(|a| lit.as_bytes().starts_with(a.as_bytes())),
                    "pattern {} can start with {:?}, which no anchor covers",
                    p.regex.as_str(),
                    String::from_utf8_lossy(lit.as_bytes())
                );
            }
        }
        // And the prefilter does not hide any sample, wherever it sits.
        for (kind, sample) in SAMPLES {
            for text in [
                sample.to_string(),
                format!("{sample}."),
                format!("a={sample}"),
            ] {
                assert!(
                    scan(text.as_bytes()).iter().any(|f| f.kind == *kind),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn every_kind_is_found_with_its_offset() {
        for (kind, sample) in SAMPLES {
            let text = format!("prefix {sample} suffix");
            let found = scan(text.as_bytes());
            assert_eq!(
                found,
                vec![SecretFinding {
                    kind: *kind,
                    offset: 7
                }],
                "{sample}"
            );
        }
    }

    #[test]
    fn anthropic_keys_are_not_reported_as_openai() {
        let found = scan(b"sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, SecretKind::AnthropicKey);
    }

    #[test]
    fn lookalikes_are_not_secrets() {
        for text in [
            "AKIA123",               // too short
            "XAKIAIOSFODNN7EXAMPLE", // inside a longer word
            "ghp_short",
            "sk-ant-short",
            "the sky is blue",
            "BEGIN PRIVATE KEY without dashes",
            "mask_live_0123456789abcdefghijABCD", // no boundary before sk_live_
        ] {
            assert!(scan(text.as_bytes()).is_empty(), "{text}");
        }
    }

    #[test]
    fn findings_never_carry_the_value() {
        let f = scan(b"key=AKIAIOSFODNN7EXAMPLE");
        let json = serde_json::to_string(&f).unwrap();
        assert!(!json.contains("AKIA"), "{json}");
    }

    #[test]
    fn streaming_finds_secrets_split_across_chunks_at_every_split_point() {
        for (kind, sample) in SAMPLES {
            let text = format!("some leading text {sample} and more");
            let bytes = text.as_bytes();
            for split in 0..=bytes.len() {
                let mut s = SecretScanner::new();
                let mut found = s.feed(&bytes[..split]);
                found.extend(s.feed(&bytes[split..]));
                assert_eq!(
                    found,
                    vec![SecretFinding {
                        kind: *kind,
                        offset: 18
                    }],
                    "{sample} split at {split}"
                );
            }
        }
    }

    #[test]
    fn streaming_byte_by_byte_and_long_streams() {
        let mut s = SecretScanner::new();
        let mut found = Vec::new();
        let filler = vec![b'x'; 1000];
        found.extend(s.feed(&filler));
        for b in b" AKIAIOSFODNN7EXAMPLE " {
            found.extend(s.feed(&[*b]));
        }
        found.extend(s.feed(&filler));
        found.extend(s.feed(b" ghp_0123456789abcdefghijABCDEFGHIJ012345"));
        assert_eq!(
            found,
            vec![
                SecretFinding {
                    kind: SecretKind::AwsAccessKey,
                    offset: 1001
                },
                SecretFinding {
                    kind: SecretKind::GithubToken,
                    offset: 2023
                },
            ]
        );
        assert_eq!(s.bytes_scanned(), 2022 + 41);
    }

    #[test]
    fn encoded_forms_are_found() {
        for text in [
            "k=AKIAIOSFODNN7EXAMPLE",
            "k=%41KIAIOSFODNN7EXAMPLE",
            "k=%2541KIAIOSFODNN7EXAMPLE",
            "k=%25252541KIAIOSFODNN7EXAMPLE",
            "k=QUtJQUlPU0ZPRE5ON0VYQU1QTEU=",
            "k=QUtJQUlPU0ZPRE5ON0VYQU1QTEU",
            "k=xQUtJQUlPU0ZPRE5ON0VYQU1QTEU",
            "k=eHg6QUtJQUlPU0ZPRE5ON0VYQU1QTEUK",
            "k=QUtJQUlPU0ZPRE5ON0VYQU1QTEU%3D",
        ] {
            assert_eq!(scan_encoded(text), vec![SecretKind::AwsAccessKey], "{text}");
        }
        // five rounds of encoding are more than the scanner undoes
        assert!(scan_encoded("k=%2525252541KIAIOSFODNN7EXAMPLE").is_empty());
        for text in [
            "",
            "%",
            "%%%",
            "k=hello",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "é%ff%c3",
        ] {
            assert!(scan_encoded(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn streaming_respects_the_boundary_across_chunks() {
        let mut s = SecretScanner::new();
        let mut found = s.feed(b"XXXX");
        found.extend(s.feed(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(found.is_empty(), "{found:?}");
    }
}
