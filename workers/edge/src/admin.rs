//! The admin endpoints' gate (`Authorization: Bearer <ADMIN_TOKEN>`, compared in constant
//! time by `millimetric_core::keys::auth::admin`) and `GET /admin/config-check`.

use super::{config, http};
use worker::{console_error, Env, Request, Response};

/// None when the request carries the ADMIN_TOKEN; else the 401 to answer with.
pub fn refuse_unless_admin(req: &Request, env: &Env) -> Option<Response> {
    let given = req.headers().get("Authorization").ok().flatten();
    millimetric_core::keys::auth::admin(config::var(env, "ADMIN_TOKEN").as_deref(), given.as_deref()).err().map(|e| http::error(&e, None))
}

/// Some(429) when this address has made more admin requests this minute than the
/// ADMIN_RATE_LIMITER binding allows (30, wrangler.toml), counted before the token is checked,
/// so a wrong guess and a right one cost the same. Keyed by a salted hash of the address.
/// Without a safe salt (a misconfigured deployment, which config-check reports) every address
/// shares one bucket: limited all the same, never unlimited.
pub async fn limit_admin(req: &Request, env: &Env) -> Option<Response> {
    let ip = req.headers().get("CF-Connecting-IP").ok().flatten()?;
    let bucket = match config::ip_hash_salt(env) {
        Ok(salt) => format!("admin:{}", millimetric_core::rate_limit::ip_limit_key(&salt, &ip)),
        Err(_) => "admin:unsalted".to_string(),
    };
    let limiter = env.rate_limiter("ADMIN_RATE_LIMITER").ok()?;
    let outcome = limiter.limit(bucket).await.ok()?;
    (!outcome.success).then(|| http::rate_limited(&millimetric_core::rate_limit::too_many_requests("client address", 60), 60, None))
}

/// The isolate's counts of billable operations (millimetric_adapters::meter), for `bench/cost`:
/// in local development only, where one isolate serves everything.
pub fn meter(req: &Request, env: &Env) -> Response {
    if let Some(refused) = refuse_unless_admin(req, env) {
        return refused;
    }
    if !config::is_local_development(env) {
        return http::error(
            &millimetric_core::error::ApiError::new(404, "not_found", "The meter is only kept in local development."),
            None,
        );
    }
    http::json(200, &millimetric_adapters::meter::snapshot().to_string(), None)
}

/// Every configuration check as JSON (`millimetric_core::config_check::report`): 200 when none failed,
/// 503 when one did, so `curl -f` after a deploy fails loudly. No secret values in it.
pub fn config_check(req: &Request, env: &Env) -> Response {
    if let Some(refused) = refuse_unless_admin(req, env) {
        return refused;
    }
    let report = config::report(env);
    for c in report.checks.iter().filter(|c| c.status == millimetric_core::config_check::Status::Fail) {
        console_error!("config check failed: {}: {}", c.name, c.detail);
    }
    let body = serde_json::to_string(&report).unwrap_or_default();
    http::json(if report.ok { 200 } else { 503 }, &body, None)
}
