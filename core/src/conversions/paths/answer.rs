//! ClickHouse's path rows (`sql::statement`) to the answer: the paths in order of visits, each
//! step by step in the order they were viewed, with visits, visitors and share of the visits
//! that reached the start.

use super::request::Paths;
use crate::query::results::share;
use crate::storage::clickhouse::json_u64;
use serde_json::{json, Value};

pub fn answer(p: &Paths, raw: &str) -> Result<Value, String> {
    let mut total = (0u64, 0u64);
    let mut paths = Vec::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("unreadable path row ({e})"))?;
        let (visits, visitors) = (json_u64(&v["visits"]).ok_or("no visits")?, json_u64(&v["visitors"]).ok_or("no visitors")?);
        if json_u64(&v["total"]) == Some(1) {
            total = (visits, visitors);
            continue;
        }
        let mut steps: Vec<Value> = v["path"].as_array().ok_or("a path row without path")?.clone();
        if !p.next {
            steps.reverse();
        }
        paths.push((steps, visits, visitors));
    }
    let rows: Vec<Value> = paths
        .into_iter()
        .skip(p.offset as usize)
        .take(p.limit as usize)
        .map(|(steps, visits, visitors)| {
            let share = share(visits as f64, total.0 as f64);
            json!({"steps": steps, "visits": visits, "visitors": visitors, "share": share})
        })
        .collect();
    Ok(json!({"paths": rows, "total": {"visits": total.0, "visitors": total.1}, "meta": {"source": "raw_events"}, "query": p.echo()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::paths::request::parse;

    #[test]
    fn paths_read_in_viewing_order_with_their_share() {
        let raw = [
            r#"{"total":1,"path":[],"visits":"8","visitors":"5"}"#,
            r#"{"total":0,"path":["/a","(entrance)"],"visits":"6","visitors":"4"}"#,
            r#"{"total":0,"path":["/b","/c"],"visits":"2","visitors":"1"}"#,
        ]
        .join("\n");
        let prev = parse(br#"{"start":{"event":"x"},"date_range":"7d","direction":"previous","depth":2}"#, None, 0).unwrap();
        let a = answer(&prev, &raw).unwrap();
        assert_eq!(a["paths"][0], json!({"steps": ["(entrance)", "/a"], "visits": 6, "visitors": 4, "share": 75.0}));
        assert_eq!(a["paths"][1]["steps"], json!(["/c", "/b"]));
        assert_eq!(a["total"], json!({"visits": 8, "visitors": 5}));
        let next = parse(br#"{"start":{"event":"x"},"date_range":"7d","pagination":{"limit":1,"offset":1}}"#, None, 0).unwrap();
        let a = answer(&next, &raw).unwrap();
        assert_eq!(a["paths"], json!([{"steps": ["/b", "/c"], "visits": 2, "visitors": 1, "share": 25.0}]));
        assert!(answer(&next, "Code: 1").is_err());
    }
}
