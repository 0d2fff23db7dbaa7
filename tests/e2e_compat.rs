//! Other vendors' SDKs, as their users run them, sending to the edge Worker under `wrangler dev`
//! with one host name changed; the rows read back from ClickHouse and the Stats API.
//!
//! - Server SDKs (tests/compat/server.py, server.mjs): `segment-analytics-python`,
//!   `@segment/analytics-node`, `posthog` (Python) and `posthog-node`: track, page, identify, a
//!   batch of 1,000 (Segment), a batch and gzip (PostHog), and a retry after a 503 that a
//!   recording proxy answers after passing the request on (so the retry is also a duplicate).
//! - Browser SDKs in Chromium (tests/compat/browser.mjs): `posthog-js`,
//!   `@plausible-analytics/tracker` and `@segment/analytics-next`, on a page served from an
//!   allowed origin: pageviews, a custom event, a client-side navigation, no cookie sent.
//! - Each protocol's answers: the codes each SDK's retry rules need.
//! - The privacy promises on events of every protocol: no raw user id or e-mail, no IP, no
//!   secret or personal property, coarse user agent; erasure by the user id.
//!
//! Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use millimetric_tools::dev_keys::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::proxy::{self, header, read_request, Fault, Seen};
use support::Stack;

fn run_id() -> String {
    format!("r{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 100_000_000)
}

/// The run's rows of one SDK (by the `sdk` property every script sets), from the raw table:
/// what was written, duplicates included.
fn rows(stack: &Stack, run: &str, sdk: &str) -> Vec<Value> {
    let sql = format!(
        "SELECT * FROM events WHERE prop_values[indexOf(prop_keys, 'run')] = '{run}' AND prop_values[indexOf(prop_keys, 'sdk')] = '{sdk}' \
         ORDER BY timestamp, event_name FORMAT JSONEachRow"
    );
    stack.query(&sql).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn count_where(stack: &Stack, run: &str, sdk: &str, want: u64) -> u64 {
    stack.wait_count(
        &format!("SELECT count() FROM events WHERE prop_values[indexOf(prop_keys, 'run')] = '{run}' AND prop_values[indexOf(prop_keys, 'sdk')] = '{sdk}'"),
        want,
        Duration::from_secs(60),
    )
}

fn prop<'a>(row: &'a Value, key: &str) -> Option<&'a str> {
    let keys = row["prop_keys"].as_array()?;
    let i = keys.iter().position(|k| k == key)?;
    row["prop_values"][i].as_str()
}

fn named<'a>(rows: &'a [Value], name: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["event_name"] == name).collect()
}

/// The promises every stored row of every protocol keeps: no user id or e-mail as sent, no
/// address, no secret or personal property, no user agent string.
fn assert_private(rows: &[Value], sdk: &str) {
    let text = serde_json::to_string(rows).unwrap();
    for leak in ["jane", "@example.com", "81.2.69.142", "sk_live_abcdef", "Jane Doe", "Mozilla/5.0", "iPhone OS"] {
        assert!(!text.contains(leak), "{sdk}: `{leak}` reached a row");
    }
    for r in rows {
        let aid = r["anonymous_id"].as_str().unwrap();
        assert!(!aid.contains('@'), "{sdk}: a raw e-mail as the visitor id");
    }
}

/// Segment's SDKs: every call reached a row once (the 503's retry too), through Segment's
/// route, with its page, campaign, revenue, geo and device, and nothing of identify.
fn check_segment(stack: &Stack, run: &str, sdk: &str, anon: &str, seen: &[Seen]) {
    assert_eq!(count_where(stack, run, sdk, 1004), 1004, "{sdk}: 3 calls, 1,000 in a batch and one retried");
    let rows = rows(stack, run, sdk);
    assert_eq!(rows.len(), 1004, "{sdk}: a duplicate was written");
    assert!(rows.iter().all(|r| r["ingest_route"] == "segment"));
    assert_private(&rows, sdk);
    let signed_up = named(&rows, "Signed Up");
    let [s] = signed_up.as_slice() else { panic!("{sdk}: Signed Up: {signed_up:?}") };
    assert!(s["anonymous_id"].as_str().unwrap().starts_with("mmh_"), "{sdk}: the user id is stored as its keyed hash: {s}");
    assert_eq!((s["url_host"].as_str(), s["url_path"].as_str()), (Some("shop.example.com"), Some("/signup")));
    assert_eq!(
        (s["utm_source"].as_str(), s["utm_medium"].as_str(), s["utm_campaign"].as_str()),
        (Some("newsletter"), Some("email"), Some("spring"))
    );
    assert_eq!(s["country"], "GB", "{sdk}: geo from context.ip with a server key");
    assert_eq!(prop(s, "plan"), Some("pro"));
    assert_eq!((prop(s, "email"), prop(s, "api_token")), (None, None), "{sdk}: personal and secret properties dropped");
    if sdk == "segment-python" {
        assert_eq!(
            (s["os"].as_str(), s["device_type"].as_str()),
            (Some("iOS"), Some("mobile")),
            "{sdk}: the coarse device of context.userAgent"
        );
    }
    let order = named(&rows, "Order Completed");
    assert_eq!((order[0]["revenue_amount"].to_string(), order[0]["revenue_currency"].as_str()), ("19.99".into(), Some("EUR")));
    assert_eq!(order[0]["anonymous_id"], anon, "{sdk}: anonymousId is the visitor");
    let page = named(&rows, "pageview");
    let [p] = page.as_slice() else { panic!("{sdk}: pageview: {page:?}") };
    assert_eq!(
        (p["url_path"].as_str(), p["title"].as_str(), p["referrer_host"].as_str()),
        (Some("/pricing"), Some("Pricing"), Some("www.google.com"))
    );
    assert_eq!(p["source"], "Google");
    assert_eq!(named(&rows, "bulk").len(), 1000);
    assert_eq!(named(&rows, "retry-me").len(), 1, "{sdk}: the retry after a 503 is stored once");
    let batches: Vec<usize> = seen
        .iter()
        .filter(|r| r.path() == "/v1/batch" && r.status == 200)
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b.to_string().contains(sdk))
        .map(|b| b["batch"].as_array().map_or(0, Vec::len))
        .collect();
    assert!(batches.contains(&1000), "{sdk}: a batch of 1,000 was sent and taken: {batches:?}");
    let retried = seen.iter().filter(|r| r.path() == "/v1/batch" && String::from_utf8_lossy(&r.body).contains("retry-me")).count();
    assert!(
        seen.iter().any(|r| r.status == 503 && String::from_utf8_lossy(&r.body).contains(sdk)) && retried >= 2,
        "{sdk}: the 503 was answered and the batch sent again"
    );
}

/// PostHog's server SDKs: captures and a gzipped batch through PostHog's route; an identify
/// ($set) stores nothing.
fn check_posthog(stack: &Stack, run: &str, sdk: &str, seen: &[Seen]) {
    assert_eq!(count_where(stack, run, sdk, 121), 121, "{sdk}: one capture and 120 in batches");
    let rows = rows(stack, run, sdk);
    assert_eq!(rows.len(), 121);
    assert!(rows.iter().all(|r| r["ingest_route"] == "posthog"));
    assert_private(&rows, sdk);
    let [s] = named(&rows, "signed up")[..] else { panic!("{sdk}: signed up") };
    assert!(s["anonymous_id"].as_str().unwrap().starts_with("mmh_"));
    assert_eq!((s["country"].as_str(), prop(s, "plan")), (Some("GB"), Some("team")), "{sdk}: $ip used with a server key");
    assert!(seen.iter().any(|r| r.path().starts_with("/batch") && r.body.starts_with(&[0x1f, 0x8b])), "{sdk}: a gzipped batch");
    assert!(seen.iter().filter(|r| r.path().starts_with("/batch")).all(|r| r.status == 200));
}

fn server_sdks(stack: &Stack, run: &str) -> Vec<Seen> {
    // The first Segment batch that carries `retry-me` from each SDK is answered 503 after the
    // Worker took it: an outage as the SDK sees it, whose retry is a duplicate.
    let faulted = Arc::new(Mutex::new(BTreeSet::new()));
    let decide = {
        let faulted = faulted.clone();
        Arc::new(move |head: &str, body: &[u8]| {
            let text = String::from_utf8_lossy(body);
            let sdk = ["segment-python", "segment-node"].into_iter().find(|s| text.contains(s));
            match sdk {
                Some(sdk) if head.starts_with("POST /v1/batch") && text.contains("retry-me") && faulted.lock().unwrap().insert(sdk) => {
                    Fault::AfterForwarding(503)
                }
                _ => Fault::None,
            }
        })
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = proxy::start(stack.port, decide, seen.clone());
    let host = format!("http://127.0.0.1:{port}");
    let py = support::cache_dir().join("sdk-venv/bin/python");
    assert!(py.exists(), "{}: missing; run scripts/setup (it installs the vendors' Python SDKs)", py.display());
    let out = support::run_json(Command::new(py).arg(support::root().join("tests/compat/server.py")).args([&host, DEV_SECRET, run]));
    assert_eq!(out["failed"], json!([]), "the Python SDKs reported failures");
    let out =
        support::run_json(Command::new("node").current_dir(support::root()).arg("tests/compat/server.mjs").args([&host, DEV_SECRET, run]));
    assert_eq!(out["failed"], json!([]), "the Node SDKs reported failures");
    let seen = seen.lock().unwrap().clone();
    seen
}

/// The browser SDKs' key: a pk_live_ key of the dev project whose allowed origin is the test
/// site (its port is the OS's choice, known before the stack starts).
const PK: &str = "pk_live_test_compat_0001";

/// The test site: each SDK's page for every path under its prefix (a client-side route too),
/// and the SDKs' files from node_modules.
fn serve_site(listener: TcpListener, ingest: String) {
    let root = support::root();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let Some((head, _)) = read_request(&mut conn) else { continue };
            let path = head.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_string();
            let file = |rel: &str| std::fs::read(root.join(rel)).ok();
            let (ctype, body) = match path.as_str() {
                "/vendor/posthog.js" => ("application/javascript", file("node_modules/posthog-js/dist/array.full.no-external.js")),
                "/vendor/plausible.js" => ("application/javascript", file("node_modules/@plausible-analytics/tracker/plausible.js")),
                p if p.starts_with("/vendor/segment/") && !p.contains("..") => (
                    "application/javascript",
                    file(&format!("node_modules/@segment/analytics-next/dist/umd/{}", &p["/vendor/segment/".len()..])),
                ),
                p => match ["ph", "pl", "seg"].into_iter().find(|sdk| p.starts_with(&format!("/{sdk}/"))) {
                    Some(sdk) => {
                        let page = std::fs::read_to_string(root.join(format!("tests/compat/pages/{sdk}.html"))).unwrap();
                        let host = ingest.trim_start_matches("http://");
                        let page = page.replace("@KEY@", PK).replace("@INGEST_HOST@", host).replace("@INGEST@", &ingest);
                        ("text/html; charset=utf-8", Some(page.into_bytes()))
                    }
                    None => ("text/plain", None),
                },
            };
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
}

/// A request's body as JSON text, in the framing its head names (posthog-js gzips with none).
fn decoded(r: &Seen) -> String {
    let query = r.path().split_once('?').map(|(_, q)| q);
    let framing = millimetric_core::compat::body::Framing::of_request(
        header(&r.head, "content-encoding").as_deref(),
        header(&r.head, "content-type").as_deref(),
        query,
    )
    .unwrap_or_default();
    let limits = millimetric_core::compat::POSTHOG_LIMITS;
    let json = millimetric_core::compat::body::decode(&r.body, &framing, &limits).unwrap_or_else(|_| r.body.clone());
    String::from_utf8_lossy(&json).into_owned()
}

/// The run's rows of one browser SDK's pages.
fn page_rows(stack: &Stack, sdk: &str, run: &str, route: &str, want: u64) -> Vec<Value> {
    let cond = format!("ingest_route = '{route}' AND url_path LIKE '/{sdk}/{run}/%'");
    stack.wait_count(&format!("SELECT count() FROM events WHERE {cond}"), want, Duration::from_secs(30));
    stack
        .query(&format!("SELECT * FROM events WHERE {cond} ORDER BY timestamp, event_name FORMAT JSONEachRow"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn browsers(stack: &Stack, run: &str, site: &str, site_listener: TcpListener) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = proxy::start(stack.port, Arc::new(|_: &str, _: &[u8]| Fault::None), seen.clone());
    let ingest = format!("http://ingest.site.test:{port}");
    serve_site(site_listener, ingest.clone());
    // Plausible's site is its domain, registered on the key with the keys command.
    let (ok, set) = stack.keys_cli(&["set", &millimetric_core::keys::key_hash(PK), "--domains", "site.test"]);
    assert!(ok && set["key"]["domains"] == json!(["site.test"]), "{set}");
    let out =
        support::run_json(Command::new("node").current_dir(support::root()).arg("tests/compat/browser.mjs").args([site, &ingest, run]));
    println!("compat: browsers: {out}");
    let seen = seen.lock().unwrap().clone();

    for (sdk, route, signup) in [("ph", "posthog", "signup"), ("pl", "plausible", "Signup"), ("seg", "segment", "Signup")] {
        let rows = page_rows(stack, sdk, run, route, 3);
        let pages: BTreeSet<(String, String)> = named(&rows, "pageview")
            .iter()
            .map(|r| (r["url_path"].as_str().unwrap().to_string(), r["title"].as_str().unwrap().to_string()))
            .collect();
        let base = format!("/{sdk}/{run}/");
        let want_pages: BTreeSet<String> = [base.clone(), format!("{base}next")].into();
        assert_eq!(
            pages.iter().map(|(p, _)| p.clone()).collect::<BTreeSet<_>>(),
            want_pages,
            "{sdk}: the first pageview and the client-side navigation: {rows:?}"
        );
        assert_eq!(named(&rows, "pageview").len(), 2, "{sdk}: one row per pageview: {rows:?}");
        let signups = named(&rows, signup);
        let [s] = signups.as_slice() else { panic!("{sdk}: one {signup}: {rows:?}") };
        assert_eq!(prop(s, "plan"), Some("pro"), "{sdk}: the event's property");
        assert!(
            s["prop_keys"].as_array().unwrap().iter().all(|k| !k.as_str().unwrap().starts_with('$')),
            "{sdk}: the SDK's own properties are not stored"
        );
        let first = rows.iter().find(|r| r["url_path"] == base.as_str()).unwrap();
        assert_eq!(first["source"], "browser-test", "{sdk}: attribution from the page URL");
        let visitors: BTreeSet<&str> = rows.iter().map(|r| r["anonymous_id"].as_str().unwrap()).collect();
        assert_eq!(visitors.len(), 1, "{sdk}: one visitor for the whole visit: {visitors:?}");
        assert!(!visitors.iter().next().unwrap().is_empty());
        assert!(rows
            .iter()
            .all(|r| r["browser"] == "Chrome" || r["browser"] == "Headless Chrome" || !r["browser"].as_str().unwrap().is_empty()));
        assert_private(&rows, sdk);
        if sdk != "ph" {
            assert_eq!((s["revenue_amount"].to_string(), s["revenue_currency"].as_str()), ("9.5".into(), Some("EUR")), "{sdk}: revenue");
        }
        // No cookie set on the page by the SDK, and none sent to the ingest host.
        assert_eq!(out[sdk]["cookie"], "site_session=cookie-secret-8842", "{sdk}: a cookie on the page");
        // Nothing we answer breaks the page.
        assert_eq!(out[sdk]["errors"], json!([]), "{sdk}: errors on the page");
    }
    // Every request the pages made went to the site or the ingest host: none to the vendors'
    // own hosts (analytics-next's metrics went to api.segment.io, set up as the docs said).
    let elsewhere: Vec<&Value> = out["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["url"].as_str().is_some_and(|u| !u.starts_with(site) && !u.starts_with(&ingest) && u.starts_with("http")))
        .collect();
    assert!(elsewhere.is_empty(), "requests to other hosts: {elsewhere:?}");
    assert_eq!(out["seg"]["metricsSent"], true, "analytics-next sent no usage metrics: the check above saw none of them");
    let to_ingest: Vec<&Seen> = seen.iter().filter(|r| r.path() != "/health").collect();
    assert!(to_ingest.len() >= 9, "{to_ingest:?}");
    for r in &to_ingest {
        assert_eq!(
            header(&r.head, "cookie"),
            None,
            "a cookie reached the ingest host: {}\nthe pages' requests: {}",
            r.head,
            out["requests"]
        );
        assert_eq!(header(&r.answer_head, "set-cookie"), None, "the ingest host set a cookie: {}", r.answer_head);
        assert!((200..300).contains(&r.status), "{} answered {}", r.head.lines().next().unwrap_or(""), r.status);
        assert!(!decoded(r).contains("jane.doe"), "a form value was sent: {}", decoded(r));
    }
    let control = seen.iter().find(|r| r.path() == "/health").expect("the page's own credentialed request");
    assert!(header(&control.head, "cookie").is_some(), "control: a credentialed request carries the site's cookie");
    let flags = seen.iter().filter(|r| r.path().starts_with("/flags") || r.path().starts_with("/decide")).count();
    assert!(flags <= 3, "posthog-js asked for flags {flags} times: a retry loop");
}

fn basic(key: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

fn post(stack: &Stack, path: &str, headers: &[(&str, &str)], body: &[u8]) -> support::Reply {
    stack.request("POST", path, headers, body)
}

/// Each protocol's answers, as its SDKs' retry rules need them: exact successes, 400/413 for
/// what a retry cannot fix, 429 with Retry-After for limits, and the key rules of `/collect`.
fn answers(stack: &Stack, run: &str, site: &str) {
    let json_ct = ("Content-Type", "application/json");
    let sk = basic(DEV_SECRET);
    let tagged = json!({"sdk": "answers", "run": run});
    // Successes, exactly as the SDKs want them.
    let ph = json!({"api_key": DEV_SECRET, "event": "x", "distinct_id": "answers-1", "properties": tagged});
    let r = post(stack, "/e/", &[json_ct], ph.to_string().as_bytes());
    assert_eq!((r.status, &r.body), (200, &json!({"status": 1})), "PostHog: exactly 200 {{\"status\": 1}}");
    let r = post(
        stack,
        "/v1/track",
        &[json_ct, ("Authorization", &sk)],
        json!({"event": "x", "userId": "u", "properties": tagged}).to_string().as_bytes(),
    );
    assert_eq!((r.status, &r.body), (200, &json!({"success": true})), "Segment");
    let r = post(
        stack,
        "/v1/track",
        &[json_ct],
        json!({"writeKey": DEV_SECRET, "event": "y", "userId": "u", "properties": tagged}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "Segment: writeKey in the body: {:?}", r.body);
    let r = post(stack, "/v1/identify", &[json_ct, ("Authorization", &sk)], br#"{"userId":"u","traits":{"email":"jane@example.com"}}"#);
    assert_eq!(r.status, 200, "identify: answered, nothing kept");
    {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(ph.to_string());
        let form = format!("data={}", url::form_urlencoded::byte_serialize(b64.as_bytes()).collect::<String>());
        let r = post(stack, "/e", &[("Content-Type", "application/x-www-form-urlencoded")], form.as_bytes());
        assert_eq!(r.status, 200, "PostHog: a form body of base64: {:?}", r.body);
        let r = post(stack, "/i/v0/e/?compression=base64", &[("Content-Type", "text/plain")], b64.as_bytes());
        assert_eq!(r.status, 200, "PostHog: compression=base64: {:?}", r.body);
    }
    for path in ["/decide/?v=3", "/flags?v=2", "/engage/"] {
        let r = post(stack, path, &[json_ct], b"{}");
        assert_eq!(r.status, 200, "{path}");
    }
    assert_eq!(post(stack, "/flags?v=2", &[json_ct], b"{}").body["featureFlags"], json!({}));
    // Permanent refusals: 400 or 413, each a JSON error with a code.
    let big = json!({"event": "x", "userId": "u", "properties": {"blob": "y".repeat(33 * 1024)}});
    let r = post(stack, "/v1/track", &[json_ct, ("Authorization", &sk)], big.to_string().as_bytes());
    assert_eq!((r.status, r.code()), (400, "message_too_large"), "{:?}", r.body);
    let many = json!({"batch": vec![json!({"type": "track", "event": "e", "userId": "u"}); 2_501]});
    let r = post(stack, "/v1/batch", &[json_ct, ("Authorization", &sk)], many.to_string().as_bytes());
    assert_eq!((r.status, r.code()), (413, "batch_too_large"));
    let r = post(stack, "/v1/batch", &[json_ct, ("Authorization", &sk)], &vec![b' '; 600 * 1024]);
    assert_eq!(r.status, 413, "a body over 512 KiB");
    let r = post(stack, "/batch/", &[json_ct], b"{not json");
    assert_eq!((r.status, r.code()), (400, "invalid_json"));
    // A body in an encoding that is not decoded: refused as such, as /collect refuses it.
    for path in ["/v1/batch", "/e/", "/api/event"] {
        let r = post(stack, path, &[json_ct, ("Content-Encoding", "deflate"), ("Authorization", &sk)], b"x\x9c");
        assert_eq!((r.status, r.code()), (415, "unsupported_encoding"), "{path}: {:?}", r.body);
    }
    let r = post(stack, "/e/", &[json_ct], json!({"event": "x", "distinct_id": "d"}).to_string().as_bytes());
    assert_eq!((r.status, r.code()), (401, "missing_key"));
    // A page reads a refusal made before any key is known, so a browser SDK drops the event
    // on the 4xx instead of retrying what it takes for a network error.
    let unknown = json!({"event": "x", "distinct_id": "d", "properties": {"token": "pk_live_unknown_0000"}});
    for (path, body) in [("/e/", unknown.to_string()), ("/batch/", "{not json".to_string()), ("/collect", "{}".to_string())] {
        let r = post(stack, path, &[json_ct, ("Origin", site)], body.as_bytes());
        assert!(r.status >= 400 && r.status < 500, "{path}: {:?}", r.body);
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some(site), "{path}: a refusal the page cannot read");
    }
    let r = post(stack, "/e/", &[json_ct], json!({"event": "x", "distinct_id": "d", "api_key": DEV_READ_ONLY}).to_string().as_bytes());
    assert_eq!((r.status, r.code()), (403, "read_only_key"));
    let r = post(
        stack,
        "/v1/t",
        &[json_ct, ("Authorization", &basic(PK)), ("Origin", "https://evil.example")],
        br#"{"event":"x","userId":"u"}"#,
    );
    assert_eq!((r.status, r.code()), (403, "origin_not_allowed"), "a browser key from an origin it does not allow");
    let r = post(stack, "/v1/t", &[json_ct, ("Authorization", &sk), ("Origin", site)], br#"{"event":"x","userId":"u"}"#);
    assert_eq!((r.status, r.code()), (403, "secret_key_in_browser"));
    // A browser SDK's backlog after an offline spell (analytics-next refills a batch up to
    // ~450 KB, hundreds of events) is taken up to a minute of one address's limit (600 events):
    // a 400 would make the SDK drop it. Past that, 413 as past the protocol's own limit.
    let browser_batch = |n: usize| {
        let tagged = json!({"sdk": "answers", "run": run, "backlog": "yes"});
        json!({"batch": vec![json!({"type": "track", "event": "backlog", "anonymousId": "d", "properties": tagged}); n], "writeKey": PK})
    };
    let r = post(stack, "/v1/b", &[json_ct, ("Origin", site)], browser_batch(300).to_string().as_bytes());
    assert_eq!(r.status, 200, "a browser batch of 300: {:?}", r.body);
    let r = post(stack, "/v1/b", &[json_ct, ("Origin", site)], browser_batch(2_501).to_string().as_bytes());
    assert_eq!((r.status, r.code()), (413, "batch_too_large"), "{:?}", r.body);
    let cond = format!("ingest_route = 'segment' AND event_name = 'backlog' AND has(prop_values, '{run}')");
    assert_eq!(stack.wait_count(&format!("SELECT count() FROM events WHERE {cond}"), 300, Duration::from_secs(30)), 300);
    assert_eq!(stack.request("GET", "/e/", &[], b"").status, 405);
    // Limits: 429 with Retry-After (the limited key takes 5 events a minute).
    // A batch larger than a minute of the key could never pass: 413 at once, not a 429 the
    // SDK would retry forever. Within it, the limit answers 429.
    let batch = |n: usize| json!({"batch": vec![json!({"type": "track", "event": "e", "userId": "u"}); n]}).to_string();
    let limited = [json_ct, ("Authorization", &basic(DEV_LIMITED_SECRET))];
    let r = post(stack, "/v1/batch", &limited, batch(6).as_bytes());
    assert_eq!((r.status, r.code()), (413, "batch_too_large"), "{:?}", r.body);
    assert_eq!(post(stack, "/v1/batch", &limited, batch(5).as_bytes()).status, 200);
    let r = post(stack, "/v1/batch", &limited, batch(1).as_bytes());
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{:?}", r.body);
    assert!(r.header("Retry-After").is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s > 0)));
    // CORS that lets the browser SDKs send their own headers.
    let r = stack.request("OPTIONS", "/v1/t", &[("Origin", site), ("Access-Control-Request-Method", "POST")], b"");
    let allowed = r.header("Access-Control-Allow-Headers").unwrap_or("").to_ascii_lowercase();
    assert!(r.status == 204 && ["authorization", "content-type", "x-retry-count"].iter().all(|h| allowed.contains(h)), "{allowed}");
    // Plausible: the site by its domain, with its key's origin rules; X-Forwarded-For only
    // with a server key.
    let pl = |d: &str, page: &str| json!({"n": "pageview", "u": format!("https://site.test/{run}/{page}"), "d": d}).to_string();
    let r = post(stack, "/api/event", &[("Content-Type", "text/plain")], pl("unknown.test", "x").as_bytes());
    assert_eq!((r.status, r.code()), (400, "unknown_domain"));
    let r =
        post(stack, "/api/event", &[("Content-Type", "text/plain"), ("Origin", "https://evil.example")], pl("site.test", "x").as_bytes());
    assert_eq!((r.status, r.code()), (403, "origin_not_allowed"));
    let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    // Two visitors' addresses forwarded from one connecting address, without a key and with one.
    let bearer = format!("Bearer {DEV_SECRET}");
    // The second as proxies write it: a list, its first with the port one added.
    for (n, xff) in [(1, "81.2.69.142"), (2, "81.2.69.160:51234, 10.0.0.1")] {
        let forwarded = [("Content-Type", "text/plain"), ("X-Forwarded-For", xff), ("User-Agent", ua), ("CF-Connecting-IP", "203.0.113.7")];
        let r = post(stack, "/api/event", &forwarded, pl("site.test", &format!("ignored-xff-{n}")).as_bytes());
        assert_eq!((r.status, &r.body), (202, &json!("ok")), "Plausible: 202 ok");
        let with_key = [forwarded[0], forwarded[1], forwarded[2], forwarded[3], ("Authorization", bearer.as_str())];
        assert_eq!(post(stack, "/api/event", &with_key, pl("site.test", &format!("server-xff-{n}")).as_bytes()).status, 202);
    }
    let cond = format!("ingest_route = 'plausible' AND url_path LIKE '/{run}/%'");
    stack.wait_count(&format!("SELECT count() FROM events WHERE {cond}"), 4, Duration::from_secs(30));
    let rows = stack.query(&format!("SELECT * FROM events WHERE {cond} ORDER BY url_path FORMAT JSONEachRow"));
    let rows: Vec<Value> = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let [ignored_1, ignored_2, server_1, server_2] = rows.as_slice() else { panic!("{rows:?}") };
    assert_eq!(ignored_1["url_path"], format!("/{run}/ignored-xff-1"));
    assert_eq!(ignored_1["anonymous_id"], ignored_2["anonymous_id"], "without an sk_live_ key X-Forwarded-For made two visitors of one");
    assert_ne!(ignored_1["country"], "GB", "without an sk_live_ key X-Forwarded-For gave the geo");
    assert_ne!(server_1["anonymous_id"], server_2["anonymous_id"], "with an sk_live_ key each forwarded address is its visitor's");
    for r in [server_1, server_2] {
        let seen = (r["country"].as_str(), r["browser"].as_str(), r["os"].as_str());
        assert_eq!(
            seen,
            (Some("GB"), Some("Chrome"), Some("Windows")),
            "with an sk_live_ key the forwarded address and user agent are the visitor's"
        );
    }
    posthog_cookieless_visitors(stack, run, site, ua);
}

/// A browser key's batch (posthog-js's `/batch/`) holds at most 600 events (a minute of the
/// address's limit), and each counts against the address's per-IP limit (600 a minute), as one
/// event a request would: batches of 2,500 once cost a unit each, so three from one address
/// took the key's whole minute.
fn browser_batches_count_each_event(stack: &Stack, run: &str, site: &str) {
    let headers = [("Content-Type", "application/json"), ("Origin", site), ("CF-Connecting-IP", "203.0.113.99")];
    let batch = |n: usize, i: usize| {
        let events: Vec<Value> = (0..n)
            .map(
                |j| json!({"event": "ip-units", "distinct_id": format!("ip-units-{i}-{j}"), "properties": {"sdk": "ip-units", "run": run}}),
            )
            .collect();
        json!({"api_key": PK, "batch": events}).to_string()
    };
    let r = post(stack, "/batch/", &headers, batch(601, 0).as_bytes());
    assert_eq!((r.status, r.code()), (413, "batch_too_large"), "{:?}", r.body);
    // 1,300 units in fixed minutes: at least 650 fall in one of them.
    let statuses: Vec<(u16, String)> = (1..=13)
        .map(|i| {
            let r = post(stack, "/batch/", &headers, batch(100, i).as_bytes());
            (r.status, r.code().to_string())
        })
        .collect();
    assert!(statuses.iter().any(|(s, c)| *s == 429 && c == "rate_limited"), "no batch met the per-IP limit: {statuses:?}");
    assert!(statuses.iter().all(|(s, _)| matches!(s, 200 | 429)), "{statuses:?}");
    let accepted = 100 * statuses.iter().filter(|(s, _)| *s == 200).count() as u64;
    assert_eq!(count_where(stack, run, "ip-units", accepted), accepted, "every accepted batch stored, none refused");
}

/// posthog-js's cookieless mode sends one placeholder id for every visitor: each is the day's
/// seed from the address and user agent instead, as PostHog counts them.
fn posthog_cookieless_visitors(stack: &Stack, run: &str, site: &str, ua: &str) {
    for (n, ip) in [(1, "81.2.69.142"), (2, "81.2.69.160"), (3, "81.2.69.160")] {
        let ev = json!({"event": "$pageview", "distinct_id": "$posthog_cookieless",
            "properties": {"token": PK, "$device_id": null, "$current_url": format!("https://site.test/{run}/cookieless-{n}")}});
        let headers = [("Content-Type", "application/json"), ("Origin", site), ("CF-Connecting-IP", ip), ("User-Agent", ua)];
        let r = post(stack, "/e/", &headers, ev.to_string().as_bytes());
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let cond = format!("ingest_route = 'posthog' AND url_path LIKE '/{run}/cookieless-%'");
    stack.wait_count(&format!("SELECT count() FROM events WHERE {cond}"), 3, Duration::from_secs(30));
    let ids = stack.query(&format!("SELECT anonymous_id FROM events WHERE {cond} ORDER BY url_path"));
    let ids: Vec<&str> = ids.lines().collect();
    assert!(ids.len() == 3 && ids[0] != ids[1] && ids[1] == ids[2], "one visitor per address and user agent: {ids:?}");
    assert!(ids.iter().all(|id| !id.contains("cookieless")), "the placeholder is no visitor id: {ids:?}");
}

/// Erasure by the id the customer knows: a user id (a Segment userId, a PostHog distinct_id),
/// stored only as its keyed hash, finds that hash.
fn erasure_by_user_id(stack: &Stack, run: &str) {
    let count = |id: &str| {
        let hash = stack.query(&format!("SELECT count() FROM events WHERE prop_values[indexOf(prop_keys, 'run')] = '{run}' AND event_name = 'bulk' AND prop_values[indexOf(prop_keys, 'sdk')] LIKE 'posthog-%' AND position(anonymous_id, 'mmh_') = 1 AND prop_values[indexOf(prop_keys, 'i')] IN ({id})"));
        hash.trim().parse::<u64>().unwrap()
    };
    // `ph-bulk-{run}-3` sent events i = 3, 13, ..., 113 from each PostHog SDK.
    let ids = (0..12).map(|k| format!("'{}'", 3 + 10 * k)).collect::<Vec<_>>().join(",");
    assert_eq!(count(&ids), 24, "before");
    let bearer = format!("Bearer {DEV_SECRET}");
    let r = stack.request("DELETE", &format!("/visitors/ph-bulk-{run}-3"), &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert!(support::eventually(Duration::from_secs(30), || count(&ids) == 0), "erasure by a PostHog distinct_id left rows");
    let signed_up = || {
        stack.query(&format!("SELECT count() FROM events WHERE prop_values[indexOf(prop_keys, 'run')] = '{run}' AND event_name IN ('Signed Up', 'signed up')")).trim().to_string()
    };
    assert_eq!(signed_up(), "4");
    let r = stack.request("DELETE", &format!("/visitors/jane+{run}@example.com"), &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert!(support::eventually(Duration::from_secs(30), || signed_up() == "0"), "erasure by an e-mail user id left rows");
}

/// The same small traffic (three visitors: a search visit of two pages and a sign-up with
/// revenue, a tagged visit with a sign-up, a bounce), as each protocol's wire format carries it.
/// Wave 1 is each visit's first pageview; wave 2 the rest, a second later, so every protocol's
/// visits start on the same page (Plausible's events carry no time of their own).
struct Traffic {
    host: &'static str,
}

/// One event of the traffic: (visitor, kind, page, referrer, plan, revenue).
type Step = (&'static str, &'static str, &'static str, Option<&'static str>, Option<&'static str>, Option<&'static str>);

impl Traffic {
    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.host)
    }

    /// (visitor, kind, page, referrer, plan, revenue) of each wave.
    /// Every custom event also carries what must never be stored (an e-mail, a secret).
    fn unsafe_props(plan: Option<&str>) -> Value {
        json!({"plan": plan, "contact": "jane@example.com", "api_token": "sk_live_abcdefghijklmnopqrstuvwx"})
    }

    fn user_agent(visitor: &str) -> &'static str {
        if visitor == "v4" {
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        } else {
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
        }
    }

    fn wave(n: u8) -> Vec<Step> {
        if n == 1 {
            vec![
                ("v1", "pageview", "/a", Some("https://www.google.com/"), None, None),
                ("v2", "pageview", "/a?utm_source=news", None, None, None),
                ("v3", "pageview", "/c?email=jane%40example.com&ref=81.2.69.142", None, None, None),
                // A crawler's: counted by no query, stored with its bot flag.
                ("v4", "pageview", "/a", None, None, None),
            ]
        } else {
            vec![
                ("v1", "pageview", "/b", None, None, None),
                ("v1", "Signup", "/b", None, Some("pro"), Some("10.00")),
                ("v2", "Signup", "/a?utm_source=news", None, Some("free"), None),
            ]
        }
    }

    fn collect(&self, stack: &Stack, key: &str, n: u8) {
        let batch: Vec<Value> = Self::wave(n)
            .into_iter()
            .map(|(v, kind, page, referrer, plan, revenue)| {
                let mut e = json!({"mm_aid": v, "url": self.url(page), "referrer": referrer, "user_agent": Self::user_agent(v)});
                if kind != "pageview" {
                    e["type"] = json!("event");
                    e["name"] = json!(kind);
                    e["props"] = Self::unsafe_props(plan);
                }
                if let Some(amount) = revenue {
                    e["revenue"] = json!({"amount": amount, "currency": "EUR"});
                }
                e
            })
            .collect();
        assert_eq!(stack.collect(key, &[], &json!({"batch": batch})).status, 202);
    }

    fn segment(&self, stack: &Stack, key: &str, n: u8) {
        let batch: Vec<Value> = Self::wave(n)
            .into_iter()
            .map(|(v, kind, page, referrer, plan, revenue)| match kind {
                "pageview" => json!({"type": "page", "anonymousId": v, "properties": {"url": self.url(page), "referrer": referrer},
                    "context": {"userAgent": Self::user_agent(v)}}),
                name => {
                    let mut props = Self::unsafe_props(plan);
                    if let Some(amount) = revenue {
                        props["revenue"] = json!(amount);
                        props["currency"] = json!("EUR");
                    }
                    json!({"type": "track", "event": name, "anonymousId": v, "properties": props,
                        "context": {"page": {"url": self.url(page)}, "userAgent": Self::user_agent(v)}})
                }
            })
            .collect();
        let r = post(
            stack,
            "/v1/batch",
            &[("Content-Type", "application/json"), ("Authorization", &basic(key))],
            json!({"batch": batch}).to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    fn posthog(&self, stack: &Stack, key: &str, n: u8) {
        let batch: Vec<Value> = Self::wave(n)
            .into_iter()
            .map(|(v, kind, page, referrer, plan, _)| {
                let mut props = json!({"$device_id": v, "$current_url": self.url(page), "$referrer": referrer.unwrap_or("$direct"),
                    "$raw_user_agent": Self::user_agent(v)});
                if kind != "pageview" {
                    props.as_object_mut().unwrap().extend(Self::unsafe_props(plan).as_object().unwrap().clone());
                }
                json!({"event": if kind == "pageview" { "$pageview" } else { kind }, "distinct_id": v, "properties": props})
            })
            .collect();
        let r =
            post(stack, "/batch/", &[("Content-Type", "application/json")], json!({"api_key": key, "batch": batch}).to_string().as_bytes());
        assert_eq!((r.status, &r.body), (200, &json!({"status": 1})));
    }

    /// No key: the site by its domain; each visitor its own address (Plausible counts a
    /// visitor by a daily hash of address and user agent).
    fn plausible(&self, stack: &Stack, domain: &str, n: u8) {
        for (v, kind, page, referrer, plan, revenue) in Self::wave(n) {
            let ip = format!("198.51.100.{}", &v[1..]);
            let mut body = json!({"n": kind, "u": self.url(page), "d": domain, "r": referrer});
            if plan.is_some() {
                body["p"] = json!(Self::unsafe_props(plan).to_string());
            }
            if let Some(amount) = revenue {
                body["revenue"] = json!({"amount": amount, "currency": "EUR"});
            }
            let r = post(
                stack,
                "/api/event",
                &[("Content-Type", "text/plain"), ("CF-Connecting-IP", &ip), ("User-Agent", Self::user_agent(v))],
                body.to_string().as_bytes(),
            );
            assert_eq!(r.status, 202, "{:?}", r.body);
        }
    }
}

/// A site is one live key's: another key cannot take it, a rotation hands it to the new key,
/// a revocation lets it go (the index in KV `KEYS` follows each step).
fn domain_rules(stack: &Stack, run: &str) {
    let domain = format!("{run}.rules.test");
    let index = || {
        let listed = stack.kv_keys("KEYS").contains(&format!("domain:{domain}"));
        listed.then(|| stack.kv_get("KEYS", &format!("domain:{domain}")).trim().trim_matches('"').to_string())
    };
    let project = format!("rules_{run}");
    let (ok, created) = stack.keys_cli(&["create", &project, "--kinds", "publishable", "--domains", &domain]);
    assert!(ok, "{created}");
    let first = created["keys"][0]["hash"].as_str().unwrap().to_string();
    assert_eq!(index(), Some(first.clone()));
    for other in [project.as_str(), "rules_other"] {
        let (ok, taken) = stack.keys_cli(&["create", other, "--kinds", "publishable", "--domains", &domain]);
        assert!(!ok && taken["error"]["code"] == "domain_taken", "{other}: {taken}");
    }
    let (ok, rotated) = stack.keys_cli(&["rotate", &first]);
    assert!(ok, "{rotated}");
    let second = rotated["key"]["hash"].as_str().unwrap().to_string();
    assert_eq!((rotated["key"]["domains"].clone(), rotated["old"]["domains"].clone()), (json!([domain]), json!([])));
    assert_eq!(index(), Some(second.clone()), "the rotation hands the site to the new key");
    let (ok, revoked) = stack.keys_cli(&["revoke", &second]);
    assert!(ok, "{revoked}");
    assert_eq!(index(), None, "the revocation lets the site go");
    let (ok, retaken) = stack.keys_cli(&["create", "rules_other", "--kinds", "publishable", "--domains", &domain]);
    assert!(ok, "a site let go can be registered again: {retaken}");
}

/// The Stats API answers the same for the same traffic, whichever protocol carried it: one
/// project each for /collect, Segment, PostHog and Plausible.
fn same_numbers_as_collect(stack: &Stack, run: &str) {
    let read = stack.start_read();
    let mut projects = Vec::new();
    for name in ["collect", "segment", "posthog", "plausible"] {
        let project = format!("cmp_{name}_{run}");
        let domain = format!("{run}.cmp.test");
        let mut args = vec!["create", &project, "--kinds", "publishable,secret,read_only"];
        if name == "plausible" {
            args.extend(["--domains", &domain]);
        }
        let (ok, created) = stack.keys_cli(&args);
        assert!(ok, "{created}");
        let key = |kind: &str| {
            created["keys"].as_array().unwrap().iter().find(|k| k["kind"] == kind).unwrap()["key"].as_str().unwrap().to_string()
        };
        projects.push((name, project, key("secret"), key("read_only"), domain));
    }
    let traffic = Traffic { host: "cmp.test" };
    for n in [1, 2] {
        for (name, _, sk, _, domain) in &projects {
            match *name {
                "collect" => traffic.collect(stack, sk, n),
                "segment" => traffic.segment(stack, sk, n),
                "posthog" => traffic.posthog(stack, sk, n),
                _ => traffic.plausible(stack, domain, n),
            }
        }
        std::thread::sleep(Duration::from_millis(1_200));
    }
    for (name, project, ..) in &projects {
        assert_eq!(stack.wait_count(&format!("SELECT count() FROM events WHERE project_id = '{project}'"), 7, Duration::from_secs(30)), 7);
        let rows: Vec<Value> = stack
            .query(&format!("SELECT * FROM events WHERE project_id = '{project}' FORMAT JSONEachRow"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_private(&rows, name);
        let bots: Vec<&Value> = rows.iter().filter(|r| r["is_bot"] == 1).collect();
        assert_eq!(bots.len(), 1, "{name}: the crawler's pageview is flagged, and only it");
        let signup = rows.iter().find(|r| r["event_name"] == "Signup").unwrap();
        assert_eq!(signup["prop_keys"], json!(["plan"]), "{name}: an e-mail and a secret in the properties are dropped");
    }
    let today = jiff::Timestamp::now().in_tz("UTC").unwrap().date();
    let range = json!([today.yesterday().unwrap().to_string(), today.tomorrow().unwrap().to_string()]);
    let queries = [
        json!({"metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "views_per_visit"]}),
        json!({"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"]}),
        json!({"metrics": ["visitors", "visits"], "dimensions": ["visit:source"]}),
        json!({"metrics": ["events", "visitors"], "dimensions": ["event:name"]}),
        json!({"metrics": ["visitors", "conversion_rate"], "goal": {"event": "Signup"}, "dimensions": ["event:props:plan"]}),
        json!({"metrics": ["visitors", "total_revenue"], "goal": {"event": "Signup"}}),
    ];
    for (i, q) in queries.iter().enumerate() {
        let mut q = q.clone();
        q["date_range"] = range.clone();
        let answers: Vec<(&str, Value)> = projects
            .iter()
            .filter(|(name, ..)| i < 5 || *name != "posthog") // PostHog has no revenue field to map
            .map(|(name, _, _, rk, _)| {
                let r = read.query(rk, &q);
                assert_eq!(r.status, 200, "{name}: {q}: {:?}", r.body);
                (*name, r.body["results"].clone())
            })
            .collect();
        println!("compat: same numbers: {q}: {}", answers[0].1);
        assert!(answers[0].1.as_array().is_some_and(|a| !a.is_empty()), "{q}: no results");
        for (name, a) in &answers[1..] {
            assert_eq!(a, &answers[0].1, "{name} answers {q} unlike /collect");
        }
    }
}

#[test]
#[ignore = "needs wrangler, ClickHouse, Chromium and the vendors' SDKs: run scripts/test"]
fn vendor_sdks_end_to_end() {
    let site_listener = TcpListener::bind(("127.0.0.1", 0)).expect("a port from the OS");
    let site = format!("http://www.site.test:{}", site_listener.local_addr().unwrap().port());
    let pk = millimetric_core::keys::KeyRecord {
        allowed_origins: vec![site.clone()],
        ..millimetric_core::keys::KeyRecord::new(DEV_PROJECT, millimetric_core::keys::KeyKind::Publishable)
    };
    let stack = Stack::named("compat").key(PK, pk).start();
    let run = run_id();
    browsers(&stack, &run, &site, site_listener);
    let seen = server_sdks(&stack, &run);
    check_segment(&stack, &run, "segment-python", &format!("anon-{run}-py"), &seen);
    check_segment(&stack, &run, "segment-node", &format!("anon-{run}-node"), &seen);
    check_posthog(&stack, &run, "posthog-python", &seen);
    check_posthog(&stack, &run, "posthog-node", &seen);
    let person = stack.query("SELECT count() FROM events WHERE event_name IN ('$set', '$identify', 'identify') OR has(prop_keys, 'email')");
    assert_eq!(person.trim(), "0", "identify stored something");
    println!("compat: server SDKs: {} requests, all stored once", seen.len());
    answers(&stack, &run, &site);
    browser_batches_count_each_event(&stack, &run, &site);
    domain_rules(&stack, &run);
    same_numbers_as_collect(&stack, &run);
    // Nothing of a visitor's address or a person's identity anywhere the Worker wrote: its logs,
    // queue messages, KV (keys, erasures) and caches. (Before the erasures below, whose own
    // request lines name the id to erase.)
    let written = stack.everything_written();
    for leak in ["81.2.69.142", "198.51.100.", "jane+", "jane@example.com", "Jane Doe"] {
        assert!(!support::contains(&written, leak), "`{leak}` in the Worker's logs or persisted state");
    }
    erasure_by_user_id(&stack, &run);
}
