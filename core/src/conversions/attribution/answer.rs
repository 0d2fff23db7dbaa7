//! ClickHouse's attribution rows (`sql::statement`) to the answer: per channel value, the
//! credited conversions (2 decimals) and their share, the credited revenue per currency, and
//! the visitors it brought; in all, the conversions and their exact revenue per currency.

use super::request::Attribution;
use crate::ingest::revenue::{format_micros, micros, minor_digits};
use crate::query::results::{number, round2, share, shown};
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
    for (cur, total) in &revenue {
        let shown = in_minor_units(rows.iter().map(|(_, c)| c.revenue.get(cur).copied()), *total, minor_digits(cur));
        for ((_, c), x) in rows.iter_mut().zip(shown) {
            if let (Some(v), Some(x)) = (c.revenue.get_mut(cur), x) {
                *v = x;
            }
        }
    }
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
                "share": share(c.credited, conversions as f64),
                "visitors": c.visitors,
            });
            if with_revenue {
                row["revenue"] = Value::Object(c.revenue.iter().map(|(k, x)| (k.clone(), json!(x))).collect::<Map<_, _>>());
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

/// Each channel's credited revenue in one currency (None: the channel has none in it), shown in
/// the currency's minor unit (`digits` after the point) so that the parts add up to the total
/// (`total_micros`, rounded to that unit): each part rounded down, and the units left over
/// given to the largest remainders (the earlier row on a tie). Parts that do not make up the
/// total (a credit lost to rounding upstream by more than a unit a part) are rounded each.
fn in_minor_units(parts: impl Iterator<Item = Option<f64>>, total_micros: i128, digits: u32) -> Vec<Option<f64>> {
    let unit = 10f64.powi(digits as i32);
    let per_unit = 10i128.pow(6 - digits.min(6));
    let total = (total_micros + total_micros.signum() * per_unit / 2) / per_unit;
    let scaled: Vec<Option<f64>> = parts.map(|p| p.map(|x| x * unit)).collect();
    let floors: Vec<Option<i128>> = scaled.iter().map(|x| x.map(|x| x.floor() as i128)).collect();
    let left = total - floors.iter().flatten().sum::<i128>();
    let held = floors.iter().flatten().count() as i128;
    let units: Vec<Option<i128>> = if (0..=held).contains(&left) {
        let mut order: Vec<usize> = (0..scaled.len()).filter(|&i| scaled[i].is_some()).collect();
        let rest = |i: usize| scaled[i].unwrap_or(0.0) - scaled[i].unwrap_or(0.0).floor();
        order.sort_by(|&a, &b| rest(b).total_cmp(&rest(a)).then(a.cmp(&b)));
        let mut units = floors;
        for &i in order.iter().take(left as usize) {
            units[i] = units[i].map(|u| u + 1);
        }
        units
    } else {
        scaled.iter().map(|x| x.map(|x| x.round() as i128)).collect()
    };
    units.into_iter().map(|u| u.map(|u| u as f64 / unit)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::attribution::request::parse;

    /// Each channel's revenue is shown in its currency's minor unit (cents, fils, yen), and the
    /// parts add up to the total: a purchase split three ways showed 3.33 three times against a
    /// total of 10, and a 3-decimal currency lost its last digit.
    #[test]
    fn channel_revenue_adds_up_to_the_total_in_minor_units() {
        let a = parse(br#"{"goal":{"event":"buy"},"date_range":"7d","model":"linear"}"#, None, 0).unwrap();
        let split = |cur: &str, total: &str, third: f64| {
            ["A", "B", "C"]
                .iter()
                .enumerate()
                .map(|(i, ch)| {
                    let (n, rev) = if i == 0 { (1, total) } else { (0, "0.000000") };
                    format!(
                        r#"{{"ch":"{ch}","cur":"{cur}","credited":0.3333333,"credited_revenue":{third},"conversions":"{n}","revenue":"{rev}","visitors":"0"}}"#
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut raw = split("EUR", "10.000000", 3.3333333);
        raw.extend(split("JPY", "1000.000000", 333.3333333));
        raw.extend(split("KWD", "1.005000", 0.335));
        let out = answer(&a, &raw.join("\n")).unwrap();
        let parts =
            |cur: &str| -> Vec<f64> { out["channels"].as_array().unwrap().iter().map(|c| c["revenue"][cur].as_f64().unwrap()).collect() };
        assert_eq!(parts("EUR"), [3.34, 3.33, 3.33], "{out}");
        assert_eq!(parts("JPY"), [334.0, 333.0, 333.0], "{out}");
        assert_eq!(parts("KWD"), [0.335, 0.335, 0.335], "{out}");
        assert_eq!(out["total"]["revenue"], json!({"EUR": "10", "JPY": "1000", "KWD": "1.005"}));
    }

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
