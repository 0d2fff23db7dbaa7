//! Usage and quotas against the real parts (wrangler dev, ClickHouse 18.16): billing counts each
//! stored, non-bot event once through a client's retry, a queue redelivery of an insert that
//! had landed, and a dead-letter replay; refusals, queries and exports are counted; a soft
//! quota shows the overage, a hard cap refuses with 429 `quota_exceeded`; the daily snapshot
//! keeps a day's count after its raw rows are gone.
//! Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use millimetric_core::keys::{KeyKind, KeyRecord};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{time_ago, Stack, ADMIN_TOKEN};

const PROJECT: &str = "proj_usage";
const SECRET: &str = "sk_live_usage_secret_0001";
const LIMITED: &str = "sk_live_usage_limited_0001";
const READER: &str = "rk_live_usage_reader_0001";
const CAPPED_PROJECT: &str = "proj_capped";
const CAPPED: &str = "sk_live_capped_secret_0001";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// Between the edge Worker and ClickHouse: passes everything through, except that once armed it
/// drops ClickHouse's answer to the next insert into `events` of the redelivered batch (its ids
/// start with REDELIVERED; the rows are written; the batch writer sees a broken connection and
/// the queue delivers the message again). Only that insert: another still on its way (a copy of
/// u-retry) would take the drop instead.
struct DropOneAnswer {
    port: u16,
    target: Arc<AtomicU16>,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

impl DropOneAnswer {
    fn start() -> DropOneAnswer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (target, armed, dropped) = (Arc::new(AtomicU16::new(0)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (t, a, d) = (target.clone(), armed.clone(), dropped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (t, a, d) = (t.clone(), a.clone(), d.clone());
                std::thread::spawn(move || pipe(client, t.load(Ordering::SeqCst), a, d));
            }
        });
        DropOneAnswer { port, target, armed, dropped }
    }
}

const REDELIVERED: &str = "u-redeliver-";

fn pipe(client: TcpStream, target: u16, armed: Arc<AtomicBool>, dropped: Arc<AtomicUsize>) {
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else { return };
    // What the request on this connection so far was: an insert into `events`, carrying the batch.
    let (insert_asked, carries_batch) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (mut c_in, mut u_out) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (asked, carries) = (insert_asked.clone(), carries_batch.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 || u_out.write_all(&buf[..n]).is_err() {
                break;
            }
            if support::contains(&buf[..n], "INSERT+INTO+millimetric.events+") {
                asked.store(true, Ordering::SeqCst);
            }
            if support::contains(&buf[..n], REDELIVERED) {
                carries.store(true, Ordering::SeqCst);
            }
        }
        let _ = u_out.shutdown(Shutdown::Write);
    });
    let (mut u_in, mut c_out) = (upstream, client);
    let mut buf = [0u8; 65536];
    while let Ok(n) = u_in.read(&mut buf) {
        if n == 0 {
            break;
        }
        let batch_inserted = insert_asked.swap(false, Ordering::SeqCst) & carries_batch.swap(false, Ordering::SeqCst);
        if batch_inserted && armed.swap(false, Ordering::SeqCst) {
            dropped.fetch_add(1, Ordering::SeqCst);
            let _ = c_out.shutdown(Shutdown::Both);
            let _ = u_in.shutdown(Shutdown::Both);
            return;
        }
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_out.shutdown(Shutdown::Write);
}

fn key(project: &str, kind: KeyKind, limit: Option<u32>) -> KeyRecord {
    KeyRecord { events_per_minute: limit, retention_days: 30, ..KeyRecord::new(project, kind) }
}

fn admin() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn usage_is_exact_and_quotas_hold() {
    // Today and yesterday are read at different moments of the run: no UTC midnight may pass
    // between them (the test runs for a few minutes).
    support::wait_clear_of_midnight(&[&jiff::tz::TimeZone::UTC], Duration::from_secs(10 * 60));
    let proxy = DropOneAnswer::start();
    let stack = Stack::named("usage")
        .var("CLICKHOUSE_URL", &format!("http://127.0.0.1:{}", proxy.port))
        .var("USAGE_FLUSH_MS", "300")
        // The batch writer counts a capped project's month after every batch, not once a minute.
        .var("QUOTA_CHECK_MS", "0")
        .key(SECRET, key(PROJECT, KeyKind::Secret, None))
        .key(LIMITED, key(PROJECT, KeyKind::Secret, Some(2)))
        .key(READER, key(PROJECT, KeyKind::ReadOnly, None))
        .key(CAPPED, key(CAPPED_PROJECT, KeyKind::Secret, None))
        .start();
    // Before the first event: nothing has asked ClickHouse anything yet.
    proxy.target.store(stack.ch_port, Ordering::SeqCst);
    let read = stack.start_read();

    let (refused, stored_too) = send_refused(&stack);
    let stored = send_each_kind_of_copy(&stack, &proxy) + stored_too;
    ask_queries_and_an_export(&stack, &read);
    let (yesterday, _) = snapshot_outlives_raw(&stack);

    let (y, today) = (yesterday, support::time_ago(Duration::ZERO).1[..10].to_string());
    let range = format!("/v1/usage?from={y}&to={today}");
    let mut usage = Value::Null;
    let counted = support::eventually(Duration::from_secs(30), || {
        let r = read.request("GET", &range, &[("Authorization", &format!("Bearer {READER}"))], b"");
        assert_eq!(r.status, 200, "{:?}", r.body);
        usage = r.body;
        usage["totals"]["queries"]["realtime"] == 1
            && usage["totals"]["exports"]["visitor"] == 1
            && usage["totals"]["refused"]["rate_limited"] == 2
    });
    assert!(counted, "the counters never arrived: {usage:#}\n{}", stack.logs());
    let t = &usage["totals"];
    // The events this test stored, each once: the bot's, and yesterday's from the snapshot.
    assert_eq!(t["events"]["stored"], stored + 2, "{usage:#}");
    assert_eq!(t["events"]["bot"], 1, "{usage:#}");
    assert_eq!(t["events"]["billable"], stored + 1, "{usage:#}");
    assert_eq!(t["events"]["by_key_kind"]["secret"], stored + 2, "{usage:#}");
    assert_eq!(t["events"]["by_route"]["collect"], stored + 2, "{usage:#}");
    assert_eq!(usage["days"][0]["events"]["billable"], 1, "yesterday's, from the snapshot: {usage:#}");
    let refused_total: u64 = t["refused"].as_object().unwrap().values().filter_map(Value::as_u64).sum();
    assert_eq!(refused_total, refused, "{usage:#}");
    assert_eq!(t["queries"]["stats"], 1, "{usage:#}");
    assert_eq!(usage["days"].as_array().map(Vec::len), Some(2), "every day listed: {usage:#}");
    // Nothing of the usage answers themselves was counted as a query: well past the flush
    // window of the last of them, the queries are what they were.
    std::thread::sleep(Duration::from_secs(2));
    let again = read.request("GET", &range, &[("Authorization", &format!("Bearer {READER}"))], b"");
    assert_eq!(again.body["totals"]["queries"], t["queries"], "{:#}", again.body);

    // The admin view, across projects.
    let all = stack.request("GET", &format!("/admin/usage?from={y}&to={today}"), &[("Authorization", &admin())], b"");
    assert_eq!(all.status, 200, "{:?}", all.body);
    let mine = all.body["projects"].as_array().unwrap().iter().find(|p| p["project_id"] == PROJECT).cloned().unwrap_or_default();
    assert_eq!(mine["totals"]["events"]["billable"], stored + 1, "{:#}", all.body);
    assert_eq!(stack.request("GET", "/admin/usage", &[], b"").status, 401);
    let bad = read.request("GET", "/v1/usage?from=yesterday", &[("Authorization", &format!("Bearer {READER}"))], b"");
    assert_eq!((bad.status, bad.code()), (400, "invalid_usage_range"), "{:?}", bad.body);

    soft_quota_shows_overage(&stack, &read, stored);
    hard_cap_refuses(&stack);
}

/// Stored events, sent so that each could be counted twice: a client's retry, a message the
/// queue delivers again after its insert landed, two dead letters of one event replayed, plus
/// a bot. Returns the billable (non-bot) events stored.
fn send_each_kind_of_copy(stack: &Stack, proxy: &DropOneAnswer) -> u64 {
    // A client's retry: the same id twice.
    for _ in 0..2 {
        let r = stack.collect(SECRET, &[], &json!({"url":"https://example.com/a","id":"u-retry","mm_aid":"usage-visitor"}));
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    assert_eq!(stack.wait_count("SELECT count() FROM events WHERE event_id = 'u-retry'", 1, Duration::from_secs(30)), 1);
    // A redelivery: the insert lands, its answer is lost, the queue delivers the rows again
    // (after delivery::HANDOFF_DELAY_S: an insert whose answer was lost may still land).
    proxy.armed.store(true, Ordering::SeqCst);
    let batch: Vec<Value> =
        (1..=3).map(|i| json!({"type":"event","name":"order","id": format!("{REDELIVERED}{i}"),"url":"https://example.com/o"})).collect();
    let r = stack.collect(SECRET, &[], &json!({ "batch": batch }));
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert!(support::eventually(Duration::from_secs(60), || proxy.dropped.load(Ordering::SeqCst) == 1), "no insert answer was dropped");
    assert!(
        stack.log_shows("3 rows (3 already stored)", Duration::from_secs(240)),
        "the message was not delivered again after its insert landed:\n{}",
        stack.logs()
    );
    assert_eq!(stack.query("SELECT count() FROM events WHERE event_id LIKE 'u-redeliver-%'").trim(), "3");
    // A dead-letter replay: two dead letters of one event (the schema broken meanwhile).
    stack.query("ALTER TABLE events DROP COLUMN title");
    for _ in 0..2 {
        let r = stack.collect(SECRET, &[], &json!({"url":"https://example.com/dl","id":"u-dead","title":"T"}));
        assert_eq!(r.status, 202);
        std::thread::sleep(Duration::from_millis(1200));
    }
    assert!(
        support::eventually(Duration::from_secs(60), || {
            let r = stack.request("GET", "/admin/dead-letters?limit=100", &[("Authorization", &admin())], b"");
            r.body.to_string().matches("u-dead").count() >= 2
        }),
        "two dead letters of u-dead expected:\n{}",
        stack.logs()
    );
    stack.query("ALTER TABLE events ADD COLUMN title String AFTER url_fragment");
    for _ in 0..2 {
        let r = stack.request("POST", "/admin/dead-letters/replay", &[("Authorization", &admin())], b"");
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    assert_eq!(stack.wait_count("SELECT count() FROM events WHERE event_id = 'u-dead'", 1, Duration::from_secs(60)), 1);
    // A bot: stored, and flagged, so not billed.
    let r = stack.collect(SECRET, &[], &json!({"url":"https://example.com/b","id":"u-bot","user_agent": GOOGLEBOT}));
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(
        stack.wait_count("SELECT count() FROM events WHERE project_id = 'proj_usage' AND is_bot = 1", 1, Duration::from_secs(30)),
        1
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stack.query("SELECT count() FROM events WHERE event_id = 'u-dead'").trim(), "1", "stored once however many copies came");
    // u-retry, three u-redeliver, u-dead (billable), u-bot (not).
    5
}

/// Refusals after the key was known, by code: one invalid event in a batch, and two events over
/// a key's per-minute limit of 2 (two of its four are stored). Returns the events refused and
/// the events stored.
fn send_refused(stack: &Stack) -> (u64, u64) {
    let r = stack.collect(SECRET, &[], &json!({"batch": [{"url":"https://example.com/ok","id":"u-ok"}, {"type":"pageview"}]}));
    assert_eq!((r.status, r.body["rejected"].as_array().map(Vec::len)), (202, Some(1)), "{:?}", r.body);
    let mut limited = 0;
    support::wait_clear_of_minute_edge(Duration::from_secs(15));
    for i in 0..4 {
        let r = stack.collect(LIMITED, &[], &json!({"url":"https://example.com/l","id": format!("u-limited-{i}")}));
        if r.status == 429 {
            assert_eq!(r.code(), "rate_limited");
            limited += 1;
        }
    }
    assert_eq!(limited, 2, "a limit of 2 a minute");
    assert_eq!(
        stack.wait_count("SELECT count() FROM events WHERE event_id = 'u-ok' OR event_id LIKE 'u-limited-%'", 3, Duration::from_secs(30)),
        3
    );
    (3, 3)
}

fn ask_queries_and_an_export(stack: &Stack, read: &support::ReadWorker) {
    let q = read.query(READER, &json!({"metrics":["visitors"],"date_range":"7d"}));
    assert_eq!(q.status, 200, "{:?}", q.body);
    let rt = read.request("GET", "/v1/realtime", &[("Authorization", &format!("Bearer {READER}"))], b"");
    assert_eq!(rt.status, 200, "{:?}", rt.body);
    let export = stack.request("GET", "/visitors/usage-visitor/events", &[("Authorization", &format!("Bearer {SECRET}"))], b"");
    assert_eq!(export.status, 200, "{:?}", export.body);
}

/// A stored event of yesterday, snapshotted by the daily cron, then its raw row deleted: the
/// count stays. Returns yesterday's date.
fn snapshot_outlives_raw(stack: &Stack) -> (String, ()) {
    let (_, at) = time_ago(Duration::from_secs(86_400));
    let row = json!({"project_id": PROJECT, "event_id": "u-yesterday", "timestamp": at, "received_at": at, "key_kind": "secret", "retention_days": 30, "ingest_route": "collect"});
    stack.query(&format!("INSERT INTO events FORMAT JSONEachRow {row}"));
    let r = stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"");
    assert_eq!(r.status, 200);
    let day = at[..10].to_string();
    assert!(
        support::eventually(Duration::from_secs(60), || {
            stack.query(&format!("SELECT count() FROM usage_daily WHERE project_id = '' AND day = '{day}'")).trim() != "0"
        }),
        "the cron did not snapshot yesterday:\n{}",
        stack.logs()
    );
    stack.query("ALTER TABLE events DELETE WHERE event_id = 'u-yesterday'");
    assert_eq!(stack.wait_count("SELECT count() = 0 FROM events WHERE event_id = 'u-yesterday'", 1, Duration::from_secs(30)), 1);
    (day, ())
}

fn soft_quota_shows_overage(stack: &Stack, read: &support::ReadWorker, billable: u64) {
    let path = format!("/admin/projects/{PROJECT}/quota");
    let set = stack.request("PUT", &path, &[("Authorization", &admin())], br#"{"monthly_events": 2}"#);
    assert_eq!(set.status, 200, "{:?}", set.body);
    let bad = stack.request("PUT", &path, &[("Authorization", &admin())], br#"{"monthly_events": 0}"#);
    assert_eq!((bad.status, bad.code()), (400, "invalid_quota"));
    let u = read.request("GET", "/v1/usage", &[("Authorization", &format!("Bearer {READER}"))], b"");
    let q = &u.body["quota"];
    // This month's billable events: today's, and yesterday's if it is in this month.
    let used = q["used"].as_u64().unwrap_or(0);
    assert!(used == billable || used == billable + 1, "{:#}", u.body);
    assert_eq!(
        (q["monthly_events"].as_u64(), q["overage"].as_u64(), q["capped"].as_bool()),
        (Some(2), Some(used - 2), Some(false)),
        "{:#}",
        u.body
    );
    // A soft quota refuses nothing: past it, after the batch writer has counted (every batch
    // here) and the edge's cache of the flag has run out, events are still taken.
    let r = stack.collect(SECRET, &[], &json!({"url":"https://example.com/over","id":"u-over"}));
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(stack.wait_count("SELECT count() FROM events WHERE event_id = 'u-over'", 1, Duration::from_secs(30)), 1);
    std::thread::sleep(Duration::from_secs(11));
    assert!(!stack.kv_keys("KEYS").iter().any(|k| k == &format!("quota_reached:{PROJECT}")), "a soft quota set the cap's flag");
    let r = stack.collect(SECRET, &[], &json!({"url":"https://example.com/over","id":"u-over-2"}));
    assert_eq!(r.status, 202, "{:?}", r.body);
}

fn hard_cap_refuses(stack: &Stack) {
    let path = format!("/admin/projects/{CAPPED_PROJECT}/quota");
    let set = stack.request("PUT", &path, &[("Authorization", &admin())], br#"{"monthly_events": 2, "hard_cap": true}"#);
    assert_eq!(set.status, 200, "{:?}", set.body);
    let mut accepted = 0u64;
    let mut refusal = None;
    for i in 0..120 {
        let r = stack.collect(CAPPED, &[], &json!({"url":"https://example.com/c","id": format!("cap-{i}")}));
        match r.status {
            202 => accepted += 1,
            429 => {
                refusal = Some(r);
                break;
            }
            s => panic!("{s}: {:?}", r.body),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let refusal = refusal.unwrap_or_else(|| panic!("the cap never took hold after {accepted} events:\n{}", stack.logs()));
    assert_eq!(refusal.code(), "quota_exceeded", "{:?}", refusal.body);
    assert!(refusal.header("Retry-After").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > 0), "{:?}", refusal.headers);
    assert!(accepted >= 2, "the quota's own events are taken: {accepted}");
    let stored =
        stack.wait_count(&format!("SELECT count() FROM events WHERE project_id = '{CAPPED_PROJECT}'"), accepted, Duration::from_secs(30));
    assert_eq!(stored, accepted, "every accepted event is stored, overage included");
    let got = stack.request("GET", &path, &[("Authorization", &admin())], b"");
    let q = &got.body["quota"];
    assert_eq!(
        (q["capped"].as_bool(), q["used"].as_u64(), q["overage"].as_u64()),
        (Some(true), Some(stored), Some(stored - 2)),
        "{:#}",
        got.body
    );
    // A raised quota lifts the cap (once the edge's cache of the quota, a minute, has run out),
    // whatever flag is left.
    let raised = stack.request("PUT", &path, &[("Authorization", &admin())], br#"{"monthly_events": 1000, "hard_cap": true}"#);
    assert_eq!(raised.status, 200, "{:?}", raised.body);
    stack.kv_put(
        "KEYS",
        &format!("quota_reached:{CAPPED_PROJECT}"),
        &json!({"month": raised.body["quota"]["month"], "monthly_events": 2}).to_string(),
    );
    let mut refused = 1; // the one above
    let lifted = support::eventually(Duration::from_secs(90), || {
        let status = stack.collect(CAPPED, &[], &json!({"url":"https://example.com/c","id":"cap-lifted"})).status;
        refused += u64::from(status == 429);
        status == 202
    });
    assert!(lifted, "a raised quota did not lift the cap");
    // Each refusal is counted, once.
    assert!(
        support::eventually(Duration::from_secs(30), || {
            stack.query(&format!("SELECT sum(n) FROM usage_counts WHERE project_id = '{CAPPED_PROJECT}' AND dim = 'quota_exceeded'")).trim()
                == refused.to_string()
        }),
        "{refused} quota refusals were not counted once each: {}\n{}",
        stack.query("SELECT project_id, metric, dim, sum(n) FROM usage_counts GROUP BY project_id, metric, dim FORMAT TSV"),
        stack.logs()
    );
}
