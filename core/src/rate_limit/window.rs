//! The sliding one-minute count the key's Durable Object keeps.

use super::WINDOW_MS;
use serde::{Deserialize, Serialize};

/// Sliding window over two fixed minutes: the previous minute's count, weighted by how much of
/// it still overlaps the last 60 s (rounded down to whole events), plus the current minute's.
/// Smooth at minute edges, O(1), integers only.
///
/// Bounds, for events admitted only while `count + cost <= limit`: at most `limit` in any
/// calendar minute (the current minute's count is part of every estimate), and at most
/// `2 * limit` in any 60 s that straddles two minutes (the approximation's worst case: the
/// previous minute's events all at its very end).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlidingWindow {
    pub window_start_ms: i64,
    pub current: u64,
    pub previous: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// Whole seconds until `cost` more events would fit (0 when allowed).
    pub retry_after_s: u32,
}

impl SlidingWindow {
    fn roll(&mut self, now_ms: i64) {
        let start = now_ms - now_ms.rem_euclid(WINDOW_MS);
        if start <= self.window_start_ms {
            return; // same minute (or a clock that went back: stay in the newer minute)
        }
        self.previous = if start - self.window_start_ms == WINDOW_MS { self.current } else { 0 };
        self.current = 0;
        self.window_start_ms = start;
    }

    /// The previous minute's weight at `at_ms` (within the current minute).
    fn previous_part(&self, at_ms: i64) -> u64 {
        let left = (WINDOW_MS - (at_ms - self.window_start_ms)).clamp(0, WINDOW_MS) as u128;
        (self.previous as u128 * left / WINDOW_MS as u128) as u64
    }

    /// Events counted over the last minute at `now_ms`.
    pub fn count(&mut self, now_ms: i64) -> u64 {
        self.roll(now_ms);
        self.previous_part(now_ms).saturating_add(self.current)
    }

    /// What `count` will be at `later_ms` (clamped to this minute's last millisecond) if
    /// nothing more is added: the previous minute's weight only falls.
    pub fn count_at(&mut self, now_ms: i64, later_ms: i64) -> u64 {
        self.roll(now_ms);
        let last = self.window_start_ms + WINDOW_MS - 1;
        self.previous_part(later_ms.clamp(now_ms, last)).saturating_add(self.current)
    }

    /// Milliseconds until the count has fallen to `target` or below, if nothing more is added:
    /// within this minute as the previous minute's weight decays, else at the next minute
    /// (when this minute's count starts decaying in turn; a caller asks again then).
    pub fn ms_until_count_at_most(&mut self, now_ms: i64, target: u64) -> i64 {
        self.roll(now_ms);
        let left = WINDOW_MS - (now_ms - self.window_start_ms);
        if self.previous_part(now_ms).saturating_add(self.current) <= target {
            return 0;
        }
        if self.current > target {
            return left;
        }
        // previous * (left - t) / WINDOW <= target - current  <=>  left - t <= bound
        let allowed = (target - self.current) as u128;
        let bound = (((allowed + 1) * WINDOW_MS as u128).div_ceil(self.previous as u128) as i64 - 1).max(0);
        (left - bound).clamp(0, left)
    }

    pub fn add(&mut self, now_ms: i64, events: u64) {
        self.roll(now_ms);
        self.current = self.current.saturating_add(events);
    }

    /// Count events that happened at `at_ms` (this minute or the one before; older ones no
    /// longer count), learnt of at `now_ms`.
    pub fn add_at(&mut self, now_ms: i64, at_ms: i64, events: u64) {
        self.roll(now_ms);
        if at_ms >= self.window_start_ms {
            self.current = self.current.saturating_add(events);
        } else if at_ms >= self.window_start_ms - WINDOW_MS {
            self.previous = self.previous.saturating_add(events);
        }
    }

    /// Milliseconds left in the current minute at `now_ms`.
    pub fn ms_left(&mut self, now_ms: i64) -> i64 {
        self.roll(now_ms);
        WINDOW_MS - (now_ms - self.window_start_ms)
    }

    /// Count `cost` events at `now_ms` if they fit under `limit` per minute; all or nothing.
    pub fn check(&mut self, now_ms: i64, cost: u64, limit: u32) -> Decision {
        let limit = limit as u64;
        if self.count(now_ms) + cost <= limit {
            self.add(now_ms, cost);
            return Decision { allowed: true, retry_after_s: 0 };
        }
        let wait_ms = self.ms_until_count_at_most(now_ms, limit.saturating_sub(cost)).max(1);
        Decision { allowed: false, retry_after_s: seconds(wait_ms) }
    }
}

/// Whole seconds for a Retry-After, at least 1.
pub fn seconds(ms: i64) -> u32 {
    ((ms.max(0) as u64).div_ceil(1000) as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000; // a minute boundary

    #[test]
    fn allows_up_to_the_limit_then_refuses_with_a_wait() {
        let mut w = SlidingWindow::default();
        for i in 0..5 {
            assert!(w.check(T0 + i, 1, 5).allowed);
        }
        let d = w.check(T0 + 10, 1, 5);
        assert!(!d.allowed);
        assert!((1..=60).contains(&d.retry_after_s), "{d:?}");
        // all or nothing: a batch that does not fit is refused whole, nothing counted
        let mut w = SlidingWindow::default();
        assert!(w.check(T0, 3, 5).allowed);
        assert!(!w.check(T0 + 1, 3, 5).allowed);
        assert!(w.check(T0 + 2, 2, 5).allowed);
    }

    #[test]
    fn previous_minute_decays() {
        let mut w = SlidingWindow::default();
        assert!(w.check(T0, 10, 10).allowed);
        // 30 s into the next minute half of the previous 10 still counts: room for 5
        let mid = T0 + WINDOW_MS + WINDOW_MS / 2;
        assert!(w.check(mid, 5, 10).allowed);
        assert!(!w.check(mid, 1, 10).allowed);
        // a millisecond later the weight is 4.999..., counted as 4 whole events
        assert!(w.check(mid + 1, 1, 10).allowed);
        assert!(!w.check(mid + 2, 1, 10).allowed);
        // two minutes later it is all gone
        assert!(w.check(T0 + 3 * WINDOW_MS, 10, 10).allowed);
    }

    #[test]
    fn a_tiny_limit_gets_all_of_it_every_minute() {
        // 5 a minute, asked for every 6 s: 5 accepted in each minute, not 4 (the weight is
        // rounded down to whole events, so the last slot opens before the minute ends).
        let mut w = SlidingWindow::default();
        let mut per_minute = [0; 4];
        for i in 0..40 {
            let now = T0 + i * 6_000 + 1;
            if w.check(now, 1, 5).allowed {
                per_minute[((now - T0) / WINDOW_MS) as usize] += 1;
            }
        }
        assert_eq!(per_minute, [5, 5, 5, 5]);
    }

    #[test]
    fn the_wait_is_when_the_count_has_fallen() {
        let mut w = SlidingWindow::default();
        w.add(T0, 60);
        let next = T0 + WINDOW_MS;
        assert_eq!(w.count(next), 60);
        // 60 previous events decay one per second
        let wait = w.ms_until_count_at_most(next, 50);
        assert_eq!(w.count_at(next, next + wait), 50);
        assert_eq!(w.count_at(next, next + wait - 1), 51);
        assert_eq!(w.count_at(next, next + 10 * WINDOW_MS), 0, "clamped to this minute's end");
        // this minute's own events only start decaying next minute
        w.add(next, 55);
        assert_eq!(w.ms_until_count_at_most(next, 50), WINDOW_MS);
        assert_eq!(w.ms_until_count_at_most(next, 200), 0);
    }
}
