//! What a dead letter holds, in a few hundred bytes kept as its KV metadata: its rows'
//! projects, a Bloom filter of their visitors, and when its first row passes its retention.
//!
//! The passes over the whole dead-letter store (an erasure, a project's deletion, the daily
//! retention) list the keys with their metadata, a thousand to a KV operation, and read only
//! the dead letters whose summary says they may hold what the pass removes. A Worker
//! invocation has about 1,000 KV operations: a store of thousands of dead letters (an outage
//! long enough for the queue to give up) read whole, one operation each, would pass them, and
//! every erasure would fail half done.

use super::row::RowBatch;
use crate::storage::sql::id_hash_hex;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Bits of the visitors' filter: 256 bytes, 344 characters of base64. With 4 probes, a batch
/// of 100 visitors answers "maybe" for another visitor about once in 1,000 (a needless read).
const BITS: usize = 2048;
const PROBES: usize = 4;
/// The projects listed take at most this many bytes; more, and the summary says "any".
const MAX_PROJECT_BYTES: usize = 400;

/// A dead letter's summary. `projects` or `visitors` left out says "may hold any"; a dead letter
/// with no summary at all (kept before summaries were) is read by every pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Its rows' projects; None: a body that is not rows, or too many to list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<String>>,
    /// Its rows' (project, visitor id hash) pairs in a Bloom filter, base64; None: a body
    /// that is not rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitors: Option<String>,
    /// When its first row passes its retention (unix ms); None: no row ever does (a body
    /// that is not rows cannot be dated, and stays until its own expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_expiry_ms: Option<i64>,
}

fn probes(project_id: &str, id_hash: &str) -> [usize; PROBES] {
    let d = Sha256::new().chain_update(project_id).chain_update([0]).chain_update(id_hash).finalize();
    std::array::from_fn(|i| usize::from(u16::from_le_bytes([d[2 * i], d[2 * i + 1]])) % BITS)
}

impl Summary {
    pub fn of(batch: &RowBatch) -> Summary {
        if batch.raw.is_some() {
            return Summary::default();
        }
        let projects: BTreeSet<&str> = batch.rows.iter().map(|r| r.project_id.as_str()).collect();
        let listed = projects.iter().map(|p| p.len() + 3).sum::<usize>() <= MAX_PROJECT_BYTES;
        let mut bits = vec![0u8; BITS / 8];
        for r in &batch.rows {
            for bit in probes(&r.project_id, &id_hash_hex(&r.anonymous_id)) {
                bits[bit / 8] |= 1 << (bit % 8);
            }
        }
        Summary {
            projects: listed.then(|| projects.iter().map(|p| p.to_string()).collect()),
            visitors: Some(base64::engine::general_purpose::STANDARD.encode(bits)),
            first_expiry_ms: batch.rows.iter().filter_map(|r| r.expires_at_ms()).min(),
        }
    }

    /// Whether it may hold a row of `project_id`.
    pub fn may_hold_project(&self, project_id: &str) -> bool {
        self.projects.as_ref().is_none_or(|ps| ps.iter().any(|p| p == project_id))
    }

    /// Whether it may hold a row of one of the `erased` (project, visitor id hash) pairs.
    pub fn may_hold_visitors(&self, erased: &BTreeSet<(String, String)>) -> bool {
        let Some(bits) = self.visitors.as_deref().and_then(|v| crate::base64_text::decode(v.as_bytes())) else { return true };
        if bits.len() != BITS / 8 {
            return true;
        }
        erased
            .iter()
            .filter(|(p, _)| self.may_hold_project(p))
            .any(|(p, h)| probes(p, h).iter().all(|&bit| bits[bit / 8] & (1 << (bit % 8)) != 0))
    }

    /// Whether one of its rows has passed its retention at `now_ms`.
    pub fn may_hold_expired(&self, now_ms: i64) -> bool {
        self.first_expiry_ms.is_some_and(|t| t < now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::row::EventRow;

    fn row(project: &str, visitor: &str, timestamp: &str, retention_days: u16) -> EventRow {
        EventRow {
            project_id: project.into(),
            event_id: format!("{project}-{visitor}"),
            anonymous_id: visitor.into(),
            timestamp: timestamp.into(),
            received_at: timestamp.into(),
            retention_days,
            ..Default::default()
        }
    }

    fn erased(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        pairs.iter().map(|(p, v)| (p.to_string(), id_hash_hex(v))).collect()
    }

    /// Never a false "no": every row's project and visitor is found, in batches of every size
    /// up to 500 rows; and for visitors it does not hold, "maybe" is rare.
    #[test]
    fn the_summary_finds_every_row_and_rarely_another() {
        let mut false_maybes = 0;
        for n in [1, 10, 100, 500] {
            let rows: Vec<EventRow> = (0..n).map(|i| row(&format!("p{}", i % 3), &format!("v{i}"), "2026-01-01 00:00:00", 30)).collect();
            let s = Summary::of(&RowBatch { rows: rows.clone(), failure: None, raw: None });
            for r in &rows {
                assert!(s.may_hold_project(&r.project_id));
                assert!(s.may_hold_visitors(&erased(&[(&r.project_id, &r.anonymous_id)])), "{n}: {}", r.anonymous_id);
            }
            assert!(!s.may_hold_project("p9"));
            assert!(!s.may_hold_visitors(&erased(&[("p9", "v1")])), "another project's visitor");
            if n == 100 {
                false_maybes = (0..10_000).filter(|i| s.may_hold_visitors(&erased(&[("p0", &format!("other-{i}"))]))).count();
            }
        }
        assert!(false_maybes < 100, "{false_maybes} of 10,000 visitors it does not hold read as maybe");
    }

    /// KV takes at most 1,024 bytes of metadata a key.
    #[test]
    fn the_summary_fits_kv_metadata() {
        let long = "p".repeat(64);
        let rows: Vec<EventRow> = (0..2000).map(|i| row(&format!("{long}{i}"), &format!("v{i}"), "2026-01-01 00:00:00", 30)).collect();
        for rows in [rows.clone(), rows[..5].to_vec()] {
            let s = Summary::of(&RowBatch { rows, failure: None, raw: None });
            assert!(serde_json::to_string(&s).unwrap().len() <= 1024);
        }
        let many = Summary::of(&RowBatch { rows, failure: None, raw: None });
        assert!(many.projects.is_none() && many.may_hold_project("any"), "too many to list: any project");
    }

    /// The first row to pass its retention dates the dead letter, as `without_expired` judges
    /// rows; a row without a window never does.
    #[test]
    fn the_first_expiry_is_the_earliest_rows() {
        let rows = vec![
            row("p", "a", "2026-03-01 00:00:00", 90),
            row("p", "b", "2026-03-02 00:00:00", 30),
            row("p", "c", "2000-01-01 00:00:00", 0),
        ];
        let batch = RowBatch { rows, failure: None, raw: None };
        let s = Summary::of(&batch);
        let at = crate::ingest::timestamp::parse_clickhouse_datetime("2026-04-01 00:00:00").unwrap();
        assert_eq!(s.first_expiry_ms, Some(at));
        assert!(!s.may_hold_expired(at) && batch.without_expired(at).is_none());
        assert!(s.may_hold_expired(at + 1) && batch.without_expired(at + 1).is_some());
    }

    /// A body that is not rows may hold anything but a date; a summary that does not read
    /// (written by another version) may hold anything.
    #[test]
    fn an_unreadable_body_or_summary_may_hold_anything() {
        let s = Summary::of(&RowBatch::unreadable("{\"rows\":[{\"project_id\":\"p\"", "cut short".into()));
        assert!(s.may_hold_project("p") && s.may_hold_visitors(&erased(&[("p", "v")])) && !s.may_hold_expired(i64::MAX));
        let odd = Summary { projects: Some(vec!["p".into()]), visitors: Some("!!".into()), first_expiry_ms: None };
        assert!(odd.may_hold_visitors(&erased(&[("p", "v")])));
    }
}
