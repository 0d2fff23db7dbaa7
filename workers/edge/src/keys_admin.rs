//! `/admin/keys`: the key lifecycle behind ADMIN_TOKEN (millimetric_core::keys::admin decides; this reads
//! and writes KV `KEYS`). Every admin request counts against a per-address limit first (in
//! worker::route), so guessing the token is slow; every change, and every refusal once the key's
//! project is known, is in the project's audit log.
//!
//! - `POST /admin/keys` create a project's keys (raw keys in the answer, once)
//! - `GET /admin/keys?project_id=` list (hashes and settings)
//! - `POST /admin/keys/{hash}/rotate` a new key; the old one works for `grace_seconds`
//! - `POST /admin/keys/{hash}/revoke` at once
//! - `PATCH /admin/keys/{hash}` set origins, limit, retention, hash routing, time zone

use super::key_lookup::unavailable;
use super::{config, http};
use millimetric_adapters::kv::all_entries;
use millimetric_core::error::ApiError;
use millimetric_core::keys::admin;
use millimetric_core::keys::{key_hash, KeyKind, KeyRecord};
use millimetric_core::privacy::audit;
use serde_json::json;
use worker::{Env, Method, Request, Response};

pub async fn handle(mut req: Request, env: &Env, rest: &str) -> worker::Result<Response> {
    if let Some(refused) = super::admin::refuse_unless_admin(&req, env) {
        return Ok(refused);
    }
    let body = req.bytes().await.unwrap_or_default();
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    Ok(match run(req.method(), rest, &body, query.as_deref(), env).await {
        Ok((status, v)) => http::json(status, &v.to_string(), None),
        Err(e) => http::error(&e, None),
    })
}

fn random24() -> [u8; 24] {
    let mut b = [0u8; 24];
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into()).expect("crypto in workerd");
    let arr = js_sys::Uint8Array::new_with_length(24);
    let f: js_sys::Function =
        wasm_bindgen::JsCast::dyn_into(js_sys::Reflect::get(&crypto, &"getRandomValues".into()).expect("getRandomValues"))
            .expect("a function");
    f.call1(&crypto, &arr).expect("getRandomValues works");
    arr.copy_to(&mut b);
    b
}

async fn get(env: &Env, hash: &str) -> Result<KeyRecord, ApiError> {
    let kv = env.kv(config::KEYS_KV).map_err(|_| unavailable("The key store"))?;
    kv.get(hash).json::<KeyRecord>().await.map_err(|_| unavailable("The key store"))?.ok_or_else(|| admin::check_hash("").unwrap_err())
}

pub async fn put(env: &Env, hash: &str, r: &KeyRecord) -> Result<(), ApiError> {
    let kv = env.kv(config::KEYS_KV).map_err(|_| unavailable("The key store"))?;
    let v = serde_json::to_string(r).map_err(|_| unavailable("The key store"))?;
    put_naming_project(&kv, hash, v, r).await
}

/// `value` under `key`, with `r`'s project as the KV metadata: a project's keys are then found
/// from a listing (`project_keys`), by their records' metadata or their labels'.
async fn put_naming_project(kv: &worker::kv::KvStore, key: &str, value: String, r: &KeyRecord) -> Result<(), ApiError> {
    let put = kv.put(key, value).and_then(|p| p.metadata(admin::kv_metadata(r))).map_err(|_| unavailable("The key store"))?;
    put.execute().await.map_err(|_| unavailable("The key store"))
}

/// The change in the project's audit log: what was done, to which key (`key_hash`), and how it
/// ended. A creation that succeeded has nothing more to say: each key it made was logged as it
/// was stored (`log_made`).
async fn log(env: &Env, project: &str, result: &Answer, change: audit::KeyChange, key_hash: Option<&str>) {
    if change == audit::KeyChange::Create && result.is_ok() {
        return;
    }
    write_key_change(env, project, audit::outcome(result), change, key_hash).await;
}

/// A key made, by a creation or a rotation, in the project's audit log once it is stored: a
/// request that fails after it leaves a working key, which the log must name all the same.
async fn log_made(env: &Env, project: &str, hash: &str) {
    write_key_change(env, project, "ok".into(), audit::KeyChange::Create, Some(hash)).await;
}

async fn write_key_change(env: &Env, project: &str, outcome: String, change: audit::KeyChange, key_hash: Option<&str>) {
    let now = worker::Date::now().as_millis() as i64;
    let record = audit::record(project, audit::Action::KeyChange, "admin".into(), now, outcome, None);
    super::audit::write(env, &record.key_change(change, key_hash)).await;
}

type Answer = Result<(u16, serde_json::Value), ApiError>;

async fn run(method: Method, rest: &str, body: &[u8], query: Option<&str>, env: &Env) -> Answer {
    let now = worker::Date::now().as_millis() as i64;
    match (method, rest.trim_matches('/').split('/').collect::<Vec<_>>().as_slice()) {
        (Method::Post, [""]) => create(env, body).await,
        (Method::Get, [""]) => list(env, query, now).await,
        (Method::Post, [hash, "rotate"]) => rotate(env, admin::check_hash(hash)?, body, now).await,
        (Method::Post, [hash, "revoke"]) => revoke(env, admin::check_hash(hash)?).await,
        (Method::Patch, [hash]) => update(env, admin::check_hash(hash)?, body, now).await,
        (_, shape) => {
            const ROUTES: &str =
                "Keys: POST /admin/keys, GET /admin/keys?project_id=, POST /admin/keys/{hash}/rotate|revoke, PATCH /admin/keys/{hash}.";
            Err(match shape {
                [""] => ApiError::method_not_allowed("GET, POST", ROUTES),
                [_] => ApiError::method_not_allowed("PATCH", ROUTES),
                [_, "rotate" | "revoke"] => ApiError::method_not_allowed("POST", ROUTES),
                _ => ApiError::new(404, "not_found", format!("No such path. {ROUTES}")),
            })
        }
    }
}

/// `POST /admin/keys`: a project's keys, the raw keys in the answer this once.
async fn create(env: &Env, body: &[u8]) -> Answer {
    let (project, kinds, settings) = admin::parse_create(body)?;
    let result = create_keys(env, &project, kinds, &settings).await;
    log(env, &project, &result, audit::KeyChange::Create, None).await;
    result
}

async fn create_keys(env: &Env, project: &str, kinds: Vec<KeyKind>, settings: &admin::Settings) -> Answer {
    super::projects_admin::refuse_if_deleted(env, project).await?;
    // Every key's sites checked before any key is stored: a refusal writes nothing.
    let mut planned = Vec::new();
    for kind in kinds {
        let raw = admin::new_raw_key(kind, &random24());
        let r = admin::new_record(project, kind, settings);
        let plan = domain_plan(env, &key_hash(&raw), None, &r, None).await?;
        planned.push((raw, r, plan));
    }
    let mut out = Vec::new();
    for (raw, r, plan) in planned {
        put(env, &key_hash(&raw), &r).await?;
        log_made(env, project, &key_hash(&raw)).await;
        apply_domain_plan(env, &key_hash(&raw), plan).await?;
        out.push(admin::created(&raw, &r));
    }
    Ok((201, json!({"keys": out, "note": "The raw keys are shown this once; only their hashes are kept."})))
}

/// `GET /admin/keys?project_id=`: the project's keys as they stand now (hashes and settings).
async fn list(env: &Env, query: Option<&str>, now: i64) -> Answer {
    let project = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "project_id")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::bad_request("invalid_project", "Name the project: GET /admin/keys?project_id=..."))?;
    let keys = project_keys(env, &project).await?;
    let keys: Vec<_> = keys.into_iter().map(|(hash, r)| admin::listed(&hash, &millimetric_core::keys::effective(r, now))).collect();
    Ok((200, json!({"project_id": project, "keys": keys})))
}

/// Every key record of `project`, with its hash: a listing of KV `KEYS` (a page a thousand
/// keys), then only the records its metadata names for the project. Records written without
/// metadata (before it was stored) are read to know, and labelled (`admin::label_key`; the
/// record itself is never written here), at most `UNLABELLED_PER_CALL` a call: past that the
/// call answers 503 and the next goes on.
pub async fn project_keys(env: &Env, project: &str) -> Result<Vec<(String, KeyRecord)>, ApiError> {
    let kv = env.kv(config::KEYS_KV).map_err(|_| unavailable("The key store"))?;
    let entries = all_entries(&kv, "").await.map_err(|_| unavailable("The key store"))?;
    let to_read = admin::records_to_read(&entries, project);
    let mut keys = Vec::new();
    for hash in to_read.unlabelled.iter().take(admin::UNLABELLED_PER_CALL) {
        if let Some(r) = read_record(&kv, hash).await? {
            put_naming_project(&kv, &admin::label_key(hash), String::new(), &r).await?;
            if r.project_id == project {
                keys.push((hash.clone(), r));
            }
        }
    }
    if to_read.unlabelled.len() > admin::UNLABELLED_PER_CALL {
        let left = to_read.unlabelled.len() - admin::UNLABELLED_PER_CALL;
        return Err(ApiError::new(
            503,
            "temporarily_unavailable",
            format!("The key store is labelling key records written before this release ({left} left): retry the same request."),
        ));
    }
    for hash in to_read.ours {
        if let Some(r) = read_record(&kv, &hash).await? {
            keys.push((hash, r));
        }
    }
    Ok(keys)
}

async fn read_record(kv: &worker::kv::KvStore, hash: &str) -> Result<Option<KeyRecord>, ApiError> {
    millimetric_adapters::meter::add("kv.reads", 1);
    kv.get(hash).json::<KeyRecord>().await.map_err(|_| unavailable("The key store"))
}

/// `POST /admin/keys/{hash}/rotate`: a new key; the old one works for `grace_seconds`.
async fn rotate(env: &Env, hash: &str, body: &[u8], now: i64) -> Answer {
    let old = millimetric_core::keys::effective(get(env, hash).await?, now);
    let result = rotate_key(env, hash, &old, body, now).await;
    log(env, &old.project_id, &result, audit::KeyChange::Rotate, Some(hash)).await;
    result
}

async fn rotate_key(env: &Env, hash: &str, old: &KeyRecord, body: &[u8], now: i64) -> Answer {
    let grace = admin::parse_grace(body)?;
    admin::changeable(old)?;
    // A project being deleted gets no new key, and its keys' records are not written back.
    super::projects_admin::refuse_if_deleted(env, &old.project_id).await?;
    let (ending, fresh) = admin::rotate(old, now, grace);
    let raw = admin::new_raw_key(fresh.kind, &random24());
    // The new key takes the old one's domains over: checked before anything is written.
    let handover = domain_plan(env, &key_hash(&raw), None, &fresh, Some(hash)).await?;
    put(env, &key_hash(&raw), &fresh).await?;
    log_made(env, &old.project_id, &key_hash(&raw)).await;
    put(env, hash, &ending).await?;
    apply_domain_plan(env, &key_hash(&raw), handover).await?;
    Ok((201, json!({"key": admin::created(&raw, &fresh), "old": admin::listed(hash, &ending), "grace_seconds": grace})))
}

/// `POST /admin/keys/{hash}/revoke`: at once.
async fn revoke(env: &Env, hash: &str) -> Answer {
    let before = get(env, hash).await?;
    let result = put_revoked(env, hash, &before)
        .await
        .map(|r| (200, json!({"key": admin::listed(hash, &r), "reaches_every_isolate_within_seconds": admin::REVOCATION_BOUND_SECONDS})));
    log(env, &before.project_id, &result, audit::KeyChange::Revoke, Some(hash)).await;
    result
}

/// Key `hash` revoked, and the sites it registered let go (a project's deletion revokes so too).
pub async fn put_revoked(env: &Env, hash: &str, before: &KeyRecord) -> Result<KeyRecord, ApiError> {
    let r = KeyRecord { revoked: true, ..before.clone() };
    index_domains(env, hash, Some(before), &r).await?;
    put(env, hash, &r).await?;
    Ok(r)
}

/// A deleted project's key gives up its site domains: each index entry that still names it
/// goes, whatever state a deletion that failed part way left the record in.
pub async fn release_domains(env: &Env, hash: &str, record: &KeyRecord) -> Result<(), ApiError> {
    apply_domain_plan(env, hash, (Vec::new(), record.domains.clone())).await
}

/// `PATCH /admin/keys/{hash}`: origins, limit, retention, hash routing, time zone.
async fn update(env: &Env, hash: &str, body: &[u8], now: i64) -> Answer {
    let before = get(env, hash).await?;
    let result = update_key(env, hash, &before, body, now).await;
    log(env, &before.project_id, &result, audit::KeyChange::Set, Some(hash)).await;
    result
}

async fn update_key(env: &Env, hash: &str, before: &KeyRecord, body: &[u8], now: i64) -> Answer {
    admin::changeable(&millimetric_core::keys::effective(before.clone(), now))?;
    let settings = admin::parse_settings(body)?;
    super::projects_admin::refuse_if_deleted(env, &before.project_id).await?;
    let mut r = before.clone();
    settings.apply(&mut r);
    index_domains(env, hash, Some(before), &r).await?;
    put(env, hash, &r).await?;
    Ok((200, json!({"key": admin::listed(hash, &r)})))
}

/// KV's domain index (`keys::domain_index_key`) as key `hash`'s record goes from `before` to
/// `after`: its new domains point to it, its dropped ones no longer do. A domain another live
/// key still lists, of any project, is refused (409): one key per site, so no project can take
/// another's, and dropping a domain from one key never unregisters another's.
async fn index_domains(env: &Env, hash: &str, before: Option<&KeyRecord>, after: &KeyRecord) -> Result<(), ApiError> {
    let plan = domain_plan(env, hash, before, after, None).await?;
    apply_domain_plan(env, hash, plan).await
}

/// The domains key `hash` gains and drops, once none it gains is another live key's (a
/// rotation's old key, `handed_from`, hands them over). Reads only.
async fn domain_plan(
    env: &Env,
    hash: &str,
    before: Option<&KeyRecord>,
    after: &KeyRecord,
    handed_from: Option<&str>,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let (added, removed) = admin::domain_changes(before, after)?;
    let kv = env.kv(config::KEYS_KV).map_err(|_| unavailable("The key store"))?;
    let store = |_| unavailable("The key store");
    let now = worker::Date::now().as_millis() as i64;
    for domain in &added {
        let holder = index_holder(&kv, domain).await?.filter(|h| h != hash && Some(h.as_str()) != handed_from);
        let Some(holder) = holder else { continue };
        let held = kv.get(&holder).json::<KeyRecord>().await.map_err(store)?;
        if held.map(|r| millimetric_core::keys::effective(r, now)).is_some_and(|r| !r.revoked && r.domains.contains(domain)) {
            return Err(ApiError::new(
                409,
                "domain_taken",
                format!("Another key holds the site `{domain}`. Drop the domain from that key (or revoke it) first."),
            ));
        }
    }
    Ok((added, removed))
}

async fn apply_domain_plan(env: &Env, hash: &str, (added, removed): (Vec<String>, Vec<String>)) -> Result<(), ApiError> {
    let kv = env.kv(config::KEYS_KV).map_err(|_| unavailable("The key store"))?;
    let store = |_| unavailable("The key store");
    for domain in &added {
        kv.put(&millimetric_core::keys::domain_index_key(domain), hash).map_err(store)?.execute().await.map_err(store)?;
    }
    for domain in &removed {
        // Only while it still names this key (a rotation moved it on already).
        if index_holder(&kv, domain).await?.as_deref() == Some(hash) {
            kv.delete(&millimetric_core::keys::domain_index_key(domain)).await.map_err(store)?;
        }
    }
    Ok(())
}

/// The key hash a domain's index entry names (`key_lookup::parse_domain_entry`).
async fn index_holder(kv: &worker::kv::KvStore, domain: &str) -> Result<Option<String>, ApiError> {
    millimetric_adapters::meter::add("kv.reads", 1);
    let text = kv.get(&millimetric_core::keys::domain_index_key(domain)).text().await.map_err(|_| unavailable("The key store"))?;
    Ok(text.and_then(millimetric_adapters::key_lookup::parse_domain_entry))
}
