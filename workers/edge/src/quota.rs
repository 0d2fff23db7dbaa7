//! Monthly quotas at the edge (millimetric_core::usage::quota decides). The edge only reads the
//! flag a capped project over its quota has, and then the quota it stands against (KV `KEYS`,
//! each cached per isolate like a key record). After rows are stored, by a request (once it has
//! answered: `stored`, `check_later`) or by the batch writer (`after_store`), the isolate counts
//! and sets or clears the flag, at most once a minute per project and isolate (QUOTA_CHECK_MS).

use super::config;
use millimetric_adapters::usage::{quota_of, used_this_month};
use millimetric_core::keys::cache::{Cached, KeyCache};
use millimetric_core::storage::clickhouse::Role;
use millimetric_core::usage::quota::{self, Quota};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use worker::{console_error, console_log, Date, Env};

thread_local! {
    /// Flags by project, as KV had them.
    static FLAGS: RefCell<KeyCache<String>> = RefCell::new(KeyCache::new(10_000, 10_000));
    /// Quotas by project (read only for a project with a flag).
    static QUOTAS: RefCell<KeyCache<Quota>> = RefCell::new(KeyCache::new(10_000, 10_000));
    /// When the batch writer last counted a project's month.
    static CHECKED: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
    /// Projects whose rows this isolate's requests stored straight into ClickHouse, to check
    /// once the answer is sent (`check_later`).
    static STORED: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// Through an isolate cache: what KV holds under `key` (None: nothing), read with `read`.
async fn cached<V: Clone, F: std::future::Future<Output = Option<Option<V>>>>(
    cache: &'static std::thread::LocalKey<RefCell<KeyCache<V>>>,
    project_id: &str,
    read: impl FnOnce() -> F,
) -> Option<V> {
    let now = now_ms();
    match cache.with(|c| c.borrow().get(project_id, now)) {
        Cached::Known(v) => Some(v),
        Cached::Unknown => None,
        Cached::Miss => {
            let v = read().await?;
            cache.with(|c| c.borrow_mut().put(project_id, v.clone(), now));
            v
        }
    }
}

/// Some(seconds to the month's end) when the project is capped and over its quota. A KV that
/// does not answer lets the event in (it shows as overage), never refuses it.
pub async fn refusal(env: &Env, project_id: &str) -> Option<u32> {
    let kv = env.kv(config::KEYS_KV).ok()?;
    let flag = flag(&kv, project_id).await?;
    let q = cached(&QUOTAS, project_id, || async { quota_of(env, project_id).await.ok().map(Some) }).await?;
    let now = now_ms();
    quota::flag_refuses(&flag, &q, now).then(|| quota::seconds_left_in_month(now).min(u32::MAX as u64) as u32)
}

/// How often the batch writer counts one project's month, per isolate (default a minute).
fn check_every_ms(env: &Env) -> i64 {
    config::var(env, "QUOTA_CHECK_MS").and_then(|v| v.parse().ok()).unwrap_or(60_000)
}

/// The project's flag, as KV has it (None: none), through the isolate's cache.
async fn flag(kv: &worker::kv::KvStore, project_id: &str) -> Option<String> {
    cached(&FLAGS, project_id, || async {
        millimetric_adapters::meter::add("kv.reads", 1);
        kv.get(&quota::reached_key(project_id)).text().await.ok()
    })
    .await
}

/// Rows of these projects were stored by a request: checked after its answer (`check_later`).
pub fn stored(projects: impl IntoIterator<Item = String>) {
    STORED.with(|s| s.borrow_mut().extend(projects));
}

/// The checks `stored` asked for, to run after the answer (`ctx.wait_until`); None when none.
pub fn check_later(env: &Env) -> Option<impl std::future::Future<Output = ()> + 'static> {
    let projects = STORED.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let env = env.clone();
    (!projects.is_empty()).then_some(async move { after_store(&env, projects).await })
}

/// After a batch is stored: for each of its projects not counted lately, set or clear the
/// flag. Errors are logged; the next batch tries again.
pub async fn after_store(env: &Env, projects: BTreeSet<String>) {
    let (now, every) = (now_ms(), check_every_ms(env));
    for p in projects {
        let due = CHECKED.with(|c| c.borrow().get(&p).is_none_or(|t| now - t >= every));
        if !due {
            continue;
        }
        CHECKED.with(|c| c.borrow_mut().insert(p.clone(), now));
        if let Err(e) = check(env, &p, now).await {
            console_error!("quota: could not check project {p}: {e}");
        }
    }
}

/// Deletes the project's flag if there is one: a delete is billed as a write, so only when this
/// isolate's view of the flag (read on a miss) has one.
async fn clear_flag(kv: &worker::kv::KvStore, project_id: &str, key: &str) -> Result<(), String> {
    if flag(kv, project_id).await.is_none() {
        return Ok(());
    }
    millimetric_adapters::meter::add("kv.writes", 1);
    kv.delete(key).await.map_err(|e| e.to_string())?;
    FLAGS.with(|c| c.borrow_mut().put(project_id, None, now_ms()));
    Ok(())
}

async fn check(env: &Env, project_id: &str, now: i64) -> Result<(), String> {
    let q = quota_of(env, project_id).await?;
    let kv = env.kv(config::KEYS_KV).map_err(|e| e.to_string())?;
    let key = quota::reached_key(project_id);
    if !q.hard_cap {
        // No cap: no flag (one left from a cap since turned off goes).
        return clear_flag(&kv, project_id, &key).await;
    }
    // Counting reads what the writer may not (received_at, usage_*): the reader's grant.
    let cfg = config::clickhouse(env, Role::Reader);
    let used = used_this_month(&cfg, project_id, now).await?;
    if !quota::is_reached(&q, used) {
        return clear_flag(&kv, project_id, &key).await;
    }
    let ttl = quota::seconds_left_in_month(now) + 86_400;
    let flag = quota::flag_value(&q, now);
    millimetric_adapters::meter::add("kv.writes", 1);
    let put = kv.put(&key, flag.clone()).map_err(|e| e.to_string())?;
    put.expiration_ttl(ttl).execute().await.map_err(|e| e.to_string())?;
    FLAGS.with(|c| c.borrow_mut().put(project_id, Some(flag), now));
    console_log!("quota: project {project_id} used {used} of {:?}; events are refused until the month ends", q.monthly_events);
    Ok(())
}
