//! Native hot-spot finder for the enrichment path (not the budget: that is measured in WASM
//! by bench/cpu). `cargo run --release --example enrich_loop [iterations]`; under
//! `valgrind --tool=callgrind` it shows where instructions go.
use millimetric_core::enrich::geo::Geo;
use millimetric_core::ingest::event::{self, LIMITS};
use millimetric_core::ingest::pipeline::{build_row, RequestContext};
use millimetric_core::keys::{KeyKind, Principal};
use std::time::Instant;

const BODY: &str = r#"{"type":"pageview","url":"https://shop.example.com/products/blue-widget?utm_source=newsletter&utm_medium=email&utm_campaign=bf26&gclid=Cj0KCQiA&email=jane%40example.com&ref=123","referrer":"https://www.google.com/search?q=blue+widget","title":"Blue widget | Example shop","mm_aid":"6f1d0f0e-3c1b-4e8a-9f36-1b2a3c4d5e6f","id":"2f6c1c1e-6a4b-4f0e-9c53-0d7c2f1b8a11","props":{"plan":"pro","seats":3,"trial":true}}"#;
const UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let principal = Principal::new("bench", KeyKind::Publishable);
    let ctx = RequestContext {
        received_ms: 1_795_000_000_000,
        user_agent: Some(UA.into()),
        edge_geo: Geo::new(Some("DE"), Some("Berlin"), Some("Berlin")),
        id_secret: None,
    };
    let mut bytes = 0;
    let t = Instant::now();
    for _ in 0..n {
        let env = event::parse_envelope(BODY.as_bytes(), &LIMITS).unwrap();
        for ev in env.events {
            let ev = event::validate_event(ev, false, &LIMITS).unwrap();
            let row = build_row(&principal, ev, &ctx, &|_| None, &mut || "id".into()).unwrap();
            bytes += millimetric_core::ingest::row::to_json_each_row([&row]).len();
        }
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{n} events, {per:.2} us/event natively ({bytes} bytes of rows)");
}
