//! A project's whole data returned, against the real parts (wrangler dev, local R2 and queues,
//! ClickHouse 18.16): 1,000,000 stored events exported as gzipped NDJSON by day, the parts
//! holding exactly the stored rows, the Worker's memory bounded (printed); the aggregates as
//! CSV; a failed step resumed; downloads with the project's key only; audited, counted in
//! usage; parts deleted after 7 days.
//! Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use millimetric_core::keys::{KeyKind, KeyRecord};
use millimetric_tools::dev_keys::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{Stack, ADMIN_TOKEN};

const BIG: &str = "proj_big";
const BIG_SECRET: &str = "sk_live_big_secret_0001";
const EVENTS: u64 = 1_000_000;

/// The events to export: a million, or what MM_EXPORT_EVENTS says (a quicker look by hand).
fn events() -> u64 {
    std::env::var("MM_EXPORT_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(EVENTS)
}

/// Sets its flag when dropped: the memory sampler stops even if the test fails.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn sk(key: &str) -> String {
    format!("Bearer {key}")
}

/// A million events over the last three days, written by ClickHouse itself (the pipeline's
/// cost is not what this measures): each with its own id, visitor and page.
fn seed_big(stack: &Stack) {
    let (_, an_hour_ago) = support::time_ago(Duration::from_secs(3600));
    stack.query(&format!(
        "INSERT INTO events (project_id, event_id, timestamp, received_at, event_type, event_name, anonymous_id, url_host, url_path, title, \
         country, browser, os, device_type, source, medium, key_kind, retention_days, ingest_route) \
         SELECT '{BIG}', concat('big-', toString(number)), toDateTime('{an_hour_ago}') - (number % 259200), toDateTime('{an_hour_ago}'), \
         'pageview', 'pageview', concat('v', toString(number % 50000)), 'example.com', concat('/p/', toString(number % 1000)), 'A page title', \
         'GB', 'Chrome', 'Windows', 'desktop', 'Google', 'organic', 'secret', 30, 'collect' FROM system.numbers LIMIT {}",
        events()
    ));
    // Twins: the first ids again, each on its event's day under another visitor id (a server's
    // copy of an id a page sent first: core/src/ingest/first_write.rs). Stored rows of their
    // own, which queries show, so the export returns them too.
    stack.query(&format!(
        "INSERT INTO events (project_id, event_id, timestamp, received_at, event_type, event_name, anonymous_id, url_host, url_path, title, \
         country, browser, os, device_type, source, medium, key_kind, retention_days, ingest_route) \
         SELECT '{BIG}', concat('big-', toString(number)), toDateTime('{an_hour_ago}') - (number % 259200), toDateTime('{an_hour_ago}'), \
         'pageview', 'pageview', concat('w', toString(number)), 'example.com', '/twin', 'A page title', \
         'GB', 'Chrome', 'Windows', 'desktop', 'Google', 'organic', 'secret', 30, 'collect' FROM system.numbers LIMIT {}",
        twins()
    ));
    let (n, rows) = (events(), rows());
    let stored = stack.query(&format!("SELECT count(), uniqExact(event_id) FROM events FINAL WHERE project_id = '{BIG}' FORMAT TSV"));
    assert_eq!(stored.trim(), format!("{rows}\t{n}"), "one stored row per id, and one more per twin");
}

/// How many of the ids are stored a second time, under another visitor id (`seed_big`).
fn twins() -> u64 {
    events().min(1_000)
}

/// The rows stored: one per id, and one per twin.
fn rows() -> u64 {
    events() + twins()
}

/// Each stored row's (event id, visitor id), as `seed_big` wrote them.
fn stored_rows() -> BTreeSet<(String, String)> {
    let ids = (0..events()).map(|i| (format!("big-{i}"), format!("v{}", i % 50_000)));
    ids.chain((0..twins()).map(|i| (format!("big-{i}"), format!("w{i}")))).collect()
}

fn wait_done(stack: &Stack, key: &str, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = stack.request("GET", &format!("/v1/exports/{id}"), &[("Authorization", &sk(key))], b"");
        assert_eq!(r.status, 200, "{:?}", r.body);
        if r.body["status"] == "done" {
            return r.body;
        }
        assert!(Instant::now() < deadline, "the export did not finish: {:#}\n{}", r.body, stack.logs());
        // Within the key's 60 export requests a minute, with room for the test's own.
        std::thread::sleep(Duration::from_millis(1500));
    }
}

fn download(stack: &Stack, key: &str, path: &str) -> Result<Vec<u8>, u16> {
    match ureq::get(&stack.url(path)).set("Authorization", &sk(key)).call() {
        Ok(r) => {
            let mut gz = Vec::new();
            r.into_reader().read_to_end(&mut gz).unwrap();
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).expect("a part is gzip");
            Ok(out)
        }
        Err(ureq::Error::Status(s, _)) => Err(s),
        Err(e) => panic!("{path}: {e}"),
    }
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn exports_end_to_end() {
    let stack = Stack::named("exports").var("USAGE_FLUSH_MS", "300").key(BIG_SECRET, KeyRecord::new(BIG, KeyKind::Secret)).start();
    // The small project first: its daily run (the rollup) is then over a few events, not the
    // million.
    small_project_with_a_failed_step(&stack);
    a_million_events(&stack);
}

fn a_million_events(stack: &Stack) {
    seed_big(stack);
    let idle_kib = stack.workerd_rss_kib();
    let started = Instant::now();
    let r = stack.request("POST", "/v1/exports", &[("Authorization", &sk(BIG_SECRET))], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    // Sample the Worker's memory while it runs.
    let (peak, stop) = (AtomicU64::new(idle_kib), AtomicBool::new(false));
    let (job, took) = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(stack.workerd_rss_kib(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let _stop = StopOnDrop(&stop);
        let job = wait_done(stack, BIG_SECRET, &id, Duration::from_secs(600));
        (job, started.elapsed())
    });
    let parts = job["parts"].as_array().unwrap().clone();
    let bytes: u64 = parts.iter().filter_map(|p| p["bytes"].as_u64()).sum();
    let peak_kib = peak.load(Ordering::SeqCst);
    // The isolate's own wasm memory, as the Worker logs it after each step (it only grows, so
    // the last is the most it held): what counts against an isolate's 128 MB with the JS heap.
    let wasm_mib = stack
        .logs()
        .lines()
        .filter(|l| l.contains(&id) && l.contains("wasm memory"))
        .filter_map(|l| l.rsplit("wasm memory ").next()?.trim_end_matches(" MiB").trim().parse::<f64>().ok())
        .fold(0.0f64, f64::max);
    println!(
        "export of {} events: {:.1} s, {} parts, {:.1} MB gzipped; the isolate's wasm memory at most {wasm_mib:.1} MiB; \
         workerd process RSS (every local service) idle {} MiB, peak {} MiB (+{} MiB)\n  \
         (cargo test --test e2e_exports -- --include-ignored --nocapture)",
        rows(),
        took.as_secs_f64(),
        parts.len(),
        bytes as f64 / 1e6,
        idle_kib / 1024,
        peak_kib / 1024,
        peak_kib.saturating_sub(idle_kib) / 1024
    );
    assert_eq!(job["progress"]["rows_done"], rows(), "{job:#}");
    assert_eq!(job["progress"]["rows_total"], rows(), "{job:#}");
    // Bounded: one part at a time (100,000 rows, about 2 MB gzipped), never the project's
    // ~600 MB of NDJSON: the isolate's wasm memory stays far under its 128 MB.
    assert!(wasm_mib > 0.0 && wasm_mib < 64.0, "the isolate's wasm memory reached {wasm_mib} MiB");
    assert!(peak_kib.saturating_sub(idle_kib) < 400 * 1024, "the Worker's memory grew by {} MiB", (peak_kib - idle_kib) / 1024);

    // The parts hold exactly the stored rows: every row once, each as stored.
    let mut ids = BTreeSet::new();
    let mut lines = 0u64;
    for p in parts.iter().filter(|p| p["name"].as_str().unwrap().starts_with("events/")) {
        let body = download(stack, BIG_SECRET, p["download"].as_str().unwrap()).unwrap();
        let text = String::from_utf8(body).unwrap();
        let day = &p["name"].as_str().unwrap()["events/".len().."events/".len() + 10];
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(v["timestamp"].as_str().unwrap().starts_with(day), "a row in another day's part: {line}");
            assert_eq!((v["project_id"].as_str(), v["title"].as_str()), (Some(BIG), Some("A page title")));
            ids.insert((v["event_id"].as_str().unwrap().to_string(), v["anonymous_id"].as_str().unwrap().to_string()));
            lines += 1;
        }
        assert_eq!(lines as usize, ids.len(), "a row in two parts");
    }
    // What is stored is what seed_big wrote (checked there): the same set.
    assert_eq!(ids.len() as u64, rows(), "rows exported");
    assert!(ids == stored_rows(), "the parts' rows differ from the stored ones");
    // A part's statement names a visitor (the one whose row the part before ended on): none is
    // in ClickHouse's query log, where it would outlive that visitor's erasure.
    stack.query("SYSTEM FLUSH LOGS");
    let logged = "SELECT count() FROM system.query_log WHERE position(query, 'LIMIT 1 BY event_id, anonymous_id') > 0 \
                  AND position(query, 'system.query_log') = 0";
    assert_eq!(stack.query(logged).trim(), "0", "the export's statements are in ClickHouse's query log");
    // Another key of another project never reads it.
    assert_eq!(download(stack, DEV_SECRET, parts[0]["download"].as_str().unwrap()), Err(404));

    // A deletion of the project's events asked of ClickHouse while an export runs (as an
    // erasure asks it; here straight, so only the export's own check can see it): the export
    // ends at its next step, and what it wrote (which may hold what is deleted) goes with it.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let objects =
        || stack.request("GET", &format!("/admin/projects/{BIG}/exports"), &[("Authorization", &admin)], b"").body["objects"].clone();
    let before = objects(); // the first export's parts
    let r = stack.request("POST", "/v1/exports", &[("Authorization", &sk(BIG_SECRET))], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    let running = r.body["id"].as_str().unwrap().to_string();
    let started = support::eventually(Duration::from_secs(120), || {
        let r = stack.request("GET", &format!("/v1/exports/{running}"), &[("Authorization", &sk(BIG_SECRET))], b"");
        r.body["parts"].as_array().is_some_and(|p| !p.is_empty())
    });
    assert!(started, "the second export wrote no part:\n{}", stack.logs());
    stack.query(&format!("ALTER TABLE events DELETE WHERE project_id = '{BIG}' AND anonymous_id = 'v7'"));
    let ended = support::eventually(Duration::from_secs(60), || {
        stack.request("GET", &format!("/v1/exports/{running}"), &[("Authorization", &sk(BIG_SECRET))], b"").status == 404
    });
    assert!(ended, "the export running at the erasure did not end:\n{}", stack.logs());
    let gone = support::eventually(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(1800)); // admin requests: 30 a minute
        objects() == before
    });
    assert!(gone, "the ended export's parts are left ({} objects, {before} before it):\n{}", objects(), stack.logs());
}

/// A small project: its rows and aggregates (rolled up by the cron), one step failing while
/// ClickHouse is down and finishing once it is back; the audit log and usage; the key kinds
/// refused; resume; expiry after 7 days.
fn small_project_with_a_failed_step(stack: &Stack) {
    let yesterday = (time::OffsetDateTime::now_utc() - time::Duration::days(1)).unix_timestamp() * 1000;
    let batch = json!({"batch": [
        {"type": "pageview", "url": "https://example.com/a?utm_source=news", "mm_aid": "v1", "timestamp": yesterday},
        {"type": "event", "name": "signup", "url": "https://example.com/b", "mm_aid": "v1"}]});
    assert_eq!(stack.collect(DEV_SECRET, &[], &batch).status, 202);
    stack.wait_count("SELECT count() FROM events WHERE project_id = 'proj_dev'", 2, Duration::from_secs(60));
    assert_eq!(stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"").status, 200, "the rollup");
    let rolled = stack.wait_count("SELECT count() FROM visits_agg WHERE project_id = 'proj_dev'", 1, Duration::from_secs(60));
    assert!(rolled >= 1, "yesterday was not rolled up:\n{}", stack.logs());

    // Only the project's sk_live_ key.
    for (key, code) in [(DEV_READ_ONLY, "secret_key_required"), (DEV_PUBLISHABLE, "secret_key_required")] {
        let r = stack.request("POST", "/v1/exports", &[("Authorization", &sk(key))], b"");
        assert_eq!((r.status, r.code()), (403, code), "{:?}", r.body);
    }
    assert_eq!(stack.request("POST", "/v1/exports", &[], b"").status, 401);

    stack.stop_clickhouse();
    let r = stack.request("POST", "/v1/exports", &[("Authorization", &sk(DEV_SECRET))], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let failed = support::eventually(Duration::from_secs(60), || {
        let r = stack.request("GET", &format!("/v1/exports/{id}"), &[("Authorization", &sk(DEV_SECRET))], b"");
        !r.body["last_error"].is_null()
    });
    assert!(failed, "the step should have failed while ClickHouse was down:\n{}", stack.logs());
    // What the owner reads says what happens next, and nothing of the servers behind.
    let r = stack.request("GET", &format!("/v1/exports/{id}"), &[("Authorization", &sk(DEV_SECRET))], b"");
    let last_error = r.body["last_error"].as_str().unwrap_or_default().to_string();
    assert!(last_error.contains("retried"), "{last_error}");
    for internal in ["ClickHouse answered", "127.0.0.1", "Code:", "millimetric_", "DB::Exception", "R2:"] {
        assert!(!last_error.contains(internal), "last_error names {internal:?}: {last_error}");
    }
    stack.start_clickhouse();
    let job = wait_done(stack, DEV_SECRET, &id, Duration::from_secs(120));
    assert!(job["last_error"].is_null(), "{job:#}");
    assert_eq!(job["progress"]["rows_done"], 2, "{job:#}");
    // A resume of a finished export changes nothing.
    let again = stack.request("POST", &format!("/v1/exports/{id}/resume"), &[("Authorization", &sk(DEV_SECRET))], b"");
    assert_eq!(again.status, 202);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(wait_done(stack, DEV_SECRET, &id, Duration::from_secs(5))["parts"], job["parts"]);

    let names: Vec<&str> = job["parts"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    // Each aggregate table in parts of whole days (`aggregates/{table}/{first day}_{last day}.csv.gz`);
    // props_agg has no rows here (no event carried properties), so no part.
    assert!(!names.iter().any(|n| n.starts_with("aggregates/props_agg/")), "{names:?}");
    for table in ["visits_agg", "pages_agg"] {
        assert!(names.iter().any(|n| n.starts_with(&format!("aggregates/{table}/")) && n.ends_with(".csv.gz")), "{names:?}");
    }
    let visits_part = names.iter().find(|n| n.starts_with("aggregates/visits_agg/")).unwrap().to_string();
    let csv = String::from_utf8(download(stack, DEV_SECRET, &format!("/v1/exports/{id}/parts/{visits_part}")).unwrap()).unwrap();
    let mut csv_lines = csv.lines();
    assert!(csv_lines.next().unwrap().starts_with("\"date\",\"hour\",\"is_bot\",\"entry_page\",\"exit_page\",\"v_source\""), "{csv}");
    assert!(csv.contains("news") || csv.contains("News"), "yesterday's visit from the newsletter: {csv}");
    assert_eq!(download(stack, DEV_SECRET, &format!("/v1/exports/{id}/parts/events/x.ndjson.gz")), Err(404));
    let unknown = stack.request("GET", "/v1/exports/00000000000000000000000000000000", &[("Authorization", &sk(DEV_SECRET))], b"");
    assert_eq!((unknown.status, unknown.code()), (404, "unknown_export"));
    // A download with an id no export can have is refused the same way, and audited too.
    assert_eq!(download(stack, DEV_SECRET, "/v1/exports/ABCDEF0123456789ABCDEF0123456789/parts/x"), Err(404));

    // Audited: the start, the resume and the downloads, the refused ones with their codes.
    let log = stack.request("GET", "/v1/audit", &[("Authorization", &sk(DEV_SECRET))], b"");
    let records: Vec<&Value> = log.body["audit"].as_array().unwrap().iter().filter(|r| r["record"]["action"] == "project_export").collect();
    assert_eq!(records.len(), 5, "the start, the resume, one download, two refused: {:#}", log.body);
    assert!(records.iter().any(|r| r["record"]["outcome"] == "unknown_part"), "the refused download: {:#}", log.body);
    assert!(records.iter().any(|r| r["record"]["outcome"] == "unknown_export"), "the malformed id: {:#}", log.body);
    assert!(records.iter().any(|r| r["record"]["rows"].is_u64()), "a download's record holds its rows: {:#}", log.body);
    // Counted in usage once it finished.
    assert!(
        support::eventually(Duration::from_secs(30), || {
            stack.query("SELECT sum(n) FROM usage_counts WHERE project_id = 'proj_dev' AND metric = 'exports' AND dim = 'project'").trim()
                == "1"
        }),
        "the export was not counted in usage"
    );

    // After 7 days the cron deletes the parts and the record (the test's clock: the record's
    // start moved back 7 days and a minute).
    let key = format!("export:proj_dev:{id}");
    let mut record: Value = serde_json::from_str(&stack.kv_get("ERASURES", &key)).unwrap();
    record["created_ms"] = json!(record["created_ms"].as_i64().unwrap() - 7 * 86_400_000 - 60_000);
    stack.kv_put("ERASURES", &key, &record.to_string());
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let listed = stack.request("GET", "/admin/projects/proj_dev/exports", &[("Authorization", &admin)], b"");
    assert!(listed.body["objects"].as_u64().unwrap_or(0) >= 3, "{:?}", listed.body);
    assert_eq!(stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"").status, 200);
    let gone = support::eventually(Duration::from_secs(30), || {
        let l = stack.request("GET", "/admin/projects/proj_dev/exports", &[("Authorization", &admin)], b"");
        l.body["objects"] == 0 && l.body["exports"].as_array().is_some_and(Vec::is_empty)
    });
    assert!(gone, "the expired export's parts were not deleted:\n{}", stack.logs());
    assert_eq!(download(stack, DEV_SECRET, &format!("/v1/exports/{id}/parts/{visits_part}")), Err(404));

    // A visitor's erasure reaches the exports made before it: their parts may hold the
    // visitor's events, so they are deleted with their records. ClickHouse's merges are held,
    // so the erasure (a mutation) stays unapplied while the next export is asked for.
    let r = stack.request("POST", "/v1/exports", &[("Authorization", &sk(DEV_SECRET))], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let job = wait_done(stack, DEV_SECRET, &id, Duration::from_secs(120));
    let first = job["parts"][0]["download"].as_str().unwrap().to_string();
    let part = String::from_utf8(download(stack, DEV_SECRET, &first).unwrap()).unwrap();
    assert!(part.contains("\"v1\""), "the export holds visitor v1: {part}");
    stack.query("SYSTEM STOP MERGES");
    let erased = stack.request("DELETE", "/visitors/v1", &[("Authorization", &sk(DEV_SECRET))], b"");
    assert_eq!(erased.status, 202, "{:?}", erased.body);
    assert_eq!(download(stack, DEV_SECRET, &first), Err(404), "a part from before the erasure is gone");
    let r = stack.request("GET", &format!("/v1/exports/{id}"), &[("Authorization", &sk(DEV_SECRET))], b"");
    assert_eq!((r.status, r.code()), (404, "unknown_export"), "{:?}", r.body);
    let l = stack.request("GET", "/admin/projects/proj_dev/exports", &[("Authorization", &admin)], b"");
    assert_eq!(l.body["objects"], 0, "{:?}", l.body);
    // An export asked for while the erasure is being applied waits for it, then holds no
    // trace of the visitor.
    assert_ne!(stack.query("SELECT count() FROM system.mutations WHERE is_done = 0").trim(), "0", "the erasure is still being applied");
    let r = stack.request("POST", "/v1/exports", &[("Authorization", &sk(DEV_SECRET))], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let job = || stack.request("GET", &format!("/v1/exports/{id}"), &[("Authorization", &sk(DEV_SECRET))], b"");
    let mut r = job();
    support::eventually(Duration::from_secs(30), || {
        r = job();
        r.body["last_error"].as_str().is_some_and(|e| e.starts_with("Waiting for ClickHouse"))
    });
    let (status, planned) = (r.body["status"].clone(), r.body["progress"]["days_total"].clone());
    assert_eq!((status, planned), (json!("running"), Value::Null), "it waits for the erasure: {:?}", r.body);
    assert!(r.body["last_error"].as_str().is_some_and(|e| e.starts_with("Waiting for ClickHouse to apply a deletion")), "{:?}", r.body);
    stack.query("SYSTEM START MERGES");
    let job = wait_done(stack, DEV_SECRET, &id, Duration::from_secs(120));
    for p in job["parts"].as_array().unwrap().iter().filter(|p| p["name"].as_str().unwrap().starts_with("events/")) {
        let part = String::from_utf8(download(stack, DEV_SECRET, p["download"].as_str().unwrap()).unwrap()).unwrap();
        assert!(!part.contains("\"v1\""), "an export after the erasure holds the erased visitor: {part}");
    }
    // The daily re-run of the erasure finds no row of v1 left, so it asks ClickHouse for no
    // deletion (one would rewrite the table's parts, and end any export running then).
    let deletions = || stack.query("SELECT count() FROM system.mutations WHERE position(command, 'proj_dev') > 0").trim().to_string();
    let before = deletions();
    assert_eq!(stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"").status, 200);
    assert!(stack.log_shows("erasures: re-applied", Duration::from_secs(30)), "the daily job re-applied the erasure:\n{}", stack.logs());
    assert_eq!(deletions(), before, "the re-run sent a deletion for rows that are gone");
}
