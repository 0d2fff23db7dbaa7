//! The browser snippet in a real browser: Debian's Chromium, driven headless by playwright-core
//! (tests/snippet/drive.mjs), loads pages of `www.site.test` that include `/mm.js` from the
//! ingest host `ingest.site.test` (both names mapped to loopback, so the ingest host is a
//! subdomain of the site, as in many deployments): a recorder of what the browser really sent
//! (bodies, Cookie headers), in front of `wrangler dev`. The events are read back from ClickHouse. The promises it checks: `mm_aid` kept in localStorage; no cookie set, none
//! sent to the ingest host; no form value sent or stored; no fragment sent unless hash routing
//! is on; the new page's title after a client-side navigation; a query-only replaceState is no
//! pageview. Every privacy check is also run against deliberately broken copies of the snippet
//! (made here from the served one), and must catch each: a check that cannot fail proves nothing.
//! Then the page's life beyond a plain load (tests/snippet/lifecycle.mjs): a prerendered page
//! counted once shown, a restore from the back/forward cache counted, and a burst larger than
//! keepalive requests may hold all stored; each caught without its behaviour, the same way.
//! Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use millimetric_core::keys::{KeyKind, KeyRecord};
use millimetric_tools::dev_keys::*;
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use support::proxy::{forward, header, read_request};
use support::Stack;

/// The page server's listener: its port is the OS's choice, held from the first use on.
static PAGE: OnceLock<TcpListener> = OnceLock::new();
/// The ingest host as the browser sees it: a recorder in front of the Worker.
static INGEST: OnceLock<TcpListener> = OnceLock::new();

fn held_listener(cell: &'static OnceLock<TcpListener>) -> &'static TcpListener {
    cell.get_or_init(|| TcpListener::bind(("127.0.0.1", 0)).expect("a port from the OS"))
}
fn port_of(cell: &'static OnceLock<TcpListener>) -> u16 {
    held_listener(cell).local_addr().expect("a bound listener").port()
}
/// A publishable key of the dev project whose allowed origin is the test page, with hash
/// routing allowed, so what is stored shows what the snippet sent (the Worker keeps fragments).
const KEY: &str = "pk_live_test_snippet_0001";

fn site() -> String {
    format!("http://www.site.test:{}", port_of(&PAGE))
}
fn ingest() -> String {
    format!("http://ingest.site.test:{}", port_of(&INGEST))
}

/// Which snippet the page includes: the ingest host's own, or a broken copy served by the page
/// server at /broken/mm.js (posting to the ingest host through data-endpoint).
#[derive(Clone)]
struct Build {
    src: String,
    attrs: String,
    script: String,
}

/// Serves the test page for every path (the page, its client-side routes, the forms' targets),
/// and the broken copy of the snippet.
fn serve_pages(template: String, build: Arc<Mutex<Build>>) {
    let listener = held_listener(&PAGE).try_clone().expect("the page listener");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let Some((head, _)) = read_request(&mut conn) else { continue };
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let b = build.lock().unwrap().clone();
            let (ctype, body) = if path == "/broken/mm.js" {
                ("application/javascript", b.script)
            } else {
                let attrs = if path.starts_with("/hash/") { format!("{} data-hash-routing=\"true\"", b.attrs) } else { b.attrs };
                ("text/html; charset=utf-8", template.replace("@SRC@", &b.src).replace("@KEY@", KEY).replace("@ATTRS@", &attrs))
            };
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body.as_bytes());
        }
    });
}

/// The ingest host: every request passed on to the Worker one per connection, and recorded as
/// it arrived (method, URL, Cookie header, content type, body, whether the answer set a
/// cookie): what the browser really sent, which the Worker itself never logs.
fn record_ingest(recorded: Arc<Mutex<Vec<Value>>>, edge_port: u16) {
    let listener = held_listener(&INGEST).try_clone().expect("the ingest listener");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let recorded = recorded.clone();
            std::thread::spawn(move || {
                let Some((head, body)) = read_request(&mut conn) else { return };
                let request_line = head.lines().next().unwrap_or("").to_string();
                let mut parts = request_line.split_whitespace();
                let index = {
                    let mut r = recorded.lock().unwrap();
                    r.push(serde_json::json!({
                        "method": parts.next().unwrap_or(""),
                        "url": format!("{}{}", ingest(), parts.next().unwrap_or("")),
                        "cookie": header(&head, "cookie"),
                        "contentType": header(&head, "content-type").unwrap_or_default(),
                        "body": String::from_utf8_lossy(&body),
                    }));
                    r.len() - 1
                };
                let answer = forward(edge_port, &head, &body);
                let answer_head =
                    String::from_utf8_lossy(&answer[..answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(answer.len())])
                        .to_string();
                if let Some(r) = recorded.lock().unwrap().get_mut(index) {
                    r["setCookie"] = header(&answer_head, "set-cookie").is_some().into();
                    r["status"] = answer_head.split_whitespace().nth(1).unwrap_or("").into();
                }
                let _ = conn.write_all(&answer);
            });
        }
    });
}

/// One browser run through the test page: what the page saw (drive.mjs's JSON), what reached
/// the ingest host (the recorder's requests; `events`: the /collect bodies), and every stored
/// row of the run's visitor.
struct Run {
    seen: Value,
    sent: Vec<Value>,
    events: Vec<Value>,
    rows: Vec<Value>,
}

/// The events the real snippet sends on this walk, in order: (type or name, URL).
fn expected_events() -> Vec<(String, String)> {
    let s = site();
    [
        ("pageview", format!("{s}/")),
        ("typed", format!("{s}/")),
        ("filtered", format!("{s}/?filter=filter-typed")),
        ("pageview", format!("{s}/pricing?plan=pro")),
        ("faq", format!("{s}/pricing?plan=pro")),
        ("signup", format!("{s}/pricing?plan=pro")),
        ("pageview", format!("{s}/checkout")),
        ("pageview", format!("{s}/search?q=query-5e2a")),
        ("pageview", format!("{s}/search?q=query-5e2a")),
        ("pageview", format!("{s}/hash/")),
        ("pageview", format!("{s}/hash/#/first")),
        ("pageview", format!("{s}/hash/#/second")),
    ]
    .into_iter()
    .map(|(k, u)| (k.to_string(), u))
    .collect()
}

fn kind(ev: &Value) -> String {
    if ev["type"] == "pageview" {
        "pageview".into()
    } else {
        ev["name"].as_str().unwrap_or("?").into()
    }
}

fn browse(stack: &Stack, root: &std::path::Path, recorded: &Mutex<Vec<Value>>) -> Run {
    browse_with(stack, root, recorded, "drive.mjs", &[])
}

/// A run of one of the drivers in tests/snippet/, with its arguments after the two origins.
fn browse_with(stack: &Stack, root: &std::path::Path, recorded: &Mutex<Vec<Value>>, driver: &str, args: &[&str]) -> Run {
    recorded.lock().unwrap().clear();
    let out = Command::new("node")
        .arg(root.join("tests/snippet").join(driver))
        .arg(site())
        .arg(ingest())
        .args(args)
        .current_dir(root)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "the browser run failed:\n{}\n{}\nworker log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        stack.logs()
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("drive.mjs prints JSON");
    let sent = recorded.lock().unwrap().clone();
    let events = sent
        .iter()
        .filter(|r| r["url"] == format!("{}/collect", ingest()))
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap_or_else(|_| serde_json::json!({"unreadable_body": r["body"]})))
        .collect::<Vec<_>>();
    let aid = seen["aidBefore"].as_str().unwrap_or("").to_string();
    assert!(!aid.is_empty() && !aid.contains('\''), "mm_aid in localStorage: {seen}");
    // A body sent twice (a resend) is one event: its id is stored once.
    let ids: std::collections::HashSet<String> = events.iter().map(|e| e["id"].to_string()).collect();
    stack.wait_count(&format!("SELECT count() FROM events_dedup WHERE anonymous_id = '{aid}'"), ids.len() as u64, Duration::from_secs(30));
    let rows =
        stack.query(&format!("SELECT * FROM events_dedup WHERE anonymous_id = '{aid}' ORDER BY timestamp, received_at FORMAT JSONEachRow"));
    let rows = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    Run { seen, sent, events, rows }
}

/// Every broken promise in a run, as (which promise, what showed it).
fn violations(run: &Run) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    let s = site();
    for ev in &run.events {
        if ev.get("unreadable_body").is_some() {
            v.push(("capture", format!("a request body the test could not read: {ev}")));
        }
    }

    // No form value: not the POST form's, not the search box's draft (which never becomes part
    // of an address), and the submitted query only as the URL of the page it loaded.
    // The card number as typed, form-encoded or run together: never a bare `4242`, which a
    // random id holds one time in a few hundred.
    let anywhere = ["jane.doe", "4242 4242", "4242+4242", "4242%204242", "42424242", "hunter2", "draft-7c1f"];
    for r in &run.sent {
        let text = format!("{} {}", r["url"], r["body"]);
        for secret in anywhere {
            if text.contains(secret) {
                v.push(("form", format!("{secret} was sent: {text}")));
            }
        }
    }
    let outside = |obj: &Value, keep: &[&str]| {
        let mut o = obj.clone();
        if let Some(m) = o.as_object_mut() {
            for k in keep {
                m.remove(*k);
            }
        }
        o.to_string()
    };
    for ev in &run.events {
        if outside(ev, &["url", "referrer"]).contains("query-5e2a") {
            v.push(("form", format!("the submitted query was sent other than as the page's URL: {ev}")));
        }
    }
    for row in &run.rows {
        let text = row.to_string();
        for secret in anywhere {
            if text.contains(secret) {
                v.push(("form", format!("{secret} was stored: {text}")));
            }
        }
        if outside(row, &["url_query", "referrer"]).contains("query-5e2a") {
            v.push(("form", format!("the submitted query was stored other than as the page's URL: {text}")));
        }
    }

    // No cookie: none set (the jar holds the site's own only), none answered, and none on any
    // request to the ingest host, although the control request shows the site's cookie would go.
    if run.seen["cookies"] != serde_json::json!(["site_session@.site.test"]) {
        v.push(("cookie", format!("the cookie jar: {}", run.seen["cookies"])));
    }
    if run.seen["documentCookie"] != "site_session=cookie-secret-8842" {
        v.push(("cookie", format!("document.cookie: {}", run.seen["documentCookie"])));
    }
    for r in &run.sent {
        if r["setCookie"] == true {
            v.push(("cookie", format!("Set-Cookie in the answer to {}", r["url"])));
        }
        if r["url"] != format!("{}/health", ingest()) && !r["cookie"].is_null() {
            v.push(("cookie", format!("Cookie: {} sent with {} {}", r["cookie"], r["method"], r["url"])));
        }
    }

    // No fragment unless hash routing is on (only the /hash/ page has it).
    for ev in &run.events {
        let hash_page = ev["url"].as_str().is_some_and(|u| u.starts_with(&format!("{s}/hash/")));
        let text = ev.to_string();
        if !hash_page && (text.contains('#') || text.contains("fragment-")) {
            v.push(("fragment", format!("a fragment was sent without hash routing: {text}")));
        }
    }
    for row in &run.rows {
        if row["url_path"] != "/hash/" && row["url_fragment"] != "" {
            v.push(("fragment", format!("a fragment was stored without hash routing: {row}")));
        }
    }

    // The new page's title after a client-side navigation.
    for ev in &run.events {
        if ev["type"] == "pageview" && ev["url"] == format!("{s}/pricing?plan=pro") && ev["title"] != "Pricing · Test" {
            v.push(("title", format!("the pageview of /pricing has the title {}", ev["title"])));
        }
    }

    // Typing in a search box (replaceState of the query) is no pageview.
    let typed = run.events.iter().position(|e| e["name"] == "typed");
    let filtered = run.events.iter().position(|e| e["name"] == "filtered");
    if let (Some(a), Some(b)) = (typed, filtered) {
        for ev in &run.events[a + 1..b] {
            if ev["type"] == "pageview" {
                v.push(("replace", format!("a pageview while typing in the search box: {}", ev["url"])));
            }
        }
    } else {
        v.push(("capture", "the typed and filtered events were not both seen".into()));
    }
    v
}

/// How many events the lifecycle driver's burst tracks at once (tests/snippet/lifecycle.mjs).
const BURST: usize = 80;

/// A stored row's property `n` (the burst's counter).
fn prop_n(row: &Value) -> Option<String> {
    let keys = row["prop_keys"].as_array()?;
    let at = keys.iter().position(|k| k == "n")?;
    row["prop_values"][at].as_str().map(str::to_string)
}

/// What the snippet must do beyond a plain page load (tests/snippet/lifecycle.mjs), as
/// (which behaviour, what showed it broken), judged for the walks that ran.
fn lifecycle_violations(run: &Run, walks: &[&str]) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    let s = site();
    let pageviews = |sent: &[Value], path: &str| {
        sent.iter()
            .filter(|r| r["url"] == format!("{}/collect", ingest()))
            .filter_map(|r| serde_json::from_str::<Value>(r["body"].as_str()?).ok())
            .filter(|e| e["type"] == "pageview" && e["url"] == format!("{s}{path}"))
            .count()
    };
    if walks.contains(&"prerender") {
        // Nothing while the page is prerendered (it may never be shown); its pageview once shown.
        let activated = run.sent.iter().position(|r| r["url"] == format!("{}/health?step=activate", ingest()));
        let activated = activated.expect("the driver's activation mark reached the ingest host");
        let (before, after) = run.sent.split_at(activated);
        if pageviews(before, "/prerendered/") > 0 {
            v.push(("prerender", "a pageview was sent while the page was only prerendered".to_string()));
        }
        if pageviews(after, "/prerendered/") != 1 {
            v.push(("prerender", format!("{} pageviews once the page was shown, not 1", pageviews(after, "/prerendered/"))));
        }
        // An event tracked then waits for the page to be shown, and is not lost.
        let tracked = |sent: &[Value]| {
            sent.iter()
                .filter(|r| r["url"] == format!("{}/collect", ingest()))
                .filter_map(|r| serde_json::from_str::<Value>(r["body"].as_str()?).ok())
                .filter(|e| e["name"] == "prerender_ready")
                .count()
        };
        if tracked(before) > 0 {
            v.push(("prerender", "an event was sent while the page was only prerendered".to_string()));
        }
        if tracked(after) != 1 {
            v.push(("prerender", format!("{} of the event tracked while prerendered once the page was shown, not 1", tracked(after))));
        }
    }
    if walks.contains(&"bfcache") {
        assert_eq!(run.seen["restored"], true, "the page was not restored from the back/forward cache: the check would prove nothing");
        // Opened, left, and shown again from the cache: two views, as a reload would have made.
        let views = pageviews(&run.sent, "/bf/one/");
        if views != 2 {
            v.push(("bfcache", format!("/bf/one/ counted {views} time(s), not twice: the restored page was not counted")));
        }
    }
    if walks.contains(&"hostile") {
        if run.seen["threw"].as_array().is_none_or(|t| !t.is_empty()) {
            v.push(("hostile", format!("track threw into the page: {}", run.seen["threw"])));
        }
        // Properties that do not serialize are left out; the event itself still counts.
        for name in ["cyclic", "bigint", "getter"] {
            let stored = run.rows.iter().filter(|r| r["event_name"] == name).count();
            if stored != 1 {
                v.push(("hostile", format!("the event {name} was stored {stored} time(s), not once")));
            }
        }
    }
    if walks.contains(&"hidden") {
        let marked = run.sent.iter().position(|r| r["url"] == format!("{}/health?step=hidden-mark", ingest()));
        let marked = marked.expect("the driver's hidden-mark reached the ingest host");
        if pageviews(&run.sent[..marked], "/hidden/next") != 1 {
            v.push(("hidden", "a navigation in a hidden tab waited on a timer for its pageview".to_string()));
        }
    }
    if walks.contains(&"anchor") {
        let (route, bare) = (pageviews(&run.sent, "/hash/#/first"), pageviews(&run.sent, "/hash/"));
        if (route, bare) != (1, 0) {
            v.push(("anchor", format!("the route counted {route} time(s) and the page without it {bare}: an in-page anchor made pages")));
        }
    }
    if walks.contains(&"anchor-restore") {
        // A hash-routed page opened on an in-page anchor is a page load, and so is its restore
        // from the back/forward cache: counted twice.
        let views = pageviews(&run.sent, "/hash/restore/");
        if views != 2 || run.seen["anchorRestored"] != true {
            v.push((
                "anchor-restore",
                format!("/hash/restore/#details counted {views} time(s), not twice (restored: {})", run.seen["anchorRestored"]),
            ));
        }
    }
    if walks.contains(&"burst") {
        let stored: std::collections::BTreeSet<String> =
            run.rows.iter().filter(|r| r["event_name"] == "burst").filter_map(prop_n).collect();
        if stored.len() != BURST {
            let answers: Vec<&Value> = run
                .events
                .iter()
                .zip(run.sent.iter().filter(|r| r["url"] == format!("{}/collect", ingest())))
                .filter(|(e, _)| e["name"] == "burst")
                .map(|(_, r)| &r["status"])
                .collect();
            v.push((
                "burst",
                format!(
                    "{} of the {BURST} events tracked at once were stored; the ingest host answered {} of them: {answers:?}",
                    stored.len(),
                    answers.len()
                ),
            ));
        }
    }
    v
}

/// Violations by promise: how many, and the first of each (for failure messages and the log).
fn summary(found: &[(&'static str, String)]) -> String {
    let mut kinds: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
    kinds.dedup();
    kinds.sort();
    kinds.dedup();
    kinds
        .iter()
        .map(|k| {
            let of: Vec<&String> = found.iter().filter(|(p, _)| p == k).map(|(_, m)| m).collect();
            format!("{k}: {} violation(s), e.g. {}", of.len(), of[0].chars().take(400).collect::<String>())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A deliberately broken copy of the snippet: `from` replaced by `to` in the served one.
fn broken(snippet: &str, name: &str, from: &str, to: &str) -> Build {
    assert_eq!(snippet.matches(from).count(), 1, "broken build {name}: mm.js no longer holds {from:?} once; update the test");
    Build {
        src: format!("{}/broken/mm.js", site()),
        attrs: format!("data-endpoint=\"{}/collect\"", ingest()),
        script: snippet.replace(from, to),
    }
}

#[test]
#[ignore = "needs wrangler, ClickHouse and Chromium: run scripts/test"]
fn snippet_in_a_real_browser() {
    let record = KeyRecord { allowed_origins: vec![site()], hash_routing: true, ..KeyRecord::new(DEV_PROJECT, KeyKind::Publishable) };
    let stack = Stack::named("snippet-chromium").key(KEY, record).start();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));

    let script = stack.request("GET", "/mm.js", &[], b"");
    assert_eq!(script.status, 200);
    // A static asset (workers/edge/wrangler.toml [assets]), with snippet/_headers' headers.
    let ctype = script.header("Content-Type").unwrap_or_default();
    assert!(ctype.starts_with("application/javascript") || ctype.starts_with("text/javascript"), "Content-Type {ctype}");
    assert_eq!(script.header("Cache-Control"), Some("public, max-age=3600"));
    assert_eq!(script.header("Access-Control-Allow-Origin"), Some("*"));
    let served = script.body.as_str().expect("the snippet's text").to_string();
    let source = std::fs::read_to_string(root.join("snippet/mm.js")).unwrap();
    assert!(served == source, "the edge serves another mm.js than snippet/mm.js");

    let template = std::fs::read_to_string(root.join("tests/snippet/page.html")).unwrap();
    let real = Build { src: format!("{}/mm.js", ingest()), attrs: String::new(), script: String::new() };
    let build = Arc::new(Mutex::new(real));
    serve_pages(template, build.clone());
    let recorded = Arc::new(Mutex::new(Vec::new()));
    record_ingest(recorded.clone(), stack.port);

    // The real snippet, from the ingest host: every promise kept.
    let run = browse(&stack, root, &recorded);
    let seen = &run.seen;
    assert_eq!(seen["firstStatus"], 202, "{seen}");
    let control = run.sent.iter().find(|r| r["url"] == format!("{}/health", ingest())).expect("the control request");
    assert!(
        control["cookie"].as_str().is_some_and(|c| c.contains("site_session=cookie-secret-8842")),
        "the site's cookie does not reach the ingest host even with credentials: the cookie check would prove nothing: {control}"
    );
    let found = violations(&run);
    assert!(found.is_empty(), "the snippet broke its promises:\n{}\n{seen}", summary(&found));

    // mm_aid: a random id in localStorage, the same after a reload.
    let aid = seen["aidBefore"].as_str().unwrap().to_string();
    assert_eq!(aid.len(), 36, "a UUID: {aid}");
    assert_eq!(seen["aidAfter"], aid.as_str(), "kept across page loads");
    assert_eq!(seen["apiId"], aid.as_str());

    // Simple requests only (text/plain, no preflight), to the ingest host's /collect.
    let snippet_requests: Vec<&Value> =
        run.sent.iter().filter(|r| r["url"] != format!("{}/health", ingest()) && r["url"] != format!("{}/mm.js", ingest())).collect();
    assert_eq!(snippet_requests.len(), run.events.len(), "only /collect: {:?}", run.sent);
    for r in &snippet_requests {
        assert_eq!(r["method"], "POST", "no preflight: {r}");
        assert!(r["contentType"].as_str().unwrap().starts_with("text/plain"), "{r}");
    }

    // What was sent, in order: one pageview per page, none for the query typed or the anchor.
    let sent: Vec<(String, String)> = run.events.iter().map(|e| (kind(e), e["url"].as_str().unwrap_or("").to_string())).collect();
    assert_eq!(sent, expected_events(), "{:#?}", run.events);
    let s = site();
    let pricing = &run.events[3];
    assert_eq!(
        (pricing["title"].as_str(), pricing["referrer"].as_str()),
        (Some("Pricing · Test"), Some(format!("{s}/?filter=filter-typed").as_str())),
        "{pricing}"
    );
    assert_eq!(run.events[0]["title"], "Home · Test");
    // The anchor between them was no page: the route's referrer is the page without it.
    assert_eq!(run.events[10]["referrer"], format!("{s}/hash/"));
    assert_eq!(run.events[11]["referrer"], format!("{s}/hash/#/first"));

    // What landed: every event once, in the dev project, as Chrome; the fragments of the
    // hash-routed page only.
    assert_eq!(run.rows.len(), 12, "worker log:\n{}", stack.logs());
    let stored: Vec<(String, String, String, String)> = run
        .rows
        .iter()
        .map(|r| {
            let k = if r["event_type"] == "pageview" { "pageview" } else { r["event_name"].as_str().unwrap() };
            (
                k.to_string(),
                r["url_path"].as_str().unwrap().into(),
                r["url_query"].as_str().unwrap().into(),
                r["url_fragment"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut want: Vec<(String, String, String, String)> = [
        ("pageview", "/", "", ""),
        ("typed", "/", "", ""),
        ("filtered", "/", "filter=filter-typed", ""),
        ("pageview", "/pricing", "plan=pro", ""),
        ("faq", "/pricing", "plan=pro", ""),
        ("signup", "/pricing", "plan=pro", ""),
        ("pageview", "/checkout", "", ""),
        ("pageview", "/search", "q=query-5e2a", ""),
        ("pageview", "/search", "q=query-5e2a", ""),
        ("pageview", "/hash/", "", ""),
        ("pageview", "/hash/", "", "/first"),
        ("pageview", "/hash/", "", "/second"),
    ]
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .to_vec();
    let mut got = stored.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{:#?}", run.rows);
    let signup = run.rows.iter().find(|r| r["event_name"] == "signup").unwrap();
    assert_eq!(
        (signup["prop_keys"].clone(), signup["prop_values"].clone()),
        (serde_json::json!(["plan", "seats"]), serde_json::json!(["pro", "3"]))
    );
    assert!(run.rows.iter().all(|r| r["project_id"] == DEV_PROJECT && r["browser"] == "Chrome"), "{:?}", run.rows);
    let title = run.rows.iter().find(|r| r["event_type"] == "pageview" && r["url_path"] == "/pricing").unwrap();
    assert_eq!(title["title"], "Pricing · Test");

    // The checks above can fail: each broken copy of the snippet is caught by the promise it
    // breaks, by each of the checks named (what was sent, what was stored, ...), on the same
    // walk through the same pages.
    let copies: [(&str, &str, &str, &str, &[&str]); 5] = [
        (
            "reads-inputs",
            "form",
            "event.mm_aid = aid;",
            "event.mm_aid = aid; event.props = event.props || {}; Array.prototype.forEach.call(document.querySelectorAll(\"input\"), function (el, i) { if (el.value) event.props[\"field_\" + i] = el.value; });",
            &["draft-7c1f was sent", "jane.doe was sent", "hunter2 was sent", "draft-7c1f was stored"],
        ),
        (
            "reads-forms-on-submit",
            "form",
            "window.millimetric = {",
            "document.addEventListener(\"submit\", function (e) { var p = {}; Array.prototype.forEach.call(e.target.elements, function (el) { if (el.name) p[el.name] = el.value; }); track(\"form_submit\", p); }, true); window.millimetric = {",
            &["jane.doe was sent", "hunter2 was sent", "submitted query was sent other than", "submitted query was stored other than"],
        ),
        ("sends-cookies-with-sendbeacon", "cookie", "function post(body) {", "function post(body) { if (navigator.sendBeacon(endpoint, body)) return;", &["Cookie: \"site_session=cookie-secret-8842\" sent with \"POST\""]),
        ("sets-a-cookie", "cookie", "window.millimetric = {", "document.cookie = \"mm_aid=\" + aid + \"; path=/; max-age=31536000\"; window.millimetric = {", &["the cookie jar", "document.cookie"]),
        ("sends-the-fragment", "fragment", "function here() {", "function here() { return location.href;", &["sent without hash routing", "stored without hash routing"]),
    ];
    for (name, promise, from, to, checks) in copies {
        *build.lock().unwrap() = broken(&served, name, from, to);
        let run = browse(&stack, root, &recorded);
        let found = violations(&run);
        eprintln!("broken build {name}, caught:\n{}", summary(&found));
        for check in checks {
            assert!(
                found.iter().any(|(p, m)| *p == promise && m.contains(check)),
                "the {promise} check ({check}) did not catch the broken build {name}:\n{}",
                summary(&found)
            );
        }
    }

    // Beyond a plain load: a prerendered page, a page restored from the back/forward cache, and
    // a burst of events larger than keepalive requests may hold in flight.
    *build.lock().unwrap() = Build { src: format!("{}/mm.js", ingest()), attrs: String::new(), script: String::new() };
    let walks = ["prerender", "bfcache", "burst", "hostile", "hidden", "anchor", "anchor-restore"];
    let run = browse_with(&stack, root, &recorded, "lifecycle.mjs", &walks);
    let found = lifecycle_violations(&run, &walks);
    assert!(found.is_empty(), "the snippet missed or lost events:\n{}\n{}", summary(&found), run.seen);
    let burst = run.rows.iter().filter(|r| r["event_name"] == "burst").count();
    assert_eq!(burst, BURST, "each event of the burst once");

    // Each behaviour's check catches the snippet without it.
    let copies: [(&str, &str, &str, &str); 11] = [
        ("counts-prerendered-pages", "prerender", "if (document.prerendering) {", "if (document.visibilityState === \"prerender\") {"),
        ("counts-prerendered-routes", "prerender", "if (document.prerendering) return;", ""),
        ("sends-prerendered-events", "prerender", "if (document.prerendering) return void", "if (false) return void"),
        ("drops-prerendered-events", "prerender", "held.splice(0).forEach(send);", ""),
        ("ignores-bfcache-restores", "bfcache", "window.addEventListener(\"pageshow\", restored);", ""),
        ("drops-what-keepalive-refuses", "burst", ".catch(function () { resend(body); });", ".catch(function () {});"),
        (
            "throws-into-the-page",
            "hostile",
            "function track(name, props) {",
            "function track(name, props) { String(name); JSON.stringify(props);",
        ),
        ("drops-unserializable-events", "hostile", "delete event.props;", "return;"),
        ("waits-while-hidden", "hidden", "if (first === true || document.visibilityState === \"hidden\") {", "if (first === true) {"),
        (
            "counts-anchors-on-routes",
            "anchor",
            "if (first !== true && hashRouting && location.hash && !route() && location.pathname === countedPath) return;",
            "",
        ),
        ("skips-restored-anchors", "anchor-restore", "if (first !== true && hashRouting", "if (hashRouting"),
    ];
    for (name, walk, from, to) in copies {
        *build.lock().unwrap() = broken(&served, name, from, to);
        let run = browse_with(&stack, root, &recorded, "lifecycle.mjs", &[walk]);
        let found = lifecycle_violations(&run, &[walk]);
        eprintln!("broken build {name}, caught:\n{}", summary(&found));
        assert!(found.iter().any(|(p, _)| *p == walk), "the {walk} check did not catch the broken build {name}");
    }
}
