//! API keys: their kinds, how they are stored (by SHA-256, never raw) and the decision
//! whether a key may ingest a request.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `pk_live_*`: public, used by the browser snippet, restricted to allowed origins.
    Publishable,
    /// `sk_live_*`: secret, used by server SDKs; never from a browser.
    Secret,
    /// `rk_live_*`: read-only analytics; never ingests.
    ReadOnly,
}

impl KeyKind {
    /// The kind a raw key claims by its prefix, or None when it has no known prefix.
    pub fn from_prefix(raw: &str) -> Option<KeyKind> {
        let rest_ok = |rest: &str| !rest.is_empty() && rest.len() <= 128 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        for (prefix, kind) in [("pk_live_", KeyKind::Publishable), ("sk_live_", KeyKind::Secret), ("rk_live_", KeyKind::ReadOnly)] {
            if let Some(rest) = raw.strip_prefix(prefix) {
                return rest_ok(rest).then_some(kind);
            }
        }
        None
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Publishable => "publishable",
            KeyKind::Secret => "secret",
            KeyKind::ReadOnly => "read_only",
        }
    }
}

/// Lower-case hex SHA-256 of the raw key: the KV key its record is stored under.
pub fn key_hash(raw: &str) -> String {
    hex(&Sha256::digest(raw.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// What the edge store (KV) holds for a key, under `key_hash(raw)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub project_id: String,
    pub kind: KeyKind,
    /// Origins a publishable key may be used from, e.g. `https://example.com`;
    /// `https://*.example.com` allows its subdomains over https. Entries are normalised as
    /// browsers serialize an origin (`https://Example.com:443/` is `https://example.com`).
    /// `*` allows any origin (discouraged; useful for local development), but not `null`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Whether the publishable key is taken with `Origin: null` (sandboxed iframes, `file://`
    /// pages, privacy redirects): anyone can send that from anywhere, so it is off unless the
    /// project turns it on. Never applies to secret keys.
    #[serde(default)]
    pub allow_null_origin: bool,
    #[serde(default)]
    pub revoked: bool,
    /// Raw-event retention of the project: 30, 90 or 365 days.
    #[serde(default = "default_retention")]
    pub retention_days: u16,
    /// Whether URL fragments are kept (single-page apps that route by hash).
    #[serde(default)]
    pub hash_routing: bool,
    /// Per-key limit: events accepted per minute (None: the service default).
    #[serde(default)]
    pub events_per_minute: Option<u32>,
    /// The project's time zone (IANA name): what the Stats API reads days in when a query
    /// names none. None: UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// When a rotated-out key stops working (epoch ms); None: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

/// The record as it stands at `now_ms`: a rotated-out key past its grace is revoked.
pub fn effective(mut record: KeyRecord, now_ms: i64) -> KeyRecord {
    if record.expires_at_ms.is_some_and(|t| t <= now_ms) {
        record.revoked = true;
    }
    record
}

fn default_retention() -> u16 {
    90
}

impl KeyRecord {
    /// A record with the defaults a stored one gets for absent fields: no origins, 90-day
    /// retention, no hash routing, the default limit, no time zone, never expiring.
    pub fn new(project_id: &str, kind: KeyKind) -> KeyRecord {
        KeyRecord {
            project_id: project_id.to_string(),
            kind,
            allowed_origins: vec![],
            revoked: false,
            retention_days: default_retention(),
            hash_routing: false,
            events_per_minute: None,
            timezone: None,
            expires_at_ms: None,
            allow_null_origin: false,
        }
    }
}

pub const RETENTION_CHOICES: [u16; 3] = [30, 90, 365];

/// Who is ingesting, once the key has been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub project_id: String,
    pub kind: KeyKind,
    pub retention_days: u16,
    pub hash_routing: bool,
    /// The origin to echo in CORS headers (publishable keys only).
    pub cors_origin: Option<String>,
    pub events_per_minute: Option<u32>,
}

impl Principal {
    /// A principal with the record defaults (90-day retention, no hash routing, no CORS origin,
    /// the default rate limit): for tools, benchmarks and tests that need one.
    pub fn new(project_id: &str, kind: KeyKind) -> Principal {
        Principal {
            project_id: project_id.to_string(),
            kind,
            retention_days: default_retention(),
            hash_routing: false,
            cors_origin: None,
            events_per_minute: None,
        }
    }
}

/// Where the raw key was found missing or malformed, before any lookup.
pub fn check_raw_key(raw: Option<&str>) -> Result<KeyKind, ApiError> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::new(
            401,
            "missing_key",
            "No API key was sent. Send it as `Authorization: Bearer <key>` or as the `key` field of the body.",
        )
    })?;
    let kind = KeyKind::from_prefix(raw).ok_or_else(|| {
        ApiError::new(401, "malformed_key", "The API key is not of a known form. Keys start with pk_live_ (browser) or sk_live_ (server).")
    })?;
    if kind == KeyKind::ReadOnly {
        return Err(ApiError::new(
            403,
            "read_only_key",
            "rk_live_ keys are read-only and cannot send events. Use a pk_live_ key in the browser or an sk_live_ key on a server.",
        ));
    }
    Ok(kind)
}

/// Decide whether the looked-up key may ingest this request.
/// `record` is what KV held under the key's hash (None: unknown key);
/// `origin` is the request's Origin header, present when a browser sent it.
pub fn authorize(claimed: KeyKind, record: Option<KeyRecord>, origin: Option<&str>) -> Result<Principal, ApiError> {
    let record = known_record(claimed, record)?;
    // `null` is an origin like any other here: it reaches the decision.
    let origin = origin.map(str::trim).filter(|o| !o.is_empty());
    let cors_origin = match record.kind {
        KeyKind::ReadOnly => {
            return Err(ApiError::new(403, "read_only_key", "rk_live_ keys are read-only and cannot send events."));
        }
        KeyKind::Secret => {
            if origin_present(origin) {
                return Err(secret_key_in_browser());
            }
            None
        }
        KeyKind::Publishable => match origin {
            Some("null") if record.allow_null_origin => Some("null".to_string()),
            Some("null") => {
                return Err(ApiError::new(
                    403,
                    "null_origin_not_allowed",
                    "This request has `Origin: null` (a sandboxed iframe, a file:// page or a privacy redirect), which the pk_live_ key does not accept. Send from an allowed origin, or set `allow_null_origin` in the project's key record.",
                ))
            }
            Some(o) if origin_allowed(&record.allowed_origins, o) => Some(o.to_string()),
            Some(_) => {
                return Err(ApiError::new(
                    403,
                    "origin_not_allowed",
                    "This page's origin is not allowed for the pk_live_ key. Add it to the project's allowed origins.",
                ))
            }
            // No Origin: a server or tool using the public key. Allowed: the key is public anyway,
            // and browsers always send Origin on cross-origin POSTs.
            None => None,
        },
    };
    Ok(Principal {
        project_id: record.project_id,
        kind: record.kind,
        retention_days: if RETENTION_CHOICES.contains(&record.retention_days) { record.retention_days } else { 90 },
        hash_routing: record.hash_routing,
        cors_origin,
        events_per_minute: record.events_per_minute,
    })
}

/// The key's record if it is usable at all: known, not revoked, and of the kind its prefix claims.
pub fn known_record(claimed: KeyKind, record: Option<KeyRecord>) -> Result<KeyRecord, ApiError> {
    let record = record.ok_or_else(|| {
        ApiError::new(401, "unknown_key", "The API key is not known. Check that you copied it whole, and that it belongs to this project.")
    })?;
    if record.revoked {
        return Err(ApiError::new(401, "revoked_key", "The API key was revoked. Create a new key for this project and use that."));
    }
    if record.kind != claimed {
        // A record whose kind disagrees with the prefix is treated as unknown: never guess.
        return Err(ApiError::new(401, "unknown_key", "The API key is not known. Check that you copied it whole."));
    }
    Ok(record)
}

/// Whether a request carries an Origin header in the sense that matters for keys: present and
/// not blank. `null` counts (a browser sent it); an empty header is not one a browser sends.
pub fn origin_present(origin: Option<&str>) -> bool {
    origin.is_some_and(|o| !o.trim().is_empty())
}

/// A secret key arrived with an Origin header: a browser has it, so it is exposed.
pub fn secret_key_in_browser() -> ApiError {
    ApiError::new(
        403,
        "secret_key_in_browser",
        "A secret sk_live_ key was sent from a browser, so it is exposed: rotate it now, and use a pk_live_ key in browser code.",
    )
}

/// Whether a browser's `Origin` may use a publishable key. The header is compared exactly, as
/// browsers serialize an origin (lower-case scheme and host, punycode, no default port, no
/// slash): `https://example.com:443` or `https://EXAMPLE.com` never come from a browser and
/// match nothing. The allowed entries are normalised to that form as they are read
/// (`normalize_origin`), so a record may say `https://Example.com:443/`. `*` allows any origin;
/// `https://*.example.com` allows the subdomains of example.com over https on the default port
/// (`https://*.example.com:8443` on 8443), not example.com itself. `null` is decided before
/// (`authorize`: `allow_null_origin`), never here.
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    if origin == "null" || origin.is_empty() {
        return false;
    }
    if allowed.iter().any(|a| a.trim() == "*") {
        return true;
    }
    if normalize_origin(origin).as_deref() != Some(origin) {
        return false; // not as a browser sends it
    }
    allowed.iter().filter_map(|a| normalize_origin(a)).any(|a| {
        if a == origin {
            return true;
        }
        match (a.split_once("://*."), origin.split_once("://")) {
            (Some((scheme, rest)), Some((o_scheme, o_rest))) => {
                scheme == o_scheme
                    && o_rest
                        .strip_suffix(rest)
                        .and_then(|sub| sub.strip_suffix('.'))
                        .is_some_and(|sub| !sub.is_empty() && !sub.contains([':', '/']))
            }
            _ => false,
        }
    })
}

/// An allowed-origin entry as a browser would send it: `scheme://host[:port]`, scheme and host
/// lower-cased (IDN hosts in punycode), the scheme's default port dropped, no trailing slash.
/// `https://*.example.com` keeps its wildcard label. None for what is not an origin (a path,
/// no scheme, an opaque origin).
pub fn normalize_origin(entry: &str) -> Option<String> {
    let entry = entry.trim().trim_end_matches('/');
    let (scheme, rest) = entry.split_once("://")?;
    let (wild, rest) = match rest.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let url = url::Url::parse(&format!("{scheme}://{rest}")).ok()?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return None;
    }
    let serialized = url.origin().ascii_serialization();
    if serialized == "null" {
        return None;
    }
    Some(if wild {
        let (s, r) = serialized.split_once("://")?;
        format!("{s}://*.{r}")
    } else {
        serialized
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: KeyKind) -> KeyRecord {
        KeyRecord {
            allowed_origins: vec!["https://example.com".into(), "https://*.example.org".into()],
            retention_days: 30,
            ..KeyRecord::new("proj_1", kind)
        }
    }

    #[test]
    fn prefixes_decide_kind() {
        assert_eq!(KeyKind::from_prefix("pk_live_abc123"), Some(KeyKind::Publishable));
        assert_eq!(KeyKind::from_prefix("sk_live_abc123"), Some(KeyKind::Secret));
        assert_eq!(KeyKind::from_prefix("rk_live_abc123"), Some(KeyKind::ReadOnly));
        assert_eq!(KeyKind::from_prefix("pk_test_abc"), None);
        assert_eq!(KeyKind::from_prefix("pk_live_"), None);
        assert_eq!(KeyKind::from_prefix("pk_live_a b"), None);
    }

    #[test]
    fn hash_is_sha256_hex() {
        // sha256("abc")
        assert_eq!(key_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn raw_key_checks() {
        assert_eq!(check_raw_key(None).unwrap_err().code, "missing_key");
        assert_eq!(check_raw_key(Some("  ")).unwrap_err().code, "missing_key");
        assert_eq!(check_raw_key(Some("hello")).unwrap_err().code, "malformed_key");
        let e = check_raw_key(Some("rk_live_x1")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "read_only_key"));
        assert_eq!(check_raw_key(Some("sk_live_x1")).unwrap(), KeyKind::Secret);
    }

    #[test]
    fn unknown_and_revoked_keys_are_401() {
        let e = authorize(KeyKind::Publishable, None, None).unwrap_err();
        assert_eq!((e.status, e.code), (401, "unknown_key"));
        let mut r = rec(KeyKind::Publishable);
        r.revoked = true;
        let e = authorize(KeyKind::Publishable, Some(r), None).unwrap_err();
        assert_eq!((e.status, e.code), (401, "revoked_key"));
        // prefix says secret, record says publishable
        let e = authorize(KeyKind::Secret, Some(rec(KeyKind::Publishable)), None).unwrap_err();
        assert_eq!(e.status, 401);
    }

    #[test]
    fn publishable_key_only_from_allowed_origins() {
        let p = authorize(KeyKind::Publishable, Some(rec(KeyKind::Publishable)), Some("https://example.com")).unwrap();
        assert_eq!(p.cors_origin.as_deref(), Some("https://example.com"));
        assert_eq!(p.retention_days, 30);
        let p = authorize(KeyKind::Publishable, Some(rec(KeyKind::Publishable)), Some("https://shop.example.org")).unwrap();
        assert_eq!(p.cors_origin.as_deref(), Some("https://shop.example.org"));
        let e = authorize(KeyKind::Publishable, Some(rec(KeyKind::Publishable)), Some("https://evil.com")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "origin_not_allowed"));
        // lookalike suffix is not a subdomain
        assert!(!origin_allowed(&rec(KeyKind::Publishable).allowed_origins, "https://badexample.org"));
        assert!(!origin_allowed(&rec(KeyKind::Publishable).allowed_origins, "http://shop.example.org"));
    }

    #[test]
    fn secret_key_from_browser_is_refused_with_rotation_advice() {
        let e = authorize(KeyKind::Secret, Some(rec(KeyKind::Secret)), Some("https://example.com")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "secret_key_in_browser"));
        assert!(e.message.contains("rotate"));
        assert!(authorize(KeyKind::Secret, Some(rec(KeyKind::Secret)), None).is_ok());
    }

    #[test]
    fn null_origin_needs_the_record_to_allow_it() {
        // Sandboxed iframes, file:// pages and privacy redirects send `Origin: null`.
        for allowed in [vec!["https://example.com".to_string()], vec!["*".to_string()], vec![]] {
            let r = KeyRecord { allowed_origins: allowed, ..rec(KeyKind::Publishable) };
            let e = authorize(KeyKind::Publishable, Some(r), Some("null")).unwrap_err();
            assert_eq!((e.status, e.code), (403, "null_origin_not_allowed"));
            assert!(e.message.contains("allow_null_origin"), "{}", e.message);
        }
        let r = KeyRecord { allow_null_origin: true, ..rec(KeyKind::Publishable) };
        let p = authorize(KeyKind::Publishable, Some(r.clone()), Some("null")).unwrap();
        assert_eq!(p.cors_origin.as_deref(), Some("null"));
        // allowing null allows nothing else
        assert_eq!(authorize(KeyKind::Publishable, Some(r), Some("https://evil.com")).unwrap_err().code, "origin_not_allowed");
        // records written before the field existed do not allow it
        let old: KeyRecord = serde_json::from_str(r#"{"project_id":"p","kind":"publishable","allowed_origins":["*"]}"#).unwrap();
        assert!(!old.allow_null_origin);
    }

    #[test]
    fn a_secret_key_with_any_origin_is_exposed() {
        for origin in ["null", "https://example.com", "file://", "chrome-extension://abc", " null "] {
            let e = authorize(KeyKind::Secret, Some(rec(KeyKind::Secret)), Some(origin)).unwrap_err();
            assert_eq!((e.status, e.code), (403, "secret_key_in_browser"), "{origin:?}");
        }
        // even a record that allows null for its browser key: a secret key is never from a browser
        let r = KeyRecord { allow_null_origin: true, ..rec(KeyKind::Secret) };
        assert_eq!(authorize(KeyKind::Secret, Some(r), Some("null")).unwrap_err().code, "secret_key_in_browser");
        // an empty header is no Origin (browsers never send one empty)
        assert!(authorize(KeyKind::Secret, Some(rec(KeyKind::Secret)), Some("")).is_ok());
        assert!(origin_present(Some("null")) && !origin_present(Some("  ")) && !origin_present(None));
    }

    #[test]
    fn origins_match_exactly_as_browsers_serialize_them() {
        let allowed: Vec<String> = [
            "https://Example.com:443",
            "http://LOCALHOST:8080/",
            "https://shop.example.net:8443",
            "HTTPS://*.Example.org",
            "http://[::1]:80",
        ]
        .map(String::from)
        .to_vec();
        // the record's entries are normalised: browsers send lower case, no default port, no slash
        for o in [
            "https://example.com",
            "http://localhost:8080",
            "https://shop.example.net:8443",
            "https://a.example.org",
            "https://a.b.example.org",
            "http://[::1]",
        ] {
            assert!(origin_allowed(&allowed, o), "{o}");
        }
        // what browsers never send does not match loosely
        for o in [
            "https://example.com:443",
            "https://EXAMPLE.com",
            "HTTPS://example.com",
            "https://example.com/",
            "https://example.com.",
            "https://shop.example.net",
            "http://example.com",
            "https://example.org",
            "https://.example.org",
            "https://a.example.org:443",
            "https://badexample.org",
            "https://example.com.evil.net",
            "null",
            "",
        ] {
            assert!(!origin_allowed(&allowed, o), "{o}");
        }
        assert_eq!(normalize_origin("https://Example.com:443/").as_deref(), Some("https://example.com"));
        assert_eq!(normalize_origin("https://bücher.example").as_deref(), Some("https://xn--bcher-kva.example"));
        assert_eq!(normalize_origin("HTTPS://*.Example.org:8443").as_deref(), Some("https://*.example.org:8443"));
        assert_eq!(normalize_origin("https://example.com/path"), None, "an origin has no path");
        assert_eq!(normalize_origin("example.com"), None);
        // `*` still allows any origin a browser sends, but never null (see above)
        assert!(origin_allowed(&["*".to_string()], "https://anything.example"));
    }

    #[test]
    fn read_only_record_never_ingests() {
        let e = authorize(KeyKind::ReadOnly, Some(rec(KeyKind::ReadOnly)), None).unwrap_err();
        assert_eq!(e.code, "read_only_key");
    }
}
