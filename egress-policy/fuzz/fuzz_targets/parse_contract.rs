//! Any text must parse to a policy or to diagnostics with valid positions: never a panic.
#![no_main]

use std::path::PathBuf;

use egress_policy::{PathContext, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ctx = PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    };
    match Policy::parse(text, "fuzz.toml", &ctx) {
        Ok(policy) => {
            // a valid policy must answer every question without panicking
            let _ = policy.file_plan();
            for rule in &policy.contract().network.allow {
                let host = rule.host.to_string();
                let host = host.trim_start_matches("*.");
                let _ = policy.decide_connect(egress_policy::Target {
                    scheme: egress_policy::Scheme::Https,
                    host,
                    port: rule.port,
                });
            }
        }
        Err(e) => {
            assert!(!e.diagnostics.is_empty());
            let lines = text.lines().count().max(1) + 1;
            for d in &e.diagnostics {
                assert!(d.location.line >= 1 && d.location.line <= lines, "{d}");
                assert!(d.location.col >= 1, "{d}");
            }
        }
    }
});
