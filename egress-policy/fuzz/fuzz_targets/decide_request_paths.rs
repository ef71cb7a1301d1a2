//! Arbitrary methods and request targets against broad rules (`/v1/.*`, any method; Bedrock
//! in the EU with a loose, case-insensitive path): an allowed request never carries a path
//! that any decoding (percent-decoding up to four times, Unicode compatibility
//! normalisation) turns into a `..`, `.` or empty segment, a backslash, `;` or a control
//! character; never uses CONNECT, TRACE or TRACK; never carries a secret; and never names
//! a Bedrock profile outside the EU.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use egress_policy::secrets::scan_encoded;
use egress_policy::{PathContext, Policy, RequestFacts, Scheme};
use libfuzzer_sys::fuzz_target;
use unicode_normalization::UnicodeNormalization;

const BEDROCK: &str = "bedrock-runtime.eu-central-1.amazonaws.com";

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let src = format!(
        "version = 1\n[task]\nid = \"F-1\"\nclass = \"B\"\nobjective = \"fuzz\"\ndone = [\"true\"]\nrollback = \"r\"\n\
         [network]\nresidency = \"EU\"\n\
         [[network.allow]]\nname = \"broad\"\nhost = \"api.example.com\"\nregion = \"EU\"\npaths = ['/v1/.*']\n\
         [[network.allow]]\nname = \"bedrock\"\nhost = \"{BEDROCK}\"\npaths = ['(?i)/model/.*']\n"
    );
    let ctx = PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    };
    Policy::parse(&src, "fuzz.toml", &ctx).expect("the fuzz contract is valid")
});

/// Decode every `%XX` (lossy), as a server or a second proxy might.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                b.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every reading of `path` a server could plausibly make.
fn readings(path: &str) -> Vec<String> {
    let mut out = vec![path.to_string()];
    for _ in 0..4 {
        let next = percent_decode(out.last().expect("non-empty"));
        out.push(next);
    }
    let nfkc: Vec<String> = out.iter().map(|p| p.nfkc().collect()).collect();
    out.extend(nfkc);
    out
}

fn assert_unambiguous(path: &str) {
    for reading in readings(path) {
        assert!(!reading.contains('\\'), "{path:?} reads as {reading:?}");
        assert!(!reading.contains(';'), "{path:?} reads as {reading:?}");
        assert!(
            !reading.chars().any(char::is_control),
            "{path:?} reads as {reading:?}"
        );
        let body = reading.strip_prefix('/').unwrap_or(&reading);
        let segments: Vec<&str> = body.split('/').collect();
        for (i, seg) in segments.iter().enumerate() {
            assert!(*seg != ".." && *seg != ".", "{path:?} reads as {reading:?}");
            assert!(
                !seg.is_empty() || i + 1 == segments.len(),
                "{path:?} reads as {reading:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // layout: selector byte (host), then method \n path-and-query
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Some((method, target)) = text.split_once('\n') else {
        return;
    };
    let host = if sel & 1 == 0 {
        "api.example.com"
    } else {
        BEDROCK
    };
    let p = &*POLICY;
    let d = p.decide_request(&RequestFacts {
        method,
        scheme: Scheme::Https,
        host,
        port: 443,
        path_and_query: target,
        headers: &[],
    });
    if !d.is_allowed() {
        return;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    assert_unambiguous(path);
    for m in ["CONNECT", "TRACE", "TRACK"] {
        assert!(!method.eq_ignore_ascii_case(m), "{method} allowed");
    }
    assert!(
        scan_encoded(target).is_empty(),
        "a secret in {target:?} was allowed"
    );
    if host == BEDROCK {
        let decoded = readings(path)
            .pop()
            .expect("non-empty")
            .to_ascii_lowercase();
        let id = decoded
            .strip_prefix("/model/")
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        for geo in ["global.", "us.", "apac.", "jp.", "au.", "us-gov.", "ca."] {
            assert!(
                !id.starts_with(geo),
                "profile {id:?} allowed under EU residency"
            );
        }
        if let Some(arn) = id.strip_prefix("arn:") {
            let region = arn.split(':').nth(2).unwrap_or("");
            assert!(region.starts_with("eu-"), "ARN region {region:?} allowed");
        }
    }
});
