//! What every conversion query shares with `POST /v1/query`: the body as one JSON object with
//! known fields and no project named, `date_range` and `timezone` resolved the same way,
//! `filters` in the same form, `include.bots`.

use crate::error::ApiError;
use crate::query::dates::{self, Range};
use crate::query::request::{bad, filters, short, timezone, without_nulls, Dimension, Filter};
use crate::query::sql::Scope;
use crate::query::sql::MAX_STATEMENT_BYTES;
use jiff::tz::TimeZone;
use serde_json::{json, Map, Value};

/// The fields every conversion query takes besides its own.
pub const SHARED_FIELDS: [&str; 4] = ["date_range", "timezone", "filters", "include"];

#[derive(Debug, Clone)]
pub struct Common {
    pub filter: Option<Filter>,
    pub timezone: String,
    pub tz: TimeZone,
    pub range: Range,
    pub include_bots: bool,
}

/// A conversion statement, or `too_large` (a 400 `filters_too_large` saying what to shorten)
/// when it is longer than ClickHouse parses (`query::sql::MAX_STATEMENT_BYTES`).
pub fn checked_statement(sql: String, too_large: &str) -> Result<String, ApiError> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(ApiError::bad_request("filters_too_large", too_large));
    }
    Ok(sql)
}

/// The body as an object of known fields (`own` and SHARED_FIELDS), less those given as `null`
/// (left out, so they take their defaults, as in `/v1/query` and over MCP). `example` is a
/// whole body, shown when the body is not one.
pub fn object(body: &[u8], own: &[&str], example: &str) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| bad("invalid_json", format!("The body is not valid JSON ({e}). Send an object, e.g. {example}.")))?;
    let Value::Object(obj) = v else {
        return Err(bad("invalid_body", format!("The body must be a JSON object, e.g. {example}.")));
    };
    for named in ["site_id", "project_id", "project"] {
        if obj.contains_key(named) {
            return Err(bad("project_from_key", format!("`{named}` is not taken: a query answers for its key's project only. Remove it.")));
        }
    }
    if let Some(k) = obj.keys().find(|k| !own.contains(&k.as_str()) && !SHARED_FIELDS.contains(&k.as_str())) {
        let mut fields: Vec<&str> = own.to_vec();
        fields.extend(SHARED_FIELDS);
        return Err(bad("unknown_field", format!("`{k}` is not a field of this query. Use {}.", fields.join(", "))));
    }
    Ok(without_nulls(&obj))
}

/// `pagination` for an answer paged after ClickHouse returns its first offset + limit rows (a
/// funnel's breakdown, paths): within the read limit's rows, or refused as pagination.
pub fn pagination_within_read_limit(v: Option<Value>) -> Result<(u64, u64), ApiError> {
    let (limit, offset) = crate::query::request::pagination(v)?;
    let most = crate::storage::clickhouse::READ_MAX_RESULT_ROWS;
    if offset + limit >= most {
        return Err(ApiError::bad_request(
            "invalid_pagination",
            format!("`pagination.offset` + `pagination.limit` must be under {most} here; narrow the query (a filter, a shorter date_range) to reach later rows."),
        ));
    }
    Ok((limit, offset))
}

/// The shared fields, checked and resolved: the query's zone, else the project's, else UTC.
pub fn common(obj: &Map<String, Value>, project_timezone: Option<&str>, now_ms: i64) -> Result<Common, ApiError> {
    let fs: Vec<Value> = match obj.get("filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => return Err(bad("invalid_filter", format!("`filters` is a list of filters, not `{}`.", short(other)))),
    };
    let filter = filters(&fs)?;
    let (timezone, tz) = match timezone(obj.get("timezone").cloned())? {
        Some(name) => dates::time_zone(Some(&name))?,
        None => dates::time_zone(project_timezone).or_else(|_| dates::time_zone(None))?,
    };
    let date_range = obj.get("date_range").ok_or_else(|| {
        bad("missing_date_range", "`date_range` is required: \"day\", \"7d\", \"30d\", \"month\", ... or [\"2026-11-01\", \"2026-11-07\"].")
    })?;
    let range = dates::resolve(date_range, &tz, now_ms)?;
    let include_bots = include_bots(obj.get("include"))?;
    Ok(Common { filter, timezone, tz, range, include_bots })
}

/// ` AND length(<column>) >= 0` for each visit column the filter reads: always true, it names
/// them outside a lambda, since 18.16 keeps of a subquery only the columns named so and a
/// filter tested inside `arrayFilter(ev -> ...)` reads them from within one.
pub fn name_visit_columns(filter: Option<&Filter>, timezone: &str) -> String {
    filter
        .iter()
        .flat_map(|f| f.dimensions())
        .filter(|d| !d.is_event_level())
        .map(|d| format!(" AND length({}) >= 0", crate::query::sql::column(d, timezone, crate::query::sql::Level::Raw)))
        .collect()
}

/// A span of time: a number and a unit, `m` minutes, `h` hours or `d` days ("30m", "12h",
/// "7d"), from `min` to `max` seconds; None if it is not one (`duration_refused` says why).
pub fn duration(v: &Value, min: u32, max: u32) -> Option<u32> {
    let s = v.as_str()?;
    let unit = match s.chars().last()? {
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let n: u64 = s[..s.len() - 1].parse().ok()?;
    n.checked_mul(unit).filter(|s| (min as u64..=max as u64).contains(s)).map(|s| s as u32)
}

/// What to fix in a `field` that is not a `duration`.
pub fn duration_refused(field: &str, v: &Value, min: u32, max: u32) -> String {
    format!(
        "`{field}` is `{}`; use minutes, hours or days from {} to {}, e.g. \"30m\", \"12h\", \"7d\".",
        short(v),
        spelled(min),
        spelled(max)
    )
}

/// Seconds as the largest whole unit: "90d", "1h", "1m".
fn spelled(secs: u32) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("\"{}d\"", s / 86_400),
        s if s % 3600 == 0 => format!("\"{}h\"", s / 3600),
        s => format!("\"{}m\"", s / 60),
    }
}

fn include_bots(v: Option<&Value>) -> Result<bool, ApiError> {
    let Some(v) = v else { return Ok(false) };
    let refused = || bad("invalid_include", "`include` is {\"bots\": true} or {\"bots\": false}.");
    let obj = without_nulls(v.as_object().ok_or_else(refused)?);
    if obj.keys().any(|k| k != "bots") {
        return Err(refused());
    }
    match obj.get("bots") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(refused()),
    }
}

impl Common {
    /// The events' revenue columns when the filter reads the currency (`sql::visits_with`'s
    /// `extra`: the tuple's 8 and 9, where `event:revenue_currency` is read).
    pub fn revenue_columns(&self) -> &'static [&'static str] {
        match self.filter.as_ref().is_some_and(|f| f.dimensions().contains(&&Dimension::RevenueCurrency)) {
            true => &crate::query::sql::REVENUE,
            false => &[],
        }
    }

    /// Whether these goals or the filter read events' properties (`sql::visits_with` reads
    /// them only then).
    pub fn reads_props<'a>(&self, goals: impl IntoIterator<Item = &'a crate::query::goal::Goal>) -> bool {
        goals.into_iter().any(|g| !g.props.is_empty())
            || self.filter.as_ref().is_some_and(|f| f.dimensions().iter().any(|d| matches!(d, Dimension::Prop(_))))
    }

    /// The visit attributes these dimensions and the filter read (`sql::visits_with` carries
    /// only those).
    pub fn visit_attrs<'a>(&'a self, dims: &'a [Dimension]) -> Vec<(&'static str, &'static str)> {
        crate::query::sql::visit_attrs_for(dims.iter().chain(self.filter.iter().flat_map(|f| f.dimensions())))
    }

    /// The events this query reads, as the Stats API scopes them.
    pub fn scope<'a>(&'a self, database: &'a str, table: &'a str, project_id: &'a str) -> Scope<'a> {
        Scope {
            database,
            table,
            project_id,
            from: self.range.from,
            to: self.range.to,
            timezone: &self.timezone,
            include_bots: self.include_bots,
        }
    }

    /// The shared fields as the answer echoes them, the date range resolved.
    pub fn echo(&self) -> Value {
        json!({
            "date_range": dates::labels(&self.range, &self.tz),
            "timezone": self.timezone,
            "filters": Filter::list_json(self.filter.as_ref()),
            "include": {"bots": self.include_bots},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `null` is a field left out, in every conversion query and for every optional field, as
    /// in `/v1/query` and over MCP: a client that writes its defaults as null gets them.
    #[test]
    fn a_null_field_is_a_field_left_out() {
        use crate::conversions::{attribution, funnel, paths, retention};
        type Check = fn(&[u8]) -> Result<(), ApiError>;
        let endpoints: [(&str, &[&str], Check); 4] = [
            (funnel::request::EXAMPLE, &funnel::request::FIELDS, |b| funnel::request::parse(b, None, 1_796_032_800_000).map(drop)),
            (attribution::request::EXAMPLE, &attribution::request::FIELDS, |b| {
                attribution::request::parse(b, None, 1_796_032_800_000).map(drop)
            }),
            (paths::request::EXAMPLE, &paths::request::FIELDS, |b| paths::request::parse(b, None, 1_796_032_800_000).map(drop)),
            (retention::request::EXAMPLE, &retention::request::FIELDS, |b| retention::request::parse(b, None, 1_796_032_800_000).map(drop)),
        ];
        for (example, fields, parse) in endpoints {
            let base: Map<String, Value> = serde_json::from_str(example).unwrap();
            let taken: Vec<&str> = fields.iter().chain(&SHARED_FIELDS).copied().collect();
            // Inside an object too (review finding: `include.bots: null` was refused).
            let nested = [("include", json!({"bots": null})), ("pagination", json!({"limit": null, "offset": null}))];
            let nulls = taken.iter().map(|f| (*f, Value::Null)).chain(nested.into_iter().filter(|(f, _)| taken.contains(f)));
            for (field, null) in nulls {
                let mut body = base.clone();
                body.insert(field.to_string(), null.clone());
                let got = parse(Value::Object(body.clone()).to_string().as_bytes());
                body.remove(field);
                let absent = parse(Value::Object(body).to_string().as_bytes());
                assert_eq!(got.map_err(|e| e.code), absent.map_err(|e| e.code), "{field}: {null} in {example}");
            }
        }
    }

    #[test]
    fn the_shared_fields_are_checked_as_the_stats_api_checks_them() {
        let ok = object(
            br#"{"steps":[],"date_range":"7d","filters":[["is","visit:country",["DE"]]],"include":{"bots":true}}"#,
            &["steps"],
            "{}",
        )
        .unwrap();
        let c = common(&ok, Some("Europe/Berlin"), 1_796_032_800_000).unwrap();
        assert_eq!((c.timezone.as_str(), c.include_bots), ("Europe/Berlin", true));
        assert_eq!(c.echo()["filters"], json!([["is", "visit:country", ["DE"]]]));
        let cases: [(&[u8], &str); 5] = [
            (b"[1]", "invalid_body"),
            (b"{", "invalid_json"),
            (br#"{"site_id":"x"}"#, "project_from_key"),
            (br#"{"metrics":["visitors"]}"#, "unknown_field"),
            (br#"{"date_range":"7d","include":{"total_rows":true}}"#, "invalid_include"),
        ];
        for (body, code) in cases {
            let e = object(body, &["steps"], "{}").and_then(|o| common(&o, None, 0)).unwrap_err();
            assert_eq!(e.code, code, "{}", String::from_utf8_lossy(body));
        }
        let none = object(br#"{"steps":[]}"#, &["steps"], "{}").unwrap();
        assert_eq!(common(&none, None, 0).unwrap_err().code, "missing_date_range");
        assert_eq!(duration(&json!("1m"), 60, 90 * 86_400), Some(60));
        assert_eq!(duration(&json!("90d"), 60, 90 * 86_400), Some(90 * 86_400));
        for bad in [json!("91d"), json!("59s"), json!("d"), json!("é"), json!(30), json!("99999999999999999999d")] {
            assert_eq!(duration(&bad, 86_400, 90 * 86_400), None, "{bad}");
        }
        assert!(duration_refused("lookback", &json!("91d"), 86_400, 90 * 86_400)
            .contains("`lookback` is `91d`; use minutes, hours or days from \"1d\" to \"90d\""));
        let bad_filter = object(br#"{"date_range":"7d","filters":{"a":1}}"#, &[], "{}").unwrap();
        assert_eq!(common(&bad_filter, None, 0).unwrap_err().code, "invalid_filter");
    }
}
