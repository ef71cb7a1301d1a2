//! The streaming scanner finds exactly what a one-shot scan finds, wherever the data is split.
#![no_main]

use egress_policy::secrets::{scan, SecretScanner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (split as usize).min(rest.len());
    let mut s = SecretScanner::new();
    let mut streamed = s.feed(&rest[..at]);
    streamed.extend(s.feed(&rest[at..]));
    let whole = scan(rest);
    assert_eq!(streamed.len(), whole.len(), "{streamed:?} vs {whole:?}");
    for (a, b) in streamed.iter().zip(&whole) {
        assert_eq!(a.offset, b.offset);
    }
});
