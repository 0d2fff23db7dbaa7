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
use crate::storage::clickhouse::json_u64;
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

/// The day after `d` (the last representable day stays itself: ranges are checked long before).
fn next(d: Date) -> Date {
    d.next_day().unwrap_or(d)
}

/// One row per stored (project, event id) first received on `from..=to`: its day, whether a
/// server key sent it (and the server copy's bot flag, which queries show, and its ingest route).
/// The `timestamp` bounds only let the primary key narrow the scan: an event's time lies at
/// most 30 days before its receipt and five minutes after (ingest::timestamp).
fn distinct_events(database: &str, table: &str, scope: Scope, from: Date, to: Date) -> String {
    let end = next(to);
    let ts_from = format!("{} - {}", midnight(from), MAX_PAST_MS / 1000 + 86_400);
    let ts_to = format!("{} + {}", midnight(end), MAX_FUTURE_MS / 1000 + 3_600);
    format!(
        "SELECT project_id, event_id, toDate(min(received_at)) AS day, \
         if(max(key_kind = 'secret') = 1, 'secret', any(key_kind)) AS kind, argMax(ingest_route, key_kind = 'secret') AS route, \
         argMax(is_bot, key_kind = 'secret') AS bot \
         FROM {database}.{table} WHERE {scope}received_at >= {} AND received_at < {} AND timestamp >= {ts_from} AND timestamp < {ts_to} \
         GROUP BY project_id, event_id",
        midnight(from),
        midnight(end),
        scope = scope.filter()
    )
}

/// The columns of a stored-events answer, from `usage_daily`.
const STORED_COLUMNS: &str = "project_id, toString(day) AS date, key_kind, ingest_route, is_bot";
/// The same from `distinct_events` (whose names differ from the raw columns they come from:
/// ClickHouse would read an alias named like a column inside that column's own aggregates).
const DISTINCT_COLUMNS: &str = "project_id, toString(day) AS date, kind AS key_kind, route AS ingest_route, bot AS is_bot";

/// The finished snapshots of `from..=to`: each (day, version) marked (project ''). Read once
/// per answer, and handed to both statements below, so a snapshot finishing in between counts
/// no day twice and misses none.
pub fn marked_sql(database: &str, from: Date, to: Date) -> String {
    format!(
        "SELECT toString(day) AS date, version FROM {database}.{DAILY_TABLE} WHERE project_id = '' AND day >= {} AND day <= {} FORMAT JSONEachRow",
        day(from),
        day(to)
    )
}

/// `marked_sql`'s answer: (day, version) pairs.
pub fn parse_marked(answer: &str) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    for line in answer.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("usage: unreadable marker: {e}"))?;
        let date = v["date"].as_str().filter(|d| is_day(d)).ok_or("usage: a marker without a date")?;
        let version = json_u64(&v["version"]).ok_or("usage: a marker without a version")?;
        out.push((date.to_string(), version));
    }
    Ok(out)
}

/// `YYYY-MM-DD` (what is put in SQL text from an answer).
fn is_day(s: &str) -> bool {
    s.len() == 10 && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() })
}

/// Stored events of the days no snapshot covers (`marked`), counted from the rows: today,
/// and any day the cron has not reached.
pub fn stored_live_sql(database: &str, table: &str, scope: Scope, from: Date, to: Date, marked: &[(String, u64)]) -> String {
    let mut days: Vec<&str> = marked.iter().map(|(d, _)| d.as_str()).filter(|d| is_day(d)).collect();
    days.sort_unstable();
    days.dedup();
    let skip = if days.is_empty() { String::new() } else { format!(" WHERE date NOT IN ('{}')", days.join("', '")) };
    format!(
        "SELECT {DISTINCT_COLUMNS}, count() AS n FROM ({}){skip} \
         GROUP BY project_id, day, kind, route, bot FORMAT JSONEachRow",
        distinct_events(database, table, scope, from, to)
    )
}

/// Stored events of snapshotted days. A day's count never goes down once taken: of a project's
/// marked snapshots of a day, the one with the most events is read (a later one may miss rows
/// that retention or an erasure removed since; never rows it lacked before). None: no day of
/// the range is snapshotted.
pub fn stored_snapshot_sql(database: &str, scope: Scope, marked: &[(String, u64)]) -> Option<String> {
    let pairs: Vec<String> = marked.iter().filter(|(d, _)| is_day(d)).map(|(d, v)| format!("('{d}', {v})")).collect();
    if pairs.is_empty() {
        return None;
    }
    let f = scope.filter();
    Some(format!(
        "SELECT {STORED_COLUMNS}, n FROM {database}.{DAILY_TABLE} WHERE {f}project_id != '' AND (project_id, day, version) IN (\
         SELECT project_id, day, argMax(version, total) FROM (\
         SELECT project_id, day, version, sum(n) AS total FROM {database}.{DAILY_TABLE} \
         WHERE {f}project_id != '' AND (toString(day), version) IN ({}) GROUP BY project_id, day, version) \
         GROUP BY project_id, day) FORMAT JSONEachRow",
        pairs.join(", ")
    ))
}

/// The days a cron run snapshots: the `SNAPSHOT_DAYS` closed days before `today`, so an event
/// that reached ClickHouse late (a queue retry, a dead-letter replay) is in its day's count.
pub const SNAPSHOT_DAYS: i64 = 7;

/// The snapshot of `today - SNAPSHOT_DAYS ..= today - 1`, under `version`, then its markers:
/// until those are written readers count the days live, so a failed run is never half seen.
pub fn snapshot_sql(database: &str, table: &str, today: Date, version: u64) -> [String; 2] {
    let (from, to) = (today.saturating_sub(Duration::days(SNAPSHOT_DAYS)), today.saturating_sub(Duration::days(1)));
    let rows = format!(
        "INSERT INTO {database}.{DAILY_TABLE} (project_id, day, key_kind, ingest_route, is_bot, version, n) \
         SELECT project_id, day, kind, route, bot, {version}, count() FROM ({}) \
         GROUP BY project_id, day, kind, route, bot",
        distinct_events(database, table, Scope::All, from, to)
    );
    let markers: Vec<String> =
        (1..=SNAPSHOT_DAYS).map(|k| format!("('', {}, '', '', 0, {version}, 0)", day(today.saturating_sub(Duration::days(k))))).collect();
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
        let one = stored_live_sql("db", "events", Scope::Project("p'1"), t, t, &[]);
        assert!(one.contains("project_id = 'p\\'1' AND received_at >="), "{one}");
        let all = stored_live_sql("db", "events", Scope::All, t, t, &[]);
        assert!(all.contains("WHERE received_at >="), "no project filter: {all}");
        assert!(counters_sql("db", Scope::Project("p"), t, t).contains("GROUP BY project_id, day, metric, dim, source_id"));
    }

    #[test]
    fn stored_events_are_counted_once_per_event_id_by_the_day_they_arrived() {
        let t = today();
        let marked = vec![((t - Duration::days(1)).to_string(), 7), ((t - Duration::days(1)).to_string(), 9)];
        let s = stored_live_sql("db", "events", Scope::All, t - Duration::days(2), t, &marked);
        assert!(s.contains("GROUP BY project_id, event_id"), "{s}");
        assert!(s.contains("toDate(min(received_at)) AS day"), "{s}");
        assert!(s.contains("argMax(is_bot, key_kind = 'secret')"), "the server copy's bot flag: {s}");
        // An event stored twice (a browser copy and a server copy) counts once, as the
        // server's: its route too, not either copy's.
        assert!(s.contains("argMax(ingest_route, key_kind = 'secret') AS route"), "the server copy's route: {s}");
        assert!(s.contains(&format!("received_at < toDateTime('{} 00:00:00', 'UTC')", t + Duration::days(1))), "{s}");
        assert!(s.contains(&format!("WHERE date NOT IN ('{}')", t - Duration::days(1))), "snapshotted days once: {s}");
        let snap = stored_snapshot_sql("db", Scope::All, &marked).unwrap();
        assert!(snap.contains(&format!("IN (('{0}', 7), ('{0}', 9))", t - Duration::days(1))), "{snap}");
        assert!(snap.contains("argMax(version, total)"), "the fullest snapshot of a day: {snap}");
        assert_eq!(stored_snapshot_sql("db", Scope::All, &[]), None);
    }

    #[test]
    fn markers_are_read_and_only_dates_reach_sql() {
        let m = parse_marked("{\"date\":\"2026-01-02\",\"version\":\"5\"}\n").unwrap();
        assert_eq!(m, vec![("2026-01-02".to_string(), 5)]);
        assert!(parse_marked("{\"date\":\"x') OR 1\",\"version\":1}").is_err());
        let t = today();
        let sneaky = vec![("2026-01-02') OR ('1".to_string(), 1)];
        assert!(!stored_live_sql("db", "e", Scope::All, t, t, &sneaky).contains("OR ('1"));
        assert_eq!(stored_snapshot_sql("db", Scope::All, &sneaky), None);
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
