//! Who may read a project's numbers: its `rk_live_` (read-only) or `sk_live_` (secret) key,
//! never its public `pk_live_` key (it is in every page). The project is the key's.

use crate::error::ApiError;
use crate::keys::{self, KeyKind, KeyRecord};

/// The kind the key's prefix claims, if it may read at all (before any lookup).
pub fn claimed_kind(raw_key: Option<&str>) -> Result<KeyKind, ApiError> {
    let raw = raw_key.map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::new(
            401,
            "missing_key",
            "No API key was sent. Send the project's rk_live_ (read-only) key as `Authorization: Bearer <key>`.",
        )
    })?;
    match KeyKind::from_prefix(raw) {
        Some(KeyKind::ReadOnly | KeyKind::Secret) => Ok(KeyKind::from_prefix(raw).expect("matched")),
        Some(KeyKind::Publishable) => Err(ApiError::new(
            403,
            "publishable_key_cannot_read",
            "pk_live_ keys are public and only send events. Read with the project's rk_live_ (read-only) key, from a server or an agent.",
        )),
        None => Err(ApiError::new(401, "malformed_key", "The API key is not of a known form. Read with the project's rk_live_ key.")),
    }
}

/// The project and its time zone setting, once KV has answered for the key. A secret key
/// seen from a browser (any non-empty Origin, `null` included) is exposed and refused, as on
/// ingest.
pub fn authorize(claimed: KeyKind, record: Option<KeyRecord>, origin: Option<&str>) -> Result<(String, Option<String>), ApiError> {
    let record = keys::known_record(claimed, record)?;
    if claimed == KeyKind::Secret && keys::origin_present(origin) {
        return Err(keys::secret_key_in_browser());
    }
    Ok((record.project_id, record.timezone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: KeyKind) -> Option<KeyRecord> {
        Some(KeyRecord { timezone: Some("Europe/Berlin".into()), ..KeyRecord::new("proj_a", kind) })
    }

    #[test]
    fn read_keys_read_and_public_keys_do_not() {
        assert_eq!(claimed_kind(Some("rk_live_abc")).unwrap(), KeyKind::ReadOnly);
        assert_eq!(claimed_kind(Some("sk_live_abc")).unwrap(), KeyKind::Secret);
        let e = claimed_kind(Some("pk_live_abc")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "publishable_key_cannot_read"));
        assert_eq!(claimed_kind(None).unwrap_err().status, 401);
        assert_eq!(claimed_kind(Some("hello")).unwrap_err().code, "malformed_key");
        assert_eq!(authorize(KeyKind::ReadOnly, record(KeyKind::ReadOnly), None).unwrap(), ("proj_a".into(), Some("Europe/Berlin".into())));
        // A record of another kind than the prefix claims is unknown.
        assert_eq!(authorize(KeyKind::ReadOnly, record(KeyKind::Publishable), None).unwrap_err().code, "unknown_key");
        assert_eq!(authorize(KeyKind::Secret, record(KeyKind::Secret), Some("null")).unwrap_err().code, "secret_key_in_browser");
        assert_eq!(authorize(KeyKind::Secret, record(KeyKind::Secret), Some("https://a.com")).unwrap_err().code, "secret_key_in_browser");
        assert!(authorize(KeyKind::Secret, record(KeyKind::Secret), Some("")).is_ok(), "an empty header is no Origin");
        let mut revoked = record(KeyKind::ReadOnly).unwrap();
        revoked.revoked = true;
        assert_eq!(authorize(KeyKind::ReadOnly, Some(revoked), None).unwrap_err().code, "revoked_key");
    }
}
