//! One Durable Object per API key (by key hash) counting that key's events in a sliding
//! window. Keys never share an object, so one key over its limit cannot slow another.
//! Isolates lease blocks of events from it (rate_limit::lease_size) and spend them locally.

use crate::rate_limit::{lease_size, Grant, Lease, LimitRequest, SlidingWindow};
use std::cell::RefCell;
use std::collections::HashMap;
use worker::*;

#[durable_object]
pub struct KeyLimiter {
    window: RefCell<SlidingWindow>,
}

impl DurableObject for KeyLimiter {
    fn new(_state: State, _env: Env) -> Self {
        KeyLimiter { window: RefCell::new(SlidingWindow::default()) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let ask: LimitRequest = req.json().await?;
        let now = Date::now().as_millis() as i64;
        let grant: Grant = self.window.borrow_mut().lease(now, ask.cost, ask.want, ask.limit);
        Response::from_json(&grant)
    }
}

thread_local! {
    static LEASES: RefCell<HashMap<String, Lease>> = RefCell::new(HashMap::new());
}

/// Whether `cost` events of this key fit; Some(retry_after_s) when they do not. Spends the
/// isolate's lease when it covers the cost, else asks the key's object for a new one. Fails
/// open if the object cannot be reached: refusing data because the limiter hiccuped would
/// lose events.
pub async fn check(env: &Env, key_hash: &str, cost: u64, limit: u32) -> Option<u32> {
    let now = Date::now().as_millis() as i64;
    if LEASES.with(|l| l.borrow_mut().get_mut(key_hash).is_some_and(|lease| lease.spend(now, cost))) {
        return None;
    }
    match ask(env, key_hash, LimitRequest { cost, want: cost.max(lease_size(limit)), limit }).await {
        Ok(g) if g.granted >= cost => {
            LEASES.with(|l| l.borrow_mut().insert(key_hash.to_string(), Lease::refill(now, g.granted, cost)));
            None
        }
        Ok(g) => Some(g.retry_after_s.max(1)),
        Err(e) => {
            console_error!("rate limit: key limiter unavailable ({e}); allowing");
            None
        }
    }
}

async fn ask(env: &Env, key_hash: &str, ask: LimitRequest) -> Result<Grant> {
    let stub = env.durable_object(super::config::KEY_LIMITER)?.get_by_name(key_hash)?;
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    let mut init = RequestInit::new();
    let body = serde_json::to_string(&ask).map_err(|e| Error::RustError(e.to_string()))?;
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    let mut resp = stub.fetch_with_request(Request::new_with_init("https://limiter/lease", &init)?).await?;
    resp.json::<Grant>().await
}
