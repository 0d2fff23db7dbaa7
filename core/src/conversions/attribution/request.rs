//! `POST /v1/attribution`'s body, checked: the `goal` converted on, the attribution `model`,
//! the `lookback` before each conversion, which conversions `count`, the `channel` credit
//! goes to, and the fields every query shares.

use super::super::common::{self, Common};
use crate::error::ApiError;
use crate::query::goal::Goal;
use crate::query::request::{bad, pagination, short, Dimension};
use serde_json::{json, Value};

pub const DEFAULT_LOOKBACK: u32 = 30 * 86_400;
pub const MIN_LOOKBACK: u32 = 3600;
pub const MAX_LOOKBACK: u32 = 90 * 86_400;
/// A touch's weight under `time_decay` halves every this many seconds before the conversion.
pub const HALF_LIFE: u32 = 7 * 86_400;
pub const EXAMPLE: &str = r#"{"goal":{"event":"signup"},"date_range":"30d","model":"last_non_direct","lookback":"30d"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    FirstTouch,
    LastTouch,
    LastNonDirect,
    Linear,
    PositionBased,
    TimeDecay,
}

impl Model {
    pub const ALL: [Model; 6] =
        [Model::FirstTouch, Model::LastTouch, Model::LastNonDirect, Model::Linear, Model::PositionBased, Model::TimeDecay];

    pub fn name(self) -> &'static str {
        match self {
            Model::FirstTouch => "first_touch",
            Model::LastTouch => "last_touch",
            Model::LastNonDirect => "last_non_direct",
            Model::Linear => "linear",
            Model::PositionBased => "position_based",
            Model::TimeDecay => "time_decay",
        }
    }
}

/// The channels credit can go to.
pub const CHANNELS: [Dimension; 4] = [Dimension::Source, Dimension::Medium, Dimension::UtmCampaign, Dimension::ClickIdType];

#[derive(Debug, Clone)]
pub struct Attribution {
    pub goal: Goal,
    pub model: Model,
    pub lookback: u32,
    /// Every conversion, or (the default) each visitor's first in the range.
    pub count_all: bool,
    pub channel: Dimension,
    pub limit: u64,
    pub offset: u64,
    pub common: Common,
}

pub(crate) const FIELDS: [&str; 6] = ["goal", "model", "lookback", "count", "channel", "pagination"];

pub fn parse(body: &[u8], project_timezone: Option<&str>, now_ms: i64) -> Result<Attribution, ApiError> {
    let obj = common::object(body, &FIELDS, EXAMPLE)?;
    let goal = Goal::parse(obj.get("goal").unwrap_or(&Value::Null), "`goal`")?;
    let model = match obj.get("model") {
        None | Some(Value::Null) => Model::LastNonDirect,
        Some(v) => Model::ALL.into_iter().find(|m| v.as_str() == Some(m.name())).ok_or_else(|| {
            bad("invalid_model", format!("`model` is `{}`; use one of {}.", short(v), Model::ALL.map(Model::name).join(", ")))
        })?,
    };
    let lookback = match obj.get("lookback") {
        None | Some(Value::Null) => DEFAULT_LOOKBACK,
        Some(v) => common::duration(v, MIN_LOOKBACK, MAX_LOOKBACK)
            .ok_or_else(|| bad("invalid_lookback", common::duration_refused("lookback", v, MIN_LOOKBACK, MAX_LOOKBACK)))?,
    };
    let count_all = match obj.get("count").map(|v| (v, v.as_str())) {
        None | Some((_, Some("first"))) => false,
        Some((_, Some("all"))) => true,
        Some((v, _)) => {
            return Err(bad(
                "invalid_count",
                format!("`count` is `{}`; use \"first\" (each visitor's first conversion, the default) or \"all\".", short(v)),
            ))
        }
    };
    let channel = match obj.get("channel") {
        None | Some(Value::Null) => Dimension::Source,
        Some(v) => v.as_str().and_then(Dimension::parse).filter(|d| CHANNELS.contains(d)).ok_or_else(|| {
            bad(
                "invalid_channel",
                format!("`channel` is `{}`; use visit:source, visit:medium, visit:utm_campaign or visit:click_id_type.", short(v)),
            )
        })?,
    };
    let (limit, offset) = pagination(obj.get("pagination").cloned())?;
    let common = common::common(&obj, project_timezone, now_ms)?;
    Ok(Attribution { goal, model, lookback, count_all, channel, limit, offset, common })
}

impl Attribution {
    pub fn echo(&self) -> Value {
        let mut e = self.common.echo();
        e["goal"] = self.goal.to_json();
        e["model"] = json!(self.model.name());
        e["lookback_seconds"] = json!(self.lookback);
        e["count"] = json!(if self.count_all { "all" } else { "first" });
        e["channel"] = json!(self.channel.name());
        e["pagination"] = json!({"limit": self.limit, "offset": self.offset});
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Result<Attribution, ApiError> {
        parse(v.to_string().as_bytes(), None, 1_796_032_800_000)
    }

    #[test]
    fn defaults_and_every_choice() {
        let a = p(json!({"goal": {"event": "signup"}, "date_range": "30d"})).unwrap();
        assert_eq!((a.model, a.lookback, a.count_all, a.channel.clone()), (Model::LastNonDirect, 30 * 86_400, false, Dimension::Source));
        for m in Model::ALL {
            assert_eq!(p(json!({"goal": {"event": "a"}, "date_range": "7d", "model": m.name()})).unwrap().model, m);
        }
        let a =
            p(json!({"goal": {"page": "/thanks"}, "date_range": "7d", "lookback": "90d", "count": "all", "channel": "visit:utm_campaign"}))
                .unwrap();
        assert_eq!((a.lookback, a.count_all, a.channel.clone()), (90 * 86_400, true, Dimension::UtmCampaign));
        assert_eq!(a.echo()["channel"], "visit:utm_campaign");
    }

    #[test]
    fn every_mistake_names_its_field() {
        let g = json!({"event": "a"});
        for (body, code, names) in [
            (json!({"date_range": "7d"}), "invalid_goal", "goal"),
            (json!({"goal": g, "date_range": "7d", "model": "u_shaped"}), "invalid_model", "model"),
            (json!({"goal": g, "date_range": "7d", "lookback": "91d"}), "invalid_lookback", "lookback"),
            (json!({"goal": g, "date_range": "7d", "lookback": 30}), "invalid_lookback", "lookback"),
            (json!({"goal": g, "date_range": "7d", "count": "last"}), "invalid_count", "count"),
            (json!({"goal": g, "date_range": "7d", "channel": "visit:country"}), "invalid_channel", "channel"),
            (json!({"goal": g, "date_range": "7d", "steps": []}), "unknown_field", "steps"),
            (json!({"goal": g}), "missing_date_range", "date_range"),
        ] {
            let e = p(body.clone()).unwrap_err();
            assert_eq!((e.status, e.code), (400, code), "{body}: {e}");
            assert!(e.message.contains(names), "{body}: {}", e.message);
        }
    }
}
