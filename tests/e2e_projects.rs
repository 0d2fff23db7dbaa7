//! A project's whole data deleted at the end of a contract, end to end against `wrangler dev`
//! and ClickHouse: a closure scheduled and cancelled changes nothing; a closure that is due is
//! carried out by the daily cron, after which no row of the project is left in any ClickHouse
//! table with a `project_id` column (found through `system.columns` here, so a table added
//! later is covered, whatever the Worker's own list), nor in KV, and the other project keeps
//! all of its data. `DELETE /admin/projects/{id}` does the same at once. The only R2 bucket
//! holds the geo database: no project data is ever in R2. Run by scripts/test.

mod support;

use millimetric_tools::dev_keys::*;
use serde_json::json;
use std::time::Duration;
use support::{Stack, ADMIN_TOKEN};

const LAND: Duration = Duration::from_secs(60);

/// Every ClickHouse table (and view) with a `project_id` column, by the test's own query.
fn tables(stack: &Stack) -> Vec<String> {
    let out =
        stack.query("SELECT DISTINCT table FROM system.columns WHERE database = 'millimetric' AND name = 'project_id' ORDER BY table");
    out.lines().map(str::to_string).filter(|t| !t.is_empty()).collect()
}

/// (table, rows of `project`) for every table with a `project_id` column.
fn rows_of(stack: &Stack, project: &str) -> Vec<(String, u64)> {
    tables(stack)
        .into_iter()
        .map(|t| {
            let n = stack.query(&format!("SELECT count() FROM millimetric.`{t}` WHERE project_id = '{project}'"));
            (t, n.trim().parse().unwrap_or(0))
        })
        .collect()
}

/// Tables that hold fewer rows now than before (each daily run adds a version of the
/// aggregates, so rows may be added; none may go).
fn lost_rows(now: &[(String, u64)], before: &[(String, u64)]) -> Vec<(String, u64, u64)> {
    before.iter().map(|(t, b)| (t.clone(), *b, now.iter().find(|(n, _)| n == t).map_or(0, |(_, n)| *n))).filter(|(_, b, n)| n < b).collect()
}

fn admin(stack: &Stack, method: &str, path: &str, body: &[u8]) -> support::Reply {
    stack.request(method, path, &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))], body)
}

/// KV entries that name `project` (in the key or the value), by binding; the audit log apart.
fn kv_naming(stack: &Stack, project: &str) -> Vec<String> {
    let mut found = Vec::new();
    for binding in ["KEYS", "DEAD_LETTERS", "ERASURES"] {
        for key in stack.kv_keys(binding) {
            if key.contains(project) || stack.kv_get(binding, &key).contains(project) {
                found.push(format!("{binding}: {key}"));
            }
        }
    }
    found
}

/// When the shared dead letter expires: 10 days on (a dead letter is kept 30), on the day the
/// test runs, so a rewrite that resets it to 30 days shows.
fn dead_letter_expiry() -> u64 {
    let day = 86_400;
    (time::OffsetDateTime::now_utc().unix_timestamp() as u64 / day + 10) * day
}

/// Events for both projects, yesterday (rolled up into the aggregates by the cron) and now;
/// a visitor's erasure record each, a visitor export counted in usage, a quota and a whole
/// export in R2; a dead letter holding rows of both.
fn seed(stack: &Stack) {
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let ms = (yesterday.unix_timestamp() * 1000).to_string();
    for (key, project) in [(DEV_SECRET, DEV_PROJECT), (DEV_OTHER_SECRET, DEV_OTHER_PROJECT)] {
        let batch = json!({"batch": [
            {"type": "pageview", "url": "https://example.com/a?utm_source=news", "mm_aid": "v1", "timestamp": ms.parse::<i64>().unwrap()},
            {"type": "event", "name": "signup", "url": "https://example.com/b", "mm_aid": "v1", "props": {"plan": "pro"}},
            {"type": "pageview", "url": "https://example.com/c", "mm_aid": "gone"}]});
        assert_eq!(stack.collect(key, &[], &batch).status, 202, "{project}");
        let sk = format!("Bearer {key}");
        let landed = format!("SELECT count() FROM events_dedup WHERE project_id = '{project}' AND anonymous_id = 'gone'");
        assert_eq!(stack.wait_count(&landed, 1, LAND), 1, "{project}'s events did not land:\n{}", stack.logs());
        assert_eq!(stack.request("DELETE", "/visitors/gone", &[("Authorization", &sk)], b"").status, 202);
        let erased = support::eventually(LAND, || stack.query(&landed).trim() == "0");
        assert!(erased, "the visitor's erasure (a mutation) did not land before the counts are taken");
        // Usage: an export (counted in usage_counts) and a capped quota with its flag in KV.
        assert_eq!(stack.request("GET", "/visitors/v1/events", &[("Authorization", &sk)], b"").status, 200);
        let quota = admin(stack, "PUT", &format!("/admin/projects/{project}/quota"), br#"{"monthly_events": 1000, "hard_cap": true}"#);
        assert_eq!(quota.status, 200, "{:?}", quota.body);
        stack.kv_put("KEYS", &format!("quota_reached:{project}"), "1970-01");
        let counted = format!("SELECT count() FROM usage_counts WHERE project_id = '{project}'");
        assert_eq!(stack.wait_count(&counted, 1, LAND), 1, "{project}'s export was not counted:\n{}", stack.logs());
    }
    // A whole export of each, in R2.
    for project in [DEV_PROJECT, DEV_OTHER_PROJECT] {
        assert_eq!(admin(stack, "POST", &format!("/admin/projects/{project}/exports"), b"").status, 202);
        let done = support::eventually(LAND, || {
            // Every other second: admin requests are limited to 30 a minute per address.
            std::thread::sleep(Duration::from_millis(1800));
            let l = admin(stack, "GET", &format!("/admin/projects/{project}/exports"), b"");
            // Its events' parts (the aggregates are not rolled up yet: a table without rows has none).
            l.body["exports"][0]["status"] == "done" && l.body["objects"].as_u64().unwrap_or(0) >= 1
        });
        assert!(done, "{project}'s export did not finish:\n{}", stack.logs());
    }
    let (_, an_hour_ago) = support::time_ago(Duration::from_secs(3600));
    let row = |p: &str| json!({"project_id": p, "event_id": format!("dl-{p}"), "timestamp": an_hour_ago, "received_at": an_hour_ago, "anonymous_id": "v9"});
    // And a row past its retention (40 days old, kept 30): the daily job drops it.
    let (_, long_ago) = support::time_ago(Duration::from_secs(40 * 86_400));
    let expired = json!({"project_id": DEV_OTHER_PROJECT, "event_id": "dl-expired", "timestamp": long_ago, "received_at": an_hour_ago, "anonymous_id": "v9", "retention_days": 30});
    let dead = json!({"rows": [row(DEV_PROJECT), row(DEV_OTHER_PROJECT), expired], "failure": {"code": 27, "reason": "test"}});
    stack.kv_put_expiring("DEAD_LETTERS", "dlq:0000000000001:test", &dead.to_string(), dead_letter_expiry());
    assert_eq!(stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"").status, 200, "the daily job (rollup)");
    let dead = stack.kv_get("DEAD_LETTERS", "dlq:0000000000001:test");
    assert!(!dead.contains("dl-expired") && dead.contains("dl-proj_other"), "retention reaches the dead letters: {dead}");
    let aggregated = "SELECT count() FROM visits_agg WHERE project_id IN ('proj_dev', 'proj_other')";
    assert!(stack.wait_count(aggregated, 2, LAND) >= 2, "yesterday was not rolled up:\n{}", stack.logs());
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn project_deletion_end_to_end() {
    support::wait_clear_of_midnight(&[&jiff::tz::TimeZone::UTC], Duration::from_secs(10 * 60));
    let stack = Stack::named("projects").start();
    seed(&stack);
    let before_dev = rows_of(&stack, DEV_PROJECT);
    let before_other = rows_of(&stack, DEV_OTHER_PROJECT);
    let held = |rows: &[(String, u64)]| rows.iter().filter(|(_, n)| *n > 0).map(|(t, _)| t.clone()).collect::<Vec<_>>();
    assert!(held(&before_dev).len() >= 4, "the project's data should reach the raw, index and aggregate tables: {before_dev:?}");
    assert!(!kv_naming(&stack, DEV_PROJECT).is_empty(), "the KV check must see the project's keys before the deletion");

    // A closure scheduled (30 days by default), read back, cancelled: the cron changes nothing.
    let r = admin(&stack, "POST", "/admin/projects/proj_other/closure", b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert!(r.body["closure"]["deletion_due"].as_str().is_some_and(|d| d > r.body["closure"]["requested_at"].as_str().unwrap()));
    assert_eq!(admin(&stack, "GET", "/admin/projects/proj_other/closure", b"").body["closure"], r.body["closure"]);
    assert_eq!(admin(&stack, "DELETE", "/admin/projects/proj_other/closure", b"").body["closure"], json!(null));
    let bad = admin(&stack, "POST", "/admin/projects/proj_other/closure", br#"{"delete_after_days": 31}"#);
    assert_eq!((bad.status, bad.code()), (400, "invalid_closure"));
    assert_eq!(stack.request("POST", "/admin/projects/proj_dev/closure", &[], b"").code(), "admin_token_required");
    // Audited as what each was: the closure scheduled, the refused one, the cancellation; the
    // read is not an action.
    let mut closures: Vec<(String, String)> = stack
        .kv_keys("AUDIT")
        .into_iter()
        .filter(|k| k.starts_with("audit:proj_other:"))
        .map(|k| serde_json::from_str::<serde_json::Value>(&stack.kv_get("AUDIT", &k)).unwrap())
        .filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with("project_closure")))
        .map(|r| (r["action"].as_str().unwrap().to_string(), r["outcome"].as_str().unwrap().to_string()))
        .collect();
    closures.sort();
    let expected = [("project_closure", "invalid_closure"), ("project_closure", "ok"), ("project_closure_cancelled", "ok")];
    assert_eq!(closures, expected.map(|(a, o)| (a.to_string(), o.to_string())), "the closure's audit records");

    // A closure 30 days on: the cron leaves it alone until the test's clock says 29 days have
    // passed (the record's times moved back by 29 days and a second), then carries it out.
    let r = admin(&stack, "POST", "/admin/projects/proj_dev/closure", b"");
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"").status, 200);
    std::thread::sleep(Duration::from_secs(2));
    let lost = lost_rows(&rows_of(&stack, DEV_PROJECT), &before_dev);
    assert!(lost.is_empty(), "a closure that is not due deletes nothing: {lost:?}");
    let keys_before = admin(&stack, "GET", "/admin/keys?project_id=proj_dev", b"").body["keys"].clone();
    assert!(keys_before.as_array().is_some_and(|k| k.len() >= 2), "{keys_before}");
    assert_eq!(admin(&stack, "GET", "/admin/projects/proj_dev/closure", b"").body["closure"], r.body["closure"], "still scheduled");
    let mut record: serde_json::Value = serde_json::from_str(&stack.kv_get("ERASURES", "closure:proj_dev")).unwrap();
    // 29 days on, not 30: its date is still a day away, but the next daily run would be past
    // the 30 days, so this run carries it out.
    let days_ago = |ms: &serde_json::Value| ms.as_i64().unwrap() - 29 * 86_400_000 - 1_000;
    record["requested_ms"] = days_ago(&record["requested_ms"]).into();
    record["due_ms"] = days_ago(&record["due_ms"]).into();
    stack.kv_put("ERASURES", "closure:proj_dev", &record.to_string());
    assert_eq!(stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"").status, 200);
    let gone = support::eventually(LAND, || rows_of(&stack, DEV_PROJECT).iter().all(|(_, n)| *n == 0));
    assert!(gone, "rows of the deleted project left: {:?}\n{}", rows_of(&stack, DEV_PROJECT), stack.logs());
    let left = kv_naming(&stack, DEV_PROJECT);
    assert_eq!(left, ["ERASURES: deleted:proj_dev"], "only the deletion's tombstone (90 days) may name it");
    let exports = |p: &str| admin(&stack, "GET", &format!("/admin/projects/{p}/exports"), b"").body;
    let dev_exports = exports(DEV_PROJECT);
    assert_eq!(
        (dev_exports["objects"].as_u64(), dev_exports["exports"].clone()),
        (Some(0), json!([])),
        "no export part left in R2: {dev_exports}"
    );
    assert!(exports(DEV_OTHER_PROJECT)["objects"].as_u64().unwrap_or(0) >= 1, "the other project's export stays");
    let now_s = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let expiry = stack.kv_expiration("ERASURES", "deleted:proj_dev");
    assert!(
        expiry.is_some_and(|e| e > now_s + 89 * 86_400 && e <= now_s + 90 * 86_400 + 60),
        "a completed deletion's tombstone lasts as long as the project's audit records, 90 days: {expiry:?}"
    );
    // Its keys are refused once every isolate's cache has let go of them (seconds). The probe's
    // body is invalid, so a key still accepted stores nothing (400, not 202).
    let listed = admin(&stack, "GET", "/admin/keys?project_id=proj_dev", b"");
    assert_eq!(listed.body["keys"], json!([]), "no key record of the project is left");
    // While its tombstone lasts, the id is reserved: the daily job would delete a new
    // project's rows under it, and its keys would read the old project's audit records.
    let again = admin(&stack, "POST", "/admin/keys", br#"{"project_id": "proj_dev"}"#);
    assert_eq!((again.status, again.code()), (409, "project_deleted"), "{:?}", again.body);
    // A deletion that failed part way (a key record and an erasure record left, as when KV
    // failed after ClickHouse; its tombstone not completed, so without an expiry) is finished
    // by the next daily run, which then starts the tombstone's 90 days.
    stack.kv_put("ERASURES", "deleted:proj_dev", r#"{"completed_ms":null}"#);
    assert_eq!(stack.kv_expiration("ERASURES", "deleted:proj_dev"), None);
    let leftover_key = stack.kv_keys("KEYS").into_iter().next().expect("the other project's keys");
    let mut record: serde_json::Value = serde_json::from_str(&stack.kv_get("KEYS", &leftover_key)).unwrap();
    record["project_id"] = "proj_dev".into();
    record["kind"] = "publishable".into();
    record["domains"] = json!(["left-over.example"]); // and its site, still in the domain index
    stack.kv_put("KEYS", "0".repeat(64).as_str(), &record.to_string());
    stack.kv_put("KEYS", "domain:left-over.example", &"0".repeat(64));
    stack.kv_put("ERASURES", r#"["proj_dev","left-over"]"#, "{}");
    assert_eq!(kv_naming(&stack, DEV_PROJECT).len(), 3, "{:?}", kv_naming(&stack, DEV_PROJECT));
    assert_eq!(stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"").status, 200);
    assert!(support::eventually(LAND, || kv_naming(&stack, DEV_PROJECT).len() == 1), "{:?}", kv_naming(&stack, DEV_PROJECT));
    assert!(stack.kv_expiration("ERASURES", "deleted:proj_dev").is_some(), "the finished deletion's tombstone expires");
    assert!(!stack.kv_keys("KEYS").contains(&"domain:left-over.example".to_string()), "the deleted key's site stays registered");
    let refused =
        support::eventually(Duration::from_secs(150), || stack.collect(DEV_SECRET, &[], &json!({"url": "not a url"})).status == 401);
    assert!(refused, "the deleted project's key is still taken");

    // The other project keeps everything: rows in every table, its keys, its erasure record,
    // its row in the shared dead letter.
    let lost = lost_rows(&rows_of(&stack, DEV_OTHER_PROJECT), &before_other);
    assert!(lost.is_empty(), "the other project is untouched: {lost:?}");
    assert_eq!(stack.collect(DEV_OTHER_SECRET, &[], &json!({"url": "https://example.com/"})).status, 202);
    assert!(kv_naming(&stack, DEV_OTHER_PROJECT).iter().any(|k| k.starts_with("ERASURES: [")), "its erasure record stays");
    let dead = stack.kv_get("DEAD_LETTERS", "dlq:0000000000001:test");
    assert!(dead.contains("dl-proj_other") && !dead.contains("dl-proj_dev"), "{dead}");
    let kept_until = stack.kv_expiration("DEAD_LETTERS", "dlq:0000000000001:test");
    assert_eq!(kept_until, Some(dead_letter_expiry()), "the other project's rows are kept no longer than before");

    // The audit log keeps the deletion (90 days, as the DPA requires).
    let audit: Vec<String> = stack.kv_keys("AUDIT").into_iter().filter(|k| k.starts_with("audit:proj_dev:")).collect();
    assert!(audit.iter().any(|k| stack.kv_get("AUDIT", k).contains("\"project_deletion\"")), "{audit:?}");

    // At once, for the other project too: then nothing of either is left.
    let r = admin(&stack, "DELETE", "/admin/projects/proj_other", b"");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["deleted"]["keys"].as_u64().unwrap() >= 2, "{:?}", r.body);
    assert!(support::eventually(LAND, || rows_of(&stack, DEV_OTHER_PROJECT).iter().all(|(_, n)| *n == 0)));
    assert_eq!(kv_naming(&stack, DEV_OTHER_PROJECT), ["ERASURES: deleted:proj_other"]);
    assert_eq!(exports(DEV_OTHER_PROJECT)["objects"].as_u64(), Some(0));
    assert_eq!(stack.kv_keys("DEAD_LETTERS"), Vec::<String>::new(), "the shared dead letter had nothing else: it is gone");
}
