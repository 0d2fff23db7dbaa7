//! Native-only tooling (never in the Worker): a small ClickHouse HTTP client, the migration
//! runner, and key seeding. Used by `src/bin/*` and the end-to-end tests.
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

/// Runs a future to its end on this thread. For the core's async steps driven by native tools,
/// whose store answers at once (a blocking client): there is nothing to wait for but the CPU.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
