//! Key lifecycle, decided here (the admin API `/admin/keys` and `cargo run --bin keys` are its
//! callers): create a project's keys (the raw key shown once, only its SHA-256 stored), rotate
//! (a new key with the same settings; the old one keeps working for a stated grace period,
//! then is refused), revoke at once, list (hashes and settings, never raw keys), and set a
//! key's allowed origins, limit, retention, hash routing and time zone.

use crate::error::ApiError;
use crate::keys::{key_hash, KeyKind, KeyRecord, RETENTION_CHOICES};
use serde::Deserialize;
use serde_json::{json, Value};

/// The longest grace a rotation may give the old key.
pub const MAX_GRACE_SECONDS: u64 = 30 * 86_400;
pub const DEFAULT_GRACE_SECONDS: u64 = 86_400;

/// How long a revocation takes to reach every isolate, as before this API existed: each
/// isolate caches a key record for 60 s (adapters::key_lookup), after KV's own edge cache of
/// 60 s (`cache_ttl(60)`). KV's propagation of the write to other locations comes on top
/// (Cloudflare documents it as up to 60 s). Locally the isolate's 60 s is what shows
/// (tests/e2e_keys.rs measures it).
pub const REVOCATION_BOUND_SECONDS: u64 = 120;

fn bad(code: &'static str, m: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, m)
}

/// The settings a key carries; absent fields stay as they are.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub allowed_origins: Option<Vec<String>>,
    /// Browser keys: whether `Origin: null` (sandboxed iframes, file:// pages) is taken.
    pub allow_null_origin: Option<bool>,
    pub retention_days: Option<u16>,
    pub hash_routing: Option<bool>,
    /// null: the service default.
    #[serde(default, deserialize_with = "some")]
    pub events_per_minute: Option<Option<u32>>,
    #[serde(default, deserialize_with = "some")]
    pub timezone: Option<Option<String>>,
    /// Browser keys: the site domains Plausible's Events API finds the project by.
    pub domains: Option<Vec<String>>,
}

fn some<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An origin entry the matcher can use (keys::normalize_origin), so none is kept that would
/// silently match nothing (`https://user@x.com`, `https://x.com?q`).
fn check_origin(o: &str) -> bool {
    o == "*" || crate::keys::normalize_origin(o).is_some()
}

impl Settings {
    pub fn check(&self) -> Result<(), ApiError> {
        if let Some(os) = &self.allowed_origins {
            if os.len() > 50 {
                return Err(bad("invalid_settings", "`allowed_origins` takes at most 50 origins."));
            }
            if let Some(o) = os.iter().find(|o| !check_origin(o)) {
                return Err(bad(
                    "invalid_settings",
                    format!(
                        "`allowed_origins` has `{}`; an origin is scheme://host[:port] (https://*.example.com for subdomains, * for any).",
                        o.chars().take(80).collect::<String>()
                    ),
                ));
            }
        }
        if let Some(ds) = &self.domains {
            if ds.len() > 50 {
                return Err(bad("invalid_settings", "`domains` takes at most 50 domains."));
            }
            if let Some(d) = ds.iter().find(|d| crate::keys::normalize_domain(d).is_none()) {
                return Err(bad(
                    "invalid_settings",
                    format!(
                        "`domains` has `{}`; a domain is a host name such as example.com, with no scheme, port or path.",
                        d.chars().take(80).collect::<String>()
                    ),
                ));
            }
        }
        if self.retention_days.is_some_and(|d| !RETENTION_CHOICES.contains(&d)) {
            return Err(bad("invalid_settings", "`retention_days` is 30, 90 or 365."));
        }
        if let Some(Some(n)) = self.events_per_minute {
            if !(1..=100_000_000).contains(&n) {
                return Err(bad("invalid_settings", "`events_per_minute` is 1 to 100000000, or null for the default."));
            }
        }
        // The shape of an IANA name only: the time zone database is the read Worker's (the
        // edge Worker, which serves this API, links none of it). A project zone the read side
        // cannot find answers in UTC (query::plan).
        if let Some(Some(tz)) = &self.timezone {
            let shaped = !tz.is_empty() && tz.len() <= 64 && tz.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
            if !shaped {
                return Err(bad(
                    "invalid_settings",
                    format!(
                        "`timezone` `{}` is not an IANA time zone name such as Europe/Berlin.",
                        tz.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn apply(&self, r: &mut KeyRecord) {
        if let Some(o) = &self.allowed_origins {
            r.allowed_origins = o.clone();
        }
        if let Some(n) = self.allow_null_origin {
            r.allow_null_origin = n;
        }
        if let Some(d) = self.retention_days {
            r.retention_days = d;
        }
        if let Some(h) = self.hash_routing {
            r.hash_routing = h;
        }
        if let Some(n) = self.events_per_minute {
            r.events_per_minute = n;
        }
        if let Some(tz) = &self.timezone {
            r.timezone = tz.clone();
        }
        if let Some(ds) = &self.domains {
            let mut ds: Vec<String> = ds.iter().filter_map(|d| crate::keys::normalize_domain(d)).collect();
            ds.sort();
            ds.dedup();
            r.domains = ds;
        }
    }
}

/// The domain index entries a change of record `before` → `after` (None: a new key) adds and
/// removes. Only a live publishable key may register domains: Plausible's script carries no key.
pub fn domain_changes(before: Option<&KeyRecord>, after: &KeyRecord) -> Result<(Vec<String>, Vec<String>), ApiError> {
    if !after.domains.is_empty() && after.kind != KeyKind::Publishable {
        return Err(bad("invalid_settings", "`domains` are for pk_live_ (browser) keys: Plausible's script sends its events with no key."));
    }
    let old: &[String] = before.map(|b| b.domains.as_slice()).unwrap_or_default();
    let live = if after.revoked { &[][..] } else { after.domains.as_slice() };
    let added = live.iter().filter(|d| !old.contains(d)).cloned().collect();
    let removed = old.iter().filter(|d| !live.contains(d)).cloned().collect();
    Ok((added, removed))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    project_id: String,
    kinds: Option<Vec<String>>,
    #[serde(flatten)]
    settings: FlatSettings,
}

#[derive(Deserialize, Default)]
struct FlatSettings {
    allowed_origins: Option<Vec<String>>,
    allow_null_origin: Option<bool>,
    retention_days: Option<u16>,
    hash_routing: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    events_per_minute: Option<Option<u32>>,
    #[serde(default, deserialize_with = "some")]
    timezone: Option<Option<String>>,
    domains: Option<Vec<String>>,
}

pub fn kind_name(k: KeyKind) -> &'static str {
    match k {
        KeyKind::Publishable => "publishable",
        KeyKind::Secret => "secret",
        KeyKind::ReadOnly => "read_only",
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad("invalid_body", format!("The body does not read ({e}). See docs/keys.md.")))
}

/// What a project id may be: 1 to 64 letters, digits, `_` or `-` (it appears in KV keys and SQL).
pub fn is_project_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `POST /admin/keys`: which project, which kinds (default: all three), and their settings.
pub fn parse_create(body: &[u8]) -> Result<(String, Vec<KeyKind>, Settings), ApiError> {
    let b: CreateBody = parse_json(body)?;
    if !is_project_id(&b.project_id) {
        return Err(bad("invalid_project", "`project_id` is 1 to 64 letters, digits, `_` or `-`."));
    }
    let kinds = match b.kinds {
        None => vec![KeyKind::Publishable, KeyKind::Secret, KeyKind::ReadOnly],
        Some(ks) => ks
            .iter()
            .map(|k| match k.as_str() {
                "publishable" => Ok(KeyKind::Publishable),
                "secret" => Ok(KeyKind::Secret),
                "read_only" => Ok(KeyKind::ReadOnly),
                other => Err(bad("invalid_settings", format!("`kinds` has `{other}`; use publishable, secret, read_only."))),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if kinds.iter().enumerate().any(|(i, k)| kinds[..i].contains(k)) {
        return Err(bad("invalid_settings", "`kinds` names a kind twice; a request creates one key of each kind it names."));
    }
    let f = b.settings;
    let s = Settings {
        allowed_origins: f.allowed_origins,
        allow_null_origin: f.allow_null_origin,
        retention_days: f.retention_days,
        hash_routing: f.hash_routing,
        events_per_minute: f.events_per_minute,
        timezone: f.timezone,
        domains: f.domains,
    };
    s.check()?;
    Ok((b.project_id, kinds, s))
}

pub fn parse_settings(body: &[u8]) -> Result<Settings, ApiError> {
    let s: Settings = parse_json(body)?;
    s.check()?;
    Ok(s)
}

/// `POST /admin/keys/{hash}/rotate` `{"grace_seconds": N}` (default a day, at most 30 days).
pub fn parse_grace(body: &[u8]) -> Result<u64, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DEFAULT_GRACE_SECONDS);
    }
    let v: Value = parse_json(body)?;
    match v.get("grace_seconds") {
        None => Ok(DEFAULT_GRACE_SECONDS),
        Some(g) => g
            .as_u64()
            .filter(|g| *g <= MAX_GRACE_SECONDS)
            .ok_or_else(|| bad("invalid_settings", format!("`grace_seconds` is 0 to {MAX_GRACE_SECONDS}."))),
    }
}

/// A new raw key: the kind's prefix and 32 base-62 characters from 24 random bytes (190 bits).
pub fn new_raw_key(kind: KeyKind, random: &[u8; 24]) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let prefix = match kind {
        KeyKind::Publishable => "pk_live_",
        KeyKind::Secret => "sk_live_",
        KeyKind::ReadOnly => "rk_live_",
    };
    // 24 bytes as a big number, 32 base-62 digits (62^32 > 2^190).
    let mut n: Vec<u8> = random.to_vec();
    let mut digits = Vec::with_capacity(32);
    for _ in 0..32 {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | *b as u32;
            *b = (cur / 62) as u8;
            rem = cur % 62;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    format!("{prefix}{}", String::from_utf8(digits).expect("ascii"))
}

pub fn new_record(project_id: &str, kind: KeyKind, s: &Settings) -> KeyRecord {
    let mut r = KeyRecord::new(project_id, kind);
    s.apply(&mut r);
    if kind != KeyKind::Publishable {
        r.domains.clear(); // a project's create names its site's domains for its browser key
    }
    r
}

/// Rotation: the old record with its end set `grace_seconds` from now (or sooner if it had
/// one), and a new record with the same settings.
pub fn rotate(old: &KeyRecord, now_ms: i64, grace_seconds: u64) -> (KeyRecord, KeyRecord) {
    let until = now_ms + grace_seconds as i64 * 1000;
    let mut ending = old.clone();
    ending.expires_at_ms = Some(ending.expires_at_ms.map_or(until, |t| t.min(until)));
    ending.domains.clear(); // the new key takes over the project's domains at once
    let mut fresh = old.clone();
    fresh.expires_at_ms = None;
    fresh.revoked = false;
    (ending, fresh)
}

/// A record as the listing shows it: its hash and settings, never a raw key.
pub fn listed(hash: &str, r: &KeyRecord) -> Value {
    json!({
        "hash": hash, "project_id": r.project_id, "kind": kind_name(r.kind), "revoked": r.revoked,
        "expires_at_ms": r.expires_at_ms, "allowed_origins": r.allowed_origins, "allow_null_origin": r.allow_null_origin, "retention_days": r.retention_days,
        "hash_routing": r.hash_routing, "events_per_minute": r.events_per_minute, "timezone": r.timezone, "domains": r.domains,
    })
}

/// A created key as the answer shows it once: the raw key and its hash.
pub fn created(raw: &str, r: &KeyRecord) -> Value {
    let mut v = listed(&key_hash(raw), r);
    v["key"] = json!(raw);
    v
}

/// A key as it stands now (`keys::effective`: a rotated-out key past its grace is revoked) may
/// be changed (its settings, or rotated) only while it works: a revoked key's settings would
/// point a site at a dead key, and writing its record back could undo the revocation.
pub fn changeable(now: &KeyRecord) -> Result<(), ApiError> {
    if now.revoked {
        return Err(ApiError::bad_request(
            "invalid_settings",
            "This key is revoked (or past its grace): create a new key instead of changing or rotating it.",
        ));
    }
    Ok(())
}

/// The KV metadata stored with a key record: its project, so a project's keys are found from
/// a listing (`records_to_read`) without reading every record.
pub fn kv_metadata(r: &KeyRecord) -> Value {
    json!({ "project_id": r.project_id })
}

/// The KV key of the label a listing leaves for a key record written without metadata
/// (before it was stored): the record's project as the label's metadata. A label, never the
/// record, is written, so labelling cannot undo a revocation that lands meanwhile.
pub fn label_key(hash: &str) -> String {
    format!("label:{hash}")
}

/// Of a KV listing's entries (name, metadata), the key records to read for `project`: those
/// whose metadata, or whose label's (`label_key`), names it (`ours`), and those with neither
/// (`unlabelled`, written before metadata was), which must be read to know, and labelled.
pub fn records_to_read(entries: &[(String, Option<Value>)], project: &str) -> RecordsToRead {
    let project_of = |meta: &Option<Value>| meta.as_ref().and_then(|m| m.get("project_id")).and_then(Value::as_str).map(str::to_string);
    let labels: std::collections::HashMap<&str, String> =
        entries.iter().filter_map(|(name, meta)| Some((name.strip_prefix("label:")?, project_of(meta)?))).collect();
    let mut out = RecordsToRead::default();
    for (name, meta) in entries.iter().filter(|(name, _)| check_hash(name).is_ok()) {
        match project_of(meta).or_else(|| labels.get(name.as_str()).cloned()) {
            Some(p) if p == project => out.ours.push(name.clone()),
            Some(_) => {}
            None => out.unlabelled.push(name.clone()),
        }
    }
    out
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecordsToRead {
    pub ours: Vec<String>,
    pub unlabelled: Vec<String>,
}

/// Unlabelled key records read (and labelled) per call at most: with the listing's pages and
/// the project's own records, within a Worker invocation's 1,000 KV operations, twice over (the
/// daily job may list two projects' keys in one invocation). A namespace with more answers 503
/// after labelling this many, and its next call goes on from there.
pub const UNLABELLED_PER_CALL: usize = 200;

/// A key hash as a path segment: 64 lowercase hex digits.
pub fn check_hash(s: &str) -> Result<&str, ApiError> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(s)
    } else {
        Err(ApiError::new(404, "unknown_key", "No key has that hash; list the project's keys with GET /admin/keys?project_id=..."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listing a project's keys reads only that project's records: a namespace of many
    /// projects' keys costs one list page a thousand entries, not a read each (a Worker
    /// invocation may make 1,000 KV operations; a deployment of 330 projects once passed that,
    /// and a project's deletion failed before it revoked anything).
    #[test]
    fn a_projects_keys_are_found_by_their_metadata() {
        let shop = KeyRecord::new("shop", KeyKind::Secret);
        let other = KeyRecord::new("other", KeyKind::Secret);
        let mut entries: Vec<(String, Option<Value>)> =
            (0..5_000).map(|i| (key_hash(&format!("sk_live_other_{i}")), Some(kv_metadata(&other)))).collect();
        entries.push((key_hash("sk_live_shop_1"), Some(kv_metadata(&shop))));
        entries.push((key_hash("sk_live_legacy_1"), None)); // written before metadata: read to know
        entries.push(("quota:shop".into(), None)); // not a key record
        entries.push((key_hash("sk_live_odd_1"), Some(json!("not ours"))));
        // Written before metadata, then labelled by an earlier listing: found by its label.
        entries.push((key_hash("sk_live_labelled_1"), None));
        entries.push((label_key(&key_hash("sk_live_labelled_1")), Some(kv_metadata(&shop))));
        entries.push((key_hash("sk_live_labelled_2"), None));
        entries.push((label_key(&key_hash("sk_live_labelled_2")), Some(kv_metadata(&other))));
        let read = records_to_read(&entries, "shop");
        assert_eq!(read.ours, [key_hash("sk_live_shop_1"), key_hash("sk_live_labelled_1")]);
        assert_eq!(read.unlabelled, [key_hash("sk_live_legacy_1"), key_hash("sk_live_odd_1")]);
    }

    #[test]
    fn create_parses_checks_and_shows_the_raw_key_once() {
        let (p, kinds, s) = parse_create(br#"{"project_id":"shop","allowed_origins":["https://shop.example","https://*.shop.example"],"retention_days":30,"timezone":"europe/berlin"}"#).unwrap();
        assert_eq!((p.as_str(), kinds.len()), ("shop", 3));
        let raw = new_raw_key(KeyKind::Publishable, &[7u8; 24]);
        assert!(raw.starts_with("pk_live_") && raw.len() == 40 && KeyKind::from_prefix(&raw) == Some(KeyKind::Publishable), "{raw}");
        assert_ne!(raw, new_raw_key(KeyKind::Publishable, &[8u8; 24]));
        let r = new_record(&p, KeyKind::Publishable, &s);
        assert_eq!((r.retention_days, r.timezone.as_deref()), (30, Some("europe/berlin")), "kept as given; the read side resolves it");
        let shown = created(&raw, &r);
        assert_eq!(shown["key"], raw);
        assert_eq!(shown["hash"], key_hash(&raw));
        assert!(!listed(&key_hash(&raw), &r).to_string().contains(&raw), "a listing never holds the raw key");
        for (body, code) in [
            (r#"{"project_id":"bad id"}"#, "invalid_project"),
            (r#"{"project_id":"p","retention_days":60}"#, "invalid_settings"),
            (r#"{"project_id":"p","allowed_origins":["example.com"]}"#, "invalid_settings"),
            (r#"{"project_id":"p","allowed_origins":["https://user@x.com"]}"#, "invalid_settings"),
            (r#"{"project_id":"p","allowed_origins":["https://x.com?q"]}"#, "invalid_settings"),
            (r#"{"project_id":"p","kinds":["admin"]}"#, "invalid_settings"),
            // one key of a kind a request: two browser keys would both claim its sites
            (r#"{"project_id":"p","kinds":["publishable","publishable"],"domains":["shop.example"]}"#, "invalid_settings"),
            (r#"{"project_id":"p","timezone":"Mars Base; DROP"}"#, "invalid_settings"),
            (r#"{"project_id":"p","owner":"x"}"#, "invalid_body"),
        ] {
            assert_eq!(parse_create(body.as_bytes()).unwrap_err().code, code, "{body}");
        }
    }

    #[test]
    fn rotation_keeps_the_old_key_for_its_grace_then_not() {
        let s = Settings { events_per_minute: Some(Some(500)), ..Default::default() };
        let old = new_record("shop", KeyKind::Secret, &s);
        let now = 1_796_032_800_000;
        let (ending, fresh) = rotate(&old, now, 3600);
        assert_eq!(ending.expires_at_ms, Some(now + 3_600_000));
        assert_eq!((fresh.expires_at_ms, fresh.events_per_minute), (None, Some(500)));
        assert!(!crate::keys::effective(ending.clone(), now + 3_599_999).revoked, "still good within the grace");
        assert!(crate::keys::effective(ending.clone(), now + 3_600_000).revoked, "refused once it ends");
        // Rotating again never lengthens an ending key's life.
        let (again, _) = rotate(&ending, now, 7200);
        assert_eq!(again.expires_at_ms, Some(now + 3_600_000));
        assert_eq!(parse_grace(b"").unwrap(), DEFAULT_GRACE_SECONDS);
        assert_eq!(parse_grace(br#"{"grace_seconds":0}"#).unwrap(), 0);
        assert!(parse_grace(br#"{"grace_seconds":99999999}"#).is_err());
        assert_eq!(check_hash("xyz").unwrap_err().status, 404);
        let mut set = old.clone();
        parse_settings(br#"{"allowed_origins":["*"],"events_per_minute":null,"hash_routing":true}"#).unwrap().apply(&mut set);
        assert_eq!((set.allowed_origins, set.events_per_minute, set.hash_routing), (vec!["*".to_string()], None, true));
    }

    #[test]
    fn domains_are_a_browser_keys_and_their_index_follows_every_change() {
        let s = parse_settings(br#"{"domains":["Shop.Example.com","example.com","example.com"]}"#).unwrap();
        let pk = new_record("p", KeyKind::Publishable, &s);
        assert_eq!(pk.domains, vec!["example.com".to_string(), "shop.example.com".to_string()]);
        assert!(new_record("p", KeyKind::Secret, &s).domains.is_empty());
        assert_eq!(domain_changes(None, &pk).unwrap(), (pk.domains.clone(), vec![]));
        let mut moved = pk.clone();
        moved.domains = vec!["example.com".into(), "new.com".into()];
        assert_eq!(domain_changes(Some(&pk), &moved).unwrap(), (vec!["new.com".to_string()], vec!["shop.example.com".to_string()]));
        let revoked = KeyRecord { revoked: true, ..moved.clone() };
        assert_eq!(domain_changes(Some(&moved), &revoked).unwrap().1, moved.domains);
        let sk = KeyRecord { domains: vec!["a.com".into()], ..KeyRecord::new("p", KeyKind::Secret) };
        assert_eq!(domain_changes(None, &sk).unwrap_err().code, "invalid_settings");
        for bad in ["https://a.com", "a.com:8080", "a.com/x", "", "a..com"] {
            assert_eq!(parse_settings(format!(r#"{{"domains":["{bad}"]}}"#).as_bytes()).unwrap_err().code, "invalid_settings", "{bad}");
        }
        let (ending, fresh) = rotate(&pk, 0, 60);
        assert!(ending.domains.is_empty() && fresh.domains == pk.domains);
    }
}
