//! `GET /visitors/{mm_aid}/events` and `DELETE /visitors/{mm_aid}`: the adapter around
//! `millimetric_core::privacy::visitors`, which spells the SQL (who may ask: `millimetric_core::keys::auth`).

use super::key_lookup::unavailable;
use super::{clickhouse_sink, config, http, key_limiter};
use millimetric_adapters::auth::authenticate;
use millimetric_core::error::ApiError;
use millimetric_core::keys::auth::Route;
use millimetric_core::privacy::visitors::{self, Action};
use millimetric_core::privacy::{audit, pseudonym};
use millimetric_core::rate_limit;
use worker::{console_error, Env, Headers, Request, Response, ResponseBody};

pub async fn handle(req: Request, env: &Env, action: Action, visitor: String) -> worker::Result<Response> {
    match run(&req, env, action, &visitor).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            if e.status >= 500 {
                console_error!("visitors: {e}");
            }
            Ok(http::error(&e, None))
        }
    }
}

async fn run(req: &Request, env: &Env, action: Action, visitor: &str) -> Result<Response, ApiError> {
    let route = match action {
        Action::Export => Route::VisitorExport,
        Action::Erase => Route::VisitorErasure,
    };
    let caller = authenticate(req, env, route, None).await?;
    let (project, key_hash) = (caller.principal.project_id, caller.key_hash);
    // Every export and erasure the project's key asked for is in its audit log, with how it
    // went, refusals from here on included, but for a rate limit's: a client retrying in a loop
    // would write a record each time, the cost the limit is there to bound.
    let result = match limited_act(env, action, &project, &key_hash, visitor).await {
        Ok(Answer::Limited(e, wait)) => return Ok(http::rate_limited(&e, wait, None)),
        Ok(Answer::Done(r)) => Ok(r),
        Err(e) => Err(e),
    };
    let what = match action {
        Action::Export => audit::Action::VisitorExport,
        Action::Erase => audit::Action::VisitorErasure,
    };
    let now = worker::Date::now().as_millis() as i64;
    super::audit::write(env, &audit::record(&project, what, audit::by_key(&key_hash), now, audit::outcome(&result), None)).await;
    if action == Action::Export && result.as_ref().is_ok_and(|r| r.status_code() == 200) {
        millimetric_adapters::usage::count(&project, millimetric_core::usage::Counter::Export, "visitor", 1);
    }
    result
}

/// What the key's request came to: done, or refused by its limit for `u32` seconds.
enum Answer {
    Done(Response),
    Limited(ApiError, u32),
}

async fn limited_act(env: &Env, action: Action, project: &str, key_hash: &str, visitor: &str) -> Result<Answer, ApiError> {
    // The id as it was stored: one that is personal data (an e-mail address) as its keyed hash.
    let secret = config::id_hash_secret(env);
    let stored = pseudonym::stored_id(secret.as_ref(), project, visitor)?;
    // And as a signed-in person's id (`user_id`, a Segment userId, a PostHog distinct_id) is stored.
    let as_user = pseudonym::user_visitor_id(secret.as_ref(), project, visitor).ok();
    // Its own window (and object), apart from the key's event limit.
    if let Some(wait) = key_limiter::check(env, &format!("{key_hash}/visitors"), 1, visitors::REQUESTS_PER_MINUTE).await {
        return Ok(Answer::Limited(rate_limit::too_many_requests("key", wait), wait));
    }
    act(env, action, Visitor { given: visitor, stored: &stored, as_user: as_user.as_deref() }, project).await.map(Answer::Done)
}

/// A visitor's id as the client gave it (echoed back) and as it was stored (looked up, with the
/// given one for rows written before identifiers were hashed), and the keyed hash it is stored
/// as when it came as a user id.
struct Visitor<'a> {
    given: &'a str,
    stored: &'a str,
    as_user: Option<&'a str>,
}

impl Visitor<'_> {
    fn ids(&self) -> Vec<&str> {
        let mut ids = vec![self.stored, self.given];
        ids.extend(self.as_user);
        ids.sort();
        ids.dedup();
        ids
    }
}

async fn act(env: &Env, action: Action, visitor: Visitor<'_>, project: &str) -> Result<Response, ApiError> {
    let project = project.to_string();

    // Export reads, erasure deletes: each with its own ClickHouse user where one is set.
    let role = match action {
        Action::Export => millimetric_core::storage::clickhouse::Role::Reader,
        Action::Erase => millimetric_core::storage::clickhouse::Role::Maintainer,
    };
    let cfg = config::clickhouse(env, role);
    cfg.check_names().map_err(|e| {
        console_error!("visitors: {e}");
        unavailable("The event store")
    })?;
    match action {
        Action::Export => {
            let sql = visitors::export_sql(&cfg.database, &cfg.table, &project, &visitor.ids());
            let answer = clickhouse_sink::query_response_unlogged(&cfg, &sql).await.map_err(|e| {
                console_error!("visitors: export failed: {e}");
                unavailable("The event store")
            })?;
            // ClickHouse's JSONEachRow is NDJSON: its body streams through, never held whole.
            let body = match answer.body() {
                ResponseBody::Stream(s) => ResponseBody::Stream(s.clone()),
                ResponseBody::Body(b) => ResponseBody::Body(b.clone()),
                ResponseBody::Empty => ResponseBody::Empty,
            };
            let headers = Headers::new();
            let _ = headers.set("Content-Type", "application/x-ndjson");
            let _ = headers.set("Cache-Control", "no-store");
            Ok(Response::from_body(body).map_err(|_| unavailable("The event store"))?.with_headers(headers))
        }
        Action::Erase => {
            // Recorded first, so the daily job re-applies it (and catches events that were
            // still queued) even if the deletion below fails; the client's retry repeats both.
            // Each form of the id by its hash (`visitors::erasure_key`).
            let kv = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The erasure log"))?;
            for id in visitor.ids() {
                let put = kv.put(&visitors::erasure_key(&project, id), "").map_err(|_| unavailable("The erasure log"))?;
                put.expiration_ttl(visitors::RECHECK_SECONDS).execute().await.map_err(|e| {
                    console_error!("visitors: could not record the erasure: {e}");
                    unavailable("The erasure log")
                })?;
            }
            // The project's exports may hold the visitor's events: marked due before anything
            // is deleted, so the daily job deletes them should this request fail on the way.
            super::erasures::mark_exports_due(&kv, &project).await.map_err(|e| {
                console_error!("visitors: could not mark the exports due: {e}");
                unavailable("The erasure log")
            })?;
            for sql in visitors::erase_sql(&cfg.database, &cfg.table, &project, &visitor.ids()) {
                clickhouse_sink::query_unlogged(&cfg, &sql).await.map_err(|e| {
                    console_error!("visitors: erase failed: {e}");
                    unavailable("The event store")
                })?;
            }
            // And from the dead-letter store, so no replay brings the rows back.
            let erased = visitor.ids().iter().map(|id| visitors::erased(&project, id)).collect();
            super::dead_letters::erase_visitors(env, &erased).await?;
            // And from the project's exports: any part may hold the visitor's events.
            let deleted = super::exports::erase_project(env, &project).await?;
            let _ = kv.delete(&visitors::exports_due_key(&project)).await; // else the daily job does it again
            if deleted > 0 {
                worker::console_log!("visitors: an erasure deleted {project}'s exports ({deleted} parts)");
            }
            let body = serde_json::json!({"status": "erasing", "mm_aid": visitor.given}).to_string();
            Ok(http::json(202, &body, None))
        }
    }
}
