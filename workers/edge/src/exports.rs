//! A project's whole export (millimetric_core::privacy::exports decides what and in which
//! steps; this runs the steps and serves the API). The project's sk_live_ key:
//!
//! - `POST /v1/exports` starts one (202, with its id); `GET /v1/exports` lists them
//! - `GET /v1/exports/{id}` its progress and parts
//! - `POST /v1/exports/{id}/resume` runs its current step again (after a failure)
//! - `GET /v1/exports/{id}/parts/{name}` downloads a part (gzip)
//!
//! and the admin token: `POST` / `GET /admin/projects/{id}/exports`. Each step is a message on
//! the exports queue; a step streams one part from ClickHouse through gzip into R2 (`EXPORTS`),
//! so memory holds one part, never the project. Starting, resuming and downloading are in the
//! project's audit log; a finished export counts in usage.

use super::key_lookup::unavailable;
use super::{clickhouse_sink, config, http, key_limiter};
use futures_util::StreamExt;
use millimetric_adapters::clickhouse_sink::Compression;
use millimetric_adapters::kv::all_keys;
use millimetric_core::error::ApiError;
use millimetric_core::keys::auth::Route;
use millimetric_core::privacy::audit;
use millimetric_core::privacy::export_part::{PartWriter, RowKey};
use millimetric_core::privacy::exports::{self, Gate, Job, Part, Status, Step, StepMessage};
use millimetric_core::storage::clickhouse::{ClickHouseConfig, Role};
use millimetric_core::usage::Counter;
use serde_json::json;
use worker::{console_error, console_log, Date, Env, Headers, Message, MessageBatch, MessageExt, Method, Request, Response};

pub const EXPORTS_QUEUE: &str = "EXPORTS_QUEUE";
const BUCKET: &str = "EXPORTS";
/// Requests a key may make to these endpoints a minute.
const REQUESTS_PER_MINUTE: u32 = 60;

type Answer = Result<Response, ApiError>;

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

fn store_down(what: &'static str) -> impl Fn(worker::Error) -> ApiError {
    move |_| unavailable(what)
}

// ---- the API ----

/// `/v1/exports...` with the project's sk_live_ key.
pub async fn handle(req: Request, env: &Env, rest: &str) -> worker::Result<Response> {
    Ok(keyed(req, env, rest).await.unwrap_or_else(|e| http::error(&e, None)))
}

async fn keyed(req: Request, env: &Env, rest: &str) -> Answer {
    let caller = millimetric_adapters::auth::authenticate(&req, env, Route::ProjectExport, None).await?;
    // A rate limit's refusal is not logged: a client retrying in a loop would write a record
    // each time, the cost the limit is there to bound.
    if let Some(wait) = key_limiter::check(env, &format!("{}/exports", caller.key_hash), 1, REQUESTS_PER_MINUTE).await {
        return Ok(http::rate_limited(&millimetric_core::rate_limit::too_many_requests("key", wait), wait, None));
    }
    let (project, by) = (caller.principal.project_id, audit::by_key(&caller.key_hash));
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (Method::Post, [""]) => start(env, &project, by).await,
        (Method::Get, [""]) => list(env, &project).await,
        (Method::Get, [id]) => Ok(json_answer(200, &load(env, &project, id).await?.to_json())),
        (Method::Post, [id, "resume"]) => resume(env, &project, id, by).await,
        (Method::Get, [id, "parts", name @ ..]) => download(env, &project, id, &name.join("/"), by).await,
        (_, shape) => Err(wrong_method(match shape {
            [""] => Some("GET, POST"),
            [_] | [_, "parts", ..] => Some("GET"),
            [_, "resume"] => Some("POST"),
            _ => None,
        })),
    }
}

/// A request no export route took: 405 with the methods its path takes, or 404 for a path
/// that is none of them.
fn wrong_method(allow: Option<&'static str>) -> ApiError {
    const ROUTES: &str = "POST or GET /v1/exports; GET /v1/exports/{id}; POST /v1/exports/{id}/resume; GET /v1/exports/{id}/parts/{name}";
    match allow {
        Some(allow) => ApiError::method_not_allowed(allow, format!("Exports: {ROUTES}.")),
        None => ApiError::new(404, "not_found", format!("No such export path. Exports: {ROUTES}.")),
    }
}

/// `POST` / `GET /admin/projects/{id}/exports` (the admin gate is the caller's).
pub async fn admin(method: Method, env: &Env, project: &str) -> Answer {
    match method {
        Method::Post => start(env, project, "admin".into()).await,
        Method::Get => list(env, project).await,
        _ => Err(ApiError::method_not_allowed("GET, POST", "Start a project's export with POST, list them with GET.")),
    }
}

fn json_answer(status: u16, v: &serde_json::Value) -> Response {
    http::json(status, &v.to_string(), None)
}

async fn audit_log(env: &Env, project: &str, by: String, outcome: String, rows: Option<u64>) {
    let record = audit::record(project, audit::Action::ProjectExport, by, now_ms(), outcome, rows);
    super::audit::write(env, &record).await;
}

async fn start(env: &Env, project: &str, by: String) -> Answer {
    let result = start_job(env, project, &by).await;
    audit_log(env, project, by, audit::outcome(&result), None).await;
    let job = result?;
    console_log!("exports: {project}: export {} started", job.id);
    Ok(json_answer(202, &job.to_json()))
}

async fn start_job(env: &Env, project: &str, by: &str) -> Result<Job, ApiError> {
    super::projects_admin::refuse_if_deleted(env, project).await?;
    let jobs = jobs_of(env, project).await?;
    if jobs.len() >= exports::MAX_JOBS {
        // 409, not 429: the wait is an export's expiry (up to 7 days), not a rate's minute.
        return Err(ApiError::new(
            409,
            "too_many_exports",
            format!("A project may have {} exports at once (each kept 7 days). Download and wait for one to expire.", exports::MAX_JOBS),
        ));
    }
    let id = millimetric_adapters::random::uuid().replace('-', "");
    let job = Job::new(&id, project, by.to_string(), now_ms());
    save(env, &job).await?;
    enqueue(env, &job).await?;
    Ok(job)
}

async fn list(env: &Env, project: &str) -> Answer {
    let jobs: Vec<serde_json::Value> = jobs_of(env, project).await?.iter().map(Job::to_json).collect();
    let objects = list_objects(env, &exports::object_prefix(project)).await.map_err(|_| unavailable("The export store"))?;
    Ok(json_answer(200, &json!({"project_id": project, "exports": jobs, "objects": objects.len()})))
}

async fn resume(env: &Env, project: &str, id: &str, by: String) -> Answer {
    let result = async {
        let job = load(env, project, id).await?;
        if job.status != Status::Done {
            enqueue(env, &job).await?;
        }
        Ok(job)
    }
    .await;
    audit_log(env, project, by, audit::outcome(&result), None).await;
    Ok(json_answer(202, &result?.to_json()))
}

async fn download(env: &Env, project: &str, id: &str, name: &str, by: String) -> Answer {
    let answer = async {
        let (rows, stream) = part_stream(env, project, id, name).await?;
        // The bytes as stored: a .gz file (NDJSON or CSV inside), never re-encoded on the way.
        let headers = Headers::new();
        let _ = headers.set("Content-Type", "application/gzip");
        let file = name.rsplit('/').next().unwrap_or(name);
        let _ = headers.set("Content-Disposition", &format!("attachment; filename=\"{file}\""));
        Ok((rows, Response::from_stream(stream).map_err(store_down("The export store"))?.with_headers(headers)))
    }
    .await;
    audit_log(env, project, by, audit::outcome(&answer), answer.as_ref().ok().map(|(rows, _)| *rows)).await;
    answer.map(|(_, response)| response)
}

/// Part `name` of export `id`: its rows and its stored bytes, as a stream.
async fn part_stream(env: &Env, project: &str, id: &str, name: &str) -> Result<(u64, worker::ByteStream), ApiError> {
    let job = load(env, project, id).await?;
    let Some(part) = job.parts.iter().find(|p| p.name == name) else {
        return Err(ApiError::new(404, "unknown_part", "This export has no part of that name: GET /v1/exports/{id} lists them."));
    };
    let bucket = env.bucket(BUCKET).map_err(store_down("The export store"))?;
    let object = bucket.get(exports::object_key(project, id, name)).execute().await.map_err(store_down("The export store"))?;
    let Some(body) = object.as_ref().and_then(|o| o.body()) else {
        return Err(ApiError::new(404, "unknown_part", "The part is gone: parts are kept 7 days. Start a new export."));
    };
    Ok((part.rows, body.stream().map_err(store_down("The export store"))?))
}

// ---- state ----

/// Export `id` of `project` (a malformed id is refused here, inside the audited part of a
/// resume or a download, like an unknown one).
async fn load(env: &Env, project: &str, id: &str) -> Result<Job, ApiError> {
    let id = exports::check_id(id)?;
    let kv = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The export log"))?;
    let job = kv.get(&exports::state_key(project, id)).json::<Job>().await.map_err(|_| unavailable("The export log"))?;
    job.filter(|j| j.project_id == project).ok_or_else(|| exports::check_id("").unwrap_err())
}

async fn save(env: &Env, job: &Job) -> Result<(), ApiError> {
    let kv = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The export log"))?;
    let value = serde_json::to_string(job).map_err(|_| unavailable("The export log"))?;
    // Weeks past the parts' own week, so the daily cron finds the job to delete its parts even
    // after some of its runs failed.
    let ttl = exports::KEEP_SECONDS + 30 * 86_400;
    let put = kv.put(&exports::state_key(&job.project_id, &job.id), value).map_err(|_| unavailable("The export log"))?;
    put.expiration_ttl(ttl).execute().await.map_err(|_| unavailable("The export log"))
}

async fn jobs_of(env: &Env, project: &str) -> Result<Vec<Job>, ApiError> {
    let kv = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The export log"))?;
    let mut jobs = Vec::new();
    for key in all_keys(&kv, &exports::state_prefix(project)).await.map_err(|_| unavailable("The export log"))? {
        if let Some(job) = kv.get(&key).json::<Job>().await.map_err(|_| unavailable("The export log"))? {
            jobs.push(job);
        }
    }
    Ok(jobs)
}

async fn enqueue(env: &Env, job: &Job) -> Result<(), ApiError> {
    enqueue_after(env, job, None).await
}

/// The job's current step as a message, delivered after `delay_s` when given.
async fn enqueue_after(env: &Env, job: &Job, delay_s: Option<u32>) -> Result<(), ApiError> {
    let queue = env.queue(EXPORTS_QUEUE).map_err(|_| unavailable("The export queue"))?;
    let body = serde_json::to_string(&StepMessage { project_id: job.project_id.clone(), id: job.id.clone(), step: job.step })
        .map_err(|_| unavailable("The export queue"))?;
    queue.send(super::row_queue::text(body, delay_s)).await.map_err(|_| unavailable("The export queue"))
}

// ---- the steps (the exports queue's consumer) ----

pub async fn consume(batch: MessageBatch<String>, env: &Env) -> worker::Result<()> {
    for m in batch.messages()? {
        match serde_json::from_str::<StepMessage>(m.body()) {
            Ok(step) => run_message(env, &m, step).await,
            Err(e) => {
                console_error!("exports: an unreadable step message, dropped: {e}");
                m.ack();
            }
        }
    }
    Ok(())
}

async fn run_message(env: &Env, m: &Message<String>, msg: StepMessage) {
    let job = match load(env, &msg.project_id, &msg.id).await {
        Ok(job) => job,
        Err(e) if e.status == 404 => return m.ack(), // deleted, or expired
        Err(_) => return m.retry(),
    };
    // Ahead of the saved state: the step before is still being saved. Behind: done already.
    if msg.step > job.step {
        return m.retry_with_options(&worker::QueueRetryOptionsBuilder::new().with_delay_seconds(2).build());
    }
    if msg.step < job.step || job.status == Status::Done {
        return m.ack();
    }
    // A project deleted meanwhile: its deletion took the parts, and no step may bring them back.
    if super::projects_admin::refuse_if_deleted(env, &job.project_id).await.is_err() {
        let _ = erase_project(env, &job.project_id).await;
        return m.ack();
    }
    // Deletions of the project's events (a visitor's erasure): one being applied holds the job
    // before it reads, one asked for after it began to read ends it; asked again after the
    // step, for one that came while it read.
    let mut next = job.clone();
    let ran = match deletions(env, &mut next).await {
        Ok(Gate::Wait) => return wait_for_deletion(env, job, m).await,
        Ok(Gate::End) => return end_for_deletion(env, &job, m).await,
        Ok(Gate::Go) => run_step(env, &mut next).await,
        Err(e) => Err(e),
    };
    // Saved only once ClickHouse said no deletion came while the step read: else the step
    // runs again (its part overwritten), or the job ends.
    if ran.is_ok() {
        match deletions(env, &mut next.clone()).await {
            Ok(Gate::Go) => {}
            Ok(_) => return end_for_deletion(env, &job, m).await,
            Err(_) => return m.retry_with_options(&worker::QueueRetryOptionsBuilder::new().with_delay_seconds(10).build()),
        }
    }
    match ran {
        Ok(()) => {
            // The next step's message before the state: if saving fails this step runs again
            // (its part overwritten), and a message that arrives early waits for the state.
            let queued = if next.status == Status::Running { enqueue(env, &next).await } else { Ok(()) };
            match queued {
                Ok(()) if save(env, &next).await.is_ok() => {
                    // Read by tests/e2e_exports.rs: memory holds one part, whatever the project.
                    console_log!(
                        "exports: {}: export {} step {} done; wasm memory {:.1} MiB",
                        next.project_id,
                        next.id,
                        job.step,
                        super::geo::wasm_memory_mib()
                    );
                    if next.status == Status::Done {
                        millimetric_adapters::usage::count(&next.project_id, Counter::Export, "project", 1);
                        console_log!(
                            "exports: {}: export {} done, {} rows in {} parts",
                            next.project_id,
                            next.id,
                            next.rows_done,
                            next.parts.len()
                        );
                    }
                    m.ack()
                }
                _ => m.retry(),
            }
        }
        Err(e) => {
            console_error!("exports: {}: export {} step {}: {e}; retried", job.project_id, job.id, job.step);
            let mut failed = job;
            failed.step_failed();
            let _ = save(env, &failed).await;
            m.retry_with_options(&worker::QueueRetryOptionsBuilder::new().with_delay_seconds(10).build());
        }
    }
}

async fn run_step(env: &Env, job: &mut Job) -> Result<(), String> {
    let cfg = config::clickhouse(env, Role::Reader);
    cfg.check_names()?;
    match job.next() {
        Step::Plan => {
            let answer =
                clickhouse_sink::select(&cfg, &exports::plan_sql(&cfg.database, &cfg.table, job)).await.map_err(|e| format!("{e:?}"))?;
            job.planned(&answer)
        }
        Step::Events { day, after, name } => {
            let sql = exports::events_sql(&cfg.database, &cfg.table, job, &day, &after);
            let (part, last, cut) = write_part(env, &cfg, &sql, job, &name, Some(exports::PART_BYTES)).await?;
            if part.rows > 0 && last.is_none() {
                return Err("ClickHouse's answer did not end with a whole event; the step runs again".into());
            }
            let full = cut || part.rows >= exports::PART_ROWS;
            job.wrote_events(part, last, full);
            Ok(())
        }
        Step::PlanAggregates => {
            let answer = clickhouse_sink::select(&cfg, &exports::aggregates_plan_sql(&cfg.database, &job.project_id))
                .await
                .map_err(|e| format!("{e:?}"))?;
            job.planned_aggregates(&answer, now_ms())
        }
        Step::Aggregates { table, first_day, last_day, name } => {
            let sql = exports::aggregates_sql(&cfg.database, table, &job.project_id, &first_day, &last_day);
            let (mut part, _, _) = write_part(env, &cfg, &sql, job, &name, None).await?;
            part.rows = part.rows.saturating_sub(1); // the header
            job.wrote_aggregates(part, now_ms());
            Ok(())
        }
        Step::Finished => Ok(()),
    }
}

/// One statement's answer, streamed through gzip into the part's object; cut at the last whole
/// line past `cut_bytes` (then the third value is true, and the rest is not read).
async fn write_part(
    env: &Env,
    cfg: &ClickHouseConfig,
    sql: &str,
    job: &Job,
    name: &str,
    cut_bytes: Option<u64>,
) -> Result<(Part, Option<RowKey>, bool), String> {
    let mut resp = clickhouse_sink::query_response(cfg, sql, Compression::Gzip).await?;
    let mut stream = resp.stream().map_err(|e| format!("ClickHouse's answer: {e}"))?;
    let mut writer = PartWriter::default();
    let mut cut = false;
    while let Some(chunk) = stream.next().await {
        writer.push(&chunk.map_err(|e| format!("ClickHouse's answer broke off: {e}"))?)?;
        if cut_bytes.is_some_and(|limit| writer.written() >= limit) {
            cut = true;
            break;
        }
    }
    let done = if cut { writer.cut()? } else { writer.finish()? };
    let bytes = done.gzipped.len() as u64;
    let bucket = env.bucket(BUCKET).map_err(|e| e.to_string())?;
    bucket.put(exports::object_key(&job.project_id, &job.id, name), done.gzipped).execute().await.map_err(|e| format!("R2: {e}"))?;
    Ok((Part { name: name.to_string(), rows: done.lines, bytes }, done.last_row, cut))
}

// ---- expiry and deletion ----

async fn list_objects(env: &Env, prefix: &str) -> worker::Result<Vec<String>> {
    let bucket = env.bucket(BUCKET)?;
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut list = bucket.list().prefix(prefix);
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await?;
        keys.extend(page.objects().iter().map(|o| o.key()));
        match (page.truncated(), page.cursor()) {
            (true, Some(c)) => cursor = Some(c),
            _ => return Ok(keys),
        }
    }
}

/// Deletes every object under `prefix`; how many.
pub async fn delete_objects(env: &Env, prefix: &str) -> worker::Result<usize> {
    let keys = list_objects(env, prefix).await?;
    let bucket = env.bucket(BUCKET)?;
    for chunk in keys.chunks(1000) {
        bucket.delete_multiple(chunk.to_vec()).await?;
    }
    Ok(keys.len())
}

/// The daily cron: exports past their week lose their parts and their record.
pub async fn expire(env: &Env) {
    let now = now_ms();
    let Ok(kv) = env.kv(config::ERASURES_KV) else { return console_error!("exports: no ERASURES binding") };
    let keys = match all_keys(&kv, "export:").await {
        Ok(k) => k,
        Err(e) => return console_error!("exports: {e}"),
    };
    for key in keys {
        let Ok(Some(job)) = kv.get(&key).json::<Job>().await else { continue };
        if !job.is_expired(now) {
            continue;
        }
        match delete_job(env, &kv, &job).await {
            Ok(n) => console_log!("exports: {}: export {} expired, {n} parts deleted", job.project_id, job.id),
            Err(e) => {
                console_error!("exports: {}: export {}: its parts could not be deleted ({e}); tried again tomorrow", job.project_id, job.id)
            }
        }
    }
}

/// A job's parts, then its record: the record is how a later try (a retry, the daily expiry)
/// finds parts that could not be deleted. How many parts; Err: they stay, and so does the record.
async fn delete_job(env: &Env, kv: &worker::kv::KvStore, job: &Job) -> worker::Result<usize> {
    let parts = delete_objects(env, &exports::object_key(&job.project_id, &job.id, "")).await?;
    let _ = kv.delete(&exports::state_key(&job.project_id, &job.id)).await;
    Ok(parts)
}

/// A deletion of the project's events is being applied and the job has not begun to read: the
/// owner reads why it waits, and the step comes back in 10 s as a new message (so a long
/// deletion never runs out the queue's retries), for as long as the deletion takes.
async fn wait_for_deletion(env: &Env, mut job: Job, m: &Message<String>) {
    job.waiting_for_deletion();
    if enqueue_after(env, &job, Some(10)).await.is_err() {
        return m.retry_with_options(&worker::QueueRetryOptionsBuilder::new().with_delay_seconds(10).build());
    }
    let _ = save(env, &job).await;
    m.ack();
}

/// The export ended: the project's events were deleted after it began to read, so its parts
/// (which may hold them) and its record go.
async fn end_for_deletion(env: &Env, job: &Job, m: &Message<String>) {
    let Ok(kv) = env.kv(config::ERASURES_KV) else { return m.retry() };
    if delete_job(env, &kv, job).await.is_err() {
        return m.retry();
    }
    console_log!("exports: {}: export {} ended: its project's events were deleted after it began", job.project_id, job.id);
    m.ack();
}

/// What the project's deletions in ClickHouse mean for `job` now (`Job::deletions_gate`).
async fn deletions(env: &Env, job: &mut Job) -> Result<Gate, String> {
    let cfg = config::clickhouse(env, Role::Reader);
    cfg.check_names()?;
    let sql = exports::deletions_sql(&cfg.database, &cfg.table, &job.project_id);
    let answer = clickhouse_sink::select(&cfg, &sql).await.map_err(|e| format!("{e:?}"))?;
    job.deletions_gate(&answer)
}

/// A project's deletion: every export part and record of it. Err: the store did not answer.
pub async fn erase_project(env: &Env, project: &str) -> Result<usize, ApiError> {
    let parts = delete_objects(env, &exports::object_prefix(project)).await.map_err(|_| unavailable("The export store"))?;
    let kv = env.kv(config::ERASURES_KV).map_err(|_| unavailable("The export log"))?;
    for key in all_keys(&kv, &exports::state_prefix(project)).await.map_err(|_| unavailable("The export log"))? {
        kv.delete(&key).await.map_err(|_| unavailable("The export log"))?;
    }
    Ok(parts)
}
