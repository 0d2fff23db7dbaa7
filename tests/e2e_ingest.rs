//! End to end through the real parts: HTTP into `wrangler dev` (workerd running the wasm
//! Worker), KV keys, the Queue batch writer, and rows read back from a real ClickHouse.
//! Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use millimetric_tools::dev_keys::*;
use serde_json::json;
use std::time::Duration;
use support::Stack;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const LAND: Duration = Duration::from_secs(30);

fn browser() -> Vec<(&'static str, &'static str)> {
    vec![("Origin", "https://example.com"), ("User-Agent", CHROME)]
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn ingest_end_to_end() {
    // Straight into ClickHouse, as in production (18.16 here would take the queue in `auto`);
    // the other suites run `auto`, so the queue's way is tested too.
    let stack = Stack::named("ingest").var("INGEST_WRITE", "direct").start();
    pageview_lands_in_clickhouse(&stack);
    server_batch_with_one_bad_event(&stack);
    revenue_is_stored_exactly(&stack);
    forwarded_ip_gets_database_geo(&stack);
    browser_transport_variants(&stack);
    refusals_are_clear_json(&stack);
    retried_request_is_one_row(&stack);
    first_write_of_an_id_wins(&stack);
    no_cookies_ever(&stack);
    retention_drops_weeks_past_their_window(&stack);
    visitor_export_and_erasure(&stack);
    personal_ids_are_stored_as_keyed_hashes(&stack);
}

/// The promise: erase and export by visitor on request. Export with the project's secret or
/// read-only key; erase with the secret key only; another project's rows are never touched.
fn visitor_export_and_erasure(stack: &Stack) {
    let page = |aid: &str| json!({"type":"pageview","url":"https://example.com/a","mm_aid": aid});
    assert_eq!(stack.collect(DEV_PUBLISHABLE, &browser(), &page("erase-me")).status, 202);
    let batch = json!({"batch":[
        {"type":"event","name":"signup","url":"https://example.com/b","mm_aid":"erase-me","ip":"81.2.69.142","user_agent":CHROME},
        {"type":"pageview","url":"https://example.com/c","mm_aid":"erase-me"},
        {"type":"pageview","url":"https://example.com/d","mm_aid":"keep-me"}]});
    assert_eq!(stack.collect(DEV_SECRET, &[], &batch).status, 202);
    // The same visitor id in another project (written directly: one dev project exists).
    stack.query("INSERT INTO events (project_id, event_id, timestamp, received_at, anonymous_id, retention_days) VALUES ('proj_other', 'other-1', now(), now(), 'erase-me', 30)");
    let count = |aid: &str, project: &str| {
        stack
            .query(&format!("SELECT count() FROM events WHERE anonymous_id = '{aid}' AND project_id = '{project}'"))
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let landed = stack.wait_count(
        "SELECT count() FROM events_dedup WHERE anonymous_id IN ('erase-me', 'keep-me') AND project_id = 'proj_dev'",
        4,
        LAND,
    );
    assert_eq!(landed, 4, "events did not land; worker log:\n{}", stack.logs());

    let bearer = |k: &str| format!("Bearer {k}");
    for key in [DEV_SECRET, DEV_READ_ONLY] {
        let r = stack.request("GET", "/visitors/erase-me/events", &[("Authorization", &bearer(key))], b"");
        assert_eq!(r.status, 200, "{key}: {:?}", r.body);
        assert_eq!(r.header("Content-Type"), Some("application/x-ndjson"));
        let text = match &r.body {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(), // a single line parses as JSON
        };
        let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len(), 3, "{key}: the visitor's three events, once each: {text}");
        assert!(rows.iter().all(|r| r["anonymous_id"] == "erase-me" && r["project_id"] == DEV_PROJECT), "{text}");
        assert!(!text.contains("81.2.69.142"), "no IP in an export");
    }
    // The check above can fail: on a broken build that stored the forwarded IP (a column of its
    // own, as a careless migration would add), the same export and the same check catch it.
    stack.query("ALTER TABLE events ADD COLUMN ip String DEFAULT '81.2.69.142'");
    let broken = stack.request("GET", "/visitors/erase-me/events", &[("Authorization", &format!("Bearer {DEV_SECRET}"))], b"");
    let broken_text = match &broken.body {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert!(broken_text.contains("81.2.69.142"), "the no-IP check would not notice a stored IP: {broken_text}");
    stack.query("ALTER TABLE events DROP COLUMN ip");

    let refused = |method: &str, path: &str, headers: &[(&str, &str)]| stack.request(method, path, headers, b"");
    let pk = bearer(DEV_PUBLISHABLE);
    let rk = bearer(DEV_READ_ONLY);
    let sk = bearer(DEV_SECRET);
    assert_eq!(refused("GET", "/visitors/erase-me/events", &[("Authorization", &pk)]).code(), "secret_key_required");
    assert_eq!(refused("DELETE", "/visitors/erase-me", &[("Authorization", &rk)]).code(), "read_only_key");
    assert_eq!(
        refused("DELETE", "/visitors/erase-me", &[("Authorization", &sk), ("Origin", "https://example.com")]).code(),
        "secret_key_in_browser"
    );
    assert_eq!(refused("DELETE", "/visitors/erase-me", &[]).code(), "missing_key");
    assert_eq!(refused("DELETE", "/visitors/", &[("Authorization", &sk)]).code(), "invalid_visitor_id");
    assert_eq!(refused("POST", "/visitors/erase-me", &[("Authorization", &sk)]).status, 405);
    assert_eq!(count("erase-me", DEV_PROJECT), 3, "refused requests erase nothing");
    let days = format!(
        "SELECT count() FROM visitor_day_hashes WHERE visitor_hash = {} AND project_id = 'proj_dev'",
        millimetric_core::storage::sql::id_hash("erase-me")
    );
    assert_ne!(stack.query(&days).trim(), "0", "the days index holds the visitor's days, by the hash the export asks for");

    let r = stack.request("DELETE", "/visitors/erase-me", &[("Authorization", &sk)], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["status"], "erasing");
    support::eventually(LAND, || count("erase-me", DEV_PROJECT) == 0);
    assert_eq!(count("erase-me", DEV_PROJECT), 0, "the visitor's rows are gone from the raw table");
    assert!(support::eventually(LAND, || stack.query(&days).trim() == "0"), "and from the days index");
    assert_eq!(count("keep-me", DEV_PROJECT), 1, "another visitor's row stays");
    assert_eq!(count("erase-me", "proj_other"), 1, "the same id in another project stays");
    // Nor does the id outlive its erasure in ClickHouse's own query log, which the test server
    // keeps as a modern one does (the Worker's statements naming a visitor are kept out of it;
    // the test's own, as `default`, are not).
    stack.query("SYSTEM FLUSH LOGS");
    let logged = stack.query("SELECT count() FROM system.query_log WHERE user != 'default' AND query LIKE '%erase-me%'");
    assert_eq!(logged.trim(), "0", "the erased visitor's id is in system.query_log");
    assert_ne!(
        stack.query("SELECT count() FROM system.query_log WHERE user != 'default'").trim(),
        "0",
        "the check above could not fail: the Worker's statements are not logged at all"
    );
    let r = stack.request("GET", "/visitors/erase-me/events", &[("Authorization", &sk)], b"");
    assert_eq!((r.status, r.body.as_str()), (200, Some("")), "nothing left to export");

    // An event sent just before the erasure but still queued lands after it: the daily job
    // deletes it again (written directly here, as the batch writer would).
    stack.query("INSERT INTO events (project_id, event_id, timestamp, received_at, anonymous_id, retention_days) VALUES ('proj_dev', 'late-1', now(), now(), 'erase-me', 30)");
    assert_eq!(count("erase-me", DEV_PROJECT), 1);
    // A whole-project export made meanwhile holds the late event.
    let started = stack.request("POST", "/v1/exports", &[("Authorization", &sk)], b"");
    assert_eq!(started.status, 202, "{:?}", started.body);
    let export = format!("/v1/exports/{}", started.body["id"].as_str().unwrap_or_default());
    let export_status = || stack.request("GET", &export, &[("Authorization", &sk)], b"");
    support::eventually(Duration::from_secs(120), || export_status().body["status"] == "done");
    assert_eq!(export_status().body["status"], "done", "{:?}\n{}", export_status().body, stack.logs());
    assert_eq!(stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"").status, 200);
    support::eventually(LAND, || count("erase-me", DEV_PROJECT) == 0);
    assert_eq!(count("erase-me", DEV_PROJECT), 0, "the late event is erased by the daily job; log:\n{}", stack.logs());
    assert_eq!((count("keep-me", DEV_PROJECT), count("erase-me", "proj_other")), (1, 1), "nothing else touched");
    // And the export that holds it goes with it, as on the erasure itself.
    support::eventually(LAND, || export_status().status == 404);
    assert_eq!(export_status().status, 404, "the export made after the erasure still holds the late event");

    // The audit log: the exports and the erasure, newest first, by a prefix of the key's
    // hash, kept 90 days; no visitor id, no IP, no raw key. Read with the secret key only.
    let log = stack.request("GET", "/v1/audit?limit=100", &[("Authorization", &sk)], b"");
    assert_eq!(log.status, 200, "{:?}", log.body);
    let records = log.body["audit"].as_array().cloned().unwrap_or_default();
    let actions: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            (
                r["record"]["action"].as_str().unwrap_or("").into(),
                r["record"]["by"].as_str().unwrap_or("").into(),
                r["record"]["outcome"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let by = |k: &str| format!("key:{}", &millimetric_core::keys::key_hash(k)[..12]);
    assert_eq!(
        actions,
        vec![
            ("project_export".to_string(), by(DEV_SECRET), "ok".to_string()),
            ("visitor_export".to_string(), by(DEV_SECRET), "ok".to_string()),
            ("visitor_erasure".to_string(), by(DEV_SECRET), "ok".to_string()),
            ("visitor_export".to_string(), by(DEV_SECRET), "ok".to_string()),
            ("visitor_export".to_string(), by(DEV_READ_ONLY), "ok".to_string()),
            ("visitor_export".to_string(), by(DEV_SECRET), "ok".to_string()),
        ],
        "{:?}",
        log.body
    );
    let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
    let expires = records[0]["expires"].as_i64().unwrap_or(0);
    assert!((now_s + 89 * 86_400..=now_s + 91 * 86_400).contains(&expires), "kept 90 days: expires {expires}");
    let text = log.body.to_string();
    for secret in ["erase-me", "81.2.69.142", DEV_SECRET, DEV_READ_ONLY] {
        assert!(!text.contains(secret), "{secret} in the audit log: {text}");
    }
    assert_eq!(stack.request("GET", "/v1/audit", &[("Authorization", &rk)], b"").code(), "secret_key_required");
    let other = stack.request("GET", "/v1/audit", &[("Authorization", &format!("Bearer {DEV_OTHER_SECRET}"))], b"");
    assert_eq!(other.body["audit"].as_array().map(Vec::len), Some(0), "another project's log is its own: {:?}", other.body);

    // Each key may make 60 visitor requests a minute (erasures are ClickHouse mutations); the
    // read-only key made one above. The count must not run across a minute's edge.
    support::wait_clear_of_minute_edge(Duration::from_secs(30));
    let mut ok = 0;
    let limited = loop {
        let r = stack.request("GET", "/visitors/keep-me/events", &[("Authorization", &rk)], b"");
        if r.status != 200 || ok > 100 {
            break r;
        }
        ok += 1;
    };
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"), "after {ok}: {:?}", limited.body);
    assert!(limited.header("Retry-After").is_some_and(|s| s.parse::<u32>().is_ok_and(|n| n >= 1)));
    // The limiter counts whole minutes (core/src/rate_limit/window.rs): 59 more when the first
    // export was in this minute, 60 when it fell in the one before. Never more.
    assert!(ok == 59 || ok == 60, "60 a minute in all, got {ok} more");
}

/// The promise: raw events are deleted after the project's 30, 90 or 365 days. Rows are put
/// straight into ClickHouse with old timestamps (the API refuses events over 30 days old),
/// then the Cron Trigger's handler runs under wrangler dev.
fn retention_drops_weeks_past_their_window(stack: &Stack) {
    let now = time::OffsetDateTime::now_utc();
    let at = |days_ago: i64| {
        (now - time::Duration::days(days_ago))
            .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
            .unwrap()
    };
    // (retention class, age in days, kept?)
    let cases = [(30, 60, false), (30, 20, true), (90, 120, false), (90, 75, true), (365, 60, true), (365, 400, false)];
    let values: Vec<String> = cases
        .iter()
        .map(|(r, age, _)| format!("('retention-test', 'r{r}-{age}', 'retention-visitor', '{ts}', '{ts}', {r})", ts = at(*age)))
        .collect();
    stack.query(&format!(
        "INSERT INTO events (project_id, event_id, anonymous_id, timestamp, received_at, retention_days) VALUES {}",
        values.join(", ")
    ));
    let days = "SELECT count() FROM visitor_day_hashes WHERE project_id = 'retention-test'";
    assert_eq!(stack.query(days).trim(), cases.len().to_string(), "the visitor's days are indexed");
    let others = stack.query("SELECT count() FROM events WHERE project_id != 'retention-test'");

    let r = stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"");
    assert_eq!(r.status, 200, "the scheduled handler did not run: {:?}\n{}", r.body, stack.logs());
    let want_kept = cases.iter().filter(|c| c.2).count() as u64;
    let left = || {
        stack.query("SELECT arrayStringConcat(groupArray(event_id), ',') FROM (SELECT event_id FROM events WHERE project_id = 'retention-test' ORDER BY event_id)")
    };
    support::eventually(LAND, || left().trim().split(',').count() as u64 == want_kept);
    let left = left();
    let mut want: Vec<String> = cases.iter().filter(|c| c.2).map(|(r, age, _)| format!("r{r}-{age}")).collect();
    want.sort();
    assert_eq!(left.trim(), want.join(","), "rows left after the retention run; worker log:\n{}", stack.logs());
    // At least as many: an earlier step's event may still be landing from the queue.
    let after: u64 = stack.query("SELECT count() FROM events WHERE project_id != 'retention-test'").trim().parse().unwrap();
    assert!(after >= others.trim().parse::<u64>().unwrap(), "recent events of other projects must stay: {others} before, {after} after");
    // Three weeks of events, and the same three of their ids' index (event_id_hashes) and of
    // their visitor's days (visitor_day_hashes).
    assert!(stack.log_shows("retention: dropped 9 week(s)", Duration::from_secs(15)), "the run says what it dropped:\n{}", stack.logs());
    assert_eq!(
        stack.query("SELECT count() FROM event_id_hashes WHERE project_id = 'retention-test'").trim(),
        want_kept.to_string(),
        "ids go with their events"
    );
    assert_eq!(stack.query(days).trim(), want_kept.to_string(), "a visitor's days go with the events");

    // Again: nothing left to drop, nothing else touched.
    let r = stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"");
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stack.query("SELECT count() FROM events WHERE project_id = 'retention-test'").trim(), want_kept.to_string());
}

/// The promise: no cookies on visitors. No answer of /collect sets one: accepted, refused,
/// preflight, rate-limited alike.
fn no_cookies_ever(stack: &Stack) {
    let ev = json!({"url":"https://example.com/"});
    let replies = vec![
        stack.collect(DEV_PUBLISHABLE, &browser(), &ev),
        stack.collect(DEV_PUBLISHABLE, &[("Origin", "https://evil.example")], &ev),
        stack.collect("sk_live_not_a_real_key_123", &[], &ev),
        stack.request("OPTIONS", "/collect", &[("Origin", "https://example.com")], b""),
        stack.request("POST", "/collect", &[("Content-Type", "application/json")], b"{"),
    ];
    for r in replies {
        assert!(r.header("Set-Cookie").is_none(), "a {} answer set a cookie: {:?}", r.status, r.headers);
    }
}

fn pageview_lands_in_clickhouse(stack: &Stack) {
    let r = stack.collect(
        DEV_PUBLISHABLE,
        &browser(),
        &json!({"type":"pageview","url":"https://example.com/pricing?utm_source=hn&email=jane%40example.com#top",
                "referrer":"https://news.ycombinator.com/item?id=1","title":"Pricing","mm_aid":"visitor-1"}),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("https://example.com"));
    let id = r.body["ids"][0].as_str().expect("an event id").to_string();
    let n = stack.wait_count(&format!("SELECT count() FROM events_dedup WHERE event_id = '{id}'"), 1, LAND);
    assert_eq!(n, 1, "the pageview did not land in ClickHouse; worker log:\n{}", stack.logs());
    let row: serde_json::Value =
        serde_json::from_str(&stack.query(&format!("SELECT * FROM events_dedup WHERE event_id = '{id}' FORMAT JSONEachRow"))).unwrap();
    assert_eq!(row["project_id"], "proj_dev");
    assert_eq!(row["event_type"], "pageview");
    assert_eq!(row["anonymous_id"], "visitor-1");
    assert_eq!(row["url_host"], "example.com");
    assert_eq!(row["url_path"], "/pricing");
    assert_eq!(row["url_query"], "utm_source=hn", "PII parameter must be gone");
    assert_eq!(row["url_fragment"], "");
    assert_eq!(row["referrer_host"], "news.ycombinator.com");
    assert_eq!((row["source"].as_str(), row["utm_source"].as_str()), (Some("hn"), Some("hn")));
    assert_eq!(
        (row["browser"].as_str(), row["os"].as_str(), row["device_type"].as_str()),
        (Some("Chrome"), Some("Windows"), Some("desktop"))
    );
    assert_eq!(row["country"].as_str().map(str::len), Some(2), "edge geo fills the country: {row}");
    assert_eq!(row["key_kind"], "publishable");
}

/// Revenue lands as the exact decimal it was sent as (never through a float), with its
/// currency; a bad amount or currency is that event's refusal alone.
fn revenue_is_stored_exactly(stack: &Stack) {
    let r = stack.collect(
        DEV_SECRET,
        &[],
        &json!({"batch":[
            {"type":"event","name":"purchase","id":"rev-1","url":"https://example.com/buy","revenue":{"amount":"123456789012.123456","currency":"eur"}},
            {"type":"event","name":"purchase","id":"rev-2","url":"https://example.com/buy","revenue":{"amount":0.1,"currency":"USD"}},
            {"type":"event","name":"purchase","id":"rev-3","url":"https://example.com/buy","revenue":{"amount":"19.99","currency":"EURO"}},
            {"type":"event","name":"purchase","id":"rev-4","url":"https://example.com/buy","revenue":{"amount":"1e3","currency":"EUR"}},
            {"type":"event","name":"signup","id":"rev-5","url":"https://example.com/buy"}
        ]}),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["accepted"], 3);
    assert_eq!(
        (r.body["rejected"][0]["code"].as_str(), r.body["rejected"][1]["code"].as_str()),
        (Some("invalid_currency"), Some("invalid_revenue"))
    );
    let n = stack.wait_count("SELECT count() FROM events_dedup WHERE event_id IN ('rev-1','rev-2','rev-5')", 3, LAND);
    assert_eq!(n, 3, "worker log:\n{}", stack.logs());
    let stored = stack.query("SELECT event_id, toString(revenue_amount), revenue_currency, toTypeName(revenue_amount) FROM events_dedup WHERE event_id LIKE 'rev-%' ORDER BY event_id FORMAT TSV");
    assert_eq!(
        stored,
        "rev-1\t123456789012.123456\tEUR\tDecimal(18, 6)\nrev-2\t0.100000\tUSD\tDecimal(18, 6)\nrev-5\t0.000000\t\tDecimal(18, 6)\n"
    );
}

fn server_batch_with_one_bad_event(stack: &Stack) {
    // Ten days back: well inside the 30-day window whatever day the tests run.
    let (past, past_ch) = support::time_ago(Duration::from_secs(10 * 86_400));
    let r = stack.collect(
        DEV_SECRET,
        &[],
        &json!({"batch":[
            {"type":"event","name":"signup","id":"srv-1","url":"https://example.com/signup","props":{"plan":"pro","password":"hunter2"},
             "user_agent":"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"},
            {"type":"event","url":"https://example.com/"},
            {"type":"pageview","id":"srv-3","url":"https://example.com/docs","timestamp":past}
        ]}),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["accepted"], 2);
    assert_eq!(r.body["rejected"][0]["index"], 1);
    assert_eq!(r.body["rejected"][0]["code"], "missing_name");
    let n = stack.wait_count("SELECT count() FROM events_dedup WHERE event_id IN ('srv-1','srv-3')", 2, LAND);
    assert_eq!(n, 2, "worker log:\n{}", stack.logs());
    let row: serde_json::Value = serde_json::from_str(&stack.query(
        "SELECT event_name, prop_keys, prop_values, os, device_type, country FROM events_dedup WHERE event_id = 'srv-1' FORMAT JSONEachRow",
    ))
    .unwrap();
    assert_eq!(row["event_name"], "signup");
    assert_eq!(row["prop_keys"], json!(["plan"]), "a password property is never stored");
    assert_eq!((row["os"].as_str(), row["device_type"].as_str()), (Some("iOS"), Some("mobile")));
    assert_eq!(row["country"], "", "a server event without a forwarded IP has no geo (the edge's is the server's)");
    assert_eq!(stack.query("SELECT toString(timestamp) FROM events_dedup WHERE event_id = 'srv-3'").trim(), past_ch);
}

fn forwarded_ip_gets_database_geo(stack: &Stack) {
    let r = stack.collect(
        DEV_SECRET,
        &[],
        &json!({"type":"event","name":"purchase","id":"geo-1","url":"https://example.com/buy","ip":"81.2.69.142"}),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(stack.wait_count("SELECT count() FROM events_dedup WHERE event_id = 'geo-1'", 1, LAND), 1, "{}", stack.logs());
    let row = stack.query("SELECT country, region, city FROM events_dedup WHERE event_id = 'geo-1' FORMAT TabSeparated");
    assert_eq!(row.trim(), "GB\tEngland\tLondon", "MaxMind's test data puts 81.2.69.142 in London");
}

fn browser_transport_variants(stack: &Stack) {
    // sendBeacon: text/plain, key in the body.
    let body = json!({"key": DEV_PUBLISHABLE, "url":"https://example.com/beacon", "id":"beacon-1"}).to_string();
    let r = stack.request(
        "POST",
        "/collect",
        &[("Content-Type", "text/plain;charset=UTF-8"), ("Origin", "https://example.com"), ("User-Agent", CHROME)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    // gzip body
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json!({"url":"https://example.com/gz","id":"gzip-1"}).to_string().as_bytes()).unwrap();
    let r = stack.request(
        "POST",
        "/collect",
        &[("Authorization", &format!("Bearer {DEV_SECRET}")), ("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    // CORS preflight
    let r = stack.request("OPTIONS", "/collect", &[("Origin", "https://example.com"), ("Access-Control-Request-Method", "POST")], b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("https://example.com"));
    assert!(r.header("Access-Control-Allow-Headers").unwrap_or("").contains("Authorization"));
    let n = stack.wait_count("SELECT count() FROM events_dedup WHERE event_id IN ('beacon-1','gzip-1')", 2, LAND);
    assert_eq!(n, 2, "worker log:\n{}", stack.logs());
}

fn refusals_are_clear_json(stack: &Stack) {
    let ev = json!({"url":"https://example.com/"});
    // (key, extra headers, status, code)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (DEV_READ_ONLY, vec![], 403, "read_only_key"),
        ("sk_live_not_a_real_key_123", vec![], 401, "unknown_key"),
        (DEV_REVOKED, vec![], 401, "revoked_key"),
        ("hello", vec![], 401, "malformed_key"),
        (DEV_SECRET, vec![("Origin", "https://example.com")], 403, "secret_key_in_browser"),
        (DEV_PUBLISHABLE, vec![("Origin", "https://evil.example")], 403, "origin_not_allowed"),
    ];
    for (key, headers, status, code) in cases {
        let r = stack.collect(key, &headers, &ev);
        assert_eq!((r.status, r.code()), (status, code), "key {key}: {:?}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap_or("").len() > 10, "a sentence saying what to fix");
    }
    let r = stack.request("POST", "/collect", &[("Content-Type", "application/json")], ev.to_string().as_bytes());
    assert_eq!((r.status, r.code()), (401, "missing_key"));
    // A known path asked with another method: 405 naming the method, not "no such endpoint".
    // With the methods it takes in `Allow` (RFC 9110).
    let wrong = [
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/admin/config-check", "GET"),
        ("GET", "/admin/dead-letters/replay", "POST"),
        ("POST", "/v1/audit", "GET"),
        ("GET", "/collect", "POST, OPTIONS"),
        ("POST", "/visitors/someone/events", "GET"),
    ];
    for (method, path, allow) in wrong {
        let r = stack.request(method, path, &[], b"");
        assert_eq!((r.status, r.code(), r.header("Allow")), (405, "method_not_allowed", Some(allow)), "{method} {path}: {:?}", r.body);
    }
    assert_eq!(stack.request("HEAD", "/health", &[], b"").status, 200);
    assert_eq!(stack.request("GET", "/no-such-path", &[], b"").code(), "not_found");
    let auth = format!("Bearer {DEV_SECRET}");
    let r = stack.request("POST", "/collect", &[("Authorization", &auth), ("Content-Type", "application/json")], b"{not json");
    assert_eq!((r.status, r.code()), (400, "invalid_json"));
    let r = stack.request("POST", "/collect", &[("Authorization", &auth), ("Content-Type", "application/x-www-form-urlencoded")], b"url=x");
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));
    let big = vec![b' '; 600 * 1024];
    let r = stack.request("POST", "/collect", &[("Authorization", &auth), ("Content-Type", "application/json")], &big);
    assert_eq!((r.status, r.code()), (413, "body_too_large"));
    chunked_bodies_are_capped_as_they_arrive(stack, &auth);
    let r = stack.collect(DEV_PUBLISHABLE, &browser(), &json!({"batch":[ev.clone()]}));
    assert_eq!((r.status, r.code()), (400, "batch_needs_secret_key"));
    let r = stack.request("GET", "/collect", &[], b"");
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
}

/// A chunked body has no Content-Length: it is counted as it arrives and refused once past
/// 512 KiB, never buffered whole. 20 bodies of 16 MiB each leave workerd's memory where it was
/// (buffering even one whole would add 16 MiB; all of them, 320 MiB, more than an isolate has).
fn chunked_bodies_are_capped_as_they_arrive(stack: &Stack, auth: &str) {
    let headers = [("Authorization", auth), ("Content-Type", "application/json")];
    let (status, body, _) = stack.post_chunked("/collect", &headers, 16 * 1024 * 1024);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("body_too_large"), "{body}");
    let before = stack.workerd_rss_kib();
    assert!(before > 0, "workerd's memory could not be read");
    for i in 0..20 {
        let (status, body, _) = stack.post_chunked("/collect", &headers, 16 * 1024 * 1024);
        assert_eq!(status, 413, "body {i}: {body}");
    }
    let after = stack.workerd_rss_kib();
    println!("workerd RSS before {before} KiB, after 20 chunked 16 MiB bodies {after} KiB");
    assert!(after < before + 48 * 1024, "workerd grew from {before} KiB to {after} KiB");
}

/// Anyone with the public key can pick an event's id and timestamp: a later event with a
/// stored id must never replace it. And a retry whose timestamp falls on the next day and in
/// the next week (as when the edge stamps it) is the same event, stored once.
fn first_write_of_an_id_wins(stack: &Stack) {
    let (paid_at, paid_at_ch) = support::time_ago(Duration::from_secs(2 * 86_400));
    let server = json!({"type":"event","name":"purchase","id":"order-123","url":"https://example.com/thanks","timestamp":paid_at,"props":{"amount":"99"}});
    assert_eq!(stack.collect(DEV_SECRET, &[], &server).status, 202);
    assert_eq!(stack.wait_count("SELECT count() FROM events WHERE event_id = 'order-123'", 1, LAND), 1);
    let (later, _) = support::time_ago(Duration::from_secs(86_400));
    let forged = json!({"type":"event","name":"refund","id":"order-123","url":"https://example.com/forged","timestamp":later,"props":{"amount":"-99"}});
    let before = stack.log_len();
    assert_eq!(stack.collect(DEV_PUBLISHABLE, &browser(), &forged).status, 202, "the forger cannot tell");
    assert!(stack.log_shows_after(before, "(1 already stored)", LAND), "the batch writer saw the copy:\n{}", stack.logs());
    let stored = stack.query(
        "SELECT event_name, toString(timestamp), url_path, key_kind FROM events_dedup WHERE event_id = 'order-123' FORMAT TabSeparated",
    );
    assert_eq!(stored.trim(), format!("purchase\t{paid_at_ch}\t/thanks\tsecret"), "the first write stands");
    assert_eq!(stack.query("SELECT count() FROM events WHERE event_id = 'order-123'").trim(), "1", "the copy never reached the table");
    // The public key takes an id first: the server's event is stored all the same.
    let squat = json!({"type":"event","name":"refund","id":"order-124","url":"https://example.com/forged"});
    assert_eq!(stack.collect(DEV_PUBLISHABLE, &browser(), &squat).status, 202);
    assert_eq!(stack.wait_count("SELECT count() FROM events WHERE event_id = 'order-124'", 1, LAND), 1);
    std::thread::sleep(Duration::from_millis(1100));
    let real = json!({"type":"event","name":"purchase","id":"order-124","url":"https://example.com/thanks"});
    assert_eq!(stack.collect(DEV_SECRET, &[], &real).status, 202);
    assert_eq!(
        stack.wait_count("SELECT count() FROM events WHERE event_id = 'order-124' AND key_kind = 'secret'", 1, LAND),
        1,
        "{}",
        stack.logs()
    );
    assert_eq!(
        stack.query("SELECT event_name FROM events_dedup WHERE event_id = 'order-124'").trim(),
        "purchase",
        "queries show the server's"
    );

    // Sunday 23:59:59 UTC, then the retry on Monday 00:00:01: another day and another week's
    // partition, where ReplacingMergeTree never looks.
    let mut sunday = (time::OffsetDateTime::now_utc() - time::Duration::days(2)).date();
    while sunday.weekday() != time::Weekday::Sunday {
        sunday = sunday.previous_day().unwrap();
    }
    let rfc = |d: time::Date, t: &str| format!("{d}T{t}Z");
    let first = json!({"type":"pageview","id":"midnight-1","url":"https://example.com/late","timestamp":rfc(sunday, "23:59:59")});
    let retry = json!({"type":"pageview","id":"midnight-1","url":"https://example.com/late","timestamp":rfc(sunday.next_day().unwrap(), "00:00:01")});
    assert_eq!(stack.collect(DEV_SECRET, &[], &first).status, 202);
    assert_eq!(stack.wait_count("SELECT count() FROM events WHERE event_id = 'midnight-1'", 1, LAND), 1);
    assert_eq!(stack.collect(DEV_SECRET, &[], &retry).status, 202);
    // The retry of a whole batch after a failed send (some of it may have been queued): each
    // event once.
    let batch = json!({"batch":[{"url":"https://example.com/a","id":"group-a"},{"url":"https://example.com/b","id":"group-b"}]});
    for _ in 0..2 {
        assert_eq!(stack.collect(DEV_SECRET, &[], &batch).status, 202);
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(stack.wait_count("SELECT count() FROM events_dedup WHERE event_id IN ('group-a','group-b')", 2, LAND), 2);
    std::thread::sleep(Duration::from_secs(3));
    let seen = stack.query("SELECT toString(timestamp) FROM events_dedup WHERE event_id = 'midnight-1' FORMAT TabSeparated");
    assert_eq!(seen.trim(), format!("{sunday} 23:59:59"), "one row, the first");
    assert_eq!(stack.query("SELECT count() FROM events_dedup WHERE event_id IN ('group-a','group-b')").trim(), "2");
}

fn retried_request_is_one_row(stack: &Stack) {
    let (past, _) = support::time_ago(Duration::from_secs(3 * 86_400));
    let ev = json!({"type":"event","name":"checkout","id":"retry-1","url":"https://example.com/checkout","timestamp":past});
    for _ in 0..3 {
        assert_eq!(stack.collect(DEV_SECRET, &[], &ev).status, 202);
    }
    assert_eq!(stack.wait_count("SELECT count() FROM events_dedup WHERE event_id = 'retry-1'", 1, LAND), 1);
    // Let every copy through the batch writer (batches close after 1 s), then look again:
    // however many copies reached the table, queries see one.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stack.query("SELECT count() FROM events_dedup WHERE event_id = 'retry-1'").trim(), "1");
}

/// An e-mail address as `mm_aid` (and in an event id) reaches no row: it is stored as a keyed
/// hash, per project. Export and erasure by the e-mail address, as the client knows it, still
/// find the visitor's events.
fn personal_ids_are_stored_as_keyed_hashes(stack: &Stack) {
    let email = "jane.doe@example.com";
    let event = |id: &str| json!({"type":"event","name":"purchase","url":"https://example.com/checkout","mm_aid": email, "id": id});
    let batch = json!({"batch": [event("order-for-bob@example.com"), {"type":"pageview","url":"https://example.com/","mm_aid": email}]});
    assert_eq!(stack.collect(DEV_SECRET, &[], &batch).status, 202);
    assert_eq!(stack.collect(DEV_OTHER_SECRET, &[], &json!({"type":"pageview","url":"https://example.com/","mm_aid": email})).status, 202);
    let hashed = "SELECT count() FROM events_dedup WHERE startsWith(anonymous_id, 'mmh_')";
    assert_eq!(stack.wait_count(hashed, 3, LAND), 3, "the events did not land hashed; log:\n{}", stack.logs());

    // No table holds the e-mail addresses, in any column.
    for table in ["events", "event_id_hashes", "visitor_day_hashes"] {
        let dump = stack.query(&format!("SELECT * FROM {table} FORMAT JSONEachRow"));
        for needle in ["jane.doe", "bob@example.com"] {
            assert!(!dump.contains(needle), "{needle} stored in {table}:\n{dump}");
        }
    }
    let ids = stack.query("SELECT project_id, anonymous_id FROM events_dedup WHERE startsWith(anonymous_id, 'mmh_') GROUP BY project_id, anonymous_id ORDER BY project_id");
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 2, "one hash per project: {ids:?}");
    assert_ne!(ids[0].split('\t').nth(1), ids[1].split('\t').nth(1), "the same e-mail hashes apart in two projects");

    let sk = format!("Bearer {DEV_SECRET}");
    let r = stack.request("GET", "/visitors/jane.doe%40example.com/events", &[("Authorization", &sk)], b"");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let text = r.body.as_str().map(str::to_string).unwrap_or_else(|| r.body.to_string());
    assert_eq!(text.lines().count(), 2, "export by the e-mail finds both events: {text}");
    assert!(!text.contains("jane.doe") && text.contains("\"anonymous_id\":\"mmh_"), "{text}");

    let r = stack.request("DELETE", "/visitors/jane.doe%40example.com", &[("Authorization", &sk)], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    let left = "SELECT count() FROM events WHERE project_id = 'proj_dev' AND startsWith(anonymous_id, 'mmh_')";
    assert!(support::eventually(LAND, || stack.query(left).trim() == "0"), "erasure by the e-mail deletes the hashed rows");
    let other = "SELECT count() FROM events WHERE project_id = 'proj_other' AND startsWith(anonymous_id, 'mmh_')";
    assert_eq!(stack.query(other).trim(), "1", "the other project's visitor stays");
    // The e-mail is in no statement ClickHouse keeps: not the erasure's mutation, not the log.
    stack.query("SYSTEM FLUSH LOGS");
    let kept = "SELECT (SELECT count() FROM system.mutations WHERE command LIKE '%jane.doe%') + \
                (SELECT count() FROM system.query_log WHERE user != 'default' AND query LIKE '%jane.doe%')";
    assert_eq!(stack.query(kept).trim(), "0", "the e-mail outlives its erasure in ClickHouse's own tables");
    user_ids_outlive_no_erasure(stack);
}

/// A user id is stored only as its keyed hash, whatever it looks like. Erasure by that id (a
/// path that may also name an `mm_aid`, stored as sent) deletes the events, and the id as sent
/// is in nothing that outlives the request: not the erasure's record in KV, kept for days, not
/// the mutation ClickHouse keeps, not its query log.
fn user_ids_outlive_no_erasure(stack: &Stack) {
    let user = "user-4711";
    let event = json!({"type":"event","name":"login","url":"https://example.com/","user_id": user});
    assert_eq!(stack.collect(DEV_SECRET, &[], &event).status, 202);
    let theirs = "SELECT count() FROM events_dedup WHERE project_id = 'proj_dev' AND event_name = 'login'";
    assert_eq!(stack.wait_count(theirs, 1, LAND), 1, "the event did not land; log:\n{}", stack.logs());
    let sk = format!("Bearer {DEV_SECRET}");
    let r = stack.request("DELETE", &format!("/visitors/{user}"), &[("Authorization", &sk)], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    let left = "SELECT count() FROM events WHERE project_id = 'proj_dev' AND event_name = 'login'";
    assert!(support::eventually(LAND, || stack.query(left).trim() == "0"), "erasure by the user id deletes the user's events");
    stack.query("SYSTEM FLUSH LOGS");
    let kept = format!(
        "SELECT (SELECT count() FROM system.mutations WHERE position(command, '{user}') > 0) + \
         (SELECT count() FROM system.query_log WHERE user != 'default' AND position(query, '{user}') > 0)"
    );
    assert_eq!(stack.query(&kept).trim(), "0", "the user id outlives its erasure in ClickHouse's own tables");
    let records = stack.kv_keys("ERASURES");
    assert!(!records.is_empty() && records.iter().all(|k| !k.contains(user)), "the erasure's records spell the user id: {records:?}");
}
