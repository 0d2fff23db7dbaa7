//! The first write of an event id wins. Anyone holding a project's public key can choose an
//! event's `id` and `timestamp`, so a later event with a stored id must never replace it; and
//! a client's retry must leave one row per event even when the retry lands on another day or
//! week (the edge stamps events that carry no timestamp with the time it received them, so
//! a retry after midnight has another sort key, and after a Monday another partition, where
//! ReplacingMergeTree never looks).
//!
//! So the batch writer asks, before each insert, which of its (project, event id) pairs are
//! already stored, and inserts only the first copy of each pair that is not. `event_ids`
//! (migrations/0002) answers that by primary key: one small row per stored event, filled by a
//! materialized view in the same insert as `events`, and dropped with the same partitions.
//!
//! What this cannot see: two copies of one id in two batches that the queue hands to two
//! consumer invocations at the same moment. Each then finds the other not yet stored. Copies
//! in one partition still collapse in what queries read (`events_dedup`, FINAL); only copies
//! that also straddle a week boundary would both show. Retries come seconds apart and batches
//! close within a second, so this needs a retry inside the same second as the first copy's
//! insert, across a Monday 00:00 UTC.

use crate::row::EventRow;
use crate::sql;
use std::collections::HashSet;

pub const IDS_TABLE: &str = "event_ids";

/// ClickHouse parses at most `max_query_size` (256 KiB by default) of a statement: a batch of
/// many rows asks in several statements, each under this.
const MAX_STATEMENT_BYTES: usize = 128 * 1024;

/// The statements that list which of `rows`' (project, event id) pairs are stored (several
/// for a large batch; their answers together). Names must be plain identifiers
/// (ClickHouseConfig::check_names).
pub fn stored_ids_sql(database: &str, rows: &[&EventRow]) -> Vec<String> {
    let mut pairs: Vec<String> = rows.iter().map(|r| format!("({}, {})", sql::string(&r.project_id), sql::string(&r.event_id))).collect();
    pairs.sort();
    pairs.dedup();
    let head = format!("SELECT DISTINCT project_id, event_id FROM {database}.{IDS_TABLE} WHERE (project_id, event_id) IN (");
    let tail = ") FORMAT JSONEachRow";
    let mut out = Vec::new();
    let mut cur = String::new();
    for p in pairs {
        if !cur.is_empty() && head.len() + cur.len() + 2 + p.len() + tail.len() > MAX_STATEMENT_BYTES {
            out.push(format!("{head}{cur}{tail}"));
            cur.clear();
        }
        if !cur.is_empty() {
            cur.push_str(", ");
        }
        cur.push_str(&p);
    }
    if !cur.is_empty() {
        out.push(format!("{head}{cur}{tail}"));
    }
    out
}

#[derive(serde::Deserialize)]
struct StoredId {
    project_id: String,
    event_id: String,
}

/// ClickHouse's answer to `stored_ids_sql`. Err on anything else: the caller retries the
/// batch rather than risk inserting copies.
pub fn parse_stored_ids(body: &str) -> Result<HashSet<(String, String)>, String> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<StoredId>(l).map(|s| (s.project_id, s.event_id)).map_err(|e| format!("unexpected answer ({e}): {l}")))
        .collect()
}

/// Which rows to insert: per (project, event id), the copy received first (ties: the earlier
/// in the batch), and none where the pair is already stored. Indexes into `rows`, in order.
pub fn first_writes(rows: &[&EventRow], stored: &HashSet<(String, String)>) -> Vec<usize> {
    let mut first: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if stored.contains(&(r.project_id.clone(), r.event_id.clone())) {
            continue;
        }
        first
            .entry((r.project_id.as_str(), r.event_id.as_str()))
            .and_modify(|j| {
                // `received_at` is `YYYY-MM-DD hh:mm:ss`: text order is time order.
                if r.received_at < rows[*j].received_at {
                    *j = i;
                }
            })
            .or_insert(i);
    }
    let mut keep: Vec<usize> = first.into_values().collect();
    keep.sort_unstable();
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::tests::sample;

    fn row(project: &str, id: &str, received: &str, title: &str) -> EventRow {
        let mut r = sample(id, 1);
        r.project_id = project.into();
        r.received_at = received.into();
        r.title = title.into();
        r
    }

    #[test]
    fn a_later_copy_never_replaces_the_first() {
        let server = row("p", "order-123", "2026-11-22 10:00:00", "paid");
        let forged = row("p", "order-123", "2026-11-22 10:05:00", "forged");
        // Both in one batch, in either order: the first received wins.
        for rows in [vec![&server, &forged], vec![&forged, &server]] {
            let keep = first_writes(&rows, &HashSet::new());
            assert_eq!(keep.len(), 1);
            assert_eq!(rows[keep[0]].title, "paid");
        }
        // Already stored: nothing is inserted, whichever key sends it.
        let stored: HashSet<_> = [("p".to_string(), "order-123".to_string())].into();
        assert!(first_writes(&[&forged], &stored).is_empty());
        // Another project's id is another event.
        let other = row("q", "order-123", "2026-11-22 10:05:00", "theirs");
        assert_eq!(first_writes(&[&other], &stored), vec![0]);
    }

    /// A retry the edge stamped after midnight (and after a Monday): another day, another
    /// partition, the same event. It is not inserted again.
    #[test]
    fn retries_across_midnight_and_a_week_are_one_event() {
        let mut first = row("p", "e1", "2026-11-29 23:59:59", "");
        first.timestamp = "2026-11-29 23:59:59".into(); // a Sunday
        let mut retry = row("p", "e1", "2026-11-30 00:00:03", "");
        retry.timestamp = "2026-11-30 00:00:03".into(); // Monday: the next week's partition
        assert_eq!(first_writes(&[&first, &retry], &HashSet::new()), vec![0]);
        let stored: HashSet<_> = [("p".to_string(), "e1".to_string())].into();
        assert!(first_writes(&[&retry], &stored).is_empty());
    }

    #[test]
    fn the_lookup_escapes_ids_and_reads_the_answer() {
        let a = row("p", "it's", "2026-11-22 10:00:00", "");
        let b = row("p", "x\\y", "2026-11-22 10:00:00", "");
        let sql = stored_ids_sql("millimetric", &[&a, &b, &a]);
        assert_eq!(
            sql,
            vec!["SELECT DISTINCT project_id, event_id FROM millimetric.event_ids WHERE (project_id, event_id) IN (('p', 'it\\'s'), ('p', 'x\\\\y')) FORMAT JSONEachRow"]
        );
        // A large batch asks in statements ClickHouse will parse (max_query_size), every pair once.
        let many: Vec<EventRow> = (0..10_000).map(|i| row("project-with-a-long-name", &format!("{i:0>100}"), "2026-11-22 10:00:00", "")).collect();
        let refs: Vec<&EventRow> = many.iter().collect();
        let statements = stored_ids_sql("millimetric", &refs);
        assert!(statements.len() > 1);
        assert!(statements.iter().all(|s| s.len() <= MAX_STATEMENT_BYTES));
        assert_eq!(statements.iter().map(|s| s.matches("('project-with").count()).sum::<usize>(), 10_000);
        assert!(stored_ids_sql("millimetric", &[]).is_empty());
        let got = parse_stored_ids("{\"project_id\":\"p\",\"event_id\":\"it's\"}\n\n").unwrap();
        assert!(got.contains(&("p".to_string(), "it's".to_string())));
        assert!(parse_stored_ids("").unwrap().is_empty());
        assert!(parse_stored_ids("Code: 60. Table doesn't exist").is_err());
    }
}
