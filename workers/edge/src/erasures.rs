//! Re-applies the erasures of the last days (the daily Cron Trigger, with retention): an event
//! a visitor sent just before being erased may still have been in the queue, and lands after
//! the deletion ran, or is dead-lettered after it (a replay would store it again). Each
//! recorded erasure is deleted again until its KV record expires: one mutation per project
//! whose erased visitors still have rows (a count first), past any project's failure, then
//! that project's exports (they may hold the rows), and one pass over the dead-letter store,
//! with the failures reported.

use super::{clickhouse_sink, config};
use millimetric_adapters::kv::all_keys;
use millimetric_core::privacy::visitors;
use worker::{console_error, console_log, Env};

pub async fn reapply(env: &Env) {
    match run(env).await {
        Ok((0, failed)) if failed.is_empty() => {}
        Ok((n, failed)) if failed.is_empty() => console_log!("erasures: re-applied {n} recent erasure(s), one mutation per project"),
        Ok((n, failed)) => console_error!(
            "erasures: re-applied {n} recent erasure(s); {} project(s) failed and are tried again tomorrow: {}",
            failed.len(),
            failed.join("; ")
        ),
        Err(e) => console_error!("erasures: {e}"),
    }
}

/// (erasures re-applied, "project: reason" for each project whose mutation failed). One
/// project's failure does not stop the others.
async fn run(env: &Env) -> Result<(usize, Vec<String>), String> {
    let cfg = config::clickhouse(env, millimetric_core::storage::clickhouse::Role::Maintainer);
    cfg.check_names()?;
    let kv = env.kv(config::ERASURES_KV).map_err(|e| e.to_string())?;
    let keys = all_keys(&kv, "").await?;
    let erasures: Vec<_> = keys.iter().filter_map(|k| visitors::parse_erasure_key(k)).collect();
    let mut failed = Vec::new();
    // Projects whose exports are still to go: marked by an earlier run that could not finish.
    let mut exports_due: std::collections::BTreeSet<String> =
        keys.iter().filter_map(|k| visitors::parse_exports_due_key(k)).map(str::to_string).collect();
    for visitors::Deletion { project, of_events, sql } in visitors::erase_many_sql(&cfg.database, &cfg.table, &erasures, 128 * 1024) {
        // Each statement names the visitors it erases: kept out of ClickHouse's query log.
        // Only rows still there, or not known gone, are deleted again (`visitors::deletion_needed`).
        let needed = match visitors::probe_sql(&sql) {
            Some(probe) => visitors::deletion_needed(clickhouse_sink::query_unlogged(&cfg, &probe).await.as_deref()),
            None => true,
        };
        if !needed {
            continue;
        }
        // Events that landed after their visitor's erasure may be in an export made since: the
        // project's exports go too, as on the erasure itself, once the deletion is sent. Marked
        // before it, so that a failure before they are gone is retried tomorrow, when no rows
        // are left to count; a deletion that fails leaves the exports (and its own fresh mark)
        // alone: tomorrow's count finds the rows again.
        let marked_before = exports_due.contains(&project);
        if of_events && !marked_before {
            if let Err(e) = mark_exports_due(&kv, &project).await {
                failed.push(format!("{project}'s exports: {e}"));
            }
        }
        let sent = clickhouse_sink::query_unlogged(&cfg, &sql).await;
        if of_events {
            let (due, unmark) = visitors::exports_after_deletion(marked_before, sent.is_ok());
            if unmark {
                let _ = kv.delete(&visitors::exports_due_key(&project)).await;
            }
            if due {
                exports_due.insert(project.clone());
            }
        }
        if let Err(e) = sent {
            failed.push(format!("{project}: {e}"));
        }
    }
    for project in exports_due {
        match super::exports::erase_project(env, &project).await {
            Ok(_) => {
                let _ = kv.delete(&visitors::exports_due_key(&project)).await; // else done again tomorrow
            }
            Err(e) => failed.push(format!("{project}'s exports: {}", e.message)),
        }
    }
    if let Err(e) = super::dead_letters::erase_visitors(env, &erasures.iter().cloned().collect()).await {
        failed.push(format!("the dead-letter store: {}", e.message));
    }
    Ok((erasures.len(), failed))
}

/// Marks `project`'s exports for deletion by the next run (`visitors::exports_due_key`).
pub async fn mark_exports_due(kv: &worker::kv::KvStore, project: &str) -> Result<(), String> {
    let put = kv.put(&visitors::exports_due_key(project), "").map_err(|e| e.to_string())?;
    put.expiration_ttl(visitors::RECHECK_SECONDS).execute().await.map_err(|e| e.to_string())
}
