//! The daily rollup (a Cron Trigger, before retention): folds closed days of raw events into
//! the aggregates, through the core's one loop (`millimetric_core::storage::rollup::driver`) over ClickHouse. A
//! failed batch is never visible (its days keep their previous version); the next run picks up.

use super::{clickhouse_sink, config};
use millimetric_core::storage::rollup::driver;
use worker::{console_error, console_log, Env};

/// `now_ms`: the trigger's scheduled time.
pub async fn run(env: &Env, now_ms: f64) {
    match roll(env, now_ms as i64).await {
        Ok(0) => console_log!("rollup: nothing new to roll up"),
        Ok(n) => console_log!("rollup: rolled up {n} day(s)"),
        Err(e) => console_error!("rollup: {e}"),
    }
}

async fn roll(env: &Env, now_ms: i64) -> Result<usize, String> {
    let cfg = config::clickhouse(env, millimetric_core::storage::clickhouse::Role::Maintainer);
    cfg.check_names()?;
    let cfg = &cfg;
    let query = |sql: String| async move { clickhouse_sink::query(cfg, &sql).await };
    // Versions from the clock, not the trigger's time: a retried trigger must not reuse one.
    let clock = || worker::Date::now().as_millis() as i64;
    driver::run(&cfg.database, &cfg.table, now_ms, false, query, clock, |_| {}).await
}
