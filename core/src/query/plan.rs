//! One `POST /v1/query` from body to answer, without I/O: `plan` checks the body, resolves
//! the dates and spells every statement (for the period and, with `compare`, the compared
//! one); the Worker runs them; `answer` assembles the response from what ClickHouse said.

use super::aggregates::{self, Table};
use super::dates::{self, Range};
use super::request::{self, Compare, Dimension, Granularity, Metric, OrderKey, Query, SourceChoice};
use super::results::{self, Answers};
use super::sql::{self, Scope, Statements};
use crate::error::ApiError;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub struct Plan {
    pub query: Query,
    pub timezone: String,
    pub range: Range,
    pub compared: Option<Range>,
    pub now: Statements,
    pub then: Option<Statements>,
    /// The aggregate table each period is to be read from (None: raw events).
    pub now_table: Option<Table>,
    pub then_table: Option<Table>,
    /// The end of the last rolled-up day (UTC seconds), once `with_frontier` has been told.
    pub cut: Option<i64>,
    project_id: String,
    tables: (String, String),
    echo: Value,
}

/// Which table answers the query's periods, if aggregates are to: with `auto`, whenever one
/// holds all its dimensions and filters (`with_frontier` then keeps raw events for a period
/// the rollup has not reached: today, `24h`). Raw events answer a 30-day overview of 10 M
/// events in 2.5 s here, aggregates in 70 ms (bench/query).
fn route(q: &Query) -> Result<Option<Table>, ApiError> {
    match q.source {
        SourceChoice::RawEvents => Ok(None),
        SourceChoice::Aggregates => {
            aggregates::table_for(q).map(Some).map_err(|why| ApiError::bad_request("not_in_aggregates", format!("`source`: {why}")))
        }
        SourceChoice::Auto => Ok(aggregates::table_for(q).ok()),
    }
}

fn too_large(st: &Statements) -> Result<(), ApiError> {
    // ClickHouse parses at most max_query_size (256 KiB) of a statement; filters repeat their
    // column for every value, so a body well under 64 KiB could spell more.
    if st.too_long_to_run() {
        return Err(ApiError::bad_request(
            "filters_too_large",
            "The filters are too large to run: use fewer conditions or values (or a `matches` pattern instead of many values).",
        ));
    }
    Ok(())
}

impl Plan {
    /// Whether the Worker should ask for the rollup frontier (aggregates::frontier_sql).
    pub fn wants_frontier(&self) -> bool {
        self.now_table.is_some() || self.then_table.is_some()
    }

    /// The statements for the periods routed to aggregates, split at `cut` (the end of the
    /// last rolled-up day; None: nothing rolled up yet). A period that starts at or after the
    /// cut keeps its raw-events statements, with their exact definitions.
    pub fn with_frontier(mut self, cut: Option<i64>) -> Result<Plan, ApiError> {
        let c = cut.unwrap_or(i64::MIN);
        self.cut = cut;
        let scope = |r: &Range| Scope {
            database: &self.tables.0,
            table: &self.tables.1,
            project_id: &self.project_id,
            from: r.from,
            to: r.to,
            timezone: &self.timezone,
            include_bots: self.query.include_bots,
        };
        // Aggregates only where they hold some of the period, and (unless asked for) only for
        // a period that starts and ends on quarter hours (every zone's midnight does; `24h`
        // and datetime pairs at other minutes would lose the part of an hour bucket before
        // their start): otherwise raw events, exact.
        let forced = self.query.source == SourceChoice::Aggregates;
        let fits = |r: &Range| c > r.from && (forced || (r.from % 900 == 0 && r.to % 900 == 0));
        // A period the aggregates do not answer is a raw one (meta says so).
        if !fits(&self.range) {
            self.now_table = None;
        }
        if !self.compared.as_ref().is_some_and(fits) {
            self.then_table = None;
        }
        // Spelled for the aggregates, a period's statements may pass what ClickHouse parses
        // where the raw ones do not: unless aggregates were asked for, raw events answer then.
        let usable = |st: &Statements| if forced { too_large(st).map(|_| true) } else { Ok(too_large(st).is_ok()) };
        if let Some(t) = &self.now_table {
            let s = scope(&self.range);
            let st = sql::statements_with(&self.query, &|d, f| aggregates::grouped(t, &s, c, d, f), None);
            if usable(&st)? {
                self.now = st;
            } else {
                self.now_table = None; // the raw statements `plan` made stand
            }
        }
        // The compared period keeps to the page as it is now spelled, from whichever table.
        if let Some(r) = &self.compared {
            let s = scope(r);
            let unpaged = unpaged(&self.query, r);
            let aggregated = self
                .then_table
                .as_ref()
                .map(|t| sql::statements_with(&unpaged, &|d, f| aggregates::grouped(t, &s, c, d, f), Some(&self.now.around_page)));
            let then = match aggregated {
                Some(st) if usable(&st)? => st,
                _ => {
                    self.then_table = None;
                    sql::statements(&unpaged, &s, Some(&self.now.around_page))
                }
            };
            too_large(&then)?;
            self.then = Some(then);
        }
        Ok(self)
    }

    /// Which source answered a period, for `meta`.
    fn source(&self, table: Option<&Table>, r: &Range) -> &'static str {
        match (table, self.cut) {
            (Some(_), Some(c)) if c >= r.to => "aggregates",
            (Some(_), Some(c)) if c > r.from => "aggregates_and_raw_events",
            _ => "raw_events",
        }
    }
}

/// The compared period (`r`) answers for the rows of this one: all its rows, unpaged. With a
/// time dimension that is each of its buckets, for each of the page's values (the page and its
/// margins) when there are other dimensions; up to `sql::MAX_COMPARED_ROWS`.
fn unpaged(q: &Query, r: &Range) -> Query {
    let mut all = q.clone();
    all.offset = 0;
    all.total_rows = false;
    let buckets = q.granularity().map(|g| buckets_at_most(g, r));
    all.limit = match buckets {
        None => request::MAX_LIMIT,
        Some(b) if q.dimensions.len() == 1 => b.max(request::MAX_LIMIT),
        Some(b) => b.saturating_mul(q.limit + 2 * sql::PAGE_MARGIN),
    }
    .min(sql::MAX_COMPARED_ROWS);
    all
}

/// How many buckets of `g` a range can hold, at most (a partial one at each end, a day of 25
/// hours).
fn buckets_at_most(g: Granularity, r: &Range) -> u64 {
    let hours = (r.to - r.from).max(0) as u64 / 3600 + 2;
    match g {
        Granularity::Hour => hours,
        Granularity::Day => hours / 24 + 2,
        Granularity::Week => hours / (24 * 7) + 2,
        Granularity::Month => hours / (24 * 28) + 2,
    }
}

/// Where the rows live (names checked by ClickHouseConfig::check_names).
#[derive(Debug, Clone, Copy)]
pub struct Tables<'a> {
    pub database: &'a str,
    pub table: &'a str,
}

pub fn plan(body: &[u8], project_id: &str, project_timezone: Option<&str>, tables: Tables, now_ms: i64) -> Result<Plan, ApiError> {
    let query = request::parse(body)?;
    // The query's zone, else the project's, else UTC. A project setting that is not a zone
    // (it is set by an operator) falls back to UTC rather than failing every query.
    let (timezone, tz) = match query.timezone.as_deref() {
        Some(name) => dates::time_zone(Some(name))?,
        None => dates::time_zone(project_timezone).or_else(|_| dates::time_zone(None))?,
    };
    let range = dates::resolve(&query.date_range, &tz, now_ms)?;
    let compared = query.compare.map(|c| dates::compared(&range, c, &tz)).transpose()?;
    let scope = |r: &Range| Scope {
        database: tables.database,
        table: tables.table,
        project_id,
        from: r.from,
        to: r.to,
        timezone: &timezone,
        include_bots: query.include_bots,
    };
    let now = sql::statements(&query, &scope(&range), None);
    too_large(&now)?;
    // The compared period answers for this page's rows, each found however it ranks there.
    let then = compared.as_ref().map(|r| sql::statements(&unpaged(&query, r), &scope(r), Some(&now.around_page)));
    then.as_ref().map(too_large).transpose()?;
    let now_table = route(&query)?;
    let then_table = compared.as_ref().and(now_table.clone());
    let echo = echo(&query, &timezone, &range, compared.as_ref(), &tz);
    let tables = (tables.database.to_string(), tables.table.to_string());
    Ok(Plan {
        query,
        timezone,
        range,
        compared,
        now,
        then,
        now_table,
        then_table,
        cut: None,
        project_id: project_id.to_string(),
        tables,
        echo,
    })
}

fn echo(q: &Query, timezone: &str, range: &Range, compared: Option<&Range>, tz: &jiff::tz::TimeZone) -> Value {
    let order: Vec<Value> = q
        .order_by
        .iter()
        .map(|(k, desc)| {
            let name = match k {
                OrderKey::Metric(m) => m.name().to_string(),
                OrderKey::Dimension(i) => q.dimensions[*i].name(),
            };
            json!([name, if *desc { "desc" } else { "asc" }])
        })
        .collect();
    let mut e = json!({
        "metrics": q.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "dimensions": q.dimensions.iter().map(Dimension::name).collect::<Vec<_>>(),
        "date_range": dates::labels(range, tz),
        "timezone": timezone,
        "filters": request::Filter::list_json(q.filter_without_goal.as_ref()),
        "order_by": order,
        "pagination": {"limit": q.limit, "offset": q.offset},
        "compare": q.compare.map(Compare::name),
        "include": {"total_rows": q.total_rows, "bots": q.include_bots, "time_labels": q.time_labels, "imports": q.imports},
        "source": q.source.name(),
        "goal": q.goal.as_ref().map(super::goal::Goal::to_json),
    });
    if let Some(c) = compared {
        e["comparison_date_range"] = json!(dates::labels(c, tz));
    }
    e
}

/// What ClickHouse answered to one period's `Statements`, as text.
#[derive(Debug, Clone, Default)]
pub struct Raw {
    pub rows: String,
    pub total_rows: Option<String>,
    pub total_visitors: Option<String>,
    pub conversion_base: Option<String>,
}

fn parse(q: &Query, raw: &Raw, range: &Range, tz: &jiff::tz::TimeZone) -> Result<Answers, String> {
    let n = q.dimensions.len();
    let total_visitors = match &raw.total_visitors {
        Some(t) => Some(results::parse_rows(t, 0)?.first().map(|r| r.visitors).unwrap_or(0.0)),
        None => None,
    };
    Ok(Answers {
        rows: results::parse_rows(&raw.rows, n)?,
        total_rows: raw.total_rows.as_deref().map(results::parse_total_rows).transpose()?,
        total_visitors,
        conversion_base: raw.conversion_base.as_deref().map(|b| results::parse_rows(b, n)).transpose()?.unwrap_or_default(),
        start: Some(match range.days {
            Some((first, _)) => results::Start { date: first, hour: 0 },
            None => {
                let z = jiff::Timestamp::from_second(range.from).map_err(|e| e.to_string())?.to_zoned_datetime(tz.clone());
                results::Start { date: z.date(), hour: z.hour() }
            }
        }),
    })
}

/// What in ClickHouse's answer is the client's to fix: revenue metrics over two currencies in
/// one row, of either period. Asked before `answer`.
pub fn refused_answer(plan: &Plan, now: &Raw, then: Option<&Raw>) -> Option<ApiError> {
    if !plan.query.metrics.iter().any(|m| m.is_revenue()) {
        return None;
    }
    [Some(now), then]
        .into_iter()
        .flatten()
        .find_map(|raw| results::mixed_currencies(&results::parse_rows(&raw.rows, plan.query.dimensions.len()).ok()?))
}

/// The response. Err: an answer did not read (a server fault, not the client's).
pub fn answer(plan: &Plan, now: &Raw, then: Option<&Raw>) -> Result<Value, String> {
    let tz = jiff::tz::TimeZone::get(&plan.timezone).map_err(|e| e.to_string())?;
    let a = parse(&plan.query, now, &plan.range, &tz)?;
    let b = match (then, &plan.compared) {
        (Some(raw), Some(r)) => Some(parse(&plan.query, raw, r, &tz)?),
        _ => None,
    };
    let mut meta = Map::new();
    meta.insert("source".into(), json!(plan.source(plan.now_table.as_ref(), &plan.range)));
    if let Some(r) = &plan.compared {
        meta.insert("comparison_source".into(), json!(plan.source(plan.then_table.as_ref(), r)));
    }
    if let Some(c) = plan.cut.filter(|_| plan.wants_frontier()) {
        // The last day the aggregates hold (UTC); later days come from raw events.
        let day = jiff::Timestamp::from_second(c - 1).map_err(|e| e.to_string())?.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
        meta.insert("aggregates_through".into(), json!(day.to_string()));
        if let Some(t) = &plan.now_table {
            meta.insert("estimated".into(), json!(aggregates::estimated(t, &plan.query.metrics)));
        }
        if let Some(t) = &plan.then_table {
            meta.insert("comparison_estimated".into(), json!(aggregates::estimated(t, &plan.query.metrics)));
        }
    }
    if plan.query.time_labels {
        let labels = plan.query.granularity().map(|g| dates::time_labels(g, &plan.range, &tz)).unwrap_or_default();
        meta.insert("time_labels".into(), json!(labels));
    }
    if plan.query.imports {
        // Plausible's imported data (from other tools): none is kept here.
        meta.insert("imports_included".into(), json!(false));
    }
    meta.insert("timezone".into(), json!(plan.timezone));
    meta.insert("visit_gap_minutes".into(), json!(sql::VISIT_GAP_SECONDS / 60));
    if plan.query.metrics.contains(&Metric::ConversionRate) {
        meta.insert("conversion_rate".into(), json!("visitors with the filtered event / visitors without the event:name filter, per row's dimensions but the event's own name, properties and revenue currency"));
    }
    Ok(results::assemble(&plan.query, &a, b.as_ref(), plan.echo.clone(), meta))
}

/// A ClickHouse refusal of a read, as the client should hear it: a query over the per-query
/// limits is too heavy (say how to narrow it); a regular expression ClickHouse cannot compile
/// is the filter's fault; anything else is ours (503, retry).
pub fn refusal(code: Option<u32>, reason: &str) -> ApiError {
    // A zone the parser knows (jiff's current database) that the server's own zone data lacks:
    // the same query fails every time, so it is the client's to change, not to retry.
    if reason.contains("Cannot load time zone") {
        return ApiError::bad_request(
            "invalid_timezone",
            "The event store does not know this time zone (the query's `timezone`, or the key's default). Ask with another IANA name for the same zone (an older spelling, such as Europe/Kiev for Europe/Kyiv) or UTC.",
        );
    }
    match code {
        Some(168 | 158 | 159 | 160 | 241 | 307 | 396) => too_heavy(),
        // A syntax error is the query's size only when the server says so; any other is a
        // statement built wrong, which the client cannot narrow away.
        Some(62) if reason.to_ascii_lowercase().contains("max query size exceeded") => too_heavy(),
        Some(427) => {
            ApiError::bad_request("invalid_filter", "A `matches` filter is not a valid regular expression (RE2 syntax). Fix the pattern.")
        }
        _ => ApiError::new(503, "temporarily_unavailable", "The event store is briefly unavailable. Retry the same query shortly."),
    }
}

fn too_heavy() -> ApiError {
    ApiError::new(
            422,
            "query_too_heavy",
        "This query needs more time, memory or rows than one query may use. Narrow it: a shorter date_range, a filter, fewer dimensions, or a smaller pagination.limit.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::sql::MAX_STATEMENT_BYTES;

    /// With `source: auto`, a query whose aggregates statement would be too large to run is
    /// answered from raw events, as it is before the rollup has run.
    #[test]
    fn auto_falls_back_to_raw_events_when_the_aggregates_statement_is_too_large() {
        let t = Tables { database: "millimetric", table: "events" };
        let now = 1_796_032_800_000;
        let values: Vec<String> = (0..100).map(|i| format!("{i}{}", "x".repeat(500))).collect();
        let body = serde_json::json!({"metrics": ["visitors"], "date_range": "12mo", "filters": [["matches", "visit:country", values]]});
        let body = body.to_string();
        assert!(body.len() < 64 * 1024);
        let p = plan(body.as_bytes(), "p", None, t, now).unwrap();
        assert!(p.wants_frontier());
        let p = p.with_frontier(Some(now / 1000 / 86_400 * 86_400)).unwrap();
        assert!(p.now_table.is_none(), "answered from raw events");
        let forced = body.replacen('{', r#"{"source":"aggregates","#, 1);
        let p = plan(forced.as_bytes(), "p", None, t, now).unwrap();
        assert_eq!(p.with_frontier(Some(now / 1000 / 86_400 * 86_400)).unwrap_err().code, "filters_too_large", "asked for aggregates");
    }

    const NOW: i64 = 1_796_032_800_000; // 2026-11-30 10:00 UTC
    const T: Tables = Tables { database: "millimetric", table: "events" };

    #[test]
    fn the_project_zone_is_the_default_and_the_echo_is_resolved() {
        let p = plan(br#"{"metrics":["visitors"],"date_range":"day","compare":"previous_period"}"#, "proj_a", Some("Asia/Kolkata"), T, NOW)
            .unwrap();
        assert_eq!(p.timezone, "Asia/Kolkata");
        assert_eq!(p.echo["date_range"], json!(["2026-11-30T00:00:00+05:30", "2026-11-30T23:59:59+05:30"]));
        assert_eq!(p.echo["comparison_date_range"], json!(["2026-11-29T00:00:00+05:30", "2026-11-29T23:59:59+05:30"]));
        assert!(p.now.rows.contains("project_id = 'proj_a'") && p.then.as_ref().unwrap().rows.contains("LIMIT 0, 10000"));
        // A compared period answers for this page's rows, however they rank there (the review's
        // case: page 200 of pages found nothing among the compared period's first 10,000).
        let body = br#"{"metrics":["visitors"],"date_range":"7d","dimensions":["event:page","time:day"],"compare":"previous_period","pagination":{"limit":100,"offset":20000}}"#;
        let p = plan(body, "proj_a", None, T, NOW).unwrap();
        let then = p.then.as_ref().unwrap().rows.clone();
        assert!(p.now.rows.contains("LIMIT 20000, 100"), "{}", p.now.rows);
        assert!(
            then.contains(&format!(") WHERE d0 IN (SELECT d0 FROM ({}))", p.now.around_page)),
            "matched on the page, not on time: {then}"
        );
        assert!(p.now.around_page.ends_with("LIMIT 19900, 300"), "the page and 100 rows either side: {}", p.now.around_page);
        // A statement that would pass the size bound with the page spelled inside it reads
        // every row as before, rather than refusing a query that used to run.
        let paths: Vec<String> = (0..100).map(|i| format!("/a-rather-long-path-name-number-{i:04}-xxxxxxxx")).collect();
        for (n, compare) in (6..=16).flat_map(|n| [(n, None), (n, Some("previous_period"))]) {
            let filters: Vec<serde_json::Value> = (0..n).map(|_| json!(["is_not", "event:page", paths])).collect();
            let body = json!({"metrics": ["visitors", "conversion_rate"], "date_range": "7d", "dimensions": ["event:page"],
                "goal": {"event": "signup"}, "order_by": [["conversion_rate", "desc"]], "filters": filters, "compare": compare});
            let p = plan(body.to_string().as_bytes(), "proj_a", None, T, NOW).unwrap_or_else(|e| panic!("{n} filters, {compare:?}: {e}"));
            let statements = [Some(&p.now.rows), p.now.conversion_base.as_ref(), p.then.as_ref().map(|t| &t.rows)];
            assert!(statements.into_iter().flatten().all(|s| s.len() <= MAX_STATEMENT_BYTES), "{n} filters, {compare:?}");
        }
        // The compared period answers for all the page's rows and its margins'.
        let body = br#"{"metrics":["visitors"],"date_range":"7d","dimensions":["event:page"],"compare":"previous_period","pagination":{"limit":10000}}"#;
        let p = plan(body, "proj_a", None, T, NOW).unwrap();
        assert!(p.now.around_page.ends_with("LIMIT 0, 10100") && p.then.unwrap().rows.contains("LIMIT 0, 10200 FORMAT"));
        let p = plan(br#"{"metrics":["visitors"],"date_range":"day","timezone":"UTC"}"#, "proj_a", Some("Asia/Kolkata"), T, NOW).unwrap();
        assert_eq!(p.timezone, "UTC");
        let p = plan(br#"{"metrics":["visitors"],"date_range":"day"}"#, "proj_a", Some("not/a zone"), T, NOW).unwrap();
        assert_eq!(p.timezone, "UTC");
        assert_eq!(
            plan(br#"{"metrics":["visitors"],"date_range":"day","timezone":"Moon/Base"}"#, "p", None, T, NOW).unwrap_err().code,
            "invalid_timezone"
        );
    }

    /// With a time dimension, the compared period holds a row for each of the page's values in
    /// each of its buckets: its statement keeps them all (up to the read limit's 100,000 rows),
    /// where it once kept its own first 10,200 and a page's later rows compared with 0. Its
    /// conversion denominators cover every one of its rows.
    #[test]
    fn a_compared_period_by_time_keeps_every_bucket_of_the_pages_values() {
        let limit_of = |sql: &str| -> u64 {
            let tail = sql.rsplit("LIMIT ").next().unwrap();
            let (first, n) = tail.split_once(", ").unwrap();
            assert_eq!(first, "0", "{sql}");
            n.split(' ').next().unwrap().parse().unwrap()
        };
        // 91 days by page: up to 300 pages (the page and its margins) in each of 91 or 92 days.
        let body = br#"{"metrics":["visitors"],"date_range":"91d","dimensions":["event:page","time:day"],"compare":"previous_period","order_by":[["visitors","desc"]]}"#;
        let p = plan(body, "p", None, T, crate::test_clock::now_ms()).unwrap();
        assert!(limit_of(&p.then.unwrap().rows) >= 300 * 92);
        // Hours over 546 days: 13,104 buckets, all of them.
        let now = crate::test_clock::now_ms();
        let today = jiff::Timestamp::from_millisecond(now).unwrap().to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
        let first = today.checked_sub(jiff::Span::new().days(545)).unwrap();
        let body = json!({"metrics":["visitors","conversion_rate"],"date_range":[first.to_string(), today.to_string()],"dimensions":["time:hour"],
            "goal":{"event":"signup"},"compare":"previous_period","pagination":{"limit":100,"offset":12000}});
        let p = plan(body.to_string().as_bytes(), "p", None, T, now).unwrap();
        let then = p.then.unwrap();
        let rows = limit_of(&then.rows);
        assert!(rows >= 546 * 24, "{rows}");
        assert_eq!(limit_of(&then.around_page), rows, "the denominators cover every compared row");
        // Never past the read limit's rows.
        let body = br#"{"metrics":["visitors"],"date_range":"12mo","dimensions":["event:page","time:hour"],"compare":"previous_period","pagination":{"limit":10000}}"#;
        assert!(limit_of(&plan(body, "p", None, T, now).unwrap().then.unwrap().rows) <= 100_000);
    }

    #[test]
    fn aggregates_answer_only_periods_on_quarter_hours_unless_asked() {
        // NOW is 10:00 UTC: `24h` starts at 10:00 yesterday (a whole hour), `7d` at midnight.
        let cut = Some(NOW / 1000 - 10 * 3600);
        let p = plan(br#"{"metrics":["visitors"],"date_range":"7d","compare":"previous_period"}"#, "p", None, T, NOW)
            .unwrap()
            .with_frontier(cut)
            .unwrap();
        assert!(p.now.rows.contains("visits_agg") && p.then.as_ref().unwrap().rows.contains("visits_agg"));
        let odd = r#"{"metrics":["visitors"],"date_range":["2026-11-20T10:07:00Z","2026-11-25T00:00:00Z"]}"#;
        let p = plan(odd.as_bytes(), "p", None, T, NOW).unwrap().with_frontier(cut).unwrap();
        assert!(!p.now.rows.contains("visits_agg") && p.now_table.is_none(), "a range from 10:07 keeps raw events: {}", p.now.rows);
        let forced = odd.replace("}", r#","source":"aggregates"}"#);
        let p = plan(forced.as_bytes(), "p", None, T, NOW).unwrap().with_frontier(cut).unwrap();
        assert!(p.now.rows.contains("visits_agg"));
        let p = plan(br#"{"metrics":["visitors"],"date_range":"day"}"#, "p", None, T, NOW).unwrap().with_frontier(cut).unwrap();
        assert!(p.now_table.is_none(), "today is after the cut: raw");
    }

    #[test]
    fn answers_assemble_and_heavy_queries_say_how_to_narrow() {
        let p = plan(
            br#"{"metrics":["visitors","percentage"],"date_range":"7d","dimensions":["visit:country"],"include":{"total_rows":true}}"#,
            "p",
            None,
            T,
            NOW,
        )
        .unwrap();
        let raw = Raw {
            rows: "{\"d0\":\"DE\",\"visitors\":\"3\",\"visits\":3,\"pageviews\":3,\"events\":3,\"bounces\":0,\"duration\":0}\n".into(),
            total_rows: Some("{\"total_rows\":\"1\"}".into()),
            total_visitors: Some("{\"visitors\":\"4\",\"visits\":4,\"pageviews\":4,\"events\":4,\"bounces\":0,\"duration\":0}".into()),
            conversion_base: None,
        };
        let out = answer(&p, &raw, None).unwrap();
        assert_eq!(out["results"][0], json!({"dimensions": ["DE"], "metrics": [3, 75.0]}));
        assert_eq!((out["meta"]["total_rows"].clone(), out["meta"]["source"].clone()), (json!(1), json!("raw_events")));
        assert_eq!(out["query"]["dimensions"], json!(["visit:country"]));
        // Plausible's include keys: every bucket of the time dimension, and no imported data.
        let p = plan(
            br#"{"metrics":["visitors"],"date_range":"7d","dimensions":["time:day"],"include":{"time_labels":true,"imports":true}}"#,
            "p",
            None,
            T,
            NOW,
        )
        .unwrap();
        let out = answer(&p, &Raw { rows: String::new(), ..Raw::default() }, None).unwrap();
        assert_eq!(out["meta"]["time_labels"].as_array().map(Vec::len), Some(7), "{out}");
        assert_eq!(out["meta"]["imports_included"], json!(false));
        assert!(answer(&p, &Raw { rows: "Code: 159. Timeout".into(), ..raw }, None).is_err());
        let e = refusal(Some(159), "Code: 159. Timeout exceeded");
        assert_eq!((e.status, e.code), (422, "query_too_heavy"));
        assert!(e.message.contains("date_range"));
        assert_eq!(refusal(Some(427), "").code, "invalid_filter");
        let e = refusal(Some(62), "Code: 62. DB::Exception: Syntax error: failed at position 262145: Max query size exceeded: '1'.");
        assert_eq!(e.status, 422, "max_query_size exceeded is the query's size, not our fault");
        // Review finding: any other syntax error is a statement we built wrong (or one the server
        // does not parse): ours to log and fix, not the client's to narrow.
        let e = refusal(
            Some(62),
            "Code: 62. DB::Exception: Syntax error: failed at position 812 (line 1, col 812): FROM. Expected one of: ...",
        );
        assert_eq!((e.status, e.code), (503, "temporarily_unavailable"));
        // The review's case: 132 conditions of 100 values on a long property key, under 64 KiB
        // of body, spelled 1.6 MB of SQL.
        let key = "k".repeat(64);
        let cond = serde_json::json!(["contains", format!("event:props:{key}"), (0..100).map(|i| i.to_string()).collect::<Vec<_>>()]);
        let body = serde_json::json!({"metrics": ["visitors"], "date_range": "7d", "filters": vec![cond; 50]});
        assert_eq!(plan(body.to_string().as_bytes(), "p", None, T, NOW).unwrap_err().code, "filters_too_large");
        assert_eq!(refusal(None, "ClickHouse unreachable").status, 503);
        // Review finding: a zone the parser takes but the server's zone data lacks failed the
        // same way every time, answered "retry shortly".
        for reason in [
            "Poco::Exception. Code: 1000, e.code() = 0, e.displayText() = Exception: Cannot load time zone America/Ciudad_Juarez",
            "Code: 36. DB::Exception: Cannot load time zone Europe/Kyiv: while executing ... (BAD_ARGUMENTS)",
        ] {
            let e = refusal(Some(1000), reason);
            assert_eq!((e.status, e.code), (400, "invalid_timezone"), "{reason}");
        }
    }
}
