//! Who a key is: its KV record (through the isolate's cache), and the per-IP check that runs
//! before KV is read for a key the isolate does not know as valid. Shared by every Worker.

use super::config;
use millimetric_core::error::ApiError;
use millimetric_core::keys::cache::{Cached, KeyCache};
use millimetric_core::keys::{self, KeyKind, KeyRecord};
use millimetric_core::rate_limit::{self, unkeyed::RefusedAddresses};
use worker::{Date, Env, Request};

/// A 503 for a store or binding that did not answer: the client retries.
pub fn unavailable(what: &str) -> ApiError {
    ApiError::new(
        503,
        "temporarily_unavailable",
        format!("{what} is briefly unavailable. Retry the same request (with the same event ids) shortly."),
    )
}

/// Known keys an isolate caches, and (apart, so a flood of these never evicts those) unknown.
const MAX_KNOWN_KEYS: usize = 10_000;
const MAX_UNKNOWN_KEYS: usize = 10_000;

thread_local! {
    /// Site domains (Plausible's `d`) to the hash of the key that registered them, kept as key
    /// records are (`keys::cache`).
    static DOMAIN_CACHE: std::cell::RefCell<KeyCache<String>> =
        std::cell::RefCell::new(KeyCache::new(MAX_KNOWN_KEYS, MAX_UNKNOWN_KEYS));
    /// Key records by key hash: KV is itself eventually consistent over about a minute, so an
    /// isolate need not read it for every request (TTLs and eviction: millimetric_core::keys::cache).
    static KEY_CACHE: std::cell::RefCell<KeyCache<KeyRecord>> =
        std::cell::RefCell::new(KeyCache::new(MAX_KNOWN_KEYS, MAX_UNKNOWN_KEYS));
}

/// Some(retry_after_s) when the per-IP limit refuses the request, checked only where
/// `rate_limit::ip_limit_applies` says so. The limiter sees a salted hash of the address, never
/// the address. Fails open when the binding is missing or errs. Err: outside local development
/// the salt is unsafe (503 config_error naming IP_HASH_SALT, logged like every 5xx): an IP is
/// never hashed with a default salt.
pub async fn ip_refusal(env: &Env, claimed: KeyKind, hash: &str, client_ip: Option<&str>) -> std::result::Result<Option<u32>, ApiError> {
    let cached = cached_now(hash);
    let Some(ip) = client_ip.filter(|_| rate_limit::ip_limit_applies(claimed, &cached)) else {
        return Ok(None);
    };
    let limit_key = rate_limit::ip_limit_key(&config::ip_hash_salt(env)?, ip);
    let Some(limiter) = env.rate_limiter(config::IP_RATE_LIMITER).ok() else { return Ok(None) };
    let Some(outcome) = limiter.limit(limit_key.clone()).await.ok() else { return Ok(None) };
    Ok((!outcome.success).then(|| over_the_limit(limit_key)))
}

/// An address the per-IP limit just refused: its next requests are refused before their
/// bodies are read, as after refusals without a key (`rate_limit::unkeyed`), so a flood of
/// bodies with made-up or public keys is not read in full to be refused after. Some(60).
fn over_the_limit(address: String) -> u32 {
    let now = Date::now().as_millis() as i64;
    UNKEYED_REFUSED.with(|r| r.borrow_mut().refuse(address, now));
    60
}

thread_local! {
    /// Addresses the per-IP limit refused for requests made before any key was known
    /// (`rate_limit::unkeyed`): refused before their bodies are read, for a minute.
    static UNKEYED_REFUSED: std::cell::RefCell<RefusedAddresses> = const { std::cell::RefCell::new(RefusedAddresses::new()) };
}

/// What the isolate's cache holds for key `hash`, as the record stands now: a rotated-out key
/// past its grace is no longer a valid key.
fn cached_now(hash: &str) -> Cached<KeyRecord> {
    let now = Date::now().as_millis() as i64;
    match KEY_CACHE.with(|c| c.borrow().get(hash, now)) {
        Cached::Known(r) => Cached::Known(keys::effective(r, now)),
        other => other,
    }
}

/// Before a request's body is read: Some(seconds left) when the per-IP limit refused its
/// address lately (`rate_limit::unkeyed`). Its headers are read, and its address hashed, only
/// while some address is refused, so other requests pay nothing; a request whose header names
/// a secret key held as valid is never held back.
pub fn refused_before_the_body(env: &Env, req: &Request) -> Option<u32> {
    let now = Date::now().as_millis() as i64;
    if UNKEYED_REFUSED.with(|r| r.borrow().none_refused(now)) || known_secret_in_header(req) {
        return None;
    }
    let address = rate_limit::ip_limit_key(&config::ip_hash_salt(env).ok()?, &header(req, "CF-Connecting-IP")?);
    UNKEYED_REFUSED.with(|r| r.borrow().refused(&address, now))
}

/// After a refusal made before any key was known: one more in the address's per-IP limit;
/// over it, the address is refused before its body is read for a minute. Not for a request
/// whose header names a secret key held as valid. Fails open, as `ip_refusal` does.
pub async fn count_unkeyed_refusal(env: &Env, req: &Request) {
    let (Some(ip), Ok(salt)) = (header(req, "CF-Connecting-IP"), config::ip_hash_salt(env)) else { return };
    if known_secret_in_header(req) {
        return;
    }
    let address = rate_limit::ip_limit_key(&salt, &ip);
    let Some(limiter) = env.rate_limiter(config::IP_RATE_LIMITER).ok() else { return };
    if limiter.limit(address.clone()).await.is_ok_and(|o| !o.success) {
        over_the_limit(address);
    }
}

/// Whether the request's `Authorization` names a secret key this isolate holds as valid: one
/// the per-IP limit never counts (`rate_limit::ip_limit_applies`). A made-up key is not.
fn known_secret_in_header(req: &Request) -> bool {
    let Some(key) = rate_limit::unkeyed::secret_key_in_header(header(req, "Authorization").as_deref()) else { return false };
    !rate_limit::ip_limit_applies(KeyKind::Secret, &cached_now(&keys::key_hash(&key)))
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Some(retry_after_s) when the per-IP limit refuses `units` more from the connecting address
/// (a browser key's batch counts each event: `rate_limit::ip_units`, beyond the one
/// `ip_refusal` counted). Fails open, as `ip_refusal` does.
pub async fn ip_refusal_for_more(env: &Env, client_ip: Option<&str>, units: u32) -> std::result::Result<Option<u32>, ApiError> {
    let Some(ip) = client_ip.filter(|_| units > 0) else { return Ok(None) };
    let limit_key = rate_limit::ip_limit_key(&config::ip_hash_salt(env)?, ip);
    let Some(limiter) = env.rate_limiter(config::IP_RATE_LIMITER).ok() else { return Ok(None) };
    let outcomes = futures_util::future::join_all((0..units).map(|_| limiter.limit(limit_key.clone()))).await;
    Ok(outcomes.iter().any(|o| o.as_ref().is_ok_and(|o| !o.success)).then(|| over_the_limit(limit_key)))
}

/// The record KV holds under `hash` (the SHA-256 of the raw key), through the isolate's cache,
/// as it stands now (a rotated-out key past its grace reads as revoked: keys::effective).
pub async fn lookup_key(env: &Env, hash: &str) -> std::result::Result<Option<KeyRecord>, ApiError> {
    let now = Date::now().as_millis() as i64;
    let record = cached(&KEY_CACHE, env, hash, |t| serde_json::from_str::<KeyRecord>(&t).ok()).await?;
    Ok(record.map(|r| millimetric_core::keys::effective(r, now)))
}

/// The per-address check for a domain the isolate does not know: as for an unknown key.
pub async fn domain_ip_refusal(env: &Env, index: &str, client_ip: Option<&str>) -> std::result::Result<Option<u32>, ApiError> {
    let now = Date::now().as_millis() as i64;
    if matches!(DOMAIN_CACHE.with(|c| c.borrow().get(index, now)), Cached::Known(_)) {
        return Ok(None);
    }
    ip_refusal(env, KeyKind::Publishable, index, client_ip).await
}

/// The key hash a domain's index entry holds, through the isolate's cache.
pub async fn lookup_domain(env: &Env, index: &str) -> std::result::Result<Option<String>, ApiError> {
    cached(&DOMAIN_CACHE, env, index, parse_domain_entry).await
}

/// A domain index entry: the key's hash (64 hex digits), bare or as a JSON string.
pub fn parse_domain_entry(text: String) -> Option<String> {
    let hash = text.trim().trim_matches('"');
    millimetric_core::keys::admin::check_hash(hash).ok().map(str::to_string)
}

/// What KV `KEYS` holds under `key`, read by `parse`, through `cache`: an isolate need not read
/// KV, itself eventually consistent over about a minute, for every request. A value that does
/// not parse is the key store failing (503), never a key that is not there.
async fn cached<V: Clone>(
    cache: &'static std::thread::LocalKey<std::cell::RefCell<KeyCache<V>>>,
    env: &Env,
    key: &str,
    parse: fn(String) -> Option<V>,
) -> std::result::Result<Option<V>, ApiError> {
    let now = Date::now().as_millis() as i64;
    match cache.with(|c| c.borrow().get(key, now)) {
        Cached::Known(v) => return Ok(Some(v)),
        Cached::Unknown => return Ok(None),
        Cached::Miss => {}
    }
    let kv = env.kv(config::KEYS_KV).map_err(|_| unavailable("The key store"))?;
    crate::meter::add("kv.reads", 1);
    let text = kv.get(key).cache_ttl(60).text().await.map_err(|_| unavailable("The key store"))?;
    let value = match text {
        Some(t) => Some(parse(t).ok_or_else(|| unavailable("The key store"))?),
        None => None,
    };
    cache.with(|c| c.borrow_mut().put(key, value.clone(), now));
    Ok(value)
}
