//! Aggregates: what answers a query from the rollup tables (migrations/0004), and the SQL.
//!
//! The rollup job (core/src/storage/rollup/) derives visits from raw events, exactly as a raw query does,
//! for each closed UTC day, and writes them through materialized views into three
//! AggregatingMergeTree tables, in buckets of the UTC hour each visit started in:
//! - `visits_agg`: every visit-level dimension (entry and exit page, source, medium, referrer,
//!   UTMs, click id type, geo, browser, os, device): visitors (a sketch), and visits,
//!   pageviews, events, bounces and duration (sums);
//! - `pages_agg`: hostname, page and event name: visitors and visits (sketches), pageviews,
//!   events, bounces;
//! - `props_agg`: event name, property key and value: visitors and visits (sketches),
//!   pageviews, events.
//!
//! They hold no `mm_aid`: visitors and visits are uniqCombined sketches. A query is answered
//! from one table when every dimension and filter of it lives there; the days the rollup has
//! not reached yet (today, and yesterday before the job runs) come from raw events in the same
//! statement, their sketches merged with the tables'. In an answer from aggregates a visit,
//! with all its pageviews and events, belongs to the UTC hour it started in. Hourly buckets
//! keep every time zone with a whole-hour offset exact (days, weeks and months start on a UTC
//! hour there). In a zone with a half- or quarter-hour offset (+5:30 India, +5:45 Nepal,
//! +9:30, +12:45 ...) a bucket belongs to the local hour, day, week or month in which it
//! starts: visits that start in the first 30 (or 45) minutes after local midnight count in the
//! day before, and a `time:hour` row holds the UTC hour that starts within it. Datetime ranges
//! are taken by whole UTC hours the same way. Raw-event answers (recent, short ranges) have no
//! such rounding.

use super::request::{Dimension, Filter, Metric, Query};
use super::sql::{self, Level, Scope};
use crate::storage::sql::string;

pub const VISITS_TABLE: &str = "visits_agg";
pub const PAGES_TABLE: &str = "pages_agg";
pub const PROPS_TABLE: &str = "props_agg";
/// One row per (day, version) the rollup job finished: a day's current rows are its latest version's.
pub const DONE_TABLE: &str = "rollup_done";
/// The start of each complete scheduled rollup run.
pub const RUNS_TABLE: &str = "rollup_runs";

/// The aggregate table a query can be answered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    Visits,
    Pages,
    /// Rows for the events that carry this property key.
    Props(String),
}

impl Table {
    pub fn name(&self) -> &'static str {
        match self {
            Table::Visits => VISITS_TABLE,
            Table::Pages => PAGES_TABLE,
            Table::Props(_) => PROPS_TABLE,
        }
    }

    fn level(&self) -> Level {
        match self {
            Table::Visits => Level::Visits,
            Table::Pages => Level::Pages,
            Table::Props(_) => Level::Props,
        }
    }
}

/// Which table answers `q`, or (Err) a sentence saying why none does.
pub fn table_for(q: &Query) -> Result<Table, String> {
    if q.wants_revenue() {
        return Err(
            "Revenue is read from raw events only (the aggregates hold no amounts); use \"source\": \"auto\" or \"raw_events\".".into()
        );
    }
    let mut dims: Vec<&Dimension> = q.dimensions.iter().filter(|d| !matches!(d, Dimension::Time(_))).collect();
    if let Some(f) = &q.filter {
        dims.extend(f.dimensions());
    }
    if dims.iter().all(|d| !d.is_event_level()) {
        return Ok(Table::Visits);
    }
    if dims.iter().all(|d| matches!(d, Dimension::Page | Dimension::Name | Dimension::Hostname | Dimension::EventType)) {
        if q.metrics.contains(&Metric::VisitDuration) {
            return Err("Aggregates hold visit_duration by visit-level dimensions only; with event:page, event:name or event:hostname drop visit_duration.".into());
        }
        return Ok(Table::Pages);
    }
    let mut keys: Vec<&str> = dims.iter().filter_map(|d| if let Dimension::Prop(k) = d { Some(k.as_str()) } else { None }).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.len() == 1 && dims.iter().all(|d| matches!(d, Dimension::Name | Dimension::Prop(_))) {
        if !q.filter.as_ref().is_none_or(|f| f.needs_only_events_with_props()) {
            return Err(format!("Aggregates of event:props:{} hold only the events that carry it; a filter that events without it can match (is_not, \"(none)\", matches, under not or or) is answered from raw events.", keys[0]));
        }
        if let Some(m) = q.metrics.iter().find(|m| !matches!(m, Metric::Visitors | Metric::Visits | Metric::Pageviews | Metric::Events)) {
            return Err(format!("Aggregates of event:props answer visitors, visits, pageviews and events; drop `{}`.", m.name()));
        }
        return Ok(Table::Props(keys[0].to_string()));
    }
    Err("Aggregates answer visit-level dimensions together, event:page/event:name/event:hostname together, or one event:props key with event:name; this query combines others.".into())
}

/// The last rolled-up day, asked before a query that aggregates answer.
pub fn frontier_sql(database: &str) -> String {
    format!("SELECT toString(max(day)), count() FROM {database}.{DONE_TABLE} WHERE project_id = '' FORMAT TabSeparated")
}

/// The end of the last rolled-up day (UTC seconds), or None before the first rollup.
pub fn parse_frontier(answer: &str) -> Result<Option<i64>, String> {
    let (day, n) = answer.trim_end_matches('\n').split_once('\t').ok_or_else(|| format!("unreadable rollup frontier {answer:?}"))?;
    if n == "0" {
        return Ok(None);
    }
    let d: jiff::civil::Date = day.parse().map_err(|e| format!("rollup frontier {day:?}: {e}"))?;
    let next = d.tomorrow().map_err(|e| e.to_string())?;
    Ok(Some(next.to_zoned_datetime(jiff::tz::TimeZone::UTC).map_err(|e| e.to_string())?.timestamp().as_second()))
}

/// The metrics of `metrics`, in order, that a sketch estimates in an answer from `table`
/// (the rest is exact): visitors, and what is computed from them (percentage, conversion
/// rate); on pages and props tables also visits and what is divided by them (visits_agg
/// counts visits exactly).
pub fn estimated(table: &Table, metrics: &[Metric]) -> Vec<&'static str> {
    let from_visits = !matches!(table, Table::Visits);
    metrics
        .iter()
        .filter(|m| match m {
            Metric::Visitors | Metric::Percentage | Metric::ConversionRate => true,
            Metric::Visits | Metric::ViewsPerVisit | Metric::BounceRate | Metric::VisitDuration => from_visits,
            Metric::Pageviews | Metric::Events | Metric::TotalRevenue | Metric::AverageRevenue => false,
        })
        .map(|m| m.name())
        .collect()
}

/// The UTC date of a second, as ClickHouse spells a Date.
fn utc_date(second: i64) -> String {
    jiff::Timestamp::from_second(second)
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_else(|_| "1970-01-01".into())
}

/// The condition that keeps, of a project's aggregate rows, each day's latest finished rollup.
pub fn latest_versions(database: &str, project_id: &str) -> String {
    format!(
        "(day, version) IN (SELECT day, max(version) FROM {database}.{DONE_TABLE} WHERE project_id = {} GROUP BY day)",
        string(project_id)
    )
}

/// The aggregate part of a grouped statement: rows of `table` for visits that started in
/// `[s.from, to)`, in the partial form `sql::sketched` gives the raw part.
fn from_table(table: &Table, s: &Scope, dims: &[Dimension], filter: Option<&Filter>, to: i64) -> String {
    let level = table.level();
    let select_dims = sql::dim_columns(dims, s.timezone, level);
    let (_, group_by) = sql::group_by(dims.len());
    let db = s.database;
    let mut conds = vec![
        format!("project_id = {}", string(s.project_id)),
        format!("day >= toDate('{}') AND day <= toDate('{}')", utc_date(s.from), utc_date(to - 1)),
        format!("bucket >= toDateTime({}) AND bucket < toDateTime({to})", s.from),
        latest_versions(db, s.project_id),
    ];
    if !s.include_bots {
        conds.push("is_bot = 0".into());
    }
    if let Table::Props(k) = table {
        conds.push(format!("prop_key = {}", string(k)));
    }
    if let Some(f) = filter {
        conds.push(sql::condition(f, s.timezone, level));
    }
    let parts = match table {
        Table::Visits => "sumMerge(visits) AS n, sumMerge(pageviews) AS pageviews, sumMerge(events) AS events, sumMerge(bounces) AS bounces, sumMerge(duration) AS duration",
        Table::Pages => "uniqCombinedMergeState(visits) AS ks, toUInt64(0) AS n, sumMerge(pageviews) AS pageviews, sumMerge(events) AS events, sumMerge(bounces) AS bounces, toUInt64(0) AS duration",
        Table::Props(_) => "uniqCombinedMergeState(visits) AS ks, toUInt64(0) AS n, sumMerge(pageviews) AS pageviews, sumMerge(events) AS events, toUInt64(0) AS bounces, toUInt64(0) AS duration",
    };
    format!(
        "SELECT {select_dims}uniqCombinedMergeState(visitors) AS vs, {parts} FROM {db}.{table} WHERE {conds}{group_by}",
        table = table.name(),
        conds = conds.join(" AND "),
    )
}

/// The grouped statement (`d0..dN` and sql::COMPONENTS per group) for a period split at
/// `cut` (the end of the last rolled-up day): aggregates before it, raw events from it.
pub fn grouped(table: &Table, s: &Scope, cut: i64, dims: &[Dimension], filter: Option<&Filter>) -> String {
    let with_ks = !matches!(table, Table::Visits);
    let mut parts = Vec::new();
    if s.from < cut {
        parts.push(from_table(table, s, dims, filter, cut.min(s.to)));
    }
    if cut < s.to {
        let raw = Scope { from: s.from.max(cut), ..s.clone() };
        // In the aggregates a property's rows are the events that carry its key.
        let extra = match table {
            Table::Props(k) => Some(format!("has(ev.6, {})", string(k))),
            _ => None,
        };
        parts.push(sql::sketched(&raw, dims, filter, extra.as_deref(), with_ks));
    }
    let (select_dims, group_by) = sql::group_by(dims.len());
    let visits = if with_ks { "uniqCombinedMerge(ks)" } else { "sum(n)" };
    format!(
        "SELECT {select_dims}uniqCombinedMerge(vs) AS visitors, {visits} AS visits, sum(pageviews) AS pageviews, sum(events) AS events, sum(bounces) AS bounces, sum(duration) AS duration \
         FROM ({}){group_by}",
        parts.join(" UNION ALL ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::request::parse;

    fn q(body: &str) -> Query {
        parse(body.as_bytes()).unwrap()
    }

    /// `meta.estimated` names the answer's metrics that a sketch estimates on that table:
    /// those it asked for, and every one computed from visitors or (but on visits_agg, which
    /// counts visits exactly) from visits.
    #[test]
    fn estimated_names_the_metrics_asked_for_that_sketches_estimate() {
        let names = |body: &str| {
            let q = q(body);
            estimated(&table_for(&q).unwrap(), &q.metrics)
        };
        let by_page = r#""date_range":"30d","dimensions":["event:page"]"#;
        assert_eq!(names(&format!(r#"{{"metrics":["bounce_rate"],{by_page}}}"#)), ["bounce_rate"]);
        assert_eq!(
            names(&format!(r#"{{"metrics":["pageviews","visitors","views_per_visit","percentage","events","visits"],{by_page}}}"#)),
            ["visitors", "views_per_visit", "percentage", "visits"]
        );
        let by_source = r#""date_range":"30d","dimensions":["visit:source"]"#;
        assert_eq!(
            names(&format!(r#"{{"metrics":["visits","bounce_rate","visit_duration","views_per_visit","percentage"],{by_source}}}"#)),
            ["percentage"]
        );
        assert!(names(&format!(r#"{{"metrics":["pageviews","events"],{by_page}}}"#)).is_empty());
    }

    #[test]
    fn each_query_goes_to_the_table_that_holds_all_its_dimensions() {
        assert_eq!(
            table_for(&q(
                r#"{"metrics":["visitors","visit_duration"],"date_range":"12mo","dimensions":["visit:country","time:month"],"filters":[["is","visit:device",["mobile"]]]}"#
            )),
            Ok(Table::Visits)
        );
        assert_eq!(
            table_for(&q(
                r#"{"metrics":["visitors","bounce_rate"],"date_range":"12mo","dimensions":["event:page"],"filters":[["is","event:hostname",["a.com"]]]}"#
            )),
            Ok(Table::Pages)
        );
        assert_eq!(
            table_for(&q(r#"{"metrics":["conversion_rate"],"date_range":"12mo","filters":[["is","event:name",["signup"]]]}"#)),
            Ok(Table::Pages)
        );
        // A page goal: its pageviews are the pages table's, past raw retention too.
        let page_goal =
            q(r#"{"metrics":["visitors","conversion_rate"],"date_range":"12mo","dimensions":["visit:source"],"goal":{"page":"/thanks"}}"#);
        assert_eq!(table_for(&page_goal), Err("Aggregates answer visit-level dimensions together, event:page/event:name/event:hostname together, or one event:props key with event:name; this query combines others.".into()));
        assert_eq!(
            table_for(&q(r#"{"metrics":["visitors","conversion_rate"],"date_range":"12mo","goal":{"page":"/thanks"}}"#)),
            Ok(Table::Pages)
        );
        let sql = grouped(
            &Table::Pages,
            &Scope { database: "millimetric", table: "events", project_id: "p", from: 0, to: 86_400, timezone: "UTC", include_bots: false },
            86_400,
            &[],
            q(r#"{"metrics":["visitors"],"date_range":"12mo","goal":{"page":"/thanks"}}"#).filter.as_ref(),
        );
        assert!(sql.contains("(if(event_name = 'pageview', 'pageview', 'custom') IN ('pageview'))"), "{sql}");
        assert_eq!(
            table_for(&q(
                r#"{"metrics":["visitors","events"],"date_range":"12mo","dimensions":["event:props:plan"],"filters":[["is","event:name",["signup"]]]}"#
            )),
            Ok(Table::Props("plan".into()))
        );
        for kept in [
            r#"{"metrics":["visitors"],"date_range":"12mo","filters":[["is","event:props:plan",["pro","free"]]]}"#,
            r#"{"metrics":["visitors"],"date_range":"12mo","filters":[["or",[["is","event:props:plan",["pro"]],["contains","event:props:plan",["ent"]]]]]}"#,
            r#"{"metrics":["events"],"date_range":"12mo","dimensions":["event:name"],"filters":[["and",[["contains","event:props:plan",["pr"]],["not",["is","event:name",["x"]]]]]]}"#,
        ] {
            assert_eq!(table_for(&q(kept)), Ok(Table::Props("plan".into())), "{kept}");
        }
        for refused in [
            r#"{"metrics":["visitors"],"date_range":"12mo","dimensions":["visit:country","event:page"]}"#,
            r#"{"metrics":["visit_duration"],"date_range":"12mo","dimensions":["event:page"]}"#,
            r#"{"metrics":["bounce_rate"],"date_range":"12mo","dimensions":["event:props:plan"]}"#,
            r#"{"metrics":["visitors"],"date_range":"12mo","dimensions":["event:props:plan"],"filters":[["is","event:props:tier",["x"]]]}"#,
            r#"{"metrics":["visitors"],"date_range":"12mo","dimensions":["event:props:plan","event:page"]}"#,
            // Events without the key match these in raw events; the props aggregate has none.
            r#"{"metrics":["visitors"],"date_range":"12mo","filters":[["is_not","event:props:plan",["pro"]]]}"#,
            r#"{"metrics":["visitors"],"date_range":"12mo","filters":[["is","event:props:plan",["(none)"]]]}"#,
            r#"{"metrics":["visitors"],"date_range":"12mo","filters":[["matches","event:props:plan",[".*"]]]}"#,
            r#"{"metrics":["visitors"],"date_range":"12mo","filters":[["not",["is","event:props:plan",["pro"]]]]}"#,
            r#"{"metrics":["visitors"],"date_range":"12mo","filters":[["or",[["is","event:props:plan",["pro"]],["is","event:name",["signup"]]]]]}"#,
        ] {
            assert!(table_for(&q(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_frontier_is_the_end_of_the_last_rolled_day() {
        assert_eq!(parse_frontier("2026-11-30\t12\n").unwrap(), Some(1_796_083_200), "2026-12-01 00:00 UTC");
        assert_eq!(parse_frontier("0000-00-00\t0\n").unwrap(), None);
        assert!(parse_frontier("x").is_err());
    }

    #[test]
    fn a_split_period_reads_the_tables_before_the_cut_and_raw_events_after() {
        let s = Scope {
            database: "millimetric",
            table: "events",
            project_id: "p'1",
            from: 1_000_000_800,
            to: 1_000_900_800,
            timezone: "Asia/Kathmandu",
            include_bots: false,
        };
        let query = q(
            r#"{"metrics":["visitors"],"date_range":"12mo","dimensions":["time:day","visit:source"],"filters":[["contains","visit:country",["D'E"]]]}"#,
        );
        let sql = grouped(&Table::Visits, &s, 1_000_500_000, &query.dimensions, query.filter.as_ref());
        assert!(
            sql.contains("FROM millimetric.visits_agg WHERE project_id = 'p\\'1'") && sql.contains("bucket < toDateTime(1000500000)"),
            "{sql}"
        );
        // The raw part reads a day before the cut and keeps the visits that start from it: a
        // visit that crosses the cut is the aggregates' alone (the review's double count).
        assert!(
            sql.contains("timestamp >= toDateTime(1000413600) AND timestamp < toDateTime(1000900800)")
                && sql.contains("start >= 1000500000"),
            "{sql}"
        );
        assert!(sql.contains("FROM millimetric.rollup_done WHERE project_id = 'p\\'1' GROUP BY day"), "a project's own versions: {sql}");
        assert!(
            sql.contains("toDate(bucket, 'Asia/Kathmandu')") && sql.contains("toDate(toDateTime(start), 'Asia/Kathmandu')"),
            "a visit's time is its start on both sides: {sql}"
        );
        assert!(sql.contains("UNION ALL") && sql.contains("sum(n) AS visits") && !sql.contains("ks"), "{sql}");
        assert!(sql.contains("'D\\'E'") && sql.matches("is_bot = 0").count() == 2);
        // Wholly before the cut: no raw part; wholly after: no aggregates.
        assert!(!grouped(&Table::Visits, &s, s.to + 1, &[], None).contains("FINAL"));
        assert!(!grouped(&Table::Pages, &s, s.from, &[], None).contains("pages_agg"));
        let props = grouped(&Table::Props("pl'an".into()), &s, 1_000_500_000, &[Dimension::Prop("pl'an".into())], None);
        assert!(
            props.contains("prop_key = 'pl\\'an'")
                && props.contains("has(ev.6, 'pl\\'an')")
                && props.contains("uniqCombinedMerge(ks) AS visits"),
            "{props}"
        );
    }
}
