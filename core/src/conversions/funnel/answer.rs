//! ClickHouse's funnel rows (`sql::statement`) to the answer: per step, who reached it, the
//! conversion from step 1 and from the previous step (%), the drop-off, and the median
//! seconds from the previous step.

use super::request::{By, Funnel};
use crate::query::results::{share, shown};
use crate::storage::clickhouse::json_u64;
use serde_json::{json, Value};

fn rate(part: u64, whole: u64) -> f64 {
    share(part as f64, whole as f64)
}

fn seconds(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// One row's steps. Err: the row did not read (ours, not the client's).
fn steps(f: &Funnel, row: &Value) -> Result<Vec<Value>, String> {
    let who = if f.by == By::Visit { "visits" } else { "visitors" };
    let reached: Vec<u64> = (1..=f.steps.len())
        .map(|k| json_u64(&row[format!("r{k}")]).ok_or_else(|| format!("a funnel row without r{k}")))
        .collect::<Result<_, _>>()?;
    Ok(f.steps
        .iter()
        .enumerate()
        .map(|(i, goal)| {
            let prev = if i == 0 { reached[0] } else { reached[i - 1] };
            let median = if i == 0 || reached[i] == 0 { None } else { seconds(&row[format!("m{}", i + 1)]) };
            json!({
                "step": i + 1,
                "goal": goal.to_json(),
                who: reached[i],
                "conversion_rate": rate(reached[i], reached[0]),
                "conversion_rate_from_previous": rate(reached[i], prev),
                "dropoff": prev - reached[i],
                "median_seconds_from_previous": median,
            })
        })
        .collect())
}

fn rows(raw: &str) -> Result<Vec<Value>, String> {
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("unreadable funnel row ({e})")))
        .collect()
}

/// The response, from the statement's answer: the total row (none when nobody reached step
/// 1), then with a breakdown its rows, of which the page asked for.
pub fn answer(f: &Funnel, raw: &str) -> Result<Value, String> {
    let all = rows(raw)?;
    let is_total = |r: &Value| json_u64(&r["total"]) == Some(1);
    let zeros = zeros(f.steps.len());
    let total = all.iter().find(|r| is_total(r)).unwrap_or(&zeros);
    let mut out = json!({
        "steps": steps(f, total)?,
        "meta": {"source": "raw_events", "counted": if f.by == By::Visit { "visits" } else { "visitors" }},
        "query": f.echo(),
    });
    if f.breakdown.is_some() {
        let groups = all
            .iter()
            .filter(|r| !is_total(r))
            .skip(f.offset as usize)
            .take(f.limit as usize)
            .map(|r| Ok(json!({"value": shown(r["d0"].as_str().ok_or("a funnel row without d0")?), "steps": steps(f, r)?})))
            .collect::<Result<Vec<_>, String>>()?;
        out["breakdown"] = json!(groups);
    }
    Ok(out)
}

fn zeros(n: usize) -> Value {
    let mut v = json!({});
    for k in 1..=n {
        v[format!("r{k}")] = json!(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::funnel::request::parse;

    #[test]
    fn rates_dropoffs_and_medians_per_step() {
        let f = parse(br#"{"steps":[{"page":"/"},{"event":"a"},{"event":"b"}],"date_range":"7d","breakdown":"visit:source"}"#, None, 0)
            .unwrap();
        let raw = [
            r#"{"total":1,"d0":"","r1":"8","r2":"3","r3":"0","m2":"42","m3":"0"}"#,
            r#"{"total":0,"d0":"","r1":"5","r2":"2","r3":"0","m2":"10","m3":"0"}"#,
            r#"{"total":0,"d0":"Google","r1":"3","r2":"1","r3":"0","m2":"60","m3":"0"}"#,
        ]
        .join("\n");
        let a = answer(&f, &raw).unwrap();
        assert_eq!(
            a["steps"][1],
            json!({"step": 2, "goal": {"event": "a"}, "visitors": 3, "conversion_rate": 37.5, "conversion_rate_from_previous": 37.5, "dropoff": 5, "median_seconds_from_previous": 42})
        );
        assert_eq!(a["steps"][0]["median_seconds_from_previous"], Value::Null);
        assert_eq!(a["steps"][2]["median_seconds_from_previous"], Value::Null, "nobody reached step 3");
        assert_eq!(a["steps"][2]["conversion_rate_from_previous"], json!(0.0));
        assert_eq!(a["breakdown"][0]["value"], "(none)");
        assert_eq!(a["breakdown"][1]["steps"][1]["visitors"], 1);
        assert_eq!(a["query"]["steps"][0], json!({"page": "/"}));
        let empty = answer(&f, "").unwrap();
        assert_eq!(empty["steps"][0]["visitors"], 0);
        assert_eq!(empty["breakdown"], json!([]));
        assert!(answer(&f, "Code: 47. Unknown identifier").is_err());
        // The page: offset 1, limit 1 leaves Google alone.
        let body = br#"{"steps":[{"page":"/"},{"event":"a"},{"event":"b"}],"date_range":"7d","breakdown":"visit:source","pagination":{"limit":1,"offset":1}}"#;
        let a = answer(&parse(body, None, 0).unwrap(), &raw).unwrap();
        assert_eq!(a["breakdown"].as_array().unwrap().len(), 1);
        assert_eq!(a["breakdown"][0]["value"], "Google");
    }
}
