//! The statements behind usage. Names must be plain identifiers (ClickHouseConfig::check_names);
//! every value is quoted with `storage::sql::string` or is a date this module formatted.
//!
//! Stored events are counted from `events` grouped by (project, event id) first, so an id
//! stored twice (a browser-key copy beside a server's, or two consumers racing: see
//! ingest::first_write) counts once, under the day it was first received and as a server
//! event when a server sent it. Days are UTC days of `received_at`: an event sent late (up to
//! 30 days back) counts on the day it arrived, not the day it claims.

use super::{COUNTS_TABLE, DAILY_TABLE};
use crate::ingest::timestamp::{MAX_FUTURE_MS, MAX_PAST_MS};
use crate::storage::sql;
use time::{Date, Duration};

/// Whose usage: one project's (the customer's view) or every project's (the admin view).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Project(&'a str),
    All,
}

impl Scope<'_> {
    fn filter(self) -> String {
        match self {
            Scope::Project(p) => format!("project_id = {} AND ", sql::string(p)),
            Scope::All => String::new(),
        }
    }
}

fn day(d: Date) -> String {
    format!("toDate('{d}')")
}

fn midnight(d: Date) -> String {
    format!("toDateTime('{d} 00:00:00', 'UTC')")
}

/// One row per stored (project, event id) first received on `from..=to`: its day, whether a
/// server key sent it, its ingest route and bot flag. The `timestamp` bounds only let the
/// primary key narrow the scan: an event's time lies at most 30 days before its receipt and
/// five minutes after (ingest::timestamp).
fn distinct_events(database: &str, table: &str, scope: Scope, from: Date, to: Date) -> String {
    let end = to + Duration::days(1);
    let ts_from = format!("{} - {}", midnight(from), MAX_PAST_MS / 1000 + 86_400);
    let ts_to = format!("{} + {}", midnight(end), MAX_FUTURE_MS / 1000 + 3_600);
    format!(
        "SELECT project_id, event_id, toDate(min(received_at)) AS day, \
         if(max(key_kind = 'secret') = 1, 'secret', any(key_kind)) AS key_kind, any(ingest_route) AS ingest_route, max(is_bot) AS is_bot \
         FROM {database}.{table} WHERE {scope}received_at >= {} AND received_at < {} AND timestamp >= {ts_from} AND timestamp < {ts_to} \
         GROUP BY project_id, event_id",
        midnight(from),
        midnight(end),
        scope = scope.filter()
    )
}

const STORED_COLUMNS: &str = "project_id, toString(day) AS date, key_kind, ingest_route, is_bot";

/// The days of `from..=to` that a finished snapshot covers (the markers, project '').
fn snapshotted_days(database: &str, from: Date, to: Date) -> String {
    format!("SELECT day FROM {database}.{DAILY_TABLE} WHERE project_id = '' AND day >= {} AND day <= {}", day(from), day(to))
}

/// Stored events of the days no snapshot covers yet, counted from the rows (today, and any
/// day the cron has not reached).
pub fn stored_live_sql(database: &str, table: &str, scope: Scope, from: Date, to: Date) -> String {
    format!(
        "SELECT {STORED_COLUMNS}, count() AS n FROM ({}) WHERE day NOT IN ({}) \
         GROUP BY project_id, day, key_kind, ingest_route, is_bot FORMAT JSONEachRow",
        distinct_events(database, table, scope, from, to),
        snapshotted_days(database, from, to)
    )
}

/// Stored events of snapshotted days: each day's latest finished snapshot.
pub fn stored_snapshot_sql(database: &str, scope: Scope, from: Date, to: Date) -> String {
    format!(
        "SELECT {STORED_COLUMNS}, n FROM {database}.{DAILY_TABLE} WHERE {}project_id != '' AND day >= {} AND day <= {} \
         AND (day, version) IN (SELECT day, max(version) FROM {database}.{DAILY_TABLE} WHERE project_id = '' AND day >= {} AND day <= {} GROUP BY day) \
         FORMAT JSONEachRow",
        scope.filter(),
        day(from),
        day(to),
        day(from),
        day(to)
    )
}

/// The days a cron run snapshots: the `SNAPSHOT_DAYS` closed days before `today`, so an event
/// that reached ClickHouse late (a queue retry, a dead-letter replay) is in its day's count.
pub const SNAPSHOT_DAYS: i64 = 7;

/// The snapshot of `today - SNAPSHOT_DAYS ..= today - 1`, under `version`, then its markers:
/// until those are written readers count the days live, so a failed run is never half seen.
pub fn snapshot_sql(database: &str, table: &str, today: Date, version: u64) -> [String; 2] {
    let (from, to) = (today - Duration::days(SNAPSHOT_DAYS), today - Duration::days(1));
    let rows = format!(
        "INSERT INTO {database}.{DAILY_TABLE} (project_id, day, key_kind, ingest_route, is_bot, version, n) \
         SELECT project_id, day, key_kind, ingest_route, is_bot, {version}, count() FROM ({}) \
         GROUP BY project_id, day, key_kind, ingest_route, is_bot",
        distinct_events(database, table, Scope::All, from, to)
    );
    let markers: Vec<String> =
        (1..=SNAPSHOT_DAYS).map(|k| format!("('', {}, '', '', 0, {version}, 0)", day(today - Duration::days(k)))).collect();
    let done = format!(
        "INSERT INTO {database}.{DAILY_TABLE} (project_id, day, key_kind, ingest_route, is_bot, version, n) VALUES {}",
        markers.join(", ")
    );
    [rows, done]
}

/// Counters of `from..=to`: one value per (slot, flush id), so a flush sent twice counts once.
pub fn counters_sql(database: &str, scope: Scope, from: Date, to: Date) -> String {
    format!(
        "SELECT project_id, toString(day) AS date, metric, dim, sum(n) AS n FROM (\
         SELECT project_id, day, metric, dim, source_id, any(n) AS n FROM {database}.{COUNTS_TABLE} \
         WHERE {}day >= {} AND day <= {} GROUP BY project_id, day, metric, dim, source_id) \
         GROUP BY project_id, day, metric, dim FORMAT JSONEachRow",
        scope.filter(),
        day(from),
        day(to)
    )
}

/// The insert a flush sends: the statement, then its rows (tally::Flush::rows).
pub fn counters_insert(database: &str, rows: &str) -> String {
    format!("INSERT INTO {database}.{COUNTS_TABLE} (project_id, day, metric, dim, source_id, n) FORMAT JSONEachRow\n{rows}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        time::OffsetDateTime::now_utc().date()
    }

    #[test]
    fn a_project_scope_quotes_its_id_and_the_admin_scope_has_none() {
        let t = today();
        let one = stored_live_sql("db", "events", Scope::Project("p'1"), t, t);
        assert!(one.contains("project_id = 'p\\'1' AND received_at >="), "{one}");
        let all = stored_live_sql("db", "events", Scope::All, t, t);
        assert!(all.contains("WHERE received_at >="), "no project filter: {all}");
        assert!(counters_sql("db", Scope::Project("p"), t, t).contains("GROUP BY project_id, day, metric, dim, source_id"));
    }

    #[test]
    fn stored_events_are_counted_once_per_event_id_by_the_day_they_arrived() {
        let t = today();
        let s = stored_live_sql("db", "events", Scope::All, t - Duration::days(2), t);
        assert!(s.contains("GROUP BY project_id, event_id"), "{s}");
        assert!(s.contains("toDate(min(received_at)) AS day"), "{s}");
        assert!(s.contains(&format!("received_at < toDateTime('{} 00:00:00', 'UTC')", t + Duration::days(1))), "{s}");
        assert!(s.contains("day NOT IN (SELECT day FROM db.usage_daily WHERE project_id = ''"), "{s}");
    }

    #[test]
    fn a_snapshot_covers_the_closed_days_and_marks_them_after_its_rows() {
        let t = today();
        let [rows, done] = snapshot_sql("db", "events", t, 42);
        assert!(rows.starts_with("INSERT INTO db.usage_daily"), "{rows}");
        assert!(rows.contains(&format!("received_at >= toDateTime('{} 00:00:00', 'UTC')", t - Duration::days(SNAPSHOT_DAYS))), "{rows}");
        assert!(rows.contains(&format!("received_at < toDateTime('{t} 00:00:00', 'UTC')")), "today is not closed: {rows}");
        assert_eq!(done.matches(", 42, 0)").count(), SNAPSHOT_DAYS as usize);
        assert!(!done.contains(&format!("toDate('{t}')")), "{done}");
    }
}
