//! Usage counters of this isolate (millimetric_core::usage::tally decides; this holds the tally
//! and sends it). A count costs nothing but memory; the first count after a flush asks the
//! request's `fetch` to keep it alive (`flush_later`, for `wait_until`) until the flush window
//! ends, then every count of the window goes to ClickHouse in one insert.

use super::config;
use millimetric_core::storage::clickhouse::{ClickHouseConfig, Role};
use millimetric_core::usage::quota::{self, Quota};
use millimetric_core::usage::report::{Range, Usage};
use millimetric_core::usage::sql::{self, Scope};
use millimetric_core::usage::tally::{Slot, Tally};
use millimetric_core::usage::{utc_day, Counter};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::Duration;
use worker::{console_error, Date, Delay, Env};

thread_local! {
    static TALLY: RefCell<Tally> = RefCell::new(Tally::default());
    /// A count asked for a flush that no request has taken on yet.
    static DUE: Cell<bool> = const { Cell::new(false) };
}

/// How long counts gather before one insert sends them (USAGE_FLUSH_MS, default 5 s).
fn window(env: &Env) -> Duration {
    Duration::from_millis(config::var(env, "USAGE_FLUSH_MS").and_then(|v| v.parse().ok()).unwrap_or(5_000))
}

/// Count `n` for the project today (UTC).
pub fn count(project_id: &str, counter: Counter, dim: &str, n: u64) {
    let now = Date::now().as_millis() as i64;
    let slot = Slot { project_id: project_id.to_string(), day: utc_day(now), counter, dim: dim.to_string() };
    if TALLY.with(|t| t.borrow_mut().add(slot, n, now)) {
        DUE.with(|d| d.set(true));
    }
}

/// The flush a count asked for, for the request's `wait_until`; None when none is due.
pub fn flush_later(env: &Env) -> Option<impl Future<Output = ()> + 'static> {
    if !DUE.with(|d| d.replace(false)) {
        return None;
    }
    let wait = window(env);
    let cfg = config::clickhouse(env, Role::Counter);
    Some(async move {
        Delay::from(wait).await;
        let flushes = TALLY.with(|t| t.borrow_mut().take(super::random::uuid()));
        if flushes.is_empty() {
            return;
        }
        let rows: String = flushes.iter().map(|f| f.rows()).collect();
        if let Err(e) = super::clickhouse_sink::select(&cfg, &sql::counters_insert(&cfg.database, &rows)).await {
            console_error!("usage: counters not sent, kept for the next flush ({e:?})");
            TALLY.with(|t| {
                let mut t = t.borrow_mut();
                t.failed(flushes);
                if t.dropped() > 0 {
                    console_error!("usage: {} counts given up since the isolate started", t.dropped());
                }
            });
        }
    })
}

/// How a statement is sent: with the read side's per-query limits (a customer's request) or
/// as the Worker's own (a quota check, the admin view).
#[derive(Clone, Copy)]
pub enum Limits {
    PerQuery,
    Own,
}

async fn run(cfg: &ClickHouseConfig, limits: Limits, sql: Option<String>) -> Result<String, String> {
    let Some(sql) = sql else { return Ok(String::new()) };
    match limits {
        Limits::PerQuery => super::clickhouse_sink::read(cfg, &sql).await.map_err(|(code, e)| format!("code {code:?}: {e}")),
        Limits::Own => super::clickhouse_sink::select(cfg, &sql).await.map_err(|e| format!("{e:?}")),
    }
}

/// Usage over `range` for `scope`: the finished snapshots (read first, once), the days counted
/// live, the counters.
pub async fn gather(cfg: &ClickHouseConfig, limits: Limits, scope: Scope<'_>, range: Range) -> Result<Usage, String> {
    let (db, table) = (&cfg.database, &cfg.table);
    let marked = sql::parse_marked(&run(cfg, limits, Some(sql::marked_sql(db, range.from, range.to))).await?)?;
    let (snap, live, counters) = futures_util::join!(
        run(cfg, limits, sql::stored_snapshot_sql(db, scope, &marked)),
        run(cfg, limits, Some(sql::stored_live_sql(db, table, scope, range.from, range.to, &marked))),
        run(cfg, limits, Some(sql::counters_sql(db, scope, range.from, range.to))),
    );
    let mut usage = Usage::default();
    usage.add_stored(&snap?)?;
    usage.add_stored(&live?)?;
    usage.add_counters(&counters?)?;
    Ok(usage)
}

/// Billable events of the project this month so far (UTC).
pub async fn used_this_month(cfg: &ClickHouseConfig, project_id: &str, now_ms: i64) -> Result<u64, String> {
    let (from, to, _) = quota::month(now_ms);
    Ok(gather(cfg, Limits::Own, Scope::Project(project_id), Range { from, to }).await?.billable(project_id))
}

/// The project's quota as stored in KV `KEYS` (the default, none, when unset).
pub async fn quota_of(env: &Env, project_id: &str) -> Result<Quota, String> {
    let kv = env.kv(config::KEYS_KV).map_err(|e| e.to_string())?;
    crate::meter::add("kv.reads", 1);
    let v = kv.get(&quota::record_key(project_id)).text().await.map_err(|e| e.to_string())?;
    match v {
        None => Ok(Quota::default()),
        Some(v) => serde_json::from_str(&v).map_err(|e| format!("quota record of {project_id}: {e}")),
    }
}
