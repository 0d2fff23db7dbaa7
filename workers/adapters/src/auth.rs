//! The one way every route that takes a key learns who is asking: the credential parsed
//! (`millimetric_core::keys::auth::bearer`, or the body's `key` on ingest), the cheap per-address refusal before
//! any key-store read (so a flood of made-up keys costs a bounded number of reads), the key
//! looked up, and the core's policy asked (`millimetric_core::keys::auth`).

use super::key_lookup::{ip_refusal, lookup_key};
use millimetric_core::error::ApiError;
use millimetric_core::keys::auth::{self, Route};
use millimetric_core::keys::{self, Principal};
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
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let authorization = header("Authorization");
    let raw_key = auth::bearer(authorization.as_deref()).or(body_key);
    let claimed = auth::claim(route, raw_key)?;
    let key_hash = keys::key_hash(raw_key.unwrap_or_default());
    // The connecting address: used for the per-address limit (hashed) and nothing else; it is
    // not passed on, stored or logged.
    let client_ip = header("CF-Connecting-IP");
    if let Some(wait) = ip_refusal(env, claimed, &key_hash, client_ip.as_deref()).await? {
        return Err(rate_limit::too_many("client address", wait));
    }
    drop(client_ip);
    let record = lookup_key(env, &key_hash).await?;
    let principal = auth::authorize(route, claimed, record, header("Origin").as_deref())?;
    Ok(Caller { principal, key_hash })
}
