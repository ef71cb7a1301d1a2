//! The GitHub body checks on arbitrary input: as a raw body, and as the `query` of a GraphQL
//! request (so that the parser itself is reached): never a panic, and a known merge wrapped
//! around any alias is always refused.
#![no_main]

use egress_policy::forge::{graphql_denial, review_denial};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = graphql_denial(data);
    let _ = review_denial(data);
    let text = String::from_utf8_lossy(data);
    let body = serde_json::json!({ "query": text }).to_string();
    let _ = graphql_denial(body.as_bytes());
    let alias: String = text.chars().filter(|c| c.is_ascii_alphabetic()).take(20).collect();
    if !alias.is_empty() {
        let merge = serde_json::json!({
            "query": format!("mutation {{ {alias}: mergePullRequest(input: {{pullRequestId: \"x\"}}) {{ clientMutationId }} }}")
        })
        .to_string();
        assert!(graphql_denial(merge.as_bytes()).is_some());
    }
});
