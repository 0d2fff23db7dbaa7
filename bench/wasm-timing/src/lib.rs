//! One exported call per event: the same path as the Worker's (decode, validate, enrich, row JSON).
use millimetric_core::enrich::geo::Geo;
use millimetric_core::ingest::event::{self, LIMITS};
use millimetric_core::ingest::pipeline::{build_row, RequestContext};
use millimetric_core::keys::{KeyKind, Principal};
use wasm_bindgen::prelude::*;

/// Enrich one event body as a browser-key request with `ua`; the row's JSON length (0 on error).
#[wasm_bindgen]
pub fn enrich(body: &str, ua: &str, now_ms: f64) -> usize {
    let principal = Principal::new("bench", KeyKind::Publishable);
    let ctx = RequestContext {
        received_ms: now_ms as i64,
        user_agent: Some(ua.to_string()),
        edge_geo: Geo::new(Some("DE"), Some("Berlin"), Some("Berlin")),
        id_secret: None,
    };
    let Ok(env) = event::parse_envelope(body.as_bytes(), &LIMITS) else { return 0 };
    let mut n = 0;
    for ev in env.events {
        let Ok(ev) = event::validate_event(ev, false, &LIMITS) else { return 0 };
        let Ok(row) = build_row(&principal, ev, &ctx, &|_| None, &mut || "id".into()) else { return 0 };
        n += millimetric_core::ingest::row::to_json_each_row([&row]).len();
    }
    n
}
