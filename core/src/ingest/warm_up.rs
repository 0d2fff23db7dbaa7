//! Warm-up when an isolate starts.
//!
//! workerd compiles each WebAssembly function lazily, the first time it is called. Without a
//! warm-up the first request of every new isolate pays for compiling the whole ingest path:
//! about 7 ms on this machine (`bench/cpu`), which put the first request over its 10 ms
//! budget. Running representative requests through the pure core from the Worker's start
//! event moves that compilation into isolate start-up. On Cloudflare, start-up runs while the
//! TLS handshake is still under way, and the first request becomes as fast as the ones after.
//!
//! Everything here is the real code path with built-in inputs: nothing is stored, sent or
//! kept, and a failure is only returned (a warm-up must never stop an isolate from starting).

use crate::enrich::geo::Geo;
use crate::error::ApiError;
use crate::ingest::event::{self, LIMITS};
use crate::ingest::pipeline::{self, RequestContext};
use crate::ingest::row::{self, EventRow, RowBatch};
use crate::keys::auth::{self, Route};
use crate::keys::{self, KeyRecord};
use crate::rate_limit;

/// A server SDK's gzip batch: a custom event with a forwarded IP and user agent, and a crawler's
/// pageview. `server_batch.json` is the same body uncompressed (a test keeps them equal).
const SERVER_BATCH_GZ: &[u8] = include_bytes!("warm_up/server_batch.json.gz");

/// A browser's pageview, sent with sendBeacon (text/plain).
const BROWSER_EVENT: &str = r#"{"type":"pageview","url":"https://shop.example.com/products/blue-widget?utm_source=newsletter&utm_medium=email&utm_campaign=bf26&gclid=Cj0KCQiA1234567890&email=jane%40example.com#reviews","referrer":"https://www.google.com/search?q=blue+widget","title":"Blue widget | Example shop","mm_aid":"6f1d0f0e-3c1b-4e8a-9f36-1b2a3c4d5e6f","id":"2f6c1c1e-6a4b-4f0e-9c53-0d7c2f1b8a11","props":{"plan":"pro","seats":3}}"#;
const BROWSER_UA: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A key record as KV holds it.
const KEY_RECORD: &str =
    r#"{"project_id":"warm-up","kind":"publishable","allowed_origins":["https://shop.example.com"],"retention_days":90}"#;

/// 2026-11-22T10:00:05Z, a few seconds after the batch's own timestamp.
const RECEIVED_MS: i64 = 1_795_341_605_000;

/// Why the warm-up stopped: one of its own inputs was refused (a bug the tests catch).
#[derive(Debug)]
pub struct WarmUpFailed(pub String);

impl From<ApiError> for WarmUpFailed {
    fn from(e: ApiError) -> Self {
        WarmUpFailed(e.to_string())
    }
}

/// Runs one browser request and one server batch through the core, from the raw body to the
/// queue message and the ClickHouse body the batch writer builds from it. Returns the rows
/// (so a test can see the path really ran) or the first error.
pub fn warm_up() -> Result<Vec<EventRow>, WarmUpFailed> {
    let mut rows = Vec::new();

    // Browser: text/plain body, publishable key from an allowed origin, the request's UA and geo.
    event::check_content_type(Some("text/plain;charset=UTF-8"))?;
    let encoding = event::check_content_encoding(None)?;
    let raw_key = "pk_live_warm_up_0001";
    let claimed = auth::claim(Route::Ingest, auth::bearer(Some("Bearer pk_live_warm_up_0001")))?;
    let _ = keys::key_hash(raw_key);
    let record: KeyRecord = serde_json::from_str(KEY_RECORD).map_err(|e| WarmUpFailed(e.to_string()))?;
    let browser = auth::authorize(Route::Ingest, claimed, Some(record), Some("https://shop.example.com"))?;
    let _ = rate_limit::ip_limit_key("warm-up", "192.0.2.1");
    let ctx = RequestContext {
        received_ms: RECEIVED_MS,
        user_agent: Some(BROWSER_UA.to_string()),
        edge_geo: Geo::new(Some("DE"), Some("BE"), Some("Berlin")),
        id_secret: None,
    };
    let json = event::decode_body(BROWSER_EVENT.as_bytes(), encoding, &LIMITS)?;
    for raw in event::parse_envelope(&json, &LIMITS)?.events {
        let ev = event::validate_event(raw, false, &LIMITS)?;
        rows.push(pipeline::build_row(&browser, ev, &ctx, &|_| None, &mut || "warm-up".into())?);
    }

    // Server: gzip batch, secret key, the forwarded UA (and IP, for a geo lookup that is absent).
    let server = keys::Principal::new("warm-up", auth::claim(Route::Ingest, Some("sk_live_warm_up_0001"))?);
    let json = event::decode_body(SERVER_BATCH_GZ, event::check_content_encoding(Some("gzip"))?, &LIMITS)?;
    let ctx = RequestContext { received_ms: RECEIVED_MS, ..RequestContext::default() };
    for raw in event::parse_envelope(&json, &LIMITS)?.events {
        let ev = event::validate_event(raw, true, &LIMITS)?;
        rows.push(pipeline::build_row(&server, ev, &ctx, &|_| None, &mut || "warm-up".into())?);
    }

    // The queue message the edge sends and the insert body the batch writer makes of it.
    for message in row::chunk_for_send_batch(row::encode_messages(&rows, row::MAX_MESSAGE_BYTES)).concat() {
        let batch = RowBatch::from_message(&message).map_err(WarmUpFailed)?;
        let _ = row::to_json_each_row(&batch.rows);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compressed_batch_is_the_json_beside_it() {
        let plain = include_bytes!("warm_up/server_batch.json");
        let decoded = event::decode_body(SERVER_BATCH_GZ, event::BodyEncoding::Gzip, &LIMITS).unwrap();
        assert_eq!(
            decoded,
            plain,
            "server_batch.json.gz is stale; regenerate it: python3 -c \"import gzip; d='core/src/ingest/warm_up/server_batch.json'; open(d+'.gz','wb').write(gzip.compress(open(d,'rb').read(), 9, mtime=0))\""
        );
    }

    #[test]
    fn warm_up_runs_every_stage_of_the_path() {
        let rows = warm_up().expect("the warm-up's own inputs are valid");
        assert_eq!(rows.len(), 3, "one browser event and a batch of two");

        let browser = &rows[0];
        assert_eq!(browser.project_id, "warm-up");
        assert_eq!(browser.browser, "Chrome");
        assert_eq!((browser.country.as_str(), browser.city.as_str()), ("DE", "Berlin"));
        assert_eq!((browser.utm_source.as_str(), browser.click_id_type.as_str()), ("newsletter", "gclid"));
        assert!(!browser.url_query.contains("jane"), "PII scrubbed: {}", browser.url_query);
        assert_eq!(browser.url_fragment, "", "fragment dropped");

        let signup = &rows[1];
        assert_eq!((signup.event_type.as_str(), signup.event_name.as_str()), ("custom", "signup"));
        assert_eq!((signup.os.as_str(), signup.device_type.as_str()), ("iOS", "mobile"));
        assert_eq!(signup.timestamp, "2026-11-22 10:00:00");
        assert!(!signup.url_query.contains("session_id"), "PII scrubbed: {}", signup.url_query);
        assert_eq!(signup.country, "", "no geo without the database");

        let crawler = &rows[2];
        assert_eq!(crawler.is_bot, 1);
        assert_eq!(crawler.medium, "ai");
    }
}
