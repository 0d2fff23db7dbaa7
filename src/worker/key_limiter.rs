//! One Durable Object per API key (by key hash) counting that key's events in a sliding
//! window. Keys never share an object, so one key over its limit cannot slow another.

use crate::rate_limit::{Decision, LimitRequest, SlidingWindow};
use std::cell::RefCell;
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
        let decision: Decision = self.window.borrow_mut().check(now, ask.cost, ask.limit);
        Response::from_json(&decision)
    }
}

/// Ask the key's limiter whether `cost` events fit. Fails open (allowed) if the object cannot
/// be reached: refusing data because the limiter hiccuped would lose events.
pub async fn check(env: &Env, key_hash: &str, cost: u64, limit: u32) -> Decision {
    let ask = async {
        let stub = env.durable_object(super::config::KEY_LIMITER)?.get_by_name(key_hash)?;
        let headers = Headers::new();
        headers.set("Content-Type", "application/json")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(
            serde_json::to_string(&LimitRequest { cost, limit }).map_err(|e| Error::RustError(e.to_string()))?.into(),
        ));
        let mut resp = stub.fetch_with_request(Request::new_with_init("https://limiter/check", &init)?).await?;
        resp.json::<Decision>().await
    };
    match ask.await {
        Ok(d) => d,
        Err(e) => {
            console_error!("rate limit: key limiter unavailable ({e}); allowing");
            Decision { allowed: true, retry_after_s: 0 }
        }
    }
}
