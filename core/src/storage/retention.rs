//! Retention: which weeks of raw events are past their project's window, and the statements
//! that delete them.
//!
//! `events` is partitioned by (retention_days, toMonday(timestamp)) (migrations/0001), so a
//! partition holds one retention class and one week, and expiry is a DROP PARTITION: no
//! mutation, no rewrite of other data. A week is dropped once its last possible event is past
//! the window, so an event is kept for at least its window and at most 7 days longer. A daily
//! Cron Trigger runs the drops (workers/edge/src/retention_job.rs); running it again changes nothing.
//! There are no aggregate tables yet; when there are, they are not touched by this.

use time::{Date, Duration, Month};

/// One partition of `events`: a retention class and the Monday its week starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Partition {
    pub retention_days: u16,
    pub week_start: Date,
}

/// The query listing the table's partitions; the answer has one `partition_id` per line.
pub fn list_partitions_sql(database: &str, table: &str) -> String {
    format!(
        "SELECT DISTINCT partition_id FROM system.parts WHERE database = '{}' AND table = '{}' AND active FORMAT TabSeparated",
        database, table
    )
}

/// A partition id as ClickHouse spells it for this key: `90-20260105`. None for anything else
/// (a partition of another layout is never dropped).
pub fn parse_partition_id(id: &str) -> Option<Partition> {
    let (days, date) = id.trim().split_once('-')?;
    let retention_days: u16 = days.parse().ok()?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = date[0..4].parse().ok()?;
    let month = Month::try_from(date[4..6].parse::<u8>().ok()?).ok()?;
    let day: u8 = date[6..8].parse().ok()?;
    let week_start = Date::from_calendar_date(year, month, day).ok()?;
    Some(Partition { retention_days, week_start })
}

/// The partitions whose whole week lies more than their retention before `today` (UTC), in
/// order. A retention of 0 days is not a window anyone chose: such partitions are kept.
pub fn expired(partitions: &[Partition], today: Date) -> Vec<Partition> {
    let mut out: Vec<Partition> = partitions
        .iter()
        .copied()
        .filter(|p| p.retention_days > 0)
        .filter(|p| {
            // The week's events are all before week_start + 7 days; the last of them expires
            // retention_days after that.
            let week_end = p.week_start + Duration::days(7);
            week_end + Duration::days(i64::from(p.retention_days)) <= today
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `ALTER TABLE db.table DROP PARTITION (90, '2026-01-05')`: the partition key's value, a
/// form ClickHouse 18.16 and current servers both take. Names must be plain identifiers.
pub fn drop_partition_sql(database: &str, table: &str, p: &Partition) -> String {
    format!(
        "ALTER TABLE {}.{} DROP PARTITION ({}, '{:04}-{:02}-{:02}')",
        database,
        table,
        p.retention_days,
        p.week_start.year(),
        u8::from(p.week_start.month()),
        p.week_start.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn part(days: u16, week_start: Date) -> Partition {
        Partition { retention_days: days, week_start }
    }

    #[test]
    fn partition_ids_parse_and_others_are_left_alone() {
        assert_eq!(parse_partition_id("90-20260105"), Some(part(90, date!(2026 - 01 - 05))));
        assert_eq!(parse_partition_id("365-20251229\n"), Some(part(365, date!(2025 - 12 - 29))));
        for bad in ["", "all", "202601", "90-2026010", "90-20261305", "x-20260105", "90-2026-01-05", "-20260105"] {
            assert_eq!(parse_partition_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_week_goes_only_when_its_last_event_is_past_the_window() {
        let today = date!(2026 - 11 - 22); // a Sunday
                                           // 30 days: the week of 2026-10-12 ends 2026-10-19 (exclusive); + 30 days = 2026-11-18.
        let done = part(30, date!(2026 - 10 - 12));
        // The week of 2026-10-19 ends 2026-10-26; + 30 = 2026-11-25: one of its events is 27 days old.
        let partly = part(30, date!(2026 - 10 - 19));
        // Exactly on the boundary: the 90-day week of 2026-08-17 ends 2026-08-24, + 90 = today.
        let boundary = part(90, date!(2026 - 08 - 17));
        let next_week = part(90, date!(2026 - 08 - 24));
        let old_but_kept = part(365, date!(2026 - 01 - 05));
        let old_365 = part(365, date!(2025 - 11 - 10)); // ends 2025-11-17, + 365 = 2026-11-17
        let recent = part(90, date!(2026 - 11 - 16));
        let got = expired(&[recent, partly, old_but_kept, done, next_week, boundary, old_365, done], today);
        assert_eq!(got, vec![done, boundary, old_365], "in (retention, week) order, once each");
    }

    #[test]
    fn nothing_expires_without_a_window() {
        assert!(expired(&[part(0, date!(2020 - 01 - 06))], date!(2026 - 11 - 22)).is_empty());
    }

    #[test]
    fn statements_name_the_table_and_the_partition_value() {
        assert_eq!(
            drop_partition_sql("millimetric", "events", &part(30, date!(2026 - 01 - 05))),
            "ALTER TABLE millimetric.events DROP PARTITION (30, '2026-01-05')"
        );
        assert!(list_partitions_sql("millimetric", "events").contains("database = 'millimetric' AND table = 'events' AND active"));
    }
}
