//! ClickHouse's attribution rows (`sql::statement`) to the answer: per channel value, the
//! credited conversions (2 decimals) and their share, the credited revenue per currency, and
//! the visitors it brought; in all, the conversions and their exact revenue per currency.

use super::request::Attribution;
use crate::ingest::revenue::{format_micros, micros};
use crate::query::results::{number, ratio, round2, shown};
use crate::storage::clickhouse::json_u64;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn float(v: &Value) -> Option<f64> {
    number(Some(v))
}

#[derive(Default)]
struct Channel {
    credited: f64,
    revenue: BTreeMap<String, f64>,
    visitors: u64,
}

/// The response. Err: a row did not read (ours, not the client's).
pub fn answer(a: &Attribution, raw: &str) -> Result<Value, String> {
    let mut channels: BTreeMap<String, Channel> = BTreeMap::new();
    let mut conversions = 0u64;
    let mut revenue: BTreeMap<String, i128> = BTreeMap::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let r: Value = serde_json::from_str(line).map_err(|e| format!("unreadable attribution row ({e})"))?;
        let ch = r["ch"].as_str().ok_or("an attribution row without ch")?.to_string();
        let cur = r["cur"].as_str().ok_or("an attribution row without cur")?.to_string();
        let c = channels.entry(ch).or_default();
        c.credited += float(&r["credited"]).ok_or("no credited")?;
        c.visitors += json_u64(&r["visitors"]).ok_or("no visitors")?;
        let n = json_u64(&r["conversions"]).ok_or("no conversions")?;
        conversions += n;
        if !cur.is_empty() {
            *c.revenue.entry(cur.clone()).or_default() += float(&r["credited_revenue"]).ok_or("no credited_revenue")?;
            *revenue.entry(cur).or_default() += micros(r["revenue"].as_str().ok_or("no revenue")?).ok_or("unreadable revenue")?;
        }
    }
    // A channel that was only a touch given no weight, and brought nobody, is left out.
    let mut rows: Vec<(String, Channel)> = channels.into_iter().filter(|(_, c)| c.credited > 1e-9 || c.visitors > 0).collect();
    rows.sort_by(|x, y| y.1.credited.total_cmp(&x.1.credited).then(y.1.visitors.cmp(&x.1.visitors)).then(x.0.cmp(&y.0)));
    let total_rows = rows.len();
    let with_revenue = !revenue.is_empty();
    let out_rows: Vec<Value> = rows
        .iter()
        .skip(a.offset as usize)
        .take(a.limit as usize)
        .map(|(v, c)| {
            let mut row = json!({
                "value": shown(v),
                "conversions": round2(c.credited),
                "share": round2(100.0 * ratio(c.credited, conversions as f64)),
                "visitors": c.visitors,
            });
            if with_revenue {
                row["revenue"] = Value::Object(c.revenue.iter().map(|(k, x)| (k.clone(), json!(round2(*x)))).collect::<Map<_, _>>());
            }
            row
        })
        .collect();
    let mut total = json!({"conversions": conversions});
    if with_revenue {
        total["revenue"] = Value::Object(revenue.iter().map(|(k, m)| (k.clone(), json!(format_micros(*m)))).collect::<Map<_, _>>());
    }
    Ok(json!({
        "channels": out_rows,
        "total": total,
        "meta": {"source": "raw_events", "total_rows": total_rows},
        "query": a.echo(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::attribution::request::parse;

    #[test]
    fn channels_are_credited_and_totals_exact() {
        let a = parse(br#"{"goal":{"event":"buy"},"date_range":"7d"}"#, None, 0).unwrap();
        let raw = [
            r#"{"ch":"Google","cur":"EUR","credited":1.3333333,"credited_revenue":26.664,"conversions":"1","revenue":"19.990000","visitors":"0"}"#,
            r#"{"ch":"Google","cur":"","credited":0,"credited_revenue":0,"conversions":"0","revenue":"0.000000","visitors":"4"}"#,
            r#"{"ch":"","cur":"EUR","credited":0.6666667,"credited_revenue":13.33,"conversions":"1","revenue":"0.010000","visitors":"0"}"#,
            r#"{"ch":"","cur":"USD","credited":1,"credited_revenue":5,"conversions":"1","revenue":"5.000000","visitors":"2"}"#,
        ]
        .join("\n");
        let out = answer(&a, &raw).unwrap();
        assert_eq!(out["total"], json!({"conversions": 3, "revenue": {"EUR": "20", "USD": "5"}}));
        assert_eq!(
            out["channels"][0],
            json!({"value": "(none)", "conversions": 1.67, "share": 55.56, "visitors": 2, "revenue": {"EUR": 13.33, "USD": 5.0}})
        );
        assert_eq!(out["channels"][1]["value"], "Google");
        assert_eq!(out["channels"][1]["share"], 44.44);
        let none = answer(&a, "").unwrap();
        assert_eq!(none["total"], json!({"conversions": 0}));
        assert!(answer(&a, "Code: 1").is_err());
    }
}
