//! Unit-test helpers for the capture and the resolver: a proxy on loopback with its flow log
//! in a fresh temporary directory, and the records of that log.

use std::path::PathBuf;
use std::sync::Arc;

use egress_policy::contract::PathContext;
use egress_policy::Policy;
use serde_json::Value;

use crate::{Limits, ProxyConfig, ProxyHandle};

/// A proxy on 127.0.0.1 (no capture sockets yet) with `limits` adjusted by `tune`, logging
/// to a file of its own; returns the handle and the log's path.
pub(crate) fn start_proxy(name: &str, tune: impl FnOnce(&mut Limits)) -> (ProxyHandle, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("proxy-capture-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    let ctx = PathContext {
        workspace: dir.clone(),
        home: dir.clone(),
    };
    let contract = include_str!("../../../examples/class-a-docs.toml");
    let policy = Policy::parse(contract, "class-a-docs.toml", &ctx).expect("example contract");
    let mut config = ProxyConfig::new(Arc::new(policy));
    let log = dir.join("flows.jsonl");
    config.log_path = Some(log.clone());
    tune(&mut config.limits);
    let listener = crate::bind("127.0.0.1:0".parse().expect("address")).expect("bind loopback");
    (crate::start(config, vec![listener]).expect("start"), log)
}

/// Every record of the log at `path`, in order.
pub(crate) fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read the flow log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}
