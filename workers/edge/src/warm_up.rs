//! Start-up warm-up of the Worker's own handlers (the core's is `millimetric_core::ingest::warm_up`).
//!
//! workerd compiles a WebAssembly function on its first call, and a handler's async state
//! machine is one large function: without this, the first request of an isolate compiles the
//! router and the `/collect` handler while the client waits. These requests touch no binding
//! (they end before the key lookup), so nothing is read, stored or logged.

use worker::wasm_bindgen::JsCast;
use worker::{Env, Headers, Method, Request, RequestInit};

pub fn routes() {
    worker::wasm_bindgen_futures::spawn_local(async {
        // No bindings at all: any path that reached one would fail, not act.
        let env: Env = worker::js_sys::Object::new().unchecked_into();
        for (method, path, origin, body) in [
            (Method::Get, "/health", None, None),
            (Method::Options, "/collect", Some("https://warm-up.invalid"), None),
            // No key: answered 401 after the body is decoded and parsed, before any lookup.
            (Method::Post, "/collect", None, Some(r#"{"type":"pageview","url":"https://warm-up.invalid/"}"#)),
        ] {
            let headers = Headers::new();
            let _ = headers.set("Content-Type", "application/json");
            if let Some(o) = origin {
                let _ = headers.set("Origin", o);
            }
            let mut init = RequestInit::new();
            init.with_method(method).with_headers(headers);
            if let Some(b) = body {
                init.with_body(Some(b.into()));
            }
            if let Ok(req) = Request::new_with_init(&format!("https://warm-up.invalid{path}"), &init) {
                let _ = super::route(req, &env).await;
            }
        }
    });
}
