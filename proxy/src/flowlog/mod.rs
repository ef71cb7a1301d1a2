//! The flow log: one hash-chained JSON Lines record per flow event, exactly as
//! `docs/flow-log.md` specifies.
//!
//! - [`FlowRecord`] is one line. Its fields are declared in the contract's key order, so
//!   serialising it yields the canonical bytes the chain hashes.
//! - [`FlowLog`] is the writer: it numbers, timestamps and chains records, appends them to the
//!   file (continuing an existing chain), and hands each written record to the registered
//!   [`FlowSink`]s.
//!
//! Log before egress: [`FlowLog::append`] returns only after the line was written to the file
//! (a `write(2)` of the whole line); callers send nothing upstream until it returned `Ok`.

mod record;
mod writer;

pub use record::{canonical_and_hash, chain_hash, Event, FlowRecord, Kind, TlsInfo, GENESIS_PREV};
pub use writer::{DurableTicket, FlowLog, FlowLogError, FlowSink};
