//! One module per subcommand. Each exposes an `Args` struct (clap) and a `run` function that
//! returns the process exit code.

pub mod check;
pub mod diagram;
pub mod doctor;
pub mod explain;
pub mod init;
pub mod log;
pub mod proxy;
pub mod report;
pub mod rollback;
pub mod run;
pub mod verify;
