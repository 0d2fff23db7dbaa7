//! `POST /v1/retention`'s body, checked: the calendar `period` cohorts and returns are counted
//! in, what puts a visitor in a cohort (their first event in the range, or a `cohort_goal`),
//! what counts as coming back (any event, or a `return_goal`), and the fields every query
//! shares.

use super::super::common::{self, Common};
use crate::error::ApiError;
use crate::query::dates::monday;
use crate::query::goal::Goal;
use crate::query::request::{bad, short};
use serde_json::{json, Value};

pub const EXAMPLE: &str = r#"{"date_range":["2026-09-01","2026-11-30"],"period":"week"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// How many periods a range may span: the triangle stays readable and the answer small.
    pub fn max_periods(self) -> i64 {
        match self {
            Period::Day => 92,
            Period::Week => 53,
            Period::Month => 24,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Retention {
    pub period: Period,
    pub cohort_goal: Option<Goal>,
    pub return_goal: Option<Goal>,
    pub common: Common,
    /// When it was asked (ms): periods that begin later are not shown.
    pub now_ms: i64,
}

pub(crate) const FIELDS: [&str; 3] = ["period", "cohort_goal", "return_goal"];

pub fn parse(body: &[u8], project_timezone: Option<&str>, now_ms: i64) -> Result<Retention, ApiError> {
    let obj = common::object(body, &FIELDS, EXAMPLE)?;
    let period = match obj.get("period").map(|v| (v, v.as_str())) {
        None | Some((_, Some("week"))) => Period::Week,
        Some((_, Some("day"))) => Period::Day,
        Some((_, Some("month"))) => Period::Month,
        Some((v, _)) => {
            return Err(bad("invalid_period", format!("`period` is `{}`; use \"day\", \"week\" (the default) or \"month\".", short(v))))
        }
    };
    let goal = |name: &str| obj.get(name).filter(|v| !v.is_null()).map(|v| Goal::parse(v, &format!("`{name}`"))).transpose();
    let (cohort_goal, return_goal) = (goal("cohort_goal")?, goal("return_goal")?);
    let common = common::common(&obj, project_timezone, now_ms)?;
    let r = Retention { period, cohort_goal, return_goal, common, now_ms };
    let n = r.periods();
    if n > period.max_periods() {
        return Err(bad(
            "range_too_long",
            format!(
                "`date_range` spans {n} {}s; retention by {} takes at most {}. Use a longer period or a shorter range.",
                period.name(),
                period.name(),
                period.max_periods()
            ),
        ));
    }
    Ok(r)
}

impl Retention {
    /// How many calendar periods the range touches, in the query's zone.
    pub fn periods(&self) -> i64 {
        let day = |t: i64| jiff::Timestamp::from_second(t).map(|ts| ts.to_zoned_datetime(self.common.tz.clone()).date()).ok();
        match (day(self.common.range.from), day(self.common.range.to - 1)) {
            (Some(a), Some(b)) => offset(self.period, a, b) + 1,
            _ => 0,
        }
    }

    pub fn echo(&self) -> Value {
        let mut e = self.common.echo();
        e["period"] = json!(self.period.name());
        e["cohort_goal"] = self.cohort_goal.as_ref().map(Goal::to_json).unwrap_or(Value::Null);
        e["return_goal"] = self.return_goal.as_ref().map(Goal::to_json).unwrap_or(Value::Null);
        e
    }
}

/// Calendar periods from the one holding `a` to the one holding `b` (weeks start on Monday).
pub fn offset(p: Period, a: jiff::civil::Date, b: jiff::civil::Date) -> i64 {
    let days = |x: jiff::civil::Date, y: jiff::civil::Date| (y - x).get_days() as i64;
    match p {
        Period::Day => days(a, b),
        Period::Week => days(monday(a), monday(b)).div_euclid(7),
        Period::Month => (b.year() as i64 - a.year() as i64) * 12 + (b.month() as i64 - a.month() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn p(v: Value) -> Result<Retention, ApiError> {
        parse(v.to_string().as_bytes(), None, 1_796_032_800_000)
    }

    #[test]
    fn periods_are_calendar_periods() {
        assert_eq!(offset(Period::Week, date(2026, 11, 29), date(2026, 11, 30)), 1, "Sunday to Monday is the next week");
        assert_eq!(offset(Period::Week, date(2026, 11, 30), date(2026, 12, 6)), 0);
        assert_eq!(offset(Period::Month, date(2026, 1, 31), date(2026, 2, 1)), 1);
        assert_eq!(offset(Period::Month, date(2025, 12, 1), date(2026, 2, 28)), 2);
        assert_eq!(offset(Period::Day, date(2026, 10, 24), date(2026, 10, 26)), 2);
        let r = p(json!({"date_range": ["2026-11-01", "2026-11-30"], "period": "week"})).unwrap();
        assert_eq!(r.periods(), 6, "Sunday the 1st to Monday the 30th touches six weeks");
        let r = p(json!({"date_range": ["2026-10-01", "2026-11-30"], "period": "month", "timezone": "Europe/Berlin", "return_goal": {"event": "login"}})).unwrap();
        assert_eq!((r.periods(), r.echo()["return_goal"].clone()), (2, json!({"event": "login"})));
    }

    #[test]
    fn every_mistake_names_its_field() {
        for (body, code, names) in [
            (json!({"date_range": "7d", "period": "hour"}), "invalid_period", "period"),
            (json!({"date_range": "7d", "cohort_goal": {"evnt": "a"}}), "invalid_goal", "cohort_goal"),
            (json!({"date_range": "7d", "return_goal": "login"}), "invalid_goal", "return_goal"),
            (json!({"date_range": ["2026-01-01", "2026-06-30"], "period": "day"}), "range_too_long", "day"),
            (json!({"date_range": "all", "period": "month"}), "range_too_long", "month"),
            (json!({"date_range": "7d", "steps": []}), "unknown_field", "steps"),
        ] {
            let e = p(body.clone()).unwrap_err();
            assert_eq!((e.status, e.code), (400, code), "{body}: {e}");
            assert!(e.message.contains(names), "{body}: {}", e.message);
        }
    }
}
