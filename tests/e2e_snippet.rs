//! The browser snippet in a real browser: Debian's Chromium, driven headless by playwright-core
//! (tests/snippet/drive.mjs), loads a page from an allowed origin that includes `/mm.js` from
//! `wrangler dev`; the events it sends are read back from ClickHouse. The public promises it
//! checks: `mm_aid` kept in localStorage, no cookies, no form values.
//! Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use millimetric_edge::native::dev_keys::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;
use support::Stack;

const EDGE_PORT: u16 = 19787;
/// `http://127.0.0.1:8080` is one of the dev project's allowed origins.
const PAGE_PORT: u16 = 8080;

/// Serves the test page for every path (the page and its client-side route alike).
fn serve_page(html: String) {
    let listener = TcpListener::bind(("127.0.0.1", PAGE_PORT)).expect("port 8080 (an allowed origin of the dev key) is free");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", html.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(html.as_bytes());
        }
    });
}

#[test]
#[ignore = "needs wrangler, ClickHouse and Chromium: run scripts/test"]
fn snippet_in_a_real_browser() {
    let stack = Stack::start("snippet", EDGE_PORT, 19123);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let html = std::fs::read_to_string(root.join("tests/snippet/page.html")).unwrap().replace("@EDGE_PORT@", &EDGE_PORT.to_string());
    serve_page(html);

    let script = stack.request("GET", "/mm.js", &[], b"");
    assert_eq!(script.status, 200);
    assert_eq!(script.header("Content-Type"), Some("application/javascript; charset=utf-8"));

    let out = Command::new("node")
        .arg(root.join("tests/snippet/drive.mjs"))
        .arg(format!("http://127.0.0.1:{PAGE_PORT}/"))
        .current_dir(root)
        .output()
        .expect("run node");
    assert!(out.status.success(), "the browser run failed:\n{}\n{}\nworker log:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), stack.logs());
    let seen: Value = serde_json::from_slice(&out.stdout).expect("drive.mjs prints JSON");
    assert_eq!(seen["firstStatus"], 202, "{seen}");

    // mm_aid: a random id in localStorage, the same after a reload.
    let aid = seen["aidBefore"].as_str().expect("mm_aid in localStorage").to_string();
    assert_eq!(aid.len(), 36, "a UUID: {aid}");
    assert_eq!(seen["aidAfter"], aid.as_str(), "kept across page loads");
    assert_eq!(seen["apiId"], aid.as_str());

    // No cookies: none in the page, none in the browser's jar, no Set-Cookie on any answer.
    assert_eq!(seen["documentCookie"], "");
    assert_eq!(seen["cookies"], serde_json::json!([]));
    assert_eq!(seen["setCookies"], serde_json::json!([]));

    // Simple requests only (text/plain, no preflight), and no form value in any of them.
    let requests = seen["requests"].as_array().unwrap();
    assert!(requests.len() >= 4, "four events were sent: {seen}");
    for r in requests {
        assert_eq!(r["method"], "POST", "no preflight: {r}");
        assert!(r["contentType"].as_str().unwrap().starts_with("text/plain"), "{r}");
    }
    let everything_sent = seen["requests"].to_string();
    for secret in ["jane.doe", "4242", "hunter2"] {
        assert!(!everything_sent.contains(secret), "a form value left the page: {secret}");
    }

    // What landed: a pageview of /, one of /pricing (client-side navigation), the custom event
    // there, and the reload's pageview of /pricing.
    let landed = stack.wait_count(&format!("SELECT count() FROM events_dedup WHERE anonymous_id = '{aid}'"), 4, Duration::from_secs(30));
    assert_eq!(landed, 4, "worker log:\n{}", stack.logs());
    let rows = stack.query(&format!(
        "SELECT event_type, event_name, url_path, url_query, referrer_host, browser, prop_keys, prop_values, project_id FROM events_dedup \
         WHERE anonymous_id = '{aid}' ORDER BY timestamp, event_type, url_path FORMAT JSONEachRow"
    ));
    let rows: Vec<Value> = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<(String, String)> = rows.iter().map(|r| (r["event_name"].as_str().unwrap().into(), r["url_path"].as_str().unwrap().into())).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [("pageview", "/"), ("pageview", "/pricing"), ("pageview", "/pricing"), ("signup", "/pricing")].map(|(a, b)| (a.to_string(), b.to_string())),
        "{rows:?}"
    );
    let signup = rows.iter().find(|r| r["event_name"] == "signup").unwrap();
    assert_eq!((signup["prop_keys"].clone(), signup["prop_values"].clone()), (serde_json::json!(["plan", "seats"]), serde_json::json!(["pro", "3"])));
    assert!(rows.iter().all(|r| r["project_id"] == DEV_PROJECT && r["browser"] == "Chrome"), "{rows:?}");
    // The client-side navigation's referrer is the page before it: same site, so not a source.
    let navigated = rows.iter().find(|r| r["event_name"] == "pageview" && r["url_path"] == "/pricing" && r["referrer_host"] == "127.0.0.1");
    assert!(navigated.is_some_and(|r| r["url_query"] == "plan=pro"), "{rows:?}");
    let all_rows = stack.query(&format!("SELECT * FROM events_dedup WHERE anonymous_id = '{aid}' FORMAT JSONEachRow"));
    for secret in ["jane.doe", "4242", "hunter2"] {
        assert!(!all_rows.contains(secret), "a form value was stored: {secret}");
    }
}
