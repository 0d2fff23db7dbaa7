//! Rate limits, the pure half. Per key: a sliding-window counter (kept by one Durable Object
//! per key, so one key over its limit never slows another). Per client IP: the Workers
//! rate-limiting binding, keyed by a salted hash of the IP, never the IP itself.

use crate::error::ApiError;
use crate::keys::{hex, KeyKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const WINDOW_MS: i64 = 60_000;

/// Events a key may send per minute when its KV record sets no limit.
pub fn default_events_per_minute(kind: KeyKind) -> u32 {
    match kind {
        KeyKind::Secret => 60_000,
        _ => 6_000,
    }
}

/// Sliding window over two fixed minutes: the previous minute's count, weighted by how much of
/// it still overlaps the last 60 s, plus the current minute's. Smooth at minute edges, O(1).
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
        if start == self.window_start_ms {
            return;
        }
        self.previous = if start - self.window_start_ms == WINDOW_MS { self.current } else { 0 };
        self.current = 0;
        self.window_start_ms = start;
    }

    fn estimate(&self, now_ms: i64) -> f64 {
        let elapsed = (now_ms - self.window_start_ms) as f64 / WINDOW_MS as f64;
        self.previous as f64 * (1.0 - elapsed) + self.current as f64
    }

    /// Count `cost` events at `now_ms` if they fit under `limit` per minute; all or nothing.
    pub fn check(&mut self, now_ms: i64, cost: u64, limit: u32) -> Decision {
        self.roll(now_ms);
        if self.estimate(now_ms) + cost as f64 <= limit as f64 {
            self.current += cost;
            return Decision { allowed: true, retry_after_s: 0 };
        }
        // When will the previous minute's weight have decayed enough? Else: next minute.
        let need = self.estimate(now_ms) + cost as f64 - limit as f64;
        let per_ms = self.previous as f64 / WINDOW_MS as f64;
        let until_next = WINDOW_MS - (now_ms - self.window_start_ms);
        let wait_ms = if per_ms > 0.0 && need / per_ms < until_next as f64 { need / per_ms } else { until_next as f64 };
        Decision { allowed: false, retry_after_s: ((wait_ms / 1000.0).ceil() as u32).max(1) }
    }
}

/// What the per-key limiter is asked, and answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitRequest {
    pub cost: u64,
    pub limit: u32,
}

/// The key the per-IP limiter counts under: SHA-256 of a secret salt and the IP, so neither the
/// limiter nor anything it logs can hold or reverse the address (IPv4 is too small a space for
/// an unsalted hash to hide anything).
pub fn ip_limit_key(salt: &str, ip: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(ip.trim().as_bytes());
    format!("ip:{}", hex(&h.finalize()[..16]))
}

pub fn too_many(scope: &str, retry_after_s: u32) -> ApiError {
    ApiError::new(
        429,
        "rate_limited",
        format!("Too many events for this {scope}. Wait {retry_after_s} s (see Retry-After), then resend; nothing from this request was stored."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit_then_refuses_with_a_wait() {
        let mut w = SlidingWindow::default();
        let t0 = 1_800_000_000_000; // a minute boundary
        for i in 0..5 {
            assert!(w.check(t0 + i, 1, 5).allowed);
        }
        let d = w.check(t0 + 10, 1, 5);
        assert!(!d.allowed);
        assert!((1..=60).contains(&d.retry_after_s), "{d:?}");
        // all or nothing: a batch that does not fit is refused whole, nothing counted
        let mut w = SlidingWindow::default();
        assert!(w.check(t0, 3, 5).allowed);
        assert!(!w.check(t0 + 1, 3, 5).allowed);
        assert!(w.check(t0 + 2, 2, 5).allowed);
    }

    #[test]
    fn previous_minute_decays() {
        let mut w = SlidingWindow::default();
        let t0 = 1_800_000_000_000;
        assert!(w.check(t0, 10, 10).allowed);
        // 30 s into the next minute half of the previous 10 still counts: room for 5
        let mid = t0 + WINDOW_MS + WINDOW_MS / 2;
        assert!(w.check(mid, 5, 10).allowed);
        assert!(!w.check(mid + 1, 1, 10).allowed);
        // two minutes later it is all gone
        assert!(w.check(t0 + 3 * WINDOW_MS, 10, 10).allowed);
    }

    #[test]
    fn ip_key_is_salted_and_hides_the_ip() {
        let k = ip_limit_key("salt-1", "203.0.113.7");
        assert!(!k.contains("203.0.113.7"));
        assert_ne!(k, ip_limit_key("salt-2", "203.0.113.7"));
        assert_eq!(k, ip_limit_key("salt-1", " 203.0.113.7 "));
        assert_eq!(too_many("key", 7).status, 429);
    }
}
