//! The git push parser (pkt-lines, push-cert, push options) on arbitrary bytes, whole and
//! cut at every split the input names: never a panic; a head, when found, lies inside the
//! input; the ref decisions and the refusal report build from whatever it parsed.
#![no_main]

use egress_policy::git::{decide_updates, parse_push_head, refusal_report};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for complete in [false, true] {
        if let Ok(Some(head)) = parse_push_head(data, complete) {
            assert!(head.head_len <= data.len());
            assert!(!head.updates.is_empty());
            let verdicts = decide_updates(&head.updates, &["refs/heads/pilot/*".to_string()]);
            assert_eq!(verdicts.len(), head.updates.len());
            let report = refusal_report(&head, &verdicts);
            assert!(report.ends_with(b"0000"));
        }
    }
    // An incomplete prefix never yields a different head than the whole input.
    if let Ok(Some(whole)) = parse_push_head(data, true) {
        if let Ok(Some(part)) = parse_push_head(&data[..whole.head_len], false) {
            assert_eq!(part, whole);
        }
    }
});
