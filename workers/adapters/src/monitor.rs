//! Reports to the error monitor (millimetric_core::monitor decides what a report holds). With no
//! `ERROR_MONITOR_DSN` secret nothing is sent. A report is throttled per isolate and sent in the
//! background (`wait_until`): it never delays or fails what it reports, and a monitor that is
//! down or slow costs nothing but the lost report.

use super::config;
use millimetric_core::monitor::dsn::Dsn;
use millimetric_core::monitor::report::{self, Kind, Report};
use millimetric_core::monitor::throttle::{admit_panic, PanicWindow, Throttle};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use wasm_bindgen::JsValue;
use worker::{console_error, Context, Date, Env, Fetch, Headers, Method, Request, RequestInit, Response, Result};

type Sending = Pin<Box<dyn Future<Output = ()>>>;

thread_local! {
    static THROTTLE: RefCell<Throttle<Report>> = RefCell::new(Throttle::default());
    /// Reports made where no `Context` is at hand, sent when the answer is watched.
    static PENDING: RefCell<Vec<Sending>> = const { RefCell::new(Vec::new()) };
}

/// A report from code that has no `Context` (an audit write that failed): it is sent in the
/// background once the request's answer is watched (`watch`), or the job's end (`pending`).
pub fn report_later(env: &Env, kind: Kind, code: &str, route: &'static str) {
    if let Some(send) = report(env, kind, code, route, 1) {
        PENDING.with(|p| p.borrow_mut().push(Box::pin(send)));
    }
}

/// The reports made with `report_later` not sent yet, and those the throttle held back whose
/// minute is over, for the caller's `wait_until`.
pub fn pending(env: &Env) -> Vec<Sending> {
    let mut out = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    out.extend(due(env));
    out
}

/// The send of one report, for the caller's `wait_until`; None when nothing is to be sent (no
/// DSN, or held back by the throttle: then it is counted into the next report).
pub fn report(env: &Env, kind: Kind, code: &str, route: &'static str, count: u64) -> Option<impl Future<Output = ()> + 'static> {
    let dsn = dsn(env)?;
    let now = Date::now().as_millis() as i64;
    let mut r = Report::new(kind, code, route, count);
    r.count = THROTTLE.with(|t| t.borrow_mut().admit(&r.key(), r.clone(), count, now))?;
    Some(sending(env, dsn, r, now))
}

fn dsn(env: &Env) -> Option<Dsn> {
    Dsn::parse(&config::var(env, "ERROR_MONITOR_DSN")?)
}

/// Reports held back by the throttle whose minute is over (kinds that did not come again).
fn due(env: &Env) -> Vec<Sending> {
    if !THROTTLE.with(|t| t.borrow().holds_any()) {
        return Vec::new();
    }
    let Some(dsn) = dsn(env) else { return Vec::new() };
    let now = Date::now().as_millis() as i64;
    let reports = THROTTLE.with(|t| t.borrow_mut().due(now));
    reports
        .into_iter()
        .map(|(mut r, count)| {
            r.count = count;
            Box::pin(sending(env, dsn.clone(), r, now)) as Sending
        })
        .collect()
}

fn sending(env: &Env, dsn: Dsn, r: Report, now: i64) -> impl Future<Output = ()> + 'static {
    let release = config::var(env, "MM_RELEASE").unwrap_or_else(|| report::CLIENT.to_string());
    let environment = config::var(env, "MM_ENV").unwrap_or_else(|| "production".into());
    let event_id = super::random::uuid().replace('-', "");
    let body = report::envelope(&r, &event_id, now, &dsn.dsn, &release, &environment);
    async move {
        if let Err(e) = send(&dsn, body).await {
            console_error!("monitor: the report was not sent ({e})");
        }
    }
}

// ---- panics ----
//
// A panic aborts the wasm instance: nothing in Rust runs after the hook, and the isolate's
// wasm (this module's state included) is started afresh for the next event. So the hook sends
// the report with the runtime's own `fetch`, kept alive by the event's `waitUntil`, and keeps
// its per-minute window on the JS global, which outlives the reset.

struct Armed {
    /// The event's ExecutionContext (its `waitUntil`), as the runtime's object.
    ctx: JsValue,
    route: String,
}

thread_local! {
    /// The event now running (the last one started, when several overlap): what a panic reports against.
    static ARMED: RefCell<Option<Armed>> = const { RefCell::new(None) };
    /// The DSN, release and environment, read once per isolate (None inside: no DSN).
    static PANIC_SETTINGS: RefCell<Option<Option<(Dsn, String, String)>>> = const { RefCell::new(None) };
}

/// At the start of a request (its path) or a job (`queue:...`): what a panic in it reports.
/// Nothing without a DSN.
pub fn arm(env: &Env, ctx: &Context, route: &str) {
    let enabled = PANIC_SETTINGS.with(|s| {
        let mut s = s.borrow_mut();
        s.get_or_insert_with(|| {
            let release = config::var(env, "MM_RELEASE").unwrap_or_else(|| report::CLIENT.to_string());
            let environment = config::var(env, "MM_ENV").unwrap_or_else(|| "production".into());
            dsn(env).map(|d| (d, release, environment))
        })
        .is_some()
    });
    if enabled {
        let js: &JsValue = ctx.as_ref().as_ref();
        ARMED.with(|a| *a.borrow_mut() = Some(Armed { ctx: js.clone(), route: route.to_string() }));
    }
}

/// The panic hook: the message to the log (as before), and a report (kind `panic`, the route
/// template, never the message) to the monitor.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        report_panic();
    }));
}

const PANIC_WINDOW: &str = "__millimetric_panic_reports";

fn report_panic() {
    let Some((dsn, release, environment)) = PANIC_SETTINGS.with(|s| s.try_borrow().ok().and_then(|s| s.clone().flatten())) else { return };
    let Some((ctx, route)) = ARMED.with(|a| a.try_borrow().ok().and_then(|a| a.as_ref().map(|a| (a.ctx.clone(), a.route.clone())))) else {
        return;
    };
    let now = Date::now().as_millis() as i64;
    let global = js_sys::global();
    let key = JsValue::from_str(PANIC_WINDOW);
    // The window as [minute, sent, held]; Array.from would throw on `undefined` (the first
    // panic), so only an array is read.
    let window = js_sys::Reflect::get(&global, &key)
        .ok()
        .and_then(|v| {
            use wasm_bindgen::JsCast;
            let a = v.dyn_into::<js_sys::Array>().ok()?;
            Some(PanicWindow { minute: a.get(0).as_f64()? as i64, sent: a.get(1).as_f64()? as u32, held: a.get(2).as_f64()? as u64 })
        })
        .unwrap_or_default();
    let (count, next) = admit_panic(window, now);
    let stored = js_sys::Array::of3(&(next.minute as f64).into(), &(next.sent as f64).into(), &(next.held as f64).into());
    let _ = js_sys::Reflect::set(&global, &key, &stored);
    let Some(count) = count else { return };
    let r = Report::new(Kind::Panic, "panic", report::route_of(&route), count);
    let event_id = super::random::uuid().replace('-', "");
    let body = report::envelope(&r, &event_id, now, &dsn.dsn, &release, &environment);
    if let Some(promise) = js_fetch(&dsn, &body).and_then(|p| quiet(&global, p)) {
        wait_until(&ctx, &promise);
    }
}

/// The promise with its rejection handled (by the global `Boolean`: a monitor that is down is
/// a lost report, not an "uncaught in promise" in the log).
fn quiet(global: &js_sys::Object, promise: js_sys::Promise) -> Option<js_sys::Promise> {
    use wasm_bindgen::JsCast;
    let boolean = js_sys::Reflect::get(global, &"Boolean".into()).ok()?;
    let catch: js_sys::Function = js_sys::Reflect::get(&promise, &"catch".into()).ok()?.dyn_into().ok()?;
    catch.call1(&promise, &boolean).ok()?.dyn_into().ok()
}

/// `ctx.waitUntil(promise)` on the runtime's object.
fn wait_until(ctx: &JsValue, promise: &js_sys::Promise) {
    use wasm_bindgen::JsCast;
    let method = js_sys::Reflect::get(ctx, &"waitUntil".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    if let Some(method) = method {
        let _ = method.call1(ctx, promise);
    }
}

/// `fetch(envelope_url, {POST, headers, body})` straight on the runtime: no Rust future can run
/// once the hook returns.
fn js_fetch(dsn: &Dsn, body: &str) -> Option<js_sys::Promise> {
    use wasm_bindgen::JsCast;
    let global = js_sys::global();
    let fetch: js_sys::Function = js_sys::Reflect::get(&global, &"fetch".into()).ok()?.dyn_into().ok()?;
    let headers = js_sys::Object::new();
    js_sys::Reflect::set(&headers, &"Content-Type".into(), &"application/x-sentry-envelope".into()).ok()?;
    js_sys::Reflect::set(&headers, &"X-Sentry-Auth".into(), &dsn.auth_header(report::CLIENT).into()).ok()?;
    let init = js_sys::Object::new();
    js_sys::Reflect::set(&init, &"method".into(), &"POST".into()).ok()?;
    js_sys::Reflect::set(&init, &"headers".into(), &headers).ok()?;
    js_sys::Reflect::set(&init, &"body".into(), &body.into()).ok()?;
    fetch.call2(&global, &dsn.envelope_url.as_str().into(), &init).ok()?.dyn_into().ok()
}

/// A Worker's answer to a request for `path`, watched: a 5xx is reported with its error's code,
/// a handler that failed (workerd answers 500 for it) as a failure; in the background. The
/// answer goes back as it was.
pub async fn watch(env: &Env, ctx: &Context, path: &str, answer: Result<Response>) -> Result<Response> {
    // The route template only for an answer that is reported: not on every request's path.
    let (answer, sent) = match answer {
        Ok(mut r) if r.status_code() >= 500 && dsn(env).is_some() => {
            let code = error_code(&mut r).await;
            (Ok(r), report(env, Kind::ServerError, &code, report::route_of(path), 1))
        }
        Ok(r) => (Ok(r), None),
        Err(e) => (Err(e), report(env, Kind::Failure, "handler_error", report::route_of(path), 1)),
    };
    for send in sent.into_iter().map(|s| Box::pin(s) as Sending).chain(pending(env)) {
        ctx.wait_until(send);
    }
    answer
}

/// The machine-readable code of an error answer (`{"error": {"code": ...}}`), read from a copy;
/// `http_{status}` when it has none.
async fn error_code(r: &mut Response) -> String {
    let fallback = format!("http_{}", r.status_code());
    let Ok(mut copy) = r.cloned() else { return fallback };
    let body = copy.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["error"]["code"].as_str().map(str::to_string).unwrap_or(fallback)
}

async fn send(dsn: &Dsn, body: String) -> std::result::Result<(), String> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/x-sentry-envelope").map_err(|e| e.to_string())?;
    headers.set("X-Sentry-Auth", &dsn.auth_header(report::CLIENT)).map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(JsValue::from_str(&body)));
    let req = Request::new_with_init(&dsn.envelope_url, &init).map_err(|e| e.to_string())?;
    let resp = Fetch::Request(req).send().await.map_err(|e| e.to_string())?;
    match resp.status_code() {
        200..=299 => Ok(()),
        s => Err(format!("the monitor answered {s}")),
    }
}
