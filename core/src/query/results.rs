//! ClickHouse's answers to a query's statements, assembled into the response: each row's
//! dimension values and metrics in the order asked, comparisons matched row by row, and the
//! normalised query echoed with its resolved dates.
//!
//! Metrics from a row's components (visitors, visits, pageviews, events, bounces, duration):
//! counts as they are; `views_per_visit` pageviews / visits; `bounce_rate` 100 x bounces /
//! visits; `visit_duration` duration / visits (seconds); `percentage` 100 x the row's visitors
//! / all visitors under the same filters; `conversion_rate` 100 x the row's visitors / its
//! visitors without the `event:name` filters. Derived metrics are rounded to 2 decimals.

use super::request::{Compare, Dimension, Granularity, Metric, Query};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// One grouped row: dimension values and the components.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub dims: Vec<String>,
    pub visitors: f64,
    pub visits: f64,
    pub pageviews: f64,
    pub events: f64,
    pub bounces: f64,
    pub duration: f64,
    /// With revenue: the matching events' revenue (millionths, exact), how many carried any,
    /// and their currencies.
    pub revenue: i128,
    pub revenue_events: u64,
    pub currencies: Vec<String>,
}

/// A number in a JSONEachRow answer (quoted when 64-bit).
pub(crate) fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A JSONEachRow answer with `n_dims` dimension columns. Err names the line that did not read.
pub fn parse_rows(body: &str, n_dims: usize) -> Result<Vec<Row>, String> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Map<String, Value> =
                serde_json::from_str(l).map_err(|e| format!("unreadable row ({e}): {}", l.chars().take(200).collect::<String>()))?;
            let c = |k: &str| number(v.get(k)).ok_or_else(|| format!("row without {k}: {}", l.chars().take(200).collect::<String>()));
            let dims = (0..n_dims)
                .map(|i| match v.get(&format!("d{i}")) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(other) => Ok(other.to_string()),
                    None => Err(format!("row without d{i}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let revenue = match v.get("revenue").and_then(Value::as_str) {
                Some(t) => crate::ingest::revenue::micros(t).ok_or_else(|| format!("unreadable revenue {t}"))?,
                None => 0,
            };
            let currencies = v
                .get("currencies")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect())
                .unwrap_or_default();
            Ok(Row {
                dims,
                visitors: c("visitors")?,
                visits: c("visits")?,
                pageviews: c("pageviews")?,
                events: c("events")?,
                bounces: c("bounces")?,
                duration: c("duration")?,
                revenue,
                revenue_events: number(v.get("revenue_events")).unwrap_or(0.0) as u64,
                currencies,
            })
        })
        .collect()
}

/// `SELECT count() AS total_rows ...`'s answer.
pub fn parse_total_rows(body: &str) -> Result<u64, String> {
    let v: Value = serde_json::from_str(body.lines().next().unwrap_or("")).map_err(|e| format!("unreadable total ({e})"))?;
    number(v.get("total_rows")).map(|n| n as u64).ok_or_else(|| "no total_rows".into())
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// a / b, 0 when b is 0.
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// `part` as a percent of `whole`, to 2 decimals, at most 100: from the aggregates either may be
/// an estimate, and an estimated whole can fall just under its exact part.
pub(crate) fn share(part: f64, whole: f64) -> f64 {
    round2((100.0 * ratio(part, whole)).min(100.0))
}

/// What the metrics need besides the row: all visitors (percentage), and the row's visitors
/// without the event-name filters (conversion rate).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    pub total_visitors: f64,
    pub conversion_base: f64,
}

pub fn metric_value(m: Metric, r: &Row, ctx: Context) -> Value {
    match m {
        Metric::Visitors => json!(r.visitors as u64),
        Metric::Visits => json!(r.visits as u64),
        Metric::Pageviews => json!(r.pageviews as u64),
        Metric::Events => json!(r.events as u64),
        Metric::ViewsPerVisit => json!(round2(ratio(r.pageviews, r.visits))),
        Metric::BounceRate => json!(share(r.bounces, r.visits)),
        Metric::VisitDuration => json!(round2(ratio(r.duration, r.visits))),
        Metric::Percentage => json!(share(r.visitors, ctx.total_visitors)),
        Metric::ConversionRate => json!(share(r.visitors, ctx.conversion_base)),
        Metric::TotalRevenue => revenue_value(r, r.revenue),
        Metric::AverageRevenue => {
            let digits = r.currencies.first().map_or(2, |c| crate::ingest::revenue::minor_digits(c));
            revenue_value(r, average(r.revenue, r.revenue_events, digits))
        }
    }
}

/// A revenue metric: `{"value": "12.5", "currency": "EUR"}` (exact decimal text), or null for a
/// row whose events carried none. `mixed_currencies` refuses a query before a row holds two.
fn revenue_value(r: &Row, micros: i128) -> Value {
    match r.currencies.as_slice() {
        [currency] => json!({"value": crate::ingest::revenue::format_micros(micros), "currency": currency}),
        _ => Value::Null,
    }
}

/// `total / n`, in millionths rounded half away from zero to the currency's minor unit (`digits`
/// after the point: a cent is 10,000 millionths, a yen 1,000,000).
fn average(total: i128, n: u64, digits: u32) -> i128 {
    if n == 0 {
        return 0;
    }
    let unit = 10i128.pow(6 - digits.min(6));
    let units = (total.abs() * 2 / (n as i128 * unit) + 1) / 2;
    total.signum() * units * unit
}

/// A query whose rows would each sum more than one currency: revenue is never converted at a
/// made-up rate, so the client groups by currency instead.
pub fn mixed_currencies(rows: &[Row]) -> Option<crate::error::ApiError> {
    let mixed = rows.iter().find(|r| r.currencies.len() > 1)?;
    Some(crate::error::ApiError::bad_request(
        "mixed_currencies",
        format!(
            "These rows hold revenue in {}: add the dimension \"event:revenue_currency\" (or filter on one currency) so that each row has one.",
            mixed.currencies.join(" and ")
        ),
    ))
}

/// Which period a row is of, for matching it with the other's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Period {
    Now,
    Compared,
}

/// How a row of one period is matched with a row of the other: the dimension values, with a
/// time dimension's value replaced by its bucket's offset from the period's start; but year
/// over year, a day or an hour by its date in the compared year (29 February as the 28th), as
/// offsets drift by a day on and after a 29 February.
fn match_key(q: &Query, dims: &[String], start: Option<Start>, period: Period) -> Vec<String> {
    let by_date = q.compare == Some(Compare::YearOverYear);
    q.dimensions
        .iter()
        .zip(dims)
        .map(|(d, v)| match (d, start) {
            (Dimension::Time(Granularity::Day | Granularity::Hour), _) if by_date => {
                if period == Period::Now { a_year_earlier(v) } else { Some(v.clone()) }.unwrap_or_else(|| v.clone())
            }
            (Dimension::Time(g), Some(start)) => bucket_offset(*g, v, start).map(|o| format!("#{o}")).unwrap_or_else(|| v.clone()),
            _ => v.clone(),
        })
        .collect()
}

/// A day's or an hour's label (`2029-03-01`, `2029-03-01 05:00:00`) a year earlier, 29 February
/// as the 28th.
fn a_year_earlier(label: &str) -> Option<String> {
    let date: jiff::civil::Date = label.get(..10)?.parse().ok()?;
    let earlier = date.checked_sub(jiff::Span::new().years(1)).ok()?;
    Some(format!("{earlier}{}", label.get(10..).unwrap_or("")))
}

/// Where a period starts, in its zone's wall time: the first day, and the hour on it (0 for
/// whole days; the hour of a date-time range's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub date: jiff::civil::Date,
    pub hour: i8,
}

/// A time bucket's position from the period's start: hours, days, weeks (Monday-based, from
/// the Monday of the start's week) or months.
fn bucket_offset(g: Granularity, label: &str, start: Start) -> Option<i64> {
    let date: jiff::civil::Date = label.get(..10)?.parse().ok()?;
    let days = |from: jiff::civil::Date| (date - from).get_days() as i64;
    Some(match g {
        Granularity::Hour => days(start.date) * 24 + label.get(11..13)?.parse::<i64>().ok()? - start.hour as i64,
        Granularity::Day => days(start.date),
        Granularity::Week => days(super::dates::monday(start.date)).div_euclid(7),
        Granularity::Month => (date.year() as i64 - start.date.year() as i64) * 12 + date.month() as i64 - start.date.month() as i64,
    })
}

/// A metric's value as a number: a count or a rate as it is, revenue (`{"value": "12.50",
/// "currency": "EUR"}`) by its amount.
pub fn amount(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v["value"].as_str()?.parse().ok())
}

/// The change from `was` to `now`: percent for counts (None from zero), points for percentages.
fn change(m: Metric, now: &Value, was: &Value) -> Value {
    // A revenue metric's value is an object with the amount as text; two currencies have no change.
    if now["currency"].is_string() && was["currency"].is_string() && now["currency"] != was["currency"] {
        return Value::Null;
    }
    let num = |v: &Value| amount(v).unwrap_or(0.0);
    let (a, b) = (num(now), num(was));
    if m.is_percent() {
        json!(round2(a - b))
    } else if b == 0.0 {
        Value::Null
    } else {
        json!(round2(100.0 * (a - b) / b))
    }
}

/// One period's answers, parsed.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub rows: Vec<Row>,
    pub total_rows: Option<u64>,
    pub total_visitors: Option<f64>,
    pub conversion_base: Vec<Row>,
    /// Where the period starts (for matching time buckets across periods).
    pub start: Option<Start>,
}

/// The dimensions of a row's `conversion_rate` denominator: its own, with those the base
/// drops (all but `kept`: `Query::base_dimensions`) as ''.
fn base_key(kept: &[usize], r: &Row) -> Vec<String> {
    r.dims.iter().enumerate().map(|(i, d)| if kept.contains(&i) { d.clone() } else { String::new() }).collect()
}

impl Answers {
    fn context(&self, bases: &HashMap<&[String], f64>, base_key: &[String]) -> Context {
        Context { total_visitors: self.total_visitors.unwrap_or(0.0), conversion_base: bases.get(base_key).copied().unwrap_or(0.0) }
    }

    fn bases(&self) -> HashMap<&[String], f64> {
        self.conversion_base.iter().map(|b| (b.dims.as_slice(), b.visitors)).collect()
    }
}

/// Display form of a dimension value: an empty one is "(none)".
pub fn shown(v: &str) -> Value {
    if v.is_empty() {
        json!("(none)")
    } else {
        json!(v)
    }
}

/// The response body. `echo`: the normalised query (with resolved dates) to send back.
pub fn assemble(q: &Query, now: &Answers, compared: Option<&Answers>, echo: Value, meta: Map<String, Value>) -> Value {
    let now_bases = now.bases();
    let kept = q.base_dimensions();
    let was_bases = compared.map(Answers::bases).unwrap_or_default();
    // The compared rows by match key: one lookup per row.
    let was_rows: HashMap<Vec<String>, &Row> =
        compared.map(|w| w.rows.iter().map(|o| (match_key(q, &o.dims, w.start, Period::Compared), o)).collect()).unwrap_or_default();
    let results: Vec<Value> = now
        .rows
        .iter()
        .map(|r| {
            let ctx = now.context(&now_bases, &base_key(&kept, r));
            let metrics: Vec<Value> = q.metrics.iter().map(|m| metric_value(*m, r, ctx)).collect();
            let mut out = json!({ "dimensions": r.dims.iter().map(|d| shown(d)).collect::<Vec<_>>(), "metrics": metrics });
            if let Some(was) = compared {
                let other = was_rows.get(&match_key(q, &r.dims, now.start, Period::Now)).copied();
                let zero = Row::default();
                let o = other.unwrap_or(&zero);
                let ctx = other.map(|o| was.context(&was_bases, &base_key(&kept, o))).unwrap_or_default();
                let then: Vec<Value> = q.metrics.iter().map(|m| metric_value(*m, o, ctx)).collect();
                let changes: Vec<Value> = q.metrics.iter().zip(metrics.iter().zip(&then)).map(|(m, (a, b))| change(*m, a, b)).collect();
                out["comparison"] = json!({
                    "dimensions": other.map(|o| o.dims.iter().map(|d| shown(d)).collect::<Vec<_>>()).unwrap_or_default(),
                    "metrics": then,
                    "change": changes,
                });
            }
            out
        })
        .collect();
    let mut meta = meta;
    if let Some(n) = now.total_rows {
        meta.insert("total_rows".into(), json!(n));
    }
    json!({ "results": results, "meta": meta, "query": echo })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::request::parse;

    /// Review finding: from the aggregates, visits and visitors are sketches (within 1%) while
    /// bounces are exact, so a page nearly every visit bounces on read 101% and a goal every
    /// visitor reached could too. A share is never over 100%.
    #[test]
    fn a_share_of_estimates_stays_within_100_percent() {
        let r = row(&["/a"], 101.0, 99.0, 100.0, 100.0, 0.0);
        let ctx = Context { total_visitors: 100.0, conversion_base: 100.0 };
        for m in [Metric::BounceRate, Metric::Percentage, Metric::ConversionRate] {
            assert_eq!(metric_value(m, &r, ctx), json!(100.0), "{m:?}");
        }
        assert_eq!(metric_value(Metric::BounceRate, &row(&["/a"], 3.0, 3.0, 3.0, 1.0, 0.0), ctx), json!(33.33));
    }

    fn row(dims: &[&str], visitors: f64, visits: f64, pageviews: f64, bounces: f64, duration: f64) -> Row {
        Row {
            dims: dims.iter().map(|s| s.to_string()).collect(),
            visitors,
            visits,
            pageviews,
            events: pageviews + 1.0,
            bounces,
            duration,
            ..Default::default()
        }
    }

    #[test]
    fn rows_read_quoted_and_plain_numbers() {
        let body =
            "{\"d0\":\"/a\",\"visitors\":\"3\",\"visits\":4,\"pageviews\":\"10\",\"events\":11,\"bounces\":\"1\",\"duration\":\"600\"}\n";
        let rows = parse_rows(body, 1).unwrap();
        assert_eq!(
            rows[0],
            Row {
                dims: vec!["/a".into()],
                visitors: 3.0,
                visits: 4.0,
                pageviews: 10.0,
                events: 11.0,
                bounces: 1.0,
                duration: 600.0,
                ..Default::default()
            }
        );
        assert!(parse_rows("{\"d0\":\"/a\"}", 1).is_err());
        assert!(parse_rows("Code: 241. Memory limit", 0).is_err());
        assert_eq!(parse_total_rows("{\"total_rows\":\"17\"}\n").unwrap(), 17);
    }

    #[test]
    fn revenue_is_exact_per_currency_or_refused_when_mixed() {
        let body = "{\"d0\":\"EUR\",\"visitors\":1,\"visits\":1,\"pageviews\":0,\"events\":3,\"bounces\":0,\"duration\":0,\"revenue_sum\":40.01,\"revenue\":\"40.010000\",\"revenue_events\":\"3\",\"currencies\":[\"EUR\"]}\n";
        let rows = parse_rows(body, 1).unwrap();
        let ctx = Context::default();
        assert_eq!(metric_value(Metric::TotalRevenue, &rows[0], ctx), json!({"value": "40.01", "currency": "EUR"}));
        assert_eq!(
            metric_value(Metric::AverageRevenue, &rows[0], ctx),
            json!({"value": "13.34", "currency": "EUR"}),
            "13.3366... to the cent"
        );
        assert_eq!(average(-40_010_000, 3, 2), -13_340_000);
        // Review finding: every average was rounded to a cent; yen have no minor unit, and
        // dinars three digits.
        let yen = Row { currencies: vec!["JPY".into()], revenue: 1_000_000_000, revenue_events: 3, ..Row::default() };
        assert_eq!(metric_value(Metric::AverageRevenue, &yen, ctx), json!({"value": "333", "currency": "JPY"}));
        let dinars = Row { currencies: vec!["KWD".into()], revenue: 2_001_000, revenue_events: 2, ..Row::default() };
        assert_eq!(metric_value(Metric::AverageRevenue, &dinars, ctx), json!({"value": "1.001", "currency": "KWD"}));
        assert_eq!(metric_value(Metric::TotalRevenue, &Row::default(), ctx), Value::Null, "no revenue: null");
        assert!(mixed_currencies(&rows).is_none());
        let two = Row { currencies: vec!["EUR".into(), "USD".into()], ..Row::default() };
        let e = mixed_currencies(&[two]).unwrap();
        assert_eq!((e.status, e.code), (400, "mixed_currencies"));
        assert!(e.message.contains("event:revenue_currency") && e.message.contains("EUR and USD"));
    }

    #[test]
    fn metrics_comparisons_and_none() {
        let q = parse(br#"{"metrics":["visitors","bounce_rate","visit_duration","views_per_visit","percentage"],"date_range":"7d","dimensions":["visit:source"]}"#).unwrap();
        let now = Answers {
            rows: vec![row(&["hn"], 3.0, 4.0, 10.0, 1.0, 600.0), row(&[""], 1.0, 1.0, 1.0, 1.0, 0.0)],
            total_visitors: Some(4.0),
            ..Default::default()
        };
        let was = Answers { rows: vec![row(&["hn"], 2.0, 2.0, 2.0, 2.0, 0.0)], total_visitors: Some(2.0), ..Default::default() };
        let out = assemble(&q, &now, Some(&was), json!({}), Map::new());
        let first = &out["results"][0];
        assert_eq!(first["metrics"], json!([3, 25.0, 150.0, 2.5, 75.0]));
        assert_eq!(first["comparison"]["metrics"], json!([2, 100.0, 0.0, 1.0, 100.0]));
        assert_eq!(first["comparison"]["change"], json!([50.0, -75.0, null, 150.0, -25.0]));
        let second = &out["results"][1];
        assert_eq!(second["dimensions"], json!(["(none)"]));
        assert_eq!(second["comparison"]["metrics"][0], 0);
        assert_eq!(second["comparison"]["change"][0], Value::Null);
    }

    /// Year over year, days and hours pair by their date a year earlier (29 February with the
    /// 28th), not by their place in the period, which drifts by a day on and after a
    /// 29 February. Laid out from the run's clock: the next leap year.
    #[test]
    fn year_over_year_pairs_days_by_their_date() {
        let this_year =
            jiff::Timestamp::from_millisecond(crate::test_clock::now_ms()).unwrap().to_zoned_datetime(jiff::tz::TimeZone::UTC).year();
        let leap = (this_year..).find(|y| jiff::civil::date(*y, 1, 1).in_leap_year()).unwrap();
        let d = |y: i16, m: i8, day: i8| jiff::civil::date(y, m, day).to_string();
        let start = |y: i16| Some(Start { date: jiff::civil::date(y, 1, 1), hour: 0 });
        let paired = |dimension: &str, now: &[String], was: &[String], y: i16| {
            let body = format!(r#"{{"metrics":["visitors"],"date_range":"year","dimensions":["{dimension}"],"compare":"year_over_year"}}"#);
            let q = parse(body.as_bytes()).unwrap();
            let rows = |labels: &[String]| labels.iter().map(|l| row(&[l.as_str()], 1.0, 1.0, 1.0, 0.0, 0.0)).collect();
            let now = Answers { rows: rows(now), start: start(y), ..Default::default() };
            let was = Answers { rows: rows(was), start: start(y - 1), ..Default::default() };
            let out = assemble(&q, &now, Some(&was), json!({}), Map::new());
            out["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["comparison"]["dimensions"][0].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        // The year after a leap year: 1 March with 1 March (the leap year's 29 February unpaired).
        assert_eq!(paired("time:day", &[d(leap + 1, 3, 1)], &[d(leap, 2, 29), d(leap, 3, 1)], leap + 1), [d(leap, 3, 1)]);
        // The leap year: 29 February with the 28th, 31 December with 31 December.
        assert_eq!(
            paired("time:day", &[d(leap, 2, 29), d(leap, 12, 31)], &[d(leap - 1, 2, 28), d(leap - 1, 12, 31)], leap),
            [d(leap - 1, 2, 28), d(leap - 1, 12, 31)]
        );
        let h = |date: String| format!("{date} 05:00:00");
        assert_eq!(paired("time:hour", &[h(d(leap + 1, 3, 1))], &[h(d(leap, 2, 29)), h(d(leap, 3, 1))], leap + 1), [h(d(leap, 3, 1))]);
    }

    /// The denominator of an `event:name` row is every visitor (its base row drops the name).
    #[test]
    fn a_conversion_rate_by_event_name_divides_by_every_visitor() {
        let q = parse(br#"{"metrics":["visitors","conversion_rate"],"date_range":"7d","dimensions":["event:name"],"filters":[["is","event:name",["signup","purchase"]]]}"#).unwrap();
        let now = Answers {
            rows: vec![row(&["signup"], 1.0, 1.0, 0.0, 0.0, 0.0), row(&["purchase"], 2.0, 2.0, 0.0, 0.0, 0.0)],
            conversion_base: vec![row(&[""], 4.0, 4.0, 0.0, 0.0, 0.0)],
            ..Default::default()
        };
        let out = assemble(&q, &now, None, json!({}), Map::new());
        assert_eq!(out["results"][0]["metrics"], json!([1, 25.0]));
        assert_eq!(out["results"][1]["metrics"], json!([2, 50.0]));
    }

    #[test]
    fn time_buckets_match_by_offset() {
        let start = Start { date: jiff::civil::date(2026, 11, 23), hour: 0 };
        assert_eq!(bucket_offset(Granularity::Day, "2026-11-25", start), Some(2));
        assert_eq!(bucket_offset(Granularity::Hour, "2026-11-24 05:00:00", start), Some(29));
        assert_eq!(bucket_offset(Granularity::Month, "2027-01-01", start), Some(2));
        assert_eq!(bucket_offset(Granularity::Week, "2026-11-30", start), Some(1));
        // The review's case: a period starting on a Tuesday against one starting on a Monday.
        // Weeks count from the Monday of each start's week, so the first weeks pair up.
        let tuesday = Start { date: jiff::civil::date(2026, 11, 17), hour: 0 };
        let monday = Start { date: jiff::civil::date(2026, 11, 9), hour: 0 };
        assert_eq!(bucket_offset(Granularity::Week, "2026-11-16", tuesday), Some(0));
        assert_eq!(bucket_offset(Granularity::Week, "2026-11-09", monday), Some(0));
        assert_eq!(bucket_offset(Granularity::Week, "2026-11-23", tuesday), Some(1));
        // A 24h range from 10:00: its hours count from 10:00 (they never matched before).
        let ten = Start { date: jiff::civil::date(2026, 11, 29), hour: 10 };
        assert_eq!(bucket_offset(Granularity::Hour, "2026-11-29 10:00:00", ten), Some(0));
        assert_eq!(bucket_offset(Granularity::Hour, "2026-11-30 09:00:00", ten), Some(23));
    }
}
