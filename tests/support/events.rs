//! Events as the read-side tests write them straight into ClickHouse: their shape, one row's
//! JSON, and a calendar anchor (the last DST change) laid out from the run's clock.

use super::ch_time;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::json;

#[derive(Clone, Debug)]
pub struct Ev {
    pub project: &'static str,
    pub id: String,
    pub t: i64,
    pub pageview: bool,
    pub name: String,
    pub host: String,
    pub path: String,
    pub props: Vec<(String, String)>,
    pub aid: String,
    pub attrs: [String; 15],
    pub bot: bool,
}

/// The visit-level attributes, in the order of the row's columns below.
pub const ATTRS: [&str; 15] = [
    "source",
    "medium",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "click_id_type",
    "country",
    "region",
    "city",
    "browser",
    "os",
    "device_type",
];

/// The most recent last-Sunday-of-October (Europe/Berlin's clocks go back) at least three days
/// before today: a fixed fact of the calendar relative to the run's clock, never a pinned date.
pub fn dst_day(today: Date) -> Date {
    for year in [today.year(), today.year() - 1] {
        let mut d = jiff::civil::date(year, 10, 31);
        while d.weekday() != jiff::civil::Weekday::Sunday {
            d = d.yesterday().unwrap();
        }
        if d < today.checked_sub(3.days()).unwrap() {
            return d;
        }
    }
    unreachable!()
}

/// The zone whose DST change the read-side tests lay their days around.
pub const ZONE: &str = "Europe/Berlin";

/// Local days around the last DST change in [`ZONE`] (see [`dst_day`]), laid out from the run's
/// clock: `first..=last`, and the same days as Unix seconds, `from..to`.
#[derive(Clone, Copy)]
pub struct DstDays {
    pub dst: Date,
    pub first: Date,
    pub last: Date,
    pub from: i64,
    pub to: i64,
}

impl DstDays {
    /// From `before` days before the DST day to `after` days after it, for the run's today.
    pub fn around(before: i64, after: i64) -> DstDays {
        DstDays::from_today(Timestamp::now().to_zoned_datetime(zone()).date(), before, after)
    }

    /// The same for any `today` (a layout test runs it for every day of a year).
    pub fn from_today(today: Date, before: i64, after: i64) -> DstDays {
        let dst = dst_day(today);
        let (first, last) = (dst.checked_sub(before.days()).unwrap(), dst.checked_add(after.days()).unwrap());
        DstDays { dst, first, last, from: midnight(first), to: midnight(last.tomorrow().unwrap()) }
    }
}

/// The Unix second at which `day` starts in [`ZONE`].
pub fn midnight(day: Date) -> i64 {
    day.to_zoned_datetime(zone()).unwrap().timestamp().as_second()
}

fn zone() -> TimeZone {
    TimeZone::get(ZONE).unwrap()
}

pub fn row_json(e: &Ev) -> String {
    let mut v = json!({
        "project_id": e.project, "event_id": e.id, "timestamp": ch_time(e.t), "received_at": ch_time(e.t),
        "event_type": if e.pageview { "pageview" } else { "custom" }, "event_name": e.name, "anonymous_id": e.aid,
        "url_host": e.host, "url_path": e.path, "url_query": "", "url_fragment": "", "title": "", "referrer_host": "",
        "is_bot": e.bot as u8, "click_id": "", "prop_keys": e.props.iter().map(|p| &p.0).collect::<Vec<_>>(),
        "prop_values": e.props.iter().map(|p| &p.1).collect::<Vec<_>>(), "key_kind": "secret", "retention_days": 365,
    });
    for (k, val) in ATTRS.iter().zip(&e.attrs) {
        v[*k] = json!(val);
    }
    v.to_string()
}
