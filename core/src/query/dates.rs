//! A query's `date_range`, resolved in its time zone into the UTC seconds the SQL compares
//! `timestamp` with, plus the labels the answer echoes. Named periods are relative to "today"
//! in that zone. Whole-day ranges run from local midnight to local midnight, so a day with a
//! DST change is 23 or 25 hours long, as the calendar says.

use super::request::{Compare, Granularity};
use crate::error::ApiError;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;

/// A resolved range: `[from, to)` in UTC seconds; `days` when it is whole local days (first
/// and last, inclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
    pub days: Option<(Date, Date)>,
}

/// The longest range taken: raw events live at most 365 days, and two years bounds the work.
const MAX_DAYS: i64 = 732;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_date_range", message)
}

/// The zone by its IANA name, and that name as the time zone database spells it (jiff finds
/// names in any case; ClickHouse only in theirs). `Etc/Unknown` is no zone to read days in.
pub fn time_zone(name: Option<&str>) -> Result<(String, TimeZone), ApiError> {
    let name = name.unwrap_or("UTC");
    let refused = || {
        ApiError::bad_request(
            "invalid_timezone",
            format!(
                "`timezone` `{}` is not an IANA time zone; use e.g. \"Europe/Berlin\" or \"UTC\".",
                name.chars().take(64).collect::<String>()
            ),
        )
    };
    let tz = TimeZone::get(name).map_err(|_| refused())?;
    let canonical = tz.iana_name().filter(|n| *n != "Etc/Unknown").map(str::to_string).ok_or_else(refused)?;
    Ok((canonical, tz))
}

fn midnight(d: Date, tz: &TimeZone) -> Result<i64, ApiError> {
    d.to_zoned_datetime(tz.clone()).map(|z| z.timestamp().as_second()).map_err(|_| bad("A date of `date_range` is out of range."))
}

/// Whole local days `first..=last`, at most MAX_DAYS of them (counted as days: a zone whose
/// offset moved makes them longer or shorter than 24 hours).
pub fn days(first: Date, last: Date, tz: &TimeZone) -> Result<Range, ApiError> {
    let r = local_days(first, last, tz)?;
    if i64::from((last - first).get_days()) + 1 > MAX_DAYS {
        return Err(too_long());
    }
    Ok(r)
}

/// `days` without its bound: for a range derived from one that kept it (a comparison a year
/// earlier may hold one 29 February more).
fn local_days(first: Date, last: Date, tz: &TimeZone) -> Result<Range, ApiError> {
    if last < first {
        return Err(bad("`date_range` ends before it starts."));
    }
    let next = last.tomorrow().map_err(|_| bad("A date of `date_range` is out of range."))?;
    Ok(Range { from: midnight(first, tz)?, to: midnight(next, tz)?, days: Some((first, last)) })
}

fn too_long() -> ApiError {
    ApiError::bad_request("date_range_too_long", format!("`date_range` spans more than {MAX_DAYS} days; ask for a shorter one."))
}

fn check_length(r: &Range) -> Result<(), ApiError> {
    if r.to - r.from > MAX_DAYS * 86_400 + 7200 {
        return Err(too_long());
    }
    Ok(())
}

fn parse_date(s: &str) -> Option<Date> {
    if s.len() != 10 {
        return None; // a date-time is not a date
    }
    let d: Date = s.parse().ok()?;
    (2000..=2100).contains(&d.year()).then_some(d)
}

/// `date_range` as the client wrote it, relative to `now_ms` where it is a named period.
/// Periods: `day` (today), `24h`, `7d` `28d` `30d` `91d` (that many days before today, today
/// not included, as Plausible counts them), `month` `year` (from its first day through today),
/// `6mo` `12mo` (the last 6 or 12 calendar months, this one included, through today), `all`
/// (the last 732 days, today included). Pairs: two ISO dates (inclusive, local days) or two
/// RFC 3339 date-times (`[from, to]`, to inclusive to the second).
pub fn resolve(v: &Value, tz: &TimeZone, now_ms: i64) -> Result<Range, ApiError> {
    let now = Timestamp::from_millisecond(now_ms).map_err(|_| bad("The clock is out of range."))?;
    let today = now.to_zoned_datetime(tz.clone()).date();
    let ago = |n: i64| today.checked_sub(n.days()).map_err(|_| bad("out of range"));
    match v {
        Value::String(s) => match s.as_str() {
            "day" => days(today, today, tz),
            "24h" => Ok(Range { from: now.as_second() - 86_400, to: now.as_second() + 1, days: None }),
            "7d" | "28d" | "30d" | "91d" => {
                let n: i64 = s.trim_end_matches('d').parse().unwrap_or(7);
                days(ago(n)?, ago(1)?, tz)
            }
            "month" => days(today.first_of_month(), today, tz),
            "year" => days(today.first_of_year(), today, tz),
            "6mo" | "12mo" => {
                let n: i64 = if s == "6mo" { 5 } else { 11 };
                let first = today.first_of_month().checked_sub(n.months()).map_err(|_| bad("out of range"))?;
                days(first, today, tz)
            }
            "all" => days(ago(MAX_DAYS - 1)?, today, tz),
            other => Err(bad(format!(
                "`date_range` `{}` is not a period; use day, 24h, 7d, 28d, 30d, 91d, month, 6mo, 12mo, year, all, or [from, to].",
                other.chars().take(40).collect::<String>()
            ))),
        },
        Value::Array(pair) if pair.len() == 2 => {
            let (a, b) = (pair[0].as_str().unwrap_or(""), pair[1].as_str().unwrap_or(""));
            if let (Some(first), Some(last)) = (parse_date(a), parse_date(b)) {
                return days(first, last, tz);
            }
            let (from, to) = match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
                (Ok(x), Ok(y)) => (x.as_second(), y.as_second() + 1),
                _ => return Err(bad(
                    "`date_range` pairs are two dates (\"2026-11-01\") or two date-times with an offset (\"2026-11-01T10:00:00+01:00\").",
                )),
            };
            if to <= from {
                return Err(bad("`date_range` ends before it starts."));
            }
            if !(946_684_800..=4_102_444_800).contains(&from) {
                return Err(bad("`date_range` must lie between 2000 and 2100."));
            }
            let r = Range { from, to, days: None };
            check_length(&r)?;
            Ok(r)
        }
        _ => Err(bad("`date_range` is a period such as \"7d\" or a pair [from, to].")),
    }
}

/// The range a comparison is made with: the same length just before (`previous_period`), or
/// the same dates a year earlier (`year_over_year`; 29 February becomes the 28th).
pub fn compared(r: &Range, how: Compare, tz: &TimeZone) -> Result<Range, ApiError> {
    let out = || bad("The compared range is out of range.");
    match (how, r.days) {
        (Compare::PreviousPeriod, Some((first, last))) => {
            let n = (last - first).get_days() as i64 + 1;
            let last = first.yesterday().map_err(|_| out())?;
            local_days(first.checked_sub(n.days()).map_err(|_| out())?, last, tz)
        }
        (Compare::YearOverYear, Some((first, last))) => {
            local_days(first.checked_sub(1.year()).map_err(|_| out())?, last.checked_sub(1.year()).map_err(|_| out())?, tz)
        }
        (Compare::PreviousPeriod, None) => Ok(Range { from: r.from - (r.to - r.from), to: r.from, days: None }),
        (Compare::YearOverYear, None) => {
            let shift = |s: i64| -> Result<i64, ApiError> {
                let z = Timestamp::from_second(s).map_err(|_| out())?.to_zoned_datetime(tz.clone());
                Ok(z.checked_sub(1.year()).map_err(|_| out())?.timestamp().as_second())
            };
            Ok(Range { from: shift(r.from)?, to: shift(r.to)?, days: None })
        }
    }
}

/// The Monday of `d`'s week (weeks start on Monday, as ClickHouse's toMonday).
pub fn monday(d: Date) -> Date {
    d.checked_sub((d.weekday().to_monday_zero_offset() as i64).days()).unwrap_or(d)
}

/// Every bucket of `g` the range touches, labelled as the rows label their time dimension
/// (`sql::time_column`: `YYYY-MM-DD hh:00:00` local hours; days, Mondays and months' first
/// days as dates): Plausible's `include.time_labels`, so a client can show buckets without rows.
/// Hours follow the clock: one set back repeats a label, which is one row, and listed once.
pub fn time_labels(g: Granularity, r: &Range, tz: &TimeZone) -> Vec<String> {
    let local = |s: i64| Timestamp::from_second(s).map(|t| t.to_zoned_datetime(tz.clone()));
    let (Ok(first), Ok(last)) = (local(r.from), local(r.to - 1)) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    let dates = |from: Date, step: jiff::Span| {
        std::iter::successors(Some(from), move |d: &Date| d.checked_add(step).ok()).take_while(move |d| *d <= last.date())
    };
    match g {
        Granularity::Hour => {
            let start = r.from - i64::from(first.minute()) * 60 - i64::from(first.second());
            for s in (start..r.to).step_by(3600) {
                let Ok(z) = local(s) else { break };
                let label = z.strftime("%Y-%m-%d %H:00:00").to_string();
                if out.last() != Some(&label) {
                    out.push(label);
                }
            }
        }
        Granularity::Day => out.extend(dates(first.date(), 1.day()).map(|d| d.to_string())),
        Granularity::Week => out.extend(dates(monday(first.date()), 1.week()).map(|d| d.to_string())),
        Granularity::Month => out.extend(dates(first.date().first_of_month(), 1.month()).map(|d| d.to_string())),
    }
    out
}

/// `[first, last]` as the answer echoes it: local date-times with their offsets, last
/// inclusive to the second.
pub fn labels(r: &Range, tz: &TimeZone) -> [String; 2] {
    let fmt = |s: i64| {
        Timestamp::from_second(s).map(|t| t.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()).unwrap_or_default()
    };
    [fmt(r.from), fmt(r.to - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use serde_json::json;

    /// Every bucket of a range, as the rows label them: 13 days around this year's last Sunday
    /// of October (mid-week to the next month), and that Sunday, when Berlin's clocks go back
    /// (25 hours, 24 labels).
    #[test]
    fn time_labels_list_every_bucket_once() {
        let (_, berlin) = time_zone(Some("Europe/Berlin")).unwrap();
        let year = Timestamp::now().to_zoned_datetime(TimeZone::UTC).year();
        let back = (0..7).map(|i| date(year, 10, 31 - i)).find(|d| d.weekday() == jiff::civil::Weekday::Sunday).unwrap();
        let (first, last) = (back.checked_sub(3.days()).unwrap(), back.checked_add(9.days()).unwrap());
        let days = local_days(first, last, &berlin).unwrap();
        let labels = |g| time_labels(g, &days, &berlin);
        let day_labels = labels(Granularity::Day);
        assert_eq!((day_labels.len(), day_labels[0].clone(), day_labels[12].clone()), (13, first.to_string(), last.to_string()));
        let weeks: Vec<Date> = labels(Granularity::Week).iter().map(|l| l.parse().unwrap()).collect();
        assert_eq!((weeks[0], *weeks.last().unwrap()), (monday(first), monday(last)));
        assert!(weeks.windows(2).all(|w| (w[1] - w[0]).get_days() == 7), "{weeks:?}");
        assert_eq!(labels(Granularity::Month), [format!("{year}-10-01"), format!("{year}-11-01")]);
        let sunday = local_days(back, back, &berlin).unwrap();
        let hours = time_labels(Granularity::Hour, &sunday, &berlin);
        assert_eq!((sunday.to - sunday.from, hours.len()), (25 * 3600, 24));
        assert_eq!(
            [&hours[0], &hours[2], &hours[23]],
            [&format!("{back} 00:00:00"), &format!("{back} 02:00:00"), &format!("{back} 23:00:00")]
        );
        // A date-time range starting mid-hour, in a zone half an hour off.
        let (_, india) = time_zone(Some("Asia/Kolkata")).unwrap();
        let z = Timestamp::from_second(days.from).unwrap().to_zoned_datetime(india.clone());
        let t = days.from - i64::from(z.minute()) * 60 - i64::from(z.second()) + 30 * 60 + 17; // hh:30:17 local
        let odd = Range { from: t, to: t + 2 * 3600, days: None };
        let hour = |s: i64| Timestamp::from_second(s).unwrap().to_zoned_datetime(india.clone()).strftime("%Y-%m-%d %H:00:00").to_string();
        assert_eq!(time_labels(Granularity::Hour, &odd, &india), [hour(t), hour(t + 3600), hour(t + 7200)]);
    }

    /// `all` is the last 732 local days, whatever the zone's offsets did within them (Casey
    /// moved from +11 to +8, so those days are 3 hours longer than 732 × 24).
    #[test]
    fn all_is_taken_in_every_zone() {
        let (_, casey) = time_zone(Some("Antarctica/Casey")).unwrap();
        let r = resolve(&json!("all"), &casey, 1_704_110_400_000).unwrap();
        let (first, last) = r.days.unwrap();
        assert_eq!((last - first).get_days() + 1, MAX_DAYS as i32);
    }

    /// A compared range is derived, not asked for: a year earlier it may hold a 29 February
    /// more (733 days), and it is still taken.
    #[test]
    fn a_compared_range_is_never_too_long() {
        let utc = time_zone(None).unwrap().1;
        let r = days(date(2024, 11, 29), date(2026, 11, 30), &utc).unwrap();
        let then = compared(&r, Compare::YearOverYear, &utc).unwrap();
        assert_eq!(then.days, Some((date(2023, 11, 29), date(2025, 11, 30))));
        assert_eq!(then.to - then.from, 733 * 86_400);
        let r = days(date(2023, 11, 29), date(2025, 11, 30), &utc);
        assert_eq!(r.unwrap_err().code, "date_range_too_long", "733 days asked for");
    }

    fn tz(name: &str) -> TimeZone {
        time_zone(Some(name)).unwrap().1
    }

    /// 10:00 UTC on the day `n` days after the run's own today (UTC), in milliseconds.
    fn ten_utc(n: i64) -> i64 {
        let today = Timestamp::now().to_zoned_datetime(TimeZone::UTC).date();
        let day = today.checked_add(n.days()).unwrap();
        day.to_zoned_datetime(TimeZone::UTC).unwrap().timestamp().as_millisecond() + 10 * 3_600_000
    }

    fn today_utc(now_ms: i64) -> Date {
        Timestamp::from_millisecond(now_ms).unwrap().to_zoned_datetime(TimeZone::UTC).date()
    }

    /// The first of the month `back` months before `d`'s, by month arithmetic of its own.
    fn first_of_month_back(d: Date, back: i32) -> Date {
        let m = d.year() as i32 * 12 + d.month() as i32 - 1 - back;
        date(m.div_euclid(12) as i16, (m.rem_euclid(12) + 1) as i8, 1)
    }

    /// The last Sunday of `month` in `year` (Europe/Berlin changes its clocks on it).
    fn last_sunday(year: i16, month: i8) -> Date {
        let mut d = date(year, month, 1).last_of_month();
        while d.weekday() != jiff::civil::Weekday::Sunday {
            d = d.yesterday().unwrap();
        }
        d
    }

    #[test]
    fn named_periods_count_from_today_in_the_zone_on_every_day_of_a_year() {
        let (utc, auckland, kiritimati) = (tz("UTC"), tz("Pacific/Auckland"), tz("Pacific/Kiritimati"));
        for n in 0..366 {
            let now = ten_utc(n);
            let today = today_utc(now);
            let days_of = |period: &str, zone: &TimeZone| resolve(&json!(period), zone, now).unwrap().days.unwrap();
            let before = |k: i64| today.checked_sub(k.days()).unwrap();
            assert_eq!(days_of("day", &utc), (today, today));
            assert_eq!(days_of("7d", &utc), (before(7), before(1)), "{today}");
            assert_eq!(days_of("30d", &utc), (before(30), before(1)), "{today}");
            assert_eq!(days_of("month", &utc), (first_of_month_back(today, 0), today), "{today}");
            assert_eq!(days_of("6mo", &utc), (first_of_month_back(today, 5), today), "{today}");
            assert_eq!(days_of("12mo", &utc), (first_of_month_back(today, 11), today), "{today}");
            assert_eq!(days_of("year", &utc), (date(today.year(), 1, 1), today), "{today}");
            // At 10:00 UTC it is 22:00 or 23:00 the same day in Auckland (+12, +13 in its
            // summer) and already the next day on Kiritimati (+14, no DST).
            assert_eq!(days_of("day", &auckland), (today, today), "{today}");
            let tomorrow = today.tomorrow().unwrap();
            assert_eq!(days_of("day", &kiritimati), (tomorrow, tomorrow), "{today}");
            let h = resolve(&json!("24h"), &utc, now).unwrap();
            assert_eq!((h.to - h.from, h.days, h.to), (86_401, None, now / 1000 + 1));
        }
    }

    #[test]
    fn days_follow_the_local_calendar_across_dst() {
        let berlin = tz("Europe/Berlin");
        let now = ten_utc(0);
        let year = today_utc(now).year();
        // The last Sunday of October: clocks go back, the day has 25 hours.
        let autumn = last_sunday(year, 10).to_string();
        let r = resolve(&json!([autumn, autumn]), &berlin, now).unwrap();
        assert_eq!(r.to - r.from, 25 * 3600);
        assert_eq!(labels(&r, &berlin), [format!("{autumn}T00:00:00+02:00"), format!("{autumn}T23:59:59+01:00")]);
        // The last Sunday of March: clocks go forward, 23 hours.
        let spring = last_sunday(year, 3).to_string();
        let r = resolve(&json!([spring, spring]), &berlin, now).unwrap();
        assert_eq!(r.to - r.from, 23 * 3600);
        // Kathmandu's midnight (+5:45) is not on the hour in UTC.
        let day = today_utc(now).to_string();
        let r = resolve(&json!([day, day]), &tz("Asia/Kathmandu"), now).unwrap();
        assert_eq!(r.from % 3600, 15 * 60);
    }

    #[test]
    fn pairs_and_comparisons_on_every_day_of_a_year() {
        let utc = tz("UTC");
        for n in 0..366 {
            let now = ten_utc(n);
            let today = today_utc(now);
            let before = |k: i64| today.checked_sub(k.days()).unwrap();
            let r = resolve(&json!([format!("{today}T10:00:00+01:00"), format!("{today}T10:59:59Z")]), &utc, now).unwrap();
            assert_eq!(r.to - r.from, 2 * 3600);
            assert_eq!(compared(&r, Compare::PreviousPeriod, &utc).unwrap().to, r.from);
            let week = resolve(&json!("7d"), &utc, now).unwrap();
            let prev = compared(&week, Compare::PreviousPeriod, &utc).unwrap();
            assert_eq!(prev.days, Some((before(14), before(8))), "{today}");
            assert_eq!(prev.to, week.from);
            let yoy = compared(&week, Compare::YearOverYear, &utc).unwrap().days.unwrap();
            for (was, is) in [(yoy.0, before(7)), (yoy.1, before(1))] {
                // The same month and day a year before; 29 February becomes the 28th.
                let leap_day = (is.month(), is.day()) == (2, 29);
                let want = date(is.year() - 1, is.month(), if leap_day { 28 } else { is.day() });
                assert_eq!(was, want, "{today}");
            }
        }
        let next_leap_year = (today_utc(ten_utc(0)).year()..).find(|y| date(*y, 3, 1).yesterday().unwrap().day() == 29).unwrap();
        let leap = date(next_leap_year, 2, 29).to_string();
        let leap = resolve(&json!([leap, leap]), &utc, ten_utc(0)).unwrap();
        let back = date(next_leap_year - 1, 2, 28);
        assert_eq!(compared(&leap, Compare::YearOverYear, &utc).unwrap().days, Some((back, back)));
    }

    #[test]
    fn bad_ranges_say_what_to_send() {
        let utc = tz("UTC");
        let now = ten_utc(0);
        let today = today_utc(now);
        let day = |back: i64| today.checked_sub(back.days()).unwrap().to_string();
        for v in [
            json!("8d"),
            json!([day(0), day(6)]),
            json!(["x", "y"]),
            json!(7),
            json!(["1990-01-01", "1990-01-02"]),
            json!([format!("{}T10:00:00", day(1)), format!("{}T10:00:00", day(0))]),
        ] {
            let e = resolve(&v, &utc, now).unwrap_err();
            assert_eq!(e.code, "invalid_date_range", "{v}");
            assert!(e.message.contains("date_range"), "{e}");
        }
        assert_eq!(resolve(&json!([day(800), day(0)]), &utc, now).unwrap_err().code, "date_range_too_long");
        assert!(resolve(&json!([day(731), day(0)]), &utc, now).is_ok(), "732 days are taken");
        assert_eq!(time_zone(Some("Mars/Olympus")).unwrap_err().code, "invalid_timezone");
        assert_eq!(time_zone(Some("Etc/Unknown")).unwrap_err().code, "invalid_timezone");
        // The review's case: a name in another case reached ClickHouse, which knows only the
        // database's spelling (503). It is spelled the database's way now.
        assert_eq!(time_zone(Some("europe/berlin")).unwrap().0, "Europe/Berlin");
        assert_eq!(time_zone(Some("utc")).unwrap().0, "UTC");
        assert_eq!(time_zone(None).unwrap().0, "UTC");
    }
}
