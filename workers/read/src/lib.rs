//! The read Worker: `POST /v1/query` (the Stats API) and `GET /v1/realtime`, for a project's
//! `rk_live_` or `sk_live_` key. A thin adapter: the core checks the key's kind and the body,
//! plans the SQL and assembles the answer (millimetric_edge::query); this runs it.

use millimetric_edge::adapters::{clickhouse_sink, config, http, key_lookup};
use millimetric_edge::clickhouse::Role;
use millimetric_edge::error::ApiError;
use millimetric_edge::query::{access, plan, realtime};
use worker::*;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    let answer = match (req.method(), path.as_str()) {
        (Method::Post, "/v1/query") => query(req, &env).await,
        (Method::Get, "/v1/realtime") => live(req, &env).await,
        (Method::Get, "/health") => return Ok(http::json(200, r#"{"status":"ok"}"#, None)),
        (_, "/v1/query") => Err(ApiError::new(405, "method_not_allowed", "Send queries with POST /v1/query.")),
        (_, "/v1/realtime") => Err(ApiError::new(405, "method_not_allowed", "Ask with GET /v1/realtime.")),
        _ => Err(ApiError::new(404, "not_found", "No such endpoint. Queries go to POST /v1/query.")),
    };
    Ok(match answer {
        Ok(r) => r,
        Err(e) if e.status == 429 => http::rate_limited(&e, 60, None),
        Err(e) => {
            if e.status >= 500 {
                console_error!("read: {e}");
            }
            http::error(&e, None)
        }
    })
}

struct Reader {
    project_id: String,
    timezone: Option<String>,
}

/// The key's project, after the per-IP check (keys the isolate does not know), the record,
/// and the key's query rate.
async fn reader(req: &Request, env: &Env) -> std::result::Result<Reader, ApiError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    // The scheme is case-insensitive (RFC 9110): `bearer rk_live_...` is a Bearer token too.
    let raw_key = header("Authorization").and_then(|h| {
        let (scheme, token) = h.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    let claimed = access::claimed_kind(raw_key.as_deref())?;
    let key_hash = millimetric_edge::keys::key_hash(raw_key.as_deref().unwrap_or_default());
    if let Some(wait) = key_lookup::ip_refusal(env, claimed, &key_hash, header("CF-Connecting-IP").as_deref()).await? {
        return Err(millimetric_edge::rate_limit::too_many("client address", wait));
    }
    let record = key_lookup::lookup_key(env, &key_hash).await?;
    let origin = header("Origin").filter(|o| !o.trim().is_empty());
    let (project_id, timezone) = access::authorize(claimed, record, origin.as_deref())?;
    if let Ok(limiter) = env.rate_limiter("QUERY_RATE_LIMITER") {
        if let Ok(outcome) = limiter.limit(format!("q:{key_hash}")).await {
            if !outcome.success {
                return Err(ApiError::new(429, "rate_limited", "Too many queries for this key: 120 a minute. Wait (see Retry-After), then ask again."));
            }
        }
    }
    Ok(Reader { project_id, timezone })
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// One statement on the read-only user with the per-query limits; Err as the client hears it.
async fn read(cfg: &millimetric_edge::clickhouse::ClickHouseConfig, sql: &str) -> std::result::Result<String, ApiError> {
    clickhouse_sink::read(cfg, sql).await.map_err(|(code, reason)| {
        let e = plan::refusal(code);
        if e.status >= 500 {
            console_error!("read: ClickHouse refused a query (code {code:?}): {reason}");
        }
        e
    })
}

async fn run(cfg: &millimetric_edge::clickhouse::ClickHouseConfig, st: &millimetric_edge::query::sql::Statements) -> std::result::Result<plan::Raw, ApiError> {
    let opt = |s: &Option<String>| s.clone();
    // The statements of one period go out together.
    let (rows, total_rows, total_visitors, conversion_base) = futures_util::join!(
        read(cfg, &st.rows),
        maybe(cfg, opt(&st.total_rows)),
        maybe(cfg, opt(&st.total_visitors)),
        maybe(cfg, opt(&st.conversion_base)),
    );
    Ok(plan::Raw { rows: rows?, total_rows: total_rows?, total_visitors: total_visitors?, conversion_base: conversion_base? })
}

async fn maybe(cfg: &millimetric_edge::clickhouse::ClickHouseConfig, sql: Option<String>) -> std::result::Result<Option<String>, ApiError> {
    match sql {
        Some(s) => read(cfg, &s).await.map(Some),
        None => Ok(None),
    }
}

fn store_config(env: &Env) -> std::result::Result<millimetric_edge::clickhouse::ClickHouseConfig, ApiError> {
    let cfg = config::clickhouse(env, Role::Reader);
    cfg.check_names().map_err(|e| {
        console_error!("read: {e}");
        key_lookup::unavailable("The event store")
    })?;
    Ok(cfg)
}

async fn query(mut req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let who = reader(&req, env).await?;
    let body = req.bytes().await.map_err(|_| ApiError::bad_request("unreadable_body", "The request body could not be read. Send it again."))?;
    if body.len() > 64 * 1024 {
        return Err(ApiError::new(413, "body_too_large", "A query body is at most 64 KiB."));
    }
    let cfg = store_config(env)?;
    let p = plan::plan(&body, &who.project_id, who.timezone.as_deref(), plan::Tables { database: &cfg.database, table: &cfg.table }, now_ms())?;
    let now = run(&cfg, &p.now).await?;
    let then = match &p.then {
        Some(st) => Some(run(&cfg, st).await?),
        None => None,
    };
    let answer = plan::answer(&p, &now, then.as_ref()).map_err(|e| {
        console_error!("read: {e}");
        key_lookup::unavailable("The event store")
    })?;
    Ok(http::json(200, &answer.to_string(), None))
}

async fn live(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let who = reader(&req, env).await?;
    let cfg = store_config(env)?;
    let now_s = now_ms() / 1000;
    let (current, per_minute) = realtime::statements(&cfg.database, &cfg.table, &who.project_id, now_s);
    let (a, b) = futures_util::join!(read(&cfg, &current), read(&cfg, &per_minute));
    let answer = realtime::answer(&a?, &b?, now_s).map_err(|e| {
        console_error!("read: {e}");
        key_lookup::unavailable("The event store")
    })?;
    Ok(http::json(200, &answer.to_string(), None))
}
