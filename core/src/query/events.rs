//! The custom event names seen in a period, with the property keys each carried (the MCP
//! tool `list_events`). One statement, on 18.16 and modern servers alike: project-scoped,
//! bots excluded, pageviews left out; values only through `sql::string`.

use super::plan::{self, Tables};
use crate::error::ApiError;
use crate::storage::sql::string;
use serde_json::{json, Value};

/// At most this many names (most frequent first).
pub const MAX_NAMES: u32 = 1000;

/// The statement for one project's events in `[from, to)` (UTC seconds).
pub fn statement(tables: Tables, project_id: &str, from: i64, to: i64) -> String {
    format!(
        "SELECT event_name AS name, count() AS events, uniqExact(if(anonymous_id = '', concat('~', event_id), anonymous_id)) AS visitors, \
         arraySort(groupUniqArrayArray(prop_keys)) AS property_keys \
         FROM {db}.{table} FINAL WHERE project_id = {project} AND timestamp >= toDateTime({from}) AND timestamp < toDateTime({to}) \
         AND is_bot = 0 AND event_type != 'pageview' GROUP BY name ORDER BY events DESC, name LIMIT {MAX_NAMES} FORMAT JSONEachRow",
        db = tables.database,
        table = tables.table,
        project = string(project_id),
    )
}

/// The period of a query body (dates and zone resolved as any query's), the statement for
/// it, and the echo: (sql, the query's resolved date range, time zone).
pub fn plan(
    probe: &[u8],
    project_id: &str,
    project_timezone: Option<&str>,
    tables: Tables,
    now_ms: i64,
) -> Result<(String, Value, String), ApiError> {
    let p = plan::plan(probe, project_id, project_timezone, tables, now_ms)?;
    // The plan resolved this zone already; looked up again by its canonical name.
    let (_, tz) = super::dates::time_zone(Some(&p.timezone))?;
    let labels = json!(super::dates::labels(&p.range, &tz));
    Ok((statement(tables, project_id, p.range.from, p.range.to), labels, p.timezone))
}

fn count(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// The answer from ClickHouse's JSONEachRow text. Err: it did not read (ours, not the client's).
pub fn answer(raw: &str, date_range: Value, timezone: &str) -> Result<Value, String> {
    let mut events = Vec::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("unreadable event-name row ({e})"))?;
        let keys = v["property_keys"].as_array().ok_or("an event-name row without property_keys")?;
        events.push(json!({"name": v["name"], "events": count(&v["events"]), "visitors": count(&v["visitors"]), "property_keys": keys}));
    }
    Ok(json!({"date_range": date_range, "timezone": timezone, "events": events}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tables = Tables { database: "millimetric", table: "events" };

    #[test]
    fn names_and_keys_of_one_project_without_bots() {
        let sql = statement(T, "p'x", 100, 200);
        assert!(sql.contains("project_id = 'p\\'x'"), "{sql}");
        assert!(sql.contains("timestamp >= toDateTime(100) AND timestamp < toDateTime(200)"));
        assert!(sql.contains("is_bot = 0") && sql.contains("event_type != 'pageview'") && sql.contains("FROM millimetric.events FINAL"));
        let (sql, labels, tz) = plan(
            br#"{"metrics":["events"],"date_range":["2026-11-01","2026-11-02"],"timezone":"Europe/Berlin"}"#,
            "proj_a",
            None,
            T,
            1_796_032_800_000,
        )
        .unwrap();
        assert_eq!(labels, json!(["2026-11-01T00:00:00+01:00", "2026-11-02T23:59:59+01:00"]));
        assert_eq!(tz, "Europe/Berlin");
        assert!(sql.contains("project_id = 'proj_a'"));
        assert_eq!(plan(br#"{"metrics":["events"],"date_range":"fortnight"}"#, "p", None, T, 0).unwrap_err().status, 400);
        let out = answer("{\"name\":\"signup\",\"events\":\"3\",\"visitors\":\"2\",\"property_keys\":[\"plan\"]}\n{\"name\":\"x\",\"events\":1,\"visitors\":1,\"property_keys\":[]}\n", json!(["a", "b"]), "UTC").unwrap();
        assert_eq!(out["events"][0], json!({"name": "signup", "events": 3, "visitors": 2, "property_keys": ["plan"]}));
        assert_eq!(out["events"][1]["property_keys"], json!([]));
        assert!(answer("Code: 60. no table", json!(null), "UTC").is_err());
    }
}
