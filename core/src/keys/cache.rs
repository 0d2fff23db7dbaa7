//! The per-isolate cache of key records: which key hashes KV knows (and their records) and
//! which it does not, so that an isolate need not read KV for every request.
//!
//! Known and unknown keys live in separate, separately bounded spaces. A flood of random keys
//! fills only the unknown space, evicting only other unknown entries (oldest first): the known
//! keys of real customers stay cached however many random keys arrive. Each space holds
//! entries of one TTL, so insertion order is expiry order and eviction is O(1).

use std::collections::{HashMap, VecDeque};

/// Known keys are kept 60 s (about KV's own consistency window).
pub const KNOWN_TTL_MS: i64 = 60_000;
/// Unknown keys 10 s, so that a key works soon after it is created.
pub const UNKNOWN_TTL_MS: i64 = 10_000;

/// What the cache says about a key hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached<V> {
    /// KV held this record.
    Known(V),
    /// KV held nothing for it.
    Unknown,
    /// Not cached (or expired): read KV.
    Miss,
}

#[derive(Debug)]
struct Space<V> {
    entries: HashMap<String, (V, i64, u64)>,
    /// (hash, stamp) in insertion order; stale when the entry was replaced since.
    order: VecDeque<(String, u64)>,
    max: usize,
    ttl_ms: i64,
}

impl<V> Space<V> {
    fn new(max: usize, ttl_ms: i64) -> Self {
        Space { entries: HashMap::new(), order: VecDeque::new(), max: max.max(1), ttl_ms }
    }

    fn get(&self, hash: &str, now_ms: i64) -> Option<&V> {
        self.entries.get(hash).filter(|(_, until, _)| *until > now_ms).map(|(v, _, _)| v)
    }

    fn remove(&mut self, hash: &str) {
        self.entries.remove(hash);
    }

    fn insert(&mut self, hash: &str, value: V, now_ms: i64, stamp: u64) {
        self.entries.insert(hash.to_string(), (value, now_ms + self.ttl_ms, stamp));
        self.order.push_back((hash.to_string(), stamp));
        // Oldest first: expired entries, then, when full, the oldest live ones.
        while let Some((h, s)) = self.order.front() {
            let current = self.entries.get(h).is_some_and(|(_, _, st)| st == s);
            let expired = self.entries.get(h).is_some_and(|(_, until, _)| *until <= now_ms);
            if !current {
                self.order.pop_front(); // replaced or removed since
            } else if expired || self.entries.len() > self.max {
                let (h, _) = self.order.pop_front().expect("front");
                self.entries.remove(&h);
            } else {
                break;
            }
        }
        // Stale order entries of keys inserted again and again cannot pile up without bound.
        if self.order.len() > 2 * self.max + 16 {
            let entries = &self.entries;
            self.order.retain(|(h, s)| entries.get(h).is_some_and(|(_, _, st)| st == s));
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Key records by key hash, bounded: at most `max_known` known and `max_unknown` unknown.
#[derive(Debug)]
pub struct KeyCache<V> {
    known: Space<V>,
    unknown: Space<()>,
    stamp: u64,
}

impl<V: Clone> KeyCache<V> {
    pub fn new(max_known: usize, max_unknown: usize) -> Self {
        KeyCache { known: Space::new(max_known, KNOWN_TTL_MS), unknown: Space::new(max_unknown, UNKNOWN_TTL_MS), stamp: 0 }
    }

    pub fn get(&self, hash: &str, now_ms: i64) -> Cached<V> {
        if let Some(v) = self.known.get(hash, now_ms) {
            return Cached::Known(v.clone());
        }
        if self.unknown.get(hash, now_ms).is_some() {
            return Cached::Unknown;
        }
        Cached::Miss
    }

    /// What KV answered for `hash` at `now_ms` (None: nothing).
    pub fn put(&mut self, hash: &str, record: Option<V>, now_ms: i64) {
        self.stamp += 1;
        match record {
            Some(v) => {
                self.unknown.remove(hash);
                self.known.insert(hash, v, now_ms, self.stamp);
            }
            None => {
                self.known.remove(hash);
                self.unknown.insert(hash, (), now_ms, self.stamp);
            }
        }
    }

    /// (known, unknown) entries held.
    pub fn len(&self) -> (usize, usize) {
        (self.known.len(), self.unknown.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn known_and_unknown_keys_are_kept_for_their_ttls() {
        let mut c = KeyCache::new(10, 10);
        assert_eq!(c.get("a", T0), Cached::<u32>::Miss);
        c.put("a", Some(1), T0);
        c.put("b", None, T0);
        assert_eq!(c.get("a", T0 + KNOWN_TTL_MS - 1), Cached::Known(1));
        assert_eq!(c.get("a", T0 + KNOWN_TTL_MS), Cached::Miss);
        assert_eq!(c.get("b", T0 + UNKNOWN_TTL_MS - 1), Cached::Unknown);
        assert_eq!(c.get("b", T0 + UNKNOWN_TTL_MS), Cached::Miss);
        // a key created since it was looked up: known from then on
        c.put("b", Some(2), T0 + 5);
        assert_eq!(c.get("b", T0 + 6), Cached::Known(2));
        // and one deleted: unknown
        c.put("a", None, T0 + 7);
        assert_eq!(c.get("a", T0 + 8), Cached::Unknown);
    }

    #[test]
    fn a_flood_of_random_keys_never_evicts_known_keys() {
        let mut c = KeyCache::new(100, 1_000);
        for i in 0..100 {
            c.put(&format!("known-{i}"), Some(i), T0);
        }
        for i in 0..200_000 {
            let now = T0 + i / 10; // 20 s of flood
            c.put(&format!("random-{i}"), None, now);
            assert!(c.len().1 <= 1_000);
        }
        for i in 0..100 {
            assert_eq!(c.get(&format!("known-{i}"), T0 + 20_000), Cached::Known(i));
        }
        assert_eq!(c.len(), (100, 1_000));
        // the newest unknown keys are the ones kept
        assert_eq!(c.get("random-199999", T0 + 20_000), Cached::Unknown);
        assert_eq!(c.get("random-0", T0 + 1), Cached::Miss);
    }

    #[test]
    fn known_keys_past_the_bound_evict_the_oldest_known() {
        let mut c = KeyCache::new(3, 3);
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            c.put(k, Some(i), T0 + i as i64);
        }
        assert_eq!(c.get("a", T0 + 10), Cached::Miss);
        assert_eq!(c.get("d", T0 + 10), Cached::Known(3));
        assert_eq!(c.len(), (3, 0));
    }

    #[test]
    fn one_key_refreshed_again_and_again_keeps_memory_bounded() {
        let mut c = KeyCache::new(3, 3);
        for i in 0..10_000 {
            c.put("a", Some(i), T0 + i as i64);
            assert!(c.known.order.len() <= 2 * 3 + 16 + 1);
        }
        assert_eq!(c.get("a", T0 + 10_000), Cached::Known(9_999));
    }
}
