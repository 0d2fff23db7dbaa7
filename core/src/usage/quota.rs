//! A project's monthly event quota. Billable events are stored, non-bot events (`report`),
//! counted per UTC calendar month. Past the quota, events are still stored by default and
//! usage shows the overage; with `hard_cap` on, the edge refuses them with 429
//! `quota_exceeded` until the month ends.
//!
//! The edge never counts to decide this. The batch writer, after storing a project's events,
//! counts its month so far (at most once a minute per project and isolate) and, when a capped
//! project has reached its quota, writes a flag (`reached_key`, naming the quota it was reached
//! against) that the edge reads like a key record (cached up to a minute), with the quota. So
//! the cap takes hold within about a minute of being reached, and the events of that minute
//! are stored and show as overage; a raised quota lifts it as soon as the edge reads it.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month, OffsetDateTime};

/// A project's quota, kept in KV `KEYS` under `record_key` beside its keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Billable events a month; None: no quota.
    pub monthly_events: Option<u64>,
    /// Refuse events past the quota (429 quota_exceeded) instead of storing them as overage.
    #[serde(default)]
    pub hard_cap: bool,
}

pub const MAX_MONTHLY_EVENTS: u64 = 1_000_000_000_000;

pub fn record_key(project_id: &str) -> String {
    format!("quota:{project_id}")
}

/// Set (value: the month, `YYYY-MM`) while a capped project is over its quota.
pub fn reached_key(project_id: &str) -> String {
    format!("quota_reached:{project_id}")
}

/// The body of `PUT /admin/projects/{id}/quota`: `{"monthly_events": N | null, "hard_cap": bool}`.
pub fn parse(body: &[u8]) -> Result<Quota, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_quota", m);
    let send = "Send {\"monthly_events\": 1000000, \"hard_cap\": false} (monthly_events null for no quota)";
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(format!("{send}: {e}")))?;
    // Said, not left out: a body without it would otherwise remove the quota unasked.
    if v.get("monthly_events").is_none() {
        return Err(bad(format!("{send}: `monthly_events` is required, null for no quota.")));
    }
    let q: Quota = serde_json::from_value(v).map_err(|e| bad(format!("{send}: {e}")))?;
    match q.monthly_events {
        Some(n) if !(1..=MAX_MONTHLY_EVENTS).contains(&n) => {
            Err(bad(format!("`monthly_events` is 1 to {MAX_MONTHLY_EVENTS}, or null for no quota.")))
        }
        None if q.hard_cap => Err(bad("`hard_cap` needs a `monthly_events` quota to cap at.".into())),
        _ => Ok(q),
    }
}

/// The UTC calendar month `now_ms` falls in: its first day, its last, and `YYYY-MM`.
pub fn month(now_ms: i64) -> (Date, Date, String) {
    let today = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).map(|t| t.date()).unwrap_or(Date::MIN);
    let first = today.replace_day(1).unwrap_or(today);
    let next = if first.month() == Month::December {
        Date::from_calendar_date(first.year() + 1, Month::January, 1)
    } else {
        Date::from_calendar_date(first.year(), first.month().next(), 1)
    }
    .unwrap_or(first);
    (first, next - Duration::days(1), format!("{:04}-{:02}", first.year(), first.month() as u8))
}

/// Seconds from `now_ms` to the end of its UTC month (at least 1).
pub fn seconds_left_in_month(now_ms: i64) -> u64 {
    let (_, last, _) = month(now_ms);
    let end = (last + Duration::days(1)).midnight().assume_utc().unix_timestamp();
    (end - now_ms.div_euclid(1000)).max(1) as u64
}

/// Where a project stands against its quota this month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub month: String,
    pub monthly_events: Option<u64>,
    pub hard_cap: bool,
    /// Billable events so far this month.
    pub used: u64,
    pub remaining: Option<u64>,
    pub overage: u64,
    /// Whether events are being refused.
    pub capped: bool,
}

pub fn status(q: &Quota, used: u64, month: String) -> Status {
    let limit = q.monthly_events;
    Status {
        month,
        monthly_events: limit,
        hard_cap: q.hard_cap,
        used,
        remaining: limit.map(|l| l.saturating_sub(used)),
        overage: limit.map_or(0, |l| used.saturating_sub(l)),
        capped: is_reached(q, used),
    }
}

/// Whether a capped project must refuse events now.
pub fn is_reached(q: &Quota, used: u64) -> bool {
    q.hard_cap && q.monthly_events.is_some_and(|l| used >= l)
}

/// What the batch writer sets when a capped project has reached its quota: the month, and the
/// quota it was reached against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub month: String,
    pub monthly_events: u64,
}

/// The flag's value for a capped quota reached in `now_ms`'s month.
pub fn flag_value(q: &Quota, now_ms: i64) -> String {
    let flag = Flag { month: month(now_ms).2, monthly_events: q.monthly_events.unwrap_or(0) };
    serde_json::to_string(&flag).unwrap_or_default()
}

/// Whether a flag refuses events now: set this month, against the quota as it stands (a quota
/// raised, or its cap turned off, since the flag was set no longer refuses, whatever a
/// lagging reader wrote; a new month starts clear).
pub fn flag_refuses(value: &str, q: &Quota, now_ms: i64) -> bool {
    let Ok(flag) = serde_json::from_str::<Flag>(value) else { return false };
    q.hard_cap && q.monthly_events == Some(flag.monthly_events) && flag.month == month(now_ms).2
}

/// The refusal, with Retry-After to the month's end.
pub fn exceeded() -> ApiError {
    ApiError::new(
        429,
        "quota_exceeded",
        "This project has used its monthly event quota and its hard cap is on, so events are refused until the month ends (UTC). \
         Raise the quota or turn the cap off (PUT /admin/projects/{id}/quota, or `keys quota`), or wait for the next month.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_clock::now_ms;

    #[test]
    fn bodies_are_checked() {
        assert_eq!(parse(br#"{"monthly_events": 10, "hard_cap": true}"#).unwrap(), Quota { monthly_events: Some(10), hard_cap: true });
        assert_eq!(parse(br#"{"monthly_events": null}"#).unwrap(), Quota::default());
        for bad in [&br#"{"monthly_events": 0}"#[..], br#"{"hard_cap": true}"#, br#"{"monthly": 5}"#, b"[]", br#"{"monthly_events": -1}"#] {
            assert_eq!(parse(bad).unwrap_err().code, "invalid_quota", "{}", String::from_utf8_lossy(bad));
        }
        // A body that does not say the quota never removes it: no quota is an explicit null.
        for silent in [&br#"{"hard_cap": false}"#[..], b"{}"] {
            let e = parse(silent).unwrap_err();
            assert!(e.code == "invalid_quota" && e.message.contains("null"), "{}: {e:?}", String::from_utf8_lossy(silent));
        }
    }

    #[test]
    fn a_flag_refuses_only_against_the_quota_it_was_reached_on() {
        let now = now_ms();
        let q = Quota { monthly_events: Some(5), hard_cap: true };
        let flag = flag_value(&q, now);
        assert!(flag_refuses(&flag, &q, now));
        assert!(!flag_refuses(&flag, &Quota { monthly_events: Some(6), hard_cap: true }, now), "raised");
        assert!(!flag_refuses(&flag, &Quota { monthly_events: Some(5), hard_cap: false }, now), "cap off");
        assert!(!flag_refuses(&flag, &Quota::default(), now), "no quota");
        assert!(!flag_refuses("2026-12", &q, now), "an unreadable flag refuses nothing");
    }

    #[test]
    fn overage_is_shown_and_only_a_hard_cap_refuses() {
        let soft = Quota { monthly_events: Some(100), hard_cap: false };
        let s = status(&soft, 130, "m".into());
        assert_eq!((s.remaining, s.overage, s.capped), (Some(0), 30, false));
        let hard = Quota { hard_cap: true, ..soft.clone() };
        assert!(!is_reached(&hard, 99));
        assert!(is_reached(&hard, 100));
        assert!(!is_reached(&Quota::default(), u64::MAX));
        assert_eq!(status(&Quota::default(), 5, "m".into()).remaining, None);
    }

    /// Month layout on every day of a year from today: the first day starts it, the last ends
    /// it, the flag of one month never applies in the next, and the time left is under 32 days.
    #[test]
    fn months_are_laid_out_right_on_every_day_of_the_year() {
        let start = now_ms() - now_ms().rem_euclid(86_400_000);
        for d in 0..366 {
            for at in [0, 86_400_000 - 1000] {
                let t = start + d * 86_400_000 + at;
                let (first, last, name) = month(t);
                let today = OffsetDateTime::from_unix_timestamp(t / 1000).unwrap().date();
                assert!(first <= today && today <= last && first.day() == 1, "{today}");
                assert_eq!((last + Duration::days(1)).day(), 1, "{today}: the last day is the month's last");
                assert_eq!(name, format!("{:04}-{:02}", today.year(), today.month() as u8));
                let q = Quota { monthly_events: Some(5), hard_cap: true };
                let flag = flag_value(&q, t);
                assert!(flag.contains(&name) && flag_refuses(&flag, &q, t));
                let left = seconds_left_in_month(t);
                assert!((1..=31 * 86_400).contains(&left), "{today}: {left}");
                assert!(!flag_refuses(&flag, &q, t + left as i64 * 1000), "{today}: the flag ends with its month");
            }
        }
    }
}
