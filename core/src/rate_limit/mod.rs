//! Rate limits, the pure half. Per key: a sliding-window count kept by one Durable Object per
//! key (so one key over its limit never slows another), which isolates ask only now and then:
//! the object hands out allowances sized to each isolate's rate, and isolates hand back what
//! they did not use (`budget`: the object's side, `local`: the isolate's, `window`: the count).
//! Per client IP: the Workers rate-limiting binding, keyed by a salted hash of the IP, never
//! the IP itself.

pub mod budget;
pub mod local;
pub mod window;

#[cfg(test)]
mod eviction;

pub use budget::{Answer, Ask, KeyBudget, Settle};
pub use local::{LocalBudget, Step};
pub use window::{Decision, SlidingWindow};

use crate::error::ApiError;
use crate::keys::cache::Cached;
use crate::keys::{hex, KeyKind, KeyRecord};
use sha2::{Digest, Sha256};

pub const WINDOW_MS: i64 = 60_000;

/// Events a key may send per minute when its KV record sets no limit.
pub fn default_events_per_minute(kind: KeyKind) -> u32 {
    match kind {
        KeyKind::Secret => 60_000,
        _ => 6_000,
    }
}

/// A request with more events than its key takes in a minute, refused at once: it could never
/// pass, so a 429 would have its client retry it forever (an SDK's backlog, a key limited to
/// a few hundred events a minute). 413, as a batch past the protocol's own bound.
pub fn over_key_limit(events: usize, events_per_minute: u32) -> Option<ApiError> {
    (events as u64 > u64::from(events_per_minute)).then(|| {
        ApiError::new(
            413,
            "batch_too_large",
            format!(
                "The batch has {events} events; this key takes {events_per_minute} a minute. Split it into batches of at most that many."
            ),
        )
    })
}

/// Whether the per-IP limit applies to a request, decided before its key is read from KV, from
/// the kind its prefix claims and what the isolate's key cache holds for it:
/// - publishable (browser) keys: always (the connecting address is the visitor's);
/// - any other key unless the cache holds it as a usable key of that kind (known, not revoked):
///   a server with a valid key passes it at most once per isolate per cache TTL.
///
/// KV is read only on a cache miss, and every miss passes the per-IP limit first, so one
/// client address costs at most as many KV reads a minute as the IP binding allows it requests
/// (600 per Cloudflare location, wrangler.toml), whatever keys it makes up. The same random key
/// sent again within 10 s costs no read at all (the cache keeps unknown keys, apart from known
/// ones: see key_cache).
pub fn ip_limit_applies(claimed: KeyKind, cached: &Cached<KeyRecord>) -> bool {
    match cached {
        _ if claimed == KeyKind::Publishable => true,
        Cached::Known(record) => record.revoked || record.kind != claimed,
        Cached::Unknown | Cached::Miss => true,
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
    fn a_batch_larger_than_a_minute_of_the_key_is_refused_at_once_not_retried() {
        assert!(over_key_limit(500, 500).is_none());
        let e = over_key_limit(600, 500).unwrap();
        assert_eq!((e.status, e.code), (413, "batch_too_large"));
        assert!(e.message.contains("600") && e.message.contains("500"), "{e}");
    }

    #[test]
    fn the_ip_limit_guards_every_kv_read() {
        let rec = |kind, revoked| KeyRecord { revoked, ..KeyRecord::new("p", kind) };
        use KeyKind::*;
        // a KV read follows only a miss; a miss always passes the per-IP limit first
        for kind in [Publishable, Secret, ReadOnly] {
            assert!(ip_limit_applies(kind, &Cached::Miss));
            assert!(ip_limit_applies(kind, &Cached::Unknown));
        }
        // browser keys always; a valid server key known to the cache never
        assert!(ip_limit_applies(Publishable, &Cached::Known(rec(Publishable, false))));
        assert!(!ip_limit_applies(Secret, &Cached::Known(rec(Secret, false))));
        assert!(!ip_limit_applies(ReadOnly, &Cached::Known(rec(ReadOnly, false))));
        // a revoked key, or one whose prefix lies about its kind, is not a valid key
        assert!(ip_limit_applies(Secret, &Cached::Known(rec(Secret, true))));
        assert!(ip_limit_applies(Secret, &Cached::Known(rec(Publishable, false))));
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
