//! The read side against an oracle. Events of a known structure (visitors, visits split by
//! 30-minute gaps, bounces, entry and exit pages, sources, UTMs, countries, devices, custom
//! events with properties, bots, anonymous server events, timestamps across a DST change in
//! the queried zone) are written straight into ClickHouse for two projects. The expected
//! answers are computed here, from the generated events, without the SQL; then the read
//! Worker (real HTTP into `wrangler dev`) is asked for every metric by every dimension, each
//! filter operator, and both comparisons, and must match exactly. The other project's
//! events must never show. Run by scripts/test (`cargo test -- --include-ignored`).

mod support;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use millimetric_tools::dev_keys::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::events::{midnight, row_json, DstDays, Ev, ZONE};
use support::rng::Rng;
use support::Stack;

const VISIT_DIMS: [&str; 15] = [
    "visit:source",
    "visit:medium",
    "visit:referrer",
    "visit:utm_source",
    "visit:utm_medium",
    "visit:utm_campaign",
    "visit:utm_term",
    "visit:utm_content",
    "visit:click_id_type",
    "visit:country",
    "visit:region",
    "visit:city",
    "visit:browser",
    "visit:os",
    "visit:device",
];

/// Where the test's events lie, in local (Berlin) days, all laid out from one anchor: today.
/// A pure function of it, so `layout_keeps_its_windows_apart_on_every_day` runs it for every
/// day of a year.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// The DST change the raw oracle's week straddles.
    dst: Date,
    /// The queried week, three days either side of `dst`.
    first: Date,
    last: Date,
    /// Its previous period (events from here on) and the same week a year before.
    prev_first: Date,
    yoy_first: Date,
    yoy_last: Date,
    /// The 30-day events that the rollup keeps and retention drops, and the range asked of
    /// the aggregates after that.
    old_first: Date,
    old_last: Date,
    old_query: (Date, Date),
    /// The first day with raw events when the daily job runs: the job must reach yesterday
    /// from there in one run.
    first_raw_at_cron: Date,
}

/// The 30-day events end this many days before today, unless that meets the raw oracle's weeks.
const OLD_ENDS_DAYS_AGO: i64 = 46;

fn layout(today: Date) -> Layout {
    let DstDays { dst, first, last, .. } = DstDays::from_today(today, 3, 3);
    let prev_first = first.checked_sub(7.days()).unwrap();
    // Thirty days of events; when they would meet the raw oracle's two weeks, they end just
    // before those instead.
    let mut old_last = today.checked_sub(OLD_ENDS_DAYS_AGO.days()).unwrap();
    let span = |end: Date| (end.checked_sub(29.days()).unwrap(), end);
    if !apart(span(old_last), (prev_first, last)) {
        old_last = prev_first.checked_sub(3.days()).unwrap();
    }
    let (old_first, old_last) = span(old_last);
    Layout {
        dst,
        first,
        last,
        prev_first,
        yoy_first: first.checked_sub(1.year()).unwrap(),
        yoy_last: last.checked_sub(1.year()).unwrap(),
        old_first,
        old_last,
        old_query: (old_first.checked_add(3.days()).unwrap(), old_last.checked_sub(2.days()).unwrap()),
        // The test empties the events table before it inserts the 30-day events.
        first_raw_at_cron: old_first,
    }
}

/// Days from `a` to `b` (negative when `b` comes first).
fn days_between(a: Date, b: Date) -> i64 {
    (b - a).get_days() as i64
}

/// Two local-day windows (first and last day) do not meet: two whole days lie between them.
/// Events spill a few hours past a window's end (a visit goes on), and UTC days straddle
/// local ones.
fn apart((a1, a2): (Date, Date), (b1, b2): (Date, Date)) -> bool {
    days_between(a2, b1) > 2 || days_between(b2, a1) > 2
}

/// What must hold of the layout for `today`, or the first thing that does not.
fn check_layout(today: Date) -> Result<(), String> {
    let l = layout(today);
    let raw_kept = [("the queried week and its previous period", (l.prev_first, l.last)), ("the year before", (l.yoy_first, l.yoy_last))];
    for (name, w) in raw_kept {
        if !apart(w, (l.old_first, l.old_last)) {
            return Err(format!("{name} {w:?} meets the 30-day events ({}, {}): {l:?}", l.old_first, l.old_last));
        }
        if !apart(w, l.old_query) {
            return Err(format!("{name} {w:?} meets the range asked of the aggregates {:?}: {l:?}", l.old_query));
        }
    }
    if days_between(l.last, today) < 1 {
        return Err(format!("the queried week must lie before today: {l:?}"));
    }
    if l.old_query.0 < l.old_first || l.old_query.1 > l.old_last {
        return Err(format!("the aggregates' range lies outside the 30-day events: {l:?}"));
    }
    // Retention drops whole UTC weeks: the last 30-day event's (a visit spills past the local
    // day, into the next UTC day) must go, on the UTC day that may still be yesterday's.
    let utc =
        |d: Date| time::Date::from_calendar_date(d.year() as i32, time::Month::try_from(d.month() as u8).unwrap(), d.day() as u8).unwrap();
    let last_utc_day = utc(l.old_last.tomorrow().unwrap());
    let week = millimetric_core::storage::retention::Partition {
        retention_days: 30,
        week_start: last_utc_day - time::Duration::days(last_utc_day.weekday().number_days_from_monday().into()),
    };
    if millimetric_core::storage::retention::expired(&[week], utc(today.yesterday().unwrap())).is_empty() {
        return Err(format!("30-day events that retention would keep (the week of {last_utc_day}): {l:?}"));
    }
    let to_roll = days_between(l.first_raw_at_cron, today);
    if to_roll > millimetric_core::storage::rollup::MAX_DAYS_PER_RUN as i64 {
        return Err(format!("the daily job cannot reach yesterday in one run ({to_roll} days from {}): {l:?}", l.first_raw_at_cron));
    }
    Ok(())
}

#[test]
fn layout_keeps_its_windows_apart_on_every_day() {
    let today = Timestamp::now().to_zoned_datetime(TimeZone::get(ZONE).unwrap()).date();
    let mut leap = today.year();
    while !jiff::civil::date(leap, 1, 1).in_leap_year() {
        leap += 1;
    }
    let year_from_today = (0..366).map(|n| today.checked_add(n.days()).unwrap());
    let leap_year = (0..366).map(|n| jiff::civil::date(leap, 1, 1).checked_add(n.days()).unwrap());
    let broken: Vec<String> = year_from_today.chain(leap_year).filter_map(|d| check_layout(d).err().map(|e| format!("{d}: {e}"))).collect();
    let mut why: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &broken {
        *why.entry(b[12..].split([':', '(']).next().unwrap_or("")).or_default() += 1;
    }
    assert!(
        broken.is_empty(),
        "{} of 732 days break the layout: {why:?}, e.g.\n{}",
        broken.len(),
        broken.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn attrs(rng: &mut Rng) -> [String; 15] {
    let source = rng.pick(&["", "Google", "Hacker News", "ChatGPT", "Perplexity", "Newsletter"]);
    let medium = match source {
        "" => "direct",
        "ChatGPT" | "Perplexity" => "ai",
        "Newsletter" => "email",
        _ => "referral",
    };
    let referrer = if source.is_empty() { String::new() } else { format!("https://{}.example/", source.to_lowercase().replace(' ', "")) };
    let utm = rng.below_u64(3) == 0;
    let (country, region, city) =
        [("DE", "Berlin", "Berlin"), ("GB", "England", "London"), ("US", "New York", "New York"), ("", "", "")][rng.below_u64(4) as usize];
    [
        source.into(),
        medium.into(),
        referrer,
        if utm { rng.pick(&["nl", "hn"]).into() } else { String::new() },
        if utm { "email".into() } else { String::new() },
        if utm { rng.pick(&["launch", "black-friday"]).into() } else { String::new() },
        if utm && rng.below_u64(2) == 0 { "analytics".into() } else { String::new() },
        if utm && rng.below_u64(2) == 0 { "banner".into() } else { String::new() },
        rng.pick(&["", "", "gclid", "fbclid"]).into(),
        country.into(),
        region.into(),
        city.into(),
        rng.pick(&["Chrome", "Safari", "Firefox"]).into(),
        rng.pick(&["Windows", "macOS", "iOS", "Android"]).into(),
        rng.pick(&["desktop", "mobile", "tablet"]).into(),
    ]
}

/// Visitors of one project between `start` and `end` (UTC seconds).
fn generate(project: &'static str, rng: &mut Rng, start: i64, end: i64, visitors: usize, out: &mut Vec<Ev>) {
    let pages = ["/", "/pricing", "/blog/a", "/blog/b", "/docs"];
    for v in 0..visitors {
        let aid = format!("{project}-v{v}");
        let bot = rng.below_u64(10) == 0;
        let mut t = start + rng.below_u64((end - start) as u64 / 2) as i64;
        for _visit in 0..1 + rng.below_u64(3) {
            if t >= end {
                break;
            }
            let first_attrs = attrs(rng);
            let n = 1 + rng.below_u64(5);
            for i in 0..n {
                let custom = (i > 0 || rng.below_u64(6) == 0) && rng.below_u64(3) == 0;
                let name = if custom { rng.pick(&["signup", "purchase"]).to_string() } else { "pageview".to_string() };
                let props = if custom && rng.below_u64(4) != 0 {
                    vec![("plan".to_string(), rng.pick(&["free", "pro"]).to_string())]
                } else {
                    vec![]
                };
                out.push(Ev {
                    project,
                    id: format!("{aid}-e{}", out.len()),
                    t,
                    pageview: !custom,
                    name,
                    host: rng.pick(&["example.com", "docs.example.com"]).into(),
                    path: rng.pick(&pages).into(),
                    props,
                    aid: aid.clone(),
                    // Later events of a visit carry other attributes: the visit's are its first's.
                    attrs: if i == 0 { first_attrs.clone() } else { attrs(rng) },
                    bot,
                });
                // Within a visit: under 30 minutes, sometimes 1799 s exactly.
                t += if rng.below_u64(8) == 0 { 1799 } else { 5 + rng.below_u64(1500) as i64 };
            }
            // Between visits: 30 minutes or more, sometimes exactly 1800 s.
            t += if rng.below_u64(5) == 0 { 1800 } else { 1800 + rng.below_u64(2 * 86_400) as i64 };
        }
    }
    // Server events without an mm_aid: each a visitor and a visit of its own.
    for i in 0..10 {
        out.push(Ev {
            project,
            id: format!("{project}-anon-{i}"),
            t: start + rng.below_u64((end - start) as u64) as i64,
            pageview: false,
            name: "purchase".into(),
            host: "example.com".into(),
            path: "/checkout".into(),
            props: vec![("plan".into(), "pro".into())],
            aid: String::new(),
            attrs: attrs(rng),
            bot: false,
        });
    }
}

// ---- The oracle: the definitions, applied to the generated events ----

struct Visit<'a> {
    visitor: String,
    events: Vec<&'a Ev>,
    /// As the aggregates count it: the visit's time (for time dimensions) is its start.
    by_start: bool,
}

impl Visit<'_> {
    fn first(&self) -> &Ev {
        self.events[0]
    }
    fn bounce(&self) -> bool {
        self.events.len() == 1 && self.events[0].pageview
    }
    fn duration(&self) -> i64 {
        self.events.last().unwrap().t - self.events[0].t
    }
    fn attr(&self, dim: &str) -> String {
        match dim {
            "visit:entry_page" => self.first().path.clone(),
            "visit:exit_page" => self.events.last().unwrap().path.clone(),
            d => self.first().attrs[VISIT_DIMS.iter().position(|x| *x == d).unwrap()].clone(),
        }
    }
}

fn visits<'a>(events: &'a [Ev], project: &str, from: i64, to: i64, bots: bool) -> Vec<Visit<'a>> {
    let mut by_visitor: BTreeMap<String, Vec<&Ev>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.project == project && e.t >= from && e.t < to && (bots || !e.bot)) {
        let key = if e.aid.is_empty() { format!("~{}", e.id) } else { e.aid.clone() };
        by_visitor.entry(key).or_default().push(e);
    }
    let mut out = Vec::new();
    for (visitor, mut evs) in by_visitor {
        evs.sort_by(|a, b| (a.t, &a.id).cmp(&(b.t, &b.id)));
        let mut cur: Vec<&Ev> = Vec::new();
        for e in evs {
            if cur.last().is_some_and(|l| e.t - l.t >= 1800) {
                out.push(Visit { visitor: visitor.clone(), events: std::mem::take(&mut cur), by_start: false });
            }
            cur.push(e);
        }
        out.push(Visit { visitor, events: cur, by_start: false });
    }
    out
}

fn is_event_level(dim: &str) -> bool {
    dim.starts_with("event:") || dim.starts_with("time:")
}

fn value(dim: &str, v: &Visit, e: &Ev, tz: &TimeZone) -> String {
    let t = if v.by_start { v.first().t } else { e.t };
    let local = || Timestamp::from_second(t).unwrap().to_zoned_datetime(tz.clone());
    match dim {
        "event:page" => e.path.clone(),
        "event:name" => e.name.clone(),
        "event:hostname" => e.host.clone(),
        "time:hour" => local().strftime("%Y-%m-%d %H:00:00").to_string(),
        "time:day" => local().date().to_string(),
        "time:week" => {
            let d = local().date();
            d.checked_sub((d.weekday().to_monday_zero_offset() as i64).days()).unwrap().to_string()
        }
        "time:month" => local().date().first_of_month().to_string(),
        d if d.starts_with("event:props:") => {
            let k = &d["event:props:".len()..];
            e.props.iter().find(|p| p.0 == k).map(|p| p.1.clone()).unwrap_or_default()
        }
        d => v.attr(d),
    }
}

/// A filter as the API takes it, evaluated on one event of a visit (visit dimensions are the
/// visit's). `matches` patterns here are `^literal` or `literal$` only.
fn holds(f: &Value, v: &Visit, e: &Ev, tz: &TimeZone) -> bool {
    let a = f.as_array().unwrap();
    match a[0].as_str().unwrap() {
        "and" => a[1].as_array().unwrap().iter().all(|g| holds(g, v, e, tz)),
        "or" => a[1].as_array().unwrap().iter().any(|g| holds(g, v, e, tz)),
        "not" => !holds(&a[1], v, e, tz),
        op => {
            let x = value(a[1].as_str().unwrap(), v, e, tz);
            let vals: Vec<&str> = a[2].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
            let re = |p: &str| {
                if let Some(l) = p.strip_prefix('^') {
                    x.starts_with(l)
                } else if let Some(l) = p.strip_suffix('$') {
                    x.ends_with(l)
                } else {
                    x.contains(p)
                }
            };
            match op {
                "is" => vals.contains(&x.as_str()),
                "is_not" => !vals.contains(&x.as_str()),
                "contains" => vals.iter().any(|p| x.contains(p)),
                "contains_not" => !vals.iter().any(|p| x.contains(p)),
                "matches" => vals.iter().any(|p| re(p)),
                "matches_not" => !vals.iter().any(|p| re(p)),
                other => panic!("op {other}"),
            }
        }
    }
}

fn filter_dims(f: &Value, out: &mut Vec<String>) {
    let a = f.as_array().unwrap();
    match a[0].as_str().unwrap() {
        "and" | "or" => a[1].as_array().unwrap().iter().for_each(|g| filter_dims(g, out)),
        "not" => filter_dims(&a[1], out),
        _ => out.push(a[1].as_str().unwrap().to_string()),
    }
}

#[derive(Default, Debug, Clone)]
struct Comp {
    visitors: BTreeSet<String>,
    visits: u64,
    pageviews: u64,
    events: u64,
    bounces: u64,
    duration: i64,
}

/// Components per row (dimension values), computed from the events.
fn oracle(visits: &[Visit], dims: &[&str], filters: &[Value], tz: &TimeZone) -> BTreeMap<Vec<String>, Comp> {
    let filter = if filters.is_empty() { None } else { Some(json!(["and", filters])) };
    let mut fdims = Vec::new();
    if let Some(f) = &filter {
        filter_dims(f, &mut fdims);
    }
    let event_level = dims.iter().any(|d| is_event_level(d)) || fdims.iter().any(|d| is_event_level(d));
    let mut out: BTreeMap<Vec<String>, Comp> = BTreeMap::new();
    for v in visits {
        let mut per_key: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
        if event_level {
            for e in &v.events {
                if filter.as_ref().is_none_or(|f| holds(f, v, e, tz)) {
                    let key: Vec<String> = dims.iter().map(|d| value(d, v, e, tz)).collect();
                    let slot = per_key.entry(key).or_default();
                    slot.0 += e.pageview as u64;
                    slot.1 += 1;
                }
            }
        } else if filter.as_ref().is_none_or(|f| holds(f, v, v.events[0], tz)) {
            let key: Vec<String> = dims.iter().map(|d| value(d, v, v.events[0], tz)).collect();
            let pv = v.events.iter().filter(|e| e.pageview).count() as u64;
            per_key.insert(key, (pv, v.events.len() as u64));
        }
        for (key, (pv, ev)) in per_key {
            let c = out.entry(key).or_default();
            c.visitors.insert(v.visitor.clone());
            c.visits += 1;
            c.pageviews += pv;
            c.events += ev;
            c.bounces += v.bounce() as u64;
            c.duration += v.duration();
        }
    }
    out
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn metric(m: &str, c: &Comp, total_visitors: f64, base: f64) -> Value {
    let visits = c.visits as f64;
    let r = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    match m {
        "visitors" => json!(c.visitors.len()),
        "visits" => json!(c.visits),
        "pageviews" => json!(c.pageviews),
        "events" => json!(c.events),
        "views_per_visit" => json!(round2(r(c.pageviews as f64, visits))),
        "bounce_rate" => json!(round2(100.0 * r(c.bounces as f64, visits))),
        "visit_duration" => json!(round2(r(c.duration as f64, visits))),
        "percentage" => json!(round2(100.0 * r(c.visitors.len() as f64, total_visitors))),
        "conversion_rate" => json!(round2(100.0 * r(c.visitors.len() as f64, base))),
        other => panic!("metric {other}"),
    }
}

fn shown(v: &str) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.into()
    }
}

/// The oracle's full answer to a query body: rows keyed by shown dimension values.
fn expect(events: &[Ev], project: &str, body: &Value, from: i64, to: i64, tz: &TimeZone) -> BTreeMap<Vec<String>, Vec<Value>> {
    let bots = body["include"]["bots"].as_bool().unwrap_or(false);
    answers(visits(events, project, from, to, bots), body, tz)
}

/// The oracle's answer as the aggregates define it: visits derived from all the project's
/// events, counted (with all their events) where they started; a property's rows are the
/// events that carry it.
fn expect_by_start(events: &[Ev], project: &str, body: &Value, from: i64, to: i64, tz: &TimeZone) -> BTreeMap<Vec<String>, Vec<Value>> {
    let bots = body["include"]["bots"].as_bool().unwrap_or(false);
    let mut vs: Vec<Visit> =
        visits(events, project, i64::MIN, i64::MAX, bots).into_iter().filter(|v| v.first().t >= from && v.first().t < to).collect();
    vs.iter_mut().for_each(|v| v.by_start = true);
    let mut rows = answers(vs, body, tz);
    if body["dimensions"].as_array().is_some_and(|d| d.iter().any(|d| d.as_str().unwrap().starts_with("event:props:"))) {
        rows.retain(|k, _| !k.contains(&"(none)".to_string()));
    }
    rows
}

fn answers(vs: Vec<Visit>, body: &Value, tz: &TimeZone) -> BTreeMap<Vec<String>, Vec<Value>> {
    let dims: Vec<&str> = body["dimensions"].as_array().map(|a| a.iter().map(|d| d.as_str().unwrap()).collect()).unwrap_or_default();
    let filters: Vec<Value> = body["filters"].as_array().cloned().unwrap_or_default();
    let metrics: Vec<&str> = body["metrics"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    let rows = oracle(&vs, &dims, &filters, tz);
    let total = oracle(&vs, &[], &filters, tz).values().next().map(|c| c.visitors.len() as f64).unwrap_or(0.0);
    let without_names: Vec<Value> = filters.iter().filter(|f| !(f[0] == "is" && f[1] == "event:name")).cloned().collect();
    // A conversion rate divides by the visitors of the row's dimensions but the event's own name,
    // properties and revenue currency (Plausible's rule).
    let event_own = |d: &str| d == "event:name" || d == "event:revenue_currency" || d.starts_with("event:props:");
    let base_dims: Vec<&str> = dims.iter().copied().filter(|d| !event_own(d)).collect();
    let base = oracle(&vs, &base_dims, &without_names, tz);
    rows.iter()
        .map(|(k, c)| {
            let key: Vec<String> = dims.iter().zip(k).filter(|(d, _)| !event_own(d)).map(|(_, v)| v.clone()).collect();
            let b = base.get(&key).map(|b| b.visitors.len() as f64).unwrap_or(0.0);
            (k.iter().map(|s| shown(s)).collect(), metrics.iter().map(|m| metric(m, c, total, b)).collect())
        })
        .collect()
}

fn got(answer: &Value) -> BTreeMap<Vec<String>, Vec<Value>> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {answer}"))
        .iter()
        .map(|r| {
            (
                r["dimensions"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect(),
                r["metrics"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn read_side_matches_the_oracle() {
    let berlin = TimeZone::get(ZONE).unwrap();
    // One anchor for every date below, and no midnight (Berlin's or UTC's, where the daily
    // job cuts) passes while the test runs.
    support::wait_clear_of_midnight(&[&berlin, &TimeZone::UTC], Duration::from_secs(5 * 60));
    let now = Timestamp::now();
    let today = now.to_zoned_datetime(berlin.clone()).date();
    let plan = layout(today);
    let stack = Stack::named("read").start();
    let read = stack.start_read();
    // The raw oracle's weeks and the 30-day events stay apart (the layout test), so the
    // aggregates' range never holds a raw event the retention run keeps, even though the raw
    // oracle's events are gone before the 30-day ones go in.
    let (dst, first, last) = (plan.dst, plan.first, plan.last);
    // Seven local days around the change; the previous week and the year before get events too.
    let (from, to) = (midnight(first), midnight(last.tomorrow().unwrap()));
    let (prev_from, prev_to) = (midnight(plan.prev_first), from);
    let (yoy_from, yoy_to) = (midnight(plan.yoy_first), midnight(plan.yoy_last.tomorrow().unwrap()));
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut events = Vec::new();
    generate("proj_dev", &mut rng, prev_from, to, 140, &mut events);
    generate("proj_dev", &mut rng, yoy_from, yoy_to, 30, &mut events);
    generate("proj_other", &mut rng, prev_from, to, 60, &mut events);
    // The other project's own page, so a leak would show by name.
    events.push(Ev { path: "/other-only".into(), ..events.last().unwrap().clone() });
    events.last_mut().unwrap().id = "proj_other-marker".into();
    // The DST hour itself: 02:30 local happens twice on that day.
    let dst_noon = midnight(dst) + 3600 + 1800; // 01:30 UTC+2 ... first 02:30 is 00:30 UTC
    for (i, t) in [dst_noon - 3600, dst_noon].iter().enumerate() {
        events.push(Ev { id: format!("dst-{i}"), t: *t, aid: format!("dst-visitor-{i}"), ..events[0].clone() });
    }
    let body: String = events.iter().map(row_json).collect::<Vec<_>>().join("\n");
    stack.query(&format!("INSERT INTO events FORMAT JSONEachRow\n{body}"));
    assert_eq!(stack.query("SELECT count() FROM events").trim(), events.len().to_string());

    let range = json!([first.to_string(), last.to_string()]);
    let all = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events", "percentage"];
    let mut dims: Vec<String> = VISIT_DIMS.iter().map(|s| s.to_string()).collect();
    dims.extend(
        [
            "event:page",
            "event:name",
            "event:hostname",
            "event:props:plan",
            "visit:entry_page",
            "visit:exit_page",
            "time:hour",
            "time:day",
            "time:week",
            "time:month",
        ]
        .map(String::from),
    );
    let mut bodies: Vec<Value> = Vec::new();
    for d in &dims {
        bodies.push(json!({"metrics": all, "date_range": range, "dimensions": [d], "timezone": ZONE, "pagination": {"limit": 10000}}));
    }
    bodies.push(json!({"metrics": &all[..7], "date_range": range, "timezone": ZONE}));
    bodies.push(json!({"metrics": &all[..7], "date_range": range, "timezone": ZONE, "include": {"bots": true}}));
    bodies.push(json!({"metrics": all, "date_range": range, "dimensions": ["visit:source", "event:page"], "timezone": ZONE, "pagination": {"limit": 10000}}));
    let filters = [
        ("is", "event:page", json!(["/pricing", "/docs"])),
        ("is_not", "event:page", json!(["/"])),
        ("contains", "event:page", json!(["blog"])),
        ("contains_not", "visit:source", json!(["o"])),
        ("matches", "event:page", json!(["^/blog"])),
        ("matches_not", "visit:country", json!(["^D"])),
        ("is", "visit:device", json!(["mobile"])),
        ("is_not", "event:props:plan", json!(["pro"])),
        ("contains", "visit:utm_campaign", json!(["launch"])),
        ("matches", "event:props:plan", json!(["o$"])),
        ("contains_not", "event:name", json!(["sign"])),
        ("matches_not", "visit:entry_page", json!(["^/blog"])),
    ];
    for (op, d, vals) in &filters {
        for dim in ["visit:country", "event:page", "time:day"] {
            bodies.push(json!({"metrics": &all[..7], "date_range": range, "dimensions": [dim], "timezone": ZONE, "filters": [[op, d, vals]], "pagination": {"limit": 10000}}));
        }
    }
    bodies.push(json!({"metrics": ["visitors", "pageviews", "bounce_rate"], "date_range": range, "dimensions": ["visit:browser"], "timezone": ZONE,
        "filters": [["or", [["is", "visit:country", ["GB"]], ["and", [["is", "event:page", ["/docs"]], ["not", ["is", "visit:os", ["iOS"]]]]]]]]}));
    bodies.push(json!({"metrics": ["visitors", "conversion_rate"], "date_range": range, "dimensions": ["visit:source"], "timezone": ZONE, "filters": [["is", "event:name", ["signup"]]]}));
    bodies.push(json!({"metrics": ["conversion_rate", "visitors"], "date_range": range, "timezone": ZONE, "filters": [["is", "event:name", ["purchase"]], ["is", "visit:device", ["desktop"]]]}));
    // By the event's own name or property: each row divides by every visitor (of its source).
    bodies.push(json!({"metrics": ["visitors", "conversion_rate"], "date_range": range, "dimensions": ["event:name"], "timezone": ZONE,
        "filters": [["is", "event:name", ["signup", "purchase"]]], "order_by": [["conversion_rate", "desc"]]}));
    bodies.push(json!({"metrics": ["visitors", "conversion_rate"], "date_range": range, "dimensions": ["event:props:plan", "visit:source"], "timezone": ZONE,
        "filters": [["is", "event:name", ["signup"]]]}));

    let mut checked = 0;
    for body in &bodies {
        let r = read.query(DEV_READ_ONLY, body);
        assert_eq!(r.status, 200, "{body}: {:?}\n{}", r.body, read.logs());
        let want = expect(&events, "proj_dev", body, from, to, &berlin);
        assert!(!want.is_empty() || body["filters"].is_array(), "the oracle found nothing for {body}");
        assert_eq!(got(&r.body), want, "query {body}");
        assert!(!r.body.to_string().contains("/other-only"), "another project's page in {body}");
        checked += 1;
    }
    println!(
        "oracle: {checked} queries matched exactly ({} events, {} of them proj_dev's)",
        events.len(),
        events.iter().filter(|e| e.project == "proj_dev").count()
    );

    // The answer echoes the query, its dates resolved (the DST day's offsets differ).
    let r =
        read.query(DEV_READ_ONLY, &json!({"metrics": ["visitors"], "date_range": [dst.to_string(), dst.to_string()], "timezone": ZONE}));
    assert_eq!(r.body["query"]["date_range"], json!([format!("{dst}T00:00:00+02:00"), format!("{dst}T23:59:59+01:00")]), "{:?}", r.body);
    assert_eq!(r.body["meta"]["source"], "raw_events");

    // Comparisons: each row's value, the compared period's, and the change.
    for (how, cmp_from, cmp_to) in [("previous_period", prev_from, prev_to), ("year_over_year", yoy_from, yoy_to)] {
        for dims in [json!(["visit:source"]), json!(["time:day"]), json!([])] {
            let body = json!({"metrics": ["visitors", "pageviews", "bounce_rate"], "date_range": range, "dimensions": dims, "timezone": ZONE, "compare": how});
            let r = read.query(DEV_READ_ONLY, &body);
            assert_eq!(r.status, 200, "{body}: {:?}", r.body);
            let now = expect(&events, "proj_dev", &body, from, to, &berlin);
            let then = expect(&events, "proj_dev", &body, cmp_from, cmp_to, &berlin);
            let cmp_first =
                if how == "previous_period" { first.checked_sub(7.days()).unwrap() } else { first.checked_sub(1.year()).unwrap() };
            assert_eq!(r.body["results"].as_array().map(Vec::len), Some(now.len()), "{body}: {:?}", r.body);
            for row in r.body["results"].as_array().unwrap() {
                let key: Vec<String> = row["dimensions"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
                assert_eq!(row["metrics"].as_array().unwrap(), &now[&key], "{body}");
                // The compared row: same dimension values; for days, the same offset from the start.
                let other_key: Vec<String> = if dims == json!(["time:day"]) {
                    let d: Date = key[0].parse().unwrap();
                    vec![cmp_first.checked_add((d - first).get_days().days()).unwrap().to_string()]
                } else {
                    key.clone()
                };
                let zero = vec![json!(0), json!(0), json!(0.0)];
                let want_then = then.get(&other_key).unwrap_or(&zero);
                assert_eq!(row["comparison"]["metrics"].as_array().unwrap(), want_then, "{body} row {key:?}");
                let (a, b) = (now[&key][0].as_f64().unwrap(), want_then[0].as_f64().unwrap());
                let change = if b == 0.0 { Value::Null } else { json!(round2(100.0 * (a - b) / b)) };
                assert_eq!(row["comparison"]["change"][0], change, "{body} row {key:?}");
            }
            checked += 1;
        }
    }
    assert_eq!(r.status, 200);

    // The other project sees its own numbers, in its own time zone, and none of proj_dev's.
    let r = read.query(
        DEV_OTHER_READ_ONLY,
        &json!({"metrics": ["visitors", "pageviews"], "date_range": range, "dimensions": ["event:page"], "pagination": {"limit": 10000}}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["query"]["timezone"], DEV_OTHER_TIMEZONE);
    let ny = TimeZone::get(DEV_OTHER_TIMEZONE).unwrap();
    let ny_mid = |d: Date| d.to_zoned_datetime(ny.clone()).unwrap().timestamp().as_second();
    let body = json!({"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"]});
    assert_eq!(got(&r.body), expect(&events, "proj_other", &body, ny_mid(first), ny_mid(last.tomorrow().unwrap()), &ny));
    assert!(r.body.to_string().contains("/other-only"));

    // Pagination and total_rows: the oracle's rows in the documented order.
    let body = json!({"metrics": ["visitors"], "date_range": range, "dimensions": ["event:page"], "timezone": ZONE, "pagination": {"limit": 2, "offset": 1}, "include": {"total_rows": true}});
    let r = read.query(DEV_READ_ONLY, &body);
    let mut want: Vec<(Vec<String>, Vec<Value>)> = expect(&events, "proj_dev", &body, from, to, &berlin).into_iter().collect();
    want.sort_by(|a, b| b.1[0].as_u64().cmp(&a.1[0].as_u64()).then(a.0.cmp(&b.0)));
    assert_eq!(r.body["meta"]["total_rows"], json!(want.len()), "{:?}", r.body);
    let page: Vec<(Vec<String>, Vec<Value>)> = got(&r.body).into_iter().collect();
    let mut want_page: Vec<(Vec<String>, Vec<Value>)> = want[1..3].to_vec();
    want_page.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(page, want_page);
    println!("oracle: {checked} queries in all");

    // ---- Aggregates: days the daily job rolled up answer after their raw events are gone ----
    // The raw oracle's events are done with: the daily job starts from the 30-day events (the
    // year before lies further back than one run of it reaches).
    stack.query("TRUNCATE TABLE events");
    let mut old = Vec::new();
    let (old_from, old_to) = (midnight(plan.old_first), midnight(plan.old_last.tomorrow().unwrap()));
    generate("proj_dev", &mut rng, old_from, old_to, 80, &mut old);
    generate("proj_other", &mut rng, old_from, old_to, 20, &mut old);
    old.push(Ev { path: "/other-only".into(), ..old.last().unwrap().clone() });
    old.last_mut().unwrap().id = "proj_other-old-marker".into();
    // One visit across the rollup's cut (yesterday 23:58 UTC, today 00:02 UTC: the wait at
    // the start keeps it in the past): the aggregates hold it whole; the raw part of a long
    // range must not count it again.
    let cut = now.as_second().div_euclid(86_400) * 86_400;
    for (i, t) in [cut - 120, cut + 120].into_iter().enumerate() {
        old.push(Ev {
            project: "proj_dev",
            id: format!("cross-cut-{i}"),
            t,
            pageview: true,
            name: "pageview".into(),
            path: "/cross-cut".into(),
            props: vec![],
            aid: "cross-cut-visitor".into(),
            bot: false,
            ..events[0].clone()
        });
    }
    // Kept 30 days: the retention run that follows the rollup drops them.
    let body: String = old
        .iter()
        .map(|e| {
            if e.id.starts_with("cross-cut") {
                row_json(e)
            } else {
                row_json(e).replace("\"retention_days\":365", "\"retention_days\":30")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    stack.query(&format!("INSERT INTO events FORMAT JSONEachRow\n{body}"));
    assert_eq!(stack.query("SELECT count() FROM events WHERE retention_days = 30").trim(), (old.len() - 2).to_string());
    let (d1, d2) = plan.old_query;
    let (query_from, query_to) = (midnight(d1), midnight(d2.tomorrow().unwrap()));
    let old_range = json!([d1.to_string(), d2.to_string()]);
    let r = stack.request("GET", "/__scheduled?cron=17+3+*+*+*", &[], b"");
    assert_eq!(r.status, 200, "{}", stack.logs());
    assert_eq!(
        stack.query("SELECT count() FROM events WHERE retention_days = 30").trim(),
        "0",
        "retention dropped the raw events: {}",
        stack.logs()
    );
    let yesterday_utc = now.to_zoned_datetime(TimeZone::UTC).date().yesterday().unwrap();
    assert_eq!(
        stack.query("SELECT toString(max(day)) FROM rollup_done").trim(),
        yesterday_utc.to_string(),
        "rolled up through yesterday: {}",
        stack.logs()
    );
    let visit_metrics = &all[..7];
    let mut agg_bodies = vec![json!({"metrics": visit_metrics, "date_range": old_range, "timezone": ZONE})];
    for d in [
        "visit:country",
        "visit:source",
        "visit:entry_page",
        "visit:exit_page",
        "visit:device",
        "visit:utm_campaign",
        "time:day",
        "time:week",
        "time:hour",
    ] {
        agg_bodies
            .push(json!({"metrics": all, "date_range": old_range, "dimensions": [d], "timezone": ZONE, "pagination": {"limit": 10000}}));
    }
    agg_bodies.push(json!({"metrics": visit_metrics, "date_range": old_range, "dimensions": ["visit:browser", "time:day"], "timezone": ZONE, "filters": [["is", "visit:device", ["mobile"]], ["matches_not", "visit:country", ["^D"]]], "pagination": {"limit": 10000}}));
    agg_bodies.push(
        json!({"metrics": ["visitors"], "date_range": old_range, "dimensions": ["visit:os"], "timezone": ZONE, "include": {"bots": true}}),
    );
    let page_metrics = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "events", "percentage"];
    for d in ["event:page", "event:name", "event:hostname"] {
        agg_bodies.push(json!({"metrics": page_metrics, "date_range": old_range, "dimensions": [d], "timezone": ZONE}));
    }
    agg_bodies.push(json!({"metrics": page_metrics, "date_range": old_range, "dimensions": ["event:name", "time:day"], "timezone": ZONE, "filters": [["contains", "event:page", ["blog"]]], "pagination": {"limit": 10000}}));
    agg_bodies.push(json!({"metrics": ["visitors", "conversion_rate"], "date_range": old_range, "timezone": ZONE, "filters": [["is", "event:name", ["signup"]]]}));
    agg_bodies.push(json!({"metrics": ["visitors", "visits", "pageviews", "events"], "date_range": old_range, "dimensions": ["event:props:plan"], "timezone": ZONE, "filters": [["is", "event:name", ["purchase"]]]}));
    for body in &agg_bodies {
        let r = read.query(DEV_READ_ONLY, body);
        assert_eq!(r.status, 200, "{body}: {:?}", r.body);
        assert_eq!(r.body["meta"]["source"], "aggregates", "{body}: {:?}", r.body["meta"]);
        assert_eq!(r.body["meta"]["aggregates_through"], json!(yesterday_utc.to_string()));
        let want = expect_by_start(&old, "proj_dev", body, query_from, query_to, &berlin);
        assert!(!want.is_empty(), "the oracle found nothing for {body}");
        assert_eq!(got(&r.body), want, "from aggregates: {body}");
        assert!(!r.body.to_string().contains("/other-only"), "another project's page in {body}");
        checked += 1;
    }
    // The same days from raw events: gone.
    let r = read.query(DEV_READ_ONLY, &json!({"metrics": ["visitors"], "date_range": old_range, "timezone": ZONE, "source": "raw_events"}));
    assert_eq!(
        (r.body["results"][0]["metrics"][0].clone(), r.body["meta"]["source"].clone()),
        (json!(0), json!("raw_events")),
        "{:?}",
        r.body
    );
    // A long range: the rolled-up days from aggregates, today from raw events, in one answer.
    let r = read.query(DEV_READ_ONLY, &json!({"metrics": ["visitors", "pageviews"], "date_range": "12mo", "timezone": ZONE}));
    assert_eq!(r.body["meta"]["source"], "aggregates_and_raw_events", "{:?}", r.body);
    assert_eq!(r.body["meta"]["estimated"], json!(["visitors"]));
    let r = read.query(DEV_READ_ONLY, &json!({"metrics": ["visitors", "visits", "pageviews"], "date_range": "12mo", "timezone": ZONE, "filters": [["is", "event:page", ["/cross-cut"]]]}));
    assert_eq!(
        (r.body["meta"]["source"].clone(), r.body["results"][0]["metrics"].clone()),
        (json!("aggregates_and_raw_events"), json!([1, 1, 2])),
        "one visit across the cut: {:?}",
        r.body
    );
    // What aggregates cannot answer says so.
    let r = read.query(
        DEV_READ_ONLY,
        &json!({"metrics": ["visitors"], "date_range": old_range, "dimensions": ["visit:country", "event:page"], "source": "aggregates"}),
    );
    assert_eq!((r.status, r.body["error"]["code"].clone()), (400, json!("not_in_aggregates")), "{:?}", r.body);
    println!("oracle: {checked} queries in all, {} of them from aggregates", agg_bodies.len());
    // The sketch's error, as the aggregates use it (states merged from many rows), on this
    // server: docs/stats-api.md states at most 1%.
    for n in [1_000u64, 100_000, 2_000_000] {
        let est: f64 = stack.query(&format!("SELECT uniqCombinedMerge(s) FROM (SELECT uniqCombinedState(concat('v', toString(number))) AS s FROM numbers({n}) GROUP BY number % 97)")).trim().parse().unwrap();
        let err = (est - n as f64).abs() / n as f64;
        println!("uniqCombined: {est} for {n} distinct visitors ({:.3}% off)", 100.0 * err);
        assert!(err <= 0.01, "{n} visitors estimated {est}");
    }

    refusals(&read);
    bodies_are_capped_as_they_arrive(&read);
    hostile_bodies(&read);
}

/// A query or MCP body is at most 64 KiB, counted as it arrives. Review finding: the read
/// Worker read a body whole before its size check, so a chunked body (no Content-Length) of any
/// size was buffered in the isolate, whose 128 MB a large enough one ends.
fn bodies_are_capped_as_they_arrive(read: &support::ReadWorker) {
    let auth = format!("Bearer {DEV_READ_ONLY}");
    let headers =
        [("Authorization", auth.as_str()), ("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")];
    let before = read.workerd_rss_kib();
    assert!(before > 0, "workerd's memory could not be read");
    for path in ["/v1/query", "/mcp", "/v1/funnel", "/v1/query"] {
        let (status, body, _) = read.post_chunked(path, &headers, 64 * 1024 * 1024);
        assert_eq!(status, 413, "{path}: {body}");
        assert!(body.contains("64 KiB"), "{path}: a JSON answer saying the limit: {body}");
    }
    let after = read.workerd_rss_kib();
    println!("read workerd RSS before {before} KiB, after four chunked 64 MiB bodies {after} KiB");
    assert!(after < before + 48 * 1024, "workerd grew from {before} KiB to {after} KiB");
}

fn refusals(read: &support::ReadWorker) {
    let body = json!({"metrics": ["visitors"], "date_range": "7d"});
    let r = read.query(DEV_PUBLISHABLE, &body);
    assert_eq!((r.status, r.code()), (403, "publishable_key_cannot_read"), "{:?}", r.body);
    let r = read.request("POST", "/v1/query", &[("Content-Type", "application/json")], body.to_string().as_bytes());
    assert_eq!((r.status, r.code()), (401, "missing_key"));
    // A header of another form is a key sent wrongly, not no key.
    let r = read.request(
        "POST",
        "/v1/query",
        &[("Authorization", "Token rk_live_x1"), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!((r.status, r.code()), (401, "malformed_key"), "{:?}", r.body);
    // A known path asked with another method: 405, not "no such endpoint"; HEAD /health works.
    assert_eq!(
        (read.request("POST", "/health", &[], b"").code(), read.request("HEAD", "/health", &[], b"").status),
        ("method_not_allowed", 200)
    );
    assert_eq!(read.query("rk_live_not_a_real_key_1", &body).code(), "unknown_key");
    assert_eq!(read.query(DEV_SECRET, &body).status, 200, "the secret key reads too");
    let r = read.request("GET", "/v1/query", &[], b"");
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
    let r = read.query(DEV_READ_ONLY, &json!({"metrics": ["visitors"], "date_range": "7d", "site_id": "proj_other"}));
    assert_eq!((r.status, r.code()), (400, "project_from_key"));
    let r = read
        .query(DEV_READ_ONLY, &json!({"metrics": ["visitors"], "date_range": "7d", "filters": [["matches", "event:page", ["(unclosed"]]]}));
    assert_eq!((r.status, r.code()), (400, "invalid_filter"), "{:?}", r.body);
    let r = read.request("GET", "/v1/realtime", &[("Authorization", &format!("Bearer {DEV_READ_ONLY}"))], b"");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["last_30_minutes"].as_array().map(Vec::len), Some(30));
}

/// Random and hostile bodies: never a 5xx, never another project's page. They also pass the
/// key's 120 queries a minute: past it, a 429 with Retry-After.
fn hostile_bodies(read: &support::ReadWorker) {
    let mut rng = Rng(42);
    let mut limited = false;
    let pieces = [
        "\"metrics\":[\"visitors\"]",
        "\"metrics\":[\"bounce_rate\",\"percentage\"]",
        "\"date_range\":\"7d\"",
        "\"date_range\":[\"3026-01-01\",\"3025-01-01\"]",
        "\"date_range\":\"all\"",
        "\"dimensions\":[\"event:props:' OR 1=1 --\"]",
        "\"dimensions\":[\"visit:country\",\"time:hour\"]",
        "\"filters\":[[\"is\",\"event:page\",[\"'); DROP TABLE events; --\"]]]",
        "\"filters\":[[\"matches\",\"event:page\",[\".*\\\\\"]]]",
        "\"filters\":[[\"is\",\"visit:country\",[\"x\\u0000\"]]]",
        "\"timezone\":\"../../etc/passwd\"",
        "\"timezone\":\"Asia/Kathmandu\"",
        "\"order_by\":[[\"visitors\",\"desc\"]]",
        "\"pagination\":{\"limit\":10000,\"offset\":999999}",
        "\"compare\":\"year_over_year\"",
        "\"site_id\":\"proj_other\"",
        "\"include\":{\"bots\":true,\"total_rows\":true}",
        "\"metrics\":[]",
        "\"dimensions\":[\"event:props:plan\",\"event:page\",\"visit:source\",\"visit:os\"]",
        "\"filters\":[[\"not\",[\"not\",[\"is\",\"event:page\",[\"/\"]]]]]",
        "\"source\":\"aggregates\"",
        "\"date_range\":\"12mo\"",
        "\"source\":\"raw_events\"",
        "\"dimensions\":[\"event:props:plan\"]",
    ];
    for i in 0..150 {
        let body = if i % 10 == 9 {
            // Bytes, not JSON.
            (0..rng.below_u64(200)).map(|_| (rng.below_u64(95) as u8 + 32) as char).collect::<String>()
        } else {
            let n = 1 + rng.below_u64(6);
            let parts: Vec<&str> = (0..n).map(|_| pieces[rng.below_u64(pieces.len() as u64) as usize]).collect();
            format!("{{{}}}", parts.join(","))
        };
        let r = read.request("POST", "/v1/query", &[("Authorization", &format!("Bearer {DEV_READ_ONLY}"))], body.as_bytes());
        assert!(r.status < 500, "{body}: {} {:?}\n{}", r.status, r.body, read.logs());
        if r.status == 429 {
            assert!(r.header("Retry-After").is_some_and(|s| s.parse::<u32>().is_ok()), "{:?}", r.headers);
            limited = true;
        }
        assert!(r.status == 200 || !r.code().is_empty(), "a refusal without a code: {body}: {:?}", r.body);
        assert!(!r.body.to_string().contains("/other-only"), "another project's page for {body}");
    }
    assert!(limited, "over 230 queries in a minute and no 429");
}
