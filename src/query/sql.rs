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
use crate::sql::string;

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

fn has_event_level(dims: &[Dimension], filter: Option<&Filter>) -> bool {
    dims.iter().any(Dimension::is_event_level) || filter.is_some_and(|f| f.dimensions().iter().any(|d| d.is_event_level()))
}

/// The expression for a dimension at the visit level (`ev`: the event tuple, when expanded).
fn column(d: &Dimension, tz: &str) -> String {
    let t = "toDateTime(ev.1)";
    match d {
        Dimension::Page => "ev.5".into(),
        Dimension::Name => "ev.3".into(),
        Dimension::Hostname => "ev.4".into(),
        // arrayElement: 18.16 cannot parse a subscript after a tuple element (`ev.7[i]`).
        Dimension::Prop(k) => format!("arrayElement(ev.7, indexOf(ev.6, {}))", string(k)),
        Dimension::Time(Granularity::Hour) => format!("toString(toStartOfHour({t}, {tz}), {tz})", tz = string(tz)),
        Dimension::Time(Granularity::Day) => format!("toString(toDate({t}, {}))", string(tz)),
        Dimension::Time(Granularity::Week) => format!("toString(toMonday({t}, {}))", string(tz)),
        Dimension::Time(Granularity::Month) => format!("toString(toStartOfMonth({t}, {}))", string(tz)),
        Dimension::EntryPage => "entry_page".into(),
        Dimension::ExitPage => "exit_page".into(),
        Dimension::Source => "v_source".into(),
        Dimension::Medium => "v_medium".into(),
        Dimension::Referrer => "v_referrer".into(),
        Dimension::UtmSource => "v_utm_source".into(),
        Dimension::UtmMedium => "v_utm_medium".into(),
        Dimension::UtmCampaign => "v_utm_campaign".into(),
        Dimension::UtmTerm => "v_utm_term".into(),
        Dimension::UtmContent => "v_utm_content".into(),
        Dimension::ClickIdType => "v_click_id_type".into(),
        Dimension::Country => "v_country".into(),
        Dimension::Region => "v_region".into(),
        Dimension::City => "v_city".into(),
        Dimension::Browser => "v_browser".into(),
        Dimension::Os => "v_os".into(),
        Dimension::Device => "v_device".into(),
    }
}

fn condition(f: &Filter, tz: &str) -> String {
    match f {
        Filter::And(fs) => format!("({})", fs.iter().map(|f| condition(f, tz)).collect::<Vec<_>>().join(" AND ")),
        Filter::Or(fs) => format!("({})", fs.iter().map(|f| condition(f, tz)).collect::<Vec<_>>().join(" OR ")),
        Filter::Not(f) => format!("(NOT {})", condition(f, tz)),
        Filter::Cond { op, dimension, values } => {
            let col = column(dimension, tz);
            // "(none)" is how an empty value is shown: `is`/`is_not` on it find the empty ones.
            let none_is_empty = matches!(op, Op::Is | Op::IsNot);
            let values: Vec<String> = values.iter().map(|v| if none_is_empty && v == "(none)" { String::new() } else { v.clone() }).collect();
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
const VISIT_ATTRS: &[(&str, &str)] = &[
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

/// One row per visit in scope: its attributes, counts, duration and (as `vevs`) its events.
fn visits(s: &Scope) -> String {
    // Tuple fields: 1 t, 2 event_id, 3 event_type, 4 event_name, 5 url_host, 6 url_path,
    // 7 prop_keys, 8 prop_values, then VISIT_ATTRS in order (9..).
    let attrs: Vec<&str> = VISIT_ATTRS.iter().map(|(c, _)| *c).collect();
    let bots = if s.include_bots { "" } else { " AND is_bot = 0" };
    let events = format!(
        "SELECT if(anonymous_id = '', concat('~', event_id), anonymous_id) AS visitor, toUInt32(timestamp) AS t, event_id, event_type, event_name, url_host, url_path, prop_keys, prop_values, {attrs} \
         FROM {db}.{table} FINAL WHERE project_id = {project} AND timestamp >= toDateTime({from}) AND timestamp < toDateTime({to}){bots}",
        attrs = attrs.join(", "),
        db = s.database,
        table = s.table,
        project = string(s.project_id),
        from = s.from,
        to = s.to,
    );
    let per_visitor = format!(
        "SELECT visitor, arraySort(x -> (x.1, x.2), groupArray((t, event_id, event_type, event_name, url_host, url_path, prop_keys, prop_values, {attrs}))) AS evs, \
         arrayCumSum(arrayMap(d -> toUInt32(d >= {gap}), arrayDifference(arrayMap(x -> x.1, evs)))) AS vis FROM ({events}) GROUP BY visitor",
        attrs = attrs.join(", "),
        gap = VISIT_GAP_SECONDS,
    );
    let mut fields: Vec<String> = ["t", "event_id", "event_type", "event_name", "url_host", "url_path", "prop_keys", "prop_values"].iter().enumerate().map(|(i, n)| format!("e.{} AS {n}", i + 1)).collect();
    fields.extend(attrs.iter().enumerate().map(|(i, n)| format!("e.{} AS {n}", i + 9)));
    let with_visit = format!("SELECT visitor, vi, {} FROM ({per_visitor}) ARRAY JOIN evs AS e, vis AS vi", fields.join(", "));
    let first = VISIT_ATTRS.iter().map(|(c, v)| format!("argMin({c}, (t, event_id)) AS {v}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT visitor, vi, max(t) - min(t) AS duration, countIf(event_type = 'pageview') AS vpv, countIf(event_type != 'pageview') AS vce, \
         argMin(url_path, (t, event_id)) AS entry_page, argMax(url_path, (t, event_id)) AS exit_page, {first}, \
         groupArray((t, event_type, event_name, url_host, url_path, prop_keys, prop_values)) AS vevs FROM ({with_visit}) GROUP BY visitor, vi"
    )
}

/// The grouped statement: `d0..dN` and COMPONENTS per group, not yet ordered or paged.
pub fn grouped(s: &Scope, dims: &[Dimension], filter: Option<&Filter>) -> String {
    let dim_cols: Vec<String> = dims.iter().enumerate().map(|(i, d)| format!("{} AS d{i}", column(d, s.timezone))).collect();
    let dim_names: Vec<String> = (0..dims.len()).map(|i| format!("d{i}")).collect();
    let where_ = filter.map(|f| format!(" WHERE {}", condition(f, s.timezone))).unwrap_or_default();
    let per_group = if has_event_level(dims, filter) {
        // A visit's event tuple: 1 t, 2 event_type, 3 event_name, 4 url_host, 5 url_path, 6 prop_keys, 7 prop_values.
        let keys = dim_names.iter().map(String::as_str).chain(["visitor", "vi"]).collect::<Vec<_>>().join(", ");
        let select_dims = if dim_cols.is_empty() { String::new() } else { format!("{}, ", dim_cols.join(", ")) };
        format!(
            "SELECT {select_dims}visitor, vi, countIf(ev.2 = 'pageview') AS mpv, count() AS mev, any(toUInt8(vpv = 1 AND vce = 0)) AS bounce, any(duration) AS vduration \
             FROM ({visits}) ARRAY JOIN vevs AS ev{where_} GROUP BY {keys}",
            visits = visits(s),
        )
    } else {
        let select_dims = if dim_cols.is_empty() { String::new() } else { format!("{}, ", dim_cols.join(", ")) };
        format!(
            "SELECT {select_dims}visitor, vi, vpv AS mpv, vpv + vce AS mev, toUInt8(vpv = 1 AND vce = 0) AS bounce, duration AS vduration FROM ({visits}){where_}",
            visits = visits(s),
        )
    };
    let group_by = if dim_names.is_empty() { String::new() } else { format!(" GROUP BY {}", dim_names.join(", ")) };
    let select_dims = if dim_names.is_empty() { String::new() } else { format!("{}, ", dim_names.join(", ")) };
    format!(
        "SELECT {select_dims}uniqExact(visitor) AS visitors, count() AS visits, sum(mpv) AS pageviews, sum(mev) AS events, sum(bounce) AS bounces, sum(vduration) AS duration \
         FROM ({per_group}){group_by}"
    )
}

/// The SQL expression a metric orders by (over COMPONENTS). Conversion rates and
/// percentages order as their visitors do (their denominators are fixed per row or query).
fn order_expr(m: Metric) -> &'static str {
    match m {
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
                OrderKey::Metric(m) => order_expr(*m).to_string(),
                OrderKey::Dimension(i) => format!("d{i}"),
            };
            format!("{e} {}", if *desc { "DESC" } else { "ASC" })
        })
        .collect();
    if q.order_by.is_empty() {
        match q.dimensions.iter().position(|d| matches!(d, Dimension::Time(_))) {
            Some(i) => keys.push(format!("d{i} ASC")),
            None => keys.push(format!("{} DESC", order_expr(q.metrics[0]))),
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
    /// How many rows there are in all (when `include.total_rows`).
    pub total_rows: Option<String>,
    /// Total visitors with no dimensions (for `percentage`).
    pub total_visitors: Option<String>,
    /// Visitors per row without the `event:name` filters (for `conversion_rate`).
    pub conversion_base: Option<String>,
}

pub fn statements(q: &Query, s: &Scope) -> Statements {
    let body = grouped(s, &q.dimensions, q.filter.as_ref());
    let format = " FORMAT JSONEachRow";
    Statements {
        rows: format!("{body} ORDER BY {} LIMIT {}, {}{format}", order_by(q), q.offset, q.limit),
        total_rows: q.total_rows.then(|| format!("SELECT count() AS total_rows FROM ({body}){format}")),
        total_visitors: q.metrics.contains(&Metric::Percentage).then(|| format!("{}{format}", grouped(s, &[], q.filter.as_ref()))),
        conversion_base: q.metrics.contains(&Metric::ConversionRate).then(|| {
            let base = q.filter.as_ref().and_then(Filter::without_event_names);
            format!("{}{format}", grouped(s, &q.dimensions, base.as_ref()))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::request::parse;

    fn scope() -> Scope<'static> {
        Scope { database: "millimetric", table: "events", project_id: "p'1", from: 100, to: 200, timezone: "Asia/Kolkata", include_bots: false }
    }

    #[test]
    fn values_are_escaped_and_names_come_from_the_whitelist() {
        let q = parse(br#"{"metrics":["visitors","percentage","conversion_rate"],"date_range":"7d","dimensions":["event:props:pl'an","visit:source"],
            "filters":[["is","event:name",["sign'up"]],["contains","event:page",["x\\' OR 1=1 --"]]],"include":{"total_rows":true}}"#).unwrap();
        let st = statements(&q, &scope());
        for sql in [&st.rows, st.total_rows.as_ref().unwrap(), st.total_visitors.as_ref().unwrap(), st.conversion_base.as_ref().unwrap()] {
            assert!(sql.contains("project_id = 'p\\'1'"), "{sql}");
            assert!(!sql.contains("'p'1'") && !sql.contains("sign'up") && !sql.contains("pl'an"), "an unescaped value: {sql}");
            assert!(sql.contains("is_bot = 0"));
            assert!(sql.ends_with("FORMAT JSONEachRow"));
        }
        assert!(st.rows.contains("'x\\\\\\' OR 1=1 --'"), "{}", st.rows);
        assert!(st.rows.contains("arrayElement(ev.7, indexOf(ev.6, 'pl\\'an'))"), "{}", st.rows);
        assert!(!st.conversion_base.as_ref().unwrap().contains("sign\\'up"), "the base drops the event:name filter");
        assert!(st.rows.contains("LIMIT 0, 100"));
    }

    #[test]
    fn visit_level_queries_skip_the_event_expansion() {
        let q = parse(br#"{"metrics":["visitors","bounce_rate"],"date_range":"7d","dimensions":["visit:country"],"filters":[["is","visit:device",["mobile"]]]}"#).unwrap();
        let st = statements(&q, &scope());
        assert!(!st.rows.contains("ARRAY JOIN vevs"), "{}", st.rows);
        assert!(st.rows.contains("ORDER BY visitors DESC, d0 ASC"));
        let q = parse(br#"{"metrics":["pageviews"],"date_range":"7d","dimensions":["time:day"],"include":{"bots":true}}"#).unwrap();
        let st = statements(&q, &Scope { include_bots: q.include_bots, ..scope() });
        assert!(st.rows.contains("ARRAY JOIN vevs") && st.rows.contains("toDate(toDateTime(ev.1), 'Asia/Kolkata')"));
        assert!(st.rows.contains("ORDER BY d0 ASC, d0 ASC"));
        assert!(!st.rows.contains("is_bot"));
    }
}
