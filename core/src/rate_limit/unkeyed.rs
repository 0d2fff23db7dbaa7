//! Requests refused before any key was known (no key, a malformed one, a body that does not
//! read) never reached the per-IP check, which comes with the key: a client could send them
//! without end, each read, decompressed and parsed (up to 10 MiB a PostHog body) before its
//! 4xx. So each such refusal counts against its address in the same per-IP limit, and an
//! address over it (by these, or by the per-IP check that comes with a key) is refused for 60 s
//! before its body is read: by every isolate that saw the limiter say so (`RefusedAddresses`,
//! held per isolate).

use crate::error::ApiError;
use std::collections::BTreeMap;

/// Refusals the per-IP check already counted (it comes before the key store is read, and the
/// domain index for Plausible's sites), or that name a key that was read: not counted again.
const COUNTED_BY_THE_KEY_CHECK: [&str; 7] = [
    "unknown_key",
    "revoked_key",
    "unknown_domain",
    "origin_not_allowed",
    "null_origin_not_allowed",
    "secret_key_in_browser",
    "browser_origin_refused",
];

/// Whether a refusal of a request whose key was never known counts against its address: a
/// client's mistake (4xx) the key check did not count, not a limit's own 429.
pub fn counts_against_address(e: &ApiError) -> bool {
    // A 405 is answered before any body is read: counting it protects nothing.
    (400..500).contains(&e.status) && !matches!(e.status, 405 | 429) && !COUNTED_BY_THE_KEY_CHECK.contains(&e.code)
}

/// The secret key a request's `Authorization` header names (a Bearer token, or Segment's Basic
/// user), if any. A request whose header names a secret key the isolate holds as valid is
/// neither held back for its address nor counted against it: the per-IP limit never counts such
/// a key's requests, so a customer's server behind an address others flood is not refused for
/// them. A made-up one is no such key. (A server that sends its key in the body, as PostHog's
/// server SDKs do, cannot be told apart before its body is read: it shares its address's fate.)
pub fn secret_key_in_header(authorization: Option<&str>) -> Option<String> {
    let key = crate::keys::auth::bearer(authorization).map(str::to_string).or_else(|| crate::keys::auth::basic_user(authorization))?;
    let key = key.trim();
    (crate::keys::KeyKind::from_prefix(key) == Some(crate::keys::KeyKind::Secret)).then(|| key.to_string())
}

/// How long an address over the limit is refused before its body is read.
pub const REFUSED_FOR_MS: i64 = crate::rate_limit::WINDOW_MS;

/// The most addresses an isolate keeps: past it, the one whose refusal ends first goes.
pub const MAX_ADDRESSES: usize = 10_000;

/// The addresses (as the limiter's salted hashes) over the limit, each until when.
#[derive(Debug, Default)]
pub struct RefusedAddresses {
    until: BTreeMap<String, i64>,
    /// When the last refusal ends.
    last_ends: i64,
}

impl RefusedAddresses {
    pub const fn new() -> Self {
        RefusedAddresses { until: BTreeMap::new(), last_ends: 0 }
    }

    /// Whether none is refused at `now_ms`: then no address need be hashed to ask.
    pub fn none_refused(&self, now_ms: i64) -> bool {
        self.last_ends <= now_ms
    }

    /// The seconds left of `address`'s refusal, if it is refused at `now_ms`.
    pub fn refused(&self, address: &str, now_ms: i64) -> Option<u32> {
        let until = *self.until.get(address)?;
        (until > now_ms).then(|| crate::rate_limit::window::seconds(until - now_ms))
    }

    /// Refuses `address` from `now_ms` for REFUSED_FOR_MS; forgets refusals that ended.
    pub fn refuse(&mut self, address: String, now_ms: i64) {
        self.until.retain(|_, until| *until > now_ms);
        if self.until.len() >= MAX_ADDRESSES && !self.until.contains_key(&address) {
            if let Some(first) = self.until.iter().min_by_key(|(_, until)| **until).map(|(a, _)| a.clone()) {
                self.until.remove(&first);
            }
        }
        self.until.insert(address, now_ms + REFUSED_FOR_MS);
        self.last_ends = now_ms + REFUSED_FOR_MS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_made_before_the_key_check_count() {
        let e = |status, code| ApiError::new(status, code, "x");
        for (status, code) in [
            (401, "missing_key"),
            (401, "malformed_key"),
            (400, "invalid_json"),
            (413, "too_many_values"),
            (403, "read_only_key"),
            (415, "unsupported_encoding"),
        ] {
            assert!(counts_against_address(&e(status, code)), "{code}");
        }
        for (status, code) in [
            (401, "unknown_key"),
            (401, "revoked_key"),
            (400, "unknown_domain"),
            (403, "origin_not_allowed"),
            (429, "rate_limited"),
            (503, "temporarily_unavailable"),
            (405, "method_not_allowed"),
        ] {
            assert!(!counts_against_address(&e(status, code)), "{code}");
        }
    }

    #[test]
    fn the_secret_key_a_header_names() {
        assert_eq!(secret_key_in_header(None), None);
        assert_eq!(secret_key_in_header(Some("Bearer pk_live_x")), None);
        assert_eq!(secret_key_in_header(Some("Bearer nonsense")), None);
        assert_eq!(secret_key_in_header(Some("Bearer sk_live_x")).as_deref(), Some("sk_live_x"));
        assert_eq!(
            secret_key_in_header(Some("Basic c2tfbGl2ZV94Og==")).as_deref(),
            Some("sk_live_x"),
            "Segment's write key as the Basic user"
        );
        assert_eq!(secret_key_in_header(Some("Basic cGtfbGl2ZV94Og==")), None, "pk_live_x");
    }

    #[test]
    fn an_address_is_refused_for_a_minute_and_the_set_stays_bounded() {
        let mut r = RefusedAddresses::new();
        assert!(r.none_refused(0) && r.refused("a", 0).is_none());
        r.refuse("a".into(), 1_000);
        assert!(!r.none_refused(1_000));
        assert_eq!(r.refused("a", 1_000), Some(60));
        assert_eq!(r.refused("a", 60_500), Some(1));
        assert_eq!(r.refused("a", 61_000), None, "a minute on, the address is asked again");
        assert!(r.none_refused(61_000), "and no address need be hashed any more");
        assert_eq!(r.refused("b", 1_000), None);
        r.refuse("b".into(), 70_000);
        assert_eq!(r.until.len(), 1, "an ended refusal is forgotten");
        for i in 0..MAX_ADDRESSES + 5 {
            r.refuse(format!("x{i}"), 80_000 + i as i64);
        }
        assert_eq!(r.until.len(), MAX_ADDRESSES);
        assert!(
            r.refused("x0", 80_000).is_none() && r.refused(&format!("x{}", MAX_ADDRESSES + 4), 80_000).is_some(),
            "the soonest to end went"
        );
    }
}
