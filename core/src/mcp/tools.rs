//! The MCP tools: their definitions (JSON Schema input, `readOnlyHint`, descriptions written
//! for a language model), each call's arguments mapped to a Stats API query body (run by the
//! read Worker exactly as `POST /v1/query` runs it), and the answers turned into
//! `structuredContent` plus a short summary. Pure; tested natively.

use crate::conversions::Kind;
use crate::error::ApiError;
use crate::query::request::{dimension_names, without_nulls, Metric};
use crate::query::results::amount;
use serde_json::{json, Map, Value};

/// What a tool call answers: structured content and a summary, or a sentence saying what to
/// change (a tool error, `isError: true`).
#[derive(Debug, Clone, PartialEq)]
pub enum ToolResult {
    Ok { structured: Value, summary: String },
    Error(String),
}

/// How a tool's `/v1/query` answer is reshaped.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Raw,
    Overview,
    Top { dimension: String, metric: String },
    Timeseries { metric: String, interval: String },
}

/// What the Worker runs for a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// A Stats API query body, through the same code as `POST /v1/query`.
    Query { body: Value, shape: Shape },
    /// `GET /v1/realtime`'s answer.
    Realtime,
    /// Custom event names and property keys; `probe` is a query body whose plan gives the
    /// period (dates and zone resolved as for any query).
    ListEvents { probe: Value },
    /// A conversion query's body (`POST /v1/funnel`, ...), through the same code as its endpoint.
    Conversion { kind: Kind, body: Value },
    /// The definitions; no I/O.
    Explain,
}

const PERIODS: &str = "A named period counted in `timezone` (`7d`, `28d`, `30d`, `91d` are the whole days before today, today excluded; `day` is today so far; `month`, `year`, `6mo`, `12mo` run through today; `24h` the last 24 hours; `all` the last 732 days), or a pair of local dates [\"2026-11-01\",\"2026-11-30\"] (inclusive) or RFC 3339 date-times.";
const FILTERS: &str = "Optional. Stats API filters, each [operator, dimension, values] with operator is, is_not, contains, contains_not, matches, matches_not (RE2), combined with [\"and\",[...]], [\"or\",[...]], [\"not\",filter]. Example: [[\"is\",\"visit:country\",[\"DE\"]],[\"contains\",\"event:page\",[\"/blog\"]]].";
/// The dimensions a tool breaks down by, from the query's own list: all but the time buckets
/// (those are the timeseries tool's `interval`).
fn breakdown_dimensions() -> String {
    dimension_names().into_iter().filter(|d| !d.starts_with("time:")).collect::<Vec<_>>().join(", ")
}

/// The metrics a row can be ranked or charted by, from the query's own list: all but
/// `percentage` (a row's share, which `top` adds by itself).
fn ranked_metrics() -> Vec<&'static str> {
    Metric::ALL.iter().filter(|m| **m != Metric::Percentage).map(|m| m.name()).collect()
}

/// The overview's headline numbers.
const COUNTS: [&str; 7] = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"];

fn date_range_schema(default: &str) -> Value {
    json!({"description": format!("{PERIODS} Default \"{default}\"."), "default": default, "oneOf": [
        {"type": "string", "enum": ["day", "24h", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all"]},
        {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}
    ]})
}

fn timezone_schema() -> Value {
    json!({"type": "string", "description": "Optional IANA time zone for dates and time buckets, e.g. \"Europe/Berlin\". Default: the project's zone, else UTC."})
}

fn metric_schema(desc: &str) -> Value {
    json!({"type": "string", "enum": ranked_metrics(), "default": "visitors", "description": desc})
}

/// The output schema of a tool shaped from a `/v1/query` answer: its own `properties`, and the
/// provenance every such answer carries (`with_provenance`).
fn shaped_output(mut properties: Value, required: &[&str]) -> Value {
    let names = json!({"type": "array", "items": {"type": "string"}});
    properties["source"] = json!({"type": "string"});
    properties["estimated"] = names.clone();
    properties["comparison_estimated"] = names;
    json!({"type": "object", "properties": properties, "required": required})
}

fn annotations(title: &str) -> Value {
    json!({"title": title, "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false})
}

/// The tools, in a fixed order (`tools/list`).
pub fn definitions() -> Value {
    let (dimensions, every_dimension) = (breakdown_dimensions(), dimension_names().join(", "));
    let every_metric: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let object = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
    json!([
        {
            "name": "overview",
            "title": "Overview of a period",
            "description": "The headline numbers of the project's website for a period, against the previous period (or the same period a year before): visitors (distinct people), visits (sessions: a run of one visitor's events with gaps under 30 minutes), pageviews, views_per_visit, bounce_rate (% of visits with one pageview and no custom event), visit_duration (average seconds per visit) and events (pageviews plus custom events). `change` is the percent change for counts (null when the previous value is 0) and the difference in percentage points for bounce_rate. Bots are excluded. Default period: the last 30 whole days. Example: {\"date_range\":\"7d\"} answers \"how did last week go compared with the week before?\"",
            "inputSchema": object(json!({
                "date_range": date_range_schema("30d"),
                "compare": {"type": "string", "enum": ["previous_period", "year_over_year", "none"], "default": "previous_period", "description": "What to compare with: the period just before (default), the same period a year earlier, or nothing."},
                "filters": {"type": "array", "description": FILTERS},
                "timezone": timezone_schema(),
            }), &[]),
            "outputSchema": shaped_output(json!({"date_range": {"type": "array"}, "comparison_date_range": {}, "timezone": {"type": "string"}, "metrics": {"type": "object"}}), &["date_range", "metrics"]),
            "annotations": annotations("Overview of a period"),
        },
        {
            "name": "top",
            "title": "Top values of one dimension",
            "description": format!("The top values of one dimension for a period, e.g. top pages, sources (AI assistants such as ChatGPT or Perplexity are sources with medium \"ai\"), countries, devices, UTM campaigns or a custom event's property. Each row has the value, the chosen metric, visitors, and percentage (the row's visitors as % of all visitors under the same filters). Visit dimensions (visit:*) are the visit's first event's; event dimensions count the matching events. An empty value shows as \"(none)\". `total_rows` says how many distinct values there are. Dimensions: {dimensions}. Default: visitors over the last 30 whole days, 10 rows. Example: {{\"dimension\":\"visit:source\",\"date_range\":\"7d\",\"limit\":5}} answers \"where did visitors come from last week?\""),
            "inputSchema": object(json!({
                "dimension": {"type": "string", "description": format!("The dimension to break down by: {dimensions}. Example: \"event:page\".")},
                "metric": metric_schema("What to rank by. Default \"visitors\". conversion_rate needs an event:name filter, e.g. [[\"is\",\"event:name\",[\"signup\"]]] (or use query_stats with a `goal`)."),
                "date_range": date_range_schema("30d"),
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10, "description": "How many rows, 1 to 1000. Default 10."},
                "filters": {"type": "array", "description": FILTERS},
                "timezone": timezone_schema(),
            }), &["dimension"]),
            "outputSchema": shaped_output(json!({"dimension": {"type": "string"}, "metric": {"type": "string"}, "rows": {"type": "array"}, "total_rows": {}}), &["dimension", "rows"]),
            "annotations": annotations("Top values of one dimension"),
        },
        {
            "name": "timeseries",
            "title": "A metric over time",
            "description": "One metric per hour, day, week or month over a period, oldest first, in `timezone` (hour labels are \"YYYY-MM-DD hh:00:00\", day/week/month labels the bucket's first date; weeks start on Monday). Buckets without any event are omitted (read them as 0 for counts). From raw events a visit with events in two buckets counts in both; from the aggregates (whole days already rolled up: `source` in the answer says which, and `estimated` which numbers are a sketch's) a visit counts whole in the hour it began. Default: daily visitors over the last 30 whole days. Example: {\"metric\":\"pageviews\",\"interval\":\"hour\",\"date_range\":\"day\"} answers \"how many pageviews per hour today?\"",
            "inputSchema": object(json!({
                "metric": metric_schema("The metric per bucket. Default \"visitors\"."),
                "interval": {"type": "string", "enum": ["hour", "day", "week", "month"], "default": "day", "description": "Bucket size. Default \"day\"."},
                "date_range": date_range_schema("30d"),
                "filters": {"type": "array", "description": FILTERS},
                "timezone": timezone_schema(),
            }), &[]),
            "outputSchema": shaped_output(json!({"metric": {"type": "string"}, "interval": {"type": "string"}, "points": {"type": "array"}}), &["metric", "interval", "points"]),
            "annotations": annotations("A metric over time"),
        },
        {
            "name": "realtime",
            "title": "Visitors right now",
            "description": "Current visitors (distinct visitors in the last 5 minutes) and, for each of the last 30 minutes (UTC, oldest first, empty minutes as 0), its visitors and pageviews. Bots are excluded. No arguments. Example: {} answers \"how many people are on the site right now?\"",
            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
            "outputSchema": {"type": "object", "properties": {"current_visitors": {"type": "integer"}, "window_seconds": {"type": "integer"}, "last_30_minutes": {"type": "array"}}, "required": ["current_visitors", "last_30_minutes"]},
            "annotations": annotations("Visitors right now"),
        },
        {
            "name": "list_events",
            "title": "Custom events seen",
            "description": "The custom event names (not pageviews) seen in a period, most frequent first, each with its count of events, its distinct visitors, and the property keys it carried. Use the names in filters such as [[\"is\",\"event:name\",[\"signup\"]]] and the keys as dimensions such as \"event:props:plan\". Bots are excluded. Reads raw events, which the project keeps 30, 90 or 365 days: for a longer past, `top` with dimension \"event:name\" reads the aggregates too. Default period: the last 30 whole days. Example: {\"date_range\":\"7d\"} answers \"which custom events fired last week, and with which properties?\"",
            "inputSchema": object(json!({"date_range": date_range_schema("30d"), "timezone": timezone_schema()}), &[]),
            "outputSchema": {"type": "object", "properties": {"date_range": {"type": "array"}, "events": {"type": "array"}}, "required": ["events"]},
            "annotations": annotations("Custom events seen"),
        },
        {
            "name": "query_stats",
            "title": "Any Stats API query",
            "description": format!("The whole Millimetric Stats API (POST /v1/query, the shape of Plausible's Stats API v2), for questions the other tools do not answer: several metrics and up to 4 dimensions at once, filters, ordering, paging, comparisons. The answer is the API's own: results [{{\"dimensions\":[...],\"metrics\":[...] in the order asked, \"comparison\":{{...}}}}], meta, and the normalised query with its dates resolved. Metrics: visitors, visits, pageviews, views_per_visit, bounce_rate, visit_duration (seconds), events, percentage, conversion_rate (needs a `goal` such as {{\"page\":\"/thanks\"}} or {{\"event\":\"signup\"}}, or an event:name filter; orderable), total_revenue and average_revenue (each {{\"value\": exact decimal text, \"currency\"}}; never converted, so a query whose rows would mix currencies must add the dimension event:revenue_currency). Dimensions: {every_dimension}. Bots are excluded unless include.bots. Example: {{\"metrics\":[\"visitors\",\"conversion_rate\"],\"date_range\":\"30d\",\"dimensions\":[\"visit:source\"],\"filters\":[[\"is\",\"event:name\",[\"signup\"]]]}} answers \"which sources convert to signups?\""),
            "inputSchema": object(json!({
                "metrics": {"type": "array", "items": {"type": "string", "enum": every_metric}, "minItems": 1, "description": "Required. The metrics, e.g. [\"visitors\",\"pageviews\"]."},
                "date_range": {"description": format!("Required. {PERIODS}"), "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}]},
                "dimensions": {"type": "array", "items": {"type": "string"}, "maxItems": 4, "description": "Optional. Up to 4 dimensions to group by, e.g. [\"visit:source\",\"event:page\"]."},
                "filters": {"type": "array", "description": FILTERS},
                "timezone": timezone_schema(),
                "order_by": {"type": "array", "description": "Optional. [[metric or dimension, \"asc\"|\"desc\"], ...], e.g. [[\"visitors\",\"desc\"]]."},
                "pagination": {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 10000}, "offset": {"type": "integer", "minimum": 0}}, "additionalProperties": false, "description": "Optional. Default limit 100."},
                "compare": {"type": "string", "enum": ["previous_period", "year_over_year"], "description": "Optional. Adds each row's comparison and change."},
                "include": {"type": "object", "properties": {"total_rows": {"type": "boolean"}, "bots": {"type": "boolean"}, "time_labels": {"type": "boolean"}, "imports": {"type": "boolean"}}, "additionalProperties": false, "description": "Optional. total_rows: count all rows before paging; bots: count bots too; time_labels (with a time dimension): every bucket of the range in meta.time_labels."},
                "goal": {"type": "object", "description": "Optional. What conversion_rate measures: {\"event\": name} or {\"page\": pattern with * wildcards}, optionally with \"props\": {name: value}."},
                "source": {"type": "string", "enum": ["auto", "aggregates", "raw_events"], "default": "auto", "description": "Optional. Where the numbers come from: \"auto\" (the aggregates for whole days already rolled up, raw events for the rest), \"aggregates\", or \"raw_events\" (exact, within the raw events' retention)."},
            }), &["metrics", "date_range"]),
            "outputSchema": {"type": "object", "properties": {"results": {"type": "array"}, "meta": {"type": "object"}, "query": {"type": "object"}}, "required": ["results", "meta", "query"]},
            "annotations": annotations("Any Stats API query"),
        },
        {
            "name": "funnel",
            "title": "Funnel: where visitors drop off",
            "description": "How many visitors go through 2 to 8 ordered steps, and where the others drop off. A step is a goal: {\"event\":\"signup\"} (a custom event by name) or {\"page\":\"/blog/*\"} (a pageview whose path matches; * is any characters), either with \"props\" conditions such as {\"plan\":\"pro\"}. A visitor reaches step k when their events hold steps 1..k in time order (each at or after the previous one; other events may come between; equal timestamps count in step order), with step k at most `window` after step 1. Each visitor counts once, at the furthest step reached from any start. With \"order\":\"strict\" each step must be the visitor's very next event; with \"by\":\"visit\" each visit is counted alone. Per step: visitors, conversion_rate (% of step 1), conversion_rate_from_previous, dropoff and median_seconds_from_previous. `breakdown` splits by a visit dimension of the visit where step 1 happened, e.g. \"visit:source\". Bots are excluded. Default: the last 30 whole days, window \"1d\". Example: {\"steps\":[{\"page\":\"/pricing\"},{\"event\":\"signup\"}],\"date_range\":\"30d\",\"window\":\"1h\"} answers \"how many pricing-page visitors sign up within the hour?\"",
            "inputSchema": object(json!({
                "steps": {"type": "array", "minItems": 2, "maxItems": 8, "description": "The goals in order, 2 to 8. Each {\"event\": name} or {\"page\": pattern}, optionally with \"props\": {name: value}.", "items": {"type": "object"}},
                "window": {"type": "string", "default": "1d", "description": "How long after step 1 the last step may come: minutes, hours or days from \"1m\" to \"90d\". Default \"1d\"."},
                "by": {"type": "string", "enum": ["visitor", "visit"], "default": "visitor", "description": "Count visitors across their visits (default), or each visit alone."},
                "order": {"type": "string", "enum": ["ordered", "strict"], "default": "ordered", "description": "ordered: other events may come between steps (default); strict: each step is the next event."},
                "breakdown": {"type": "string", "description": "Optional visit dimension to split by, e.g. \"visit:source\", \"visit:utm_campaign\", \"visit:country\"."},
                "date_range": date_range_schema("30d"),
                "filters": {"type": "array", "description": FILTERS},
                "timezone": timezone_schema(),
                "include": {"type": "object", "description": "Optional: {\"bots\": true} to count bots too."},
                "pagination": {"type": "object", "description": "Optional: {\"limit\": N, \"offset\": N} over the answer's rows."},
            }), &["steps"]),
            "outputSchema": {"type": "object", "properties": {"steps": {"type": "array"}, "breakdown": {"type": "array"}, "query": {"type": "object"}}, "required": ["steps"]},
            "annotations": annotations("Funnel: where visitors drop off"),
        },
        {
            "name": "attribution",
            "title": "Attribution: which channels bring conversions",
            "description": "Which channels brought the visitors who converted on a goal, across their visits. A goal is {\"event\":\"signup\"} or {\"page\":\"/thanks\"}, optionally with \"props\". For each conversion in the period, the visitor's touches are their visits that started within `lookback` before it (default \"30d\", at most \"90d\"; it may reach before the period), the converting visit included; each touch is the visit's source, medium, campaign and click id. `model` shares one conversion among them: last_non_direct (default: the latest touch that is not direct, else direct), last_touch, first_touch, linear (equal shares), position_based (40% first, 40% last, 20% shared by those between), time_decay (a touch's weight halves every 7 days before the conversion). By default each visitor's first conversion in the period counts; \"count\":\"all\" counts every one. Per channel value (`channel`: visit:source default, visit:medium, visit:utm_campaign, visit:click_id_type): credited conversions (2 decimals), share (%), credited revenue per currency when the goal's events carry revenue, and visitors the channel brought in the period. Bots are excluded. Example: {\"goal\":{\"event\":\"purchase\"},\"date_range\":\"30d\",\"model\":\"linear\",\"channel\":\"visit:utm_campaign\"} answers \"which campaigns earned last month's purchases?\"",
            "inputSchema": object(json!({
                "goal": {"type": "object", "description": "The conversion: {\"event\": name} or {\"page\": pattern}, optionally with \"props\": {name: value}."},
                "model": {"type": "string", "enum": ["last_non_direct", "last_touch", "first_touch", "linear", "position_based", "time_decay"], "default": "last_non_direct", "description": "How one conversion is shared among its touches."},
                "lookback": {"type": "string", "default": "30d", "description": "How far before a conversion a visit still counts as a touch: \"1h\" to \"90d\". Default \"30d\"."},
                "count": {"type": "string", "enum": ["first", "all"], "default": "first", "description": "Each visitor's first conversion in the period (default), or every one."},
                "channel": {"type": "string", "enum": ["visit:source", "visit:medium", "visit:utm_campaign", "visit:click_id_type"], "default": "visit:source", "description": "What credit goes to."},
                "date_range": date_range_schema("30d"),
                "filters": {"type": "array", "description": FILTERS},
                "timezone": timezone_schema(),
                "include": {"type": "object", "description": "Optional: {\"bots\": true} to count bots too."},
                "pagination": {"type": "object", "description": "Optional: {\"limit\": N, \"offset\": N} over the answer's rows."},
            }), &["goal"]),
            "outputSchema": {"type": "object", "properties": {"channels": {"type": "array"}, "total": {"type": "object"}, "query": {"type": "object"}}, "required": ["channels", "total"]},
            "annotations": annotations("Attribution: which channels bring conversions"),
        },
        {
            "name": "retention",
            "title": "Retention: do visitors come back",
            "description": "Whether visitors come back, as a cohort triangle. Visitors are grouped by the calendar period (day, week from Monday, or month, in `timezone`) of their first event in the range, or of the first time they reached `cohort_goal`; each cohort shows its size and, for each period from its own to the range's last (or to the current one), how many came back (any event, or `return_goal`) and the percentage. Goals are {\"event\":\"signup\"} or {\"page\":\"/app/*\"}, optionally with \"props\". Reads raw events only, so it reaches back as far as the project's raw retention. At most 92 days, 53 weeks or 24 months. Bots are excluded. Default: weekly over the last 91 days. Example: {\"period\":\"week\",\"date_range\":\"91d\",\"cohort_goal\":{\"event\":\"signup\"}} answers \"of each week's sign-ups, how many came back in the weeks after?\"",
            "inputSchema": object(json!({
                "period": {"type": "string", "enum": ["day", "week", "month"], "default": "week", "description": "The calendar period cohorts and returns are counted in."},
                "cohort_goal": {"type": "object", "description": "Optional: cohorts by the first time a visitor reached this goal, instead of their first event."},
                "return_goal": {"type": "object", "description": "Optional: what counts as coming back, instead of any event."},
                "date_range": date_range_schema("91d"),
                "filters": {"type": "array", "description": FILTERS},
                "timezone": timezone_schema(),
                "include": {"type": "object", "description": "Optional: {\"bots\": true} to count bots too."},
            }), &[]),
            "outputSchema": {"type": "object", "properties": {"cohorts": {"type": "array"}, "query": {"type": "object"}}, "required": ["cohorts"]},
            "annotations": annotations("Retention: do visitors come back"),
        },
        {
            "name": "paths",
            "title": "Paths: where visitors go next",
            "description": "Where visitors go after (or came from before) a page or goal, within a visit: the most common sequences of the next 1 to 3 pages, with visits, visitors and share of the visits that reached the start. `start` is {\"page\":\"/pricing\"} or {\"event\":\"signup\"}, optionally with \"props\"; the first such event of a visit is its start. A page viewed again at once counts as one step; a path that ends before `depth` pages ends with \"(exit)\" (or, with \"direction\":\"previous\", starts with \"(entrance)\"). Steps are listed in the order they were viewed. Bots are excluded. Default: the next 3 pages over the last 30 whole days, 20 paths. Example: {\"start\":{\"page\":\"/pricing\"},\"depth\":2,\"date_range\":\"30d\"} answers \"where do people go after the pricing page?\"",
            "inputSchema": object(json!({
                "start": {"type": "object", "description": "The page or goal paths start (or end) at: {\"page\": pattern} or {\"event\": name}."},
                "direction": {"type": "string", "enum": ["next", "previous"], "default": "next", "description": "The pages after the start (default), or before it."},
                "depth": {"type": "integer", "minimum": 1, "maximum": 3, "default": 3, "description": "How many pages each path holds, 1 to 3."},
                "date_range": date_range_schema("30d"),
                "filters": {"type": "array", "description": FILTERS},
                "timezone": timezone_schema(),
                "include": {"type": "object", "description": "Optional: {\"bots\": true} to count bots too."},
                "pagination": {"type": "object", "description": "Optional: {\"limit\": N, \"offset\": N} over the answer's rows."},
            }), &["start"]),
            "outputSchema": {"type": "object", "properties": {"paths": {"type": "array"}, "total": {"type": "object"}, "query": {"type": "object"}}, "required": ["paths", "total"]},
            "annotations": annotations("Paths: where visitors go next"),
        },
        {
            "name": "explain_metrics",
            "title": "What the numbers mean",
            "description": "The definitions Millimetric counts by, as docs/stats-api.md states them: visitor, visit, visit dimensions, bounce and bounce_rate, visit_duration, pageviews and events, how event filters count, percentage and conversion_rate, rounding, dates and periods, comparisons, bots. No arguments. Example: {} answers \"what counts as a bounce here?\"",
            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
            "outputSchema": {"type": "object", "properties": {"definitions": {"type": "object"}}, "required": ["definitions"]},
            "annotations": annotations("What the numbers mean"),
        },
    ])
}

/// The definitions, word for word from docs/stats-api.md (a test keeps them so).
pub const DEFINITIONS: [(&str, &str); 14] = [
    ("visitor", "a distinct `mm_aid` within the project; exact (`uniqExact` on raw events). A server event without an `mm_aid` is a visitor (and a visit) of its own."),
    ("visit", "one visitor's run of events with no gap of 30 minutes or more, derived at query time from `mm_aid` and timestamps, within the queried range (a visit that began before the range counts from its first event inside it). The snippet stores nothing new."),
    ("visit_dimensions", "(`visit:source`, `visit:utm_*`, `visit:country`, `visit:device`, ...) are the visit's first event's; `visit:entry_page` its first event's page and `visit:exit_page` its last's."),
    ("bounce", "a visit with one pageview and no custom event. **bounce_rate**: % of visits."),
    ("visit_duration", "last event minus first, in seconds, averaged over visits."),
    ("pageviews_events", "**pageviews**, **events** (pageviews and custom events), **views_per_visit**."),
    ("event_filters", "With event dimensions or filters (`event:page`, `event:name`, `event:hostname`, `event:props:<key>`, `time:*`): a visit counts where at least one of its events matches; pageviews and events count the matching events; bounce and duration stay the visit's. A time bucket counts a visit in each bucket it has events in."),
    ("percentage", "the row's visitors / all visitors under the same filters."),
    ("conversion_rate", "(needs a `goal`, or `[\"is\",\"event:name\",[...]]`): the row's visitors who reached the goal / its visitors without it; a row of the event's own name, properties or revenue currency (`event:name`, `event:props:*`) divides by every visitor of its other dimensions, as Plausible does (a `signup` row of `event:name` is signups / all visitors, not 100%), while a page, source or country keeps its own visitors."),
    ("revenue", "the exact decimal as text, or null for a row without revenue; of the events the row counts (so with a `goal`, the goal's). Raw events only. Nothing is converted between currencies: a query whose rows would each hold more than one answers `400 mixed_currencies`; add the dimension `event:revenue_currency` (or filter on one)."),
    ("rounding", "Derived metrics are rounded to 2 decimals; an empty dimension value shows as `(none)`."),
    ("dates", "named periods count from today in `timezone` (`7d`, `28d`, `30d`, `91d`: the days before today; `day`, `month`, `year`, `6mo`, `12mo` through today; `24h`; `all`: 732 days); pairs are local dates (inclusive) or RFC 3339 date-times. A local day runs midnight to midnight, so across a DST change it has 23 or 25 hours. `timezone` defaults to the project's setting (`timezone` in its key records), else UTC."),
    ("comparisons", "rows are matched by dimension values (time buckets by their offset from the period's start; year over year, days and hours by their date a year earlier, 29 February with the 28th); `change` is the percent change for counts (null from zero) and the difference in points for percentages."),
    ("bots", "Bots are excluded unless `\"include\": {\"bots\": true}`."),
];

fn fail(message: impl Into<String>) -> ToolResult {
    ToolResult::Error(message.into())
}

/// The arguments a tool takes; any other is refused with the list.
fn check_names(tool: &str, args: &Map<String, Value>, allowed: &[&str]) -> Result<(), ToolResult> {
    for k in args.keys() {
        if !allowed.contains(&k.as_str()) {
            let list = if allowed.is_empty() { "none: call it with {}".to_string() } else { allowed.join(", ") };
            return Err(fail(format!("`{k}` is not an argument of {tool}. Its arguments are {list}.")));
        }
    }
    Ok(())
}

fn string_arg<'a>(
    tool: &str,
    args: &'a Map<String, Value>,
    name: &str,
    default: &'a str,
    allowed: Option<&[&str]>,
) -> Result<&'a str, ToolResult> {
    let v = match args.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(fail(format!("`{name}` of {tool} must be a string, not {other}."))),
    };
    if let Some(ok) = allowed {
        if !ok.contains(&v) {
            return Err(fail(format!("`{name}` of {tool} is \"{v}\"; use one of {}.", ok.join(", "))));
        }
    }
    Ok(v)
}

/// The fields shared by the period tools, copied into a query body.
fn period(args: &Map<String, Value>, body: &mut Value, with_filters: bool) {
    body["date_range"] = args.get("date_range").filter(|v| !v.is_null()).cloned().unwrap_or(json!("30d"));
    if let Some(tz) = args.get("timezone").filter(|v| !v.is_null()) {
        body["timezone"] = tz.clone();
    }
    if with_filters {
        if let Some(f) = args.get("filters").filter(|v| !v.is_null()) {
            body["filters"] = f.clone();
        }
    }
}

/// A conversion tool's body: its arguments as given, less those given as `null` (their
/// defaults, as in the other tools), with the tool's default period.
fn conversion_body(args: &Map<String, Value>, default_range: &str) -> Value {
    let mut body = without_nulls(args);
    body.entry("date_range").or_insert_with(|| json!(default_range));
    Value::Object(body)
}

/// A call's arguments to what the Worker runs, or a tool error saying what to change.
pub fn prepare(tool: &str, args: &Map<String, Value>) -> Result<Prepared, ToolResult> {
    match tool {
        "query_stats" => Ok(Prepared::Query { body: Value::Object(args.clone()), shape: Shape::Raw }),
        "overview" => {
            check_names(tool, args, &["date_range", "compare", "filters", "timezone"])?;
            let compare = string_arg(tool, args, "compare", "previous_period", Some(&["previous_period", "year_over_year", "none"]))?;
            let mut body = json!({"metrics": COUNTS});
            period(args, &mut body, true);
            if compare != "none" {
                body["compare"] = json!(compare);
            }
            Ok(Prepared::Query { body, shape: Shape::Overview })
        }
        "top" => {
            check_names(tool, args, &["dimension", "metric", "date_range", "limit", "filters", "timezone"])?;
            let dimension = match args.get("dimension") {
                Some(Value::String(d)) if !d.starts_with("time:") => d.clone(),
                Some(Value::String(d)) => return Err(fail(format!("`dimension` \"{d}\" is a time bucket: use the timeseries tool for a metric over time, or a dimension such as event:page or visit:source here."))),
                _ => return Err(fail(format!("top needs `dimension`, a string such as \"event:page\" or \"visit:source\". Dimensions: {}.", breakdown_dimensions()))),
            };
            let metric = string_arg(tool, args, "metric", "visitors", Some(ranked_metrics().as_slice()))?;
            let limit = match args.get("limit") {
                None | Some(Value::Null) => 10,
                Some(v) => match crate::query::request::whole_number(v) {
                    Some(n @ 1..=1000) => n,
                    _ => return Err(fail(format!("`limit` of top is {v}; use a whole number from 1 to 1000."))),
                },
            };
            let mut metrics = vec![metric];
            for m in ["visitors", "percentage"] {
                if !metrics.contains(&m) {
                    metrics.push(m);
                }
            }
            let mut body = json!({"metrics": metrics, "dimensions": [dimension], "order_by": [[metric, "desc"]], "pagination": {"limit": limit}, "include": {"total_rows": true}});
            period(args, &mut body, true);
            Ok(Prepared::Query { body, shape: Shape::Top { dimension, metric: metric.to_string() } })
        }
        "timeseries" => {
            check_names(tool, args, &["metric", "interval", "date_range", "filters", "timezone"])?;
            let metric = string_arg(tool, args, "metric", "visitors", Some(ranked_metrics().as_slice()))?;
            let interval = string_arg(tool, args, "interval", "day", Some(&["hour", "day", "week", "month"]))?;
            let dim = format!("time:{interval}");
            let mut body = json!({"metrics": [metric], "dimensions": [dim], "order_by": [[dim, "asc"]], "pagination": {"limit": MAX_POINTS}, "include": {"total_rows": true}});
            period(args, &mut body, true);
            Ok(Prepared::Query { body, shape: Shape::Timeseries { metric: metric.to_string(), interval: interval.to_string() } })
        }
        "realtime" => {
            check_names(tool, args, &[])?;
            Ok(Prepared::Realtime)
        }
        "list_events" => {
            check_names(tool, args, &["date_range", "timezone"])?;
            let mut probe = json!({"metrics": ["events"]});
            period(args, &mut probe, false);
            Ok(Prepared::ListEvents { probe })
        }
        "funnel" => {
            check_names(
                tool,
                args,
                &["steps", "window", "by", "order", "breakdown", "date_range", "filters", "timezone", "include", "pagination"],
            )?;
            Ok(Prepared::Conversion { kind: Kind::Funnel, body: conversion_body(args, "30d") })
        }
        "attribution" => {
            check_names(
                tool,
                args,
                &["goal", "model", "lookback", "count", "channel", "date_range", "filters", "timezone", "include", "pagination"],
            )?;
            Ok(Prepared::Conversion { kind: Kind::Attribution, body: conversion_body(args, "30d") })
        }
        "retention" => {
            check_names(tool, args, &["period", "cohort_goal", "return_goal", "date_range", "filters", "timezone", "include"])?;
            Ok(Prepared::Conversion { kind: Kind::Retention, body: conversion_body(args, "91d") })
        }
        "paths" => {
            check_names(tool, args, &["start", "direction", "depth", "date_range", "filters", "timezone", "include", "pagination"])?;
            let mut body = conversion_body(args, "30d");
            // 20 paths a page, also when a call names only its offset.
            let pagination = body.as_object_mut().expect("an object").entry("pagination").or_insert_with(|| json!({}));
            if let Some(p) = pagination.as_object_mut().filter(|p| p.get("limit").is_none_or(Value::is_null)) {
                p.insert("limit".into(), json!(20));
            }
            Ok(Prepared::Conversion { kind: Kind::Paths, body })
        }
        "explain_metrics" => {
            check_names(tool, args, &[])?;
            Ok(Prepared::Explain)
        }
        other => Err(fail(format!("There is no tool {other}."))),
    }
}

/// A refusal of the Stats API, as a tool error the model can act on: the API's own sentence
/// (it names the field to fix), and for a passing fault, that a retry is the fix.
pub fn refused(e: &ApiError) -> ToolResult {
    match e.status {
        429 => fail(format!("{} (rate limit: 120 queries a minute per key)", e.message)),
        s if s >= 500 => fail(format!("{} Nothing in the arguments needs to change.", e.message)),
        _ => fail(format!("{} [{}]", e.message, e.code)),
    }
}

fn num(v: &Value) -> String {
    match v {
        Value::Null => "n/a".into(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) if o.contains_key("currency") => format!("{} {}", text(o.get("value")), text(o.get("currency"))),
        other => other.to_string(),
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "n/a".into(),
    }
}

fn period_label(answer: &Value) -> String {
    match answer["query"]["date_range"].as_array() {
        Some(a) if a.len() == 2 => format!("{} to {}", a[0].as_str().unwrap_or(""), a[1].as_str().unwrap_or("")),
        _ => "the period".into(),
    }
}

/// A `/v1/query` answer, reshaped for the tool.
pub fn finish_query(shape: &Shape, answer: &Value) -> ToolResult {
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    let when = period_label(answer);
    let shaped = match shape {
        Shape::Raw => return raw_answer(answer, &results, &when),
        Shape::Overview => overview(answer, &results, &when),
        Shape::Top { dimension, metric } => top_rows(answer, &results, &when, dimension, metric),
        Shape::Timeseries { metric, interval } => timeseries(answer, &results, &when, metric, interval),
    };
    with_provenance(answer, shaped)
}

/// A shaped answer with where its numbers come from (`meta.source`: aggregates or raw events)
/// and which of them a sketch estimates (`meta.estimated`), in the structured content and in
/// the summary, as query_stats passes the API's `meta` on whole.
fn with_provenance(answer: &Value, shaped: ToolResult) -> ToolResult {
    let ToolResult::Ok { mut structured, mut summary } = shaped else { return shaped };
    if let Some(source) = answer["meta"].get("source") {
        structured["source"] = source.clone();
    }
    for (field, whose) in [("estimated", ""), ("comparison_estimated", " in the period compared with")] {
        let names: Vec<&str> = answer["meta"][field].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if names.is_empty() {
            continue;
        }
        structured[field] = json!(names);
        let verb = if names.len() == 1 { "is" } else { "are" };
        summary = format!("{summary} {} {verb} estimated{whose} (a sketch, not an exact count).", names.join(", "));
    }
    ToolResult::Ok { structured, summary }
}

/// query_stats: the API's own answer, with a line on how many rows it holds.
fn raw_answer(answer: &Value, results: &[Value], when: &str) -> ToolResult {
    let n = results.len();
    let first =
        results.first().map(|r| format!(" First row: dimensions {} metrics {}.", r["dimensions"], r["metrics"])).unwrap_or_default();
    let total = answer["meta"]["total_rows"].as_u64().map(|t| format!(" of {t}")).unwrap_or_default();
    ToolResult::Ok {
        structured: answer.clone(),
        summary: format!("{n}{total} rows for {when}, metrics {}.{first}", answer["query"]["metrics"]),
    }
}

/// overview: each headline count with its previous value and change.
fn overview(answer: &Value, results: &[Value], when: &str) -> ToolResult {
    let row = results.first();
    let mut metrics = Map::new();
    let mut parts = Vec::new();
    let compared = !answer["query"]["compare"].is_null();
    for (i, m) in COUNTS.iter().enumerate() {
        let value = row.map(|r| r["metrics"][i].clone()).unwrap_or(json!(0));
        let mut entry = json!({"value": value});
        if compared {
            entry["previous"] = row.map(|r| r["comparison"]["metrics"][i].clone()).unwrap_or(json!(0));
            entry["change"] = row.map(|r| r["comparison"]["change"][i].clone()).unwrap_or(Value::Null);
        }
        let unit = match *m {
            "bounce_rate" => "%",
            "visit_duration" => " s",
            _ => "",
        };
        let change = if compared {
            let c = &entry["change"];
            let sign = if c.as_f64().is_some_and(|x| x >= 0.0) { "+" } else { "" };
            let by = if *m == "bounce_rate" { " points" } else { "%" };
            if c.is_null() {
                " (no change figure)".to_string()
            } else {
                format!(" ({sign}{}{by})", num(c))
            }
        } else {
            String::new()
        };
        parts.push(format!("{m} {}{unit}{change}", num(&entry["value"])));
        metrics.insert(m.to_string(), entry);
    }
    let against = match answer["query"]["compare"].as_str() {
        Some("year_over_year") => ", against the same period a year before",
        Some(_) => ", against the previous period",
        None => "",
    };
    ToolResult::Ok {
        structured: json!({
            "date_range": answer["query"]["date_range"],
            "comparison_date_range": answer["query"].get("comparison_date_range").cloned().unwrap_or(Value::Null),
            "timezone": answer["meta"]["timezone"],
            "metrics": metrics,
        }),
        summary: format!("{when}{against}: {}.", parts.join(", ")),
    }
}

/// top: one row per value of the dimension, the metric, visitors and percentage.
fn top_rows(answer: &Value, results: &[Value], when: &str, dimension: &str, metric: &str) -> ToolResult {
    let names: Vec<String> =
        answer["query"]["metrics"].as_array().into_iter().flatten().filter_map(|m| m.as_str().map(String::from)).collect();
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut row = Map::new();
            row.insert("value".into(), r["dimensions"][0].clone());
            for (i, n) in names.iter().enumerate() {
                row.insert(n.clone(), r["metrics"][i].clone());
            }
            Value::Object(row)
        })
        .collect();
    let total = answer["meta"]["total_rows"].clone();
    let list: Vec<String> = rows
        .iter()
        .take(5)
        .map(|r| format!("{} {} ({}%)", r["value"].as_str().unwrap_or(""), num(&r[metric]), num(&r["percentage"])))
        .collect();
    let summary = if rows.is_empty() {
        format!("No {dimension} values for {when}.")
    } else {
        format!("Top {} of {} {dimension} values by {metric}, {when}: {}.", rows.len(), num(&total), list.join("; "))
    };
    ToolResult::Ok {
        structured: json!({"dimension": dimension, "metric": metric, "date_range": answer["query"]["date_range"], "timezone": answer["meta"]["timezone"], "rows": rows, "total_rows": total}),
        summary,
    }
}

/// timeseries: one point per bucket, and the peak.
/// The most buckets a timeseries answers with.
const MAX_POINTS: u64 = 10_000;

fn timeseries(answer: &Value, results: &[Value], when: &str, metric: &str, interval: &str) -> ToolResult {
    // A series cut short would read as one whose latest buckets are empty.
    // (A full page and more rows: an event landing between the two statements adds one bucket.)
    if let Some(total) = answer["meta"]["total_rows"].as_u64().filter(|t| results.len() as u64 >= MAX_POINTS && *t > MAX_POINTS) {
        return ToolResult::Error(format!(
            "{total} {interval}s of {when} have events, more than the {MAX_POINTS} a timeseries answers with: ask a shorter `date_range` or a longer `interval`."
        ));
    }
    let points: Vec<Value> = results.iter().map(|r| json!({"time": r["dimensions"][0], "value": r["metrics"][0]})).collect();
    let values: Vec<f64> = points.iter().filter_map(|p| amount(&p["value"])).collect();
    let peak = points.iter().max_by(|a, b| amount(&a["value"]).unwrap_or(0.0).total_cmp(&amount(&b["value"]).unwrap_or(0.0)));
    let summary = match peak {
        None => format!("No events in {when}: {metric} is 0 throughout."),
        Some(p) => {
            let sum: f64 = values.iter().sum();
            let total = if matches!(metric, "visitors" | "visits" | "pageviews" | "events") {
                format!(", sum of buckets {sum}")
            } else {
                String::new()
            };
            format!(
                "{metric} per {interval}, {when}: {} buckets with events{total}; peak {} at {}.",
                points.len(),
                num(&p["value"]),
                p["time"].as_str().unwrap_or("")
            )
        }
    };
    ToolResult::Ok {
        structured: json!({"metric": metric, "interval": interval, "date_range": answer["query"]["date_range"], "timezone": answer["meta"]["timezone"], "points": points}),
        summary,
    }
}

/// `GET /v1/realtime`'s answer as the tool's.
pub fn finish_realtime(answer: &Value) -> ToolResult {
    let minutes = answer["last_30_minutes"].as_array().cloned().unwrap_or_default();
    let pv: u64 = minutes.iter().filter_map(|m| m["pageviews"].as_u64()).sum();
    ToolResult::Ok {
        structured: answer.clone(),
        summary: format!("{} current visitors (last 5 minutes); {pv} pageviews in the last 30 minutes.", num(&answer["current_visitors"])),
    }
}

/// `list_events`' answer (from `query::events::answer`).
pub fn finish_events(answer: &Value) -> ToolResult {
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    let list: Vec<String> = events
        .iter()
        .take(10)
        .map(|e| {
            let keys: Vec<&str> = e["property_keys"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let keys = if keys.is_empty() { "no properties".to_string() } else { format!("properties {}", keys.join(", ")) };
            format!("{} ({} events, {} visitors; {keys})", e["name"].as_str().unwrap_or(""), num(&e["events"]), num(&e["visitors"]))
        })
        .collect();
    let summary = if events.is_empty() {
        "No custom events in the period.".to_string()
    } else {
        format!("{} custom event names: {}.", events.len(), list.join("; "))
    };
    ToolResult::Ok { structured: answer.clone(), summary }
}

/// A conversion query's answer as its tool's.
pub fn finish_conversion(kind: Kind, answer: &Value) -> ToolResult {
    match kind {
        Kind::Funnel => finish_funnel(answer),
        Kind::Attribution => finish_attribution(answer),
        Kind::Retention => finish_retention(answer),
        Kind::Paths => finish_paths(answer),
    }
}

/// `POST /v1/funnel`'s answer as the tool's: the answer, and the steps in a sentence.
fn finish_funnel(answer: &Value) -> ToolResult {
    let who = answer["meta"]["counted"].as_str().unwrap_or("visitors");
    let steps = answer["steps"].as_array().cloned().unwrap_or_default();
    let said: Vec<String> = steps
        .iter()
        .map(|s| format!("step {} {}: {} {who} ({}% of step 1)", num(&s["step"]), s["goal"], num(&s[who]), num(&s["conversion_rate"])))
        .collect();
    ToolResult::Ok { structured: answer.clone(), summary: format!("Funnel over {}: {}.", period_label(answer), said.join("; ")) }
}

/// `POST /v1/attribution`'s answer as the tool's: the answer, and the top channels in a sentence.
fn finish_attribution(answer: &Value) -> ToolResult {
    let rows = answer["channels"].as_array().cloned().unwrap_or_default();
    let top: Vec<String> = rows
        .iter()
        .take(5)
        .map(|r| format!("{} {} ({}%)", r["value"].as_str().unwrap_or(""), num(&r["conversions"]), num(&r["share"])))
        .collect();
    let summary = format!(
        "{} conversions over {} by {} ({}); top channels: {}.",
        num(&answer["total"]["conversions"]),
        period_label(answer),
        answer["query"]["channel"].as_str().unwrap_or("channel"),
        answer["query"]["model"].as_str().unwrap_or("model"),
        if top.is_empty() { "none".to_string() } else { top.join(", ") }
    );
    ToolResult::Ok { structured: answer.clone(), summary }
}

/// `POST /v1/retention`'s answer as the tool's: the triangle, and period 1's retention per cohort.
fn finish_retention(answer: &Value) -> ToolResult {
    let cohorts = answer["cohorts"].as_array().cloned().unwrap_or_default();
    let period = answer["meta"]["period"].as_str().unwrap_or("period");
    let said: Vec<String> = cohorts
        .iter()
        .take(8)
        .map(|c| match c["retention"].get(1) {
            Some(p1) => {
                format!("{} ({}): {}% back the next {period}", c["cohort"].as_str().unwrap_or(""), num(&c["size"]), num(&p1["percentage"]))
            }
            None => format!("{} ({}): no later {period} yet", c["cohort"].as_str().unwrap_or(""), num(&c["size"])),
        })
        .collect();
    let summary = if cohorts.is_empty() {
        "No visitors in the period.".to_string()
    } else {
        format!("{} cohorts by {period}: {}.", cohorts.len(), said.join("; "))
    };
    ToolResult::Ok { structured: answer.clone(), summary }
}

/// `POST /v1/paths`' answer as the tool's: the answer, and the top paths in a sentence.
fn finish_paths(answer: &Value) -> ToolResult {
    let paths = answer["paths"].as_array().cloned().unwrap_or_default();
    let said: Vec<String> = paths
        .iter()
        .take(5)
        .map(|p| {
            let steps: Vec<&str> = p["steps"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            format!("{} ({} visits, {}%)", steps.join(" > "), num(&p["visits"]), num(&p["share"]))
        })
        .collect();
    let summary = if paths.is_empty() {
        "No visit reached the start in the period.".to_string()
    } else {
        format!("{} visits reached the start; top paths: {}.", num(&answer["total"]["visits"]), said.join("; "))
    };
    ToolResult::Ok { structured: answer.clone(), summary }
}

pub fn explain() -> ToolResult {
    let mut d = Map::new();
    for (k, v) in DEFINITIONS {
        d.insert(k.into(), json!(v));
    }
    ToolResult::Ok {
        structured: json!({"definitions": d}),
        summary: "Visitor: a distinct anonymous id; visit: a visitor's run of events with no 30-minute gap; bounce: a visit with one pageview and no custom event; bots excluded. The full definitions are in the structured content.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `null` for an optional argument is its default in every tool (models send it so), and
    /// `paths` keeps its 20 a page when a call names only an offset.
    #[test]
    fn a_null_argument_is_its_default_in_the_conversion_tools() {
        let calls = [
            (
                "funnel",
                json!({"steps":[{"page":"/"},{"event":"signup"}]}),
                &["window", "by", "order", "breakdown", "include", "pagination"][..],
            ),
            ("attribution", json!({"goal":{"event":"signup"}}), &["model", "lookback", "count", "channel", "include", "pagination"][..]),
            ("retention", json!({}), &["period", "cohort_goal", "return_goal", "include"][..]),
            ("paths", json!({"start":{"page":"/"}}), &["direction", "depth", "include", "pagination"][..]),
        ];
        let tables = crate::query::plan::Tables { database: "db", table: "events" };
        for (tool, base, optional) in calls {
            for field in optional.iter().chain(&["date_range", "filters", "timezone"]) {
                let mut args = base.as_object().unwrap().clone();
                args.insert(field.to_string(), Value::Null);
                let Ok(Prepared::Conversion { kind, body }) = prepare(tool, &args) else { panic!("{tool} {field}") };
                let planned = crate::conversions::plan(kind, body.to_string().as_bytes(), "p", None, tables, crate::test_clock::now_ms());
                assert!(planned.is_ok(), "{tool} with `{field}: null`: {:?}", planned.err());
            }
        }
        let args = json!({"start":{"page":"/"},"pagination":{"offset":20}});
        let Ok(Prepared::Conversion { body, .. }) = prepare("paths", args.as_object().unwrap()) else { panic!() };
        assert_eq!(body["pagination"], json!({"offset":20,"limit":20}));
    }

    /// The tools' lists of metrics and dimensions come from the query's enums: a metric or
    /// dimension added there shows in the tools, and a tool never names one the query lacks.
    #[test]
    fn the_tools_name_exactly_the_query_s_metrics_and_dimensions() {
        let tools = definitions();
        let tool = |name: &str| tools.as_array().unwrap().iter().find(|t| t["name"] == name).unwrap().clone();
        let names = |v: &Value| v.as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect::<Vec<_>>();
        let every_metric: Vec<String> = Metric::ALL.iter().map(|m| m.name().to_string()).collect();
        let query = tool("query_stats");
        assert_eq!(names(&query["inputSchema"]["properties"]["metrics"]["items"]["enum"]), every_metric);
        let described = query["description"].as_str().unwrap();
        for m in &every_metric {
            assert!(described.contains(m.as_str()), "query_stats does not name the metric {m}");
        }
        for d in dimension_names() {
            assert!(described.contains(d), "query_stats does not name the dimension {d}");
        }
        for name in ["top", "timeseries"] {
            for m in names(&tool(name)["inputSchema"]["properties"]["metric"]["enum"]) {
                assert!(every_metric.contains(&m), "{name} offers {m}, which the query does not know");
            }
        }
        let top = tool("top");
        for d in dimension_names().into_iter().filter(|d| !d.starts_with("time:")) {
            assert!(top["description"].as_str().unwrap().contains(d), "top does not name the dimension {d}");
            assert!(top["inputSchema"]["properties"]["dimension"]["description"].as_str().unwrap().contains(d));
        }
        for m in COUNTS {
            assert!(every_metric.iter().any(|x| x == m), "the overview counts {m}, which the query does not know");
        }
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn err(r: Result<Prepared, ToolResult>) -> String {
        match r {
            Err(ToolResult::Error(m)) => m,
            other => panic!("expected a tool error, got {other:?}"),
        }
    }

    #[test]
    fn every_tool_is_described_for_a_model() {
        let defs = definitions();
        let names: Vec<&str> = defs.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "overview",
                "top",
                "timeseries",
                "realtime",
                "list_events",
                "query_stats",
                "funnel",
                "attribution",
                "retention",
                "paths",
                "explain_metrics"
            ]
        );
        for t in defs.as_array().unwrap() {
            assert_eq!(t["annotations"]["readOnlyHint"], true, "{}", t["name"]);
            assert_eq!(t["inputSchema"]["type"], "object");
            assert_eq!(t["outputSchema"]["type"], "object");
            let d = t["description"].as_str().unwrap();
            assert!(d.contains("Example: {"), "{} has an example", t["name"]);
            assert!(d.len() > 150 && d.len() < 2000, "{}: {}", t["name"], d.len());
        }
    }

    #[test]
    fn definitions_are_readme_word_for_word() {
        let readme = include_str!("../../../docs/stats-api.md").split_whitespace().collect::<Vec<_>>().join(" ");
        for (k, v) in DEFINITIONS {
            assert!(readme.contains(v), "docs/stats-api.md no longer says the `{k}` definition: {v}");
        }
    }

    #[test]
    fn arguments_map_to_query_bodies() {
        let p = prepare("overview", &args(json!({"date_range": "7d", "filters": [["is", "visit:country", ["DE"]]]}))).unwrap();
        assert_eq!(
            p,
            Prepared::Query {
                body: json!({"metrics": COUNTS, "date_range": "7d", "filters": [["is", "visit:country", ["DE"]]], "compare": "previous_period"}),
                shape: Shape::Overview
            }
        );
        let Prepared::Query { body, .. } = prepare("overview", &args(json!({"compare": "none"}))).unwrap() else { panic!() };
        assert_eq!(body, json!({"metrics": COUNTS, "date_range": "30d"}));
        let Prepared::Query { body, shape } =
            prepare("top", &args(json!({"dimension": "event:page", "metric": "pageviews", "limit": 5, "timezone": "Europe/Berlin"})))
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            body,
            json!({"metrics": ["pageviews", "visitors", "percentage"], "dimensions": ["event:page"], "order_by": [["pageviews", "desc"]], "pagination": {"limit": 5}, "include": {"total_rows": true}, "date_range": "30d", "timezone": "Europe/Berlin"})
        );
        assert_eq!(shape, Shape::Top { dimension: "event:page".into(), metric: "pageviews".into() });
        let Prepared::Query { body, .. } =
            prepare("timeseries", &args(json!({"interval": "hour", "date_range": ["2026-11-01", "2026-11-02"]}))).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            body,
            json!({"metrics": ["visitors"], "dimensions": ["time:hour"], "order_by": [["time:hour", "asc"]], "pagination": {"limit": 10000}, "include": {"total_rows": true}, "date_range": ["2026-11-01", "2026-11-02"]})
        );
        let q = json!({"metrics": ["visitors"], "date_range": "day"});
        assert_eq!(prepare("query_stats", &args(q.clone())).unwrap(), Prepared::Query { body: q, shape: Shape::Raw });
        assert_eq!(prepare("realtime", &Map::new()).unwrap(), Prepared::Realtime);
        assert_eq!(
            prepare("list_events", &args(json!({"date_range": "7d"}))).unwrap(),
            Prepared::ListEvents { probe: json!({"metrics": ["events"], "date_range": "7d"}) }
        );
        // Every body the tools spell is a query the Stats API takes.
        for (t, a) in [
            ("overview", json!({})),
            ("top", json!({"dimension": "visit:source"})),
            ("timeseries", json!({"interval": "week"})),
            ("list_events", json!({})),
        ] {
            let body = match prepare(t, &args(a)).unwrap() {
                Prepared::Query { body, .. } => body,
                Prepared::ListEvents { probe } => probe,
                _ => unreachable!(),
            };
            crate::query::request::parse(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
    }

    #[test]
    fn bad_arguments_are_tool_errors_that_say_what_to_change() {
        assert!(err(prepare("top", &Map::new())).contains("needs `dimension`"));
        assert!(err(prepare("top", &args(json!({"dimension": "time:day"})))).contains("timeseries"));
        assert!(err(prepare("top", &args(json!({"dimension": "event:page", "limit": 0})))).contains("1 to 1000"));
        assert!(err(prepare("top", &args(json!({"dimension": "event:page", "metric": "hits"})))).contains("use one of visitors"));
        assert!(err(prepare("overview", &args(json!({"period": "7d"})))).contains("`period` is not an argument of overview"));
        assert!(err(prepare("timeseries", &args(json!({"interval": "minute"})))).contains("hour, day, week, month"));
        assert!(err(prepare("realtime", &args(json!({"x": 1})))).contains("call it with {}"));
        let e = refused(&ApiError::bad_request("invalid_date_range", "`date_range` must be ..."));
        assert_eq!(e, ToolResult::Error("`date_range` must be ... [invalid_date_range]".into()));
    }

    /// Review findings: the shaped tools dropped `meta.source` and `meta.estimated`, so a
    /// sketch's estimate read as exact; and a revenue series compared its buckets as 0 (each is
    /// an object), naming the last as the peak and printing the object's JSON.
    #[test]
    fn shaped_answers_say_where_their_numbers_come_from_and_read_revenue() {
        let meta = json!({"timezone": "UTC", "source": "aggregates", "estimated": ["visitors"], "total_rows": 1});
        let overview = json!({"results": [{"dimensions": [], "metrics": [10, 12, 30, 2.5, 50.0, 61, 35]}], "meta": meta, "query": {"metrics": COUNTS, "date_range": ["a", "b"]}});
        let top = json!({"results": [{"dimensions": ["/"], "metrics": [7, 5, 62.5]}], "meta": meta, "query": {"metrics": ["pageviews", "visitors", "percentage"], "date_range": ["a", "b"]}});
        let series = json!({"results": [{"dimensions": ["d1"], "metrics": [3]}], "meta": meta, "query": {"date_range": ["a", "b"]}});
        for (shape, answer) in [
            (Shape::Overview, &overview),
            (Shape::Top { dimension: "event:page".into(), metric: "pageviews".into() }, &top),
            (Shape::Timeseries { metric: "visitors".into(), interval: "day".into() }, &series),
        ] {
            let ToolResult::Ok { structured, summary } = finish_query(&shape, answer) else { panic!("{shape:?}") };
            assert_eq!(
                (structured["source"].clone(), structured["estimated"].clone()),
                (json!("aggregates"), json!(["visitors"])),
                "{shape:?}"
            );
            assert!(summary.contains("visitors is estimated"), "{shape:?}: {summary}");
        }
        // Today from raw events, a year ago from the aggregates: the baseline is the estimate.
        let mut baseline = overview.clone();
        baseline["meta"] = json!({"source": "raw_events", "comparison_estimated": ["visitors"]});
        let ToolResult::Ok { structured, summary } = finish_query(&Shape::Overview, &baseline) else { panic!() };
        assert_eq!((structured.get("estimated"), structured["comparison_estimated"].clone()), (None, json!(["visitors"])));
        assert!(summary.contains("visitors is estimated in the period compared with"), "{summary}");
        let mut exact = series.clone();
        exact["meta"] = json!({"source": "raw_events"});
        let ToolResult::Ok { structured, summary } =
            finish_query(&Shape::Timeseries { metric: "visitors".into(), interval: "day".into() }, &exact)
        else {
            panic!()
        };
        assert_eq!((structured["source"].clone(), structured.get("estimated")), (json!("raw_events"), None));
        assert!(!summary.contains("estimated"), "{summary}");

        let eur = |v: &str| json!({"value": v, "currency": "EUR"});
        let revenue = json!({"results": [{"dimensions": ["d1"], "metrics": [eur("50.00")]}, {"dimensions": ["d2"], "metrics": [eur("10.00")]}], "meta": {}, "query": {"date_range": ["a", "b"]}});
        let ToolResult::Ok { summary, .. } =
            finish_query(&Shape::Timeseries { metric: "total_revenue".into(), interval: "day".into() }, &revenue)
        else {
            panic!()
        };
        assert!(summary.contains("peak 50.00 EUR at d1"), "{summary}");
    }

    #[test]
    fn answers_become_structured_content_and_a_summary() {
        let answer = json!({
            "results": [{"dimensions": [], "metrics": [10, 12, 30, 2.5, 50.0, 61, 35], "comparison": {"metrics": [5, 6, 10, 1.67, 40.0, 30, 12], "change": [100, 100, 200, 49.7, 10.0, 103.33, 191.67]}}],
            "meta": {"timezone": "UTC"},
            "query": {"metrics": COUNTS, "date_range": ["2026-11-23T00:00:00Z", "2026-11-29T23:59:59Z"], "comparison_date_range": ["a", "b"], "compare": "previous_period"},
        });
        let ToolResult::Ok { structured, summary } = finish_query(&Shape::Overview, &answer) else { panic!() };
        assert_eq!(structured["metrics"]["visitors"], json!({"value": 10, "previous": 5, "change": 100}));
        assert_eq!(structured["metrics"]["bounce_rate"]["change"], json!(10.0));
        assert!(summary.contains("visitors 10 (+100%)") && summary.contains("bounce_rate 50.0% (+10.0 points)"), "{summary}");
        let answer = json!({"results": [{"dimensions": ["/"], "metrics": [7, 5, 62.5]}], "meta": {"total_rows": 3, "timezone": "UTC"}, "query": {"metrics": ["pageviews", "visitors", "percentage"], "date_range": ["a", "b"]}});
        let ToolResult::Ok { structured, summary } =
            finish_query(&Shape::Top { dimension: "event:page".into(), metric: "pageviews".into() }, &answer)
        else {
            panic!()
        };
        assert_eq!(structured["rows"], json!([{"value": "/", "pageviews": 7, "visitors": 5, "percentage": 62.5}]));
        assert!(summary.contains("Top 1 of 3 event:page values by pageviews") && summary.contains("/ 7 (62.5%)"), "{summary}");
        let answer = json!({"results": [{"dimensions": ["2026-11-01"], "metrics": [3]}, {"dimensions": ["2026-11-03"], "metrics": [4]}], "meta": {}, "query": {"date_range": ["a", "b"]}});
        let ToolResult::Ok { structured, summary } =
            finish_query(&Shape::Timeseries { metric: "visitors".into(), interval: "day".into() }, &answer)
        else {
            panic!()
        };
        assert_eq!(structured["points"], json!([{"time": "2026-11-01", "value": 3}, {"time": "2026-11-03", "value": 4}]));
        assert!(summary.contains("peak 4 at 2026-11-03"), "{summary}");
        // More buckets than are answered: an error that says what to ask, not a series cut short.
        let mut late = answer.clone();
        late["meta"]["total_rows"] = json!(3);
        assert!(
            matches!(finish_query(&Shape::Timeseries { metric: "visitors".into(), interval: "hour".into() }, &late), ToolResult::Ok { .. }),
            "a bucket that landed between the statements"
        );
        let mut cut = answer.clone();
        cut["results"] = json!(vec![json!({"dimensions": ["2026-11-01 00:00:00"], "metrics": [1]}); MAX_POINTS as usize]);
        cut["meta"]["total_rows"] = json!(12_000);
        match finish_query(&Shape::Timeseries { metric: "visitors".into(), interval: "hour".into() }, &cut) {
            ToolResult::Error(m) => assert!(m.contains("12000 hours") && m.contains("shorter `date_range`"), "{m}"),
            other => panic!("{other:?}"),
        }
        let ToolResult::Ok { summary, .. } =
            finish_realtime(&json!({"current_visitors": 2, "last_30_minutes": [{"pageviews": 3}, {"pageviews": 1}]}))
        else {
            panic!()
        };
        assert_eq!(summary, "2 current visitors (last 5 minutes); 4 pageviews in the last 30 minutes.");
        let ToolResult::Ok { structured, .. } = explain() else { panic!() };
        assert!(structured["definitions"]["bounce"].as_str().unwrap().starts_with("a visit with one pageview"));
    }
}
