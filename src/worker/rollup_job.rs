//! The daily rollup (a Cron Trigger, before retention): folds closed days of raw events into
//! the aggregates (`crate::rollup` decides which days and spells the statements). A failed
//! batch is never visible (its days keep their previous version); the next run picks up.

use super::{clickhouse_sink, config};
use crate::rollup;
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
    let cfg = config::clickhouse(env, crate::clickhouse::Role::Maintainer);
    cfg.check_names()?;
    let (db, table) = (cfg.database.as_str(), cfg.table.as_str());
    let today = rollup::today(now_ms)?;
    let state = rollup::parse_state(&clickhouse_sink::query(&cfg, &rollup::state_sql(db)).await?)?;
    let first = match state.frontier {
        None => rollup::parse_first_day(&clickhouse_sink::query(&cfg, &rollup::first_day_sql(db, table)).await?)?,
        Some(_) => None,
    };
    let late = match rollup::late_days_sql(db, table, &state, today) {
        Some(sql) => rollup::parse_days(&clickhouse_sink::query(&cfg, &sql).await?),
        None => Vec::new(),
    };
    // Versions from the clock, not the trigger's time: a retried trigger must not reuse one.
    let started = worker::Date::now().as_millis();
    let mut rolled = 0;
    for (i, days) in rollup::batches(&state, first, &late, today).iter().enumerate() {
        let version = started + i as u64;
        for sql in rollup::insert_sql(db, table, days, version) {
            clickhouse_sink::query(&cfg, &sql).await?;
        }
        for sql in rollup::done_sql(db, table, days, version, worker::Date::now().as_millis() as i64) {
            clickhouse_sink::query(&cfg, &sql).await?;
        }
        rolled += days.len();
    }
    clickhouse_sink::query(&cfg, &rollup::run_done_sql(db, started, worker::Date::now().as_millis() as i64)).await?;
    Ok(rolled)
}
