//! Dead letters: the dead-letter queue's consumer keeps each dead message in KV (with its
//! reason, 30 days) and logs it. An operator holding ADMIN_TOKEN lists them a page at a time
//! (`GET /admin/dead-letters?limit=&cursor=`) and, once the cause is fixed, replays them
//! (`POST /admin/dead-letters/replay`): their rows go back on the events queue and their KV
//! entries are removed. The batch writer stores only ids not yet stored (millimetric_core::ingest::first_write),
//! so a replay run twice, or cut short between the send and the removal, stores each event once.
//! Both the listing and the replay are in the audit log of each project whose rows they touched.

use super::{config, http};
use millimetric_core::error::ApiError;
use millimetric_core::ingest::dead_letter_summary::Summary;
use millimetric_core::ingest::row::{EventRow, Failure, RowBatch};
use millimetric_core::paging;
use millimetric_core::privacy::audit::{self, Action};
use std::collections::BTreeSet;
use worker::*;

const PREFIX: &str = "dlq:";
const KEEP_SECONDS: u64 = 30 * 24 * 3600;
/// Dead letters without a summary read (and summarised) at most in one pass: the daily job runs
/// several passes in one invocation, within its ~1,000 KV operations.
const UNSUMMARISED_PER_PASS: usize = 100;

thread_local! {
    /// What this isolate last wrote of each dead letter: its summary, or None once deleted. A
    /// listing can lag writes by up to a minute, while the daily job's passes follow each other
    /// within seconds: a later pass must neither count a dead letter just summarised as one
    /// without a summary nor write it again (KV refuses a second write to a key within a second).
    static WRITTEN: std::cell::RefCell<std::collections::HashMap<String, Option<Summary>>> = Default::default();
}

fn remember(key: &str, summary: Option<Summary>) {
    WRITTEN.with(|w| {
        let mut w = w.borrow_mut();
        if w.len() >= 10_000 {
            w.clear();
        }
        w.insert(key.to_string(), summary);
    });
}

/// Keeps each dead message; how many were kept (the others are retried).
pub async fn consume(batch: MessageBatch<String>, env: &Env) -> Result<u64> {
    let kv = env.kv(config::DEAD_LETTERS_KV)?;
    let mut kept = 0;
    for m in batch.messages()? {
        // Something that is not a row batch keeps its body, as it came.
        let mut body = RowBatch::from_message(m.body()).unwrap_or_else(|reason| RowBatch::unreadable(m.body(), reason));
        let failure = body
            .failure
            .get_or_insert_with(|| Failure { code: None, reason: "retried until the queue's max_retries without being stored".into() });
        console_error!("dead letter: {} rows not stored: code {:?}: {}", body.rows.len(), failure.code, failure.reason);
        let key = format!("{PREFIX}{:013}:{}", m.timestamp().as_millis(), m.id());
        // Its summary rides along as metadata: the passes over the store read it from the listing.
        let stored = match kv.put(&key, body.to_message()).and_then(|p| p.metadata(Summary::of(&body))) {
            Ok(put) => put.expiration_ttl(KEEP_SECONDS).execute().await.map_err(Error::from),
            Err(e) => Err(Error::from(e)),
        };
        match stored {
            Ok(()) => {
                m.ack();
                kept += 1;
            }
            Err(e) => {
                // Later, and later again (up to 5 minutes apart, about 7.7 hours in all, as long
                // as the events queue retries): a KV outage lasts longer than ten retries at
                // once, after which the queue deleted the message and its rows with it
                // (wrangler.toml: max_retries).
                console_error!("dead letter: could not keep it in KV ({e}); retrying later");
                let age = super::consumer::age_seconds(&m);
                super::consumer::retry_in(&m, millimetric_core::storage::clickhouse::retry_delay_seconds(age));
            }
        }
    }
    Ok(kept)
}

fn fail(e: &ApiError) -> Result<Response> {
    Ok(http::error(e, None))
}

/// A dead letter as KV lists it: its key, its batch, and when KV drops it (unix seconds).
type Listed = (String, RowBatch, Option<u64>);

/// One page of dead letters from KV in key order (oldest first), and the cursor of the next
/// page (None on the last).
async fn page(env: &Env, page: &paging::Page) -> std::result::Result<(Vec<Listed>, Option<String>), ApiError> {
    let unavailable = || super::key_lookup::unavailable("The dead-letter store");
    let kv = env.kv(config::DEAD_LETTERS_KV).map_err(|_| unavailable())?;
    let mut list = kv.list().prefix(PREFIX.to_string()).limit(page.limit);
    if let Some(c) = &page.cursor {
        list = list.cursor(c.clone());
    }
    let listed = list.execute().await.map_err(|_| unavailable())?;
    let mut items = Vec::new();
    for k in listed.keys {
        let Some(text) = kv.get(&k.name).text().await.map_err(|_| unavailable())? else { continue };
        let batch = RowBatch::from_message(&text).unwrap_or_else(|reason| RowBatch::unreadable(&text, reason));
        items.push((k.name, batch, k.expiration));
    }
    Ok((items, if listed.list_complete { None } else { listed.cursor }))
}

/// The admin gate, then one page of dead letters (`?limit=&cursor=`, `default` and `max` a
/// page): what both admin routes start with. Err: the answer to give instead.
async fn admin_page(req: &Request, env: &Env, default: u64, max: u64) -> std::result::Result<(Vec<Listed>, Option<String>), Response> {
    if let Some(refused) = super::admin::refuse_unless_admin(req, env) {
        return Err(refused);
    }
    let url = req.url().map_err(|_| http::error(&ApiError::bad_request("invalid_url", "The request URL could not be read."), None))?;
    let p = paging::parse_page(url.query(), default, max).map_err(|e| http::error(&e, None))?;
    page(env, &p).await.map_err(|e| http::error(&e, None))
}

pub async fn list(req: Request, env: &Env) -> Result<Response> {
    let (items, cursor) = match admin_page(&req, env, 20, 100).await {
        Ok(x) => x,
        Err(answer) => return Ok(answer),
    };
    // Each project whose rows are shown sees it in its audit log, those an unreadable body names too.
    let shown: Vec<String> = items.iter().flat_map(|(_, b, _)| b.projects_shown()).collect();
    audit_projects(env, shown.iter().map(String::as_str), Action::DeadLetterRead).await;
    let items: Vec<_> =
        items.into_iter().map(|(id, b, _)| serde_json::json!({ "id": id, "failure": b.failure, "rows": b.rows, "raw": b.raw })).collect();
    let body = serde_json::json!({ "dead_letters": items, "cursor": cursor, "list_complete": cursor.is_none() }).to_string();
    Ok(http::json(200, &body, None))
}

/// Erasure reaches the dead-letter store too: every dead letter holding rows of the `erased`
/// visitors (`privacy::visitors::Erased`: the project and the hash of the id) is rewritten without them (or removed when nothing is left), so
/// no replay brings them back. Returns how many dead letters changed.
pub async fn erase_visitors(env: &Env, erased: &BTreeSet<(String, String)>) -> std::result::Result<usize, ApiError> {
    if erased.is_empty() {
        return Ok(0);
    }
    rewrite_each(env, |s| s.may_hold_visitors(erased), |batch| batch.without_visitors(erased)).await
}

/// Retention reaches the dead-letter store too (the daily job): rows past their window go, so
/// no replay stores an event the table has dropped. Returns how many dead letters changed.
pub async fn expire(env: &Env) -> std::result::Result<usize, ApiError> {
    let now = Date::now().as_millis() as i64;
    rewrite_each(env, |s| s.may_hold_expired(now), |batch| batch.without_expired(now)).await
}

/// A project's deletion reaches the dead-letter store too: every row of the project goes.
pub async fn erase_project(env: &Env, project_id: &str) -> std::result::Result<usize, ApiError> {
    rewrite_each(env, |s| s.may_hold_project(project_id), |batch| batch.without_project(project_id)).await
}

/// Every dead letter for which `without` answers a smaller batch is rewritten as that batch,
/// or removed when nothing is left. Only those whose summary `may` hold what goes are read: the
/// listing carries the summaries, a thousand keys to an operation. One kept before summaries
/// were is read, and gets its summary (written back once), so the next pass skips it.
/// Returns how many changed.
async fn rewrite_each(
    env: &Env,
    may: impl Fn(&Summary) -> bool,
    without: impl Fn(&RowBatch) -> Option<RowBatch>,
) -> std::result::Result<usize, ApiError> {
    let unavailable = || super::key_lookup::unavailable("The dead-letter store");
    let kv = env.kv(config::DEAD_LETTERS_KV).map_err(|_| unavailable())?;
    let listed = millimetric_adapters::kv::all_listed(&kv, PREFIX).await.map_err(|_| unavailable())?;
    let (mut changed, mut summarised) = (0, 0);
    for k in listed {
        let written = WRITTEN.with(|w| w.borrow().get(&k.name).cloned());
        if matches!(written, Some(None)) {
            continue; // deleted by an earlier pass
        }
        let summary: Option<Summary> = written.flatten().or_else(|| k.metadata.and_then(|m| serde_json::from_value(m).ok()));
        if summary.as_ref().is_some_and(|s| !may(s)) {
            continue;
        }
        if summary.is_none() {
            // Kept before summaries were: read and written back with one, a bounded number a
            // pass (two operations each); past it the pass answers 503 and the next goes on.
            if summarised == UNSUMMARISED_PER_PASS {
                return Err(ApiError::new(
                    503,
                    "temporarily_unavailable",
                    "The dead-letter store is summarising dead letters kept before this release: retry the same request.",
                ));
            }
            summarised += 1;
        }
        millimetric_adapters::meter::add("kv.dead_letter_reads", 1);
        let Some(text) = kv.get(&k.name).text().await.map_err(|_| unavailable())? else { continue };
        let batch = RowBatch::from_message(&text).unwrap_or_else(|reason| RowBatch::unreadable(&text, reason));
        match without(&batch) {
            Some(rest) if rest.rows.is_empty() && rest.raw.is_none() => {
                kv.delete(&k.name).await.map_err(|_| unavailable())?;
                remember(&k.name, None);
                changed += 1;
            }
            Some(rest) => {
                keep(&kv, &k.name, rest.to_message(), Summary::of(&rest), k.expiration).await.map_err(|_| unavailable())?;
                changed += 1;
            }
            // As it was, with its summary.
            None if summary.is_none() => keep(&kv, &k.name, text, Summary::of(&batch), k.expiration).await.map_err(|_| unavailable())?,
            None => {}
        }
    }
    Ok(changed)
}

/// `text` under `key`, with its summary, keeping the expiry the dead letter had: an erasure of
/// one project's rows never keeps another project's longer.
async fn keep(
    kv: &worker::kv::KvStore,
    key: &str,
    text: String,
    summary: Summary,
    expiration: Option<u64>,
) -> std::result::Result<(), worker::kv::KvError> {
    let put = kv.put(key, text)?.metadata(&summary)?;
    // KV takes an expiry at least 60 s ahead (a Worker's clock stands still between I/O: 120 s
    // leaves room); one that near is as good as gone.
    let soonest = Date::now().as_millis() / 1000 + 120;
    let put = match expiration {
        Some(at) => put.expiration(at.max(soonest)),
        None => put.expiration_ttl(KEEP_SECONDS),
    };
    put.execute().await?;
    remember(key, Some(summary));
    Ok(())
}

/// `action` by the operator over `rows`, in the log of each project they belong to.
async fn audit_rows(env: &Env, rows: impl Iterator<Item = &EventRow>, action: Action) {
    audit_projects(env, rows.map(|r| r.project_id.as_str()), action).await
}

/// `action` by the operator, in the log of each project named (once a row it touched).
async fn audit_projects<'a>(env: &Env, projects: impl Iterator<Item = &'a str>, action: Action) {
    let now = Date::now().as_millis() as i64;
    for record in audit::per_project(projects, action, "admin", now, "ok") {
        super::audit::write(env, &record).await;
    }
}

/// Replays one page (up to 100 dead letters; `cursor` for the next): each one's rows go back
/// on the events queue, then its KV entry goes. Dead letters with no rows (a body that was
/// not a row batch) stay, listed in `kept`.
pub async fn replay(req: Request, env: &Env) -> Result<Response> {
    let (items, cursor) = match admin_page(&req, env, 100, 100).await {
        Ok(x) => x,
        Err(answer) => return Ok(answer),
    };
    let unavailable = |what: &str| fail(&super::key_lookup::unavailable(what));
    let Ok(queue) = env.queue(config::EVENTS_QUEUE) else { return unavailable("The event queue") };
    let Ok(kv) = env.kv(config::DEAD_LETTERS_KV) else { return unavailable("The dead-letter store") };
    let (mut replayed, mut kept, mut sent) = (0, Vec::new(), Vec::new());
    for (id, batch, _) in items {
        if batch.rows.is_empty() {
            kept.push(serde_json::json!({ "id": id, "failure": batch.failure }));
            continue;
        }
        if let Err(e) = super::row_queue::send_rows(&queue, &batch.rows, None).await {
            console_error!("dead letters: replay stopped, the queue refused ({e})");
            // What went back before the queue refused is replayed all the same: logged too.
            audit_rows(env, sent.iter(), Action::DeadLetterReplay).await;
            return unavailable("The event queue");
        }
        // Sent: the batch writer stores what is not stored yet. A failure to delete leaves the
        // entry for the next replay, which then stores nothing twice.
        if let Err(e) = kv.delete(&id).await {
            console_error!("dead letters: replayed {id} but could not remove it ({e})");
        }
        replayed += 1;
        sent.extend(batch.rows);
    }
    // Each project whose rows were replayed sees it in its audit log.
    audit_rows(env, sent.iter(), Action::DeadLetterReplay).await;
    let rows = sent.len();
    console_log!("dead letters: replayed {replayed} ({rows} rows), kept {}", kept.len());
    let body = serde_json::json!({ "replayed": replayed, "rows": rows, "kept": kept, "cursor": cursor, "list_complete": cursor.is_none() })
        .to_string();
    Ok(http::json(200, &body, None))
}
