//! `POST /v1/funnel`'s body, checked: 2 to 8 ordered `steps` (goals), a conversion `window`,
//! whom it counts (`by`), how strictly the steps follow each other (`order`), an optional
//! `breakdown` by one visit dimension, and the fields every query shares.

use super::super::common::{self, pagination_within_read_limit, Common};
use crate::error::ApiError;
use crate::query::goal::Goal;
use crate::query::request::{bad, short, Dimension};
use serde_json::{json, Value};

pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 8;
pub const DEFAULT_WINDOW: u32 = 86_400;
pub const MIN_WINDOW: u32 = 60;
pub const MAX_WINDOW: u32 = 90 * 86_400;
pub const EXAMPLE: &str = r#"{"steps":[{"page":"/pricing"},{"event":"signup"}],"date_range":"30d","window":"1d"}"#;

/// Who goes through the funnel: a visitor (`mm_aid`) across visits, or each visit alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Visitor,
    Visit,
}

/// `Ordered`: each step at or after the previous one, other events between allowed.
/// `Strict`: each step the very next event after the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ordered,
    Strict,
}

#[derive(Debug, Clone)]
pub struct Funnel {
    pub steps: Vec<Goal>,
    pub window: u32,
    pub by: By,
    pub order: Order,
    pub breakdown: Option<Dimension>,
    pub limit: u64,
    pub offset: u64,
    pub common: Common,
}

pub(crate) const FIELDS: [&str; 6] = ["steps", "window", "by", "order", "breakdown", "pagination"];

pub fn parse(body: &[u8], project_timezone: Option<&str>, now_ms: i64) -> Result<Funnel, ApiError> {
    let obj = common::object(body, &FIELDS, EXAMPLE)?;
    let steps = steps(obj.get("steps"))?;
    let window = match obj.get("window") {
        None | Some(Value::Null) => DEFAULT_WINDOW,
        Some(w) => common::duration(w, MIN_WINDOW, MAX_WINDOW)
            .ok_or_else(|| bad("invalid_window", common::duration_refused("window", w, MIN_WINDOW, MAX_WINDOW)))?,
    };
    let by = match obj.get("by").map(|v| (v, v.as_str())) {
        None | Some((_, Some("visitor"))) => By::Visitor,
        Some((_, Some("visit"))) => By::Visit,
        Some((v, _)) => return Err(bad("invalid_funnel", format!("`by` is `{}`; use \"visitor\" (the default) or \"visit\".", short(v)))),
    };
    let order = match obj.get("order").map(|v| (v, v.as_str())) {
        None | Some((_, Some("ordered"))) => Order::Ordered,
        Some((_, Some("strict"))) => Order::Strict,
        Some((v, _)) => {
            return Err(bad("invalid_funnel", format!("`order` is `{}`; use \"ordered\" (the default) or \"strict\".", short(v))))
        }
    };
    let breakdown = obj.get("breakdown").map(visit_dimension).transpose()?;
    let (limit, offset) = pagination_within_read_limit(obj.get("pagination").cloned())?;
    let common = common::common(&obj, project_timezone, now_ms)?;
    Ok(Funnel { steps, window, by, order, breakdown, limit, offset, common })
}

fn steps(v: Option<&Value>) -> Result<Vec<Goal>, ApiError> {
    let a = v.and_then(Value::as_array).filter(|a| (MIN_STEPS..=MAX_STEPS).contains(&a.len())).ok_or_else(|| {
        bad(
            "invalid_funnel",
            format!("`steps` is a list of {MIN_STEPS} to {MAX_STEPS} goals, e.g. [{{\"page\": \"/pricing\"}}, {{\"event\": \"signup\"}}]."),
        )
    })?;
    a.iter().enumerate().map(|(i, g)| Goal::parse(g, &format!("`steps[{i}]`"))).collect()
}

/// A visit dimension (`visit:source`, `visit:country`, ...): what a breakdown takes.
pub fn visit_dimension(v: &Value) -> Result<Dimension, ApiError> {
    v.as_str().and_then(Dimension::parse).filter(|d| !d.is_event_level()).ok_or_else(|| {
        bad(
            "invalid_breakdown",
            format!(
                "`breakdown` is `{}`; use a visit dimension such as \"visit:source\", \"visit:utm_campaign\" or \"visit:country\".",
                short(v)
            ),
        )
    })
}

impl Funnel {
    pub fn echo(&self) -> Value {
        let mut e = self.common.echo();
        e["steps"] = json!(self.steps.iter().map(Goal::to_json).collect::<Vec<_>>());
        e["window_seconds"] = json!(self.window);
        e["by"] = json!(if self.by == By::Visit { "visit" } else { "visitor" });
        e["order"] = json!(if self.order == Order::Strict { "strict" } else { "ordered" });
        e["breakdown"] = json!(self.breakdown.as_ref().map(Dimension::name));
        e["pagination"] = json!({"limit": self.limit, "offset": self.offset});
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Result<Funnel, ApiError> {
        parse(v.to_string().as_bytes(), None, 1_796_032_800_000)
    }

    /// A breakdown is paged after ClickHouse returns its first offset + limit rows, which the
    /// read limit bounds: a page past it is refused as pagination, not as a query too heavy
    /// whose advice (a smaller limit) could never help.
    #[test]
    fn a_page_past_the_read_limit_is_refused_as_pagination() {
        let deep = |offset: u64| {
            p(
                json!({"steps": [{"page": "/"}, {"event": "a"}], "date_range": "7d", "breakdown": "visit:referrer", "pagination": {"limit": 100, "offset": offset}}),
            )
        };
        assert_eq!(deep(150_000).unwrap_err().code, "invalid_pagination");
        assert!(deep(99_000).is_ok());
    }

    #[test]
    fn a_full_funnel_parses() {
        let f = p(json!({"steps": [{"page": "/pricing"}, {"event": "signup", "props": {"plan": "pro"}}], "date_range": "30d",
            "window": "30m", "by": "visit", "order": "strict", "breakdown": "visit:source", "timezone": "Europe/Berlin"}))
        .unwrap();
        assert_eq!((f.window, f.by, f.order, f.breakdown.clone()), (1800, By::Visit, Order::Strict, Some(Dimension::Source)));
        assert_eq!(f.echo()["steps"][1], json!({"event": "signup", "props": {"plan": "pro"}}));
        let d = p(json!({"steps": [{"page": "/"}, {"event": "a"}], "date_range": "7d"})).unwrap();
        assert_eq!((d.window, d.by, d.order, d.breakdown.clone()), (86_400, By::Visitor, Order::Ordered, None));
    }

    #[test]
    fn every_mistake_names_its_field() {
        let two = json!([{"page": "/"}, {"event": "a"}]);
        let cases = [
            (json!({"date_range": "7d"}), "invalid_funnel", "steps"),
            (json!({"steps": [{"page": "/"}], "date_range": "7d"}), "invalid_funnel", "steps"),
            (json!({"steps": vec![json!({"event": "a"}); 9], "date_range": "7d"}), "invalid_funnel", "steps"),
            (json!({"steps": [{"page": "/"}, {"evnt": "a"}], "date_range": "7d"}), "invalid_goal", "steps[1]"),
            (json!({"steps": two, "date_range": "7d", "window": "59s"}), "invalid_window", "window"),
            (json!({"steps": two, "date_range": "7d", "window": "0m"}), "invalid_window", "window"),
            (json!({"steps": two, "date_range": "7d", "window": "91d"}), "invalid_window", "window"),
            (json!({"steps": two, "date_range": "7d", "window": 3600}), "invalid_window", "window"),
            (json!({"steps": two, "date_range": "7d", "window": "99999999999999999999d"}), "invalid_window", "window"),
            (json!({"steps": two, "date_range": "7d", "by": "session"}), "invalid_funnel", "by"),
            (json!({"steps": two, "date_range": "7d", "order": "any"}), "invalid_funnel", "order"),
            (json!({"steps": two, "date_range": "7d", "breakdown": "event:page"}), "invalid_breakdown", "breakdown"),
            (json!({"steps": two, "date_range": "7d", "breakdown": "time:day"}), "invalid_breakdown", "breakdown"),
            (json!({"steps": two}), "missing_date_range", "date_range"),
            (json!({"steps": two, "date_range": "7d", "metrics": ["visitors"]}), "unknown_field", "metrics"),
        ];
        for (body, code, names) in cases {
            let e = p(body.clone()).unwrap_err();
            assert_eq!((e.status, e.code), (400, code), "{body}: {e}");
            assert!(e.message.contains(names), "{body}: {}", e.message);
        }
    }
}
