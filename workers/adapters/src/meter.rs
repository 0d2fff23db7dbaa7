//! Billable operations this isolate caused, counted where they happen, for `bench/cost`:
//! Worker invocations by route, queue messages and their 64 KB units, Durable Object requests,
//! KV reads, R2 reads and ClickHouse statements. A handful of counters in memory, never sent
//! anywhere; the edge shows them on `GET /admin/meter` in local development only.

use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static COUNTS: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
    static ROUTES: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
    static WAITS: RefCell<BTreeMap<&'static str, (u64, u64)>> = const { RefCell::new(BTreeMap::new()) };
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

/// A request waited `ms` for `what` (its write, say): not billed, counted beside the operations
/// so a bench can see how long requests wait inside the Worker (bench/load).
pub fn waited(what: &'static str, ms: u64) {
    WAITS.with(|w| {
        let mut w = w.borrow_mut();
        let (count, total) = w.entry(what).or_default();
        *count += 1;
        *total += ms;
    });
}

/// Everything counted so far, as JSON: `{"invocations": {route: n}, "operations": {name: n},
/// "waits": {name: {"count": n, "total_ms": ms}}}`.
pub fn snapshot() -> serde_json::Value {
    let invocations: serde_json::Map<String, serde_json::Value> =
        ROUTES.with(|r| r.borrow().iter().map(|(k, v)| (k.clone(), (*v).into())).collect());
    let operations: serde_json::Map<String, serde_json::Value> =
        COUNTS.with(|c| c.borrow().iter().map(|(k, v)| (k.to_string(), (*v).into())).collect());
    let waits: serde_json::Map<String, serde_json::Value> = WAITS.with(|w| {
        w.borrow().iter().map(|(k, (count, total))| (k.to_string(), serde_json::json!({ "count": count, "total_ms": total }))).collect()
    });
    serde_json::json!({ "invocations": invocations, "operations": operations, "waits": waits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_summed_with_their_count_apart_from_the_operations() {
        waited("collect.write", 7);
        waited("collect.write", 25);
        add("queue.written", 1);
        let s = snapshot();
        assert_eq!(s["waits"]["collect.write"], serde_json::json!({ "count": 2, "total_ms": 32 }));
        assert!(s["operations"].get("collect.write").is_none());
        assert_eq!(s["operations"]["queue.written"], 1);
    }
}
