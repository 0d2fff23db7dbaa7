//! Full enrichment of each posted event with the real core: body decode, envelope, validation,
//! URL scrubbing, attribution, UA and bot classification, row building and its JSON.
use millimetric_core::enrich::geo::Geo;
use millimetric_core::ingest::event::{self, LIMITS};
use millimetric_core::ingest::pipeline::{build_row, RequestContext};
use millimetric_core::keys::{KeyKind, Principal};
use worker::*;

#[event(fetch)]
async fn fetch(mut req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let body = req.bytes().await?;
    let ua = req.headers().get("User-Agent")?;
    let principal = Principal::new("bench", KeyKind::Publishable);
    let ctx = RequestContext {
        received_ms: Date::now().as_millis() as i64,
        user_agent: ua,
        edge_geo: Geo::new(Some("DE"), Some("Berlin"), Some("Berlin")),
        id_secret: None,
    };
    let json = event::decode_body(&body, event::BodyEncoding::Identity, &LIMITS).map_err(|e| Error::RustError(e.to_string()))?;
    let env = event::parse_envelope(&json, &LIMITS).map_err(|e| Error::RustError(e.to_string()))?;
    let mut out = String::new();
    for ev in env.events {
        let ev = event::validate_event(ev, false, &LIMITS).map_err(|e| Error::RustError(e.to_string()))?;
        let row = build_row(&principal, ev, &ctx, &|_| None, &mut || "bench-id".into()).map_err(|e| Error::RustError(e.to_string()))?;
        out = millimetric_core::ingest::row::to_json_each_row([&row]);
    }
    Ok(Response::ok(out)?.with_status(202))
}

/// The same start-up warm-up as the edge Worker, so the first request is measured as it is there.
#[event(start)]
fn start() {
    let _ = millimetric_core::ingest::warm_up::warm_up();
}
