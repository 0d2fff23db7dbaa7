//! `GET /v1/realtime`: visitors in the last 5 minutes, and the last 30 minutes per minute
//! (UTC), bots excluded. Same visitor identity as the Stats API (`mm_aid`, else the event).

use crate::storage::sql::string;
use serde_json::{json, Value};

pub const CURRENT_SECONDS: i64 = 300;
pub const MINUTES: i64 = 30;

fn visitor() -> &'static str {
    "uniqExact(if(anonymous_id = '', concat('~', event_id), anonymous_id))"
}

/// (current visitors, per minute) statements for a project at `now_s` (UTC seconds).
pub fn statements(database: &str, table: &str, project_id: &str, now_s: i64) -> (String, String) {
    let scope = |since: i64| {
        format!("FROM {database}.{table} FINAL WHERE project_id = {} AND timestamp >= toDateTime({since}) AND timestamp <= toDateTime({now_s}) AND is_bot = 0", string(project_id))
    };
    let start = now_s - now_s.rem_euclid(60) - (MINUTES - 1) * 60;
    (
        format!("SELECT {} AS visitors {} FORMAT JSONEachRow", visitor(), scope(now_s - CURRENT_SECONDS)),
        format!(
            "SELECT toUInt32(toStartOfMinute(timestamp)) AS minute, {} AS visitors, countIf(event_type = 'pageview') AS pageviews {} GROUP BY minute ORDER BY minute FORMAT JSONEachRow",
            visitor(),
            scope(start)
        ),
    )
}

fn num(v: &Value, k: &str) -> u64 {
    crate::storage::clickhouse::json_u64(&v[k]).unwrap_or(0)
}

/// The answer: every one of the 30 minutes, empty ones as zeros, oldest first.
pub fn answer(current: &str, per_minute: &str, now_s: i64) -> Result<Value, String> {
    let parse = |l: &str| serde_json::from_str::<Value>(l).map_err(|e| format!("unreadable realtime row ({e})"));
    let current = current.lines().find(|l| !l.trim().is_empty()).map(parse).transpose()?.map(|v| num(&v, "visitors")).unwrap_or(0);
    let rows: Vec<Value> = per_minute.lines().filter(|l| !l.trim().is_empty()).map(parse).collect::<Result<_, _>>()?;
    let start = now_s - now_s.rem_euclid(60) - (MINUTES - 1) * 60;
    let minutes: Vec<Value> = (0..MINUTES)
        .map(|i| {
            let m = start + i * 60;
            let row = rows.iter().find(|r| num(r, "minute") as i64 == m);
            let label = jiff::Timestamp::from_second(m).map(|t| t.strftime("%Y-%m-%dT%H:%M:00Z").to_string()).unwrap_or_default();
            json!({"minute": label, "visitors": row.map(|r| num(r, "visitors")).unwrap_or(0), "pageviews": row.map(|r| num(r, "pageviews")).unwrap_or(0)})
        })
        .collect();
    Ok(json!({"current_visitors": current, "window_seconds": CURRENT_SECONDS, "last_30_minutes": minutes}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_minutes_filled_in() {
        let now = 1_796_032_830; // 10:00:30 UTC
        let (cur, per) = statements("millimetric", "events", "p'x", now);
        assert!(cur.contains("'p\\'x'") && cur.contains(&format!("toDateTime({})", now - 300)) && cur.contains("is_bot = 0"));
        assert!(per.contains(&format!("toDateTime({})", 1_796_032_800 - 29 * 60)));
        let out =
            answer("{\"visitors\":\"2\"}\n", &format!("{{\"minute\":{},\"visitors\":\"2\",\"pageviews\":\"5\"}}\n", 1_796_032_800), now)
                .unwrap();
        assert_eq!(out["current_visitors"], 2);
        let minutes = out["last_30_minutes"].as_array().unwrap();
        assert_eq!(minutes.len(), 30);
        assert_eq!(minutes[29], json!({"minute": "2026-11-30T10:00:00Z", "visitors": 2, "pageviews": 5}));
        assert_eq!(minutes[0]["pageviews"], 0);
        assert!(answer("garbage", "", now).is_err());
    }
}
