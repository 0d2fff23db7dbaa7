//! Reports are rate-limited per isolate: at most PER_KEY a minute for one kind of error
//! (kind, code, route) and GLOBAL a minute in all. What is held back is counted, and the next
//! report of that kind carries the count, so a storm costs a few requests and loses no total.

use std::collections::HashMap;

pub const PER_KEY: u32 = 3;
pub const GLOBAL: u32 = 10;
/// Kinds of error tracked at once; past it, a new kind waits for the next minute.
const MAX_KEYS: usize = 64;
const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Default)]
pub struct Throttle {
    minute: i64,
    sent_this_minute: u32,
    keys: HashMap<String, KeyState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct KeyState {
    sent_this_minute: u32,
    held_back: u64,
}

impl Throttle {
    /// Whether to send a report of `key` now, and if so how many occurrences it stands for
    /// (`count` now, plus every one held back since the last report of that key).
    pub fn admit(&mut self, key: &str, count: u64, now_ms: i64) -> Option<u64> {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if minute != self.minute {
            self.minute = minute;
            self.sent_this_minute = 0;
            self.keys.retain(|_, s| s.held_back > 0);
            self.keys.values_mut().for_each(|s| s.sent_this_minute = 0);
        }
        if !self.keys.contains_key(key) && self.keys.len() >= MAX_KEYS {
            return None;
        }
        let state = self.keys.entry(key.to_string()).or_default();
        if state.sent_this_minute >= PER_KEY || self.sent_this_minute >= GLOBAL {
            state.held_back += count;
            return None;
        }
        state.sent_this_minute += 1;
        self.sent_this_minute += 1;
        Some(count + std::mem::take(&mut state.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_032_800_000;

    #[test]
    fn a_storm_costs_a_few_reports_a_minute_and_loses_no_count() {
        let mut t = Throttle::default();
        let sent: Vec<u64> = (0..1000).filter_map(|i| t.admit("server_error:x:/collect", 1, T0 + i)).collect();
        assert_eq!(sent, vec![1; PER_KEY as usize]);
        // the next minute's first report carries what was held back
        assert_eq!(t.admit("server_error:x:/collect", 1, T0 + MINUTE_MS), Some(1 + 1000 - u64::from(PER_KEY)));
        assert_eq!(t.admit("server_error:x:/collect", 1, T0 + MINUTE_MS + 1), Some(1));
    }

    #[test]
    fn all_kinds_together_are_capped_too() {
        let mut t = Throttle::default();
        let sent = (0..100).filter(|i| t.admit(&format!("k{i}"), 1, T0).is_some()).count();
        assert_eq!(sent, GLOBAL as usize);
        // the next minute, the kinds held back are reported first, each with its count
        let carried: Vec<u64> = (10..100).filter_map(|i| t.admit(&format!("k{i}"), 0, T0 + MINUTE_MS)).collect();
        assert_eq!(carried, vec![1; GLOBAL as usize]);
    }
}
