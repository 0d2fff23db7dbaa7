//! The one way every route that takes a key learns who is asking: the credential parsed
//! (`millimetric_core::keys::auth::presented`: the Bearer token, or the body's `key` on ingest), the cheap per-address refusal before
//! any key-store read (so a flood of made-up keys costs a bounded number of reads), the key
//! looked up, and the core's policy asked (`millimetric_core::keys::auth`).

use super::key_lookup::{domain_ip_refusal, ip_refusal, lookup_domain, lookup_key};
use millimetric_core::error::ApiError;
use millimetric_core::keys::auth::{self, Route};
use millimetric_core::keys::{self, KeyKind, Principal};
use millimetric_core::rate_limit;
use worker::{Env, Request};

/// Who is asking, and the hash their key is stored and limited under (never the key).
pub struct Caller {
    pub principal: Principal,
    pub key_hash: String,
}

/// `body_key`: the key a request body carried (ingest only), used when no Bearer token came.
/// Err: the refusal to answer with (429 from the per-address limit: Retry-After 60).
pub async fn authenticate(req: &Request, env: &Env, route: Route, body_key: Option<&str>) -> Result<Caller, ApiError> {
    let authorization = req.headers().get("Authorization").ok().flatten();
    // White space around a key is not part of it: what is claimed is what is looked up.
    let raw_key = auth::presented(route, authorization.as_deref(), body_key)?.map(str::trim);
    let claimed = auth::claim(route, raw_key)?;
    authenticate_hash(req, env, route, claimed, keys::key_hash(raw_key.unwrap_or_default())).await
}

/// The same decision for a key known by its hash alone: a Plausible event's site domain names
/// the pk_live_ key that registered it (`domain_key`).
pub async fn authenticate_hash(req: &Request, env: &Env, route: Route, claimed: KeyKind, key_hash: String) -> Result<Caller, ApiError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    // The connecting address: used for the per-address limit (hashed) and nothing else; it is
    // not passed on, stored or logged.
    let client_ip = header("CF-Connecting-IP");
    if let Some(wait) = ip_refusal(env, claimed, &key_hash, client_ip.as_deref()).await? {
        return Err(rate_limit::too_many_requests("client address", wait));
    }
    drop(client_ip);
    let record = lookup_key(env, &key_hash).await?;
    let principal = auth::authorize(route, claimed, record, header("Origin").as_deref())?;
    Ok(Caller { principal, key_hash })
}

/// The hash of the pk_live_ key that registered `domain` (KV `KEYS`, `keys::domain_index_key`),
/// through the isolate's cache; a domain not known costs a per-address check before KV is read.
pub async fn domain_key(req: &Request, env: &Env, domain: &str) -> Result<String, ApiError> {
    let index = keys::domain_index_key(domain);
    let client_ip = req.headers().get("CF-Connecting-IP").ok().flatten();
    if let Some(wait) = domain_ip_refusal(env, &index, client_ip.as_deref()).await? {
        return Err(rate_limit::too_many_requests("client address", wait));
    }
    lookup_domain(env, &index).await?.ok_or_else(|| {
        ApiError::bad_request(
            "unknown_domain",
            format!("No project registered the site `{domain}`. Add it to the project's pk_live_ key: `keys set HASH --domains {domain}`."),
        )
    })
}
