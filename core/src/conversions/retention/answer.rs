//! ClickHouse's retention rows (`sql::statement`) to the triangle: per cohort (oldest first),
//! its size and, for every period from its own to the range's last (or to now's, when the
//! range runs on past now), the visitors back and their share of the cohort.

use super::request::{offset, Retention};
use crate::query::results::share;
use crate::storage::clickhouse::json_u64;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn date(s: &str) -> Result<jiff::civil::Date, String> {
    s.parse().map_err(|e| format!("unreadable cohort date {s} ({e})"))
}

pub fn answer(r: &Retention, raw: &str) -> Result<Value, String> {
    let mut cohorts: BTreeMap<String, (u64, BTreeMap<i64, u64>)> = BTreeMap::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("unreadable retention row ({e})"))?;
        let cohort = v["cohort"].as_str().ok_or("a retention row without cohort")?.to_string();
        let k = v["k"].as_i64().or_else(|| v["k"].as_str().and_then(|s| s.parse().ok())).ok_or("a retention row without k")?;
        let n = json_u64(&v["n"]).ok_or("a retention row without n")?;
        let entry = cohorts.entry(cohort).or_default();
        if k < 0 {
            entry.0 = n;
        } else {
            entry.1.insert(k, n);
        }
    }
    // The range's last period, or now's if the range runs on past now.
    let last_second = (r.common.range.to - 1).min(r.now_ms.div_euclid(1000));
    let last = jiff::Timestamp::from_second(last_second).map_err(|e| e.to_string())?.to_zoned_datetime(r.common.tz.clone()).date();
    let rows: Vec<Value> = cohorts
        .iter()
        .map(|(cohort, (size, back))| {
            let periods = offset(r.period, date(cohort)?, last).max(0);
            let retention: Vec<Value> = (0..=periods)
                .map(|k| {
                    let n = back.get(&k).copied().unwrap_or(0);
                    let pct = share(n as f64, *size as f64);
                    json!({"period": k, "visitors": n, "percentage": pct})
                })
                .collect();
            Ok(json!({"cohort": cohort, "size": size, "retention": retention}))
        })
        .collect::<Result<_, String>>()?;
    Ok(json!({"cohorts": rows, "meta": {"source": "raw_events", "period": r.period.name()}, "query": r.echo()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::retention::request::parse;

    /// A range that ends after now (this month, or dates to come): periods that have not begun
    /// are not shown, where they read as a measured 0%.
    #[test]
    fn periods_yet_to_come_are_left_out() {
        let now = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let r = parse(br#"{"date_range":["2026-11-01","2026-11-30"],"period":"week"}"#, None, now("2026-11-10T09:00:00Z")).unwrap();
        let raw = [
            r#"{"cohort":"2026-11-02","k":-1,"n":"2"}"#,
            r#"{"cohort":"2026-11-02","k":0,"n":"2"}"#,
            r#"{"cohort":"2026-11-09","k":-1,"n":"5"}"#,
            r#"{"cohort":"2026-11-09","k":0,"n":"5"}"#,
        ]
        .join("\n");
        let a = answer(&r, &raw).unwrap();
        let len = |i: usize| a["cohorts"][i]["retention"].as_array().unwrap().len();
        assert_eq!((len(0), len(1)), (2, 1), "the week of Nov 9 has begun, that of Nov 16 has not: {a}");
        // A range wholly past: every period to its end, as before.
        let past = parse(br#"{"date_range":["2026-11-01","2026-11-30"],"period":"week"}"#, None, now("2026-12-20T00:00:00Z")).unwrap();
        assert_eq!(answer(&past, &raw).unwrap()["cohorts"][1]["retention"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn a_triangle_with_every_period_to_the_range_end() {
        let after = "2026-11-23T00:00:00Z".parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let r = parse(br#"{"date_range":["2026-11-02","2026-11-22"],"period":"week"}"#, None, after).unwrap();
        let raw = [
            r#"{"cohort":"2026-11-02","k":"-1","n":"4"}"#,
            r#"{"cohort":"2026-11-02","k":"0","n":"4"}"#,
            r#"{"cohort":"2026-11-02","k":"2","n":"1"}"#,
            r#"{"cohort":"2026-11-16","k":-1,"n":"3"}"#,
            r#"{"cohort":"2026-11-16","k":0,"n":"3"}"#,
        ]
        .join("\n");
        let a = answer(&r, &raw).unwrap();
        assert_eq!(a["cohorts"][0]["size"], 4);
        assert_eq!(a["cohorts"][0]["retention"].as_array().unwrap().len(), 3, "weeks 0, 1, 2 to the range's end");
        assert_eq!(a["cohorts"][0]["retention"][1], json!({"period": 1, "visitors": 0, "percentage": 0.0}));
        assert_eq!(a["cohorts"][0]["retention"][2], json!({"period": 2, "visitors": 1, "percentage": 25.0}));
        assert_eq!(a["cohorts"][1]["retention"].as_array().unwrap().len(), 1);
        assert_eq!(answer(&r, "").unwrap()["cohorts"], json!([]));
        assert!(answer(&r, "Code: 1").is_err());
    }
}
