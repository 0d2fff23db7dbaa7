//! Identifiers that are personal data are never stored as sent. Server code often uses a
//! person's e-mail address as the visitor id (`mm_aid`) or puts it in an event id; the privacy
//! policy promises an anonymous id. So an id that holds an e-mail address, a phone, card or
//! bank account number, an IP address, credentials, a home-directory account name or a secret
//! of a known shape is replaced by a keyed hash before it reaches a row:
//!
//!   `mmh_` + the first 128 bits, in hex, of HMAC-SHA256(project key, id as sent)
//!   project key = HMAC-SHA256(ID_HASH_SECRET, "millimetric id v1" + project id)
//!
//! `ID_HASH_SECRET` is a Worker secret, kept outside ClickHouse; each project's key derives
//! from it, so the same e-mail address hashes apart in two projects, and nobody holding the
//! rows alone can test guesses. Export and erasure by the id as the client knows it hash the
//! given id the same way and find the visitor's events. Opaque ids (UUIDs, random strings,
//! order numbers) are kept as sent: they identify nobody outside the customer's own systems.

use crate::enrich::pii;
use crate::error::ApiError;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What every keyed hash starts with, so an export shows which ids were replaced.
pub const PREFIX: &str = "mmh_";

/// The deployment's secret for identifier hashes (never logged, never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct IdSecret(Vec<u8>);

impl IdSecret {
    pub fn new(secret: &str) -> Self {
        IdSecret(secret.trim().as_bytes().to_vec())
    }
}

impl std::fmt::Debug for IdSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdSecret(..)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The keyed hash of `id` within `project`.
pub fn keyed_hash(secret: &IdSecret, project: &str, id: &str) -> String {
    keyed_hash_in(secret, project, b"", id)
}

/// The keyed hash of `id` within `project` and `domain`: ids of another kind (`EVENT_IDS`)
/// hash apart from visitors', so no hash an answer gives one can be found among the other's.
fn keyed_hash_in(secret: &IdSecret, project: &str, domain: &[u8], id: &str) -> String {
    let project_key = hmac(&secret.0, &[b"millimetric id v1\0", project.as_bytes()]);
    let digest = hmac(&project_key, &[domain, id.as_bytes()]);
    let mut out = String::with_capacity(PREFIX.len() + 32);
    out.push_str(PREFIX);
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The id as it is stored: as sent, or its keyed hash when it is personal. Without a secret
/// (a deployment that lacks ID_HASH_SECRET) a personal id cannot be stored at all: the event
/// is refused with a 503 naming the setting, never stored raw.
pub fn stored_id(secret: Option<&IdSecret>, project: &str, id: &str) -> Result<String, ApiError> {
    if !pii::is_personal_id(id) {
        return Ok(id.to_string());
    }
    user_visitor_id(secret, project, id)
}

/// The domain of event ids' hashes. `/collect` answers with the stored event ids, to anyone
/// holding the page's public key: were an e-mail address sent as an event id hashed as it is as
/// a visitor id, that answer would give the visitor id stored for the address, and anyone
/// holding the rows could test guesses through it.
const EVENT_IDS: &[u8] = b"event id\0";

/// An event id as it is stored: as sent, or, when it is personal, its keyed hash in the
/// domain of event ids (never equal to the visitor id stored for the same text).
pub fn stored_event_id(secret: Option<&IdSecret>, project: &str, id: &str) -> Result<String, ApiError> {
    if !pii::is_personal_id(id) {
        return Ok(id.to_string());
    }
    secret.map(|s| keyed_hash_in(s, project, EVENT_IDS, id)).ok_or_else(no_secret)
}

/// The visitor id of a signed-in person's own id (`user_id` on `/collect`, a Segment `userId`,
/// a PostHog `distinct_id`): always its keyed hash, whatever it looks like, since the customer's
/// user ids are personal data in their own systems. Erasure by that id finds it (`visitors`).
pub fn user_visitor_id(secret: Option<&IdSecret>, project: &str, id: &str) -> Result<String, ApiError> {
    secret.map(|s| keyed_hash(s, project, id)).ok_or_else(no_secret)
}

/// The refusal of a personal id where the deployment has no secret to hash it with.
fn no_secret() -> ApiError {
    ApiError::new(
            503,
            "config_error",
            "This deployment is misconfigured: ID_HASH_SECRET is not set, so it cannot store an id that holds personal data \
             (an e-mail address, a phone number, a user id ...) as a keyed hash. Set one with `openssl rand -hex 32 | npx wrangler secret put ID_HASH_SECRET`.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> IdSecret {
        IdSecret::new("a-test-secret-of-more-than-thirty-two-characters")
    }

    #[test]
    fn personal_ids_become_keyed_hashes() {
        for id in [
            "jane.doe@example.com",
            "jane.doe%40example.com",
            "order-for-bob@example.com",
            "+44 20 7946 0958",
            "4111 1111 1111 1111",
            "DE89370400440532013000",
            "81.2.69.142",
            "C:\\Users\\jdoe\\x",
            "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",
        ] {
            let stored = stored_id(Some(&secret()), "p1", id).unwrap();
            assert!(stored.starts_with(PREFIX) && stored.len() == PREFIX.len() + 32, "{id} -> {stored}");
            assert_eq!(stored, stored_id(Some(&secret()), "p1", id).unwrap(), "the same id, the same hash");
        }
    }

    /// Review finding: an e-mail address sent as an event id was stored (and answered) as the
    /// very hash stored for it as a visitor id.
    #[test]
    fn event_ids_hash_apart_from_visitor_ids() {
        let s = secret();
        for id in ["jane.doe@example.com", "+44 20 7946 0958"] {
            let event = stored_event_id(Some(&s), "p1", id).unwrap();
            assert!(event.starts_with(PREFIX) && event.len() == PREFIX.len() + 32, "{event}");
            assert_eq!(event, stored_event_id(Some(&s), "p1", id).unwrap(), "the same id, the same hash");
            assert_ne!(event, stored_id(Some(&s), "p1", id).unwrap(), "{id}");
            assert_ne!(event, user_visitor_id(Some(&s), "p1", id).unwrap(), "{id}");
        }
        assert_eq!(stored_event_id(None, "p1", "order-1").unwrap(), "order-1");
        assert_eq!(stored_event_id(None, "p1", "jane@example.com").unwrap_err().code, "config_error");
    }

    #[test]
    fn opaque_ids_are_kept_as_sent() {
        for id in [
            "6f1d0f0e-3c1b-4e8a-9f36-1b2a3c4d5e6f",
            "k3J9xQ2mP7vL4nR8tW1yZ5bC6dF0gH3j",
            "visitor-1",
            "ORD-2026-000123",
            "01HZX3N9J8Q4W6E2R5T7Y9U1I3",
            "1712517344320",
            "42",
        ] {
            assert_eq!(stored_id(Some(&secret()), "p1", id).unwrap(), id);
            assert_eq!(stored_id(None, "p1", id).unwrap(), id, "no secret needed for an opaque id");
        }
    }

    #[test]
    fn projects_and_secrets_hash_apart() {
        let (a, b) = (keyed_hash(&secret(), "p1", "jane@example.com"), keyed_hash(&secret(), "p2", "jane@example.com"));
        assert_ne!(a, b, "the same e-mail in two projects");
        assert_ne!(a, keyed_hash(&IdSecret::new("another-secret-of-more-than-thirty-two-chars"), "p1", "jane@example.com"));
        assert_ne!(a, keyed_hash(&secret(), "p1", "jane@example.org"));
        // the project id and the id are not merely concatenated
        assert_ne!(keyed_hash(&secret(), "p1", "xjane@example.com"), keyed_hash(&secret(), "p1x", "jane@example.com"));
    }

    #[test]
    fn without_a_secret_a_personal_id_is_refused_not_stored() {
        let e = stored_id(None, "p1", "jane@example.com").unwrap_err();
        assert_eq!((e.status, e.code), (503, "config_error"));
        assert!(e.message.contains("ID_HASH_SECRET"));
        assert!(!format!("{:?}", secret()).contains("test-secret"), "Debug never prints the secret");
    }
}
