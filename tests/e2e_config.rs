//! Outside local development the Worker refuses to hash client IPs with the public default
//! salt: browser events answer 503 `config_error` naming IP_HASH_SALT, the log says so, and
//! `GET /admin/config-check` fails. Without ID_HASH_SECRET, events with an id to hash answer 503. Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use millimetric_tools::dev_keys::*;
use serde_json::json;
use std::time::Duration;
use support::{Stack, ADMIN_TOKEN};

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn public_salt_is_refused_outside_development() {
    // Not development (MM_ENV is not `development`), with the public default salt.
    let stack = Stack::named("config").var("MM_ENV", "production").var("IP_HASH_SALT", "millimetric-local-development-salt").start();
    let browser = [("Origin", "https://example.com"), ("CF-Connecting-IP", "198.51.100.9")];
    let r = stack.collect(DEV_PUBLISHABLE, &browser, &json!({"url": "https://example.com/"}));
    assert_eq!((r.status, r.code()), (503, "config_error"), "{:?}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("IP_HASH_SALT"), "{:?}", r.body);
    assert!(stack.log_shows("503 config_error", Duration::from_secs(15)), "the refusal is logged:\n{}", stack.logs());

    let r = stack.request("GET", "/admin/config-check", &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))], b"");
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!((r.body["environment"].as_str(), r.body["ok"].as_bool()), (Some("production"), Some(false)), "{:?}", r.body);
    let salt = r.body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "ip_hash_salt").cloned().unwrap();
    assert_eq!(salt["status"], "fail", "{salt}");
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn ids_to_hash_are_refused_with_503_without_a_secret() {
    // Production with a safe IP salt, but no ID_HASH_SECRET.
    let stack = Stack::named("config-ids").var("MM_ENV", "production").var("IP_HASH_SALT", "a-safe-random-salt-5f0c2e9a7b3d41c8").start();
    // Without ID_HASH_SECRET an id that must be hashed (an e-mail as mm_aid, any user id) cannot
    // be stored: the whole request is refused with 503, which the SDKs retry, never a 400 they
    // drop or a success that leaves the event out.
    let batch = json!({"batch": [{"url": "https://example.com/", "mm_aid": "opaque-1"}, {"url": "https://example.com/", "user_id": "42"}]});
    let r = stack.collect(DEV_SECRET, &[], &batch);
    assert_eq!((r.status, r.code()), (503, "config_error"), "{:?}", r.body);
    let basic = {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{DEV_SECRET}:")))
    };
    let r = stack.request(
        "POST",
        "/v1/track",
        &[("Content-Type", "application/json"), ("Authorization", &basic)],
        br#"{"event":"x","userId":"42"}"#,
    );
    assert_eq!((r.status, r.code()), (503, "config_error"), "Segment, a single call: {:?}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("ID_HASH_SECRET"), "{:?}", r.body);

    // An event with no id to hash is stored as ever.
    let r = stack.collect(DEV_SECRET, &[], &json!({"url": "https://example.com/", "mm_aid": "opaque-1"}));
    assert_eq!(r.status, 202, "{:?}", r.body);
}
