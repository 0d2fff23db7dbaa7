//! Millimetric's pure core: every decision the service makes, as values in and values out.
//! The Workers (workers/edge, workers/read) and the native tools (tools/) are thin adapters
//! around it; nothing here touches a binding, a socket or a clock. Tested with `cargo test`.
//!
//! One folder per concern, in the order an event travels (docs/architecture.md):

/// Other vendors' ingest protocols (Segment, PostHog, Plausible) as `/collect` events.
pub mod compat;
/// Conversion analytics: goals, revenue, funnels, attribution, retention, paths.
pub mod conversions;
/// What the edge adds to an event: geo, coarse user agent, bots, attribution, PII scrubbing.
pub mod enrich;
/// An event's way in: the contract, the pipeline to a row, the first write winning.
pub mod ingest;
/// API keys: kinds, records, lifecycle, the per-isolate cache, and who may do what.
pub mod keys;
/// The MCP protocol and tools over the Stats API.
pub mod mcp;
/// What the Workers report to an error monitor (Sentry's envelopes): never a payload.
pub mod monitor;
/// A visitor's export and erasure, and the audit log.
pub mod privacy;
/// The Stats API: request parsing, planning, SQL, results.
pub mod query;
/// Per-key and per-IP limits.
pub mod rate_limit;
/// ClickHouse: statements, inserts, migrations, retention, the daily rollup.
pub mod storage;
/// Usage per project and day (what is billed), and monthly quotas.
pub mod usage;

pub mod base64_text;
pub mod config_check;
pub mod error;
pub mod paging;
pub mod percent;

#[cfg(test)]
mod sim_rng;
#[cfg(test)]
mod test_clock;
