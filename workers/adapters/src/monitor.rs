//! Reports to the error monitor (millimetric_core::monitor decides what a report holds). With no
//! `ERROR_MONITOR_DSN` secret nothing is sent. A report is throttled per isolate and sent in the
//! background (`wait_until`): it never delays or fails what it reports, and a monitor that is
//! down or slow costs nothing but the lost report.

use super::config;
use millimetric_core::monitor::dsn::Dsn;
use millimetric_core::monitor::report::{self, Kind, Report};
use millimetric_core::monitor::throttle::Throttle;
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
