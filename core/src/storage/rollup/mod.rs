//! The rollup job: which closed UTC days to fold into the aggregates (core/src/query/aggregates.rs,
//! migrations/0004) and the statements that do it. Pure; a Cron Trigger runs it daily
//! (workers/edge/src/rollup_job.rs) and `cargo run --bin rollup` runs it from a shell (backfills).
//!
//! A run rolls up, in order:
//! 1. new days: from the day after the last rolled one (or the first day with events) through
//!    yesterday (UTC), at most `MAX_DAYS_PER_RUN`;
//! 2. days already rolled that received events since the last run (events may be sent up to
//!    30 days late; those sent ROLLED_LATE_SECONDS late or more are never rolled up), with
//!    their neighbours (a late event can join or split a visit across midnight).
//!
//! Each batch derives visits with the raw query's SQL (`query::sql::visits`) over the batch's
//! days plus one day before (so a visit that began the evening before is not counted again)
//! and two after (so a visit's late events are its own), keeps the visits that started on the
//! batch's days, and writes them under a new version. `rollup_done` gets the batch's
//! (project, day)s and version last: until then readers see the days' previous version, and a
//! failed batch is never half-visible; a project whose raw events of a re-rolled day are gone
//! (retention) wrote nothing and keeps its earlier version. `rollup_runs` gets a run's start
//! once all its batches are done: late events are those received since the last complete
//! run. Rows of superseded versions stay (unread) until their month is dropped by hand; they
//! hold sketches only.
//!
//! Events inserted long after they were received (a dead-letter replay days later) reach the
//! aggregates only if their day is rolled again: `cargo run --bin rollup -- --days A..B`.

use crate::query::aggregates::{DONE_TABLE, RUNS_TABLE};
pub mod driver;

use crate::query::sql::{self, VISIT_ATTRS};
use crate::storage::retention;
use time::{Date, Duration, OffsetDateTime, Time};

/// New days rolled in one run: more than the longest raw window (365 days, kept up to 7 more,
/// and events sent up to 30 days late),
/// so the first run after a deploy rolls up every day still held before the retention run
/// that follows it can drop any.
pub const MAX_DAYS_PER_RUN: usize = 450;
/// Days per statement set: bounds the memory of one visit derivation.
pub const BATCH_DAYS: usize = 7;
/// Events received this long before the last run's start count as new for this run: an event
/// is inserted up to the queue's longest stay after it was received (ClickHouse down, or its
/// password wrong, for hours: `clickhouse::longest_queue_stay_seconds`), plus an hour.
pub const LATE_MARGIN_SECONDS: i64 = 9 * 3600;
/// How late an event may be sent (pipeline: `timestamp_out_of_range` past 30 days), plus a day.
pub const LATE_DAYS: i64 = 31;
/// Events received this much after their time or more are kept as raw events but never rolled
/// up: re-rolling their day and its neighbours would read the day before them, whose raw
/// events retention may have dropped by then (eve_may_be_gone), and count a visit that crossed
/// midnight twice. The same for every event in every run, so no run sees what another did not.
pub const ROLLED_LATE_SECONDS: i64 = 26 * 86_400;

/// The condition that keeps the events the rollup reads: those not sent too late.
fn not_too_late() -> String {
    format!("toUInt32(received_at) < toUInt32(timestamp) + {ROLLED_LATE_SECONDS}")
}

fn day_start(d: Date) -> i64 {
    d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()
}

fn parse_date(s: &str) -> Option<Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), &f).ok().filter(|d| d.year() > 1970)
}

/// What the job last did: the last day rolled, and when the last complete scheduled run
/// started (ms; late events are those received since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    pub frontier: Option<Date>,
    pub last_version_ms: u64,
}

/// The days rolled are marked under project '' (whatever projects had events that day).
pub fn state_sql(database: &str) -> String {
    format!(
        "SELECT toString(max(day)), (SELECT max(started_ms) FROM {database}.{RUNS_TABLE}), count() FROM {database}.{DONE_TABLE} WHERE project_id = '' FORMAT TabSeparated"
    )
}

pub fn parse_state(answer: &str) -> Result<State, String> {
    let cols: Vec<&str> = answer.trim_end_matches('\n').split('\t').collect();
    match cols.as_slice() {
        [_, _, "0"] => Ok(State::default()),
        [day, version, _] => Ok(State {
            frontier: Some(parse_date(day).ok_or_else(|| format!("rollup state: bad day {day:?}"))?),
            last_version_ms: version.parse().map_err(|_| format!("rollup state: bad version {version:?}"))?,
        }),
        _ => Err(format!("rollup state: unreadable answer {answer:?}")),
    }
}

/// The first day with events (asked only before the first run).
pub fn first_day_sql(database: &str, table: &str) -> String {
    format!("SELECT toString(min(toDate(timestamp, 'UTC'))), count() FROM {database}.{table} FORMAT TabSeparated")
}

pub fn parse_first_day(answer: &str) -> Result<Option<Date>, String> {
    match answer.trim_end_matches('\n').split_once('\t') {
        Some((_, "0")) => Ok(None),
        Some((day, _)) => parse_date(day).map(Some).ok_or_else(|| format!("rollup: bad first day {day:?}")),
        None => Err(format!("rollup: unreadable first day {answer:?}")),
    }
}

/// Days up to `frontier` that received events since the last run (minus the margin).
pub fn late_days_sql(database: &str, table: &str, state: &State, today: Date) -> Option<String> {
    let frontier = state.frontier?;
    // Never below 0: 18.16's toDateTime(-3600) wraps to 2106 (after a first run cut short).
    let since = ((state.last_version_ms / 1000) as i64 - LATE_MARGIN_SECONDS).max(0);
    let oldest = day_start(today - Duration::days(LATE_DAYS + 1));
    Some(format!(
        "SELECT DISTINCT toString(toDate(timestamp, 'UTC')) FROM {database}.{table} WHERE received_at >= toDateTime({since}) \
         AND timestamp >= toDateTime({oldest}) AND timestamp < toDateTime({}) AND {} FORMAT TabSeparated",
        // The day after the frontier too: a visit that began on the frontier day and went on
        // past the run that rolled it up ends on it.
        day_start(frontier + Duration::days(2)),
        not_too_late()
    ))
}

pub fn parse_days(answer: &str) -> Vec<Date> {
    answer.lines().filter_map(parse_date).collect()
}

/// The batches of days this run rolls up, in order: new days, then late ones.
pub fn batches(state: &State, first_day: Option<Date>, late: &[Date], today: Date) -> Vec<Vec<Date>> {
    let yesterday = today - Duration::days(1);
    let start = match state.frontier {
        Some(f) => f + Duration::days(1),
        None => match first_day {
            Some(d) => d,
            None => return Vec::new(),
        },
    };
    let mut new = Vec::new();
    let mut d = start;
    while d <= yesterday && new.len() < MAX_DAYS_PER_RUN {
        new.push(d);
        d += Duration::days(1);
    }
    let mut again: Vec<Date> = Vec::new();
    if let Some(f) = state.frontier {
        let mut late = late.to_vec();
        late.sort();
        late.dedup();
        // A late event is rolled up within a day of being received, long before the day before
        // its neighbours can be dropped (ROLLED_LATE_SECONDS), unless runs failed in between
        // while retention went on. Then a late day whose earlier neighbour's eve may be gone is
        // held back, with the late days next to it (whose visits it may join), for this run.
        let (mut previous, mut held_back) = (None::<Date>, false);
        for &d in &late {
            if previous.is_none_or(|p| d - p > Duration::days(2)) {
                held_back = eve_may_be_gone(d - Duration::days(1), today);
            }
            previous = Some(d);
            if held_back {
                continue;
            }
            for n in [d - Duration::days(1), d, d + Duration::days(1)] {
                if n <= f && n >= start.min(f) - Duration::days(LATE_DAYS + 2) && !again.contains(&n) && !new.contains(&n) {
                    again.push(n);
                }
            }
        }
    }
    again.sort();
    new.chunks(BATCH_DAYS).chain(again.chunks(BATCH_DAYS)).map(<[Date]>::to_vec).collect()
}

/// Whether the raw events of the day before `day` may already be dropped: its week past the
/// shortest retention (storage::retention::expired) as of `today`. Derived without them, a
/// visit that crossed midnight into `day` would count as one that started on it, while that
/// eve's version still counts it: so a day rolled before is not rolled again then.
pub fn eve_may_be_gone(day: Date, today: Date) -> bool {
    let eve = day - Duration::days(1);
    let week_start = eve - Duration::days(i64::from(eve.weekday().number_days_from_monday()));
    let shortest = crate::keys::RETENTION_CHOICES.into_iter().min().unwrap_or(30);
    !retention::expired(&[retention::Partition { retention_days: shortest, week_start }], today).is_empty()
}

fn days_list(days: &[Date]) -> String {
    days.iter().map(|d| format!("toDate('{d}')")).collect::<Vec<_>>().join(", ")
}

/// The three inserts that roll up `days` (sorted, non-empty) under `version`.
pub fn insert_sql(database: &str, table: &str, days: &[Date], version: u64) -> [String; 3] {
    let (first, last) = (days[0], days[days.len() - 1]);
    let window = format!(
        "timestamp >= toDateTime({}) AND timestamp < toDateTime({}) AND {}",
        day_start(first - Duration::days(1)),
        day_start(last + Duration::days(3)),
        not_too_late()
    );
    let visits = sql::visits(database, table, &window);
    let started = format!("toDate(toDateTime(start), 'UTC') IN ({})", days_list(days));
    let bucket = "toStartOfHour(toDateTime(start), 'UTC')";
    let attrs: Vec<&str> = VISIT_ATTRS.iter().map(|(_, v)| *v).collect();
    let per_visit = format!(
        "INSERT INTO {database}.visit_rollup (project_id, version, bucket, is_bot, visitor, entry_page, exit_page, {attrs}, pageviews, events, bounce, duration) \
         SELECT project_id, {version}, {bucket}, is_bot, visitor, entry_page, exit_page, {attrs}, toUInt64(vpv), toUInt64(vpv + vce), toUInt8(vpv = 1 AND vce = 0), toUInt64(duration) \
         FROM ({visits}) WHERE {started}",
        attrs = attrs.join(", "),
    );
    // A visit's event tuple: 1 t, 2 event_type, 3 event_name, 4 url_host, 5 url_path, 6 prop_keys, 7 prop_values.
    let per_page = format!(
        "INSERT INTO {database}.page_rollup (project_id, version, bucket, is_bot, visitor, visit_key, host, page, event_name, pageviews, events, bounce) \
         SELECT project_id, {version}, {bucket} AS b, is_bot, visitor, concat(visitor, '/', toString(start), '/', toString(is_bot)) AS k, ev.4 AS h, ev.5 AS p, ev.3 AS n, \
         toUInt64(countIf(ev.2 = 'pageview')), toUInt64(count()), any(toUInt8(vpv = 1 AND vce = 0)) \
         FROM ({visits}) ARRAY JOIN vevs AS ev WHERE {started} GROUP BY project_id, is_bot, visitor, start, b, k, h, p, n"
    );
    let per_prop = format!(
        "INSERT INTO {database}.prop_rollup (project_id, version, bucket, is_bot, visitor, visit_key, event_name, prop_key, prop_value, pageviews, events) \
         SELECT project_id, {version}, b, is_bot, visitor, k, n, pk, pv, toUInt64(sum(is_pageview)), toUInt64(count()) FROM (\
         SELECT project_id, is_bot, visitor, concat(visitor, '/', toString(start), '/', toString(is_bot)) AS k, {bucket} AS b, ev.3 AS n, toUInt8(ev.2 = 'pageview') AS is_pageview, ev.6 AS ks, ev.7 AS vs \
         FROM ({visits}) ARRAY JOIN vevs AS ev WHERE {started} AND notEmpty(ev.6)) ARRAY JOIN ks AS pk, vs AS pv \
         GROUP BY project_id, is_bot, visitor, k, b, n, pk, pv"
    );
    [per_visit, per_page, per_prop]
}

/// Recorded after the inserts, in order: each project with raw events on each of the days
/// (from now on readers take that project's day from `version`, even where no visit starts
/// on it any more; a project whose raw events of the day are gone, by retention, keeps its
/// earlier version), then the days themselves (project '').
pub fn done_sql(database: &str, table: &str, days: &[Date], version: u64, now_ms: i64) -> [String; 2] {
    let at = now_ms / 1000;
    let rows: Vec<String> = days.iter().map(|d| format!("('', '{d}', {version}, {at})")).collect();
    let (first, last) = (days[0], days[days.len() - 1]);
    [
        format!(
            "INSERT INTO {database}.{DONE_TABLE} (project_id, day, version, finished_at) SELECT DISTINCT project_id, toDate(timestamp, 'UTC') AS d, {version}, {at} FROM {database}.{table} \
             WHERE timestamp >= toDateTime({}) AND timestamp < toDateTime({}) AND d IN ({}) AND {}",
            day_start(first),
            day_start(last + Duration::days(1)),
            days_list(days),
            not_too_late()
        ),
        format!("INSERT INTO {database}.{DONE_TABLE} (project_id, day, version, finished_at) VALUES {}", rows.join(", ")),
    ]
}

/// Recorded when a scheduled run finished every batch: its late events are dealt with.
pub fn run_done_sql(database: &str, started_ms: u64, now_ms: i64) -> String {
    format!("INSERT INTO {database}.{RUNS_TABLE} (started_ms, finished_at) VALUES ({started_ms}, {})", now_ms / 1000)
}

/// The UTC day of a time in ms (the trigger's scheduled time).
pub fn today(now_ms: i64) -> Result<Date, String> {
    OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).map(|t| t.date()).map_err(|e| format!("bad time: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    /// An event held on the queue for hours (ClickHouse down, its password wrong) lands with
    /// its `received_at` that old: it was looked for only an hour back, so a day already rolled
    /// up never counted it.
    #[test]
    fn late_events_are_looked_for_as_far_back_as_the_queue_holds_them() {
        let stay = crate::storage::clickhouse::longest_queue_stay_seconds() as i64;
        assert!(LATE_MARGIN_SECONDS >= stay + 3600, "margin {LATE_MARGIN_SECONDS} s, the queue holds events {stay} s");
    }

    #[test]
    fn the_first_run_starts_at_the_first_day_and_later_runs_at_the_next() {
        let today = date!(2026 - 12 - 01);
        let first = batches(&State::default(), Some(date!(2026 - 11 - 20)), &[], today);
        assert_eq!(first.iter().map(Vec::len).collect::<Vec<_>>(), vec![7, 4], "Nov 20 through Nov 30, by week");
        assert_eq!((first[0][0], *first[1].last().unwrap()), (date!(2026 - 11 - 20), date!(2026 - 11 - 30)));
        assert!(batches(&State::default(), None, &[], today).is_empty(), "no events, nothing to roll");
        let state = State { frontier: Some(date!(2026 - 11 - 30)), last_version_ms: 1 };
        assert!(batches(&state, None, &[], today).is_empty(), "yesterday is rolled: nothing new today");
        // A long history is caught up over several runs.
        let long = batches(&State::default(), Some(date!(2025 - 01 - 01)), &[], today);
        assert_eq!(long.iter().map(Vec::len).sum::<usize>(), MAX_DAYS_PER_RUN);
    }

    #[test]
    fn days_that_received_late_events_are_rolled_again_with_their_neighbours() {
        let state = State { frontier: Some(date!(2026 - 11 - 29)), last_version_ms: 1_796_000_000_000 };
        let b = batches(&state, None, &[date!(2026 - 11 - 10), date!(2026 - 11 - 29)], date!(2026 - 12 - 01));
        assert_eq!(b[0], vec![date!(2026 - 11 - 30)]);
        assert_eq!(
            b[1],
            vec![date!(2026 - 11 - 09), date!(2026 - 11 - 10), date!(2026 - 11 - 11), date!(2026 - 11 - 28), date!(2026 - 11 - 29)],
            "never past the frontier, never twice"
        );
        let sql = late_days_sql("db", "events", &state, date!(2026 - 12 - 01)).unwrap();
        assert!(sql.contains(&format!("received_at >= toDateTime({})", 1_796_000_000 - LATE_MARGIN_SECONDS)), "{sql}");
        assert!(late_days_sql("db", "events", &State::default(), date!(2026 - 12 - 01)).is_none());
    }

    #[test]
    fn state_and_days_read_back() {
        assert_eq!(parse_state("0000-00-00\t0\t0\n").unwrap(), State::default());
        assert_eq!(
            parse_state("2026-11-30\t1796000000000\t12\n").unwrap(),
            State { frontier: Some(date!(2026 - 11 - 30)), last_version_ms: 1_796_000_000_000 }
        );
        assert!(parse_state("garbage").is_err());
        assert_eq!(parse_first_day("1970-01-01\t0\n").unwrap(), None);
        assert_eq!(parse_first_day("2025-11-02\t5\n").unwrap(), Some(date!(2025 - 11 - 02)));
        assert_eq!(parse_days("2026-11-01\n2026-11-03\n"), vec![date!(2026 - 11 - 01), date!(2026 - 11 - 03)]);
    }

    /// Every statement that reads raw events for the rollup leaves out events sent too late,
    /// the same in every run.
    #[test]
    fn events_sent_too_late_are_never_rolled_up() {
        let state = State { frontier: Some(date!(2026 - 11 - 29)), last_version_ms: 1_796_000_000_000 };
        let cond = format!("toUInt32(received_at) < toUInt32(timestamp) + {ROLLED_LATE_SECONDS}");
        let late = late_days_sql("db", "events", &state, date!(2026 - 12 - 01)).unwrap();
        let [v, p, q] = insert_sql("db", "events", &[date!(2026 - 11 - 02)], 7);
        let [projects, _] = done_sql("db", "events", &[date!(2026 - 11 - 02)], 7, 1_000);
        for s in [&late, &v, &p, &q, &projects] {
            assert!(s.contains(&cond), "{s}");
        }
    }

    /// On every day of the year: an event sent just under ROLLED_LATE_SECONDS late, re-rolled
    /// by the latest run that finds it (a day and the late margin after it was received), has
    /// the eve of its day's earlier neighbour still held in every retention class. So no late
    /// event that is rolled up reaches back to dropped raw events.
    #[test]
    fn a_late_event_that_is_rolled_up_never_reaches_a_dropped_eve() {
        let start = OffsetDateTime::now_utc().date();
        for offset in 0..366 {
            let run_day = start + Duration::days(offset);
            let run_at = day_start(run_day) + 86_399;
            let received = run_at - 86_400 - LATE_MARGIN_SECONDS;
            let sent_at = received - ROLLED_LATE_SECONDS + 1;
            let day = OffsetDateTime::from_unix_timestamp(sent_at).unwrap().date();
            let earliest_rerolled = day - Duration::days(1);
            assert!(!eve_may_be_gone(earliest_rerolled, run_day), "{run_day}: an event of {day} reaches a dropped eve");
        }
    }

    /// After rollup runs failed while retention went on (two days: the run of Dec 3 finds
    /// events received Nov 29), a late day whose earlier neighbour's eve is gone is held back,
    /// with the late days next to it; a late day clear of it is rolled.
    #[test]
    fn after_failed_runs_a_late_day_next_to_a_dropped_eve_is_held_back() {
        // The run of Dec 3 after runs failed: the late days it finds go back as far as events
        // received before the failures (late_days_sql looks back from the last complete run).
        let state = State { frontier: Some(date!(2026 - 12 - 02)), last_version_ms: 1 };
        let today = date!(2026 - 12 - 03);
        // Nov 3's neighbour Nov 2 has its eve, Nov 1, in the week of Oct 26: past 30 days on Dec 2.
        assert!(eve_may_be_gone(date!(2026 - 11 - 02), today));
        assert!(batches(&state, None, &[date!(2026 - 11 - 03)], today).is_empty());
        assert!(batches(&state, None, &[date!(2026 - 11 - 05), date!(2026 - 11 - 03)], today).is_empty(), "next to it: held too");
        assert_eq!(
            batches(&state, None, &[date!(2026 - 11 - 03), date!(2026 - 11 - 06)], today),
            vec![vec![date!(2026 - 11 - 05), date!(2026 - 11 - 06), date!(2026 - 11 - 07)]]
        );
    }

    #[test]
    fn a_batch_reads_a_day_either_side_and_keeps_the_visits_that_started_in_it() {
        let [v, p, q] = insert_sql("millimetric", "events", &[date!(2026 - 11 - 02), date!(2026 - 11 - 03)], 77);
        // Nov 1 00:00 UTC to Nov 6 00:00 UTC.
        for s in [&v, &p, &q] {
            assert!(s.contains("timestamp >= toDateTime(1793491200) AND timestamp < toDateTime(1793923200)"), "{s}");
            assert!(s.contains("IN (toDate('2026-11-02'), toDate('2026-11-03'))") && s.contains("SELECT project_id, 77,"), "{s}");
            assert!(!s.contains("is_bot = 0"), "bots are rolled up too, as their own rows");
        }
        assert!(
            v.starts_with("INSERT INTO millimetric.visit_rollup")
                && p.starts_with("INSERT INTO millimetric.page_rollup")
                && q.starts_with("INSERT INTO millimetric.prop_rollup")
        );
        let [projects, days] = done_sql("millimetric", "events", &[date!(2026 - 11 - 02)], 77, 1_000_000_999);
        // The projects with raw events that day, not those whose visits start on it: a
        // re-roll that moves a day's only visit to the day before must still supersede it.
        assert!(projects.contains("SELECT DISTINCT project_id, toDate(timestamp, 'UTC') AS d, 77, 1000000 FROM millimetric.events WHERE timestamp >= toDateTime(1793577600) AND timestamp < toDateTime(1793664000) AND d IN (toDate('2026-11-02'))"), "{projects}");
        assert_eq!(
            days,
            "INSERT INTO millimetric.rollup_done (project_id, day, version, finished_at) VALUES ('', '2026-11-02', 77, 1000000)"
        );
    }
}
