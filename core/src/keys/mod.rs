//! API keys: their kinds, how they are stored (by SHA-256, never raw), their records, and
//! which browser origins a record allows. Who may do what with a key: `crate::keys::auth`.

pub mod admin;
pub mod auth;
pub mod cache;

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
    /// Publishable keys: the site domains Plausible's Events API names this key's project by
    /// (`d`), lower case (`normalize_domain`). KV also holds `domain_index_key(d)` → this key's hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

/// Where KV `KEYS` holds the hash of the key that registered `domain`.
pub fn domain_index_key(domain: &str) -> String {
    format!("domain:{domain}")
}

/// A site domain as Plausible's script sends it (`example.com`, `shop.example.co.uk`): lower
/// case, no scheme, port or path, labels of letters, digits and hyphens. None for anything else.
pub fn normalize_domain(d: &str) -> Option<String> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (d.len() <= 253 && d.split('.').all(label_ok)).then_some(d)
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
            domains: vec![],
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
    /// The project's time zone setting, for the read side's days (None: UTC).
    pub timezone: Option<String>,
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
            timezone: None,
        }
    }
}

/// Whether a request carries an Origin header in the sense that matters for keys: present and
/// not blank. `null` counts (a browser sent it); an empty header is not one a browser sends.
pub fn origin_present(origin: Option<&str>) -> bool {
    origin.is_some_and(|o| !o.trim().is_empty())
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
}
