//! Rate limits, the pure half. Per key: a sliding-window count kept by one Durable Object per
//! key (so one key over its limit never slows another), which isolates ask only now and then:
//! the object hands out allowances sized to each isolate's rate, and isolates hand back what
//! they did not use (`budget`: the object's side, `local`: the isolate's, `window`: the count).
//! Per client IP: the Workers rate-limiting binding, keyed by a salted hash of the IP, never
//! the IP itself.

pub mod budget;
pub mod local;
pub mod unkeyed;
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

/// Requests a minute from one address (`IP_RATE_LIMITER` in each Worker's wrangler.toml).
pub const IP_REQUESTS_PER_MINUTE: u32 = 600;

/// The most events a browser key's batch holds: a minute of one address's limit, so a batch
/// that could never pass it is refused at once (413) instead of retried. Browser keys batch
/// only on a vendor's route: an SDK's backlog (analytics-next refills a batch up to ~450 KB
/// after an offline spell, a few hundred events).
pub const MAX_BROWSER_BATCH: usize = IP_REQUESTS_PER_MINUTE as usize;

/// Why a request of `events` may not come as a batch (`is_batch`) with a key of `kind`, on a
/// vendor's route (`vendor_route`) or `/collect`; None when it may. Server keys batch freely;
/// a browser key only on a vendor's route, and at most `MAX_BROWSER_BATCH` events, each of
/// which counts against the address's limit (`ip_units`).
pub fn browser_batch_refusal(kind: KeyKind, is_batch: bool, events: usize, vendor_route: bool) -> Option<ApiError> {
    if !is_batch || kind == KeyKind::Secret {
        return None;
    }
    if !vendor_route {
        return Some(ApiError::bad_request(
            "batch_needs_secret_key",
            "Batches are for server SDKs with an sk_live_ key. From a browser send one event per request.",
        ));
    }
    (events > MAX_BROWSER_BATCH).then(|| {
        ApiError::new(
            413,
            "batch_too_large",
            format!(
                "The batch has {events} events; a browser key's batch takes at most {MAX_BROWSER_BATCH}. Flush more often, or split it."
            ),
        )
    })
}

/// What a request of `events` costs against the per-IP limit: a browser key's batch counts
/// each event, as sending them one a request would, so one address takes no more of a key's
/// minute by batching; any other request counts one.
pub fn ip_units(kind: KeyKind, events: usize) -> u32 {
    match kind {
        KeyKind::Publishable => events.clamp(1, MAX_BROWSER_BATCH) as u32,
        _ => 1,
    }
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

/// The key the per-IP limiter counts under: SHA-256 of a secret salt and the client, so neither
/// the limiter nor anything it logs can hold or reverse the address (IPv4 is too small a space
/// for an unsalted hash to hide anything). The client is an IPv4 address or an IPv6 /64
/// (limit_client).
pub fn ip_limit_key(salt: &str, ip: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(limit_client(ip.trim()).as_bytes());
    format!("ip:{}", hex(&h.finalize()[..16]))
}

/// What one client is to the per-IP limit: an IPv4 address (also when mapped into IPv6), or an
/// IPv6 address's /64, as one host commonly holds a whole /64. Anything that does not parse
/// counts as itself.
fn limit_client(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

/// The refusal of a request that takes no events (a query, an export, an erasure, an admin
/// call, or one refused before its key was read), by a limit on this `scope`.
pub fn too_many_requests(scope: &str, retry_after_s: u32) -> ApiError {
    ApiError::new(
        429,
        "rate_limited",
        format!("Too many requests for this {scope}. Wait {retry_after_s} s (see Retry-After), then send the request again; this one was not carried out."),
    )
}

/// The refusal of events by a limit on this `scope`.
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

    /// One address with a browser key takes no more of the key's minute by batching (a vendor
    /// SDK's backlog) than by sending one event a request: each event is a unit of its per-IP
    /// limit. A batch of 2,500 once cost one unit, so three requests took a key's whole minute;
    /// a batch larger than the address's minute could never pass, so it is refused at once.
    #[test]
    fn one_address_cannot_take_a_browser_keys_minute_by_batching() {
        let minute = u64::from(default_events_per_minute(KeyKind::Publishable));
        for events in [1, 10, MAX_BROWSER_BATCH] {
            let units = u64::from(ip_units(KeyKind::Publishable, events));
            let events_an_address_sends = u64::from(IP_REQUESTS_PER_MINUTE) / units * events as u64;
            assert!(events_an_address_sends * 10 <= minute, "{events} a request: {events_an_address_sends} of {minute}");
        }
        assert_eq!(ip_units(KeyKind::Secret, 2_500), 1, "a server's batches come from one address by design");
        let e = browser_batch_refusal(KeyKind::Publishable, true, MAX_BROWSER_BATCH + 1, true).unwrap();
        assert_eq!((e.status, e.code), (413, "batch_too_large"));
        assert!(browser_batch_refusal(KeyKind::Publishable, true, MAX_BROWSER_BATCH, true).is_none());
        assert_eq!(browser_batch_refusal(KeyKind::Publishable, true, 2, false).unwrap().code, "batch_needs_secret_key");
        assert!(browser_batch_refusal(KeyKind::Secret, true, 2_500, false).is_none());
        assert!(browser_batch_refusal(KeyKind::Publishable, false, 1, false).is_none());
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
        // A request that sent no events is not told about events.
        let r = too_many_requests("client address", 60);
        assert_eq!((r.status, r.code), (429, "rate_limited"));
        assert!(!r.message.contains("event") && r.message.contains("60 s"), "{r}");
    }

    /// One host holds a whole IPv6 /64 (the smallest subnet a network hands out), so counting
    /// each address apart would give it 2^64 fresh buckets: every address of a /64 counts as
    /// one client. IPv4, and IPv4 mapped into IPv6, count per address; the textual form does not
    /// matter.
    #[test]
    fn an_ipv6_64_is_one_client() {
        let k = |ip| ip_limit_key("s", ip);
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2::2"));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(k("2001:DB8:1:2::1"), k("2001:0db8:0001:0002:0:0:0:1"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:203.0.113.7"), k("203.0.113.7"));
        assert_ne!(k("203.0.113.7"), k("203.0.113.8"));
        assert_eq!(k("not an address"), k(" not an address "));
    }
}
