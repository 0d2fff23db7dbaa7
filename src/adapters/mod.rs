//! Thin adapters from workerd's bindings to the core, shared by the Workers built from this
//! crate (the edge's `worker` module, and the read Worker in workers/read): responses,
//! settings, the ClickHouse HTTP client, key lookup. They decide nothing the core can decide.

pub mod auth;
pub mod clickhouse_sink;
pub mod config;
pub mod http;
pub mod key_lookup;
