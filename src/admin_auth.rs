//! Who may call the admin endpoints (`/admin/*`): whoever sends `Authorization: Bearer
//! <ADMIN_TOKEN>`. Compared in constant time, so the answer's timing says nothing about how
//! much of a guess was right.

use sha2::{Digest, Sha256};

/// True when `authorization` is `Bearer <token>` and `token` is set (non-empty) and equal.
pub fn allowed(token: Option<&str>, authorization: Option<&str>) -> bool {
    let Some(expected) = token.filter(|t| !t.is_empty()) else { return false };
    let Some(given) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
    constant_time_eq(expected.as_bytes(), given.as_bytes())
}

/// Equal bytes? Both sides are hashed first, so the time taken depends on neither the
/// position of the first difference nor (beyond hashing) the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_must_match_exactly() {
        let t = Some("s3cret-admin-token");
        assert!(allowed(t, Some("Bearer s3cret-admin-token")));
        assert!(!allowed(t, Some("Bearer s3cret-admin-toke")));
        assert!(!allowed(t, Some("Bearer s3cret-admin-token ")));
        assert!(!allowed(t, Some("s3cret-admin-token")));
        assert!(!allowed(t, Some("Basic s3cret-admin-token")));
        assert!(!allowed(t, None));
        // No token configured: nobody, not even an empty bearer.
        assert!(!allowed(None, Some("Bearer ")));
        assert!(!allowed(Some(""), Some("Bearer ")));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
