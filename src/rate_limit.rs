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

/// What the per-key limiter is asked: room for `cost` events now, and up to `want` in all
/// (a lease the isolate spends locally, so it need not ask for every request).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitRequest {
    pub cost: u64,
    pub want: u64,
    pub limit: u32,
}

/// The answer: `granted` >= cost when allowed (0 when not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub granted: u64,
    pub retry_after_s: u32,
}

impl SlidingWindow {
    /// Grant `cost` events, plus up to `want - cost` more as a lease, if `cost` fits.
    pub fn lease(&mut self, now_ms: i64, cost: u64, want: u64, limit: u32) -> Grant {
        let d = self.check(now_ms, cost, limit);
        if !d.allowed {
            return Grant { granted: 0, retry_after_s: d.retry_after_s };
        }
        let room = (limit as f64 - self.estimate(now_ms)).floor().max(0.0) as u64;
        let extra = want.saturating_sub(cost).min(room);
        self.current += extra;
        Grant { granted: cost + extra, retry_after_s: 0 }
    }
}

/// How many events an isolate asks for at once: ~2% of the key's per-minute limit, so that
/// outstanding leases can overshoot the limit only a little, and 1 for tiny limits (exact).
pub fn lease_size(limit: u32) -> u64 {
    (limit as u64 / 50).clamp(1, 1000)
}

/// Leases expire so that tokens an idle isolate holds go back to waiting for the window.
pub const LEASE_MS: i64 = 10_000;

/// An isolate's unspent lease for one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    pub remaining: u64,
    pub expires_ms: i64,
}

impl Lease {
    /// Spend `cost` locally if the lease covers it.
    pub fn spend(&mut self, now_ms: i64, cost: u64) -> bool {
        if now_ms < self.expires_ms && self.remaining >= cost {
            self.remaining -= cost;
            true
        } else {
            false
        }
    }

    /// After the limiter granted `granted` for a request costing `cost`: keep the rest.
    pub fn refill(now_ms: i64, granted: u64, cost: u64) -> Lease {
        Lease { remaining: granted.saturating_sub(cost), expires_ms: now_ms + LEASE_MS }
    }
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
    fn leases_never_grant_past_the_limit() {
        let t0 = 1_800_000_000_000;
        let mut w = SlidingWindow::default();
        let g = w.lease(t0, 1, lease_size(1000), 1000);
        assert_eq!(g.granted, 20);
        // Many isolates leasing at once: the total granted never exceeds the limit.
        let mut total = g.granted;
        loop {
            let g = w.lease(t0 + 1, 1, 20, 1000);
            if g.granted == 0 {
                assert!(g.retry_after_s >= 1);
                break;
            }
            total += g.granted;
        }
        assert_eq!(total, 1000);
        // Tiny limits lease exactly what is asked for.
        assert_eq!(lease_size(5), 1);
        let mut w = SlidingWindow::default();
        for _ in 0..5 {
            assert_eq!(w.lease(t0, 1, lease_size(5), 5).granted, 1);
        }
        assert_eq!(w.lease(t0, 1, 1, 5).granted, 0);
    }

    #[test]
    fn a_lease_is_spent_locally_until_empty_or_expired() {
        let t0 = 1_800_000_000_000;
        let mut l = Lease::refill(t0, 20, 1);
        assert_eq!(l.remaining, 19);
        assert!(l.spend(t0 + 1, 10));
        assert!(!l.spend(t0 + 2, 10), "only 9 left");
        assert!(l.spend(t0 + 3, 9));
        let mut l = Lease::refill(t0, 20, 1);
        assert!(!l.spend(t0 + LEASE_MS, 1), "expired");
        assert!(!Lease::default().spend(t0, 1));
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
