//! Rows into ClickHouse so that the first write of an id wins: ask which of their ids are
//! stored already, insert only the first copy of each that is not
//! (millimetric_core::ingest::first_write). The one way rows are written, by the request
//! that accepted them (group_commit) and by the batch writer (consumer) alike.

use millimetric_adapters::clickhouse_sink;
use millimetric_core::ingest::first_write::{self, Stored};
use millimetric_core::ingest::row::EventRow;
use millimetric_core::storage::clickhouse::{ClickHouseConfig, InsertOutcome};

/// What became of `rows`: the insert's outcome, and the ids found stored before it (None when
/// that lookup failed: then nothing was inserted), with how many rows were already stored.
pub struct Written {
    pub outcome: InsertOutcome,
    pub stored: Option<Stored>,
    pub skipped: usize,
}

pub async fn first_writes(cfg: &ClickHouseConfig, rows: &[&EventRow]) -> Written {
    let stored = match stored_ids(cfg, rows).await {
        Ok(stored) => stored,
        Err(outcome) => return Written { outcome, stored: None, skipped: 0 },
    };
    let fresh: Vec<&EventRow> = first_write::first_writes(rows, &stored).into_iter().map(|i| rows[i]).collect();
    let skipped = rows.len() - fresh.len();
    let outcome = if fresh.is_empty() { InsertOutcome::Stored } else { clickhouse_sink::insert(cfg, &fresh).await };
    Written { outcome, stored: Some(stored), skipped }
}

/// Which of the rows' ids are stored already. Err: the lookup failed, and the rows are handled
/// as a failed insert (nothing is inserted blind). A lookup ClickHouse refuses for what it is
/// (its index missing: the Worker deployed before migration 0007) says nothing about the
/// rows, so it is retried, never dead-lettered.
async fn stored_ids(cfg: &ClickHouseConfig, rows: &[&EventRow]) -> Result<Stored, InsertOutcome> {
    if let Err(reason) = cfg.check_names() {
        return Err(InsertOutcome::Fatal { code: None, reason });
    }
    let mut stored = Stored::new();
    let asked = first_write::asked(rows);
    for sql in first_write::stored_ids_sql(&cfg.database, &asked) {
        let body = clickhouse_sink::select(cfg, &sql).await.map_err(|o| match o {
            InsertOutcome::Fatal { code, reason } => {
                InsertOutcome::Retry { reason: format!("the stored-id lookup failed (code {code:?}): {reason}") }
            }
            other => other,
        })?;
        stored.extend(first_write::parse_stored_ids(&body, &asked).map_err(|reason| InsertOutcome::Retry { reason })?);
    }
    Ok(stored)
}
