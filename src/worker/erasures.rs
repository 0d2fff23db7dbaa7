//! Re-applies the erasures of the last days (the daily Cron Trigger, with retention): an event
//! a visitor sent just before being erased may still have been in the queue, and lands after
//! the deletion ran. Each recorded erasure is deleted again until its KV record expires.

use super::{clickhouse_sink, config};
use crate::visitors;
use worker::{console_error, console_log, Env};

pub async fn reapply(env: &Env) {
    match run(env).await {
        Ok(0) => {}
        Ok(n) => console_log!("erasures: re-applied {n} recent erasure(s)"),
        Err(e) => console_error!("erasures: {e}"),
    }
}

async fn run(env: &Env) -> Result<usize, String> {
    let cfg = config::clickhouse(env, crate::clickhouse::Role::Maintainer);
    cfg.check_names()?;
    let kv = env.kv(config::ERASURES_KV).map_err(|e| e.to_string())?;
    let mut cursor: Option<String> = None;
    let mut done = 0;
    loop {
        let mut list = kv.list();
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await.map_err(|e| format!("could not list erasures: {e}"))?;
        for key in &page.keys {
            let Some((project, visitor)) = visitors::parse_erasure_key(&key.name) else { continue };
            clickhouse_sink::query(&cfg, &visitors::erase_sql(&cfg.database, &cfg.table, &project, &visitor)).await?;
            done += 1;
        }
        match page.cursor {
            Some(c) if !page.list_complete => cursor = Some(c),
            _ => return Ok(done),
        }
    }
}
