//! sandbox: the supervisor and the subcommands of the `sandbox` binary.

pub mod agent_preset;
pub mod commands;
pub mod credentials;
pub mod evidence;
pub mod gitstate;
pub mod jail;
pub mod leftovers;
pub mod recovery;
pub mod session;
