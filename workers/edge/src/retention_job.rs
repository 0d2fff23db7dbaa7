//! The daily retention run (a Cron Trigger, see wrangler.toml): lists the partitions of the
//! events table (and of its id and day indexes), drops the weeks past their window (`millimetric_core::storage::retention` decides which), and
//! logs what it did. A failed run changes nothing it did not finish; the next run picks up.

use super::{clickhouse_sink, config};
use millimetric_core::storage::retention;
use time::OffsetDateTime;
use worker::{console_error, console_log, Env};

/// `now_ms`: the trigger's scheduled time (so a run means the same thing whenever it starts).
pub async fn run(env: &Env, now_ms: f64) {
    match drop_expired(env, now_ms).await {
        Ok(dropped) if dropped.is_empty() => console_log!("retention: nothing past its window"),
        Ok(dropped) => console_log!("retention: dropped {} week(s) past their window: {}", dropped.len(), dropped.join(", ")),
        Err(e) => console_error!("retention: {e}"),
    }
}

async fn drop_expired(env: &Env, now_ms: f64) -> Result<Vec<String>, String> {
    let cfg = config::clickhouse(env, millimetric_core::storage::clickhouse::Role::Maintainer);
    cfg.check_names()?;
    let today = OffsetDateTime::from_unix_timestamp((now_ms / 1000.0) as i64).map_err(|e| format!("bad trigger time: {e}"))?.date();
    let mut dropped = Vec::new();
    // The events, and the indexes of their ids and visitors' days (partitioned alike).
    for table in [cfg.table.as_str(), millimetric_core::ingest::first_write::IDS_TABLE, millimetric_core::privacy::visitors::DAYS_TABLE] {
        let listed = clickhouse_sink::query(&cfg, &retention::list_partitions_sql(&cfg.database, table)).await?;
        let partitions: Vec<_> = listed.lines().filter_map(retention::parse_partition_id).collect();
        for p in retention::expired(&partitions, today) {
            clickhouse_sink::query(&cfg, &retention::drop_partition_sql(&cfg.database, table, &p)).await?;
            dropped.push(format!("{table} {} days/{}", p.retention_days, p.week_start));
        }
    }
    Ok(dropped)
}
