//! The edge Worker: thin adapters from workerd's requests, queues, cron and bindings to the
//! pure core (millimetric-core). Nothing here decides anything the core can decide.

mod admin;
mod audit;
mod collect;
mod compat;
mod consumer;
mod dead_letters;
mod erasures;
mod exports;
mod geo;
mod group_commit;
mod key_limiter;
mod keys_admin;
mod projects_admin;
mod quota;
mod retention_job;
mod rollup_job;
mod row_queue;
mod usage_job;
mod visitors;
mod warm_up;
mod writer;

// Shared with the read Worker (workers/adapters).
use millimetric_adapters::{clickhouse_sink, config, http, key_lookup};
use millimetric_core::monitor::report::Kind;
use worker::*;

/// Runs once when the isolate starts, before its first request.
#[event(start)]
fn start() {
    // The log line as before, and a report to the error monitor (never the message).
    millimetric_adapters::monitor::install_panic_hook();
    // Compile the ingest path now rather than inside the first request (see warm_up.rs).
    // Its result is of no use here: a failure would show in the tests, not in production.
    let _ = millimetric_core::ingest::warm_up::warm_up();
    warm_up::routes();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = req.path();
    millimetric_adapters::meter::invoked(&metered_route(&path));
    millimetric_adapters::monitor::arm(&env, &ctx, &path);
    let answer = route(req, &env).await;
    if let Some(flush) = millimetric_adapters::usage::flush_later(&env) {
        ctx.wait_until(flush);
    }
    if let Some(check) = quota::check_later(&env) {
        ctx.wait_until(check);
    }
    millimetric_adapters::monitor::watch(&env, &ctx, &path, answer).await
}

/// The route an invocation is counted under (millimetric_adapters::meter): bounded names only.
fn metered_route(path: &str) -> String {
    match path {
        "/collect" | "/health" => format!("fetch {path}"),
        p if p.starts_with("/admin/") => "fetch /admin".into(),
        p => format!("fetch {}", millimetric_core::compat::route(p).map_or("other", |e| e.name())),
    }
}

/// Every endpoint; `fetch` and the start-up warm-up both come in here.
async fn route(req: Request, env: &Env) -> Result<Response> {
    let path = req.path();
    // Every admin request, whatever its path, counts against the per-address admin limit
    // before its token is checked (so no admin endpoint is an unlimited token oracle).
    if path.starts_with("/admin/") {
        if let Some(refused) = admin::limit_admin(&req, env).await {
            return Ok(refused);
        }
    }
    match (req.method(), path.as_str()) {
        (Method::Post, "/collect") => collect::handle(req, env).await,
        (Method::Options, "/collect") => Ok(http::preflight(&req)),
        (_, "/collect") => Ok(http::error(
            &millimetric_core::error::ApiError::method_not_allowed("POST, OPTIONS", "Send events with POST /collect."),
            None,
        )),
        (Method::Get | Method::Head, "/health") => Ok(http::json(200, r#"{"status":"ok"}"#, None)),
        // Local development only, and only when asked for: a panic, to test its report.
        (Method::Get, "/__test/panic")
            if config::is_local_development(env) && config::var(env, "MM_TEST_PANIC").as_deref() == Some("1") =>
        {
            panic!("a test panic (it may quote input: {})", req.url().map(|u| u.to_string()).unwrap_or_default())
        }
        (Method::Get, "/admin/dead-letters") => dead_letters::list(req, env).await,
        (Method::Post, "/admin/dead-letters/replay") => dead_letters::replay(req, env).await,
        (Method::Get, "/v1/audit") => audit::list(req, env).await,
        (_, p) if p == "/v1/exports" || p.starts_with("/v1/exports/") => {
            let rest = p["/v1/exports".len()..].to_string();
            exports::handle(req, env, &rest).await
        }
        (_, p) if p.starts_with("/admin/projects/") => {
            let rest = p["/admin/projects/".len()..].to_string();
            projects_admin::handle(req, env, &rest).await
        }
        (_, p) if p == "/admin/keys" || p.starts_with("/admin/keys/") => {
            let rest = p["/admin/keys".len()..].to_string();
            keys_admin::handle(req, env, &rest).await
        }
        (Method::Get, "/admin/config-check") => Ok(admin::config_check(&req, env)),
        (Method::Get, "/admin/meter") => Ok(admin::meter(&req, env)),
        (Method::Get, "/admin/usage") => usage_job::admin_view(req, env).await,
        // Segment's, PostHog's and Plausible's own paths, for their SDKs.
        (Method::Options, p) if millimetric_core::compat::route(p).is_some() => Ok(http::preflight(&req)),
        (_, p) if millimetric_core::compat::route(p).is_some() => {
            let endpoint = millimetric_core::compat::route(p).expect("matched just above");
            compat::handle(req, env, endpoint).await
        }
        _ => match millimetric_core::privacy::visitors::parse_path(&path) {
            Some((_, Err(e))) => Ok(http::error(&e, None)),
            Some((action @ millimetric_core::privacy::visitors::Action::Export, Ok(id))) if req.method() == Method::Get => {
                visitors::handle(req, env, action, id).await
            }
            Some((action @ millimetric_core::privacy::visitors::Action::Erase, Ok(id))) if req.method() == Method::Delete => {
                visitors::handle(req, env, action, id).await
            }
            Some((action, _)) => Ok(http::error(
                &millimetric_core::error::ApiError::method_not_allowed(
                    if action == millimetric_core::privacy::visitors::Action::Export { "GET" } else { "DELETE" },
                    "Export with GET /visitors/{mm_aid}/events; erase with DELETE /visitors/{mm_aid}.",
                ),
                None,
            )),
            None => Ok(http::error(&elsewhere(&req.method(), &path), None)),
        },
    }
}

/// The paths answered for one method only: another method on one of them is a 405 naming it.
const ONE_METHOD: [(&str, Method, &str); 7] = [
    ("/health", Method::Get, "GET, HEAD"),
    ("/v1/audit", Method::Get, "GET"),
    ("/admin/dead-letters", Method::Get, "GET"),
    ("/admin/dead-letters/replay", Method::Post, "POST"),
    ("/admin/config-check", Method::Get, "GET"),
    ("/admin/meter", Method::Get, "GET"),
    ("/admin/usage", Method::Get, "GET"),
];

/// The answer for a request no route took: a 405 on a known path, else a 404.
fn elsewhere(method: &Method, path: &str) -> millimetric_core::error::ApiError {
    use millimetric_core::error::ApiError;
    match ONE_METHOD.iter().find(|(p, m, _)| *p == path && m != method) {
        Some((p, m, allow)) => ApiError::method_not_allowed(allow, format!("Use {m} {p}.")),
        None => ApiError::new(404, "not_found", "No such endpoint. Events go to POST /collect."),
    }
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, ctx: Context) -> Result<()> {
    // Which queue, decided once: the route reports name, and the consumer it goes to.
    let queue_name = batch.queue();
    let route = if queue_name == config::export_queue_name(&env) {
        "queue:exports"
    } else if queue_name == config::dead_letter_queue_name(&env) {
        "queue:dead_letters"
    } else {
        "queue:events"
    };
    millimetric_adapters::monitor::arm(&env, &ctx, route);
    millimetric_adapters::meter::invoked(route);
    match route {
        "queue:exports" => {
            let done = exports::consume(batch, &env).await;
            // A finished export is counted in usage: its flush, as a request's would be.
            if let Some(flush) = millimetric_adapters::usage::flush_later(&env) {
                ctx.wait_until(flush);
            }
            done
        }
        "queue:dead_letters" => {
            let kept = dead_letters::consume(batch, &env).await?;
            if kept > 0 {
                if let Some(send) = millimetric_adapters::monitor::report(&env, Kind::DeadLetter, "dead_lettered", "queue:events", kept) {
                    ctx.wait_until(send);
                }
            }
            Ok(())
        }
        _ => {
            let done = consumer::consume(batch, &env, &ctx).await;
            for send in millimetric_adapters::monitor::pending(&env) {
                ctx.wait_until(send);
            }
            done
        }
    }
}

/// The Cron Trigger (wrangler.toml `[triggers]`): once a day, delete again what recent
/// erasures deleted (for events that were still queued), fold yesterday into the aggregates
/// (before retention, so a day is rolled up before its raw events can expire), snapshot the
/// last days' usage, drop raw
/// events past retention (dead letters' too), then carry out project closures that are due and re-apply recent
/// project deletions.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    // Erasures first, so events of an erased visitor that arrived since are mostly not rolled
    // up (the deletes are mutations, applied shortly after: not a guarantee).
    millimetric_adapters::meter::invoked("scheduled");
    erasures::reapply(&env).await;
    rollup_job::run(&env, event.schedule()).await;
    // Usage before retention too: a day's count is taken while its raw events are all there.
    usage_job::run(&env, event.schedule()).await;
    retention_job::run(&env, event.schedule()).await;
    match dead_letters::expire(&env).await {
        Ok(0) => {}
        Ok(n) => console_log!("retention: {n} dead letter(s) held rows past their window"),
        Err(e) => console_error!("retention: the dead letters: {}", e.message),
    }
    // Deleted projects last: a rollup run after their deletes (mutations, applied in the
    // background) could fold their not-yet-deleted events into new aggregate rows.
    projects_admin::run_due(&env).await;
    // Exports past their week: parts and records deleted.
    exports::expire(&env).await;
    for send in millimetric_adapters::monitor::pending(&env) {
        ctx.wait_until(send);
    }
}
