//! The daily usage snapshot (a Cron Trigger, before retention): the last closed days' stored
//! events, counted from the raw rows into `usage_daily` (millimetric_core::usage::sql), so usage
//! outlives raw retention. A failed run leaves its days counted live; the next run redoes them.

use super::{clickhouse_sink, config};
use millimetric_core::storage::clickhouse::Role;
use millimetric_core::usage::sql;
use time::OffsetDateTime;
use worker::{console_error, console_log, Date, Env};

/// `now_ms`: the trigger's scheduled time.
pub async fn run(env: &Env, now_ms: f64) {
    match snapshot(env, now_ms as i64).await {
        Ok(()) => console_log!("usage: snapshotted the last {} closed days", sql::SNAPSHOT_DAYS),
        Err(e) => console_error!("usage: snapshot failed (days stay counted live): {e}"),
    }
}

async fn snapshot(env: &Env, now_ms: i64) -> Result<(), String> {
    let cfg = config::clickhouse(env, Role::Maintainer);
    cfg.check_names()?;
    let today = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).map_err(|e| format!("bad trigger time: {e}"))?.date();
    // The version from the clock, not the trigger's time: a retried trigger must not reuse one.
    let version = Date::now().as_millis();
    for statement in sql::snapshot_sql(&cfg.database, &cfg.table, today, version) {
        clickhouse_sink::select(&cfg, &statement).await.map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

/// `GET /admin/usage?from=&to=`: every project's usage totals over the range.
pub async fn admin_view(req: worker::Request, env: &Env) -> worker::Result<worker::Response> {
    use millimetric_core::usage::report;
    if let Some(refused) = super::admin::refuse_unless_admin(&req, env) {
        return Ok(refused);
    }
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    let range = match report::parse_range(query.as_deref(), Date::now().as_millis() as i64) {
        Ok(r) => r,
        Err(e) => return Ok(super::http::error(&e, None)),
    };
    let cfg = config::clickhouse(env, Role::Reader);
    let gathered = match cfg.check_names() {
        Ok(()) => millimetric_adapters::usage::gather(&cfg, millimetric_adapters::usage::Limits::Own, sql::Scope::All, range).await,
        Err(e) => Err(e),
    };
    Ok(match gathered {
        Ok(u) => super::http::json(200, &u.all_json(range).to_string(), None),
        Err(e) => {
            console_error!("usage: admin view: {e}");
            super::http::error(&super::key_lookup::unavailable("The event store"), None)
        }
    })
}
