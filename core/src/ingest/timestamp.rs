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
}

/// Client timestamp (if any) to epoch milliseconds, given the edge receive time.
pub fn resolve(client: Option<&serde_json::Value>, received_ms: i64) -> Result<i64, TimestampError> {
    let ms = match client {
        None | Some(serde_json::Value::Null) => return Ok(received_ms),
        Some(v) => epoch_ms(v).ok_or(TimestampError::Unparseable)?,
    };
    if ms < received_ms - MAX_PAST_MS {
        return Err(TimestampError::TooOld);
    }
    Ok(if ms > received_ms + MAX_FUTURE_MS { received_ms } else { ms })
}

/// A client's time, RFC 3339 text or epoch milliseconds, as epoch milliseconds; None for
/// anything else.
pub fn epoch_ms(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).ok().map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
        _ => None,
    }
}

/// `YYYY-MM-DD hh:mm:ss` in UTC, what ClickHouse DateTime parses in JSONEachRow on every version.
pub fn clickhouse_datetime(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(epoch_ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap_or_else(|_| "1970-01-01 00:00:00".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18T...

    #[test]
    fn absent_means_received_time() {
        assert_eq!(resolve(None, NOW), Ok(NOW));
        assert_eq!(resolve(Some(&json!(null)), NOW), Ok(NOW));
    }

    #[test]
    fn rfc3339_and_epoch_ms() {
        assert_eq!(resolve(Some(&json!(NOW - 1000)), NOW), Ok(NOW - 1000));
        let s = json!("2026-11-18T09:46:39.500+01:00");
        let ms = resolve(Some(&s), 1_795_466_000_000).unwrap();
        assert_eq!(clickhouse_datetime(ms), "2026-11-18 08:46:39");
    }

    #[test]
    fn bounds() {
        assert_eq!(resolve(Some(&json!("yesterday")), NOW), Err(TimestampError::Unparseable));
        assert_eq!(resolve(Some(&json!(true)), NOW), Err(TimestampError::Unparseable));
        assert_eq!(resolve(Some(&json!(NOW - MAX_PAST_MS - 1)), NOW), Err(TimestampError::TooOld));
        assert_eq!(resolve(Some(&json!(NOW + 3_600_000)), NOW), Ok(NOW));
        assert_eq!(resolve(Some(&json!(NOW + 1000)), NOW), Ok(NOW + 1000));
    }

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(clickhouse_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(clickhouse_datetime(1_700_000_000_999), "2023-11-14 22:13:20");
    }
}
