//! `/admin/projects/{id}`: a project's whole data deleted, now or at its closure, behind
//! ADMIN_TOKEN (what goes and in which order: millimetric_core::privacy::projects).
//!
//! - `DELETE /admin/projects/{id}` deletes now
//! - `POST /admin/projects/{id}/closure` schedules it (`{"delete_after_days": 0..30}`, default 30)
//! - `GET /admin/projects/{id}/closure` the closure, if one is scheduled
//! - `DELETE /admin/projects/{id}/closure` cancels it
//! - `POST` / `GET /admin/projects/{id}/exports` starts or lists its exports (super::exports)
//! - `PUT /admin/projects/{id}/quota` sets the monthly event quota (`{"monthly_events": N |
//!   null, "hard_cap": bool}`); `GET` reads it with this month's use (millimetric_core::usage::quota)
//!
//! The daily cron (`run_due`) carries out closures that are due and re-applies recent
//! deletions to rows that were still queued.

use super::key_lookup::unavailable;
use super::{clickhouse_sink, config, http, keys_admin};
use millimetric_adapters::kv::all_keys;
use millimetric_adapters::usage;
use millimetric_core::error::ApiError;
use millimetric_core::keys::KeyRecord;
use millimetric_core::privacy::projects::{self, Closure, KeyKind, Tombstone};
use millimetric_core::privacy::{audit, visitors};
use millimetric_core::storage::clickhouse::Role;
use millimetric_core::usage::quota;
use serde_json::json;
use worker::{console_error, console_log, Date, Env, Method, Request, Response};

type Answer = Result<(u16, serde_json::Value), ApiError>;

pub async fn handle(mut req: Request, env: &Env, rest: &str) -> worker::Result<Response> {
    if let Some(refused) = super::admin::refuse_unless_admin(&req, env) {
        return Ok(refused);
    }
    if let Some(id) = rest.strip_suffix("/exports").filter(|id| !id.contains('/')) {
        let answer = match projects::check_project_id(id) {
            Ok(project) => super::exports::admin(req.method(), env, project).await,
            Err(e) => Err(e),
        };
        return Ok(answer.unwrap_or_else(|e| http::error(&e, None)));
    }
    let body = req.bytes().await.unwrap_or_default();
    Ok(match run(req.method(), rest, &body, env).await {
        Ok((status, v)) => http::json(status, &v.to_string(), None),
        Err(e) => http::error(&e, None),
    })
}

async fn run(method: Method, rest: &str, body: &[u8], env: &Env) -> Answer {
    let now = Date::now().as_millis() as i64;
    // The path exactly as documented: no trailing slash or extra segment is read as a shorter one.
    match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::Delete, [id]) => {
            let project = projects::check_project_id(id)?;
            let result = delete_project(env, project).await;
            log(env, project, audit::Action::ProjectDeletion, &result).await;
            result
        }
        (method, [id, "closure"]) => {
            let project = projects::check_project_id(id)?;
            // Audited as what it did; a read is not an action.
            let action = match method {
                Method::Post => Some(audit::Action::ProjectClosure),
                Method::Delete => Some(audit::Action::ProjectClosureCancelled),
                _ => None,
            };
            let result = closure(env, method, project, body, now).await;
            if let Some(action) = action {
                log(env, project, action, &result).await;
            }
            result
        }
        (method @ (Method::Get | Method::Put), [id, "quota"]) => {
            let project = projects::check_project_id(id)?;
            if method == Method::Get {
                return quota(env, project, now).await;
            }
            let result = set_quota(env, project, body, now).await;
            log(env, project, audit::Action::QuotaChange, &result).await;
            result
        }
        (_, shape) => {
            const ROUTES: &str =
                "Projects: DELETE /admin/projects/{id}; POST, GET or DELETE /admin/projects/{id}/closure; GET or PUT /admin/projects/{id}/quota; POST or GET /admin/projects/{id}/exports.";
            Err(match shape {
                [_] => ApiError::method_not_allowed("DELETE", ROUTES),
                [_, "quota"] => ApiError::method_not_allowed("GET, PUT", ROUTES),
                _ => ApiError::new(404, "not_found", format!("No such path. {ROUTES}")),
            })
        }
    }
}

async fn log(env: &Env, project: &str, action: audit::Action, result: &Answer) {
    let now = Date::now().as_millis() as i64;
    super::audit::write(env, &audit::record(project, action, "admin".into(), now, audit::outcome(result), None)).await;
}

fn closure_json(project: &str, c: Option<Closure>) -> serde_json::Value {
    let at = audit::rfc3339;
    match c {
        Some(c) => json!({"project_id": project, "closure": {"requested_at": at(c.requested_ms), "deletion_due": at(c.due_ms)}}),
        None => json!({"project_id": project, "closure": null}),
    }
}

async fn closure(env: &Env, method: Method, project: &str, body: &[u8], now: i64) -> Answer {
    let kv = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The erasure log"))?;
    let key = projects::closure_key(project);
    match method {
        Method::Post => {
            let c = projects::parse_closure(body, now)?;
            let put = kv.put(&key, serde_json::to_string(&c).unwrap_or_default()).map_err(|_| unavailable("The erasure log"))?;
            put.execute().await.map_err(|_| unavailable("The erasure log"))?;
            Ok((202, closure_json(project, Some(c))))
        }
        Method::Get => {
            let c = kv.get(&key).json::<Closure>().await.map_err(|_| unavailable("The erasure log"))?;
            Ok((200, closure_json(project, c)))
        }
        Method::Delete => {
            kv.delete(&key).await.map_err(|_| unavailable("The erasure log"))?;
            Ok((200, closure_json(project, None)))
        }
        _ => Err(ApiError::method_not_allowed(
            "GET, POST, DELETE",
            "A closure is scheduled with POST, read with GET, cancelled with DELETE.",
        )),
    }
}

/// The quota and where the project stands this month.
async fn quota(env: &Env, project: &str, now: i64) -> Answer {
    let unavailable_store = |e: String| {
        console_error!("projects: quota of {project}: {e}");
        unavailable("The event store")
    };
    let q = usage::quota_of(env, project).await.map_err(|_| unavailable("The key store"))?;
    let cfg = config::clickhouse(env, Role::Reader);
    cfg.check_names().map_err(unavailable_store)?;
    let used = usage::used_this_month(&cfg, project, now).await.map_err(unavailable_store)?;
    Ok((200, json!({"project_id": project, "quota": quota::status(&q, used, quota::month(now).2)})))
}

/// A new quota replaces the old; the cap's flag is cleared, and the batch writer sets it again
/// within a minute if the project is still over a capped quota.
async fn set_quota(env: &Env, project: &str, body: &[u8], now: i64) -> Answer {
    let q = quota::parse(body)?;
    refuse_if_deleted(env, project).await?;
    let kv = env.kv(config::KEYS_KV).map_err(|_| unavailable("The key store"))?;
    let put =
        kv.put(&quota::record_key(project), serde_json::to_string(&q).unwrap_or_default()).map_err(|_| unavailable("The key store"))?;
    put.execute().await.map_err(|_| unavailable("The key store"))?;
    kv.delete(&quota::reached_key(project)).await.map_err(|_| unavailable("The key store"))?;
    quota(env, project, now).await
}

/// Deletes the project's whole data, in an order that never leaves it half-reachable: its
/// keys listed (a listing that fails, labelling old records, changes nothing), a tombstone (no
/// key of the project may be created or changed while it lasts; the daily job finishes what
/// fails after it, lists the keys again, and catches rows still queued), the keys listed again
/// and revoked (no new event), then the rest (`erase_all`); then the tombstone's expiry starts.
pub async fn delete_project(env: &Env, project: &str) -> Answer {
    keys_admin::project_keys(env, project).await?;
    put_tombstone(env, project, Tombstone::default()).await?;
    // Listed again behind the tombstone (cheap now that every record is labelled): a key
    // created while the first listing ran is among them.
    let keys = keys_admin::project_keys(env, project).await?;
    for (hash, record) in &keys {
        keys_admin::put_revoked(env, hash, record).await?;
    }
    let deleted = erase_all(env, project, keys).await?;
    put_tombstone(env, project, Tombstone { completed_ms: Some(Date::now().as_millis() as i64) }).await?;
    Ok((
        200,
        json!({
            "project_id": project,
            "deleted": deleted,
            "audit_kept_days": audit::KEEP_SECONDS / 86_400,
            "note": "ClickHouse deletes the rows in the background (mutations, usually seconds); the daily job deletes again for 8 days any row that was still queued.",
        }),
    ))
}

/// The tombstone: without an expiry until the deletion completed, then for TOMBSTONE_SECONDS.
async fn put_tombstone(env: &Env, project: &str, tomb: Tombstone) -> Result<(), ApiError> {
    let erasures = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The erasure log"))?;
    let put = erasures.put(&projects::tombstone_key(project), tomb.to_value()).map_err(|_| unavailable("The erasure log"))?;
    let put = if tomb.completed_ms.is_some() { put.expiration_ttl(projects::TOMBSTONE_SECONDS) } else { put };
    put.execute().await.map_err(|_| unavailable("The erasure log"))
}

/// Everything of a project that a deletion removes after its tombstone: its rows in ClickHouse
/// (usage included), its dead letters, its erasure records and closure, its exports (parts in
/// R2 and records), its key records (and their labels) and quota. Safe to repeat: the
/// daily job runs it again while the tombstone lasts, so a deletion that failed part way
/// (ClickHouse or KV down) is finished there. `keys`: the project's key records by hash (listed
/// once per run: a full scan of KV `KEYS`), whose site domains go from the index too.
async fn erase_all(env: &Env, project: &str, keys: Vec<(String, KeyRecord)>) -> Result<serde_json::Value, ApiError> {
    let tables = delete_rows(env, project).await.map_err(|e| {
        console_error!("projects: deleting {project}'s rows failed (the daily job retries): {e}");
        unavailable("The event store")
    })?;
    let dead_letters = super::dead_letters::erase_project(env, project).await?;
    let erasures = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The erasure log"))?;
    let mut erasure_records = 0;
    for key in all_keys(&erasures, "").await.map_err(|_| unavailable("The erasure log"))? {
        let theirs = visitors::parse_erasure_key(&key).is_some_and(|(p, _)| p == project) || key == projects::closure_key(project);
        if theirs {
            erasures.delete(&key).await.map_err(|_| unavailable("The erasure log"))?;
            erasure_records += 1;
        }
    }
    let export_parts = super::exports::erase_project(env, project).await?;
    for (hash, record) in &keys {
        keys_admin::release_domains(env, hash, record).await?;
    }
    let key_hashes: Vec<String> = keys.into_iter().map(|(hash, _)| hash).collect();
    let key_store = env.kv(config::KEYS_KV).map_err(|_| unavailable("The key store"))?;
    // Each key record with the label a listing may have left beside it (`admin::label_key`).
    let labels = key_hashes.iter().map(|hash| millimetric_core::keys::admin::label_key(hash));
    for key in key_hashes.iter().cloned().chain(labels).chain([quota::record_key(project), quota::reached_key(project)]) {
        key_store.delete(&key).await.map_err(|_| unavailable("The key store"))?;
    }
    Ok(
        json!({"keys": key_hashes.len(), "tables": tables, "dead_letters": dead_letters, "erasure_records": erasure_records, "export_parts": export_parts}),
    )
}

/// A project deleted less than 90 days ago keeps its id reserved: the daily job may still be
/// deleting its late rows (and would delete a new project's under the same id), and its audit
/// records are still kept (a new project's keys would read them).
pub async fn refuse_if_deleted(env: &Env, project: &str) -> Result<(), ApiError> {
    let erasures = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The erasure log"))?;
    let tomb = erasures.get(&projects::tombstone_key(project)).text().await.map_err(|_| unavailable("The erasure log"))?;
    match tomb {
        Some(_) => Err(projects::id_reserved(project)),
        None => Ok(()),
    }
}

/// One mutation per table with a `project_id` column; the tables' names.
async fn delete_rows(env: &Env, project: &str) -> Result<Vec<String>, String> {
    let cfg = config::clickhouse(env, Role::Maintainer);
    cfg.check_names()?;
    let tables = projects::parse_tables(&clickhouse_sink::query(&cfg, &projects::tables_sql(&cfg.database)).await?);
    for sql in projects::delete_sql(&cfg.database, &tables, project) {
        clickhouse_sink::query(&cfg, &sql).await?;
    }
    Ok(tables)
}

/// A tombstone's daily run: the deletion again while it re-applies; the first time it runs to
/// its end, the tombstone gets its expiry (TOMBSTONE_SECONDS from then).
async fn finish(env: &Env, kv: &worker::kv::KvStore, key: &str, project: &str) -> Result<&'static str, ApiError> {
    let tomb = kv.get(key).text().await.map_err(|_| unavailable("The erasure log"))?.map(|v| Tombstone::parse(&v));
    if tomb.is_some_and(|t| !t.reapplies(Date::now().as_millis() as i64)) {
        return Ok("id still reserved; nothing left to re-apply");
    }
    let keys = keys_admin::project_keys(env, project).await?;
    erase_all(env, project, keys).await?;
    match tomb {
        Some(Tombstone { completed_ms: None }) => {
            put_tombstone(env, project, Tombstone { completed_ms: Some(Date::now().as_millis() as i64) }).await?;
            Ok("deletion finished")
        }
        _ => Ok("deletion re-applied"),
    }
}

/// The daily cron: closures that are due are carried out; recent deletions are applied again
/// (rows that were still queued; a deletion that failed part way). One project's failure does
/// not stop the others; it is logged and tried again the next day.
pub async fn run_due(env: &Env) {
    let now = Date::now().as_millis() as i64;
    let Ok(kv) = env.kv(config::ERASURES_KV) else { return console_error!("projects: no ERASURES binding") };
    let keys = match all_keys(&kv, "").await {
        Ok(k) => k,
        Err(e) => return console_error!("projects: {e}"),
    };
    for key in keys {
        let Some((kind, project)) = projects::parse_key(&key) else { continue };
        let outcome = match kind {
            KeyKind::Closure => match kv.get(&key).json::<Closure>().await {
                Ok(Some(c)) if c.is_due(now) => {
                    let result = delete_project(env, project).await;
                    log(env, project, audit::Action::ProjectDeletion, &result).await;
                    result.map(|_| "closure carried out").map_err(|e| e.message)
                }
                Ok(_) => Ok("closure not due yet"),
                Err(e) => Err(e.to_string()),
            },
            KeyKind::Tombstone => finish(env, &kv, &key, project).await.map_err(|e| e.message),
        };
        match outcome {
            Ok(what) => console_log!("projects: {project}: {what}"),
            Err(e) => console_error!("projects: {project}: {e}; tried again tomorrow"),
        }
    }
}
