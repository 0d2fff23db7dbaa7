//! Errors seen, payloads never: the edge Worker under `wrangler dev` reports 5xx answers and
//! dead-lettered batches to an error monitor speaking Sentry's envelope protocol, here a local
//! receiver that records every request and answers slowly. PII-laden events go through a
//! ClickHouse that refuses them (a dropped column: dead-lettered) and then is stopped (exports
//! answer 503); no envelope holds any of what they carried, any key or visitor id; a storm of
//! 5xx answers costs at most 3 reports a minute whose counts add up to it; and a slow monitor
//! delays no answer. The read Worker reports its own 5xx answers, and an MCP tool call that
//! failed on the server's side (answered as a tool error in a 200) the same way.
//! Run by scripts/test.

mod support;

use millimetric_tools::dev_keys::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Stack;

/// What the events carry that must never reach the monitor.
const EMAIL: &str = "jane.doe@example.com";
const IP: &str = "81.2.69.142";
const PHONE: &str = "+44 20 7946 0958";
const VISITOR: &str = "visitor-7f3a9c";
const TITLE: &str = "Checkout for Jane Doe";
/// How long the receiver waits before answering: longer than any answer may take.
const MONITOR_DELAY: Duration = Duration::from_secs(3);

/// One request the receiver got: its request line and headers, and its body.
#[derive(Clone, Debug)]
struct Received {
    head: String,
    body: String,
}

/// A monitor on a port the OS picks: records each request, answers 200 after MONITOR_DELAY.
fn receiver() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                sink.lock().unwrap().push(Received { head, body: String::from_utf8_lossy(&body).into_owned() });
                std::thread::sleep(MONITOR_DELAY);
                let _ = (&conn).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
            });
        }
    });
    (port, got)
}

/// The event of an envelope (its third line), parsed.
fn event_of(r: &Received) -> serde_json::Value {
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines.len(), 3, "an envelope is a header, an item header and the event: {}", r.body);
    serde_json::from_str(lines[2]).unwrap()
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn errors_are_reported_without_payloads() {
    let (port, got) = receiver();
    let stack = Stack::named("monitor")
        .var("ERROR_MONITOR_DSN", &format!("http://publickey1@127.0.0.1:{port}/42"))
        .var("MM_RELEASE", "edge@test")
        .var("MM_TEST_PANIC", "1")
        .start();
    let received = || got.lock().unwrap().clone();

    // ClickHouse refuses the rows (a column gone): the batches are dead-lettered.
    stack.query("ALTER TABLE events DROP COLUMN title");
    for i in 0..3 {
        let event = json!({
            "type": "pageview", "url": format!("https://shop.example/checkout?email={EMAIL}&n={i}"), "title": TITLE,
            "mm_aid": VISITOR, "ip": IP, "props": {"phone": PHONE, "note": EMAIL}
        });
        assert_eq!(stack.collect(DEV_SECRET, &[("X-Forwarded-For", IP)], &event).status, 202);
    }
    let dead_lettered =
        support::eventually(Duration::from_secs(90), || received().iter().any(|r| event_of(r)["tags"]["kind"] == "dead_letter"));
    assert!(dead_lettered, "no dead-letter report; got {:?}\n{}", received(), stack.logs());

    // ClickHouse down: exports answer 503, each answer as fast as without a monitor (which
    // takes MONITOR_DELAY to answer), and a storm of them costs at most 3 reports a minute.
    stack.stop_clickhouse();
    let path = format!("/visitors/{VISITOR}/events");
    let auth = format!("Bearer {DEV_SECRET}");
    for _ in 0..12 {
        let started = Instant::now();
        let r = stack.request("GET", &path, &[("Authorization", &auth)], b"");
        assert!(r.status >= 500, "{:?}", r.body);
        assert!(started.elapsed() < MONITOR_DELAY, "an answer waited for the monitor: {:?}", started.elapsed());
    }
    let reported =
        support::eventually(Duration::from_secs(30), || received().iter().any(|r| event_of(r)["tags"]["kind"] == "server_error"));
    assert!(reported, "no 5xx report; got {:?}\n{}", received(), stack.logs());
    std::thread::sleep(Duration::from_secs(2));
    let server_errors =
        || -> Vec<serde_json::Value> { received().iter().map(event_of).filter(|e| e["tags"]["kind"] == "server_error").collect() };
    // At most 3 a minute (the storm may straddle a minute's end: count per minute).
    let mut per_minute = std::collections::BTreeMap::<i64, usize>::new();
    for e in server_errors() {
        *per_minute.entry(e["timestamp"].as_f64().unwrap() as i64 / 60).or_default() += 1;
    }
    assert!(per_minute.values().all(|n| *n <= 3), "throttled to 3 a minute: {per_minute:?}");
    // What was held back is reported once its minute is over, at the next request, so the
    // counts add up to the storm's 12.
    let total = || server_errors().iter().map(|e| e["extra"]["count"].as_u64().unwrap()).sum::<u64>();
    let added_up = support::eventually(Duration::from_secs(75), || {
        stack.request("GET", "/health", &[], b"");
        std::thread::sleep(Duration::from_secs(1));
        total() == 12
    });
    assert!(added_up, "the reports' counts add up to 12: {:?}", server_errors());
    // A panic (the test route quotes its URL in the message): reported as kind `panic` with the
    // route template only, and the Worker answers again afterwards.
    let r = stack.request("GET", &format!("/__test/panic?email={EMAIL}&visitor={VISITOR}"), &[], b"");
    assert_eq!(r.status, 500, "{:?}", r.body);
    let panicked = support::eventually(Duration::from_secs(30), || received().iter().any(|r| event_of(r)["tags"]["kind"] == "panic"));
    assert!(panicked, "no panic report; got {:?}\n{}", received(), stack.logs());
    let panic = received().iter().map(event_of).find(|e| e["tags"]["kind"] == "panic").unwrap();
    assert_eq!((panic["tags"]["code"].as_str(), panic["tags"]["route"].as_str()), (Some("panic"), Some("other")), "{panic}");
    assert_eq!(stack.request("GET", "/health", &[], b"").status, 200, "the Worker answers after a panic");

    let all = received();
    let server_errors = server_errors();
    let e = &server_errors[0];
    assert_eq!(e["tags"]["route"], "/visitors/{mm_aid}/events", "{e}");
    assert_eq!(e["release"], "edge@test");
    assert!(e["tags"]["code"].as_str().is_some_and(|c| !c.is_empty() && c != "other"), "{e}");

    // Each report is an envelope for project 42, signed with the DSN's key, and holds nothing
    // any event carried, no key and no visitor id.
    for r in &all {
        assert!(r.head.starts_with("POST /api/42/envelope/ "), "{}", r.head);
        assert!(r.head.contains("sentry_key=publickey1"), "{}", r.head);
        let whole = format!("{}{}", r.head, r.body);
        for secret in [EMAIL, "jane.doe", IP, PHONE, "20 7946", VISITOR, TITLE, "Jane", DEV_SECRET, "sk_live_", DEV_PROJECT, "shop.example"]
        {
            assert!(!whole.contains(secret), "a report holds {secret:?}:\n{whole}");
        }
    }
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn the_read_workers_failures_are_reported_mcp_tool_calls_included() {
    let (port, got) = receiver();
    let stack = Stack::named("monitor-read").start();
    let dsn = format!("http://publickey1@127.0.0.1:{port}/42");
    let read = stack.start_read_with(&[("ERROR_MONITOR_DSN", &dsn), ("MM_RELEASE", "read@test")]);
    let routes = || -> Vec<String> {
        got.lock()
            .unwrap()
            .iter()
            .map(event_of)
            .filter(|e| e["tags"]["kind"] == "server_error")
            .map(|e| e["tags"]["route"].to_string())
            .collect()
    };
    stack.stop_clickhouse();
    // An agent's tool call while ClickHouse is down: a tool error in a 200, as MCP frames it,
    // and a report all the same.
    let auth = format!("Bearer {DEV_READ_ONLY}");
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "overview", "arguments": {"date_range": "7d"}}});
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json"), ("MCP-Protocol-Version", "2025-06-18")];
    let r = read.request("POST", "/mcp", &headers, call.to_string().as_bytes());
    assert_eq!((r.status, r.body["result"]["isError"].as_bool()), (200, Some(true)), "{:?}", r.body);
    let reported = support::eventually(Duration::from_secs(30), || routes().iter().any(|r| r == "\"/mcp\""));
    assert!(reported, "no report of the failed tool call: {:?}\n{}", routes(), read.logs());
    // The Stats API's own 503, for comparison.
    let r = read.query(DEV_READ_ONLY, &json!({"metrics": ["visitors"], "date_range": "7d"}));
    assert!(r.status >= 500, "{:?}", r.body);
    let reported = support::eventually(Duration::from_secs(30), || routes().iter().any(|r| r == "\"/v1/query\""));
    assert!(reported, "no report of the query's 503: {:?}\n{}", routes(), read.logs());
    // Neither holds the key.
    for r in got.lock().unwrap().iter() {
        assert!(!format!("{}{}", r.head, r.body).contains(DEV_READ_ONLY), "a report holds the key");
    }
}
