//! The MCP server (`POST /mcp` on the read Worker) end to end, with real MCP clients no one
//! here wrote: the official Python SDK (PyPI `mcp`, in $MM_CACHE/mcp-venv from scripts/setup)
//! in its modern mode (it probes `server/discover`, speaks 2026-07-28) and its legacy mode
//! (`initialize`, 2025-11-25), and the official TypeScript SDK (npm `@modelcontextprotocol/sdk`,
//! `initialize`, 2025-11-25). Each lists the tools and calls every one against `wrangler dev`
//! with ClickHouse holding events, and the numbers must equal what `POST /v1/query` (or
//! `GET /v1/realtime`) answers for the same question. A raw exchange follows 2025-06-18 by
//! hand; then auth, the spec's error codes, 202 and 405 over HTTP.
//! Run: `cargo test --test e2e_mcp -- --include-ignored` (scripts/test runs it too).

mod support;

use millimetric_tools::dev_keys::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use support::{ch_time, ReadWorker, Stack};

const DAY: u64 = 86_400;

#[allow(clippy::too_many_arguments)] // one argument per column the test varies
fn row(project: &str, id: &str, t: i64, name: &str, path: &str, aid: &str, source: &str, props: &[(&str, &str)], bot: bool) -> String {
    let t = ch_time(t);
    json!({
        "project_id": project, "event_id": id, "timestamp": t, "received_at": t,
        "event_type": if name == "pageview" { "pageview" } else { "custom" }, "event_name": name, "anonymous_id": aid,
        "url_host": "example.com", "url_path": path, "url_query": "", "url_fragment": "", "title": "", "referrer": "", "referrer_host": "",
        "country": "DE", "region": "", "city": "", "browser": "Firefox", "os": "Linux", "device_type": "desktop", "is_bot": bot as u8,
        "source": source, "medium": if source.is_empty() { "direct" } else { "referral" }, "utm_source": "", "utm_medium": "", "utm_campaign": "",
        "utm_term": "", "utm_content": "", "click_id_type": "", "click_id": "",
        "prop_keys": props.iter().map(|p| p.0).collect::<Vec<_>>(), "prop_values": props.iter().map(|p| p.1).collect::<Vec<_>>(),
        "key_kind": "secret", "retention_days": 90,
    })
    .to_string()
}

/// When the seeded events happened, in seconds before `now`, all from that one anchor; proj_dev's
/// days are UTC's. `layout_keeps_each_event_in_its_period` checks each at every time of day.
mod layout {
    use super::DAY;

    /// This week's visitor `v` (0..24): 25 h to ~5.8 days ago, inside "7d" (today excluded).
    pub fn this_week(v: u64) -> u64 {
        DAY + 3600 + v * 5 * 3600
    }
    /// The week before's visitor `v` (0..10): inside "7d"'s previous period.
    pub fn week_before(v: u64) -> u64 {
        8 * DAY + v * 7200
    }
    /// Visitor `v` (0..3) of the last minutes (realtime): seconds ago, yet never before today's
    /// midnight, or "7d" would count them (`since_midnight`: seconds of today gone at `now`).
    pub fn just_now(v: u64, since_midnight: u64) -> u64 {
        (5 + v * 10).min(since_midnight)
    }
}

/// Events for proj_dev over the last two weeks (this week's 7 days and the week before), a
/// few in the last minutes, bots, and another project's events that must never show.
fn seed(stack: &Stack, now: i64) -> usize {
    let at = |ago: u64| now - ago as i64;
    let since_midnight = now.rem_euclid(DAY as i64) as u64;
    let mut rows = Vec::new();
    let pages = ["/", "/pricing", "/docs", "/blog/a"];
    let sources = ["", "Google", "ChatGPT"];
    for v in 0..24u64 {
        let aid = format!("v{v}");
        let ago = layout::this_week(v);
        let n = 1 + v % 4;
        for i in 0..n {
            rows.push(row(
                "proj_dev",
                &format!("e{v}-{i}"),
                at(ago - i * 60),
                "pageview",
                pages[((v + i) % 4) as usize],
                &aid,
                sources[(v % 3) as usize],
                &[],
                false,
            ));
        }
        if v % 3 == 0 {
            rows.push(row(
                "proj_dev",
                &format!("s{v}"),
                at(ago - 30),
                "signup",
                "/pricing",
                &aid,
                sources[(v % 3) as usize],
                &[("plan", if v % 2 == 0 { "pro" } else { "free" })],
                false,
            ));
        }
        if v % 5 == 0 {
            rows.push(row(
                "proj_dev",
                &format!("p{v}"),
                at(ago - 40),
                "purchase",
                "/pricing",
                &aid,
                "",
                &[("plan", "pro"), ("amount", "10")],
                false,
            ));
        }
    }
    // The week before: fewer visitors (for the overview's change).
    for v in 0..10u64 {
        rows.push(row(
            "proj_dev",
            &format!("old{v}"),
            at(layout::week_before(v)),
            "pageview",
            "/",
            &format!("old{v}"),
            "Google",
            &[],
            false,
        ));
    }
    // Right now: three visitors in the last minutes (realtime).
    for v in 0..3u64 {
        rows.push(row(
            "proj_dev",
            &format!("now{v}"),
            at(layout::just_now(v, since_midnight)),
            "pageview",
            "/",
            &format!("now{v}"),
            "",
            &[],
            false,
        ));
    }
    // Bots, and another project: never counted for proj_dev.
    rows.push(row("proj_dev", "bot1", at(2 * DAY), "bot_only_event", "/", "bot", "", &[("botkey", "x")], true));
    rows.push(row("proj_other", "o1", at(2 * DAY), "other_only_event", "/other-only", "o1", "", &[("secret_key", "y")], false));
    rows.push(row("proj_other", "o2", at(2 * DAY), "pageview", "/other-only", "o1", "", &[], false));
    stack.query(&format!("INSERT INTO events FORMAT JSONEachRow\n{}", rows.join("\n")));
    rows.len()
}

fn python(url: &str, key: &str, mode: &str, calls: &Value) -> Value {
    let py = support::cache_dir().join("mcp-venv/bin/python");
    assert!(py.exists(), "{}: missing; run scripts/setup (it installs the Python MCP SDK)", py.display());
    support::run_json(Command::new(py).arg(root().join("tests/mcp/client.py")).args([url, key, mode, &calls.to_string()]))
}

fn node(url: &str, key: &str, calls: &Value) -> Value {
    support::run_json(Command::new("node").current_dir(root()).arg("tests/mcp/client.mjs").args([url, key, &calls.to_string()]))
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const COUNTS: [&str; 7] = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"];

/// One call per tool (and two that must be tool errors).
fn calls() -> Value {
    json!([
        ["overview", {"date_range": "7d"}],
        ["top", {"dimension": "event:page", "metric": "pageviews", "date_range": "7d", "limit": 3}],
        ["timeseries", {"metric": "visitors", "interval": "day", "date_range": "7d"}],
        ["realtime", {}],
        ["list_events", {"date_range": "7d"}],
        ["query_stats", {"metrics": ["visitors", "conversion_rate"], "date_range": "7d", "dimensions": ["visit:source"], "filters": [["is", "event:name", ["signup"]]]}],
        ["explain_metrics", {}],
        ["top", {"dimension": "time:day"}],
        ["query_stats", {"metrics": ["visitors"], "date_range": "fortnight"}],
        ["funnel", {"steps": [{"page": "/*"}, {"event": "signup"}, {"event": "purchase"}], "date_range": "7d", "window": "7d", "breakdown": "visit:source"}],
        ["attribution", {"goal": {"event": "signup"}, "date_range": "7d", "model": "linear"}],
        ["retention", {"period": "day", "date_range": "7d"}],
        ["paths", {"start": {"page": "/*"}, "depth": 2, "date_range": "7d"}],
    ])
}

fn call(out: &Value, i: usize) -> &Value {
    let c = &out["calls"][i];
    assert_eq!(c["name"], calls()[i][0], "{out}");
    c
}

fn ok(out: &Value, i: usize) -> &Value {
    let c = call(out, i);
    assert_eq!(c["isError"], false, "{} failed: {c}", c["name"]);
    assert!(c["text"][0].as_str().is_some_and(|t| !t.is_empty()), "a summary for {}", c["name"]);
    &c["structuredContent"]
}

/// JSON with every number as f64: 140 and 140.0 are the same number (a client's JSON library
/// may write either).
fn norm(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
        other => other.clone(),
    }
}

macro_rules! same {
    ($a:expr, $b:expr, $($msg:tt)*) => { assert_eq!(norm(&$a), norm(&$b), $($msg)*) };
}

/// Every tool's numbers against `/v1/query` (or `/v1/realtime`) for the same question.
fn check_against_the_api(read: &ReadWorker, out: &Value) {
    let tools: Vec<&str> = out["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        tools,
        [
            "overview",
            "top",
            "timeseries",
            "realtime",
            "list_events",
            "query_stats",
            "funnel",
            "attribution",
            "retention",
            "paths",
            "explain_metrics"
        ],
        "{}",
        out["sdk"]
    );
    for t in out["tools"].as_array().unwrap() {
        assert_eq!(t["readOnlyHint"], true, "{t}");
        assert_eq!(t["inputSchema"]["type"], "object");
        assert!(t["description"].as_str().unwrap().contains("Example"));
    }
    let q = |body: Value| {
        let r = read.query(DEV_READ_ONLY, &body);
        assert_eq!(r.status, 200, "{body}: {:?}", r.body);
        r.body
    };

    // overview = the counts with compare.
    let s = ok(out, 0);
    let api = q(json!({"metrics": COUNTS, "date_range": "7d", "compare": "previous_period"}));
    let row = &api["results"][0];
    for (i, m) in COUNTS.iter().enumerate() {
        same!(s["metrics"][m]["value"], row["metrics"][i], "overview {m}");
        same!(s["metrics"][m]["previous"], row["comparison"]["metrics"][i], "overview previous {m}");
        same!(s["metrics"][m]["change"], row["comparison"]["change"][i], "overview change {m}");
    }
    same!(s["metrics"]["visitors"]["value"], json!(24), "24 visitors this week (no bots, no other project, none from today)");
    same!(s["metrics"]["visitors"]["previous"], json!(10), "previous week");
    assert_eq!(s["date_range"], api["query"]["date_range"]);

    // top = one dimension ordered by the metric.
    let s = ok(out, 1);
    let api = q(
        json!({"metrics": ["pageviews", "visitors", "percentage"], "date_range": "7d", "dimensions": ["event:page"], "order_by": [["pageviews", "desc"]], "pagination": {"limit": 3}, "include": {"total_rows": true}}),
    );
    let want: Vec<Value> = api["results"].as_array().unwrap().iter().map(|r| json!({"value": r["dimensions"][0], "pageviews": r["metrics"][0], "visitors": r["metrics"][1], "percentage": r["metrics"][2]})).collect();
    same!(s["rows"], json!(want), "top");
    assert_eq!(s["rows"].as_array().unwrap().len(), 3);
    same!(json!([s["total_rows"], api["meta"]["total_rows"]]), json!([4, 4]), "total_rows");

    // timeseries = the metric by time:day.
    let s = ok(out, 2);
    let api = q(
        json!({"metrics": ["visitors"], "date_range": "7d", "dimensions": ["time:day"], "order_by": [["time:day", "asc"]], "pagination": {"limit": 10000}}),
    );
    let want: Vec<Value> =
        api["results"].as_array().unwrap().iter().map(|r| json!({"time": r["dimensions"][0], "value": r["metrics"][0]})).collect();
    assert!(!want.is_empty());
    same!(s["points"], json!(want), "timeseries");

    // realtime = GET /v1/realtime (its minutes may have moved on by one; the counts have not).
    let s = ok(out, 3);
    let api = read.request("GET", "/v1/realtime", &[("Authorization", &format!("Bearer {DEV_READ_ONLY}"))], b"").body;
    same!(s["current_visitors"], api["current_visitors"], "realtime");
    same!(s["current_visitors"], json!(3), "realtime");
    let pv = |v: &Value| v["last_30_minutes"].as_array().unwrap().iter().map(|m| m["pageviews"].as_f64().unwrap()).sum::<f64>();
    assert_eq!((pv(s), pv(&api)), (3.0, 3.0));

    // list_events = event:name's counts, less pageviews, with the keys seen.
    let s = ok(out, 4);
    let api =
        q(json!({"metrics": ["events", "visitors"], "date_range": "7d", "dimensions": ["event:name"], "pagination": {"limit": 10000}}));
    let mut want: Vec<(String, Value, Value)> = api["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dimensions"][0] != "pageview")
        .map(|r| (r["dimensions"][0].as_str().unwrap().to_string(), norm(&r["metrics"][0]), norm(&r["metrics"][1])))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let mut got: Vec<(String, Value, Value)> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), norm(&e["events"]), norm(&e["visitors"])))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "list_events");
    assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["purchase", "signup"], "no bot's or other project's event");
    let keys = |name: &str| s["events"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap()["property_keys"].clone();
    assert_eq!((keys("signup"), keys("purchase")), (json!(["plan"]), json!(["amount", "plan"])));
    assert_eq!(s["date_range"], api["query"]["date_range"]);

    // query_stats = /v1/query itself.
    let s = ok(out, 5);
    let api = q(calls()[5][1].clone());
    same!(s["results"], api["results"], "query_stats");
    same!(s["query"], api["query"], "query_stats echo");
    assert!(!s["results"].as_array().unwrap().is_empty());

    // explain_metrics: the definitions of docs/stats-api.md.
    let s = ok(out, 6);
    assert!(s["definitions"]["bounce"].as_str().unwrap().starts_with("a visit with one pageview and no custom event"));

    // Tool errors: isError and a sentence saying what to change.
    let e = call(out, 7);
    assert_eq!(e["isError"], true);
    assert!(e["text"][0].as_str().unwrap().contains("timeseries"), "{e}");
    let e = call(out, 8);
    assert_eq!(e["isError"], true);
    assert!(e["text"][0].as_str().unwrap().contains("date_range"), "{e}");
    assert!(!out.to_string().contains("other-only") && !out.to_string().contains("bot_only_event"));

    // funnel = POST /v1/funnel itself.
    let s = ok(out, 9);
    let r = read.request(
        "POST",
        "/v1/funnel",
        &[("Authorization", &format!("Bearer {DEV_READ_ONLY}")), ("Content-Type", "application/json")],
        calls()[9][1].to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    same!(s["steps"], r.body["steps"], "funnel");
    same!(s["breakdown"], r.body["breakdown"], "funnel breakdown");
    assert!(s["steps"][0]["visitors"].as_f64().unwrap() > 0.0, "nobody entered the funnel: {s}");

    // attribution = POST /v1/attribution itself.
    let s = ok(out, 10);
    let r = read.request(
        "POST",
        "/v1/attribution",
        &[("Authorization", &format!("Bearer {DEV_READ_ONLY}")), ("Content-Type", "application/json")],
        calls()[10][1].to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    same!(s["channels"], r.body["channels"], "attribution");
    same!(s["total"], r.body["total"], "attribution total");
    assert!(s["total"]["conversions"].as_f64().unwrap() > 0.0, "no conversions: {s}");

    // retention = POST /v1/retention itself.
    let s = ok(out, 11);
    let r = read.request(
        "POST",
        "/v1/retention",
        &[("Authorization", &format!("Bearer {DEV_READ_ONLY}")), ("Content-Type", "application/json")],
        calls()[11][1].to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    same!(s["cohorts"], r.body["cohorts"], "retention");
    assert!(!s["cohorts"].as_array().unwrap().is_empty(), "no cohorts: {s}");

    // paths = POST /v1/paths itself (the tool asks for 20 paths).
    let s = ok(out, 12);
    let mut body = calls()[12][1].clone();
    body["pagination"] = json!({"limit": 20});
    let r = read.request(
        "POST",
        "/v1/paths",
        &[("Authorization", &format!("Bearer {DEV_READ_ONLY}")), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    same!(s["paths"], r.body["paths"], "paths");
    same!(s["total"], r.body["total"], "paths total");
    assert!(s["total"]["visits"].as_f64().unwrap() > 0.0, "no visit reached the start: {s}");
}

/// One raw JSON-RPC POST to /mcp.
fn post(read: &ReadWorker, key: Option<&str>, headers: &[(&str, &str)], body: &Value) -> support::Reply {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut h: Vec<(&str, &str)> = vec![("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")];
    if let Some(a) = &auth {
        h.push(("Authorization", a));
    }
    h.extend_from_slice(headers);
    read.request("POST", "/mcp", &h, body.to_string().as_bytes())
}

#[test]
#[ignore = "needs wrangler, ClickHouse and the MCP SDKs: run scripts/test"]
fn mcp_clients_agree_with_the_stats_api() {
    // One anchor for every event, read just before they go in (realtime counts the last
    // minutes); no UTC midnight passes while the test runs ("7d" would move).
    support::wait_clear_of_midnight(&[&jiff::tz::TimeZone::UTC], Duration::from_secs(5 * 60));
    let stack = Stack::named("mcp").start();
    let read = stack.start_read();
    let now = jiff::Timestamp::now().as_second();
    let n = seed(&stack, now);
    assert_eq!(stack.query("SELECT count() FROM events").trim(), n.to_string());
    let url = format!("http://127.0.0.1:{}/mcp", read.port);

    // The Python SDK, modern: server/discover, then 2026-07-28 per request.
    let out = python(&url, DEV_READ_ONLY, "auto", &calls());
    assert_eq!(out["protocol_version"], "2026-07-28", "{out}");
    assert_eq!(out["server"], "millimetric");
    check_against_the_api(&read, &out);
    println!("python mcp (auto): {} spoken, {} calls checked", out["protocol_version"], out["calls"].as_array().unwrap().len());

    // The Python SDK, legacy: initialize (2025-11-25).
    let out = python(&url, DEV_SECRET, "legacy", &calls());
    assert_eq!(out["protocol_version"], "2025-11-25", "{out}");
    check_against_the_api(&read, &out);
    println!("python mcp (legacy): {} spoken", out["protocol_version"]);

    // The TypeScript SDK: initialize (2025-11-25).
    let out = node(&url, DEV_READ_ONLY, &calls());
    assert_eq!(out["protocol_version"], "2025-11-25", "{out}");
    assert_eq!(out["server"], "millimetric");
    check_against_the_api(&read, &out);
    println!("typescript sdk: {} spoken", out["protocol_version"]);

    // The MCP Inspector's CLI (npm @modelcontextprotocol/inspector 2.12.0, installed by
    // scripts/setup into the cache: its tree cannot go into package-lock).
    let inspector = support::cache_dir().join("mcp-inspector-2.12.0/node_modules/.bin/mcp-inspector");
    let inspect = |args: &[&str]| -> (String, String, bool) {
        let out = Command::new(&inspector)
            .current_dir(root())
            .args(["--cli", &url, "--transport", "http", "--header", &format!("Authorization: Bearer {DEV_READ_ONLY}")])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run the MCP Inspector CLI at {} (scripts/setup installs it): {e}", inspector.display()));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.success())
    };
    // It opens with `initialize` (2025-11-25).
    let json_of = |(stdout, stderr, ok): (String, String, bool)| -> Value {
        assert!(ok, "the Inspector CLI failed:\n{stdout}\n{stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("the Inspector printed no JSON ({e}): {stdout}"))
    };
    let listed = json_of(inspect(&["--method", "tools/list"]));
    assert_eq!(
        listed["tools"].as_array().unwrap().len(),
        millimetric_core::mcp::tools::definitions().as_array().unwrap().len(),
        "{listed}"
    );
    let called = json_of(inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "top",
        "--tool-arg",
        "dimension=visit:source",
        "--tool-arg",
        "date_range=7d",
    ]));
    let api = read.query(DEV_READ_ONLY, &json!({"metrics": ["visitors", "percentage"], "date_range": "7d", "dimensions": ["visit:source"], "order_by": [["visitors", "desc"]], "pagination": {"limit": 10}, "include": {"total_rows": true}})).body;
    let want: Vec<Value> = api["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"value": r["dimensions"][0], "visitors": r["metrics"][0], "percentage": r["metrics"][1]}))
        .collect();
    same!(called["structuredContent"]["rows"], json!(want), "the Inspector's top");
    assert_eq!(called["structuredContent"]["rows"].as_array().unwrap().len(), 3, "{called}");
    println!("mcp inspector cli: tools listed and top checked");

    // Another project's key sees its own events only.
    let out = python(&url, DEV_OTHER_READ_ONLY, "auto", &json!([["list_events", {"date_range": "7d"}]]));
    let names: Vec<&str> =
        out["calls"][0]["structuredContent"]["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["other_only_event"]);

    // 2025-06-18 by hand: initialize, the initialized notification (202, no body), then requests
    // with the negotiated version in MCP-Protocol-Version. No session id is minted.
    let r = post(
        &read,
        Some(DEV_READ_ONLY),
        &[],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}),
    );
    assert_eq!((r.status, r.body["result"]["protocolVersion"].clone()), (200, json!("2025-06-18")), "{:?}", r.body);
    assert!(r.header("Mcp-Session-Id").is_none());
    let v = [("MCP-Protocol-Version", "2025-06-18")];
    let r = post(&read, Some(DEV_READ_ONLY), &v, &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    assert_eq!((r.status, r.body.clone()), (202, json!("")));
    let r = post(&read, Some(DEV_READ_ONLY), &v, &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    assert_eq!(r.body["result"]["tools"].as_array().unwrap().len(), millimetric_core::mcp::tools::definitions().as_array().unwrap().len());
    let r = post(
        &read,
        Some(DEV_READ_ONLY),
        &v,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "overview", "arguments": {"date_range": "7d"}}}),
    );
    assert_eq!(r.body["result"]["structuredContent"]["metrics"]["visitors"]["value"].as_f64(), Some(24.0), "{:?}", r.body);
    assert!(r.body["result"].get("resultType").is_none());
    let r = post(
        &read,
        Some(DEV_READ_ONLY),
        &v,
        &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "no_such_tool"}}),
    );
    assert_eq!(r.body["error"]["code"], -32602, "an unknown tool is a protocol error");

    // Modern by hand: the headers must match the body; versions, unknown methods.
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let modern = |method: &str, name: Option<&str>, mut params: Value, headers: &[(&str, &str)]| {
        params["_meta"] = meta.clone();
        let mut h = vec![("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
        if let Some(n) = name {
            h.push(("Mcp-Name", n));
        }
        h.extend_from_slice(headers);
        post(&read, Some(DEV_READ_ONLY), &h, &json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}))
    };
    let r = modern("server/discover", None, json!({}), &[]);
    assert_eq!((r.status, r.body["result"]["supportedVersions"].clone()), (200, json!(["2026-07-28", "2025-11-25", "2025-06-18"])));
    let r = modern("tools/call", Some("top"), json!({"name": "overview", "arguments": {}}), &[]);
    assert_eq!((r.status, r.body["error"]["code"].clone()), (400, json!(-32020)), "{:?}", r.body);
    let r = modern("tools/call", Some("=?base64?b3ZlcnZpZXc=?="), json!({"name": "overview", "arguments": {"date_range": "7d"}}), &[]);
    assert_eq!(
        (r.status, r.body["result"]["structuredContent"]["metrics"]["visitors"]["value"].as_f64()),
        (200, Some(24.0)),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["result"]["resultType"], "complete");
    let r = modern("resources/list", None, json!({}), &[]);
    assert_eq!((r.status, r.body["error"]["code"].clone()), (404, json!(-32601)));
    let r = post(
        &read,
        Some(DEV_READ_ONLY),
        &[("MCP-Protocol-Version", "3000-01-01"), ("Mcp-Method", "tools/list")],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "3000-01-01", "io.modelcontextprotocol/clientCapabilities": {}}}}),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].clone(), r.body["error"]["data"]["requested"].clone()),
        (400, json!(-32022), json!("3000-01-01"))
    );
    let r = read.request(
        "POST",
        "/mcp",
        &[("Authorization", &format!("Bearer {DEV_READ_ONLY}"))],
        b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}]",
    );
    assert_eq!((r.status, r.body["error"]["code"].clone()), (400, json!(-32600)));
    let r = read.request("POST", "/mcp", &[("Authorization", &format!("Bearer {DEV_READ_ONLY}"))], b"{nope");
    assert_eq!((r.status, r.body["error"]["code"].clone()), (400, json!(-32700)));

    // GET and DELETE: 405.
    for m in ["GET", "DELETE"] {
        let r = read.request(m, "/mcp", &[("Authorization", &format!("Bearer {DEV_READ_ONLY}"))], b"");
        assert_eq!(r.status, 405, "{m}");
    }

    // Auth: a Bearer key, never in the URL; 401 with WWW-Authenticate, pk_live_ 403.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let r = post(&read, None, &v, &list);
    assert_eq!((r.status, r.header("WWW-Authenticate")), (401, Some(r#"Bearer realm="millimetric""#)));
    for bad in ["rk_live_made_up_0001", "hello", DEV_REVOKED] {
        let r = post(&read, Some(bad), &v, &list);
        assert_eq!(r.status, 401, "{bad}");
        assert!(
            r.header("WWW-Authenticate").is_some_and(|h| h.starts_with(r#"Bearer realm="millimetric", error="invalid_token""#)),
            "{bad}: {:?}",
            r.headers
        );
    }
    let r = post(&read, Some(DEV_PUBLISHABLE), &v, &list);
    assert_eq!(r.status, 403);
    assert!(r.header("WWW-Authenticate").unwrap().contains("insufficient_scope"));
    // A credential in another scheme is no token: the bare challenge (RFC 6750 §3.1).
    let basic: Vec<(&str, &str)> = v.iter().copied().chain([("Authorization", "Basic Zm9vOg==")]).collect();
    let r = read.request("POST", "/mcp", &basic, list.to_string().as_bytes());
    assert_eq!((r.status, r.header("WWW-Authenticate")), (401, Some(r#"Bearer realm="millimetric""#)));
    let r =
        read.request("POST", &format!("/mcp?key={DEV_READ_ONLY}"), &[("MCP-Protocol-Version", "2025-06-18")], list.to_string().as_bytes());
    assert_eq!(r.status, 401, "a key in the URL is not a key");
    // A web page (its Origin), even with a good key: 403, as the transport requires (DNS
    // rebinding: such a page names the server's own host). No Origin at all is served.
    let own = format!("http://127.0.0.1:{}", read.port);
    for (origin, status) in [("https://evil.example", 403), ("null", 403), (own.as_str(), 403)] {
        let h: Vec<(&str, &str)> = v.iter().copied().chain([("Origin", origin)]).collect();
        let r = post(&read, Some(DEV_READ_ONLY), &h, &list);
        assert_eq!(r.status, status, "Origin {origin}: {:?}", r.body);
    }

    // The Stats API's rate limit (120 a minute per key) covers tool calls: run it down. The
    // limit counts fixed minutes: 130 calls could fall 65 + 65 either side of a minute's end
    // and never meet it (it happened); 250 within two minutes put more than 120 in one.
    let mut limited = None;
    for i in 0..250 {
        let r = post(
            &read,
            Some(DEV_OTHER_SECRET),
            &v,
            &json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "realtime", "arguments": {}}}),
        );
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = limited.expect("the 121st query of a minute is refused");
    assert!(r.header("Retry-After").is_some());
    // tools/list and explain_metrics run no query, so still answer.
    let r = post(&read, Some(DEV_OTHER_SECRET), &v, &list);
    assert_eq!(r.status, 200);
}

/// Every seeded event in its period, whatever the time of day the test starts at: "7d" is the
/// 7 UTC days before today's, its previous period the 7 before those, realtime the last 30
/// minutes (and today, which "7d" leaves out).
#[test]
fn layout_keeps_each_event_in_its_period() {
    let day_of = |since_midnight: u64, ago: u64| (since_midnight as i64 - ago as i64).div_euclid(DAY as i64);
    let times = (0..DAY).filter(|s| s % 60 == 0 || *s < 120 || *s > DAY - 120);
    for s in times {
        for v in 0..24 {
            for ago in [layout::this_week(v), layout::this_week(v) - 3 * 60 - 40] {
                assert!((-7..=-1).contains(&day_of(s, ago)), "this week's visitor {v} at {s} s past midnight: day {}", day_of(s, ago));
            }
        }
        for v in 0..10 {
            assert!((-14..=-8).contains(&day_of(s, layout::week_before(v))), "the week before's visitor {v} at {s} s past midnight");
        }
        for v in 0..3 {
            let ago = layout::just_now(v, s);
            assert!(day_of(s, ago) == 0 && ago <= 30 * 60, "visitor {v} of the last minutes at {s} s past midnight: {ago} s ago");
        }
    }
}
