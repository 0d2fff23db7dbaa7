//! The native tools' library (never in a Worker): a small ClickHouse HTTP client, its settings
//! from the environment, the migration runner, and key seeding. Used by `tools/bin/*` and the
//! end-to-end tests.

pub mod clickhouse_client;
pub mod clickhouse_settings;
pub mod dev_keys;
pub mod migrate;

/// Where scripts/setup puts test fixtures: $MM_FIXTURES, else ~/.cache/millimetric/fixtures.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::env::var_os("MM_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/millimetric/fixtures"))
}
