//! Shared harness for the end-to-end tests in `tests/`: where the `sandbox` binary is, and how
//! to run a scenario as each kind of user (root and an unprivileged one).

pub mod agent_cli;
pub mod bin;
pub mod clients;
pub mod contracts;
pub mod fake_bedrock;
pub mod fake_gemini;
pub mod fake_openai_ws;
pub mod flowcheck;
pub mod gateway;
pub mod git_http;
pub mod git_repo;
pub mod netns;
pub mod otlp_receiver;
pub mod rawclient;
pub mod sandbox_harness;
pub mod sigv4_oracle;
pub mod synthetic_log;
pub mod upstream;
pub mod users;
pub mod ws_upstream;
