//! Monthly quotas at the edge (millimetric_core::usage::quota decides). The edge only reads the
//! flag a capped project over its quota has (KV `KEYS`, cached per isolate like a key record);
//! the batch writer counts and sets it, at most once a minute per project and isolate.

use super::config;
use millimetric_adapters::usage::{quota_of, used_this_month};
use millimetric_core::keys::cache::{Cached, KeyCache};
use millimetric_core::storage::clickhouse::Role;
use millimetric_core::usage::quota;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use worker::{console_error, console_log, Date, Env};

thread_local! {
    /// Flags by project (the month they hold), as KV had them.
    static FLAGS: RefCell<KeyCache<String>> = RefCell::new(KeyCache::new(10_000, 10_000));
    /// When the batch writer last counted a project's month.
    static CHECKED: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
}

/// How often the batch writer counts one project's month (per isolate).
const CHECK_EVERY_MS: i64 = 60_000;

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// Some(seconds to the month's end) when the project is capped and over its quota. A KV that
/// does not answer lets the event in (it shows as overage), never refuses it.
pub async fn refusal(env: &Env, project_id: &str) -> Option<u32> {
    let now = now_ms();
    let flag = match FLAGS.with(|c| c.borrow().get(project_id, now)) {
        Cached::Known(v) => Some(v),
        Cached::Unknown => None,
        Cached::Miss => {
            let kv = env.kv(config::KEYS_KV).ok()?;
            let v = kv.get(&quota::reached_key(project_id)).text().await.ok()?;
            FLAGS.with(|c| c.borrow_mut().put(project_id, v.clone(), now));
            v
        }
    };
    flag.filter(|m| quota::flag_applies(m, now)).map(|_| quota::seconds_left_in_month(now).min(u32::MAX as u64) as u32)
}

/// After a batch is stored: for each of its projects not counted in the last minute, set or
/// clear the flag. Errors are logged; the next batch tries again.
pub async fn after_store(env: &Env, projects: BTreeSet<String>) {
    let now = now_ms();
    for p in projects {
        let due = CHECKED.with(|c| c.borrow().get(&p).is_none_or(|t| now - t >= CHECK_EVERY_MS));
        if !due {
            continue;
        }
        CHECKED.with(|c| c.borrow_mut().insert(p.clone(), now));
        if let Err(e) = check(env, &p, now).await {
            console_error!("quota: could not check project {p}: {e}");
        }
    }
}

async fn check(env: &Env, project_id: &str, now: i64) -> Result<(), String> {
    let q = quota_of(env, project_id).await?;
    if !q.hard_cap {
        return Ok(());
    }
    // Counting reads what the writer may not (received_at, usage_*): the reader's grant.
    let cfg = config::clickhouse(env, Role::Reader);
    let used = used_this_month(&cfg, project_id, now).await?;
    if quota::is_reached(&q, used) {
        let kv = env.kv(config::KEYS_KV).map_err(|e| e.to_string())?;
        let (_, _, month) = quota::month(now);
        let ttl = quota::seconds_left_in_month(now) + 86_400;
        kv.put(&quota::reached_key(project_id), month)
            .map_err(|e| e.to_string())?
            .expiration_ttl(ttl)
            .execute()
            .await
            .map_err(|e| e.to_string())?;
        console_log!("quota: project {project_id} used {used} of {:?}; events are refused until the month ends", q.monthly_events);
    }
    Ok(())
}
