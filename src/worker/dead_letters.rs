//! The dead-letter queue's consumer keeps each dead message in KV (with its reason, 30 days)
//! and logs it; `GET /admin/dead-letters` lists them for an operator holding ADMIN_TOKEN
//! (checked by `super::admin`).

use super::{config, http};
use crate::row::{Failure, RowBatch};
use worker::*;

const PREFIX: &str = "dlq:";
const KEEP_SECONDS: u64 = 30 * 24 * 3600;

pub async fn consume(batch: MessageBatch<String>, env: &Env) -> Result<()> {
    let kv = env.kv(config::DEAD_LETTERS_KV)?;
    for m in batch.messages()? {
        let mut body = RowBatch::from_message(m.body())
            .unwrap_or_else(|reason| RowBatch { rows: vec![], failure: Some(Failure { code: None, reason }) });
        let failure = body.failure.get_or_insert_with(|| Failure {
            code: None,
            reason: "retried until the queue's max_retries without being stored".into(),
        });
        console_error!(
            "dead letter: {} rows not stored: code {:?}: {}",
            body.rows.len(),
            failure.code,
            failure.reason
        );
        let key = format!("{PREFIX}{:013}:{}", m.timestamp().as_millis(), m.id());
        let stored = match kv.put(&key, serde_json::to_string(&body)?) {
            Ok(put) => put.expiration_ttl(KEEP_SECONDS).execute().await.map_err(Error::from),
            Err(e) => Err(Error::from(e)),
        };
        match stored {
            Ok(()) => m.ack(),
            Err(e) => {
                console_error!("dead letter: could not keep it in KV ({e}); retrying");
                m.retry();
            }
        }
    }
    Ok(())
}

pub async fn list(req: Request, env: &Env) -> Result<Response> {
    if let Some(refused) = super::admin::refuse_unless_admin(&req, env) {
        return Ok(refused);
    }
    let kv = env.kv(config::DEAD_LETTERS_KV)?;
    let keys = kv.list().prefix(PREFIX.to_string()).execute().await?;
    let mut items = Vec::new();
    for k in keys.keys {
        if let Some(v) = kv.get(&k.name).json::<RowBatch>().await? {
            items.push(serde_json::json!({ "id": k.name, "failure": v.failure, "rows": v.rows }));
        }
    }
    let body = serde_json::json!({ "dead_letters": items }).to_string();
    Ok(http::json(200, &body, None))
}
