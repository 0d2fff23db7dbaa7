//! The read Worker: `POST /v1/query` (the Stats API), `POST /v1/funnel`, `POST /v1/attribution`, `POST /v1/retention`, `POST /v1/paths`, `GET /v1/realtime`, `GET /v1/usage` and `POST /mcp` (the
//! MCP server for AI agents), for a project's `rk_live_` or `sk_live_` key. A thin adapter: the
//! core checks the key's kind and the body, plans the SQL and assembles the answer
//! (millimetric_core::query), and frames MCP (millimetric_core::mcp); this runs it.

use millimetric_adapters::{auth, body, clickhouse_sink, config, http, key_lookup, usage};
use millimetric_core::conversions;
use millimetric_core::error::ApiError;
use millimetric_core::keys::auth::Route;
use millimetric_core::mcp::{protocol, tools};
use millimetric_core::monitor::report::Kind;
use millimetric_core::query::{aggregates, events, plan, realtime};
use millimetric_core::storage::clickhouse::Role;
use millimetric_core::usage::sql::Scope;
use millimetric_core::usage::{quota, report, Counter};
use serde_json::Value;
use worker::*;

#[event(start)]
fn start() {
    // The log line as before, and a report to the error monitor (never the message).
    millimetric_adapters::monitor::install_panic_hook();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = req.path();
    millimetric_adapters::monitor::arm(&env, &ctx, &path);
    let answer = route(req, &env).await;
    if let Some(flush) = millimetric_adapters::usage::flush_later(&env) {
        ctx.wait_until(flush);
    }
    millimetric_adapters::monitor::watch(&env, &ctx, &path, answer).await
}

async fn route(req: Request, env: &Env) -> Result<Response> {
    let path = req.path();
    let answer = match (req.method(), path.as_str(), conversions::Kind::from_path(&path)) {
        (Method::Post, _, Some(kind)) => conversion_query(req, env, kind).await,
        (_, _, Some(_)) => Err(ApiError::method_not_allowed("POST", format!("Ask with POST {path}."))),
        (Method::Post, "/v1/query", None) => query(req, env).await,
        (Method::Get, "/v1/realtime", None) => live(req, env).await,
        (Method::Get, "/v1/usage", None) => usage(req, env).await,
        (Method::Post, "/mcp", None) => return Ok(mcp(req, env).await),
        (_, "/mcp", None) => return Ok(mcp_method_not_allowed()),
        (Method::Get | Method::Head, "/health", None) => return Ok(http::json(200, r#"{"status":"ok"}"#, None)),
        (_, "/health", None) => Err(ApiError::method_not_allowed("GET, HEAD", "Ask with GET /health.")),
        (_, "/v1/query", None) => Err(ApiError::method_not_allowed("POST", "Send queries with POST /v1/query.")),
        (_, "/v1/realtime", None) => Err(ApiError::method_not_allowed("GET", "Ask with GET /v1/realtime.")),
        (_, "/v1/usage", None) => Err(ApiError::method_not_allowed("GET", "Ask with GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD.")),
        _ => Err(ApiError::new(404, "not_found", "No such endpoint. Queries go to POST /v1/query.")),
    };
    Ok(match answer {
        Ok(r) => r,
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
    key_hash: String,
}

/// The key's project, after the per-IP check (keys the isolate does not know), the record,
/// and the key's query rate.
async fn reader(req: &Request, env: &Env) -> std::result::Result<Reader, ApiError> {
    let who = authenticate(req, env, Route::Query).await?;
    charge(env, &who.key_hash).await?;
    Ok(who)
}

/// The key's project, without counting a query against its rate: the one authentication
/// path (millimetric_adapters::auth) for the read routes (`Route::Query`, `Route::Mcp`).
async fn authenticate(req: &Request, env: &Env, route: Route) -> std::result::Result<Reader, ApiError> {
    let caller = auth::authenticate(req, env, route, None).await?;
    Ok(Reader { project_id: caller.principal.project_id, timezone: caller.principal.timezone, key_hash: caller.key_hash })
}

/// One query against the key's rate: 120 a minute.
async fn charge(env: &Env, key_hash: &str) -> std::result::Result<(), ApiError> {
    if let Ok(limiter) = env.rate_limiter("QUERY_RATE_LIMITER") {
        if let Ok(outcome) = limiter.limit(format!("q:{key_hash}")).await {
            if !outcome.success {
                return Err(ApiError::new(
                    429,
                    "rate_limited",
                    "Too many queries for this key: 120 a minute. Wait (see Retry-After), then ask again.",
                ));
            }
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// One statement on the read-only user with the per-query limits; Err as the client hears it.
async fn read(cfg: &millimetric_core::storage::clickhouse::ClickHouseConfig, sql: &str) -> std::result::Result<String, ApiError> {
    clickhouse_sink::read(cfg, sql).await.map_err(|(code, reason)| {
        let e = plan::refusal(code, &reason);
        // A zone the server lacks is the client's to change, but may be the server's zone data.
        if e.status >= 500 || e.code == "invalid_timezone" {
            console_error!("read: ClickHouse refused a query (code {code:?}): {reason}");
        }
        e
    })
}

async fn run(
    cfg: &millimetric_core::storage::clickhouse::ClickHouseConfig,
    st: &millimetric_core::query::sql::Statements,
) -> std::result::Result<plan::Raw, ApiError> {
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

async fn maybe(
    cfg: &millimetric_core::storage::clickhouse::ClickHouseConfig,
    sql: Option<String>,
) -> std::result::Result<Option<String>, ApiError> {
    match sql {
        Some(s) => read(cfg, &s).await.map(Some),
        None => Ok(None),
    }
}

fn store_config(env: &Env) -> std::result::Result<millimetric_core::storage::clickhouse::ClickHouseConfig, ApiError> {
    let cfg = config::clickhouse(env, Role::Reader);
    cfg.check_names().map_err(|e| {
        console_error!("read: {e}");
        key_lookup::unavailable("The event store")
    })?;
    Ok(cfg)
}

/// A query's or MCP message's body, at most MAX_BODY, never buffered past it.
async fn body_of(req: &mut Request) -> std::result::Result<Vec<u8>, ApiError> {
    let limits = millimetric_core::ingest::event::Limits { max_body_bytes: MAX_BODY, ..millimetric_core::ingest::event::LIMITS };
    body::read_capped(req, &limits).await.map_err(|e| match e.status {
        413 => ApiError::new(413, "body_too_large", "A query body is at most 64 KiB."),
        _ => e,
    })
}

async fn query(mut req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let who = reader(&req, env).await?;
    let body = body_of(&mut req).await?;
    let answer = run_query(env, &who, &body).await?;
    usage::count(&who.project_id, Counter::Query, "stats", 1);
    Ok(http::json(200, &answer.to_string(), None))
}

/// `POST /v1/funnel`, `/v1/attribution`, `/v1/retention`, `/v1/paths` (millimetric_core::conversions).
async fn conversion_query(mut req: Request, env: &Env, kind: conversions::Kind) -> std::result::Result<Response, ApiError> {
    let who = reader(&req, env).await?;
    let body = body_of(&mut req).await?;
    let answer = run_conversion(env, &who, kind, &body).await?;
    usage::count(&who.project_id, Counter::Query, kind.name(), 1);
    Ok(http::json(200, &answer.to_string(), None))
}

/// One conversion query's body, for the key's project, to its answer: its endpoint and its MCP
/// tool both come through here.
async fn run_conversion(env: &Env, who: &Reader, kind: conversions::Kind, body: &[u8]) -> std::result::Result<Value, ApiError> {
    let cfg = store_config(env)?;
    let tables = plan::Tables { database: &cfg.database, table: &cfg.table };
    let p = conversions::plan(kind, body, &who.project_id, who.timezone.as_deref(), tables, now_ms())?;
    let raw = read(&cfg, p.sql()).await?;
    p.answer(&raw).map_err(|e| {
        console_error!("read: {e}");
        key_lookup::unavailable("The event store")
    })
}

const MAX_BODY: usize = 64 * 1024;

/// One Stats API query body, for the key's project, to its answer: `POST /v1/query` and the
/// MCP tools both come through here.
async fn run_query(env: &Env, who: &Reader, body: &[u8]) -> std::result::Result<Value, ApiError> {
    let cfg = store_config(env)?;
    let mut p =
        plan::plan(body, &who.project_id, who.timezone.as_deref(), plan::Tables { database: &cfg.database, table: &cfg.table }, now_ms())?;
    if p.wants_frontier() {
        // How far the rollup has got: aggregates before it, raw events after.
        let cut = aggregates::parse_frontier(&read(&cfg, &aggregates::frontier_sql(&cfg.database)).await?).map_err(|e| {
            console_error!("read: {e}");
            key_lookup::unavailable("The event store")
        })?;
        p = p.with_frontier(cut)?;
    }
    let now = run(&cfg, &p.now).await?;
    let then = match &p.then {
        Some(st) => Some(run(&cfg, st).await?),
        None => None,
    };
    if let Some(e) = plan::refused_answer(&p, &now, then.as_ref()) {
        return Err(e);
    }
    plan::answer(&p, &now, then.as_ref()).map_err(|e| {
        console_error!("read: {e}");
        key_lookup::unavailable("The event store")
    })
}

async fn live(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let who = reader(&req, env).await?;
    let answer = run_realtime(env, &who).await?;
    usage::count(&who.project_id, Counter::Query, "realtime", 1);
    Ok(http::json(200, &answer.to_string(), None))
}

/// `GET /v1/usage?from=&to=`: the key's project's usage per UTC day (millimetric_core::usage),
/// and where it stands against its monthly quota.
async fn usage(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let who = reader(&req, env).await?;
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    let range = report::parse_range(query.as_deref(), now_ms())?;
    let cfg = store_config(env)?;
    let unavailable = |e: String| {
        console_error!("read: usage: {e}");
        key_lookup::unavailable("The event store")
    };
    let gathered = usage::gather(&cfg, usage::Limits::PerQuery, Scope::Project(&who.project_id), range).await.map_err(unavailable)?;
    let mut answer = gathered.project_json(&who.project_id, range);
    let q = usage::quota_of(env, &who.project_id).await.map_err(unavailable)?;
    // This month's use from the same answer when the range covers the month so far.
    let (first, _, month) = quota::month(now_ms());
    let today = report::parse_range(None, now_ms())?.to;
    let used = if range.from <= first && range.to >= today {
        gathered.billable_between(&who.project_id, first, today)
    } else {
        usage::used_this_month(&cfg, &who.project_id, now_ms()).await.map_err(unavailable)?
    };
    answer["quota"] = serde_json::to_value(quota::status(&q, used, month)).unwrap_or_default();
    Ok(http::json(200, &answer.to_string(), None))
}

async fn run_realtime(env: &Env, who: &Reader) -> std::result::Result<Value, ApiError> {
    let cfg = store_config(env)?;
    let now_s = now_ms() / 1000;
    let (current, per_minute) = realtime::statements(&cfg.database, &cfg.table, &who.project_id, now_s);
    let (a, b) = futures_util::join!(read(&cfg, &current), read(&cfg, &per_minute));
    realtime::answer(&a?, &b?, now_s).map_err(|e| {
        console_error!("read: {e}");
        key_lookup::unavailable("The event store")
    })
}

async fn run_events(env: &Env, who: &Reader, probe: &[u8]) -> std::result::Result<Value, ApiError> {
    let cfg = store_config(env)?;
    let (sql, labels, timezone) = events::plan(
        probe,
        &who.project_id,
        who.timezone.as_deref(),
        plan::Tables { database: &cfg.database, table: &cfg.table },
        now_ms(),
    )?;
    let raw = read(&cfg, &sql).await?;
    events::answer(&raw, labels, &timezone).map_err(|e| {
        console_error!("read: {e}");
        key_lookup::unavailable("The event store")
    })
}

// ---- MCP (POST /mcp): the protocol and tools are the core's (millimetric_core::mcp) ----

fn mcp_response(out: &protocol::Out) -> Response {
    match &out.body {
        Some(b) => http::json(out.status, &b.to_string(), None),
        None => Response::empty().expect("empty response").with_status(out.status),
    }
}

/// GET (the legacy standalone stream) and DELETE (legacy session end): not offered.
fn mcp_method_not_allowed() -> Response {
    let mut r = http::json(
        405,
        &protocol::error(405, None, protocol::INVALID_REQUEST, "Method Not Allowed: send MCP messages with POST /mcp.", None).text(),
        None,
    );
    let _ = r.headers_mut().set("Allow", "POST");
    r
}

/// The key's refusals, as an OAuth resource server says them (`keys::auth::challenge`), a 429
/// with `Retry-After` (as every 429 does: `http::error`).
fn mcp_refusal(e: &ApiError, req: &Request) -> Response {
    let mut r = http::error(e, None);
    let authorization = req.headers().get("Authorization").ok().flatten();
    if let Some(c) = millimetric_core::keys::auth::challenge(e, authorization.as_deref()) {
        let _ = r.headers_mut().set("WWW-Authenticate", &c);
    }
    r
}

async fn mcp(mut req: Request, env: &Env) -> Response {
    let who = match authenticate(&req, env, Route::Mcp).await {
        Ok(w) => w,
        Err(e) => return mcp_refusal(&e, &req),
    };
    let body = match body_of(&mut req).await {
        Ok(b) => b,
        Err(e) if e.status == 413 => {
            return mcp_response(&protocol::error(413, None, protocol::INVALID_REQUEST, "A message is at most 64 KiB.", None))
        }
        Err(_) => {
            return mcp_response(&protocol::error(
                400,
                None,
                protocol::PARSE_ERROR,
                "The request body could not be read. Send it again.",
                None,
            ))
        }
    };
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let step = protocol::handle(&header, &body, &tools::definitions());
    let protocol::Step::Call { id, era, name, arguments } = step else {
        let protocol::Step::Answer(out) = step else { unreachable!() };
        return mcp_response(&out);
    };
    let prepared = match tools::prepare(&name, &arguments) {
        Ok(p) => p,
        Err(r) => return mcp_response(&protocol::tool_result(&era, &id, &r)),
    };
    // Every tool but the definitions is a query against the key's rate.
    if !matches!(prepared, tools::Prepared::Explain) {
        if let Err(e) = charge(env, &who.key_hash).await {
            return mcp_refusal(&e, &req);
        }
    }
    let result = match &prepared {
        tools::Prepared::Query { body, shape } => {
            run_query(env, &who, body.to_string().as_bytes()).await.map(|a| tools::finish_query(shape, &a))
        }
        tools::Prepared::Realtime => run_realtime(env, &who).await.map(|a| tools::finish_realtime(&a)),
        tools::Prepared::ListEvents { probe } => {
            run_events(env, &who, probe.to_string().as_bytes()).await.map(|a| tools::finish_events(&a))
        }
        tools::Prepared::Conversion { kind, body } => {
            run_conversion(env, &who, *kind, body.to_string().as_bytes()).await.map(|a| tools::finish_conversion(*kind, &a))
        }
        tools::Prepared::Explain => Ok(tools::explain()),
    };
    if result.is_ok() && !matches!(prepared, tools::Prepared::Explain) {
        usage::count(&who.project_id, Counter::Query, "mcp", 1);
    }
    // A failure on the server's side is a tool error in a 200 to the agent, and to the monitor
    // the 5xx it is.
    match &result {
        Err(e) if e.status >= 500 => millimetric_adapters::monitor::report_later(env, Kind::ServerError, e.code, "/mcp"),
        _ => {}
    }
    let result = result.unwrap_or_else(|e| tools::refused(&e));
    mcp_response(&protocol::tool_result(&era, &id, &result))
}
