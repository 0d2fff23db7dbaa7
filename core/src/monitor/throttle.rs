//! Reports are rate-limited per isolate: at most PER_KEY a minute for one kind of error and
//! GLOBAL a minute in all. What is held back is counted; the next report of that kind carries
//! the count, and `due` hands back, once their minute is over, the kinds held back that did not
//! come again, so a storm costs a few requests and loses no total.

use std::collections::HashMap;

pub const PER_KEY: u32 = 3;
pub const GLOBAL: u32 = 10;
/// Kinds of error tracked at once (a kind is a kind, code and route template: a bounded set);
/// past it, within one minute, a new kind is dropped uncounted.
const MAX_KEYS: usize = 512;
const MINUTE_MS: i64 = 60_000;

/// Panic reports a minute, per isolate. A panic resets the isolate's wasm, and this throttle's
/// state with it, so the adapter keeps the window outside wasm (`admit_panic`).
pub const PANICS_PER_MINUTE: u32 = 3;

/// The panic window, kept outside wasm: the minute, reports sent in it, and panics held back
/// since the last report (the next report carries them in its count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PanicWindow {
    pub minute: i64,
    pub sent: u32,
    pub held: u64,
}

/// One more panic at `now_ms`: Some(the count to report: this panic and those held back) when
/// a report fits the minute; and the window after it, either way.
pub fn admit_panic(w: PanicWindow, now_ms: i64) -> (Option<u64>, PanicWindow) {
    let minute = now_ms.div_euclid(MINUTE_MS);
    let sent = if w.minute == minute { w.sent } else { 0 };
    if sent < PANICS_PER_MINUTE {
        (Some(w.held + 1), PanicWindow { minute, sent: sent + 1, held: 0 })
    } else {
        (None, PanicWindow { minute, sent, held: w.held + 1 })
    }
}

/// `T`: what the caller needs to send a held-back report later (the report itself).
#[derive(Debug)]
pub struct Throttle<T> {
    minute: i64,
    sent_this_minute: u32,
    keys: HashMap<String, KeyState<T>>,
}

impl<T> Default for Throttle<T> {
    fn default() -> Self {
        Throttle { minute: 0, sent_this_minute: 0, keys: HashMap::new() }
    }
}

#[derive(Debug)]
struct KeyState<T> {
    sent_this_minute: u32,
    held_back: u64,
    /// The minute the oldest occurrence in `held_back` was held back in.
    held_since: i64,
    item: T,
}

impl<T> Throttle<T> {
    fn roll(&mut self, now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if minute != self.minute {
            self.minute = minute;
            self.sent_this_minute = 0;
            self.keys.retain(|_, s| s.held_back > 0);
            self.keys.values_mut().for_each(|s| s.sent_this_minute = 0);
        }
    }

    /// Whether to send a report of `key` now, and if so how many occurrences it stands for
    /// (`count` now, plus every one held back since the last report of that key).
    pub fn admit(&mut self, key: &str, item: T, count: u64, now_ms: i64) -> Option<u64> {
        self.roll(now_ms);
        if !self.keys.contains_key(key) && self.keys.len() >= MAX_KEYS {
            return None;
        }
        let global_full = self.sent_this_minute >= GLOBAL;
        let state = self.keys.entry(key.to_string()).or_insert(KeyState { sent_this_minute: 0, held_back: 0, held_since: 0, item });
        if state.sent_this_minute >= PER_KEY || global_full {
            if state.held_back == 0 {
                state.held_since = self.minute;
            }
            state.held_back += count;
            return None;
        }
        state.sent_this_minute += 1;
        self.sent_this_minute += 1;
        Some(count + std::mem::take(&mut state.held_back))
    }

    /// Whether anything is held back (a cheap check before `due`).
    pub fn holds_any(&self) -> bool {
        self.keys.values().any(|s| s.held_back > 0)
    }
}

impl<T: Clone> Throttle<T> {
    /// Held-back kinds whose minute is over, to be sent now with their counts (within this
    /// minute's budget; the rest wait for the next call). Whether or not a report of this
    /// minute came first.
    pub fn due(&mut self, now_ms: i64) -> Vec<(T, u64)> {
        if !self.holds_any() {
            return Vec::new();
        }
        self.roll(now_ms);
        let minute = self.minute;
        let mut out = Vec::new();
        for state in self.keys.values_mut().filter(|s| s.held_back > 0 && s.held_since < minute) {
            if self.sent_this_minute >= GLOBAL {
                break;
            }
            state.sent_this_minute += 1;
            self.sent_this_minute += 1;
            out.push((state.item.clone(), std::mem::take(&mut state.held_back)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_reports_are_three_a_minute_and_the_held_back_are_counted_in_the_next() {
        let t = 7 * MINUTE_MS;
        let mut w = PanicWindow::default();
        for _ in 0..PANICS_PER_MINUTE {
            let (count, next) = admit_panic(w, t);
            assert_eq!(count, Some(1), "within the minute's three");
            w = next;
        }
        for _ in 0..2 {
            let (count, next) = admit_panic(w, t + 1_000);
            assert_eq!(count, None, "past three in the minute: held back");
            w = next;
        }
        let (count, next) = admit_panic(w, t + MINUTE_MS);
        assert_eq!((count, next), (Some(3), PanicWindow { minute: 8, sent: 1, held: 0 }), "the next report carries the two held back");
    }

    /// The start of the run's current minute: the tests lay their times out from it.
    fn t0() -> i64 {
        crate::test_clock::now_ms().div_euclid(MINUTE_MS) * MINUTE_MS
    }

    #[test]
    fn held_kinds_are_released_when_each_minute_starts_with_a_report() {
        // A sustained outage: every minute's first watched answer is a 5xx of a kind already
        // seen, reported before the held-back ones are asked for. The held kind still goes out.
        let t0 = t0();
        let mut t = Throttle::default();
        let sent = (0..11).filter(|i| t.admit(&format!("k{i}"), *i, 1, t0).is_some()).count();
        assert_eq!(sent, GLOBAL as usize, "the eleventh kind is held back");
        let mut released = Vec::new();
        for m in 1..4 {
            let now = t0 + m * MINUTE_MS;
            assert_eq!(t.admit("k0", 0, 1, now), Some(1));
            released.extend(t.due(now));
        }
        assert_eq!(released, vec![(10, 1)], "the held kind, once, the minute after");
    }

    #[test]
    fn a_storm_costs_a_few_reports_a_minute_and_loses_no_count() {
        let t0 = t0();
        let mut t = Throttle::default();
        let sent: Vec<u64> = (0..1000).filter_map(|i| t.admit("server_error:x:/collect", (), 1, t0 + i)).collect();
        assert_eq!(sent, vec![1; PER_KEY as usize]);
        // the next minute's first report carries what was held back
        assert_eq!(t.admit("server_error:x:/collect", (), 1, t0 + MINUTE_MS), Some(1 + 1000 - u64::from(PER_KEY)));
        assert_eq!(t.admit("server_error:x:/collect", (), 1, t0 + MINUTE_MS + 1), Some(1));
        assert!(t.due(t0 + 2 * MINUTE_MS).is_empty(), "nothing is held back any more");
    }

    #[test]
    fn kinds_held_back_that_do_not_come_again_are_due_once_their_minute_is_over() {
        let t0 = t0();
        let mut t = Throttle::default();
        let sent = (0..11).filter(|i| t.admit(&format!("k{i}"), *i, 1, t0).is_some()).count();
        assert_eq!(sent, GLOBAL as usize);
        assert!(t.due(t0 + 1).is_empty(), "not within its own minute");
        assert_eq!(t.due(t0 + MINUTE_MS), vec![(10, 1)], "the eleventh, the next minute");
        assert!(t.due(t0 + MINUTE_MS + 1).is_empty(), "once");
    }

    #[test]
    fn all_kinds_together_are_capped_too_and_come_out_later() {
        let t0 = t0();
        let mut t = Throttle::default();
        let sent = (0..100).filter(|i| t.admit(&format!("k{i}"), *i, 1, t0).is_some()).count();
        assert_eq!(sent, GLOBAL as usize);
        let mut total = sent as u64;
        for minute in 1..20 {
            let due = t.due(t0 + minute * MINUTE_MS);
            assert!(due.len() <= GLOBAL as usize);
            total += due.iter().map(|(_, n)| n).sum::<u64>();
        }
        assert_eq!(total, 100, "every occurrence reported, ten a minute");
    }
}
