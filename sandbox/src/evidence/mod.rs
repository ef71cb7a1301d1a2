//! Evidence for the pilot's governance gate, built from the flow log (`docs/flow-log.md`):
//! the hash chain ([`chain`], [`scan`]), summaries ([`summary`]), conformance to the approved
//! data-flow diagram ([`conformance`]), the observed data-flow graph ([`graph`]) and its
//! renderings ([`render`]), and the HTML report ([`report`]).
//!
//! Everything here reads logs; nothing writes them. Every reader streams: memory is bounded by
//! the number of distinct destinations, denial groups, deviations and sessions.

pub mod chain;
pub mod conformance;
pub mod dimensions;
pub mod filter;
pub mod graph;
pub mod record;
pub mod render;
pub mod report;
pub mod report_pilot;
pub mod scan;
pub mod sessions;
pub mod summary;
pub mod text;
