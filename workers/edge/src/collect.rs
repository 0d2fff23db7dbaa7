//! `POST /collect`: decode, authenticate, validate, enrich, store. Answers 202 once the rows
//! are in ClickHouse or, when it fails or is slow, on the queue (group_commit).

use super::key_lookup::{self, unavailable};
use super::{config, http};
use millimetric_adapters::{body, usage};
use millimetric_core::config_check::BenchStop;
use millimetric_core::enrich::geo::Geo;
use millimetric_core::error::ApiError;
use millimetric_core::ingest::event::{self, LIMITS};
use millimetric_core::ingest::pipeline::{self, RequestContext};
use millimetric_core::keys::auth::Route;
use millimetric_core::keys::KeyKind;
use millimetric_core::rate_limit;
use millimetric_core::usage::Counter;
use serde::Serialize;
use std::time::Duration;
use worker::*;

#[derive(Serialize)]
struct Rejected {
    index: usize,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
pub(crate) struct Accepted {
    status: &'static str,
    accepted: usize,
    ids: Vec<String>,
    rejected: Vec<Rejected>,
}

impl Accepted {
    /// The answer of a request bench/load cut short (local development only: `config::bench_stop`).
    fn for_bench(events: usize) -> Self {
        Accepted { status: "accepted", accepted: events, ids: Vec::new(), rejected: Vec::new() }
    }
}

/// Why a request was refused: the error, and for 429 the wait to put in Retry-After.
pub(crate) struct Refusal {
    pub error: ApiError,
    pub retry_after_s: Option<u32>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal { error, retry_after_s: None }
    }
}

/// Whose request it turned out to be, once its key was known: the CORS origin to answer with,
/// and the project and event count a refusal is counted against (usage). And the page's
/// `Origin`, which a refusal answers to before any key is known.
pub(crate) struct Seen {
    pub cors: Option<String>,
    pub project: Option<(String, usize)>,
    origin: Option<String>,
    /// Whether the key was known (authenticated): a refusal before that counts against the
    /// client's address (`rate_limit::unkeyed`).
    key_known: bool,
}

impl Seen {
    pub fn of(req: &Request) -> Seen {
        Seen { cors: None, project: None, origin: header(req, "Origin"), key_known: false }
    }
}

/// An address that sent too many requests without a key lately is refused before its body is
/// read (`rate_limit::unkeyed`), whatever the protocol.
pub(crate) fn refused_before_the_body(req: &Request, env: &Env) -> Option<Refusal> {
    let wait = key_lookup::refused_before_the_body(env, req)?;
    Some(Refusal { error: rate_limit::too_many_requests("client address", wait), retry_after_s: Some(wait) })
}

/// A refusal made before the key was known counts against the client's address.
pub(crate) async fn count_if_unkeyed<T>(req: &Request, env: &Env, seen: &Seen, answer: &std::result::Result<T, Refusal>) {
    if let Err(r) = answer {
        if !seen.key_known && r.retry_after_s.is_none() && rate_limit::unkeyed::counts_against_address(&r.error) {
            key_lookup::count_unkeyed_refusal(env, req).await;
        }
    }
}

/// How a way in differs from `/collect`: the route its rows and usage name, its bounds, and
/// whether a browser key may send a batch (posthog-js batches; our snippet never does).
pub(crate) struct Way {
    pub route: &'static str,
    pub limits: &'static event::Limits,
    pub browser_batches: bool,
}

const COLLECT: Way = Way { route: "collect", limits: &LIMITS, browser_batches: false };

pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let mut seen = Seen::of(&req);
    let answer = match refused_before_the_body(&req, env) {
        Some(refused) => Err(refused),
        None => ingest(&mut req, env, &mut seen).await,
    };
    count_if_unkeyed(&req, env, &seen, &answer).await;
    Ok(respond(answer.map(|a| (202, serde_json::to_string(&a).unwrap_or_default())), &seen))
}

/// The answer to an ingest request: its success as given, or the refusal (counted in usage
/// against the project, once its key was known).
pub(crate) fn respond(answer: std::result::Result<(u16, String), Refusal>, seen: &Seen) -> Response {
    let cors = seen.cors.as_deref();
    let (error, retry_after_s) = match answer {
        Ok((status, body)) => return http::json(status, &body, cors),
        Err(Refusal { error, retry_after_s }) => (error, retry_after_s),
    };
    if let Some((project, events)) = &seen.project {
        usage::count(project, Counter::Refused, error.code, *events as u64);
    }
    // A refusal before the key was known (no key, an unknown or revoked one, the per-address
    // limit, a body that does not read) is readable by the page too: a browser SDK then sees
    // the status and drops what a 4xx refuses, instead of a network error it retries. The
    // answer holds nothing of any project.
    let cors = cors.or(seen.origin.as_deref());
    if let Some(wait) = retry_after_s {
        return http::rate_limited(&error, wait, cors);
    }
    if error.status >= 500 {
        console_error!("collect: {error}");
    }
    http::error(&error, cors)
}

pub(crate) fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

async fn ingest(req: &mut Request, env: &Env, seen: &mut Seen) -> std::result::Result<Accepted, Refusal> {
    event::check_content_type(header(req, "Content-Type").as_deref())?;
    let encoding = event::check_content_encoding(header(req, "Content-Encoding").as_deref())?;
    let raw = body::read_capped(req, &LIMITS).await?;
    let json = event::decode_body(&raw, encoding, &LIMITS)?;
    let envelope = event::parse_envelope(&json, &LIMITS)?;

    // The key (a Bearer token, else the body's `key`), the per-address limit, the key store.
    let caller = millimetric_adapters::auth::authenticate(req, env, Route::Ingest, envelope.key.as_deref()).await?;
    if config::bench_stop(env) == Some(BenchStop::Auth) {
        return Ok(Accepted::for_bench(envelope.events.len()));
    }
    let events = envelope.events.into_iter().map(Ok).collect();
    accept(req, env, seen, caller, events, envelope.is_batch, &COLLECT).await
}

/// Events of an authenticated caller, each still `/collect` JSON (or already refused, by a
/// vendor protocol's translation): the limits, the pipeline to rows, and the queue. Every way
/// in ends here.
pub(crate) async fn accept(
    req: &Request,
    env: &Env,
    seen: &mut Seen,
    caller: millimetric_adapters::auth::Caller,
    events: Vec<std::result::Result<serde_json::Value, ApiError>>,
    is_batch: bool,
    way: &Way,
) -> std::result::Result<Accepted, Refusal> {
    let (principal, key_hash) = (caller.principal, caller.key_hash);
    seen.key_known = true;
    seen.cors = principal.cors_origin.clone();
    seen.project = Some((principal.project_id.clone(), events.len()));

    // A browser key batches only on a vendor's route (its SDK's backlog), a bounded batch whose
    // every event counts against the address's limit, as the per-key limit counts each event.
    if let Some(refused) = rate_limit::browser_batch_refusal(principal.kind, is_batch, events.len(), way.browser_batches) {
        return Err(refused.into());
    }
    let more_units = rate_limit::ip_units(principal.kind, events.len()) - 1;
    if let Some(wait) =
        millimetric_adapters::key_lookup::ip_refusal_for_more(env, header(req, "CF-Connecting-IP").as_deref(), more_units).await?
    {
        return Err(Refusal { error: rate_limit::too_many("client address", wait), retry_after_s: Some(wait) });
    }

    // A capped project past its monthly quota (the batch writer sets the flag).
    if let Some(wait) = super::quota::refusal(env, &principal.project_id).await {
        return Err(Refusal { error: millimetric_core::usage::quota::exceeded(), retry_after_s: Some(wait) });
    }
    // Per key, with the limit from the key's record, counted in events.
    let limit = principal.events_per_minute.unwrap_or_else(|| rate_limit::default_events_per_minute(principal.kind));
    if let Some(refused) = rate_limit::over_key_limit(events.len(), limit) {
        return Err(refused.into());
    }
    if let Some(wait) = super::key_limiter::check(env, &key_hash, events.len() as u64, limit).await {
        return Err(Refusal { error: rate_limit::too_many("key", wait), retry_after_s: Some(wait) });
    }

    if config::bench_stop(env) == Some(BenchStop::Limits) {
        return Ok(Accepted::for_bench(events.len()));
    }
    let ctx = RequestContext {
        received_ms: Date::now().as_millis() as i64,
        user_agent: header(req, "User-Agent"),
        edge_geo: edge_geo(req),
        id_secret: config::id_hash_secret(env),
    };
    // Forwarded visitor IPs need the geo database; browser events use the edge's geo.
    let needs_geo = principal.kind == KeyKind::Secret && events.iter().flatten().any(|e| e.get("ip").is_some_and(|ip| !ip.is_null()));
    let geo_db = if needs_geo { super::geo::database(env).await } else { None };
    let lookup = |ip| geo_db.as_ref().and_then(|db| db.lookup(ip));
    let mut rows = Vec::new();
    let mut refused: Vec<(usize, ApiError)> = Vec::new();
    let total = events.len();
    for (index, raw_event) in events.into_iter().enumerate() {
        let result = raw_event
            .and_then(|raw| event::validate_event(raw, principal.kind == KeyKind::Secret, way.limits))
            .and_then(|ev| pipeline::build_row(&principal, ev, &ctx, &lookup, &mut millimetric_adapters::random::uuid));
        match result {
            Ok(mut row) => {
                row.ingest_route = way.route.into();
                rows.push(row)
            }
            Err(e) => refused.push((index, e)),
        }
    }
    // Our own failure (a 5xx: a deployment without ID_HASH_SECRET) refuses the whole request,
    // so the client sends it again once that is fixed: no event is dropped for it.
    if let Some((_, e)) = refused.iter().find(|(_, e)| e.status >= 500) {
        return Err(e.clone().into());
    }
    for (_, e) in &refused {
        usage::count(&principal.project_id, Counter::Refused, e.code, 1);
    }
    if rows.is_empty() {
        seen.project = None; // each rejected event is counted above, by its own code
        if total == 1 && !is_batch {
            let (_, e) = refused.pop().expect("one event, refused");
            return Err(e.into()); // with its own status (400, or 413 for an event too large)
        }
    }
    let rejected: Vec<Rejected> = refused.into_iter().map(|(index, e)| Rejected { index, code: e.code, message: e.message }).collect();
    if rows.is_empty() {
        let detail = serde_json::to_string(&rejected).unwrap_or_default();
        return Err(ApiError::bad_request(
            "all_events_rejected",
            format!("No event in the batch was valid; fix them and resend: {detail}"),
        )
        .into());
    }
    // From here a refusal (the queue down) is of the rows only: the rejected are counted above.
    seen.project = Some((principal.project_id.clone(), rows.len()));
    let ids: Vec<String> = rows.iter().map(|r| r.event_id.clone()).collect();
    if config::bench_stop(env) == Some(BenchStop::Rows) {
        return Ok(Accepted::for_bench(rows.len()));
    }
    let window = Duration::from_millis(config::var(env, "QUEUE_GROUP_COMMIT_MS").and_then(|v| v.parse().ok()).unwrap_or(5));
    let started = Date::now().as_millis();
    let written = super::group_commit::enqueue(env, rows, window).await;
    // How long the request waited for its write (bench/load reads it from the meter).
    millimetric_adapters::meter::waited("collect.write", Date::now().as_millis().saturating_sub(started));
    written.map_err(|_| unavailable("The event queue"))?;
    Ok(Accepted { status: "accepted", accepted: ids.len(), ids, rejected })
}

fn edge_geo(req: &Request) -> Geo {
    match req.cf() {
        Some(cf) => Geo::new(cf.country().as_deref(), cf.region().as_deref(), cf.city().as_deref()),
        None => Geo::default(),
    }
}
