//! One Durable Object per API key (by key hash) keeping that key's count in a sliding window.
//! Keys never share an object, so one key over its limit cannot slow another. The object runs
//! `rate_limit::KeyBudget` and each isolate a `rate_limit::LocalBudget` per key: the same code
//! `rate_limit::simulation` runs over 1 to 1,000 isolates.

use millimetric_core::rate_limit::{Answer, Ask, KeyBudget, LocalBudget, Step};
use std::cell::RefCell;
use std::collections::HashMap;
use worker::*;

#[durable_object]
pub struct KeyLimiter {
    budget: RefCell<KeyBudget>,
}

impl DurableObject for KeyLimiter {
    fn new(_state: State, _env: Env) -> Self {
        KeyLimiter { budget: RefCell::new(KeyBudget::default()) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // serde_json on the text, not through a JavaScript object: ids are u64.
        let Ok(ask) = req.text().await.map_err(|e| e.to_string()).and_then(|t| serde_json::from_str::<Ask>(&t).map_err(|e| e.to_string()))
        else {
            return Response::error("expected a rate_limit::Ask", 400);
        };
        let now = Date::now().as_millis() as i64;
        let answer: Answer = self.budget.borrow_mut().ask(now, &ask);
        Response::from_json(&answer)
    }
}

/// Keys an isolate keeps limiter state for; past this, state that no longer matters is
/// dropped (an allowance dropped with it is counted in full by the object when it lapses).
const MAX_KEYS: usize = 10_000;

thread_local! {
    static BUDGETS: RefCell<HashMap<String, LocalBudget>> = RefCell::new(HashMap::new());
}

/// Whether `cost` events of this key fit; Some(retry_after_s) when they do not. Spends the
/// isolate's allowance when it covers the cost, else asks the key's object (handing back what
/// the allowance did not admit). Fails open if the object cannot be reached: refusing data
/// because the limiter hiccuped would lose events.
pub async fn check(env: &Env, key_hash: &str, cost: u64, limit: u32) -> Option<u32> {
    let now = Date::now().as_millis() as i64;
    let step = BUDGETS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() >= MAX_KEYS && !b.contains_key(key_hash) {
            b.retain(|_, l| l.is_live(now));
            if b.len() >= MAX_KEYS {
                b.clear();
            }
        }
        b.entry(key_hash.to_string()).or_default().step(now, cost, limit)
    });
    let ask = match step {
        Step::Admit => return None,
        Step::Refuse { retry_after_s } => return Some(retry_after_s),
        Step::Ask(ask) => ask,
    };
    match send(env, key_hash, &ask).await {
        Ok(answer) => {
            let now = Date::now().as_millis() as i64;
            BUDGETS.with(|b| b.borrow_mut().entry(key_hash.to_string()).or_default().answer(now, cost, &answer))
        }
        Err(e) => {
            console_error!("rate limit: key limiter unavailable ({e}); allowing");
            None
        }
    }
}

async fn send(env: &Env, key_hash: &str, ask: &Ask) -> Result<Answer> {
    millimetric_adapters::meter::add("durable_object.requests", 1);
    let stub = env.durable_object(super::config::KEY_LIMITER)?.get_by_name(key_hash)?;
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    let mut init = RequestInit::new();
    let body = serde_json::to_string(ask).map_err(|e| Error::RustError(e.to_string()))?;
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    let mut resp = stub.fetch_with_request(Request::new_with_init("https://limiter/ask", &init)?).await?;
    serde_json::from_str::<Answer>(&resp.text().await?).map_err(|e| Error::RustError(e.to_string()))
}
