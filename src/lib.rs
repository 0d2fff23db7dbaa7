//! Millimetric edge ingestion.
//!
//! The pure core (everything but `worker`) takes values and returns values and is tested
//! natively with `cargo test`. `worker` is the thin Cloudflare Workers adapter (wasm32 only).

pub mod audit;
pub mod auth;
pub mod clickhouse;
pub mod config_check;
pub mod enrich;
pub mod error;
pub mod event;
pub mod first_write;
pub mod geo_load;
pub mod key_admin;
pub mod key_cache;
pub mod keys;
pub mod mcp;
pub mod migrations;
pub mod paging;
pub mod percent;
pub mod pipeline;
pub mod query;
pub mod rate_limit;
pub mod retention;
pub mod rollup;
pub mod row;
pub mod sql;
pub mod timestamp;
pub mod visitors;
pub mod warm_up;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;

#[cfg(target_arch = "wasm32")]
pub mod adapters;

#[cfg(all(target_arch = "wasm32", feature = "worker-entry"))]
mod worker;
