//! Outside local development the Worker refuses to hash client IPs with the public default
//! salt: browser events answer 503 `config_error` naming IP_HASH_SALT, the log says so, and
//! `GET /admin/config-check` fails. Run by scripts/test (`cargo test -- --include-ignored`).

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
