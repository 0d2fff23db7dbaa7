//! Usage: what each project used, per UTC day, for billing, quotas and the customer's own view
//! (`GET /v1/usage`, `GET /admin/usage`).
//!
//! Two sources, so that counting never costs a ClickHouse statement per request:
//! - **Stored events** are counted from the stored rows themselves (`sql::stored_*`): each
//!   (project, event id) once, however often a client retried it, the queue redelivered it or
//!   a dead letter was replayed, since the first write wins (ingest::first_write) and the count
//!   groups by event id. The daily cron snapshots closed days into `usage_daily` (`snapshot`),
//!   which outlives raw retention; days not yet snapshotted are counted live.
//! - **Counters** (refused events by code, queries, exports) are tallied in each isolate
//!   (`tally`) and flushed now and then as one small insert into `usage_counts`, each flush
//!   under its own id, so a flush sent twice counts once.
//!
//! `quota` decides a project's monthly quota and its hard cap; `report` turns the answers
//! into the JSON the API gives.

pub mod quota;
pub mod report;
pub mod sql;
pub mod tally;

#[cfg(test)]
mod simulation;

/// What the counters count (stored events are counted from the rows, not here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Events refused after the key was known, by error code.
    Refused,
    /// Stats API, realtime and MCP queries, by surface.
    Query,
    /// Exports, by kind (`visitor`, `project`).
    Export,
}

impl Counter {
    pub const ALL: [Counter; 3] = [Counter::Refused, Counter::Query, Counter::Export];

    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Refused => "refused",
            Counter::Query => "queries",
            Counter::Export => "exports",
        }
    }

    pub fn parse(s: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The tables (migrations/0005).
pub const COUNTS_TABLE: &str = "usage_counts";
pub const DAILY_TABLE: &str = "usage_daily";

/// `YYYY-MM-DD` of the UTC day `epoch_ms` falls in.
pub fn utc_day(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    time::OffsetDateTime::from_unix_timestamp(secs).map(|t| t.date().to_string()).unwrap_or_else(|_| "1970-01-01".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_by_name_and_days_are_utc() {
        for c in Counter::ALL {
            assert_eq!(Counter::parse(c.as_str()), Some(c));
        }
        assert_eq!(Counter::parse("events"), None);
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(86_400_000 - 1), "1970-01-01");
        assert_eq!(utc_day(86_400_000), "1970-01-02");
    }
}
