//! Prints JSONEachRow rows made by the real pipeline (for checking the schema against other
//! ClickHouse versions: scripts/check-modern-clickhouse). `cargo run --example sample_rows`
use millimetric_core::enrich::geo::Geo;
use millimetric_core::ingest::event::{self, LIMITS};
use millimetric_core::ingest::pipeline::{build_row, RequestContext};
use millimetric_core::keys::{KeyKind, Principal};

fn main() {
    let bodies = [
        r#"{"type":"pageview","id":"m-1","url":"https://shop.example.com/p?utm_source=nl&gclid=abc&email=a%40b.com","referrer":"https://www.google.com/","title":"P","mm_aid":"v1","timestamp":"2026-11-20T10:00:00Z"}"#,
        r#"{"type":"event","name":"signup","id":"m-2","url":"https://shop.example.com/welcome","props":{"plan":"pro","seats":3},"revenue":{"amount":"123456789012.123456","currency":"EUR"},"ip":"81.2.69.142","user_agent":"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"}"#,
    ];
    let principal = Principal { retention_days: 30, ..Principal::new("proj_modern", KeyKind::Secret) };
    let ctx = RequestContext { received_ms: 1_795_000_000_000, user_agent: None, edge_geo: Geo::default(), id_secret: None };
    for b in bodies {
        let env = event::parse_envelope(b.as_bytes(), &LIMITS).expect("sample body");
        for ev in env.events {
            let ev = event::validate_event(ev, true, &LIMITS).expect("sample event");
            let row =
                build_row(&principal, ev, &ctx, &|_| Some(Geo::new(Some("GB"), Some("England"), Some("London"))), &mut || "gen".into())
                    .expect("row");
            print!("{}", millimetric_core::ingest::row::to_json_each_row([&row]));
        }
    }
}
