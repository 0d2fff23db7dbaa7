//! Native-only tooling (never in the Worker): a small ClickHouse HTTP client, the migration
//! runner, and key seeding. Used by `src/bin/*` and the end-to-end tests.
pub mod clickhouse_client;
pub mod dev_keys;
pub mod migrate;
