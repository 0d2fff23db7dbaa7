//! Response helpers: JSON bodies, CORS headers.

use millimetric_core::error::ApiError;
use worker::{Headers, Request, Response};

pub fn json(status: u16, body: &str, cors_origin: Option<&str>) -> Response {
    typed(status, "application/json", body, cors_origin)
}

/// A body of `content_type`, never cached, with CORS for `cors_origin`.
pub fn typed(status: u16, content_type: &str, body: &str, cors_origin: Option<&str>) -> Response {
    let headers = Headers::new();
    let _ = headers.set("Content-Type", content_type);
    let _ = headers.set("Cache-Control", "no-store");
    if let Some(o) = cors_origin {
        let _ = headers.set("Access-Control-Allow-Origin", o);
        let _ = headers.set("Vary", "Origin");
    }
    with_body(status, body, headers)
}

fn with_body(status: u16, body: &str, headers: Headers) -> Response {
    Response::from_bytes(body.as_bytes().to_vec())
        .map(|r| r.with_status(status).with_headers(headers))
        .unwrap_or_else(|_| Response::empty().expect("empty response").with_status(500))
}

/// Every limit here counts requests per minute: a 429 without a wait of its own says to wait
/// out the minute.
const MINUTE_S: u32 = 60;

/// An error's answer. A 429 always says when to come back (`Retry-After`, a minute unless
/// `rate_limited` names another wait).
pub fn error(e: &ApiError, cors_origin: Option<&str>) -> Response {
    let mut r = json(e.status, &e.to_json(), cors_origin);
    if e.status == 429 {
        let _ = r.headers_mut().set("Retry-After", &MINUTE_S.to_string());
    }
    if let Some(allow) = e.allow {
        let _ = r.headers_mut().set("Allow", allow);
    }
    r
}

/// A 429 with `Retry-After: retry_after_s`.
pub fn rate_limited(e: &ApiError, retry_after_s: u32, cors_origin: Option<&str>) -> Response {
    let mut r = error(e, cors_origin);
    let _ = r.headers_mut().set("Retry-After", &retry_after_s.to_string());
    r
}

/// Preflight: the key is not visible yet (browsers send no body or credentials), so any origin
/// may ask; the POST that follows is where the key's allowed origins are enforced.
pub fn preflight(req: &Request) -> Response {
    let headers = Headers::new();
    let origin = req.headers().get("Origin").ok().flatten().unwrap_or_else(|| "*".to_string());
    let _ = headers.set("Access-Control-Allow-Origin", &origin);
    let _ = headers.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    // X-Retry-Count: Segment's analytics-next sends it on every retry.
    let _ = headers.set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, Authorization, X-Retry-Count");
    let _ = headers.set("Access-Control-Max-Age", "86400");
    let _ = headers.set("Vary", "Origin");
    Response::empty().expect("empty response").with_status(204).with_headers(headers)
}
