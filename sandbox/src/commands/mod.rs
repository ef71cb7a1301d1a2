//! One module per subcommand. Each exposes an `Args` struct (clap) and a `run` function that
//! returns the process exit code.

pub mod log;
pub mod verify;
pub mod diagram;
pub mod report;
pub mod check;
pub mod explain;
pub mod doctor;
pub mod run;
pub mod proxy;
