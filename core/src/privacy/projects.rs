//! A project's whole data deleted at the end of a contract (the DPA: "delete or return all
//! Personal Data after the end of the provision of the Service"; the privacy policy: account
//! data "deleted within 30 days of account closure").
//!
//! - `DELETE /admin/projects/{id}` deletes now: the project's keys are revoked first (no new
//!   event is taken), then every ClickHouse table with a `project_id` column loses the
//!   project's rows (found through `system.columns`, so a table added later is covered), then
//!   its dead letters, erasure records and key records go. Its audit records stay their 90
//!   days, as the DPA requires.
//! - `POST /admin/projects/{id}/closure` schedules that deletion at most 30 days on
//!   (`delete_after_days`, default 30); `DELETE` on it cancels until then; the daily cron
//!   carries out closures that are due.
//! - An event accepted just before the keys were revoked may still sit in the queue and land
//!   after the deletion: a deletion leaves a tombstone (`deleted:{id}`, the project id only;
//!   `Tombstone`) and the daily cron runs the deletion again while it lasts: until the deletion
//!   has once run to its end, then 8 days more, as erasures.

use crate::error::ApiError;
use crate::storage::sql;
use serde::{Deserialize, Serialize};

/// The longest a closure may wait before its deletion.
pub const MAX_CLOSURE_DAYS: u32 = 30;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// How long a deletion's tombstone lasts once the deletion ran to its end, and with it the
/// reservation of the project's id: as long as the project's audit records (keys made anew
/// for the id would read them).
pub const TOMBSTONE_SECONDS: u64 = crate::privacy::audit::KEEP_SECONDS;

/// How long after it first ran to its end a deletion is re-applied by the daily job (the same
/// bound as a visitor's erasure: events still queued land within it).
pub const REAPPLY_MS: i64 = crate::privacy::visitors::RECHECK_SECONDS as i64 * 1000;

/// A scheduled closure: when it was asked for, and when the deletion is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub requested_ms: i64,
    pub due_ms: i64,
}

impl Closure {
    /// Whether the daily job carries it out at `now_ms`: once its date has come, or when the
    /// next daily run (a day on, and an hour for the cron's own drift) would fall past
    /// MAX_CLOSURE_DAYS after it was asked for. So it is carried out at most MAX_CLOSURE_DAYS
    /// after the request, whatever the hour of either.
    pub fn is_due(&self, now_ms: i64) -> bool {
        let limit = self.requested_ms + i64::from(MAX_CLOSURE_DAYS) * DAY_MS;
        now_ms >= self.due_ms || now_ms + DAY_MS + HOUR_MS > limit
    }
}

/// A project id from a path segment: what keys name projects with (letters, digits, `_`, `-`).
pub fn check_project_id(s: &str) -> Result<&str, ApiError> {
    if crate::keys::admin::is_project_id(s) {
        Ok(s)
    } else {
        Err(ApiError::bad_request(
            "invalid_project",
            "The project id in the path must be 1 to 64 letters, digits, `_` or `-`, as the project's keys name it.",
        ))
    }
}

/// Keys for a project deleted less than TOMBSTONE_SECONDS ago are refused: the daily job would
/// delete the new project's rows with the old one's.
pub fn id_reserved(project_id: &str) -> ApiError {
    ApiError::new(
        409,
        "project_deleted",
        format!(
            "Project `{project_id}` was deleted in the last {} days; its id stays reserved while its late events are deleted and its audit records are kept. Choose another project id.",
            TOMBSTONE_SECONDS / 86_400
        ),
    )
}

/// `POST /admin/projects/{id}/closure` body: `{"delete_after_days": 0..=30}` (default 30; empty
/// body too). The closure as scheduled at `now_ms`.
pub fn parse_closure(body: &[u8], now_ms: i64) -> Result<Closure, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_closure",
            format!(
                "Send {{\"delete_after_days\": N}} with N a whole number from 0 to {MAX_CLOSURE_DAYS}, or no body for {MAX_CLOSURE_DAYS}."
            ),
        )
    };
    let days = if body.iter().all(u8::is_ascii_whitespace) {
        MAX_CLOSURE_DAYS
    } else {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| bad())?;
        match v.as_object().ok_or_else(bad)?.get("delete_after_days") {
            None => MAX_CLOSURE_DAYS,
            Some(d) => d.as_u64().filter(|d| *d <= u64::from(MAX_CLOSURE_DAYS)).ok_or_else(bad)? as u32,
        }
    };
    Ok(Closure { requested_ms: now_ms, due_ms: now_ms + i64::from(days) * DAY_MS })
}

/// Where a scheduled closure is kept (KV `ERASURES`, beside the visitors' erasures).
pub fn closure_key(project_id: &str) -> String {
    format!("closure:{project_id}")
}

/// What a deletion's tombstone holds: when the deletion last ran to its end. Until it has, the
/// tombstone has no expiry and the daily job keeps finishing it (ClickHouse or KV down, a grant
/// missing: it is logged each day); from then on it lasts TOMBSTONE_SECONDS, while the daily
/// job deletes rows that were still queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub completed_ms: Option<i64>,
}

impl Tombstone {
    /// Whether the daily job runs the deletion again at `now_ms`: until it has once run to its
    /// end, then for REAPPLY_MS. After that the tombstone only reserves the id.
    pub fn reapplies(&self, now_ms: i64) -> bool {
        self.completed_ms.is_none_or(|done| now_ms - done < REAPPLY_MS)
    }

    /// A tombstone's value as stored; an unreadable one counts as not completed.
    pub fn parse(value: &str) -> Tombstone {
        serde_json::from_str(value).unwrap_or_default()
    }

    pub fn to_value(self) -> String {
        serde_json::to_string(&self).unwrap_or_default()
    }
}

/// Where a deletion's tombstone is kept while the daily job re-applies it.
pub fn tombstone_key(project_id: &str) -> String {
    format!("deleted:{project_id}")
}

/// The project named by a closure or tombstone key, and which it is.
pub fn parse_key(key: &str) -> Option<(KeyKind, &str)> {
    if let Some(p) = key.strip_prefix("closure:") {
        return Some((KeyKind::Closure, p));
    }
    key.strip_prefix("deleted:").map(|p| (KeyKind::Tombstone, p))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Closure,
    Tombstone,
}

/// The tables that hold rows by project: every MergeTree table of `database` with a
/// `project_id` column (views are skipped: their data lives in the tables they write to).
pub fn tables_sql(database: &str) -> String {
    let db = sql::string(database);
    format!(
        "SELECT name FROM system.tables WHERE database = {db} AND engine LIKE '%MergeTree' \
         AND name IN (SELECT table FROM system.columns WHERE database = {db} AND name = 'project_id') ORDER BY name FORMAT TSV"
    )
}

/// The table names out of `tables_sql`'s answer.
pub fn parse_tables(tsv: &str) -> Vec<String> {
    tsv.lines().map(str::trim).filter(|l| !l.is_empty()).map(unescape_tsv).collect()
}

fn unescape_tsv(s: &str) -> String {
    s.replace("\\\\", "\u{0}").replace("\\t", "\t").replace("\\n", "\n").replace('\u{0}', "\\")
}

/// A table name as a ClickHouse identifier, whatever it holds (`.inner.x` included).
fn identifier(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// One mutation per table deleting the project's rows.
pub fn delete_sql(database: &str, tables: &[String], project_id: &str) -> Vec<String> {
    let p = sql::string(project_id);
    tables.iter().map(|t| format!("ALTER TABLE {database}.{} DELETE WHERE project_id = {p}", identifier(t))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_clock::now_ms as now;

    #[test]
    fn a_daily_job_carries_a_closure_out_within_thirty_days_whatever_its_hour() {
        // The cron runs once a day at a fixed time: every phase of the day is tried, for
        // closures requested at every hour of a day.
        let hour = DAY_MS / 24;
        let base = now();
        for requested in (0..24).map(|h| base + h * hour + 61_000) {
            for days in [0u32, 1, 7, 28, 29, 30] {
                let c = parse_closure(format!(r#"{{"delete_after_days": {days}}}"#).as_bytes(), requested).unwrap();
                for phase in (0..DAY_MS).step_by(17 * 60_000) {
                    let mut run = requested - requested.rem_euclid(DAY_MS) + phase;
                    if run < requested {
                        run += DAY_MS;
                    }
                    while !c.is_due(run) {
                        run += DAY_MS;
                    }
                    let limit = requested + i64::from(MAX_CLOSURE_DAYS) * DAY_MS;
                    assert!(run <= limit, "{days} days, requested {requested}, run at phase {phase}: {} h late", (run - limit) / hour);
                    let earliest = if days <= 28 { c.due_ms } else { c.due_ms - DAY_MS - hour };
                    assert!(run >= earliest, "{days} days: carried out {} h before its date", (c.due_ms - run) / hour);
                }
            }
        }
    }

    #[test]
    fn closures_wait_at_most_thirty_days_and_fall_due_on_time() {
        let now = now();
        assert_eq!(parse_closure(b"", now).unwrap(), Closure { requested_ms: now, due_ms: now + 30 * DAY_MS });
        assert_eq!(parse_closure(b"{}", now).unwrap().due_ms, now + 30 * DAY_MS);
        let c = parse_closure(br#"{"delete_after_days": 7}"#, now).unwrap();
        assert_eq!(c.due_ms, now + 7 * DAY_MS);
        assert!(!c.is_due(now) && !c.is_due(c.due_ms - 1) && c.is_due(c.due_ms) && c.is_due(c.due_ms + DAY_MS));
        assert!(parse_closure(br#"{"delete_after_days": 0}"#, now).unwrap().is_due(now));
        for bad in [&br#"{"delete_after_days": 31}"#[..], br#"{"delete_after_days": -1}"#, br#"{"delete_after_days": "7"}"#, b"[", b"7"] {
            let e = parse_closure(bad, now).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_closure"), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_tombstone_says_whether_its_deletion_completed() {
        let now = now();
        let done = Tombstone { completed_ms: Some(now) };
        assert_eq!(Tombstone::parse(&done.to_value()), done);
        assert_eq!(Tombstone::parse(&Tombstone::default().to_value()).completed_ms, None);
        assert_eq!(Tombstone::parse("").completed_ms, None, "unreadable: not completed, so it is finished again");
    }

    #[test]
    fn a_tombstone_reserves_the_id_as_long_as_the_audit_records_and_reapplies_eight_days() {
        let now = now();
        assert_eq!(TOMBSTONE_SECONDS, crate::privacy::audit::KEEP_SECONDS);
        let done = Tombstone { completed_ms: Some(now) };
        assert!(Tombstone::default().reapplies(now + 100 * DAY_MS), "not completed: finished again, however late");
        assert!(done.reapplies(now) && done.reapplies(now + 8 * DAY_MS - 1));
        assert!(!done.reapplies(now + 8 * DAY_MS) && !done.reapplies(now + 89 * DAY_MS));
    }

    #[test]
    fn keys_name_their_project_and_kind() {
        assert_eq!(parse_key(&closure_key("proj_a")), Some((KeyKind::Closure, "proj_a")));
        assert_eq!(parse_key(&tombstone_key("proj_a")), Some((KeyKind::Tombstone, "proj_a")));
        assert_eq!(parse_key(r#"["proj_a","v1"]"#), None, "a visitor's erasure is not a project's");
        assert!(check_project_id("proj_dev-1").is_ok());
        for bad in ["", "a/b", "a b", "x'; DROP", &"p".repeat(65)] {
            assert_eq!(check_project_id(bad).unwrap_err().code, "invalid_project");
        }
    }

    #[test]
    fn every_table_with_a_project_column_loses_the_projects_rows() {
        let tables = parse_tables("event_id_hashes\nevents\nvisits_agg\n.inner.x\n\n");
        assert_eq!(tables, ["event_id_hashes", "events", "visits_agg", ".inner.x"]);
        let sql = delete_sql("millimetric", &tables, "p'1");
        assert_eq!(sql[1], r"ALTER TABLE millimetric.`events` DELETE WHERE project_id = 'p\'1'");
        assert_eq!(sql[3], r"ALTER TABLE millimetric.`.inner.x` DELETE WHERE project_id = 'p\'1'");
        assert!(tables_sql("millimetric").contains("name = 'project_id'"));
    }
}
