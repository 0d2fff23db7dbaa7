//! A checked query to ClickHouse SQL, on raw events. Runs on 18.16 (no window functions) and
//! on modern servers. Only the closed set of column expressions below and `sql::string`
//! values reach the text.
//!
//! Visits are derived here, from `mm_aid` and timestamps, within the queried range: a visitor's
//! events sorted by time, a new visit wherever 30 minutes or more passed since the previous
//! one (arrayDifference, arrayCumSum). A visit's attributes (entry page, source, UTMs, geo,
//! device) are its first event's; its exit page is its last event's. An event without an
//! `mm_aid` is a visitor and a visit of its own.
//!
//! Levels, inside out: events in range -> per visitor, events with their visit number ->
//! one row per visit (attributes, counts, its events as an array) -> when the query has
//! event-level dimensions or filters, one row per (visit, event-level dimension values) over
//! the visit's matching events -> grouped by the dimensions. A visit counts where at least one
//! of its events matches the event-level filters; pageviews and events count only the
//! matching events; bounce and duration stay the visit's own.

use super::request::{Dimension, Filter, Granularity, Metric, Op, OrderKey, Query};
use crate::storage::sql::string;

/// A gap of this many seconds or more starts a new visit.
pub const VISIT_GAP_SECONDS: u32 = 1800;

/// What the SQL is run over: one project's events in `[from, to)` (UTC seconds).
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub database: &'a str,
    pub table: &'a str,
    pub project_id: &'a str,
    pub from: i64,
    pub to: i64,
    pub timezone: &'a str,
    pub include_bots: bool,
}

/// The columns every grouped statement answers with, after `d0..dN` (the dimensions).
pub const COMPONENTS: [&str; 6] = ["visitors", "visits", "pageviews", "events", "bounces", "duration"];

/// Where a dimension's value is read from. `Raw` is the raw-events path of a query;
/// `RawByStart` the same rows for the part of a query that aggregates share (a visit's time is
/// its start, as in the aggregates); the others are the aggregate tables (core/src/query/aggregates.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Raw,
    RawByStart,
    Visits,
    Pages,
    Props,
}

fn is_event_level_at(d: &Dimension, level: Level) -> bool {
    match level {
        Level::RawByStart => d.is_event_level() && !matches!(d, Dimension::Time(_)),
        _ => d.is_event_level(),
    }
}

fn has_event_level(dims: &[Dimension], filter: Option<&Filter>, level: Level) -> bool {
    dims.iter().any(|d| is_event_level_at(d, level)) || filter.is_some_and(|f| f.dimensions().iter().any(|d| is_event_level_at(d, level)))
}

fn time_column(g: Granularity, t: &str, tz: &str) -> String {
    match g {
        Granularity::Hour => format!("toString(toStartOfHour({t}, {tz}), {tz})", tz = string(tz)),
        Granularity::Day => format!("toString(toDate({t}, {}))", string(tz)),
        Granularity::Week => format!("toString(toMonday({t}, {}))", string(tz)),
        Granularity::Month => format!("toString(toStartOfMonth({t}, {}))", string(tz)),
    }
}

/// The expression for a dimension at a level (raw: `ev` is the event tuple, when expanded).
/// Combinations a level does not hold are never asked (aggregates::table_for decides).
pub fn column(d: &Dimension, tz: &str, level: Level) -> String {
    let aggregate = matches!(level, Level::Visits | Level::Pages | Level::Props);
    match (d, level) {
        (Dimension::Time(g), Level::Raw) => time_column(*g, "toDateTime(ev.1)", tz),
        (Dimension::Time(g), Level::RawByStart) => time_column(*g, "toDateTime(start)", tz),
        (Dimension::Time(g), _) => time_column(*g, "bucket", tz),
        (Dimension::Page, Level::Pages) => "page".into(),
        (Dimension::Hostname, Level::Pages) => "host".into(),
        (Dimension::Name, Level::Pages | Level::Props) => "event_name".into(),
        // The pages table keeps names, not types: a pageview's name is `pageview`.
        (Dimension::EventType, Level::Pages) => "if(event_name = 'pageview', 'pageview', 'custom')".into(),
        (Dimension::Prop(_), Level::Props) => "prop_value".into(),
        (
            Dimension::Page
            | Dimension::Name
            | Dimension::Hostname
            | Dimension::Prop(_)
            | Dimension::RevenueCurrency
            | Dimension::EventType,
            _,
        ) if aggregate => "''".into(),
        // Only in the events of visits read with REVENUE (`units` does when the query wants it).
        (Dimension::RevenueCurrency, _) => "ev.9".into(),
        (Dimension::EventType, _) => "ev.2".into(),
        (Dimension::Page, _) => "ev.5".into(),
        (Dimension::Name, _) => "ev.3".into(),
        (Dimension::Hostname, _) => "ev.4".into(),
        // arrayElement: 18.16 cannot parse a subscript after a tuple element (`ev.7[i]`).
        (Dimension::Prop(k), _) => format!("arrayElement(ev.7, indexOf(ev.6, {}))", string(k)),
        (Dimension::EntryPage, _) => "entry_page".into(),
        (Dimension::ExitPage, _) => "exit_page".into(),
        (Dimension::Source, _) => "v_source".into(),
        (Dimension::Medium, _) => "v_medium".into(),
        (Dimension::Referrer, _) => "v_referrer".into(),
        (Dimension::UtmSource, _) => "v_utm_source".into(),
        (Dimension::UtmMedium, _) => "v_utm_medium".into(),
        (Dimension::UtmCampaign, _) => "v_utm_campaign".into(),
        (Dimension::UtmTerm, _) => "v_utm_term".into(),
        (Dimension::UtmContent, _) => "v_utm_content".into(),
        (Dimension::ClickIdType, _) => "v_click_id_type".into(),
        (Dimension::Country, _) => "v_country".into(),
        (Dimension::Region, _) => "v_region".into(),
        (Dimension::City, _) => "v_city".into(),
        (Dimension::Browser, _) => "v_browser".into(),
        (Dimension::Os, _) => "v_os".into(),
        (Dimension::Device, _) => "v_device".into(),
    }
}

pub fn condition(f: &Filter, tz: &str, level: Level) -> String {
    match f {
        Filter::And(fs) => format!("({})", fs.iter().map(|f| condition(f, tz, level)).collect::<Vec<_>>().join(" AND ")),
        Filter::Or(fs) => format!("({})", fs.iter().map(|f| condition(f, tz, level)).collect::<Vec<_>>().join(" OR ")),
        Filter::Not(f) => format!("(NOT {})", condition(f, tz, level)),
        Filter::Cond { op, dimension, values } => {
            let col = column(dimension, tz, level);
            // "(none)" is how an empty value is shown: `is`/`is_not` on it find the empty ones.
            let none_is_empty = matches!(op, Op::Is | Op::IsNot);
            let values: Vec<String> =
                values.iter().map(|v| if none_is_empty && v == "(none)" { String::new() } else { v.clone() }).collect();
            let values = &values;
            let list = values.iter().map(|v| string(v)).collect::<Vec<_>>().join(", ");
            let any = |f: &dyn Fn(&str) -> String| format!("({})", values.iter().map(|v| f(&string(v))).collect::<Vec<_>>().join(" OR "));
            match op {
                Op::Is => format!("({col} IN ({list}))"),
                Op::IsNot => format!("({col} NOT IN ({list}))"),
                Op::Contains => any(&|v| format!("position({col}, {v}) > 0")),
                Op::ContainsNot => format!("(NOT {})", any(&|v| format!("position({col}, {v}) > 0"))),
                // Each pattern also against a constant, so ClickHouse compiles it even when no
                // row is read (18.16 compiles lazily): a bad pattern is always the client's 400.
                Op::Matches | Op::MatchesNot => {
                    let compiled = values.iter().map(|v| format!("match('', {}) IN (0, 1)", string(v))).collect::<Vec<_>>().join(" AND ");
                    let test = any(&|v| format!("match({col}, {v})"));
                    let test = if *op == Op::Matches { test } else { format!("(NOT {test})") };
                    format!("({compiled} AND {test})")
                }
            }
        }
    }
}

/// Attributes a visit takes from its first event: (column in events, name at visit level).
pub const VISIT_ATTRS: &[(&str, &str)] = &[
    ("source", "v_source"),
    ("medium", "v_medium"),
    ("referrer", "v_referrer"),
    ("utm_source", "v_utm_source"),
    ("utm_medium", "v_utm_medium"),
    ("utm_campaign", "v_utm_campaign"),
    ("utm_term", "v_utm_term"),
    ("utm_content", "v_utm_content"),
    ("click_id_type", "v_click_id_type"),
    ("country", "v_country"),
    ("region", "v_region"),
    ("city", "v_city"),
    ("browser", "v_browser"),
    ("os", "v_os"),
    ("device_type", "v_device"),
];

/// How much before a window is read so that the visits running at its start keep their real
/// start and first event (a visit that had run for longer counts from its first event within).
pub const VISIT_CONTEXT_SECONDS: i64 = 86_400;

/// The raw events a query's scope reads: one project, `[from, to)`, bots left out unless asked.
pub fn scope_events(s: &Scope) -> String {
    let bots = if s.include_bots { "" } else { " AND is_bot = 0" };
    format!("project_id = {} AND timestamp >= toDateTime({}) AND timestamp < toDateTime({}){bots}", string(s.project_id), s.from, s.to)
}

/// One row per visit of the events `events_where` selects: project_id, is_bot, visitor, vi
/// (its number for the visitor), start (its first event's time), its attributes, counts,
/// duration and (as `vevs`) its events. A bot-flagged event never joins a visit with other
/// events. The rollup job (core/src/storage/rollup/) builds the aggregates from the same rows.
pub fn visits(database: &str, table: &str, events_where: &str) -> String {
    visits_with(database, table, events_where, VISIT_ATTRS, &[], true)
}

/// The visit attributes (of VISIT_ATTRS, in its order) that these dimensions read: what a
/// query that needs only some of them carries through `visits_with`.
pub fn visit_attrs_for<'a>(dims: impl IntoIterator<Item = &'a Dimension>) -> Vec<(&'static str, &'static str)> {
    let names: Vec<String> = dims.into_iter().map(|d| column(d, "UTC", Level::Raw)).collect();
    VISIT_ATTRS.iter().filter(|(_, v)| names.iter().any(|n| n == v)).copied().collect()
}

/// `visits`, carrying only the visit attributes `attrs` (a subset of VISIT_ATTRS: the fewer,
/// the lighter), with more of each event's columns in `vevs` (its fields 8.. in `extra`'s order),
/// and without reading properties unless `props` (their fields are then empty arrays).
pub fn visits_with(database: &str, table: &str, events_where: &str, visit_attrs: &[(&str, &str)], extra: &[&str], props: bool) -> String {
    // Tuple fields: 1 t, 2 event_id, 3 event_type, 4 event_name, 5 url_host, 6 url_path,
    // 7 prop_keys, 8 prop_values, then the visit attributes (9..), then `extra`.
    // `event_id` is carried anyway; an extra that names it only puts it in `vevs`.
    let attrs: Vec<&str> = visit_attrs.iter().map(|(c, _)| *c).chain(extra.iter().copied().filter(|c| *c != "event_id")).collect();
    let more: String = attrs.iter().map(|a| format!(", {a}")).collect();
    let props = if props { "prop_keys, prop_values" } else { "emptyArrayString() AS prop_keys, emptyArrayString() AS prop_values" };
    let events = format!(
        "SELECT project_id, is_bot, if(anonymous_id = '', concat('~', event_id), anonymous_id) AS visitor, toUInt32(timestamp) AS t, event_id, event_type, event_name, url_host, url_path, {props}{more} \
         FROM {database}.{table} FINAL WHERE {events_where}"
    );
    let per_visitor = format!(
        "SELECT project_id, is_bot, visitor, arraySort(x -> (x.1, x.2), groupArray((t, event_id, event_type, event_name, url_host, url_path, prop_keys, prop_values{more}))) AS evs, \
         arrayCumSum(arrayMap(d -> toUInt32(d >= {gap}), arrayDifference(arrayMap(x -> x.1, evs)))) AS vis FROM ({events}) GROUP BY project_id, is_bot, visitor",
        gap = VISIT_GAP_SECONDS,
    );
    let mut fields: Vec<String> = ["t", "event_id", "event_type", "event_name", "url_host", "url_path", "prop_keys", "prop_values"]
        .iter()
        .enumerate()
        .map(|(i, n)| format!("e.{} AS {n}", i + 1))
        .collect();
    fields.extend(attrs.iter().enumerate().map(|(i, n)| format!("e.{} AS {n}", i + 9)));
    let vevs: Vec<&str> = ["t", "event_type", "event_name", "url_host", "url_path", "prop_keys", "prop_values"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let with_visit =
        format!("SELECT project_id, is_bot, visitor, vi, {} FROM ({per_visitor}) ARRAY JOIN evs AS e, vis AS vi", fields.join(", "));
    let first: String = visit_attrs.iter().map(|(c, v)| format!("argMin({c}, (t, event_id)) AS {v}, ")).collect();
    format!(
        "SELECT project_id, is_bot, visitor, vi, min(t) AS start, max(t) - min(t) AS duration, countIf(event_type = 'pageview') AS vpv, countIf(event_type != 'pageview') AS vce, \
         argMin(url_path, (t, event_id)) AS entry_page, argMax(url_path, (t, event_id)) AS exit_page, {first}\
         groupArray(({vevs})) AS vevs FROM ({with_visit}) GROUP BY project_id, is_bot, visitor, vi",
        vevs = vevs.join(", "),
    )
}

/// The dimensions' expressions at a level, named `d0..dN`, as the head of a select list
/// ("expr AS d0, expr AS d1, "; empty with no dimensions).
pub fn dim_columns(dims: &[Dimension], tz: &str, level: Level) -> String {
    dims.iter().enumerate().map(|(i, d)| format!("{} AS d{i}, ", column(d, tz, level))).collect()
}

/// The events' revenue columns, as `visits_with` carries them (a visit's event tuple's 8 and 9).
pub const REVENUE: [&str; 2] = ["revenue_amount", "revenue_currency"];

/// One row per counted unit: a visit, or with event-level dimensions or filters a (visit,
/// event-level values) pair over the visit's matching events: `d0..dN`, visitor, vstart, mpv
/// (pageviews), mev (events), bounce, vduration; with `revenue`, also mrev (the matching events'
/// revenue), mrevn (how many had any) and mcur (their currencies). `extra` is one more
/// condition on the events (None for a plain query).
fn units(s: &Scope, dims: &[Dimension], filter: Option<&Filter>, level: Level, extra: Option<&str>, revenue: bool) -> String {
    let select_dims = dim_columns(dims, s.timezone, level);
    let dim_names: Vec<String> = (0..dims.len()).map(|i| format!("d{i}")).collect();
    let mut conds: Vec<String> = filter.map(|f| condition(f, s.timezone, level)).into_iter().chain(extra.map(String::from)).collect();
    // The raw part of an answer the aggregates share counts, as they do, the visits that start
    // in it: a visit that began before it (a day of context is read) is the aggregates'.
    let events = if level == Level::RawByStart {
        conds.push(format!("start >= {}", s.from));
        scope_events(&Scope { from: s.from - VISIT_CONTEXT_SECONDS, ..s.clone() })
    } else {
        scope_events(s)
    };
    let where_ = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let visits = visits_with(s.database, s.table, &events, VISIT_ATTRS, if revenue { &REVENUE } else { &[] }, true);
    if has_event_level(dims, filter, level) || extra.is_some() || revenue {
        // A visit's event tuple: 1 t, 2 event_type, 3 event_name, 4 url_host, 5 url_path, 6 prop_keys, 7 prop_values
        // (with revenue: 8 revenue_amount, 9 revenue_currency).
        let keys = dim_names.iter().map(String::as_str).chain(["is_bot", "visitor", "vi"]).collect::<Vec<_>>().join(", ");
        let money = if revenue {
            ", sumIf(ev.8, ev.9 != '') AS mrev, countIf(ev.9 != '') AS mrevn, groupUniqArrayIf(ev.9, ev.9 != '') AS mcur"
        } else {
            ""
        };
        format!(
            "SELECT {select_dims}is_bot, visitor, any(start) AS vstart, countIf(ev.2 = 'pageview') AS mpv, count() AS mev, any(toUInt8(vpv = 1 AND vce = 0)) AS bounce, any(duration) AS vduration{money} \
             FROM ({visits}) ARRAY JOIN vevs AS ev{where_} GROUP BY {keys}"
        )
    } else {
        format!("SELECT {select_dims}is_bot, visitor, start AS vstart, vpv AS mpv, vpv + vce AS mev, toUInt8(vpv = 1 AND vce = 0) AS bounce, duration AS vduration FROM ({visits}){where_}")
    }
}

/// `d0..dN` as the head of a select list ("d0, d1, ") and as a GROUP BY clause (" GROUP BY
/// d0, d1"); both empty with no dimensions.
pub fn group_by(n: usize) -> (String, String) {
    let names: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    if names.is_empty() {
        (String::new(), String::new())
    } else {
        (format!("{}, ", names.join(", ")), format!(" GROUP BY {}", names.join(", ")))
    }
}

/// The grouped statement: `d0..dN` and COMPONENTS per group, not yet ordered or paged; with
/// `revenue`, also revenue_sum, revenue (its exact text), revenue_events and currencies.
pub fn grouped(s: &Scope, dims: &[Dimension], filter: Option<&Filter>, revenue: bool) -> String {
    let (select_dims, group_by) = group_by(dims.len());
    let money = if revenue {
        ", sum(mrev) AS revenue_sum, toString(sum(mrev)) AS revenue, sum(mrevn) AS revenue_events, groupUniqArrayArray(mcur) AS currencies"
    } else {
        ""
    };
    format!(
        "SELECT {select_dims}uniqExact(visitor) AS visitors, count() AS visits, sum(mpv) AS pageviews, sum(mev) AS events, sum(bounce) AS bounces, sum(vduration) AS duration{money} \
         FROM ({units}){group_by}",
        units = units(s, dims, filter, Level::Raw, None, revenue),
    )
}

/// The raw part of a query that aggregates answer too, in the aggregates' partial form:
/// `d0..dN`, vs (visitors' sketch), with `with_ks` ks (visits' sketch, keyed by visitor, start and
/// is_bot, as the rollup keys them), n
/// (visits), pageviews, events, bounces, duration. A visit's time is its start.
pub fn sketched(s: &Scope, dims: &[Dimension], filter: Option<&Filter>, extra: Option<&str>, with_ks: bool) -> String {
    let (select_dims, group_by) = group_by(dims.len());
    let ks = if with_ks { "uniqCombinedState(concat(visitor, '/', toString(vstart), '/', toString(is_bot))) AS ks, " } else { "" };
    format!(
        "SELECT {select_dims}uniqCombinedState(visitor) AS vs, {ks}toUInt64(count()) AS n, toUInt64(sum(mpv)) AS pageviews, \
         toUInt64(sum(mev)) AS events, toUInt64(sum(bounce)) AS bounces, toUInt64(sum(vduration)) AS duration FROM ({units}){group_by}",
        units = units(s, dims, filter, Level::RawByStart, extra, false),
    )
}

/// Whether the rows are ordered by conversion rate: each row's own denominator is then joined
/// to it (`base_visitors`), so the order and the page are ClickHouse's, exact.
fn ordered_by_rate(q: &Query) -> bool {
    !q.dimensions.is_empty() && q.order_by.iter().any(|(k, _)| *k == OrderKey::Metric(Metric::ConversionRate))
}

/// The SQL expression a metric orders by (over COMPONENTS). Percentages order as their
/// visitors do (the denominator is the query's); a conversion rate by visitors over the row's
/// `base_visitors` when they are joined (else there is one row, or one denominator).
fn order_expr(m: Metric, rate_joined: bool) -> &'static str {
    match m {
        Metric::ConversionRate if rate_joined => "if(base_visitors > 0, visitors / base_visitors, 0)",
        Metric::TotalRevenue => "revenue_sum",
        // Ordering only: a float of the decimal (18.16 has no if() of a Decimal and an integer).
        Metric::AverageRevenue => "if(revenue_events > 0, toFloat64(revenue_sum) / revenue_events, 0)",
        Metric::Visitors | Metric::Percentage | Metric::ConversionRate => "visitors",
        Metric::Visits => "visits",
        Metric::Pageviews => "pageviews",
        Metric::Events => "events",
        Metric::ViewsPerVisit => "pageviews / visits",
        Metric::BounceRate => "bounces / visits",
        Metric::VisitDuration => "duration / visits",
    }
}

/// The order a query's rows come in: as asked, then (so pages are stable) by the time
/// dimension ascending or the first metric descending, then by every dimension ascending.
pub fn order_by(q: &Query) -> String {
    let mut keys: Vec<String> = q
        .order_by
        .iter()
        .map(|(k, desc)| {
            let e = match k {
                OrderKey::Metric(m) => order_expr(*m, ordered_by_rate(q)).to_string(),
                OrderKey::Dimension(i) => format!("d{i}"),
            };
            format!("{e} {}", if *desc { "DESC" } else { "ASC" })
        })
        .collect();
    if q.order_by.is_empty() {
        match q.dimensions.iter().position(|d| matches!(d, Dimension::Time(_))) {
            Some(i) => keys.push(format!("d{i} ASC")),
            None => keys.push(format!("{} DESC", order_expr(q.metrics[0], false))),
        }
    }
    keys.extend((0..q.dimensions.len()).map(|i| format!("d{i} ASC")));
    keys.join(", ")
}

/// The statements one query needs, each answering in JSONEachRow.
#[derive(Debug, Clone, PartialEq)]
pub struct Statements {
    /// The page of rows asked for.
    pub rows: String,
    /// The page's rows and PAGE_MARGIN either side, as a subquery (no FORMAT): the rows other
    /// statements keep to.
    pub around_page: String,
    /// How many rows there are in all (when `include.total_rows`).
    pub total_rows: Option<String>,
    /// Total visitors with no dimensions (for `percentage`).
    pub total_visitors: Option<String>,
    /// Visitors per row without the `event:name` filters (for `conversion_rate`).
    pub conversion_base: Option<String>,
}

impl Statements {
    /// Whether a statement run for the answer is longer than ClickHouse parses
    /// (MAX_STATEMENT_BYTES): the page of rows, or the conversion base.
    pub fn too_long_to_run(&self) -> bool {
        [Some(&self.rows), self.conversion_base.as_ref()].into_iter().flatten().any(|s| s.len() > MAX_STATEMENT_BYTES)
    }
}

pub fn statements(q: &Query, s: &Scope, among: Option<&str>) -> Statements {
    statements_with(q, &|dims, filter| grouped(s, dims, filter, q.wants_revenue()), among)
}

/// Under ClickHouse's default max_query_size (256 KiB), with room.
pub const MAX_STATEMENT_BYTES: usize = 200 * 1024;

/// Rows either side of the page that a statement completing it keeps too: each statement runs
/// on its own snapshot, and events landing between them (a period with today in it) can move
/// a row across the page's edge.
pub const PAGE_MARGIN: u64 = 100;

/// The most rows a compared period's statement returns: the read limit's `max_result_rows`,
/// past which ClickHouse refuses the statement.
pub const MAX_COMPARED_ROWS: u64 = crate::storage::clickhouse::READ_MAX_RESULT_ROWS;

/// `grouped`'s groups kept to those whose dimensions `keys` (indices) are among the rows of
/// `page`: a statement that only completes a page's rows answers no more groups than the page
/// has (past max_result_rows it would fail), and finds each of its rows however it ranks. No
/// keys: all of them. (A HAVING on the aliases fails on 18.16: "Unknown identifier"; the
/// outer WHERE runs on 18.16 and 26.9 without counting the inner groups as result rows.)
fn among(grouped: String, keys: &[usize], page: &str) -> String {
    if keys.is_empty() {
        return grouped;
    }
    let names = keys.iter().map(|i| format!("d{i}")).collect::<Vec<_>>().join(", ");
    let tuple = if keys.len() == 1 { names.clone() } else { format!("({names})") };
    format!("SELECT * FROM ({grouped}) WHERE {tuple} IN (SELECT {names} FROM ({page}))")
}

/// The dimensions a compared period's rows are matched on: all but time (its buckets are
/// other dates, matched by their place in the period).
fn matched_dimensions(q: &Query) -> Vec<usize> {
    (0..q.dimensions.len()).filter(|i| !matches!(q.dimensions[*i], Dimension::Time(_))).collect()
}

/// Each row's `conversion_rate` denominator: the visitors of the base filter, grouped by the
/// dimensions a denominator keeps (`Query::base_dimensions`), its columns named as the rows'
/// (`d{i}`; a dimension it drops is ''). Renamed through `b{i}`: ClickHouse resolves an alias
/// anywhere in a SELECT, so `d1 AS d0` beside a `d0` would read the wrong column.
fn conversion_base(q: &Query, grouped: &dyn Fn(&[Dimension], Option<&Filter>) -> String) -> String {
    let kept = q.base_dimensions();
    if kept.len() == q.dimensions.len() {
        return grouped(&q.dimensions, q.conversion_base().as_ref());
    }
    let dims: Vec<Dimension> = kept.iter().map(|&i| q.dimensions[i].clone()).collect();
    let inner = grouped(&dims, q.conversion_base().as_ref());
    let renamed: Vec<String> = kept.iter().enumerate().map(|(j, i)| format!("d{j} AS b{i}, ")).collect();
    let named: Vec<String> =
        (0..q.dimensions.len()).map(|i| if kept.contains(&i) { format!("b{i} AS d{i}, ") } else { format!("'' AS d{i}, ") }).collect();
    let components = COMPONENTS.join(", ");
    format!("SELECT {}{components} FROM (SELECT {}{components} FROM ({inner}))", named.concat(), renamed.concat())
}

/// The statements, given how a grouped statement is spelled (raw events, or aggregates). With
/// `among_page` (the other period's `around_page`, for a comparison), its rows are kept to
/// that page's.
pub fn statements_with(q: &Query, grouped: &dyn Fn(&[Dimension], Option<&Filter>) -> String, among_page: Option<&str>) -> Statements {
    let kept = spelled(q, grouped, among_page, true);
    // Keeping to the page spells it inside the other statements: past the size bound they
    // read every row, as before (a comparison then reads the compared period's first rows by
    // its own order; docs/stats-api.md).
    if kept.too_long_to_run() {
        return spelled(q, grouped, among_page, false);
    }
    kept
}

fn spelled(
    q: &Query,
    grouped: &dyn Fn(&[Dimension], Option<&Filter>) -> String,
    among_page: Option<&str>,
    keep_to_page: bool,
) -> Statements {
    let mut body = grouped(&q.dimensions, q.filter.as_ref());
    let mut limit = q.limit;
    let keys = matched_dimensions(q);
    if let (Some(page), true, false) = (among_page, keep_to_page, keys.is_empty()) {
        body = among(body, &keys, page);
        // All of the other page's rows and its margins', whatever their order here.
        limit = (limit + 2 * PAGE_MARGIN).min(MAX_COMPARED_ROWS);
    }
    let format = " FORMAT JSONEachRow";
    let kept = q.base_dimensions();
    let ordered = if ordered_by_rate(q) {
        let base = conversion_base(q, grouped);
        // Aliased: a modern server requires it of joined subqueries.
        if kept.is_empty() {
            format!("SELECT * FROM ({body}) AS rows CROSS JOIN (SELECT visitors AS base_visitors FROM ({base})) AS base")
        } else {
            let keys = kept.iter().map(|i| format!("d{i}")).collect::<Vec<_>>().join(", ");
            format!(
                "SELECT * FROM ({body}) AS rows ANY LEFT JOIN (SELECT {keys}, visitors AS base_visitors FROM ({base})) AS base USING ({keys})"
            )
        }
    } else {
        body.clone()
    };
    let order = order_by(q);
    // A page's rows and 100 either side; a compared period's rows are all of its answer.
    let around_page = match among_page {
        Some(_) => format!("{ordered} ORDER BY {order} LIMIT {}, {limit}", q.offset),
        None => {
            let first = q.offset.saturating_sub(PAGE_MARGIN);
            format!("{ordered} ORDER BY {order} LIMIT {first}, {}", q.offset - first + q.limit + PAGE_MARGIN)
        }
    };
    Statements {
        rows: format!("{ordered} ORDER BY {order} LIMIT {}, {limit}{format}", q.offset),
        total_rows: q.total_rows.then(|| format!("SELECT count() AS total_rows FROM ({body}){format}")),
        total_visitors: q.metrics.contains(&Metric::Percentage).then(|| format!("{}{format}", grouped(&[], q.filter.as_ref()))),
        // Each row's denominator, for the page's rows only.
        conversion_base: q.metrics.contains(&Metric::ConversionRate).then(|| {
            let base = conversion_base(q, grouped);
            format!("{}{format}", if keep_to_page { among(base, &kept, &around_page) } else { base })
        }),
        around_page,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::request::parse;

    fn scope() -> Scope<'static> {
        Scope {
            database: "millimetric",
            table: "events",
            project_id: "p'1",
            from: 100,
            to: 200,
            timezone: "Asia/Kolkata",
            include_bots: false,
        }
    }

    #[test]
    fn values_are_escaped_and_names_come_from_the_whitelist() {
        let q = parse(
            br#"{"metrics":["visitors","percentage","conversion_rate"],"date_range":"7d","dimensions":["event:props:pl'an","visit:source"],
            "filters":[["is","event:name",["sign'up"]],["contains","event:page",["x\\' OR 1=1 --"]]],"include":{"total_rows":true}}"#,
        )
        .unwrap();
        let st = statements(&q, &scope(), None);
        for sql in [&st.rows, st.total_rows.as_ref().unwrap(), st.total_visitors.as_ref().unwrap(), st.conversion_base.as_ref().unwrap()] {
            assert!(sql.contains("project_id = 'p\\'1'"), "{sql}");
            assert!(!sql.contains("'p'1'") && !sql.contains("sign'up") && !sql.contains("pl'an"), "an unescaped value: {sql}");
            assert!(sql.contains("is_bot = 0"));
            assert!(sql.ends_with("FORMAT JSONEachRow"));
        }
        assert!(st.rows.contains("'x\\\\\\' OR 1=1 --'"), "{}", st.rows);
        assert!(st.rows.contains("arrayElement(ev.7, indexOf(ev.6, 'pl\\'an'))"), "{}", st.rows);
        // A property's rows divide by the visitors of their source (the property is the event's).
        let (base, page) = st.conversion_base.as_ref().unwrap().split_once(") WHERE d1 IN (SELECT d1 FROM (").unwrap();
        assert!(!base.contains("sign\\'up"), "the base drops the event:name filter");
        assert!(page.starts_with(&st.around_page), "the base answers for the page's rows only: {page}");
        assert!(st.rows.contains("LIMIT 0, 100 FORMAT") && st.around_page.ends_with("LIMIT 0, 200"), "{}", st.around_page);
        assert!(st.rows.contains("LIMIT 0, 100"));
    }

    /// A conversion rate by an event's own name or property divides by every visitor of the
    /// row's other dimensions (Plausible's rule), not by the row's own converters, which made
    /// every row 100%.
    #[test]
    fn a_conversion_rate_by_event_name_divides_by_every_visitor() {
        let q = parse(br#"{"metrics":["visitors","conversion_rate"],"date_range":"7d","dimensions":["event:name","visit:source"],"filters":[["is","event:name",["signup","purchase"]]]}"#).unwrap();
        let base = statements(&q, &scope(), None).conversion_base.unwrap();
        let components = COMPONENTS.join(", ");
        let renamed = format!("SELECT * FROM (SELECT '' AS d0, b1 AS d1, {components} FROM (SELECT d0 AS b1, {components} FROM (");
        assert!(base.starts_with(&renamed), "{base}");
        assert!(base.contains(") WHERE d1 IN (SELECT d1 FROM ("), "kept to the page by the dimensions it keeps: {base}");
        // Ordered by the rate: joined on the dimensions the base keeps; with none, one base.
        let q = parse(br#"{"metrics":["visitors","conversion_rate"],"date_range":"7d","dimensions":["event:name","visit:source"],"filters":[["is","event:name",["signup","purchase"]]],"order_by":[["conversion_rate","desc"]]}"#).unwrap();
        assert!(statements(&q, &scope(), None).rows.contains("AS base USING (d1)"));
        let q = parse(br#"{"metrics":["conversion_rate"],"date_range":"7d","dimensions":["event:name"],"filters":[["is","event:name",["signup","purchase"]]],"order_by":[["conversion_rate","desc"]]}"#).unwrap();
        let rows = statements(&q, &scope(), None).rows;
        assert!(rows.contains(") AS rows CROSS JOIN (SELECT visitors AS base_visitors FROM ("), "{rows}");
    }

    #[test]
    fn revenue_is_read_from_each_event_and_grouped_by_currency() {
        let q = parse(br#"{"metrics":["total_revenue","average_revenue"],"date_range":"7d","dimensions":["event:revenue_currency"],"goal":{"event":"purchase"},"order_by":[["total_revenue","desc"]]}"#).unwrap();
        let st = statements(&q, &scope(), None);
        assert!(st.rows.contains("prop_values, revenue_amount, revenue_currency)) AS vevs"), "{}", st.rows);
        assert!(
            st.rows.contains("ev.9 AS d0")
                && st.rows.contains("sumIf(ev.8, ev.9 != '') AS mrev")
                && st.rows.contains("toString(sum(mrev)) AS revenue"),
            "{}",
            st.rows
        );
        assert!(st.rows.contains("ORDER BY revenue_sum DESC"), "{}", st.rows);
    }

    #[test]
    fn conversion_rate_orders_by_each_row_s_own_denominator() {
        let q = parse(br#"{"metrics":["visitors","conversion_rate"],"date_range":"7d","dimensions":["visit:source"],"goal":{"page":"/thanks"},"filters":[["is","visit:country",["DE"]]],"order_by":[["conversion_rate","desc"]]}"#).unwrap();
        let st = statements(&q, &scope(), None);
        assert!(
            st.rows.contains("ANY LEFT JOIN (SELECT d0, visitors AS base_visitors FROM (")
                && st.rows.contains("USING (d0) ORDER BY if(base_visitors > 0, visitors / base_visitors, 0) DESC"),
            "{}",
            st.rows
        );
        let base = st.conversion_base.unwrap();
        let (base, _) = base.split_once(") WHERE d0 IN (SELECT d0 FROM (").unwrap();
        assert!(base.contains("(v_country IN ('DE'))") && !base.contains("thanks"), "the base is the filters without the goal: {base}");
        assert!(st.rows.contains("match(ev.5, '^\\\\/thanks$')") && st.rows.contains("(ev.2 IN ('pageview'))"), "{}", st.rows);
    }

    #[test]
    fn visit_level_queries_skip_the_event_expansion() {
        let q = parse(br#"{"metrics":["visitors","bounce_rate"],"date_range":"7d","dimensions":["visit:country"],"filters":[["is","visit:device",["mobile"]]]}"#).unwrap();
        assert!(!statements(&q, &scope(), None).rows.contains("revenue"), "revenue is read only when asked for");
        let st = statements(&q, &scope(), None);
        assert!(!st.rows.contains("ARRAY JOIN vevs"), "{}", st.rows);
        assert!(st.rows.contains("ORDER BY visitors DESC, d0 ASC"));
        let q = parse(br#"{"metrics":["pageviews"],"date_range":"7d","dimensions":["time:day"],"include":{"bots":true}}"#).unwrap();
        let st = statements(&q, &Scope { include_bots: q.include_bots, ..scope() }, None);
        assert!(st.rows.contains("ARRAY JOIN vevs") && st.rows.contains("toDate(toDateTime(ev.1), 'Asia/Kolkata')"));
        assert!(st.rows.contains("ORDER BY d0 ASC, d0 ASC"));
        assert!(!st.rows.contains("is_bot = 0"), "bots are counted when asked");
    }
}
