//! Event time: parse what clients send (RFC 3339 or epoch milliseconds), bound it against the
//! time the edge received it, and format it the way ClickHouse `DateTime` (UTC, seconds) reads it.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// How far in the past a client timestamp may be (offline queues, server backfills).
pub const MAX_PAST_MS: i64 = 30 * 24 * 3600 * 1000;
/// Client clocks run fast; anything later than this ahead of the edge is clamped to the edge time.
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, PartialEq, Eq)]
pub enum TimestampError {
    Unparseable,
    TooOld,
    /// A number that reads as epoch seconds, not milliseconds.
    Seconds,
}

/// Client timestamp (if any) to epoch milliseconds, given the edge receive time.
pub fn resolve(client: Option<&serde_json::Value>, received_ms: i64) -> Result<i64, TimestampError> {
    let ms = match client {
        None | Some(serde_json::Value::Null) => return Ok(received_ms),
        Some(v) => epoch_ms(v).ok_or(TimestampError::Unparseable)?,
    };
    if ms < received_ms - MAX_PAST_MS {
        let as_seconds = ms.saturating_mul(1000);
        let seconds =
            client.is_some_and(|v| v.is_number()) && (received_ms - MAX_PAST_MS..=received_ms + MAX_FUTURE_MS).contains(&as_seconds);
        return Err(if seconds { TimestampError::Seconds } else { TimestampError::TooOld });
    }
    Ok(if ms > received_ms + MAX_FUTURE_MS { received_ms } else { ms })
}

/// A client's time, RFC 3339 text or epoch milliseconds (a fraction, as
/// `performance.timeOrigin + performance.now()` gives, rounded down), as epoch milliseconds;
/// None for anything else.
pub fn epoch_ms(v: &serde_json::Value) -> Option<i64> {
    match v {
        // `as` saturates: a number beyond i64 is far ahead or behind, and bounded as such.
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64)),
        serde_json::Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).ok().map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
        _ => None,
    }
}

/// `YYYY-MM-DD hh:mm:ss` in UTC, what ClickHouse DateTime parses in JSONEachRow on every version.
pub fn clickhouse_datetime(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(epoch_ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap_or_else(|_| "1970-01-01 00:00:00".to_string())
}

/// `clickhouse_datetime`'s text back to epoch milliseconds; None for anything else.
pub fn parse_clickhouse_datetime(text: &str) -> Option<i64> {
    let t = time::PrimitiveDateTime::parse(text, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).ok()?;
    Some(t.assume_utc().unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::UtcOffset;

    #[test]
    fn clickhouse_datetimes_read_back() {
        let ms = now() / 1000 * 1000;
        assert_eq!(parse_clickhouse_datetime(&clickhouse_datetime(ms)), Some(ms));
        assert_eq!(parse_clickhouse_datetime("not a time"), None);
    }

    fn now() -> i64 {
        crate::test_clock::now_ms()
    }

    #[test]
    fn absent_means_received_time() {
        let now = now();
        assert_eq!(resolve(None, now), Ok(now));
        assert_eq!(resolve(Some(&json!(null)), now), Ok(now));
    }

    #[test]
    fn rfc3339_and_epoch_ms() {
        let now = now();
        assert_eq!(resolve(Some(&json!(now - 1000)), now), Ok(now - 1000));
        // An hour ago, written at UTC+01:00 with milliseconds: stored as its UTC second.
        let then = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now - 3_600_000) * 1_000_000).unwrap();
        let text = then.to_offset(UtcOffset::from_hms(1, 0, 0).unwrap()).format(&Rfc3339).unwrap();
        let ms = resolve(Some(&json!(text)), now).unwrap();
        assert_eq!(ms, now - 3_600_000, "{text}");
        assert_eq!(clickhouse_datetime(ms), then.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap());
    }

    /// `performance.timeOrigin + performance.now()` is epoch milliseconds with a fraction.
    #[test]
    fn fractional_epoch_ms() {
        let now = now();
        assert_eq!(resolve(Some(&json!(now as f64 - 1000.25)), now), Ok(now - 1001));
        assert_eq!(resolve(Some(&json!(f64::MAX)), now), Ok(now), "far ahead is clamped, never overflows");
        assert_eq!(resolve(Some(&json!(-1e300)), now), Err(TimestampError::TooOld));
    }

    /// Epoch seconds (what many server languages give) are told apart from an old event, so the
    /// error says what to fix.
    #[test]
    fn epoch_seconds_are_named() {
        let now = now();
        assert_eq!(resolve(Some(&json!(now / 1000)), now), Err(TimestampError::Seconds));
        assert_eq!(resolve(Some(&json!((now / 1000) as f64 + 0.5)), now), Err(TimestampError::Seconds));
        assert_eq!(resolve(Some(&json!(now - MAX_PAST_MS - 1)), now), Err(TimestampError::TooOld));
    }

    #[test]
    fn bounds() {
        let now = now();
        assert_eq!(resolve(Some(&json!("yesterday")), now), Err(TimestampError::Unparseable));
        assert_eq!(resolve(Some(&json!(true)), now), Err(TimestampError::Unparseable));
        assert_eq!(resolve(Some(&json!(now - MAX_PAST_MS - 1)), now), Err(TimestampError::TooOld));
        assert_eq!(resolve(Some(&json!(now + 3_600_000)), now), Ok(now));
        assert_eq!(resolve(Some(&json!(now + 1000)), now), Ok(now + 1000));
    }

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(clickhouse_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(clickhouse_datetime(1_700_000_000_999), "2023-11-14 22:13:20");
    }
}
