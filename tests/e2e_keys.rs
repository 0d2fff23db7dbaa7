//! The key lifecycle end to end: `cargo run --bin keys` against the Worker under `wrangler dev`
//! creates a project's keys (shown once), sets a key's origins, rotates one and revokes one;
//! the Worker honours each, the listing never holds a raw key, every change is in the audit
//! log, and admin requests are limited per address. Prints how long a revocation took to reach
//! the Worker's isolate. Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use millimetric_core::keys::{KeyKind, KeyRecord};
use serde_json::json;
use std::time::{Duration, Instant};
use support::Stack;

fn send(stack: &Stack, key: &str, origin: Option<&str>) -> support::Reply {
    let mut h =
        vec![("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")];
    if let Some(o) = origin {
        h.push(("Origin", o));
    }
    stack.collect(key, &h, &json!({"url": "https://shop.example/"}))
}

/// Seconds until `key` is refused, asking every second (at most `limit`).
fn until_refused(stack: &Stack, key: &str, limit: Duration) -> Option<f64> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if send(stack, key, None).status == 401 {
            return Some(t.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    None
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn key_lifecycle_end_to_end() {
    // Many other projects' keys in the namespace, as in a deployment of hundreds of projects.
    let crowd = (0..400).fold(Stack::named("keys"), |spec, i| {
        spec.key(&format!("sk_live_crowd_{i:04}_000000000000"), KeyRecord::new(&format!("crowd-{}", i % 40), KeyKind::Secret))
    });
    // And a project whose keys were written before their project was stored as metadata.
    let crowd = (0..3).fold(crowd, |spec, i| {
        spec.unlabelled_key(&format!("sk_live_old_shop_{i}_000000000000"), KeyRecord::new("old-shop", KeyKind::Secret))
    });
    let stack = crowd.start();
    let (ok, created) =
        stack.keys_cli(&["create", "shop", "--origins", "https://old.shop.example", "--limit", "1000", "--timezone", "Europe/Berlin"]);
    assert!(ok, "{created}");
    let key =
        |kind: &str| created["keys"].as_array().unwrap().iter().find(|k| k["kind"] == kind).unwrap()["key"].as_str().unwrap().to_string();
    let hash =
        |kind: &str| created["keys"].as_array().unwrap().iter().find(|k| k["kind"] == kind).unwrap()["hash"].as_str().unwrap().to_string();
    let (pk, sk, rk) = (key("publishable"), key("secret"), key("read_only"));
    assert!(pk.starts_with("pk_live_") && sk.starts_with("sk_live_") && rk.starts_with("rk_live_"));

    // Settings before first use: the browser key's origin moves.
    let (ok, set) = stack.keys_cli(&["set", &hash("publishable"), "--origins", "https://shop.example"]);
    assert!(ok, "{set}");
    assert_eq!(send(&stack, &pk, Some("https://shop.example")).status, 202);
    assert_eq!(send(&stack, &pk, Some("https://old.shop.example")).code(), "origin_not_allowed");
    assert_eq!(send(&stack, &sk, None).status, 202);
    assert_eq!(send(&stack, &rk, None).code(), "read_only_key");

    // The listing: hashes and settings, never a raw key. It reads the project's 3 records, not
    // the 400 others' (an invocation may make 1,000 KV operations: a full scan once failed past
    // that, and a project's deletion with it, before any key was revoked).
    // Records written before metadata: found, and labelled (the first listing reads them),
    // so the next listings read only their own project's.
    let (ok, old) = stack.keys_cli(&["list", "old-shop"]);
    assert!(ok && old["keys"].as_array().map(Vec::len) == Some(3), "{old}");
    let reads = stack.meter("kv.reads");
    let (ok, old) = stack.keys_cli(&["list", "old-shop"]);
    assert!(ok && old["keys"].as_array().map(Vec::len) == Some(3), "{old}");
    let read = stack.meter("kv.reads") - reads;
    assert!(read <= 3, "listing 3 labelled keys read {read} key records");
    // Deleting the project deletes its key records' labels with them: nothing of it stays.
    let (ok, deleted) = stack.keys_cli(&["delete-project", "old-shop"]);
    assert!(ok, "{deleted}");
    let labels: Vec<String> = stack.kv_keys("KEYS").into_iter().filter(|k| k.starts_with("label:")).collect();
    assert!(labels.is_empty(), "labels outlived their project: {labels:?}");
    let reads = stack.meter("kv.reads");
    assert!(reads > 0, "the meter counts key-store reads (the keys above were looked up)");
    let (ok, listed) = stack.keys_cli(&["list", "shop"]);
    assert!(ok && listed["keys"].as_array().map(Vec::len) == Some(3), "{listed}");
    let read = stack.meter("kv.reads") - reads;
    assert!(read <= 3, "listing 3 keys read {read} key records");
    for raw in [&pk, &sk, &rk] {
        assert!(!listed.to_string().contains(raw.as_str()), "a raw key in the listing");
    }
    assert!(listed.to_string().contains("Europe/Berlin"));

    // Rotation: a new secret key works at once; the old one until its grace (0 s here) has
    // passed and the isolate has looked again.
    let (ok, rotated) = stack.keys_cli(&["rotate", &hash("secret"), "--grace", "0"]);
    assert!(ok, "{rotated}");
    let new_sk = rotated["key"]["key"].as_str().unwrap().to_string();
    assert_eq!(send(&stack, &new_sk, None).status, 202);
    let rotated_after = until_refused(&stack, &sk, Duration::from_secs(150)).expect("the rotated-out key was never refused");
    assert_eq!(send(&stack, &sk, None).code(), "revoked_key");

    // Revocation of a key in use (its record just cached by the isolate): measured until the
    // isolate refuses it.
    assert_eq!(send(&stack, &pk, Some("https://shop.example")).status, 202);
    let (ok, revoked) = stack.keys_cli(&["revoke", &hash("publishable")]);
    assert!(ok, "{revoked}");
    let t = Instant::now();
    let revoked_after = loop {
        if send(&stack, &pk, Some("https://shop.example")).status == 401 {
            break t.elapsed().as_secs_f64();
        }
        assert!(t.elapsed() < Duration::from_secs(150), "the revoked key still works after 150 s");
        std::thread::sleep(Duration::from_secs(1));
    };
    println!(
        "keys: a rotated-out key refused after {rotated_after:.0} s, a revoked key after {revoked_after:.0} s (bound {} s)",
        millimetric_core::keys::admin::REVOCATION_BOUND_SECONDS
    );
    assert!(revoked_after <= millimetric_core::keys::admin::REVOCATION_BOUND_SECONDS as f64);

    // A refused change to a known key is in the log too, with the refusal's code. A revoked
    // key is neither rotated nor changed: its sites would point at a dead key, and its record
    // written back could undo the revocation.
    let (ok, refused) = stack.keys_cli(&["rotate", &hash("publishable")]);
    assert!(!ok && refused["error"]["code"] == "invalid_settings", "a revoked key is not rotated: {refused}");
    let (ok, refused) = stack.keys_cli(&["set", &hash("publishable"), "--domains", "shop.example"]);
    assert!(!ok && refused["error"]["code"] == "invalid_settings", "a revoked key's settings are not changed: {refused}");
    let (ok, refused) = stack.keys_cli(&["set", &hash("secret"), "--limit", "5"]);
    assert!(!ok && refused["error"]["code"] == "invalid_settings", "nor a rotated-out key's past its grace: {refused}");

    // Every change is in the project's audit log.
    let log = stack.request("GET", "/v1/audit?limit=100", &[("Authorization", &format!("Bearer {new_sk}"))], b"");
    let refusals = log.body["audit"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["record"]["action"] == "key_change" && r["record"]["outcome"] == "invalid_settings").count());
    assert_eq!(refusals, Some(3), "the refused rotation and changes: {:?}", log.body);
    // Each says what was done, and to which key (a prefix of its hash, as `by` names keys).
    let named = |h: &str| format!("key:{}", &h[..12]);
    let mut changes: Vec<(String, String, String)> = log.body["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["record"]["action"] == "key_change")
        .map(|r| {
            let field = |f: &str| r["record"][f].as_str().unwrap_or("").to_string();
            (field("change"), field("key"), field("outcome"))
        })
        .collect();
    changes.sort();
    let made = created["keys"].as_array().unwrap().iter().map(|k| named(k["hash"].as_str().unwrap()));
    // A rotation names the key it made too (review finding: later records signed by the new key
    // traced back to no creation).
    let rotated_in = named(rotated["key"]["hash"].as_str().unwrap());
    let mut want: Vec<(String, String, String)> = made.chain([rotated_in]).map(|k| ("create".to_string(), k, "ok".to_string())).collect();
    for (change, kind, outcome) in [
        ("set", "publishable", "ok"),
        ("rotate", "secret", "ok"),
        ("revoke", "publishable", "ok"),
        ("rotate", "publishable", "invalid_settings"),
        ("set", "publishable", "invalid_settings"),
        ("set", "secret", "invalid_settings"),
    ] {
        want.push((change.to_string(), named(&hash(kind)), outcome.to_string()));
    }
    want.sort();
    assert_eq!(changes, want, "every key change, what it did and to which key: {:?}", log.body);

    // A creation that is refused writes nothing: a site another key holds is found before
    // any key of the request is stored (a secret key once was, and nobody ever saw it).
    let admin = [("Authorization", format!("Bearer {}", support::ADMIN_TOKEN)), ("Content-Type", "application/json".into())];
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r =
        stack.request("POST", "/admin/keys", &admin, br#"{"project_id":"site-a","kinds":["publishable"],"domains":["site-a.example"]}"#);
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = stack.request(
        "POST",
        "/admin/keys",
        &admin,
        br#"{"project_id":"site-b","kinds":["secret","publishable"],"domains":["site-a.example"]}"#,
    );
    assert_eq!((r.status, r.code()), (409, "domain_taken"), "{:?}", r.body);
    let (ok, listed) = stack.keys_cli(&["list", "site-b"]);
    assert!(ok && listed["keys"].as_array().map(Vec::len) == Some(0), "a refused creation left keys: {listed}");

    // Bad input is a clear 400; a wrong or missing token 401; and an address is limited.
    let (ok, bad) = stack.keys_cli(&["create", "bad project"]);
    assert!(!ok && bad["error"]["code"] == "invalid_project", "{bad}");
    let mut limited = false;
    for _ in 0..40 {
        let r = stack.request(
            "GET",
            "/admin/keys?project_id=shop",
            &[("Authorization", "Bearer wrong-token"), ("CF-Connecting-IP", "203.0.113.9")],
            b"",
        );
        assert!(r.status == 401 || r.status == 429, "{:?}", r.body);
        limited |= r.status == 429;
    }
    assert!(limited, "40 admin requests a minute from one address and none limited");
}
