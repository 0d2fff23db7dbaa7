//! An isolate's counters between flushes. Requests add to it; now and then one of them flushes
//! everything as a single insert (`take`), under a fresh id. A flush that fails is kept as it
//! was, id and all, and sent again with the next one: if the failed insert did land after all
//! (a timeout after ClickHouse wrote it), the copy counts once, since readers take one value
//! per (project, day, metric, dim, flush id) (`sql::counters_sql`). Counts are never merged
//! into a later flush under another id, which would count them twice.
//!
//! What it cannot do: counts still in an isolate that the runtime evicts are lost. A flush is
//! due a few seconds after the first count (the adapter keeps that request alive until then),
//! so this needs ClickHouse down and the isolate gone within the same seconds; the loss is
//! bounded by `MAX_KEPT_FLUSHES`. Billing never depends on it: stored events are counted from
//! the stored rows.

use super::Counter;
use serde::Serialize;
use std::collections::BTreeMap;

/// Failed flushes kept for the next attempt; past this the oldest is dropped (and logged).
pub const MAX_KEPT_FLUSHES: usize = 64;

/// A flush scheduled this long ago that never reported back lost its request (cancelled): the
/// next count schedules another.
pub const STALE_AFTER_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub project_id: String,
    /// UTC `YYYY-MM-DD`.
    pub day: String,
    pub counter: Counter,
    pub dim: String,
}

/// One insert's worth: every slot's count under one id.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    pub id: String,
    pub counts: Vec<(Slot, u64)>,
}

/// A `usage_counts` row as inserted (JSONEachRow).
#[derive(Serialize)]
struct Row<'a> {
    project_id: &'a str,
    day: &'a str,
    metric: &'static str,
    dim: &'a str,
    source_id: &'a str,
    n: u64,
}

impl Flush {
    /// The rows, one JSON object a line.
    pub fn rows(&self) -> String {
        let mut out = String::new();
        for (s, n) in &self.counts {
            let row = Row { project_id: &s.project_id, day: &s.day, metric: s.counter.as_str(), dim: &s.dim, source_id: &self.id, n: *n };
            out.push_str(&serde_json::to_string(&row).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}

#[derive(Debug, Default)]
pub struct Tally {
    pending: BTreeMap<Slot, u64>,
    failed: Vec<Flush>,
    scheduled_at_ms: Option<i64>,
    dropped: u64,
}

impl Tally {
    /// Count `n` in `slot`. True when the caller should schedule a flush (none is pending, or
    /// the pending one's request was lost).
    pub fn add(&mut self, slot: Slot, n: u64, now_ms: i64) -> bool {
        if n == 0 {
            return false;
        }
        *self.pending.entry(slot).or_insert(0) += n;
        let schedule = self.scheduled_at_ms.is_none_or(|t| now_ms - t > STALE_AFTER_MS);
        if schedule {
            self.scheduled_at_ms = Some(now_ms);
        }
        schedule
    }

    /// Everything to send now: the failed flushes again, then what is pending under `new_id`.
    pub fn take(&mut self, new_id: String) -> Vec<Flush> {
        self.scheduled_at_ms = None;
        let mut out = std::mem::take(&mut self.failed);
        if !self.pending.is_empty() {
            out.push(Flush { id: new_id, counts: std::mem::take(&mut self.pending).into_iter().collect() });
        }
        out
    }

    /// The flushes `take` gave did not land: keep them, as they were, for the next one.
    pub fn failed(&mut self, flushes: Vec<Flush>) {
        self.failed.extend(flushes);
        while self.failed.len() > MAX_KEPT_FLUSHES {
            let lost = self.failed.remove(0);
            self.dropped += lost.counts.iter().map(|(_, n)| n).sum::<u64>();
        }
    }

    /// Counts given up on since the isolate started (for the log).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether anything waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(p: &str, dim: &str) -> Slot {
        Slot { project_id: p.into(), day: "2000-01-01".into(), counter: Counter::Refused, dim: dim.into() }
    }

    #[test]
    fn the_first_count_schedules_a_flush_and_later_ones_join_it() {
        let mut t = Tally::default();
        assert!(t.add(slot("p", "rate_limited"), 1, 0));
        assert!(!t.add(slot("p", "rate_limited"), 2, 10));
        assert!(!t.add(slot("q", "invalid_event"), 1, 20));
        assert!(!t.add(slot("p", "x"), 0, 30), "nothing counted, nothing scheduled");
        let f = t.take("a".into());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].counts, vec![(slot("p", "rate_limited"), 3), (slot("q", "invalid_event"), 1)]);
        assert!(t.is_empty());
        assert!(t.add(slot("p", "rate_limited"), 1, 40), "after a flush the next count schedules again");
    }

    #[test]
    fn a_lost_flush_is_rescheduled() {
        let mut t = Tally::default();
        assert!(t.add(slot("p", "c"), 1, 0));
        assert!(!t.add(slot("p", "c"), 1, STALE_AFTER_MS));
        assert!(t.add(slot("p", "c"), 1, STALE_AFTER_MS + 1));
    }

    #[test]
    fn a_failed_flush_is_sent_again_under_its_own_id_never_merged() {
        let mut t = Tally::default();
        t.add(slot("p", "c"), 5, 0);
        let first = t.take("a".into());
        t.failed(first.clone());
        t.add(slot("p", "c"), 1, 1);
        let again = t.take("b".into());
        assert_eq!(again.len(), 2);
        assert_eq!(again[0], first[0], "the failed flush, unchanged");
        assert_eq!((again[1].id.as_str(), again[1].counts[0].1), ("b", 1));
    }

    #[test]
    fn rows_are_json_lines_with_the_flush_id() {
        let mut t = Tally::default();
        t.add(slot("p\"1", "c"), 2, 0);
        let rows = t.take("id1".into())[0].rows();
        let v: serde_json::Value = serde_json::from_str(rows.trim()).unwrap();
        assert_eq!(v["project_id"], "p\"1");
        assert_eq!((v["metric"].as_str(), v["source_id"].as_str(), v["n"].as_u64()), (Some("refused"), Some("id1"), Some(2)));
    }

    #[test]
    fn failed_flushes_are_bounded() {
        let mut t = Tally::default();
        for i in 0..MAX_KEPT_FLUSHES + 3 {
            t.add(slot("p", "c"), 1, i as i64);
            let f = t.take(format!("f{i}"));
            t.failed(f);
        }
        assert_eq!(t.dropped(), 3);
        assert_eq!(t.take("z".into()).len(), MAX_KEPT_FLUSHES);
    }
}
