//! Thin adapters from workerd's bindings to the core, shared by both Workers (workers/edge and
//! workers/read): authentication, request bodies, responses, settings, the ClickHouse HTTP sink,
//! key lookup.
//! They decide nothing the core can decide.

pub mod auth;
pub mod body;
pub mod clickhouse_sink;
pub mod config;
pub mod http;
pub mod key_lookup;
pub mod kv;
pub mod meter;
pub mod monitor;
pub mod random;
pub mod usage;
