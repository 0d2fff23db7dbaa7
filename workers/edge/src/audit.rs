//! The audit log's adapter: records written to KV `AUDIT` (90 days), and `GET /v1/audit`
//! listing a project's records, newest first, a page at a time, with its sk_live_ key.
//! What goes in a record is millimetric_core::privacy::audit's.

use super::key_lookup::unavailable;
use super::{config, http};
use millimetric_adapters::auth::authenticate;
use millimetric_core::error::ApiError;
use millimetric_core::keys::auth::Route;
use millimetric_core::monitor::report::Kind;
use millimetric_core::paging;
use millimetric_core::privacy::audit::{self, Record};
use worker::{console_error, Date, Env, Request, Response};

/// Keep `rec`. A failure to keep it is logged as an alarm; the action it records has happened.
pub async fn write(env: &Env, rec: &Record) {
    let now = Date::now().as_millis() as i64;
    let nonce = js_nonce();
    let result = match env.kv(config::AUDIT_KV) {
        Ok(kv) => match kv.put(&audit::kv_key(&rec.project_id, now, &nonce), serde_json::to_string(rec).unwrap_or_default()) {
            Ok(put) => put.expiration_ttl(audit::KEEP_SECONDS).execute().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        console_error!("ALARM audit_write_failed: {:?} for {} not recorded: {e}", rec.action, rec.project_id);
        millimetric_adapters::monitor::report_later(env, Kind::Alarm, "audit_write_failed", "audit");
    }
}

fn js_nonce() -> String {
    format!("{:08x}", (js_sys::Math::random() * u32::MAX as f64) as u32)
}

pub async fn list(req: Request, env: &Env) -> worker::Result<Response> {
    Ok(match run(&req, env).await {
        Ok(body) => http::json(200, &body, None),
        Err(e) => http::error(&e, None),
    })
}

async fn run(req: &Request, env: &Env) -> Result<String, ApiError> {
    let project = authenticate(req, env, Route::Audit, None).await?.principal.project_id;
    let url = req.url().map_err(|_| ApiError::bad_request("invalid_url", "The request URL could not be read."))?;
    let page = paging::parse_page(url.query(), 50, 100)?;
    let kv = env.kv(config::AUDIT_KV).map_err(|_| unavailable("The audit log"))?;
    let mut list = kv.list().prefix(audit::prefix(&project)).limit(page.limit);
    if let Some(c) = page.cursor {
        list = list.cursor(c);
    }
    let listed = list.execute().await.map_err(|_| unavailable("The audit log"))?;
    let mut records = Vec::new();
    for k in listed.keys {
        if let Some(r) = kv.get(&k.name).json::<Record>().await.map_err(|_| unavailable("The audit log"))? {
            records.push(serde_json::json!({"record": r, "expires": k.expiration}));
        }
    }
    let cursor = if listed.list_complete { None } else { listed.cursor };
    Ok(serde_json::json!({"audit": records, "cursor": cursor, "list_complete": cursor.is_none(), "kept_days": audit::KEEP_SECONDS / 86_400}).to_string())
}
