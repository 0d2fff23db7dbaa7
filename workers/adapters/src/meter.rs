//! Billable operations this isolate caused, counted where they happen, for `bench/cost`:
//! Worker invocations by route, queue messages and their 64 KB units, Durable Object requests,
//! KV reads, R2 reads and ClickHouse statements. A handful of counters in memory, never sent
//! anywhere; the edge shows them on `GET /admin/meter` in local development only.

use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static COUNTS: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
    static ROUTES: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Queues bill each 64 KB of a message written, read or deleted as one operation.
pub const QUEUE_UNIT_BYTES: usize = 64 * 1024;

pub fn add(what: &'static str, n: u64) {
    COUNTS.with(|c| *c.borrow_mut().entry(what).or_default() += n);
}

/// One invocation of the Worker, by what it answered (a route, a queue, the cron).
pub fn invoked(route: &str) {
    ROUTES.with(|r| {
        let mut r = r.borrow_mut();
        match r.get_mut(route) {
            Some(n) => *n += 1,
            None => {
                r.insert(route.to_string(), 1);
            }
        }
    });
}

/// A queue message of `bytes` written, read or deleted: the message and its billed units.
pub fn queue_message(what: &'static str, units: &'static str, bytes: usize) {
    add(what, 1);
    add(units, bytes.div_ceil(QUEUE_UNIT_BYTES).max(1) as u64);
}

/// Everything counted so far, as JSON: `{"invocations": {route: n}, "operations": {name: n}}`.
pub fn snapshot() -> serde_json::Value {
    let invocations: serde_json::Map<String, serde_json::Value> =
        ROUTES.with(|r| r.borrow().iter().map(|(k, v)| (k.clone(), (*v).into())).collect());
    let operations: serde_json::Map<String, serde_json::Value> =
        COUNTS.with(|c| c.borrow().iter().map(|(k, v)| (k.to_string(), (*v).into())).collect());
    serde_json::json!({ "invocations": invocations, "operations": operations })
}
