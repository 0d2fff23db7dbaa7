//! The usage answer: the range asked for, ClickHouse's answers folded per project and day, and
//! the JSON of `GET /v1/usage` (one project) and `GET /admin/usage` (every project).
//!
//! Per project and UTC day:
//! - `events.stored`: events stored, each event id once; `events.bot` of them flagged as bots;
//!   `events.billable` = stored − bot (what a quota and the bill count);
//!   `events.by_key_kind` and `events.by_route` split `stored`;
//! - `refused`: events refused after the key was known, by error code (one per event);
//! - `queries`: Stats API (`stats`), realtime (`realtime`) and MCP tool calls (`mcp`);
//! - `exports`: visitor exports (`visitor`) and finished project exports (`project`).

use super::Counter;
use crate::error::ApiError;
use crate::storage::clickhouse::json_u64;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use time::Date;

/// The longest range one request may ask for.
pub const MAX_DAYS: i64 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: Date,
    pub to: Date,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_usage_range", m)
}

fn parse_day(name: &str, v: &str) -> Result<Date, ApiError> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(v, &f).map_err(|_| bad(format!("`{name}` is a UTC day as YYYY-MM-DD, not `{}`.", v.chars().take(40).collect::<String>())))
}

/// `from` and `to` (UTC days, both included) from the query string; by default the current
/// month so far.
pub fn parse_range(query: Option<&str>, now_ms: i64) -> Result<Range, ApiError> {
    let (first, _, _) = super::quota::month(now_ms);
    let today = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).map(|t| t.date()).unwrap_or(first);
    let mut range = Range { from: first, to: today };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "from" => range.from = parse_day("from", &v)?,
            "to" => range.to = parse_day("to", &v)?,
            other => {
                return Err(bad(format!(
                    "Unknown parameter `{}`: usage takes `from` and `to`.",
                    other.chars().take(40).collect::<String>()
                )))
            }
        }
    }
    // ClickHouse's Date holds 1970 to 2105 (2149 on modern servers); nothing is stored outside.
    let (first_day, last_day) =
        (Date::from_calendar_date(1970, time::Month::January, 1), Date::from_calendar_date(2105, time::Month::December, 31));
    if let (Ok(first_day), Ok(last_day)) = (first_day, last_day) {
        if range.from < first_day || range.to > last_day {
            return Err(bad("Days run from 1970-01-01 to 2105-12-31."));
        }
    }
    if range.to < range.from {
        return Err(bad("`to` is before `from`."));
    }
    if (range.to - range.from).whole_days() >= MAX_DAYS {
        return Err(bad(format!("Ask for at most {MAX_DAYS} days at a time.")));
    }
    Ok(range)
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Events {
    pub stored: u64,
    pub billable: u64,
    pub bot: u64,
    pub by_key_kind: BTreeMap<String, u64>,
    pub by_route: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Day {
    pub events: Events,
    pub refused: BTreeMap<String, u64>,
    pub queries: BTreeMap<String, u64>,
    pub exports: BTreeMap<String, u64>,
}

impl Day {
    fn merge(&mut self, o: &Day) {
        let e = &mut self.events;
        e.stored += o.events.stored;
        e.billable += o.events.billable;
        e.bot += o.events.bot;
        add_all(&mut e.by_key_kind, &o.events.by_key_kind);
        add_all(&mut e.by_route, &o.events.by_route);
        add_all(&mut self.refused, &o.refused);
        add_all(&mut self.queries, &o.queries);
        add_all(&mut self.exports, &o.exports);
    }
}

fn add_all(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, n) in from {
        *to.entry(k.clone()).or_insert(0) += n;
    }
}

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v[field].as_str().ok_or_else(|| format!("usage: a row without `{field}`"))
}

/// Usage by project, then day (`YYYY-MM-DD`).
#[derive(Debug, Default)]
pub struct Usage {
    pub projects: BTreeMap<String, BTreeMap<String, Day>>,
}

impl Usage {
    fn day(&mut self, v: &Value) -> Result<&mut Day, String> {
        let (p, d) = (text(v, "project_id")?.to_string(), text(v, "date")?.to_string());
        Ok(self.projects.entry(p).or_default().entry(d).or_default())
    }

    /// Rows of `sql::stored_live_sql` or `sql::stored_snapshot_sql`.
    pub fn add_stored(&mut self, answer: &str) -> Result<(), String> {
        for line in answer.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("usage: unreadable row: {e}"))?;
            let n = json_u64(&v["n"]).ok_or("usage: a row without `n`")?;
            let bot = json_u64(&v["is_bot"]).unwrap_or(0) != 0;
            let (kind, route) = (text(&v, "key_kind")?.to_string(), text(&v, "ingest_route")?.to_string());
            let e = &mut self.day(&v)?.events;
            e.stored += n;
            if bot {
                e.bot += n;
            } else {
                e.billable += n;
            }
            *e.by_key_kind.entry(kind).or_insert(0) += n;
            *e.by_route.entry(route).or_insert(0) += n;
        }
        Ok(())
    }

    /// Rows of `sql::counters_sql`.
    pub fn add_counters(&mut self, answer: &str) -> Result<(), String> {
        for line in answer.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("usage: unreadable row: {e}"))?;
            let n = json_u64(&v["n"]).ok_or("usage: a row without `n`")?;
            let dim = text(&v, "dim")?.to_string();
            let Some(counter) = Counter::parse(text(&v, "metric")?) else { continue };
            let day = self.day(&v)?;
            let map = match counter {
                Counter::Refused => &mut day.refused,
                Counter::Query => &mut day.queries,
                Counter::Export => &mut day.exports,
            };
            *map.entry(dim).or_insert(0) += n;
        }
        Ok(())
    }

    /// A project's billable events over everything added.
    pub fn billable(&self, project_id: &str) -> u64 {
        self.billable_between(project_id, Date::MIN, Date::MAX)
    }

    /// A project's billable events on `from..=to`.
    pub fn billable_between(&self, project_id: &str, from: Date, to: Date) -> u64 {
        if from > to {
            return 0;
        }
        let (from, to) = (from.to_string(), to.to_string());
        let days = self.projects.get(project_id);
        days.map_or(0, |days| days.range(from..=to).map(|(_, d)| d.events.billable).sum())
    }

    /// One project's usage over `range`: every day listed (zeros included), and the totals.
    pub fn project_json(&self, project_id: &str, range: Range) -> Value {
        let empty = BTreeMap::new();
        let days = self.projects.get(project_id).unwrap_or(&empty);
        let mut total = Day::default();
        let mut listed = Vec::new();
        let mut d = range.from;
        while d <= range.to {
            let day = days.get(&d.to_string()).cloned().unwrap_or_default();
            total.merge(&day);
            let mut v = serde_json::to_value(&day).unwrap_or(Value::Null);
            v["date"] = json!(d.to_string());
            listed.push(v);
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
        json!({"project_id": project_id, "from": range.from.to_string(), "to": range.to.to_string(), "totals": total, "days": listed})
    }

    /// Every project with any usage in `range`, each with its totals only.
    pub fn all_json(&self, range: Range) -> Value {
        let projects: Vec<Value> = self
            .projects
            .iter()
            .map(|(p, days)| {
                let mut total = Day::default();
                days.values().for_each(|d| total.merge(d));
                json!({"project_id": p, "totals": total})
            })
            .collect();
        json!({"from": range.from.to_string(), "to": range.to.to_string(), "projects": projects})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    use crate::test_clock::now_ms;

    #[test]
    fn the_range_defaults_to_this_month_and_is_checked() {
        let now = now_ms();
        let r = parse_range(None, now).unwrap();
        assert_eq!(r.from.day(), 1);
        assert_eq!(r.to.to_string(), super::super::utc_day(now));
        let t = r.to;
        let q = format!("from={}&to={}", t - Duration::days(3), t);
        assert_eq!(parse_range(Some(&q), now).unwrap(), Range { from: t - Duration::days(3), to: t });
        for bad in [
            format!("from={t}&to={}", t - Duration::days(1)),
            "from=yesterday".to_string(),
            format!("from={}&to={t}", t - Duration::days(MAX_DAYS)),
            "project=x".to_string(),
            "from=9999-12-31&to=9999-12-31".to_string(),
            "from=1900-01-01&to=1900-01-02".to_string(),
            "from=-0001-01-01".to_string(),
        ] {
            assert_eq!(parse_range(Some(&bad), now).unwrap_err().code, "invalid_usage_range", "{bad}");
        }
    }

    #[test]
    fn rows_fold_into_days_and_billable_leaves_bots_out() {
        let day = super::super::utc_day(now_ms());
        let mut u = Usage::default();
        u.add_stored(&format!(
            "{{\"project_id\":\"p\",\"date\":\"{day}\",\"key_kind\":\"secret\",\"ingest_route\":\"collect\",\"is_bot\":0,\"n\":\"5\"}}\n\
             {{\"project_id\":\"p\",\"date\":\"{day}\",\"key_kind\":\"publishable\",\"ingest_route\":\"collect\",\"is_bot\":1,\"n\":2}}\n"
        ))
        .unwrap();
        u.add_counters(&format!(
            "{{\"project_id\":\"p\",\"date\":\"{day}\",\"metric\":\"refused\",\"dim\":\"rate_limited\",\"n\":\"3\"}}\n\
             {{\"project_id\":\"p\",\"date\":\"{day}\",\"metric\":\"queries\",\"dim\":\"stats\",\"n\":1}}\n"
        ))
        .unwrap();
        assert_eq!(u.billable("p"), 5);
        let t = time::Date::parse(&day, &time::macros::format_description!("[year]-[month]-[day]")).unwrap();
        let v = u.project_json("p", Range { from: t - Duration::days(1), to: t });
        assert_eq!(v["days"].as_array().unwrap().len(), 2, "every day is listed");
        assert_eq!(v["totals"]["events"]["stored"], 7);
        assert_eq!(v["totals"]["events"]["bot"], 2);
        assert_eq!(v["totals"]["events"]["by_key_kind"]["secret"], 5);
        assert_eq!(v["totals"]["refused"]["rate_limited"], 3);
        assert_eq!(v["days"][1]["queries"]["stats"], 1);
        assert_eq!(v["days"][0]["events"]["stored"], 0);
        assert!(u.add_stored("{\"project_id\":\"p\"}").is_err(), "a row it cannot read is an error, never a zero");
        let all = u.all_json(Range { from: t, to: t });
        assert_eq!(all["projects"][0]["totals"]["events"]["billable"], 5);
    }
}
