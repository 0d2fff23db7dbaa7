//! Bad input gets an error, never a panic: thousands of corrupted bodies (byte flips,
//! truncations, junk splices, deep nesting, odd unicode), plain and gzipped, through the whole
//! pure path the Worker runs. Deterministic (a fixed xorshift seed), so a failure reproduces.

use millimetric_core::enrich::geo::Geo;
use millimetric_core::ingest::event::{self, BodyEncoding, LIMITS};
use millimetric_core::ingest::pipeline::{build_row, RequestContext};
use millimetric_core::keys::{KeyKind, Principal};
use millimetric_core::privacy::pseudonym::IdSecret;
use std::io::Write;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

const SEEDS: &[&str] = &[
    r#"{"type":"pageview","url":"https://a.com/p?utm_source=x&email=a%40b.com#f","referrer":"https://www.google.com/","mm_aid":"v","props":{"a":1,"b":"x","c":true}}"#,
    r#"{"batch":[{"type":"event","name":"n","url":"https://a.com/","ip":"81.2.69.142","user_agent":"curl/8","timestamp":"2026-11-20T10:00:00Z"},{"url":"http://[::1]:8080/x?gclid=abc"}]}"#,
    r#"{"key":"pk_live_x","url":"https://xn--bcher-kva.example/ü?q=%E2%82%AC&phone=%2B44%2020%207946%200958","title":"\u0000\ud83d\ude00"}"#,
];
const JUNK: &[&str] = &[
    "{", "}", "[", "]", "\"", "\\", ",", ":", "null", "1e999", "-0", "\u{feff}", "%", "%zz", "?", "#", "@", "\u{0}", "ü", "[[[[[[[[",
    "{\"a\":",
];

fn run(body: &[u8], enc: BodyEncoding) {
    let principal = Principal { hash_routing: true, ..Principal::new("p", KeyKind::Secret) };
    let ctx = RequestContext {
        received_ms: 1_795_000_000_000,
        user_agent: Some("Mozilla/5.0".into()),
        edge_geo: Geo::default(),
        // a secret, so an event whose id looks personal runs the whole path (hashed, not refused)
        id_secret: Some(IdSecret::new("never-panics-test-secret")),
    };
    let Ok(json) = event::decode_body(body, enc, &LIMITS) else { return };
    let Ok(env) = event::parse_envelope(&json, &LIMITS) else { return };
    for ev in env.events {
        if let Ok(ev) = event::validate_event(ev, true, &LIMITS) {
            if let Ok(row) = build_row(&principal, ev, &ctx, &|_| None, &mut || "id".into()) {
                let _ = millimetric_core::ingest::row::to_json_each_row([&row]);
            }
        }
    }
}

#[test]
fn corrupted_bodies_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = 0;
    for _ in 0..6000 {
        let mut b = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                1 if !b.is_empty() => b.truncate(rng.below(b.len())),
                2 => {
                    let i = rng.below(b.len() + 1);
                    let j = JUNK[rng.below(JUNK.len())].as_bytes();
                    b.splice(i..i, j.iter().copied());
                }
                _ => {
                    let i = rng.below(b.len() + 1);
                    let dup = b[..i].to_vec();
                    b.extend_from_slice(&dup);
                }
            }
        }
        run(&b, BodyEncoding::Identity);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&b).unwrap();
        let mut z = gz.finish().unwrap();
        run(&z, BodyEncoding::Gzip);
        if !z.is_empty() {
            let i = rng.below(z.len());
            z[i] ^= 0x5a; // corrupt the compressed stream itself
            run(&z, BodyEncoding::Gzip);
        }
        cases += 3;
    }
    // Deep nesting must not overflow the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    run(deep.as_bytes(), BodyEncoding::Identity);
    let deep = format!(r#"{{"url":"https://a.com/","props":{{"a":{}{}}}}}"#, "{\"b\":".repeat(50_000), "}".repeat(50_000));
    run(deep.as_bytes(), BodyEncoding::Identity);
    assert!(cases >= 18_000);
}

const QUERY_SEEDS: &[&str] = &[
    r#"{"metrics":["visitors","bounce_rate","percentage"],"date_range":"7d","dimensions":["visit:source","event:props:plan"],"filters":[["or",[["matches","event:page",["^/blog"]],["not",["is","visit:country",["DE"]]]]]],"compare":"previous_period","include":{"total_rows":true}}"#,
    r#"{"metrics":["conversion_rate"],"date_range":["2026-10-24","2026-10-26"],"timezone":"Asia/Kathmandu","dimensions":["time:hour"],"filters":[["is","event:name",["signup"]]],"order_by":[["time:hour","asc"]],"pagination":{"limit":5,"offset":2}}"#,
    r#"{"metrics":["pageviews"],"date_range":["2026-11-01T10:00:00+01:00","2026-11-01T12:00:00Z"],"compare":"year_over_year","dimensions":["time:month"]}"#,
    r#"{"metrics":["visitors","events"],"date_range":"12mo","dimensions":["event:props:plan","time:week"],"filters":[["is","event:name",["signup"]]],"source":"aggregates","compare":"previous_period"}"#,
    r#"{"metrics":["visitors","visit_duration","percentage"],"date_range":"6mo","dimensions":["visit:country"],"filters":[["contains","visit:city",["x"]]],"source":"auto","include":{"bots":true}}"#,
];

/// Query bodies: random splices and flips of valid queries never panic the planner, and every
/// statement it makes names the key's project and only that one.
#[test]
fn query_bodies_never_panic_or_name_another_project() {
    use millimetric_core::query::plan::{plan, Tables};
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let junk: &[&str] = &[
        "'",
        "\\'",
        "proj_other",
        "\"site_id\":\"proj_other\",",
        "\u{0}",
        "[[",
        "]]",
        "\"",
        ",",
        "{",
        "}",
        "\"time:day\"",
        "\"event:props:'\"",
        "99999999999999999999",
        "-1",
    ];
    let tables = Tables { database: "millimetric", table: "events" };
    let (mut planned, mut refused, mut via_aggregates) = (0, 0, 0);
    for _ in 0..20_000 {
        let mut b = QUERY_SEEDS[rng.below(QUERY_SEEDS.len())].as_bytes().to_vec();
        for _ in 0..rng.below(3) {
            match rng.below(3) {
                0 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                1 if !b.is_empty() => b.truncate(rng.below(b.len())),
                _ => {
                    let i = rng.below(b.len() + 1);
                    let j = junk[rng.below(junk.len())].as_bytes();
                    b.splice(i..i, j.iter().copied());
                }
            }
        }
        // Planned, and (when aggregates answer) split at a rollup frontier mid-period.
        let planned_at = match plan(&b, "proj_dev", Some("Europe/Berlin"), tables, 1_796_032_800_000) {
            Ok(p) if p.wants_frontier() => {
                via_aggregates += 1;
                p.with_frontier(Some(1_795_000_000))
            }
            other => other,
        };
        match planned_at {
            Ok(p) => {
                planned += 1;
                let then = p.then.clone().unwrap_or_else(|| p.now.clone());
                for sql in [
                    Some(&p.now.rows),
                    p.now.total_rows.as_ref(),
                    p.now.total_visitors.as_ref(),
                    p.now.conversion_base.as_ref(),
                    Some(&then.rows),
                ]
                .into_iter()
                .flatten()
                {
                    assert_eq!(sql.matches("project_id = 'proj_dev'").count(), sql.matches("project_id =").count(), "{sql}");
                    assert!(!sql.contains("project_id = 'proj_other'"));
                }
            }
            Err(e) => {
                refused += 1;
                assert!((400..500).contains(&e.status), "{e}");
                assert!(!e.code.is_empty() && e.message.len() > 10);
            }
        }
    }
    assert!(
        planned > 2000 && refused > 2000 && via_aggregates > 2000,
        "planned {planned}, refused {refused}, from aggregates {via_aggregates}"
    );
}
