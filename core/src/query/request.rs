//! `POST /v1/query`: the body as a client writes it (Plausible's Stats API v2 shape), checked
//! field by field into a `Query` the planner can trust. Every name that reaches SQL comes from
//! the closed enums here; every value is kept as text for `sql::string`.

use super::goal::Goal;
use crate::error::ApiError;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Events,
    Percentage,
    ConversionRate,
    TotalRevenue,
    AverageRevenue,
}

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::ViewsPerVisit,
        Metric::BounceRate,
        Metric::VisitDuration,
        Metric::Events,
        Metric::Percentage,
        Metric::ConversionRate,
        Metric::TotalRevenue,
        Metric::AverageRevenue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Visitors => "visitors",
            Metric::Visits => "visits",
            Metric::Pageviews => "pageviews",
            Metric::ViewsPerVisit => "views_per_visit",
            Metric::BounceRate => "bounce_rate",
            Metric::VisitDuration => "visit_duration",
            Metric::Events => "events",
            Metric::Percentage => "percentage",
            Metric::ConversionRate => "conversion_rate",
            Metric::TotalRevenue => "total_revenue",
            Metric::AverageRevenue => "average_revenue",
        }
    }

    /// Revenue metrics: read from raw events only, one currency a row.
    pub fn is_revenue(self) -> bool {
        matches!(self, Metric::TotalRevenue | Metric::AverageRevenue)
    }

    fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Percent-valued metrics: a comparison's change is the difference in points.
    pub fn is_percent(self) -> bool {
        matches!(self, Metric::BounceRate | Metric::Percentage | Metric::ConversionRate)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Granularity {
    Hour,
    Day,
    Week,
    Month,
}

/// What a row can be broken down by, or filtered on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    // Event-level: each event's own value.
    Page,
    Name,
    Hostname,
    Prop(String),
    RevenueCurrency,
    /// `pageview` or `custom`: not a dimension a client names; a page goal's filter uses it.
    EventType,
    // Visit-level: the visit's first event's value (exit page: its last).
    EntryPage,
    ExitPage,
    Source,
    Medium,
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    ClickIdType,
    Country,
    Region,
    City,
    Browser,
    Os,
    Device,
    Time(Granularity),
}

/// The dimensions by name, except `event:props:<key>` (any key) and the time ones.
const NAMED: &[(&str, Dimension)] = &[
    ("event:page", Dimension::Page),
    ("event:name", Dimension::Name),
    ("event:hostname", Dimension::Hostname),
    ("event:revenue_currency", Dimension::RevenueCurrency),
    ("visit:entry_page", Dimension::EntryPage),
    ("visit:exit_page", Dimension::ExitPage),
    ("visit:source", Dimension::Source),
    ("visit:medium", Dimension::Medium),
    ("visit:referrer", Dimension::Referrer),
    ("visit:utm_source", Dimension::UtmSource),
    ("visit:utm_medium", Dimension::UtmMedium),
    ("visit:utm_campaign", Dimension::UtmCampaign),
    ("visit:utm_term", Dimension::UtmTerm),
    ("visit:utm_content", Dimension::UtmContent),
    ("visit:click_id_type", Dimension::ClickIdType),
    ("visit:country", Dimension::Country),
    ("visit:region", Dimension::Region),
    ("visit:city", Dimension::City),
    ("visit:browser", Dimension::Browser),
    ("visit:os", Dimension::Os),
    ("visit:device", Dimension::Device),
    ("time:hour", Dimension::Time(Granularity::Hour)),
    ("time:day", Dimension::Time(Granularity::Day)),
    ("time:week", Dimension::Time(Granularity::Week)),
    ("time:month", Dimension::Time(Granularity::Month)),
];

/// Every dimension name a query may use (`event:props:<key>` stands for any key).
pub fn dimension_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
    v.insert(3, "event:props:<key>");
    v
}

impl Dimension {
    pub fn parse(s: &str) -> Option<Dimension> {
        if let Some(key) = s.strip_prefix("event:props:") {
            let ok = !key.is_empty() && key.len() <= 64 && !key.chars().any(char::is_control);
            return ok.then(|| Dimension::Prop(key.to_string()));
        }
        NAMED.iter().find(|(n, _)| *n == s).map(|(_, d)| d.clone())
    }

    pub fn name(&self) -> String {
        match self {
            Dimension::Prop(k) => format!("event:props:{k}"),
            d => NAMED.iter().find(|(_, x)| x == d).map(|(n, _)| n.to_string()).unwrap_or_default(),
        }
    }

    /// Event-level dimensions need each event's value; visit-level ones only the visit's.
    pub fn is_event_level(&self) -> bool {
        matches!(
            self,
            Dimension::Page
                | Dimension::Name
                | Dimension::Hostname
                | Dimension::Prop(_)
                | Dimension::RevenueCurrency
                | Dimension::EventType
                | Dimension::Time(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    ContainsNot,
    Matches,
    MatchesNot,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "is" => Op::Is,
            "is_not" => Op::IsNot,
            "contains" => Op::Contains,
            "contains_not" => Op::ContainsNot,
            "matches" => Op::Matches,
            "matches_not" => Op::MatchesNot,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Is => "is",
            Op::IsNot => "is_not",
            Op::Contains => "contains",
            Op::ContainsNot => "contains_not",
            Op::Matches => "matches",
            Op::MatchesNot => "matches_not",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Cond { op: Op, dimension: Dimension, values: Vec<String> },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    pub fn dimensions(&self) -> Vec<&Dimension> {
        match self {
            Filter::Cond { dimension, .. } => vec![dimension],
            Filter::And(fs) | Filter::Or(fs) => fs.iter().flat_map(Filter::dimensions).collect(),
            Filter::Not(f) => f.dimensions(),
        }
    }

    /// Whether this filter keeps only events that carry the event:props keys it names, as
    /// the props aggregate holds them: each such condition a positive `is` or `contains` of
    /// real values (not "(none)" or empty), never under `not`, and under `or` only beside
    /// other such conditions. Otherwise events without the key can match, and only raw
    /// events hold those.
    pub fn needs_only_events_with_props(&self) -> bool {
        let names_props = |f: &Filter| f.dimensions().iter().any(|d| matches!(d, Dimension::Prop(_)));
        match self {
            Filter::Cond { op, dimension: Dimension::Prop(_), values } => {
                matches!(op, Op::Is | Op::Contains) && values.iter().all(|v| !v.is_empty() && v != "(none)")
            }
            Filter::Cond { .. } => true,
            Filter::And(fs) => fs.iter().all(Filter::needs_only_events_with_props),
            Filter::Or(fs) => {
                !fs.iter().any(names_props)
                    || fs
                        .iter()
                        .all(|f| matches!(f, Filter::Cond { dimension: Dimension::Prop(_), .. }) && f.needs_only_events_with_props())
            }
            Filter::Not(f) => !names_props(f),
        }
    }

    /// This filter without its `is event:name` conditions (a conversion rate's denominator).
    /// None when nothing is left.
    pub fn without_event_names(&self) -> Option<Filter> {
        match self {
            Filter::Cond { op: Op::Is, dimension: Dimension::Name, .. } => None,
            Filter::Cond { .. } => Some(self.clone()),
            Filter::And(fs) => {
                let rest: Vec<Filter> = fs.iter().filter_map(Filter::without_event_names).collect();
                (!rest.is_empty()).then_some(Filter::And(rest))
            }
            // Inside or/not an event:name condition changes the set it belongs to: kept.
            Filter::Or(_) | Filter::Not(_) => Some(self.clone()),
        }
    }

    /// A query's filters as the echo lists them: several are `and`'s list, one is one, none `[]`.
    pub fn list_json(filter: Option<&Filter>) -> Value {
        filter
            .map(|f| match f.to_json() {
                Value::Array(a) if a.first() == Some(&serde_json::json!("and")) => a[1].clone(),
                one => serde_json::json!([one]),
            })
            .unwrap_or(serde_json::json!([]))
    }

    /// Back to the wire form, for the echoed query.
    pub fn to_json(&self) -> Value {
        match self {
            Filter::Cond { op, dimension, values } => serde_json::json!([op.name(), dimension.name(), values]),
            Filter::And(fs) => serde_json::json!(["and", fs.iter().map(Filter::to_json).collect::<Vec<_>>()]),
            Filter::Or(fs) => serde_json::json!(["or", fs.iter().map(Filter::to_json).collect::<Vec<_>>()]),
            Filter::Not(f) => serde_json::json!(["not", f.to_json()]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    PreviousPeriod,
    YearOverYear,
}

impl Compare {
    pub fn name(self) -> &'static str {
        match self {
            Compare::PreviousPeriod => "previous_period",
            Compare::YearOverYear => "year_over_year",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrderKey {
    Metric(Metric),
    Dimension(usize),
}

/// A checked query. The date range is still as the client named it: `dates` resolves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub metrics: Vec<Metric>,
    pub dimensions: Vec<Dimension>,
    pub filter: Option<Filter>,
    pub date_range: Value,
    pub timezone: Option<String>,
    pub order_by: Vec<(OrderKey, bool)>,
    pub limit: u64,
    pub offset: u64,
    pub compare: Option<Compare>,
    pub include_bots: bool,
    pub total_rows: bool,
    /// `include.time_labels`: every bucket of the time dimension in `meta.time_labels`.
    pub time_labels: bool,
    /// `include.imports`: taken as Plausible's clients send it; there is no imported data.
    pub imports: bool,
    pub source: SourceChoice,
    /// The conversion `conversion_rate` measures, given inline; `filter` then includes it.
    pub goal: Option<Goal>,
    /// The filters as sent, without the goal's.
    pub filter_without_goal: Option<Filter>,
}

/// The granularity of the time dimension among `dims`, if there is one (at most one is taken).
fn time_granularity(dims: &[Dimension]) -> Option<Granularity> {
    dims.iter().find_map(|d| match d {
        Dimension::Time(g) => Some(*g),
        _ => None,
    })
}

impl Query {
    /// The granularity of its time dimension, if it has one.
    pub fn granularity(&self) -> Option<Granularity> {
        time_granularity(&self.dimensions)
    }

    /// Whether the query reads events' revenue: a revenue metric, or the currency as a
    /// dimension or in a filter.
    pub fn wants_revenue(&self) -> bool {
        self.metrics.iter().any(|m| m.is_revenue())
            || self.dimensions.contains(&Dimension::RevenueCurrency)
            || self.filter.as_ref().is_some_and(|f| f.dimensions().contains(&&Dimension::RevenueCurrency))
    }

    /// The dimensions (indices) a row's `conversion_rate` denominator is grouped by: all but the
    /// event's own name, properties and revenue currency, as Plausible divides (a row of
    /// `event:name` `signup` by every visitor, not by those who signed up); a page, a source or
    /// a country keeps its own visitors.
    pub fn base_dimensions(&self) -> Vec<usize> {
        (0..self.dimensions.len())
            .filter(|i| !matches!(self.dimensions[*i], Dimension::Name | Dimension::Prop(_) | Dimension::RevenueCurrency))
            .collect()
    }

    /// What a row's `conversion_rate` divides by: the filters without the goal, or (with no goal)
    /// without their `is event:name` conditions.
    pub fn conversion_base(&self) -> Option<Filter> {
        match self.goal {
            Some(_) => self.filter_without_goal.clone(),
            None => self.filter.as_ref().and_then(Filter::without_event_names),
        }
    }
}

/// Where the answer may come from: `auto` reads aggregates for the days the rollup holds
/// (when one aggregate table holds the query's dimensions and filters) and raw events for the
/// rest. `raw_events` gives exact visitor counts while raw events are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceChoice {
    #[default]
    Auto,
    Aggregates,
    RawEvents,
}

impl SourceChoice {
    pub fn name(self) -> &'static str {
        match self {
            SourceChoice::Auto => "auto",
            SourceChoice::Aggregates => "aggregates",
            SourceChoice::RawEvents => "raw_events",
        }
    }
}

pub const MAX_LIMIT: u64 = 10_000;
pub const DEFAULT_LIMIT: u64 = 100;
const MAX_FILTER_VALUES: usize = 100;
const MAX_FILTER_DEPTH: usize = 8;
const MAX_DIMENSIONS: usize = 4;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    metrics: Option<Vec<Value>>,
    date_range: Option<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    dimensions: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    filters: Vec<Value>,
    timezone: Option<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    order_by: Vec<Value>,
    pagination: Option<Value>,
    compare: Option<Value>,
    include: Option<Value>,
    source: Option<Value>,
    goal: Option<Value>,
}

pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// The body of `POST /v1/query`, checked. The project is the key's: a body that names one
/// (`site_id`, `project_id`) is refused rather than ignored.
pub fn parse(body: &[u8]) -> Result<Query, ApiError> {
    let w = wire(body)?;
    let metrics = metrics(w.metrics)?;
    let dimensions = dimensions(&w.dimensions)?;
    let filter_without_goal = filters(&w.filters)?;
    let goal = w.goal.as_ref().filter(|g| !g.is_null()).map(|g| Goal::parse(g, "`goal`")).transpose()?;
    let filter = match (&filter_without_goal, &goal) {
        (f, None) => f.clone(),
        (None, Some(g)) => Some(g.to_filter()),
        (Some(f), Some(g)) => Some(Filter::And(vec![f.clone(), g.to_filter()])),
    };
    metrics_have_what_they_need(&metrics, &dimensions, filter.as_ref(), goal.is_some())?;
    let timezone = timezone(w.timezone)?;
    let order_by = order_by(&w.order_by, &metrics, &dimensions)?;
    let (limit, offset) = pagination(w.pagination)?;
    let compare = compare(w.compare)?;
    let Include { bots: include_bots, total_rows, time_labels, imports } = include(w.include)?;
    if time_labels && time_granularity(&dimensions).is_none() {
        return Err(bad(
            "invalid_include",
            "`include.time_labels` needs a time dimension: add time:hour, time:day, time:week or time:month.",
        ));
    }
    let source = source(w.source)?;
    let date_range = w.date_range.ok_or_else(|| {
        bad("missing_date_range", "`date_range` is required: \"day\", \"7d\", \"30d\", \"month\", ... or [\"2026-11-01\", \"2026-11-07\"].")
    })?;
    Ok(Query {
        metrics,
        dimensions,
        filter,
        date_range,
        timezone,
        order_by,
        limit,
        offset,
        compare,
        include_bots,
        total_rows,
        time_labels,
        imports,
        source,
        goal,
        filter_without_goal,
    })
}

/// A list given as `null` is a list left out (empty), as every field given as null is.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default())
}

/// A body's fields less those given as `null`: what every query takes as left out, so they
/// take their defaults (here, in the conversion queries and over MCP).
pub fn without_nulls(obj: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    obj.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The body as JSON fields: an object, no project named, no field the query does not take.
fn wire(body: &[u8]) -> Result<Wire, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        bad(
            "invalid_json",
            format!("The body is not valid JSON ({e}). Send a query object, e.g. {{\"metrics\":[\"visitors\"],\"date_range\":\"7d\"}}."),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(bad("invalid_body", "The body must be a JSON object, e.g. {\"metrics\":[\"visitors\"],\"date_range\":\"7d\"}."));
    };
    for named in ["site_id", "project_id", "project"] {
        if obj.contains_key(named) {
            return Err(bad("project_from_key", format!("`{named}` is not taken: a query answers for its key's project only. Remove it.")));
        }
    }
    // A list given as anything but a list (or null, a list left out) is named.
    const LISTS: [(&str, &str); 4] = [
        ("metrics", r#"["visitors"]"#),
        ("dimensions", r#"["visit:source"]"#),
        ("filters", r#"[["is", "visit:country", ["DE"]]]"#),
        ("order_by", r#"[["visitors", "desc"]]"#),
    ];
    for (list, example) in LISTS {
        if let Some(v) = obj.get(list).filter(|v| !v.is_array() && !v.is_null()) {
            return Err(bad("invalid_field", format!("`{list}` must be a list, e.g. \"{list}\": {example}; it is `{}`.", short(v))));
        }
    }
    serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        let field = msg.split('`').nth(1).unwrap_or("").to_string();
        if msg.starts_with("unknown field") {
            bad("unknown_field", format!("`{field}` is not a query field. Use metrics, date_range, dimensions, filters, goal, timezone, order_by, pagination, compare, include, source."))
        } else {
            bad("invalid_field", format!("A field has the wrong type ({msg})."))
        }
    })
}

/// `metrics`: required, known, each once.
fn metrics(metrics: Option<Vec<Value>>) -> Result<Vec<Metric>, ApiError> {
    let metrics = metrics.ok_or_else(|| bad("missing_metrics", "`metrics` is required: a list such as [\"visitors\", \"pageviews\"]."))?;
    if metrics.is_empty() {
        return Err(bad("missing_metrics", "`metrics` is empty: name at least one, e.g. [\"visitors\"]."));
    }
    let mut ms = Vec::new();
    for m in &metrics {
        let name = m.as_str().unwrap_or("");
        let metric = Metric::parse(name).ok_or_else(|| {
            bad("invalid_metric", format!("`metrics` has `{}`; use {}.", short(m), Metric::ALL.map(|m| m.name()).join(", ")))
        })?;
        if ms.contains(&metric) {
            return Err(bad("invalid_metric", format!("`metrics` names `{name}` twice.")));
        }
        ms.push(metric);
    }
    Ok(ms)
}

/// `dimensions`: at most MAX_DIMENSIONS, known, each once, one time dimension at the most.
fn dimensions(dimensions: &[Value]) -> Result<Vec<Dimension>, ApiError> {
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(bad("invalid_dimension", format!("`dimensions` has {}; at most {MAX_DIMENSIONS} are taken.", dimensions.len())));
    }
    let mut dims = Vec::new();
    for d in dimensions {
        let dim = d.as_str().and_then(Dimension::parse).ok_or_else(|| {
            bad("invalid_dimension", format!("`dimensions` has `{}`; use one of {}.", short(d), dimension_names().join(", ")))
        })?;
        if dims.contains(&dim) {
            return Err(bad("invalid_dimension", format!("`dimensions` names `{}` twice.", dim.name())));
        }
        if matches!(dim, Dimension::Time(_)) && dims.iter().any(|x| matches!(x, Dimension::Time(_))) {
            return Err(bad("invalid_dimension", "`dimensions` may hold one time dimension."));
        }
        dims.push(dim);
    }
    Ok(dims)
}

/// `filters`: each checked; several are all of them (`and`).
pub(crate) fn filters(filters: &[Value]) -> Result<Option<Filter>, ApiError> {
    Ok(match filters.len() {
        0 => None,
        1 => Some(parse_filter(&filters[0], 0)?),
        _ => Some(Filter::And(filters.iter().map(|f| parse_filter(f, 0)).collect::<Result<_, _>>()?)),
    })
}

/// Metrics that need something else of the query: conversion_rate an event:name filter,
/// percentage a dimension.
fn metrics_have_what_they_need(ms: &[Metric], dimensions: &[Dimension], filter: Option<&Filter>, has_goal: bool) -> Result<(), ApiError> {
    if ms.contains(&Metric::ConversionRate) {
        let names_event = filter.is_some_and(|f| f.without_event_names().as_ref() != Some(f));
        if !names_event && !has_goal {
            return Err(bad(
                "conversion_needs_event",
                "`conversion_rate` needs what it measures: a `goal` such as {\"page\": \"/thanks\"} or {\"event\": \"signup\"}, or a filter [\"is\", \"event:name\", [\"signup\"]].",
            ));
        }
    }
    if ms.contains(&Metric::Percentage) && dimensions.is_empty() {
        return Err(bad(
            "percentage_needs_dimension",
            "`percentage` is each row's share of visitors: add a dimension, e.g. [\"visit:source\"].",
        ));
    }
    Ok(())
}

/// `timezone`: an IANA name's shape (`dates` resolves it).
pub(crate) fn timezone(timezone: Option<Value>) -> Result<Option<String>, ApiError> {
    Ok(match timezone {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Some(s),
        Some(other) => {
            return Err(bad(
                "invalid_timezone",
                format!("`timezone` must be an IANA name such as \"Europe/Berlin\", not {}.", short(&other)),
            ))
        }
    })
}

/// `order_by`: [name, "asc"|"desc"] pairs over the query's own metrics and dimensions.
fn order_by(entries: &[Value], ms: &[Metric], dims: &[Dimension]) -> Result<Vec<(OrderKey, bool)>, ApiError> {
    let mut order_by = Vec::new();
    for o in entries {
        let pair = o.as_array().filter(|a| a.len() == 2);
        let (key, dir) = match pair {
            Some(a) => (a[0].as_str().unwrap_or(""), a[1].as_str().unwrap_or("")),
            None => {
                return Err(bad("invalid_order_by", "Each `order_by` entry is [name, \"asc\"|\"desc\"], e.g. [\"visitors\", \"desc\"]."))
            }
        };
        let desc = match dir {
            "desc" => true,
            "asc" => false,
            _ => return Err(bad("invalid_order_by", format!("`order_by` direction `{dir}` must be \"asc\" or \"desc\"."))),
        };
        let k = if let Some(m) = Metric::parse(key).filter(|m| ms.contains(m)) {
            OrderKey::Metric(m)
        } else if let Some(i) = Dimension::parse(key).and_then(|d| dims.iter().position(|x| *x == d)) {
            OrderKey::Dimension(i)
        } else {
            return Err(bad(
                "invalid_order_by",
                format!("`order_by` names `{key}`, which is not one of the query's metrics or dimensions."),
            ));
        };
        order_by.push((k, desc));
    }
    Ok(order_by)
}

/// A JSON whole number, as JSON Schema's `integer` counts them: `5` and `5.0` alike (a
/// client's JSON library may write either); `5.5`, negatives and text are none.
pub(crate) fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(f)).map(|f| f as u64))
}

/// `pagination`: limit 1 to MAX_LIMIT (DEFAULT_LIMIT), offset up to a million.
pub(crate) fn pagination(pagination: Option<Value>) -> Result<(u64, u64), ApiError> {
    let (mut limit, mut offset) = (DEFAULT_LIMIT, 0);
    if let Some(p) = pagination {
        let p = p.as_object().ok_or_else(|| bad("invalid_pagination", "`pagination` is {\"limit\": N, \"offset\": N}."))?;
        for (k, v) in without_nulls(p) {
            let n = whole_number(&v);
            match (k.as_str(), n) {
                ("limit", Some(n)) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                ("offset", Some(n)) if n <= 1_000_000 => offset = n,
                ("limit", _) => return Err(bad("invalid_pagination", format!("`pagination.limit` must be 1 to {MAX_LIMIT}."))),
                ("offset", _) => return Err(bad("invalid_pagination", "`pagination.offset` must be 0 to 1000000.")),
                (other, _) => return Err(bad("invalid_pagination", format!("`pagination.{other}` is not taken; use limit and offset."))),
            }
        }
    }
    Ok((limit, offset))
}

fn compare(compare: Option<Value>) -> Result<Option<Compare>, ApiError> {
    Ok(match compare {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "previous_period" => Some(Compare::PreviousPeriod),
        Some(Value::String(s)) if s == "year_over_year" => Some(Compare::YearOverYear),
        Some(other) => {
            return Err(bad("invalid_compare", format!("`compare` is `{}`; use \"previous_period\" or \"year_over_year\".", short(&other))))
        }
    })
}

/// What `include` asks for, each true or false.
#[derive(Debug, Default)]
struct Include {
    bots: bool,
    total_rows: bool,
    time_labels: bool,
    imports: bool,
}

/// `include`: `bots`, `total_rows`, and Plausible's `time_labels` and `imports`.
fn include(include: Option<Value>) -> Result<Include, ApiError> {
    let mut asked = Include::default();
    if let Some(inc) = include {
        let inc = inc.as_object().ok_or_else(|| bad("invalid_include", "`include` is {\"total_rows\": true, \"bots\": true}."))?;
        for (k, v) in without_nulls(inc) {
            let b = v.as_bool().ok_or_else(|| bad("invalid_include", format!("`include.{k}` must be true or false.")))?;
            match k.as_str() {
                "bots" => asked.bots = b,
                "total_rows" => asked.total_rows = b,
                "time_labels" => asked.time_labels = b,
                "imports" => asked.imports = b,
                other => {
                    return Err(bad(
                        "invalid_include",
                        format!("`include.{other}` is not taken; use total_rows, bots, time_labels or imports."),
                    ))
                }
            }
        }
    }
    Ok(asked)
}

fn source(source: Option<Value>) -> Result<SourceChoice, ApiError> {
    Ok(match source {
        None | Some(Value::Null) => SourceChoice::Auto,
        Some(Value::String(s)) if s == "auto" => SourceChoice::Auto,
        Some(Value::String(s)) if s == "aggregates" => SourceChoice::Aggregates,
        Some(Value::String(s)) if s == "raw_events" => SourceChoice::RawEvents,
        Some(other) => {
            return Err(bad("invalid_source", format!("`source` is `{}`; use \"auto\", \"aggregates\" or \"raw_events\".", short(&other))))
        }
    })
}

pub(crate) fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.chars().take(60).collect()
}

fn parse_filter(v: &Value, depth: usize) -> Result<Filter, ApiError> {
    let shape = || {
        bad("invalid_filter", "A filter is [op, dimension, [values]] (op: is, is_not, contains, contains_not, matches, matches_not), or [\"and\"|\"or\", [filters]], or [\"not\", filter].")
    };
    if depth > MAX_FILTER_DEPTH {
        return Err(bad("invalid_filter", format!("Filters nest at most {MAX_FILTER_DEPTH} deep.")));
    }
    let a = v.as_array().ok_or_else(shape)?;
    let head = a.first().and_then(Value::as_str).ok_or_else(shape)?;
    match (head, a.len()) {
        ("and" | "or", 2) => {
            let inner = a[1].as_array().filter(|x| !x.is_empty()).ok_or_else(shape)?;
            if inner.len() > 50 {
                return Err(bad("invalid_filter", "An and/or takes at most 50 filters."));
            }
            let fs = inner.iter().map(|f| parse_filter(f, depth + 1)).collect::<Result<Vec<_>, _>>()?;
            Ok(if head == "and" { Filter::And(fs) } else { Filter::Or(fs) })
        }
        ("not", 2) => Ok(Filter::Not(Box::new(parse_filter(&a[1], depth + 1)?))),
        (op, 3) => {
            let op = Op::parse(op).ok_or_else(|| {
                bad(
                    "invalid_filter",
                    format!("Filter operator `{op}` is not one of is, is_not, contains, contains_not, matches, matches_not."),
                )
            })?;
            let name = a[1].as_str().unwrap_or("");
            let dimension = Dimension::parse(name).filter(|d| !matches!(d, Dimension::Time(_))).ok_or_else(|| {
                bad(
                    "invalid_filter",
                    format!("Filters take a dimension such as \"event:page\" or \"visit:country\", not `{}`.", short(&a[1])),
                )
            })?;
            let values = a[2].as_array().filter(|x| !x.is_empty() && x.len() <= MAX_FILTER_VALUES).ok_or_else(|| {
                bad(
                    "invalid_filter",
                    format!("The filter on `{name}` needs a list of 1 to {MAX_FILTER_VALUES} values, e.g. [\"/pricing\"]."),
                )
            })?;
            let values = values
                .iter()
                .map(|x| match x {
                    Value::String(s) if s.len() <= 2000 && !s.contains('\0') => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(bad("invalid_filter", format!("The filter on `{name}` takes strings of at most 2000 bytes."))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Filter::Cond { op, dimension, values })
        }
        _ => Err(shape()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(v: Value) -> Result<Query, ApiError> {
        parse(v.to_string().as_bytes())
    }

    /// Plausible's clients ask for `include.time_labels` (every bucket of the time dimension, to
    /// fill the ones without rows) and `include.imports` (imported data: there is none here).
    /// Both were refused as unknown.
    #[test]
    fn plausibles_include_keys_are_taken() {
        let asked = q(json!({"metrics": ["visitors"], "date_range": "7d", "dimensions": ["time:day"],
            "include": {"time_labels": true, "imports": true}}))
        .unwrap();
        assert!(asked.time_labels && asked.imports);
        let e = q(json!({"metrics": ["visitors"], "date_range": "7d", "include": {"time_labels": true}})).unwrap_err();
        assert_eq!(e.code, "invalid_include");
        assert!(e.message.contains("time dimension"), "{}", e.message);
    }

    /// Review finding: a field given as null is left out at the top level, but one inside
    /// `pagination`, `include` or a `goal` was refused; client libraries write optional fields
    /// as null at any depth.
    #[test]
    fn a_null_inside_an_object_is_left_out_too() {
        let nested = q(json!({"metrics": ["visitors"], "date_range": "7d",
            "pagination": {"limit": null, "offset": null}, "include": {"total_rows": null, "bots": null},
            "goal": {"event": "signup", "page": null, "props": null}}))
        .unwrap();
        let plain = q(json!({"metrics": ["visitors"], "date_range": "7d", "goal": {"event": "signup"}})).unwrap();
        assert_eq!(nested, plain);
    }

    #[test]
    fn whole_numbers_are_integers_as_json_schema_counts_them() {
        for (v, want) in [(json!(5), Some(5)), (json!(5.0), Some(5)), (json!(0), Some(0)), (json!(1e3), Some(1000))] {
            assert_eq!(whole_number(&v), want, "{v}");
        }
        for v in [json!(5.5), json!(-1), json!(-1.0), json!(1e300), json!("5"), json!(null), json!(f64::NAN)] {
            assert_eq!(whole_number(&v), None, "{v}");
        }
        assert_eq!(pagination(Some(json!({"limit": 20.0, "offset": 40.0}))).unwrap(), (20, 40));
        assert_eq!(pagination(Some(json!({"limit": 20.5}))).unwrap_err().code, "invalid_pagination");
    }

    #[test]
    fn a_full_query_parses() {
        let query = q(json!({
            "metrics": ["visitors", "bounce_rate", "conversion_rate"],
            "date_range": "7d",
            "dimensions": ["visit:source", "time:day", "event:props:plan"],
            "filters": [["is", "event:name", ["signup"]], ["or", [["contains", "event:page", ["/blog"]], ["not", ["is", "visit:country", ["US", "CA"]]]]]],
            "timezone": "Europe/Berlin",
            "order_by": [["visitors", "desc"], ["time:day", "asc"]],
            "pagination": {"limit": 50, "offset": 100},
            "compare": "previous_period",
            "include": {"total_rows": true, "bots": false}
        }))
        .unwrap();
        assert_eq!(query.metrics, vec![Metric::Visitors, Metric::BounceRate, Metric::ConversionRate]);
        assert_eq!(query.dimensions[2], Dimension::Prop("plan".into()));
        assert_eq!(query.order_by, vec![(OrderKey::Metric(Metric::Visitors), true), (OrderKey::Dimension(1), false)]);
        assert_eq!((query.limit, query.offset, query.compare, query.total_rows), (50, 100, Some(Compare::PreviousPeriod), true));
        let f = query.filter.unwrap();
        assert_eq!(f.to_json()[0], "and");
        assert!(f.without_event_names().unwrap().to_json().to_string().contains("/blog"));
    }

    #[test]
    fn a_goal_is_what_conversion_rate_measures() {
        let query = q(json!({"metrics": ["visitors", "conversion_rate"], "date_range": "7d", "dimensions": ["visit:source"],
            "filters": [["is", "visit:country", ["DE"]]], "goal": {"event": "purchase", "props": {"plan": "pro"}}, "order_by": [["conversion_rate", "desc"]]}))
        .unwrap();
        assert_eq!(query.order_by, vec![(OrderKey::Metric(Metric::ConversionRate), true)]);
        assert_eq!(query.conversion_base(), query.filter_without_goal);
        assert_eq!(query.filter.as_ref().unwrap().to_json()[0], "and");
        let page = q(json!({"metrics": ["conversion_rate"], "date_range": "7d", "goal": {"page": "/thanks"}})).unwrap();
        assert_eq!(page.conversion_base(), None, "no filters: every visitor is the base");
    }

    #[test]
    fn every_mistake_names_its_field() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"date_range": "7d"}), "missing_metrics", "metrics"),
            (json!({"metrics": [], "date_range": "7d"}), "missing_metrics", "metrics"),
            (json!({"metrics": ["visits", "uniques"], "date_range": "7d"}), "invalid_metric", "uniques"),
            (json!({"metrics": ["visitors"]}), "missing_date_range", "date_range"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "site_id": "other"}), "project_from_key", "site_id"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "project_id": "other"}), "project_from_key", "project_id"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "sql": "DROP"}), "unknown_field", "sql"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "dimensions": ["event:url"]}), "invalid_dimension", "event:url"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "dimensions": ["time:day", "time:hour"]}), "invalid_dimension", "time"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "filters": [["eq", "event:page", ["/"]]]}), "invalid_filter", "eq"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "filters": [["is", "time:day", ["x"]]]}), "invalid_filter", "time:day"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "filters": [["is", "event:page", []]]}), "invalid_filter", "event:page"),
            (
                json!({"metrics": ["visitors"], "date_range": "7d", "filters": [["is", "event:page", [{"a":1}]]]}),
                "invalid_filter",
                "event:page",
            ),
            (json!({"metrics": ["conversion_rate"], "date_range": "7d"}), "conversion_needs_event", "event:name"),
            (json!({"metrics": ["percentage"], "date_range": "7d"}), "percentage_needs_dimension", "dimension"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "order_by": [["pageviews", "desc"]]}), "invalid_order_by", "pageviews"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "order_by": [["visitors", "down"]]}), "invalid_order_by", "down"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "goal": {"page": "x"}}), "invalid_goal", "goal"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "pagination": {"limit": 0}}), "invalid_pagination", "limit"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "pagination": {"limit": 10001}}), "invalid_pagination", "limit"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "compare": "last_year"}), "invalid_compare", "compare"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "include": {"segments": true}}), "invalid_include", "segments"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "timezone": 5}), "invalid_timezone", "timezone"),
            (json!([1]), "invalid_body", "object"),
            (json!({"metrics": "visitors", "date_range": "7d"}), "invalid_field", "`metrics`"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "dimensions": "visit:source"}), "invalid_field", "`dimensions`"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "filters": {}}), "invalid_field", "`filters`"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "order_by": "visitors"}), "invalid_field", "`order_by`"),
            (json!({"metrics": ["visitors"], "date_range": "7d", "dimension": null}), "unknown_field", "`dimension`"),
        ];
        // A list given as null is a list left out, as every other field.
        for field in ["dimensions", "filters", "order_by"] {
            let mut body = json!({"metrics": ["visitors"], "date_range": "7d"});
            body[field] = Value::Null;
            assert!(q(body.clone()).is_ok(), "{body}");
        }
        for (body, code, names) in cases {
            let e = q(body.clone()).unwrap_err();
            assert_eq!((e.status, e.code), (400, code), "{body}: {e}");
            assert!(e.message.contains(names), "{body}: the message should name `{names}`: {}", e.message);
        }
        assert_eq!(parse(b"{").unwrap_err().code, "invalid_json");
    }

    #[test]
    fn filters_are_bounded() {
        let mut f = json!(["is", "event:page", ["/"]]);
        for _ in 0..20 {
            f = json!(["not", f]);
        }
        let e = q(json!({"metrics": ["visitors"], "date_range": "7d", "filters": [f]})).unwrap_err();
        assert!(e.message.contains("deep"), "{e}");
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        assert_eq!(
            q(json!({"metrics": ["visitors"], "date_range": "7d", "filters": [["is", "event:page", many]]})).unwrap_err().code,
            "invalid_filter"
        );
    }
}
