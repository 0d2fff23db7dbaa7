//! The first write of an event id wins. Anyone holding a project's public key can choose an
//! event's `id` and `timestamp`, so a later event with a stored id must never replace it; and
//! a client's retry must leave one row per event even when the retry lands on another day or
//! week (the edge stamps events that carry no timestamp with the time it received them, so
//! a retry after midnight has another sort key, and after a Monday another partition, where
//! ReplacingMergeTree never looks).
//!
//! So the batch writer asks, before each insert, which of its (project, event id) pairs are
//! already stored, and inserts only the first copy of each pair that is not. `event_id_hashes`
//! (migrations/0007) answers that by primary key: one small row per stored event, keyed by a
//! 12-byte hash of the id (`sql::id_hash`), filled by a materialized view in the same insert as
//! `events`, and dropped with the same partitions.
//!
//! One exception, so the public key cannot block a server's events: anyone with the page's
//! `pk_live_` key can send an id first (order-124, before the server does). A browser-key copy
//! never blocks a secret-key one: the server's event is stored too, and where both carry one
//! day and one visitor id (the sort key, migrations/0009), queries (FINAL, newest
//! `received_at`) show the server's; otherwise both show, as two events would. A browser-key
//! copy of an id already stored by any key is never stored.
//!
//! What this cannot see: two copies of one id in two batches that the queue hands to two
//! consumer invocations at the same moment. Each then finds the other not yet stored. Copies
//! of one event that share a day and a visitor id still collapse in what queries read
//! (`events_dedup`, FINAL), to the one received last; copies on two days, or with two visitor
//! ids, would both show. Retries
//! come seconds apart and batches close within a second, so this needs a retry inside the same
//! second as the first copy's insert.

use crate::ingest::row::EventRow;
use crate::storage::sql;
use std::collections::HashMap;

/// Stored ids: (project, event id) -> whether a secret-key copy is among them.
pub type Stored = HashMap<(String, String), bool>;

pub const IDS_TABLE: &str = "event_id_hashes";

/// ClickHouse parses at most `max_query_size` (256 KiB by default) of a statement: a batch of
/// many rows asks in several statements, each under this.
const MAX_STATEMENT_BYTES: usize = 128 * 1024;

/// The (project, event id) pairs a batch asks about, keyed by (project, the id's hash as
/// `sql::id_hash_hex` prints it): each id hashed once, for the statements and their answers.
pub type Asked<'a> = HashMap<(&'a str, String), &'a str>;

pub fn asked<'a>(rows: &[&'a EventRow]) -> Asked<'a> {
    rows.iter().map(|r| ((r.project_id.as_str(), sql::id_hash_hex(&r.event_id)), r.event_id.as_str())).collect()
}

/// The statements that list which of the `asked` pairs are stored (several for a large batch;
/// their answers together). Names must be plain identifiers (ClickHouseConfig::check_names).
pub fn stored_ids_sql(database: &str, asked: &Asked) -> Vec<String> {
    let mut pairs: Vec<String> =
        asked.keys().map(|(project, hash)| format!("({}, {})", sql::string(project), sql::id_hash_literal(hash))).collect();
    pairs.sort();
    let head = format!(
        "SELECT project_id, lower(hex(id_hash)) AS hash, max(key_kind = 'secret') AS server FROM {database}.{IDS_TABLE} WHERE (project_id, id_hash) IN ("
    );
    let tail = ") GROUP BY project_id, id_hash FORMAT JSONEachRow";
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
    hash: String,
    /// 0 or 1; ClickHouse may quote it.
    server: serde_json::Value,
}

/// ClickHouse's answer to `stored_ids_sql`: the ids `asked` whose hashes it names. Err on
/// anything else, a hash not asked about included: the caller retries the batch rather than
/// risk inserting copies.
pub fn parse_stored_ids(body: &str, asked: &Asked) -> Result<Stored, String> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let s = serde_json::from_str::<StoredId>(l).map_err(|e| format!("unexpected answer to the id lookup ({e})"))?;
            let server = s.server.as_u64().or_else(|| s.server.as_str().and_then(|x| x.parse().ok())).unwrap_or(0) > 0;
            let id =
                *asked.get(&(s.project_id.as_str(), s.hash.to_ascii_lowercase())).ok_or("the id lookup named an id it was not asked")?;
            Ok(((s.project_id, id.to_string()), server))
        })
        .collect()
}

fn is_server(r: &EventRow) -> bool {
    r.key_kind == "secret"
}

/// Per event id: the index of its earliest secret-key row and of its earliest other row.
type EarliestCopies = (Option<usize>, Option<usize>);

/// Which rows to insert: per (project, event id), the copy received first (ties: the earlier
/// in the batch) that nothing stored blocks. A secret-key copy is blocked only by a stored
/// secret-key copy; any other by any stored copy, or by a secret-key copy in the batch.
/// Indexes into `rows`, in order.
pub fn first_writes(rows: &[&EventRow], stored: &Stored) -> Vec<usize> {
    // Per id: the earliest secret-key row and the earliest other row.
    let mut first: HashMap<(&str, &str), EarliestCopies> = HashMap::new();
    let earlier = |a: usize, b: Option<usize>| match b {
        // `received_at` is `YYYY-MM-DD hh:mm:ss`: text order is time order.
        Some(b) if rows[b].received_at <= rows[a].received_at => b,
        _ => a,
    };
    for (i, r) in rows.iter().enumerate() {
        let slot = first.entry((r.project_id.as_str(), r.event_id.as_str())).or_default();
        if is_server(r) {
            slot.0 = Some(earlier(i, slot.0));
        } else {
            slot.1 = Some(earlier(i, slot.1));
        }
    }
    let mut keep = Vec::new();
    for ((project, id), (server, other)) in first {
        let was = stored.get(&(project.to_string(), id.to_string())).copied();
        match (server, was) {
            (Some(i), None | Some(false)) => keep.push(i),
            (Some(_), Some(true)) => {}
            (None, None) => keep.extend(other),
            (None, Some(_)) => {}
        }
    }
    keep.sort_unstable();
    keep
}

/// After `rows` were stored: count them as stored for the rest of the batch.
pub fn record(stored: &mut Stored, rows: &[&EventRow]) {
    for r in rows {
        let server = stored.entry((r.project_id.clone(), r.event_id.clone())).or_insert(false);
        *server |= is_server(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::row::tests::sample;

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
            let keep = first_writes(&rows, &Stored::new());
            assert_eq!(keep.len(), 1);
            assert_eq!(rows[keep[0]].title, "paid");
        }
        // Already stored: nothing is inserted, whichever key sends it.
        let stored: Stored = [(("p".to_string(), "order-123".to_string()), true)].into();
        assert!(first_writes(&[&forged], &stored).is_empty());
        let mut forged_pk = forged.clone();
        forged_pk.key_kind = "publishable".into();
        assert!(first_writes(&[&forged_pk], &stored).is_empty());
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
        assert_eq!(first_writes(&[&first, &retry], &Stored::new()), vec![0]);
        let stored: Stored = [(("p".to_string(), "e1".to_string()), true)].into();
        assert!(first_writes(&[&retry], &stored).is_empty());
    }

    /// The review's case: the public key sends order-124 first. The server's real event is
    /// stored all the same; a browser copy after a server one is not.
    #[test]
    fn the_public_key_cannot_block_a_server_event() {
        let mut squat = row("p", "order-124", "2026-11-22 09:59:00", "squat");
        squat.key_kind = "publishable".into();
        let real = row("p", "order-124", "2026-11-22 10:00:00", "real"); // sample(): secret
                                                                         // The squat was stored first: the server's event still goes in.
        let squatted: Stored = [(("p".to_string(), "order-124".to_string()), false)].into();
        assert_eq!(first_writes(&[&real], &squatted), vec![0]);
        // Both in one batch, the squat first: only the server's goes in.
        assert_eq!(first_writes(&[&squat, &real], &Stored::new()), vec![1]);
        // The server's stored: a browser copy is dropped.
        let served: Stored = [(("p".to_string(), "order-124".to_string()), true)].into();
        assert!(first_writes(&[&squat], &served).is_empty());
        // What one message stored counts for the next (the consumer's one-by-one fallback).
        let mut so_far = Stored::new();
        record(&mut so_far, &[&squat]);
        assert_eq!(first_writes(&[&squat], &so_far), Vec::<usize>::new());
        assert_eq!(first_writes(&[&real], &so_far), vec![0]);
        record(&mut so_far, &[&real]);
        assert!(first_writes(&[&real], &so_far).is_empty());
        // Browser ids among themselves: first wins.
        let mut later = squat.clone();
        later.received_at = "2026-11-22 10:30:00".into();
        assert_eq!(first_writes(&[&later, &squat], &Stored::new()), vec![1]);
    }

    #[test]
    fn the_lookup_escapes_ids_and_reads_the_answer() {
        let a = row("p'", "it's", "2026-11-22 10:00:00", "");
        let b = row("p'", "x\\y", "2026-11-22 10:00:00", "");
        let statements = stored_ids_sql("millimetric", &asked(&[&a, &b, &a]));
        let (ha, hb) = (sql::id_hash("it's"), sql::id_hash("x\\y"));
        let mut pairs = [format!("('p\\'', {ha})"), format!("('p\\'', {hb})")];
        pairs.sort();
        assert_eq!(
            statements,
            vec![format!("SELECT project_id, lower(hex(id_hash)) AS hash, max(key_kind = 'secret') AS server FROM millimetric.event_id_hashes WHERE (project_id, id_hash) IN ({}) GROUP BY project_id, id_hash FORMAT JSONEachRow", pairs.join(", "))]
        );
        // A large batch asks in statements ClickHouse will parse (max_query_size), every pair once.
        let many: Vec<EventRow> =
            (0..10_000).map(|i| row("project-with-a-long-name", &format!("{i:0>100}"), "2026-11-22 10:00:00", "")).collect();
        let refs: Vec<&EventRow> = many.iter().collect();
        let statements = stored_ids_sql("millimetric", &asked(&refs));
        assert!(statements.len() > 1);
        assert!(statements.iter().all(|s| s.len() <= MAX_STATEMENT_BYTES));
        assert_eq!(statements.iter().map(|s| s.matches("('project-with").count()).sum::<usize>(), 10_000);
        assert!(stored_ids_sql("millimetric", &asked(&[])).is_empty());
        // The answer names hashes (ClickHouse's hex may be upper case): back to the ids asked.
        let answer = format!(
            "{{\"project_id\":\"p'\",\"hash\":\"{}\",\"server\":1}}\n{{\"project_id\":\"p'\",\"hash\":\"{}\",\"server\":\"0\"}}\n",
            sql::id_hash_hex("it's"),
            sql::id_hash_hex("x\\y").to_uppercase()
        );
        let got = parse_stored_ids(&answer, &asked(&[&a, &b])).unwrap();
        assert_eq!(got.get(&("p'".to_string(), "it's".to_string())), Some(&true));
        assert_eq!(got.get(&("p'".to_string(), "x\\y".to_string())), Some(&false));
        assert!(parse_stored_ids("", &asked(&[&a])).unwrap().is_empty());
        assert!(parse_stored_ids("Code: 60. Table doesn't exist", &asked(&[&a])).is_err());
        // A hash of an id not asked, or of another project's: not an answer to trust.
        assert!(parse_stored_ids(&answer, &asked(&[&a])).is_err());
        let elsewhere = answer.replace("\"p'\"", "\"q\"");
        assert!(parse_stored_ids(&elsewhere, &asked(&[&a, &b])).is_err());
    }
}
