//! `POST /v1/paths`'s body, checked: the `start` (a goal), the `direction` (the pages after it,
//! or before it), the `depth` (1 to 3 pages), and the fields every query shares.

use super::super::common::{self, pagination_within_read_limit, Common};
use crate::error::ApiError;
use crate::query::goal::Goal;
use crate::query::request::{bad, short};
use serde_json::{json, Value};

pub const MAX_DEPTH: u64 = 3;
pub const EXAMPLE: &str = r#"{"start":{"page":"/pricing"},"date_range":"30d","direction":"next","depth":2}"#;

#[derive(Debug, Clone)]
pub struct Paths {
    pub start: Goal,
    /// The pages after the start (true), or before it.
    pub next: bool,
    pub depth: u64,
    pub limit: u64,
    pub offset: u64,
    pub common: Common,
}

pub(crate) const FIELDS: [&str; 4] = ["start", "direction", "depth", "pagination"];

pub fn parse(body: &[u8], project_timezone: Option<&str>, now_ms: i64) -> Result<Paths, ApiError> {
    let obj = common::object(body, &FIELDS, EXAMPLE)?;
    let start = Goal::parse(obj.get("start").unwrap_or(&Value::Null), "`start`")?;
    let next = match obj.get("direction").map(|v| (v, v.as_str())) {
        None | Some((_, Some("next"))) => true,
        Some((_, Some("previous"))) => false,
        Some((v, _)) => {
            return Err(bad("invalid_direction", format!("`direction` is `{}`; use \"next\" (the default) or \"previous\".", short(v))))
        }
    };
    let depth = match obj.get("depth") {
        None | Some(Value::Null) => MAX_DEPTH,
        Some(v) => crate::query::request::whole_number(v)
            .filter(|d| (1..=MAX_DEPTH).contains(d))
            .ok_or_else(|| bad("invalid_depth", format!("`depth` is `{}`; use 1, 2 or 3 pages.", short(v))))?,
    };
    let (limit, offset) = pagination_within_read_limit(obj.get("pagination").cloned())?;
    let common = common::common(&obj, project_timezone, now_ms)?;
    Ok(Paths { start, next, depth, limit, offset, common })
}

impl Paths {
    pub fn echo(&self) -> Value {
        let mut e = self.common.echo();
        e["start"] = self.start.to_json();
        e["direction"] = json!(if self.next { "next" } else { "previous" });
        e["depth"] = json!(self.depth);
        e["pagination"] = json!({"limit": self.limit, "offset": self.offset});
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Result<Paths, ApiError> {
        parse(v.to_string().as_bytes(), None, 1_796_032_800_000)
    }

    #[test]
    fn a_page_past_the_read_limit_is_refused_as_pagination() {
        let deep = |offset: u64| {
            let v = json!({"start": {"page": "/"}, "date_range": "7d", "pagination": {"limit": 100, "offset": offset}});
            parse(v.to_string().as_bytes(), None, crate::test_clock::now_ms())
        };
        assert_eq!(deep(150_000).unwrap_err().code, "invalid_pagination");
        assert!(deep(99_000).is_ok());
    }

    #[test]
    fn defaults_and_mistakes() {
        let d = p(json!({"start": {"page": "/pricing"}, "date_range": "7d"})).unwrap();
        assert_eq!((d.next, d.depth), (true, 3));
        let d = p(json!({"start": {"event": "signup"}, "date_range": "7d", "direction": "previous", "depth": 1})).unwrap();
        assert_eq!((d.next, d.depth, d.echo()["direction"].clone()), (false, 1, json!("previous")));
        for (body, code, names) in [
            (json!({"date_range": "7d"}), "invalid_goal", "start"),
            (json!({"start": {"page": "/"}, "date_range": "7d", "direction": "up"}), "invalid_direction", "direction"),
            (json!({"start": {"page": "/"}, "date_range": "7d", "depth": 4}), "invalid_depth", "depth"),
            (json!({"start": {"page": "/"}, "date_range": "7d", "depth": 0}), "invalid_depth", "depth"),
            (json!({"start": {"page": "/"}, "date_range": "7d", "goal": {}}), "unknown_field", "goal"),
        ] {
            let e = p(body.clone()).unwrap_err();
            assert_eq!((e.status, e.code), (400, code), "{body}: {e}");
            assert!(e.message.contains(names), "{body}: {}", e.message);
        }
    }
}
