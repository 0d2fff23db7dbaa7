//! A project's whole data returned (DPA section 4): an export job that writes, to R2, every raw
//! event still kept as gzipped NDJSON split by UTC day (and within a day into parts of at most
//! `PART_ROWS` rows), then the aggregates as gzipped CSV. The job runs in the background one
//! step at a time (a queue message each); its state here is all it needs to go on, so a step
//! that fails is simply run again, and a message for a step already done is stale.
//!
//! What is exported is what was stored when the job started (`as_of`): each event id once (a
//! day's copies of an id collapse to the one received last by then, as queries read them).
//! Parts are named by day and index,
//! so a step run twice overwrites its own part; pages within a day go by event id (the table's
//! sort key), so none is read twice or skipped however ClickHouse merges meanwhile.
//! The aggregates follow in parts of whole days per table, each part at most about
//! `AGGREGATE_PART_ROWS` rows (a day above it is a part of its own), planned once the events are
//! written: the tables are never held whole.
//! Parts are kept `KEEP_SECONDS` (the daily cron deletes older ones), and a project's deletion
//! deletes them all, as does a visitor's erasure (its parts may hold the visitor).

use super::export_part::RowKey;
use crate::error::ApiError;
use crate::query::aggregates::{latest_versions, PAGES_TABLE, PROPS_TABLE, VISITS_TABLE};
use crate::storage::clickhouse::json_u64;
use crate::storage::sql;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Rows per part at most (about 60 MB of NDJSON for typical events, 2 MB gzipped).
pub const PART_ROWS: u64 = 100_000;
/// NDJSON per part at most, whatever the rows hold (events may carry up to 64 KiB each): a
/// part ends at the last whole row past this, so a step holds at most this much gzipped.
pub const PART_BYTES: u64 = 32 << 20;
/// Aggregate rows per part, about (a part holds whole days; one day above this is a part alone).
pub const AGGREGATE_PART_ROWS: u64 = 200_000;
/// How long parts and the job's record are kept.
pub const KEEP_SECONDS: u64 = 7 * 86_400;
/// Jobs a project may have at once (running or kept).
pub const MAX_JOBS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Done,
}

/// A part written: its name (under the job), rows and gzipped bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
}

/// Where the job stands: the next step is computed from it (`next`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub project_id: String,
    /// Who asked (`key:<hash prefix>` or `admin`), as the audit log names them.
    pub by: String,
    pub created_ms: i64,
    /// Events received up to this time (`YYYY-MM-DD hh:mm:ss`, UTC) are exported.
    pub as_of: String,
    pub status: Status,
    /// The step to run next; a message naming another is stale.
    pub step: u32,
    /// Planned: each UTC day with events, and its rows. None until planned.
    pub days: Option<Vec<(String, u64)>>,
    /// Within `days`: the day being exported, the last row written of it (its event id and
    /// visitor id: rows sort by both), the next part.
    pub day_index: usize,
    pub after_event_id: String,
    /// None in a job saved before rows were paged by visitor id too (then by event id alone).
    #[serde(default)]
    pub after_anonymous_id: Option<String>,
    pub part_index: u32,
    pub parts: Vec<Part>,
    pub rows_done: u64,
    /// Planned once the events are written: each aggregate part. None until planned.
    #[serde(default)]
    pub aggregate_parts: Option<Vec<AggregatePart>>,
    /// Aggregate parts written (of `aggregate_parts`).
    pub aggregates_done: usize,
    pub last_error: Option<String>,
    pub finished_ms: Option<i64>,
    /// The latest deletion of the project's events when the job began to read (`deletions_gate`).
    #[serde(default)]
    pub deletions_seen: Option<u64>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// List the days and their rows.
    Plan,
    /// One part of one day: rows after `after`, at most PART_ROWS.
    Events {
        day: String,
        after: After,
        name: String,
    },
    /// List each aggregate table's days and their rows.
    PlanAggregates,
    /// One aggregate table's whole days `first_day..=last_day` as CSV.
    Aggregates {
        table: &'static str,
        first_day: String,
        last_day: String,
        name: String,
    },
    Finished,
}

/// Where a day's next part starts: after the row with this event id and visitor id (from the
/// day's start when `event_id` is empty). Without a visitor id (a job saved before rows were
/// paged by it), after the event id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct After {
    pub event_id: String,
    pub anonymous_id: Option<String>,
}

/// The aggregate tables exported (every dimension each keeps, by hour), in this order.
pub const AGGREGATES: [&str; 3] = [VISITS_TABLE, PAGES_TABLE, PROPS_TABLE];

/// One part of an aggregate table: a run of its days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatePart {
    pub table: String,
    pub first_day: String,
    pub last_day: String,
}

impl AggregatePart {
    /// `aggregates/{table}/{first day}_{last day}.csv.gz`.
    pub fn name(&self) -> String {
        format!("aggregates/{}/{}_{}.csv.gz", self.table, self.first_day, self.last_day)
    }
}

impl Job {
    pub fn new(id: &str, project_id: &str, by: String, now_ms: i64) -> Job {
        Job {
            id: id.to_string(),
            project_id: project_id.to_string(),
            by,
            created_ms: now_ms,
            as_of: crate::ingest::timestamp::clickhouse_datetime(now_ms),
            status: Status::Running,
            step: 0,
            days: None,
            day_index: 0,
            after_event_id: String::new(),
            after_anonymous_id: None,
            part_index: 0,
            parts: Vec::new(),
            rows_done: 0,
            aggregate_parts: None,
            aggregates_done: 0,
            last_error: None,
            finished_ms: None,
            deletions_seen: None,
        }
    }

    /// `deletions_sql`'s answer, before and after each step: before the job reads anything it
    /// waits while a deletion is being applied, then notes the latest; a later one ends it.
    pub fn deletions_gate(&mut self, answer: &str) -> Result<Gate, String> {
        let v: Value = serde_json::from_str(answer.trim()).map_err(|e| format!("deletions: unreadable answer: {e}"))?;
        let count = |k: &str| json_u64(&v[k]).ok_or_else(|| format!("deletions: no `{k}`"));
        let (pending, latest) = (count("pending")?, count("latest")?);
        Ok(match self.deletions_seen {
            Some(seen) if latest > seen => Gate::End,
            Some(_) => Gate::Go,
            None if pending > 0 => Gate::Wait,
            None => {
                self.deletions_seen = Some(latest);
                Gate::Go
            }
        })
    }

    pub fn next(&self) -> Step {
        let Some(days) = &self.days else { return Step::Plan };
        if let Some((day, _)) = days.get(self.day_index) {
            let after = After { event_id: self.after_event_id.clone(), anonymous_id: self.after_anonymous_id.clone() };
            return Step::Events { day: day.clone(), after, name: part_name(day, self.part_index) };
        }
        let Some(parts) = &self.aggregate_parts else { return Step::PlanAggregates };
        let Some(part) = parts.get(self.aggregates_done) else { return Step::Finished };
        match AGGREGATES.into_iter().find(|t| *t == part.table) {
            Some(table) => {
                Step::Aggregates { table, first_day: part.first_day.clone(), last_day: part.last_day.clone(), name: part.name() }
            }
            None => Step::Finished, // planned only from AGGREGATES (`planned_aggregates`)
        }
    }

    /// The aggregates plan's answer (`aggregates_plan_sql`): each table's days, in runs of at
    /// most about AGGREGATE_PART_ROWS rows.
    /// A job saved before aggregates were planned counted whole tables written in
    /// `aggregates_done`: those are not planned again.
    pub fn planned_aggregates(&mut self, answer: &str, now_ms: i64) -> Result<(), String> {
        let written_whole = if self.aggregate_parts.is_none() { self.aggregates_done } else { 0 };
        let mut days: Vec<(usize, String, u64)> = Vec::new();
        for line in answer.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("aggregates plan: unreadable row: {e}"))?;
            let table = v["t"].as_str().and_then(|t| AGGREGATES.iter().position(|a| *a == t)).ok_or("aggregates plan: an unknown table")?;
            let day = v["date"].as_str().ok_or("aggregates plan: a row without `date`")?.to_string();
            let n = json_u64(&v["n"]).ok_or("aggregates plan: a row without `n`")?;
            if table >= written_whole {
                days.push((table, day, n));
            }
        }
        days.sort();
        let mut parts: Vec<(AggregatePart, u64)> = Vec::new();
        for (table, day, n) in days {
            match parts.last_mut() {
                Some((p, rows)) if p.table == AGGREGATES[table] && *rows + n <= AGGREGATE_PART_ROWS => {
                    p.last_day = day;
                    *rows += n;
                }
                _ => parts.push((AggregatePart { table: AGGREGATES[table].to_string(), first_day: day.clone(), last_day: day }, n)),
            }
        }
        self.aggregate_parts = Some(parts.into_iter().map(|(p, _)| p).collect());
        self.aggregates_done = 0;
        self.step += 1;
        self.last_error = None;
        self.finish_if_done(now_ms);
        Ok(())
    }

    /// The plan's answer (`plan_sql`).
    pub fn planned(&mut self, answer: &str) -> Result<(), String> {
        let mut days = Vec::new();
        for line in answer.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("export plan: unreadable row: {e}"))?;
            let day = v["date"].as_str().ok_or("export plan: a row without `date`")?.to_string();
            let n = json_u64(&v["n"]).ok_or("export plan: a row without `n`")?;
            days.push((day, n));
        }
        self.days = Some(days);
        self.step += 1;
        Ok(())
    }

    /// A part of the current day written, `rows` of them, the last `last`; `full`: it stopped
    /// at PART_ROWS or PART_BYTES, so the day may go on. A part that is not full ends its day.
    pub fn wrote_events(&mut self, part: Part, last: Option<RowKey>, full: bool) {
        self.rows_done += part.rows;
        if part.rows > 0 || self.part_index == 0 {
            self.parts.push(part);
        }
        match (full, last) {
            (true, Some(row)) => {
                self.after_event_id = row.event_id;
                self.after_anonymous_id = Some(row.anonymous_id);
                self.part_index += 1;
            }
            _ => {
                self.day_index += 1;
                self.after_event_id.clear();
                self.after_anonymous_id = None;
                self.part_index = 0;
            }
        }
        self.step += 1;
        self.last_error = None;
    }

    pub fn wrote_aggregates(&mut self, part: Part, now_ms: i64) {
        self.parts.push(part);
        self.aggregates_done += 1;
        self.step += 1;
        self.last_error = None;
        self.finish_if_done(now_ms);
    }

    fn finish_if_done(&mut self, now_ms: i64) {
        if self.next() == Step::Finished {
            self.status = Status::Done;
            self.finished_ms = Some(now_ms);
        }
    }

    /// A step that failed (its cause is the operator's log, never the owner's answer: it may
    /// name servers, users and statements): the owner reads that it is retried.
    pub fn step_failed(&mut self) {
        self.last_error = Some(format!(
            "Step {} did not finish: a store the export reads or writes did not answer. It is retried every 10 seconds; \
             POST /v1/exports/{}/resume starts it again at once.",
            self.step, self.id
        ));
    }

    /// Waiting for a deletion of the project's events to be applied (`Gate::Wait`).
    pub fn waiting_for_deletion(&mut self) {
        self.last_error = Some(
            "Waiting for ClickHouse to apply a deletion of this project's events (a visitor's erasure) before reading: \
             the export then goes on by itself."
                .into(),
        );
    }

    /// Whether its parts are past KEEP_SECONDS.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms - self.created_ms > KEEP_SECONDS as i64 * 1000
    }

    /// The job as its owner reads it: progress, and each part's download path.
    pub fn to_json(&self) -> Value {
        let rows_total: Option<u64> = self.days.as_ref().map(|d| d.iter().map(|(_, n)| n).sum());
        let days_total = self.days.as_ref().map(Vec::len);
        let parts: Vec<Value> = self
            .parts
            .iter()
            .map(|p| json!({"name": p.name, "rows": p.rows, "bytes": p.bytes, "download": format!("/v1/exports/{}/parts/{}", self.id, p.name)}))
            .collect();
        json!({
            "id": self.id,
            "project_id": self.project_id,
            "status": self.status,
            "created_at": crate::privacy::audit::rfc3339(self.created_ms),
            "as_of": self.as_of,
            "progress": {
                "days_done": self.day_index.min(days_total.unwrap_or(0)),
                "days_total": days_total,
                "rows_done": self.rows_done,
                "rows_total": rows_total,
                "aggregates_done": self.aggregates_done,
                "aggregates_total": self.aggregate_parts.as_ref().map(Vec::len),
            },
            "parts": parts,
            "last_error": self.last_error,
            "finished_at": self.finished_ms.map(crate::privacy::audit::rfc3339),
            "expires_at": crate::privacy::audit::rfc3339(self.created_ms + KEEP_SECONDS as i64 * 1000),
        })
    }
}

/// `events/YYYY-MM-DD-NNNN.ndjson.gz`.
pub fn part_name(day: &str, index: u32) -> String {
    format!("events/{day}-{index:04}.ndjson.gz")
}

/// Where a job keeps its state (KV `ERASURES`, beside closures and tombstones).
pub fn state_key(project_id: &str, id: &str) -> String {
    format!("{}{id}", state_prefix(project_id))
}

pub fn state_prefix(project_id: &str) -> String {
    format!("export:{project_id}:")
}

/// Deletions of the project's events that ClickHouse was asked for (mutations: a visitor's
/// erasure, the project's deletion; found by `project_id = '<id>'` in their command, as
/// ClickHouse formats it, so a visitor id that spells another project's id matches none): how
/// many are still being applied, and the latest one's number (mutation ids grow).
pub fn deletions_sql(database: &str, table: &str, project_id: &str) -> String {
    format!(
        "SELECT countIf(is_done = 0) AS pending, max(toUInt64OrZero(extract(mutation_id, '([0-9]+)'))) AS latest \
         FROM system.mutations WHERE database = {} AND table = {} AND position(command, {}) > 0 FORMAT JSONEachRow",
        sql::string(database),
        sql::string(table),
        sql::string(&format!("project_id = {}", sql::string(project_id)))
    )
}

/// What a step does about the project's deletions (`Job::deletions_gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Go,
    /// A deletion asked for before the job read anything is still being applied: wait, so no
    /// part holds what it deletes.
    Wait,
    /// A deletion was asked for after the job began to read: its parts may hold what it
    /// deletes, so the job ends and its parts go (a visitor's erasure also deletes the exports
    /// made before it).
    End,
}

/// Where a part is in R2 (bucket `EXPORTS`).
pub fn object_key(project_id: &str, id: &str, name: &str) -> String {
    format!("{}{id}/{name}", object_prefix(project_id))
}

/// Every object of a project's exports: what its deletion deletes.
pub fn object_prefix(project_id: &str) -> String {
    format!("exports/{project_id}/")
}

/// An export id as the API takes it: the id a job was given (32 lower-case hex digits).
pub fn check_id(id: &str) -> Result<&str, ApiError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(id)
    } else {
        Err(ApiError::new(
            404,
            "unknown_export",
            "No export has that id. Start one with POST /v1/exports, and read its id from the answer.",
        ))
    }
}

/// The message that runs one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMessage {
    pub project_id: String,
    pub id: String,
    pub step: u32,
}

/// The days a project has events on, and their rows: one per event id and visitor id (the
/// table's sort key within a day, what queries read).
pub fn plan_sql(database: &str, table: &str, job: &Job) -> String {
    format!(
        "SELECT toString(toDate(timestamp)) AS date, uniqExact(event_id, anonymous_id) AS n FROM {database}.{table} WHERE project_id = {} AND received_at <= {} \
         GROUP BY date ORDER BY date FORMAT JSONEachRow",
        sql::string(&job.project_id),
        sql::string(&job.as_of)
    )
}

/// One part: the day's rows after `after`, by event id and visitor id (two visitors' rows of
/// one id are two rows, as queries show them), at most PART_ROWS; of a row's copies the one
/// received last by `as_of` (FINAL would keep a later copy, then drop it with the cutoff).
pub fn events_sql(database: &str, table: &str, job: &Job, day: &str, after: &After) -> String {
    let after_sql = match &after.anonymous_id {
        None => format!("event_id > {}", sql::string(&after.event_id)),
        Some(visitor) => {
            format!("(event_id > {id} OR (event_id = {id} AND anonymous_id > {}))", sql::string(visitor), id = sql::string(&after.event_id))
        }
    };
    format!(
        "SELECT * FROM {database}.{table} WHERE project_id = {} AND toDate(timestamp) = toDate({}) AND received_at <= {} \
         AND {after_sql} ORDER BY event_id, anonymous_id, received_at DESC LIMIT 1 BY event_id, anonymous_id LIMIT {PART_ROWS} \
         FORMAT JSONEachRow",
        sql::string(&job.project_id),
        sql::string(day),
        sql::string(&job.as_of),
    )
}

/// Each aggregate table's days (of their latest finished rollup) and its rows on each: `t`,
/// `date`, `n`. The rows stored bound the rows exported (groups merge, never split).
pub fn aggregates_plan_sql(database: &str, project_id: &str) -> String {
    let per_table: Vec<String> = AGGREGATES
        .iter()
        .map(|t| {
            format!(
                "SELECT '{t}' AS t, toString(day) AS date, count() AS n FROM {database}.{t} WHERE project_id = {} AND {} GROUP BY date",
                sql::string(project_id),
                latest_versions(database, project_id)
            )
        })
        .collect();
    format!("{} FORMAT JSONEachRow", per_table.join(" UNION ALL "))
}

/// One aggregate part as CSV with a header: the table's days `first_day..=last_day`, each
/// day's latest finished rollup, every dimension the table keeps (by hour: `bucket`),
/// sketches merged to numbers.
pub fn aggregates_sql(database: &str, table: &str, project_id: &str, first_day: &str, last_day: &str) -> String {
    let (dims, metrics) = match table {
        PAGES_TABLE => (
            "is_bot, host, page, event_name",
            "uniqCombinedMerge(visitors) AS visitors, uniqCombinedMerge(visits) AS visits, sumMerge(pageviews) AS pageviews, \
             sumMerge(events) AS events, sumMerge(bounces) AS bounces",
        ),
        PROPS_TABLE => (
            "is_bot, event_name, prop_key, prop_value",
            "uniqCombinedMerge(visitors) AS visitors, uniqCombinedMerge(visits) AS visits, sumMerge(pageviews) AS pageviews, \
             sumMerge(events) AS events",
        ),
        _ => (
            "is_bot, entry_page, exit_page, v_source, v_medium, v_referrer, v_utm_source, v_utm_medium, v_utm_campaign, v_utm_term, \
             v_utm_content, v_click_id_type, v_country, v_region, v_city, v_browser, v_os, v_device",
            "uniqCombinedMerge(visitors) AS visitors, sumMerge(visits) AS visits, sumMerge(pageviews) AS pageviews, \
             sumMerge(events) AS events, sumMerge(bounces) AS bounces, sumMerge(duration) AS duration",
        ),
    };
    format!(
        "SELECT toString(day) AS date, toString(bucket) AS hour, {dims}, {metrics} FROM {database}.{table} \
         WHERE project_id = {} AND day >= toDate({}) AND day <= toDate({}) AND {} \
         GROUP BY date, hour, {dims} ORDER BY date, hour, {dims} FORMAT CSVWithNames",
        sql::string(project_id),
        sql::string(first_day),
        sql::string(last_day),
        latest_versions(database, project_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_clock::now_ms;

    fn part(name: &str, rows: u64) -> Part {
        Part { name: name.into(), rows, bytes: rows * 10 }
    }

    fn row(event_id: &str, anonymous_id: &str) -> RowKey {
        RowKey { event_id: event_id.into(), anonymous_id: anonymous_id.into() }
    }

    #[test]
    fn a_job_plans_then_writes_each_day_in_parts_then_the_aggregates() {
        let now = now_ms();
        let mut job = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now);
        assert_eq!(job.next(), Step::Plan);
        job.planned("{\"date\":\"2026-01-01\",\"n\":\"150000\"}\n{\"date\":\"2026-01-02\",\"n\":3}\n").unwrap();
        let Step::Events { day, after, name } = job.next() else { panic!("{:?}", job.next()) };
        assert_eq!((day.as_str(), after, name.as_str()), ("2026-01-01", After::default(), "events/2026-01-01-0000.ndjson.gz"));
        job.wrote_events(part(&name, PART_ROWS), Some(row("m", "v1")), true);
        let Step::Events { day, after, name } = job.next() else { panic!() };
        let after_m = After { event_id: "m".into(), anonymous_id: Some("v1".into()) };
        assert_eq!((day.as_str(), after, name.as_str()), ("2026-01-01", after_m, "events/2026-01-01-0001.ndjson.gz"));
        job.wrote_events(part(&name, 50_000), Some(row("z", "v2")), false);
        assert!(matches!(job.next(), Step::Events { ref day, ref after, .. } if day == "2026-01-02" && *after == After::default()));
        job.wrote_events(part("events/2026-01-02-0000.ndjson.gz", 3), Some(row("c", "v3")), false);
        assert_eq!(job.rows_done, 150_003);
        assert_eq!(job.next(), Step::PlanAggregates);
        job.planned_aggregates(
            "{\"t\":\"pages_agg\",\"date\":\"2026-01-01\",\"n\":\"4\"}\n{\"t\":\"visits_agg\",\"date\":\"2026-01-01\",\"n\":2}\n",
            now,
        )
        .unwrap();
        for table in ["visits_agg", "pages_agg"] {
            assert!(matches!(job.next(), Step::Aggregates { table: t, .. } if t == table));
            job.wrote_aggregates(part(&format!("aggregates/{table}/2026-01-01_2026-01-01.csv.gz"), 1), now);
        }
        assert_eq!((job.next(), job.status, job.step), (Step::Finished, Status::Done, 1 + 3 + 1 + 2));
        let v = job.to_json();
        assert_eq!(v["progress"]["rows_total"], 150_003);
        assert_eq!(v["progress"]["aggregates_total"], 2);
        assert_eq!(v["parts"].as_array().unwrap().len(), 5);
        assert_eq!(v["parts"][0]["download"], "/v1/exports/0123456789abcdef0123456789abcdef/parts/events/2026-01-01-0000.ndjson.gz");
    }

    #[test]
    fn a_full_part_that_was_the_days_last_leaves_an_empty_part_and_moves_on() {
        let mut job = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now_ms());
        job.planned("{\"date\":\"2026-01-01\",\"n\":100000}\n").unwrap();
        job.wrote_events(part("events/2026-01-01-0000.ndjson.gz", PART_ROWS), Some(row("x", "v")), true);
        job.wrote_events(part("events/2026-01-01-0001.ndjson.gz", 0), None, false);
        assert_eq!(job.parts.len(), 1, "an empty second part is not listed");
        assert_eq!(job.next(), Step::PlanAggregates);
    }

    #[test]
    fn a_part_cut_by_its_bytes_goes_on_in_the_same_day() {
        let mut job = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now_ms());
        job.planned("{\"date\":\"2026-01-01\",\"n\":900}\n").unwrap();
        job.wrote_events(part("events/2026-01-01-0000.ndjson.gz", 400), Some(row("k", "v")), true);
        assert!(
            matches!(job.next(), Step::Events { ref after, ref name, .. } if after.event_id == "k" && name.ends_with("-0001.ndjson.gz"))
        );
    }

    #[test]
    fn a_project_with_no_events_still_gets_its_aggregates() {
        let mut job = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now_ms());
        job.planned("").unwrap();
        assert_eq!(job.next(), Step::PlanAggregates);
        // And one with neither is done once both plans are empty.
        job.planned_aggregates("", now_ms()).unwrap();
        assert_eq!((job.next(), job.status), (Step::Finished, Status::Done));
    }

    #[test]
    fn the_aggregates_go_in_parts_of_whole_days_of_bounded_rows() {
        let now = now_ms();
        let mut job = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now);
        job.planned("").unwrap();
        let row = |t: &str, d: &str, n: u64| format!("{{\"t\":\"{t}\",\"date\":\"{d}\",\"n\":\"{n}\"}}\n");
        // Out of order as ClickHouse may answer: three small days, a day above the cap alone,
        // then two that together pass it; another table's one day; a table with none.
        let half = AGGREGATE_PART_ROWS / 2 + 1;
        let answer = [
            row("visits_agg", "2026-01-03", 10),
            row("pages_agg", "2026-01-01", 5),
            row("visits_agg", "2026-01-01", 10),
            row("visits_agg", "2026-01-02", 10),
            row("visits_agg", "2026-01-04", AGGREGATE_PART_ROWS + 1),
            row("visits_agg", "2026-01-05", half),
            row("visits_agg", "2026-01-06", half),
        ]
        .concat();
        job.planned_aggregates(&answer, now).unwrap();
        let mut written = Vec::new();
        while let Step::Aggregates { table, first_day, last_day, name } = job.next() {
            written.push(format!("{table} {first_day}..{last_day} {name}"));
            job.wrote_aggregates(part(&name, 1), now);
        }
        assert_eq!(
            written,
            [
                "visits_agg 2026-01-01..2026-01-03 aggregates/visits_agg/2026-01-01_2026-01-03.csv.gz",
                "visits_agg 2026-01-04..2026-01-04 aggregates/visits_agg/2026-01-04_2026-01-04.csv.gz",
                "visits_agg 2026-01-05..2026-01-05 aggregates/visits_agg/2026-01-05_2026-01-05.csv.gz",
                "visits_agg 2026-01-06..2026-01-06 aggregates/visits_agg/2026-01-06_2026-01-06.csv.gz",
                "pages_agg 2026-01-01..2026-01-01 aggregates/pages_agg/2026-01-01_2026-01-01.csv.gz",
            ]
        );
        assert_eq!(job.status, Status::Done);
        let mut other = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now);
        assert!(other.planned_aggregates(&row("events", "2026-01-01", 1), now).is_err(), "only the aggregate tables");
    }

    #[test]
    fn statements_quote_values_and_page_by_event_id() {
        let job = Job::new("0123456789abcdef0123456789abcdef", "p'1", "admin".into(), now_ms());
        let s = events_sql("db", "events", &job, "2026-01-01", &After { event_id: "a'b".into(), anonymous_id: Some("v'2".into()) });
        assert!(
            s.contains("project_id = 'p\\'1'")
                && s.contains(
                    "(event_id > 'a\\'b' OR (event_id = 'a\\'b' AND anonymous_id > 'v\\'2')) \
                     ORDER BY event_id, anonymous_id, received_at DESC LIMIT 1 BY event_id, anonymous_id LIMIT 100000"
                ),
            "{s}"
        );
        assert!(!s.contains("FINAL"), "the cutoff applies before copies collapse: {s}");
        // A job saved before rows were paged by visitor id goes on after its event id.
        let legacy = events_sql("db", "events", &job, "2026-01-01", &After { event_id: "a".into(), anonymous_id: None });
        assert!(legacy.contains("AND event_id > 'a' ORDER BY"), "{legacy}");
        assert!(plan_sql("db", "events", &job)
            .contains("uniqExact(event_id, anonymous_id) AS n FROM db.events WHERE project_id = 'p\\'1' AND received_at <= '"));
        for t in AGGREGATES {
            let a = aggregates_sql("db", t, "p'1", "2026-01-01", "2026-01-0'3");
            assert!(a.contains("FORMAT CSVWithNames") && a.contains("FROM db.rollup_done WHERE project_id = 'p\\'1'"), "{a}");
            assert!(a.contains("day >= toDate('2026-01-01') AND day <= toDate('2026-01-0\\'3')"), "{a}");
        }
        let plan = aggregates_plan_sql("db", "p'1");
        for t in AGGREGATES {
            assert!(
                plan.contains(&format!("SELECT '{t}' AS t, toString(day) AS date, count() AS n FROM db.{t} WHERE project_id = 'p\\'1'")),
                "{plan}"
            );
        }
    }

    #[test]
    fn a_job_saved_while_writing_whole_tables_plans_only_the_tables_left() {
        let now = now_ms();
        // As the code before planned aggregates saved it: visits_agg written whole.
        let saved = json!({
            "id": "0123456789abcdef0123456789abcdef", "project_id": "p", "by": "admin", "created_ms": now,
            "as_of": "x", "status": "running", "step": 2, "days": [], "day_index": 0, "after_event_id": "",
            "part_index": 0, "parts": [{"name": "aggregates/visits_agg.csv.gz", "rows": 3, "bytes": 30}],
            "rows_done": 0, "aggregates_done": 1, "last_error": null, "finished_ms": null
        });
        let mut job: Job = serde_json::from_value(saved).unwrap();
        assert_eq!(job.next(), Step::PlanAggregates);
        let answer = "{\"t\":\"visits_agg\",\"date\":\"2026-01-01\",\"n\":3}\n{\"t\":\"pages_agg\",\"date\":\"2026-01-01\",\"n\":2}\n";
        job.planned_aggregates(answer, now).unwrap();
        assert!(matches!(job.next(), Step::Aggregates { table: "pages_agg", .. }), "{:?}", job.next());
        job.wrote_aggregates(part("aggregates/pages_agg/2026-01-01_2026-01-01.csv.gz", 2), now);
        assert_eq!((job.next(), job.parts.len()), (Step::Finished, 2), "visits_agg once");
    }

    #[test]
    fn a_deletion_asked_for_after_the_job_began_ends_it_and_one_being_applied_holds_it() {
        let s = deletions_sql("db", "events", "p");
        assert!(s.contains(r"position(command, 'project_id = \'p\'') > 0"), "{s}");
        assert!(s.contains("FROM system.mutations WHERE database = 'db' AND table = 'events'"), "{s}");
        let answer = |pending: u64, latest: u64| format!("{{\"pending\":\"{pending}\",\"latest\":\"{latest}\"}}\n");
        let mut job = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now_ms());
        assert_eq!(job.deletions_gate(&answer(1, 7)), Ok(Gate::Wait), "an erasure being applied holds the first read");
        assert_eq!(job.deletions_seen, None);
        assert_eq!(job.deletions_gate(&answer(0, 7)), Ok(Gate::Go));
        assert_eq!(job.deletions_seen, Some(7));
        assert_eq!(job.deletions_gate(&answer(0, 7)), Ok(Gate::Go), "none since");
        assert_eq!(job.deletions_gate(&answer(1, 8)), Ok(Gate::End), "one asked for since it began");
        assert_eq!(job.deletions_gate(&answer(0, 8)), Ok(Gate::End), "applied already, still since");
        let mut fresh = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now_ms());
        assert_eq!(fresh.deletions_gate("{\"pending\":0,\"latest\":0}"), Ok(Gate::Go), "a project never erased");
        assert!(fresh.deletions_gate("").is_err() && fresh.deletions_gate("{\"pending\":0}").is_err());
    }

    #[test]
    fn ids_are_checked_and_jobs_expire_after_a_week() {
        assert!(check_id("0123456789abcdef0123456789abcdef").is_ok());
        for bad in ["", "../x", "0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcde"] {
            assert_eq!(check_id(bad).unwrap_err().code, "unknown_export");
        }
        let now = now_ms();
        let job = Job::new("0123456789abcdef0123456789abcdef", "p", "admin".into(), now - KEEP_SECONDS as i64 * 1000);
        assert!(!job.is_expired(now));
        assert!(job.is_expired(now + 1));
        assert!(object_key("p", "i", "events/x").starts_with(&object_prefix("p")));
    }
}
