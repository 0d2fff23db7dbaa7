//! Rate limits, the pure half. Per key: a sliding-window count kept by one Durable Object per
//! key (so one key over its limit never slows another), which isolates ask only now and then:
//! the object hands out allowances sized to each isolate's rate, and isolates hand back what
//! they did not use (`budget`: the object's side, `local`: the isolate's, `window`: the count).
//! Per client IP: the Workers rate-limiting binding, keyed by a salted hash of the IP, never
//! the IP itself.

pub mod budget;
pub mod local;
pub mod window;

pub use budget::{Answer, Ask, KeyBudget, Settle};
pub use local::{LocalBudget, Step};
pub use window::{Decision, SlidingWindow};

use crate::error::ApiError;
use crate::keys::{hex, KeyKind};
use sha2::{Digest, Sha256};

pub const WINDOW_MS: i64 = 60_000;

/// Events a key may send per minute when its KV record sets no limit.
pub fn default_events_per_minute(kind: KeyKind) -> u32 {
    match kind {
        KeyKind::Secret => 60_000,
        _ => 6_000,
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
mod simulation;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_key_is_salted_and_hides_the_ip() {
        let k = ip_limit_key("salt-1", "203.0.113.7");
        assert!(!k.contains("203.0.113.7"));
        assert_ne!(k, ip_limit_key("salt-2", "203.0.113.7"));
        assert_eq!(k, ip_limit_key("salt-1", " 203.0.113.7 "));
        assert_eq!(too_many("key", 7).status, 429);
    }
}
