//! Conversion queries against an oracle. Events of two projects are written straight into
//! ClickHouse: random visitors, plus the cases the definitions turn on (a step exactly
//! `window` after step 1 and one second over, equal timestamps, repeated steps, steps out of
//! order, a visitor who converts twice, events just inside and outside the range, a week that
//! holds a DST change in the queried zone, bots, the other project's events). The expected
//! answers are computed here from the generated events, without the SQL (the furthest step by
//! exhaustive search, not by the statement's earliest-first walk), and the read Worker (real
//! HTTP into `wrangler dev`) must match them exactly. Run by scripts/test.

mod support;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use millimetric_tools::dev_keys::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use support::events::{midnight, row_json, DstDays, Ev, ZONE};
use support::rng::Rng;
use support::Stack;

const GAP: i64 = 1800;

fn attrs(source: &str, country: &str) -> [String; 15] {
    let mut a: [String; 15] = Default::default();
    a[0] = source.into();
    a[1] = if source.is_empty() { "direct".into() } else { "referral".into() };
    a[9] = country.into();
    a
}

fn pageview(project: &'static str, aid: &str, id: String, t: i64, path: &str, a: [String; 15]) -> Ev {
    Ev {
        project,
        id,
        t,
        pageview: true,
        name: "pageview".into(),
        host: "example.com".into(),
        path: path.into(),
        props: vec![],
        aid: aid.into(),
        attrs: a,
        bot: false,
    }
}

fn custom(project: &'static str, aid: &str, id: String, t: i64, name: &str, plan: Option<&str>, a: [String; 15]) -> Ev {
    Ev {
        pageview: false,
        name: name.into(),
        path: "/app".into(),
        props: plan.map(|p| vec![("plan".to_string(), p.to_string())]).unwrap_or_default(),
        ..pageview(project, aid, id, t, "/app", a)
    }
}

/// Random visitors from a day before `from` to `to`: pages, sign-ups and purchases, gaps of
/// 0 s (equal timestamps), exactly an hour, an hour and a second, or a few minutes.
fn generate(project: &'static str, rng: &mut Rng, from: i64, to: i64, visitors: usize, out: &mut Vec<Ev>) {
    for v in 0..visitors {
        let aid = format!("{project}-v{v}");
        let bot = rng.below_u64(12) == 0;
        let mut t = from - 86_400 + rng.below_u64((to - from) as u64) as i64;
        for _ in 0..1 + rng.below_u64(3) {
            let a = attrs(rng.pick(&["", "Google", "Newsletter", "ChatGPT"]), rng.pick(&["DE", "GB"]));
            for _ in 0..1 + rng.below_u64(6) {
                let id = format!("{aid}-e{}", out.len());
                let mut e = match rng.below_u64(6) {
                    0 => custom(project, &aid, id, t, "signup", Some(rng.pick(&["pro", "free"])), a.clone()),
                    1 => custom(project, &aid, id, t, "purchase", None, a.clone()),
                    n => pageview(project, &aid, id, t, ["/", "/pricing", "/blog/x", "/pricing"][n as usize - 2], a.clone()),
                };
                e.bot = bot;
                out.push(e);
                t += match rng.below_u64(10) {
                    0 | 1 => 0,
                    2 => 3600,
                    3 => 3601,
                    _ => 1 + rng.below_u64(1500) as i64,
                };
            }
            t += GAP + rng.below_u64(2 * 86_400) as i64;
        }
    }
}

/// The cases the definitions turn on, for one project, from `t0` (inside the range).
fn cases(project: &'static str, t0: i64, from: i64, to: i64, out: &mut Vec<Ev>) {
    let a = || attrs("Newsletter", "DE");
    let mut n = 0;
    let mut id = |name: &str| {
        n += 1;
        format!("{project}-{name}-{n}")
    };
    // Exactly the window after step 1 (an hour, a day), and one second over.
    for (name, dt) in [("hour-in", 3600), ("hour-out", 3601), ("day-in", 86_400), ("day-out", 86_401)] {
        out.push(pageview(project, name, id(name), t0, "/pricing", a()));
        out.push(custom(project, name, id(name), t0 + dt, "signup", Some("pro"), a()));
    }
    // Equal timestamps: the sign-up at the same second as the pricing page.
    out.push(custom(project, "same-second", id("eq"), t0 + 100, "signup", Some("pro"), a()));
    out.push(pageview(project, "same-second", id("eq"), t0 + 100, "/pricing", a()));
    // Repeated steps and steps out of order.
    for (i, path) in ["/pricing", "", "/pricing"].iter().enumerate() {
        let t = t0 + 200 + i as i64 * 10;
        out.push(if path.is_empty() {
            custom(project, "repeat", id("rep"), t, "signup", Some("pro"), a())
        } else {
            pageview(project, "repeat", id("rep"), t, path, a())
        });
    }
    out.push(custom(project, "reversed", id("rev"), t0 + 300, "signup", Some("pro"), a()));
    out.push(pageview(project, "reversed", id("rev"), t0 + 900, "/pricing", a()));
    // Converts twice, a day apart; the second time faster.
    for (day, dt) in [(0, 600), (1, 60)] {
        out.push(pageview(project, "twice", id("twice"), t0 + day * 86_400, "/pricing", attrs("Google", "GB")));
        out.push(custom(project, "twice", id("twice"), t0 + day * 86_400 + dt, "signup", Some("pro"), attrs("Google", "GB")));
        out.push(custom(project, "twice", id("twice"), t0 + day * 86_400 + dt + 5, "purchase", None, attrs("Google", "GB")));
    }
    // Step 1 a second before the range: only the sign-up is in it.
    out.push(pageview(project, "edge-before", id("edge"), from - 1, "/pricing", a()));
    out.push(custom(project, "edge-before", id("edge"), from + 10, "signup", Some("pro"), a()));
    // The range's first second counts, and its end does not.
    out.push(pageview(project, "edge-first", id("edge"), from, "/pricing", a()));
    out.push(custom(project, "edge-first", id("edge"), from + 5, "signup", Some("pro"), a()));
    out.push(pageview(project, "edge-end", id("edge"), to - 5, "/pricing", a()));
    out.push(custom(project, "edge-end", id("edge"), to, "signup", Some("pro"), a()));
}

// ---- The oracle: the definitions of docs/conversions.md, applied to the events ----

#[derive(Clone)]
enum Step {
    Page(&'static str),
    Event(&'static str, Option<&'static str>),
}

impl Step {
    fn json(&self) -> Value {
        match self {
            Step::Page(p) => json!({"page": p}),
            Step::Event(e, None) => json!({"event": e}),
            Step::Event(e, Some(plan)) => json!({"event": e, "props": {"plan": plan}}),
        }
    }

    fn holds(&self, e: &Ev) -> bool {
        match self {
            Step::Page(p) => e.pageview && p.strip_suffix('*').map_or(e.path == *p, |prefix| e.path.starts_with(prefix)),
            Step::Event(name, plan) => e.name == *name && plan.is_none_or(|p| e.props.iter().any(|(k, v)| k == "plan" && v == p)),
        }
    }
}

/// A filter as the oracle applies it: to a visit's attributes, or to one event.
type VisitTest = fn(&[String; 15]) -> bool;
type EventTest = fn(&Ev) -> bool;
/// One visitor's (or visit's) furthest step and its step times.
type Through = (usize, Vec<i64>);

struct Case {
    steps: Vec<Step>,
    window: i64,
    by_visit: bool,
    strict: bool,
    bots: bool,
    /// The breakdown's attribute (an index into Ev::attrs) and its name.
    breakdown: Option<(usize, &'static str)>,
    visit_filter: Option<(Value, VisitTest)>,
    event_filter: Option<(Value, EventTest)>,
}

impl Case {
    fn body(&self, range: &Value) -> Value {
        let mut b = json!({"steps": self.steps.iter().map(Step::json).collect::<Vec<_>>(), "date_range": range, "timezone": ZONE,
            "window": format!("{}m", self.window / 60), "by": if self.by_visit { "visit" } else { "visitor" },
            "order": if self.strict { "strict" } else { "ordered" }, "include": {"bots": self.bots}});
        if let Some((_, name)) = self.breakdown {
            b["breakdown"] = json!(name);
        }
        let filters: Vec<Value> =
            self.visit_filter.iter().map(|f| f.0.clone()).chain(self.event_filter.iter().map(|f| f.0.clone())).collect();
        if !filters.is_empty() {
            b["filters"] = json!(filters);
        }
        b
    }
}

/// One event as a funnel sees it: time, its lowest step, the steps it is (bit k-1), the
/// breakdown value of its visit. Sorted so, equal times fall in step order.
type Item = (i64, usize, u32, String);

/// The furthest step from any start, by exhaustive search over ordered choices of events.
fn furthest(items: &[Item], case: &Case, from_index: usize, start_t: i64, k: usize) -> usize {
    if k == case.steps.len() {
        return k;
    }
    let mut best = k;
    let candidates: Vec<usize> = if case.strict { vec![from_index] } else { (from_index..items.len()).collect() };
    for j in candidates.into_iter().filter(|j| *j < items.len()) {
        if items[j].2 & (1 << k) != 0 && items[j].0 <= start_t + case.window {
            best = best.max(furthest(items, case, j + 1, start_t, k + 1));
        }
    }
    best
}

/// (level, step times, breakdown value) of one visitor or visit: the earliest start that
/// reaches the furthest step, with each next step's earliest event.
fn through(mut items: Vec<Item>, case: &Case) -> (usize, Vec<i64>, String) {
    items.sort();
    let mut best: Option<(usize, usize)> = None;
    for s in (0..items.len()).filter(|s| items[*s].2 & 1 != 0) {
        let level = furthest(&items, case, s + 1, items[s].0, 1);
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, s));
        }
    }
    let Some((level, s)) = best else { return (0, vec![], String::new()) };
    let mut times = vec![items[s].0];
    let mut at = s;
    for k in 1..level {
        let next = if case.strict {
            at + 1
        } else {
            (at + 1..items.len()).find(|j| items[*j].2 & (1 << k) != 0 && items[*j].0 <= items[s].0 + case.window).unwrap()
        };
        times.push(items[next].0);
        at = next;
    }
    (level, times, items[s].3.clone())
}

fn rate(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        ((a as f64 * 100.0 / b as f64) * 100.0).round() / 100.0
    }
}

fn steps_json(case: &Case, groups: &[Through]) -> Value {
    let who = if case.by_visit { "visits" } else { "visitors" };
    let reached: Vec<u64> = (1..=case.steps.len()).map(|k| groups.iter().filter(|g| g.0 >= k).count() as u64).collect();
    let steps: Vec<Value> = case
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let prev = if i == 0 { reached[0] } else { reached[i - 1] };
            let mut gaps: Vec<i64> = groups.iter().filter(|g| g.0 > i && i > 0).map(|g| g.1[i] - g.1[i - 1]).collect();
            gaps.sort();
            let median = if i == 0 || gaps.is_empty() { Value::Null } else { json!(gaps[gaps.len() / 2]) };
            json!({"step": i + 1, "goal": s.json(), who: reached[i], "conversion_rate": rate(reached[i], reached[0]),
                "conversion_rate_from_previous": rate(reached[i], prev), "dropoff": prev - reached[i], "median_seconds_from_previous": median})
        })
        .collect();
    json!(steps)
}

/// The oracle's `steps` and `breakdown` for a case over the project's events in [from, to).
fn expect(events: &[Ev], project: &str, case: &Case, from: i64, to: i64) -> (Value, Value) {
    // Visits: a visitor's events (bots apart) in the range, split where 30 minutes pass.
    let mut per_visitor: BTreeMap<(String, bool), Vec<&Ev>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.project == project && e.t >= from && e.t < to && (case.bots || !e.bot)) {
        let visitor = if e.aid.is_empty() { format!("~{}", e.id) } else { e.aid.clone() };
        per_visitor.entry((visitor, e.bot)).or_default().push(e);
    }
    let mut groups: BTreeMap<(String, bool, usize), Vec<Item>> = BTreeMap::new();
    for ((visitor, bot), mut evs) in per_visitor {
        evs.sort_by(|a, b| (a.t, &a.id).cmp(&(b.t, &b.id)));
        let mut vi = 0;
        let mut first = 0;
        for i in 0..evs.len() {
            if i > 0 && evs[i].t - evs[i - 1].t >= GAP {
                vi += 1;
                first = i;
            }
            let visit_attrs = &evs[first].attrs;
            if case.visit_filter.as_ref().is_some_and(|f| !(f.1)(visit_attrs)) || case.event_filter.as_ref().is_some_and(|f| !(f.1)(evs[i]))
            {
                continue;
            }
            let mask = case.steps.iter().enumerate().filter(|(_, s)| s.holds(evs[i])).fold(0u32, |m, (k, _)| m | 1 << k);
            if mask == 0 && !case.strict {
                continue;
            }
            let rank = if mask == 0 { case.steps.len() + 1 } else { mask.trailing_zeros() as usize + 1 };
            let bd = case.breakdown.map(|(i, _)| visit_attrs[i].clone()).unwrap_or_default();
            let key = if case.by_visit { (visitor.clone(), bot, vi) } else { (visitor.clone(), false, 0) };
            groups.entry(key).or_default().push((evs[i].t, rank, mask, bd));
        }
    }
    let through: Vec<(usize, Vec<i64>, String)> = groups.into_values().map(|items| through(items, case)).filter(|g| g.0 >= 1).collect();
    let all: Vec<Through> = through.iter().map(|g| (g.0, g.1.clone())).collect();
    let mut by_value: BTreeMap<String, Vec<Through>> = BTreeMap::new();
    for g in &through {
        by_value.entry(g.2.clone()).or_default().push((g.0, g.1.clone()));
    }
    let mut split: Vec<(String, Vec<Through>)> = by_value.into_iter().collect();
    split.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    let breakdown: Vec<Value> = split
        .iter()
        .map(|(v, gs)| json!({"value": if v.is_empty() { "(none)" } else { v.as_str() }, "steps": steps_json(case, gs)}))
        .collect();
    (steps_json(case, &all), if case.breakdown.is_some() { json!(breakdown) } else { Value::Null })
}

fn all_cases() -> Vec<Case> {
    let base = || Case {
        steps: vec![Step::Page("/pricing"), Step::Event("signup", None)],
        window: 86_400,
        by_visit: false,
        strict: false,
        bots: false,
        breakdown: None,
        visit_filter: None,
        event_filter: None,
    };
    let three = || vec![Step::Page("/*"), Step::Event("signup", Some("pro")), Step::Event("purchase", None)];
    vec![
        base(),
        Case { window: 3600, ..base() },
        Case { steps: three(), window: 3600, breakdown: Some((0, "visit:source")), ..base() },
        Case { steps: three(), strict: true, breakdown: Some((9, "visit:country")), ..base() },
        Case { steps: vec![Step::Page("/pricing"), Step::Event("signup", None), Step::Page("/pricing")], ..base() },
        Case { by_visit: true, window: 1800, ..base() },
        Case { by_visit: true, strict: true, steps: three(), ..base() },
        Case { bots: true, window: 7 * 86_400, steps: three(), ..base() },
        Case {
            steps: three(),
            visit_filter: Some((json!(["is", "visit:country", ["DE"]]), |a| a[9] == "DE")),
            event_filter: Some((json!(["is_not", "event:page", ["/blog/x"]]), |e| e.path != "/blog/x")),
            breakdown: Some((0, "visit:source")),
            ..base()
        },
        Case {
            steps: vec![
                Step::Page("/"),
                Step::Page("/pricing"),
                Step::Page("/blog/x"),
                Step::Page("/pricing"),
                Step::Event("signup", None),
                Step::Event("purchase", None),
                Step::Page("/"),
                Step::Page("/pricing"),
            ],
            window: 90 * 86_400,
            ..base()
        },
    ]
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn funnels_match_the_oracle() {
    // A week that holds Berlin's autumn DST change (a 25-hour day), laid out from today.
    let DstDays { dst, first, last, from, to } = DstDays::around(3, 3);
    let stack = Stack::named("conversions").start();
    let read = stack.start_read();
    let mut rng = Rng(0xf00d_5eed_0042_7777);
    let mut events = Vec::new();
    generate("proj_dev", &mut rng, from, to, 150, &mut events);
    generate("proj_other", &mut rng, from, to, 40, &mut events);
    // The cases start at the DST day's first 02:30 (that hour happens twice).
    let t0 = midnight(dst) + 2 * 3600 + 1800;
    cases("proj_dev", t0, from, to, &mut events);
    cases("proj_other", t0 + 7, from, to, &mut events);
    let body: String = events.iter().map(row_json).collect::<Vec<_>>().join("\n");
    stack.query(&format!("INSERT INTO events FORMAT JSONEachRow\n{body}"));
    assert_eq!(stack.query("SELECT count() FROM events").trim(), events.len().to_string());

    let range = json!([first.to_string(), last.to_string()]);
    let auth = format!("Bearer {DEV_READ_ONLY}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    for case in all_cases() {
        let body = case.body(&range);
        let r = read.request("POST", "/v1/funnel", &headers, body.to_string().as_bytes());
        assert_eq!(r.status, 200, "{body}: {:?}\n{}", r.body, read.logs());
        let (steps, breakdown) = expect(&events, "proj_dev", &case, from, to);
        assert!(
            steps[0][if case.by_visit { "visits" } else { "visitors" }].as_u64().unwrap() > 5,
            "the oracle found few entrants for {body}"
        );
        assert_eq!(r.body["steps"], steps, "funnel {body}");
        assert_eq!(r.body.get("breakdown").cloned().unwrap_or(Value::Null), breakdown, "funnel breakdown {body}");
        // Had the other project's events (the same visitor ids among them) counted, the
        // answer would differ: so the match above shows they did not.
        let (leaky, _) = expect(&as_one_project(&events), "proj_dev", &case, from, to);
        assert_ne!(r.body["steps"], leaky, "the other project's events would not change {body}: the check is blind");
    }
    the_cases_count_as_documented(&events, from, to);
    refusals(&read, &headers);
}

/// Every event as if it were proj_dev's: what an answer that leaked the other project would count.
fn as_one_project(events: &[Ev]) -> Vec<Ev> {
    events.iter().map(|e| Ev { project: "proj_dev", ..e.clone() }).collect()
}

/// The definitions on the crafted visitors alone, spelled out (so a wrong oracle shows too).
fn the_cases_count_as_documented(events: &[Ev], from: i64, to: i64) {
    let crafted: Vec<Ev> = events.iter().filter(|e| e.project == "proj_dev" && !e.aid.starts_with("proj_dev-v")).cloned().collect();
    let level = |aid: &str, case: &Case| {
        let mine: Vec<Ev> = crafted.iter().filter(|e| e.aid == aid).cloned().collect();
        expect(&mine, "proj_dev", case, from, to).0.as_array().unwrap().iter().filter(|s| s["visitors"] == 1).count()
    };
    let hour = Case { window: 3600, ..all_cases().remove(0) };
    let day = all_cases().remove(0);
    assert_eq!((level("hour-in", &hour), level("hour-out", &hour)), (2, 1), "exactly the window counts; a second over does not");
    assert_eq!((level("day-in", &day), level("day-out", &day)), (2, 1));
    assert_eq!(level("same-second", &day), 2, "equal timestamps count in step order");
    assert_eq!(level("reversed", &day), 1, "a step before the previous one does not count");
    assert_eq!(level("twice", &day), 2, "a visitor who converts twice counts once");
    assert_eq!((level("edge-before", &day), level("edge-first", &day), level("edge-end", &day)), (0, 2, 1), "only the range's events");
    let repeat = &all_cases()[4];
    assert_eq!(level("repeat", repeat), 3, "a repeated step needs its own event");
}

fn refusals(read: &support::ReadWorker, headers: &[(&str, &str)]) {
    for (body, code) in [
        (json!({"steps": [{"page": "/"}], "date_range": "7d"}), "invalid_funnel"),
        (json!({"steps": [{"page": "/"}, {"event": "a"}], "date_range": "7d", "window": "100d"}), "invalid_window"),
        (json!({"steps": [{"page": "/"}, {"evnt": "a"}], "date_range": "7d"}), "invalid_goal"),
        (json!({"steps": [{"page": "/"}, {"event": "a"}], "date_range": "7d", "site_id": "proj_other"}), "project_from_key"),
        (
            json!({"steps": [{"page": "/"}, {"event": "a"}], "date_range": "7d", "filters": [["matches", "event:page", ["("]]]}),
            "invalid_filter",
        ),
    ] {
        let r = read.request("POST", "/v1/funnel", headers, body.to_string().as_bytes());
        assert_eq!((r.status, r.code()), (400, code), "{body}: {:?}", r.body);
    }
    let r = read.request("GET", "/v1/funnel", headers, b"");
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
    let r = read.request("POST", "/v1/funnel", &[("Content-Type", "application/json")], b"{}");
    assert_eq!(r.status, 401);
}

// ---- Attribution across visits ----

/// Revenue by event id (the shared event shape has none): (amount, currency).
type Revenues = BTreeMap<String, (String, String)>;

fn row_with_revenue(e: &Ev, revenues: &Revenues) -> String {
    let mut row = row_json(e);
    if let Some((amount, cur)) = revenues.get(&e.id) {
        // A bare number with exactly these digits, as the batch writer sends it.
        row = format!("{},\"revenue_amount\":{amount},\"revenue_currency\":\"{cur}\"}}", row.trim_end_matches('}'));
    }
    row
}

fn campaign(source: &str, campaign: &str) -> [String; 15] {
    let mut a = attrs(source, if source == "Google" { "GB" } else { "DE" });
    a[5] = campaign.into();
    a[8] = if source == "Google" { "gclid".into() } else { String::new() };
    a
}

/// Visitors with several visits from several channels (direct among them), before and in the
/// range, some buying (EUR or USD), some signing up, some both, some twice.
fn shoppers(project: &'static str, rng: &mut Rng, from: i64, to: i64, n: usize, out: &mut Vec<Ev>, revenues: &mut Revenues) {
    for v in 0..n {
        let aid = format!("{project}-s{v}");
        let mut t = from - 40 * 86_400 + rng.below_u64((to - from + 40 * 86_400) as u64 * 3 / 4) as i64;
        for _ in 0..1 + rng.below_u64(4) {
            if t >= to {
                break;
            }
            let a = campaign(rng.pick(&["", "", "Google", "Newsletter", "ChatGPT"]), rng.pick(&["", "spring", "launch"]));
            out.push(pageview(project, &aid, format!("{aid}-{}", out.len()), t, "/", a.clone()));
            match rng.below_u64(4) {
                0 => {
                    let id = format!("{aid}-{}", out.len());
                    revenues.insert(id.clone(), (rng.pick(&["19.99", "5", "0.01", "120.5"]).into(), rng.pick(&["EUR", "USD"]).into()));
                    out.push(custom(project, &aid, id, t + 60, "purchase", None, a.clone()));
                }
                1 => out.push(custom(project, &aid, format!("{aid}-{}", out.len()), t + 30, "signup", None, a.clone())),
                _ => {}
            }
            t += GAP + rng.below_u64(12 * 86_400) as i64;
        }
    }
}

/// The cases attribution turns on, converting at `t0` (inside the range).
fn attribution_cases(project: &'static str, t0: i64, from: i64, out: &mut Vec<Ev>, revenues: &mut Revenues) {
    let day = 86_400;
    let mut buy = |aid: &str, t: i64, a: [String; 15], amount: &str, cur: &str, out: &mut Vec<Ev>| {
        let id = format!("{project}-{aid}-buy-{t}");
        revenues.insert(id.clone(), (amount.into(), cur.into()));
        out.push(custom(project, aid, id, t, "purchase", None, a));
    };
    let visit =
        |aid: &str, t: i64, a: [String; 15], out: &mut Vec<Ev>| out.push(pageview(project, aid, format!("{project}-{aid}-{t}"), t, "/", a));
    // Touches before the range: a campaign visit 10 days before it, the purchase inside.
    visit("early", from - 10 * day, campaign("Newsletter", "spring"), out);
    visit("early", t0, campaign("", ""), out);
    buy("early", t0 + 60, campaign("", ""), "19.99", "EUR", out);
    // A touch exactly 30 days (the default lookback) before, and one a second more.
    visit("edge-in", t0 - 30 * day, campaign("ChatGPT", ""), out);
    visit("edge-in", t0, campaign("", ""), out);
    buy("edge-in", t0, campaign("", ""), "5", "USD", out);
    visit("edge-out", t0 - 30 * day - 1, campaign("ChatGPT", ""), out);
    visit("edge-out", t0, campaign("", ""), out);
    buy("edge-out", t0, campaign("", ""), "5", "USD", out);
    // Direct visits between campaign visits: last_non_direct goes past the direct ones.
    for (i, (src, camp)) in [("Google", "launch"), ("", ""), ("Newsletter", "spring"), ("", "")].iter().enumerate() {
        visit("between", t0 - (4 - i as i64) * day, campaign(src, camp), out);
    }
    buy("between", t0 - day + 90, campaign("", ""), "120.5", "EUR", out);
    // A refund: a negative amount, credited as such.
    visit("refund", t0 - 2 * day, campaign("Newsletter", "spring"), out);
    visit("refund", t0, campaign("", ""), out);
    buy("refund", t0 + 30, campaign("", ""), "-19.99", "EUR", out);
    // A visit from Google that began 40 minutes before the default lookback's start and ran on
    // past it (no gap of 30 minutes), then a visit from the newsletter that converts as
    // the range opens: the first visit started before the lookback, so it is no touch, though
    // its later events lie inside it.
    let lookback_start = from - 30 * day;
    visit("straddle", lookback_start - 40 * 60, campaign("Google", "launch"), out);
    visit("straddle", lookback_start - 20 * 60, campaign("", ""), out);
    visit("straddle", lookback_start + 5 * 60, campaign("", ""), out);
    visit("straddle", from, campaign("Newsletter", "spring"), out);
    buy("straddle", from + 5 * 60, campaign("Newsletter", "spring"), "3", "EUR", out);
    // Converts twice, in two currencies.
    visit("twice", t0 - 2 * day, campaign("Google", "launch"), out);
    buy("twice", t0 - 2 * day + 30, campaign("Google", "launch"), "10", "EUR", out);
    visit("twice", t0 + day, campaign("ChatGPT", ""), out);
    buy("twice", t0 + day + 30, campaign("ChatGPT", ""), "7.25", "USD", out);
}

struct Touch {
    start: i64,
    value: String,
    direct: bool,
    /// Whether the filters match the visit: its country, or one of its events' currency.
    hit: bool,
}

/// A model's weights for touches sorted by start, converting at `t`.
fn weights(model: &str, tt: &[&Touch], t: i64) -> Vec<f64> {
    let n = tt.len();
    let one_at = |k: usize| (0..n).map(|i| if i == k { 1.0 } else { 0.0 }).collect::<Vec<f64>>();
    match model {
        "first_touch" => one_at(0),
        "last_touch" => one_at(n - 1),
        "last_non_direct" => one_at(tt.iter().rposition(|x| !x.direct).unwrap_or(n - 1)),
        "linear" => vec![1.0 / n as f64; n],
        "position_based" => match n {
            1 => vec![1.0],
            2 => vec![0.5, 0.5],
            _ => (0..n).map(|i| if i == 0 || i == n - 1 { 0.4 } else { 0.2 / (n - 2) as f64 }).collect(),
        },
        "time_decay" => {
            let raw: Vec<f64> = tt.iter().map(|x| 0.5f64.powf((t - x.start) as f64 / (7.0 * 86_400.0))).collect();
            let sum: f64 = raw.iter().sum();
            raw.iter().map(|w| w / sum).collect()
        }
        other => panic!("no model {other}"),
    }
}

fn micros(s: &str) -> i128 {
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let m = int.parse::<i128>().unwrap() * 1_000_000 + format!("{frac:0<6}").parse::<i128>().unwrap();
    if neg {
        -m
    } else {
        m
    }
}

fn decimal(m: i128) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let frac = format!("{:06}", m.abs() % 1_000_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{}", m.abs() / 1_000_000)
    } else {
        format!("{sign}{}.{frac}", m.abs() / 1_000_000)
    }
}

/// The oracle's answer: (channels by value: credited, revenue by currency, visitors), total
/// conversions, total revenue by currency.
#[allow(clippy::type_complexity)]
fn expect_attribution(
    events: &[Ev],
    revenues: &Revenues,
    project: &str,
    body: &Value,
    from: i64,
    to: i64,
) -> (BTreeMap<String, (f64, BTreeMap<String, f64>, u64)>, u64, BTreeMap<String, String>) {
    let model = body["model"].as_str().unwrap_or("last_non_direct");
    let lookback = match body["lookback"].as_str() {
        Some(l) => l.trim_end_matches('d').parse::<i64>().unwrap() * 86_400,
        None => 30 * 86_400,
    };
    let all = body["count"] == "all";
    let channel = match body["channel"].as_str() {
        Some("visit:utm_campaign") => 5,
        Some("visit:medium") => 1,
        Some("visit:click_id_type") => 8,
        _ => 0,
    };
    // The filters the oracle knows: a visit's country is one; an event's currency is not one.
    let filter = |op: &str, dim: &str| {
        (body["filters"][0][0] == op && body["filters"][0][1] == dim).then(|| body["filters"][0][2][0].as_str()).flatten()
    };
    let country = filter("is", "visit:country");
    let not_currency = filter("is_not", "event:revenue_currency");
    let currency_ok = |e: &Ev| not_currency.is_none_or(|c| revenues.get(&e.id).is_none_or(|r| r.1 != c));
    let goal = body["goal"]["event"].as_str().unwrap();
    let mut per_visitor: BTreeMap<String, Vec<&Ev>> = BTreeMap::new();
    // The lookback, and a day before it: a visit running when the lookback starts keeps its start.
    for e in events.iter().filter(|e| e.project == project && !e.bot && e.t >= from - lookback - 86_400 && e.t < to) {
        per_visitor.entry(e.aid.clone()).or_default().push(e);
    }
    let (mut channels, mut conversions, mut revenue) = (BTreeMap::new(), 0u64, BTreeMap::<String, i128>::new());
    for evs in per_visitor.values_mut() {
        evs.sort_by(|a, b| (a.t, &a.id).cmp(&(b.t, &b.id)));
        let mut touches: Vec<Touch> = Vec::new();
        // (time, event id, amount, currency, the converting visit's start): the first is the
        // lowest (time, event id).
        let mut convs: Vec<(i64, String, String, String, i64)> = Vec::new();
        for (i, e) in evs.iter().enumerate() {
            if i == 0 || e.t - evs[i - 1].t >= GAP {
                touches.push(Touch { start: e.t, value: e.attrs[channel].clone(), direct: e.attrs[0].is_empty(), hit: false });
            }
            let visit = touches.last_mut().unwrap();
            let first_of_visit = evs.iter().find(|x| x.t == visit.start).unwrap();
            let matches = country.is_none_or(|c| first_of_visit.attrs[9] == c) && currency_ok(e);
            visit.hit |= matches;
            if e.name == goal && e.t >= from && matches {
                let (amount, cur) = revenues.get(&e.id).cloned().unwrap_or(("0".into(), String::new()));
                convs.push((e.t, e.id.clone(), amount, cur, visit.start));
            }
        }
        convs.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        // Visits in the range that the filters match.
        let mut brought: Vec<&str> =
            touches.iter().filter(|x| x.start >= from && x.start < to && x.hit).map(|x| x.value.as_str()).collect();
        brought.sort();
        brought.dedup();
        for b in brought {
            channels.entry(b.to_string()).or_insert((0.0, BTreeMap::new(), 0)).2 += 1;
        }
        for c in convs.iter().take(if all { usize::MAX } else { 1 }) {
            let tt: Vec<&Touch> = touches.iter().filter(|x| (x.start >= c.0 - lookback && x.start <= c.0) || x.start == c.4).collect();
            let w = weights(model, &tt, c.0);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{model}: weights {w:?} do not sum to 1");
            conversions += 1;
            if !c.3.is_empty() {
                *revenue.entry(c.3.clone()).or_default() += micros(&c.2);
            }
            for (x, wi) in tt.iter().zip(w) {
                let ch = channels.entry(x.value.clone()).or_insert((0.0, BTreeMap::new(), 0));
                ch.0 += wi;
                if !c.3.is_empty() {
                    *ch.1.entry(c.3.clone()).or_insert(0.0) += wi * micros(&c.2) as f64 / 1e6;
                }
            }
        }
    }
    channels.retain(|_, c| c.0 > 1e-9 || c.2 > 0);
    (channels, conversions, revenue.into_iter().map(|(k, m)| (k, decimal(m))).collect())
}

fn close(a: &Value, b: f64, what: &str) {
    let a = a.as_f64().unwrap_or_else(|| panic!("{what}: {a} is not a number"));
    assert!((a - (b * 100.0).round() / 100.0).abs() < 0.0101, "{what}: got {a}, the oracle says {b}");
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn attribution_matches_the_oracle() {
    let DstDays { dst, first, last, from, to } = DstDays::around(3, 3);
    let stack = Stack::named("attribution").start();
    let read = stack.start_read();
    let mut rng = Rng(0xa77_5eed_0042_1234);
    let (mut events, mut revenues) = (Vec::new(), Revenues::new());
    shoppers("proj_dev", &mut rng, from, to, 160, &mut events, &mut revenues);
    shoppers("proj_other", &mut rng, from, to, 40, &mut events, &mut revenues);
    let t0 = midnight(dst) + 2 * 3600 + 1800;
    attribution_cases("proj_dev", t0, from, &mut events, &mut revenues);
    attribution_cases("proj_other", t0 + 7, from, &mut events, &mut revenues);
    let body: String = events.iter().map(|e| row_with_revenue(e, &revenues)).collect::<Vec<_>>().join("\n");
    stack.query(&format!("INSERT INTO events FORMAT JSONEachRow\n{body}"));
    assert_eq!(stack.query("SELECT count() FROM events WHERE revenue_currency != ''").trim(), revenues.len().to_string());

    let range = json!([first.to_string(), last.to_string()]);
    let auth = format!("Bearer {DEV_READ_ONLY}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let purchase = json!({"event": "purchase"});
    let mut bodies: Vec<Value> = ["last_non_direct", "last_touch", "first_touch", "linear", "position_based", "time_decay"]
        .iter()
        .map(|m| json!({"goal": purchase, "date_range": range, "timezone": ZONE, "model": m, "pagination": {"limit": 10000}}))
        .collect();
    bodies.push(
        json!({"goal": purchase, "date_range": range, "timezone": ZONE, "model": "linear", "count": "all", "pagination": {"limit": 10000}}),
    );
    bodies.push(json!({"goal": purchase, "date_range": range, "timezone": ZONE, "model": "position_based", "channel": "visit:utm_campaign", "count": "all", "pagination": {"limit": 10000}}));
    bodies.push(json!({"goal": purchase, "date_range": range, "timezone": ZONE, "model": "time_decay", "lookback": "90d", "pagination": {"limit": 10000}}));
    bodies.push(json!({"goal": {"event": "signup"}, "date_range": range, "timezone": ZONE, "model": "last_touch", "lookback": "1d", "pagination": {"limit": 10000}}));
    bodies.push(json!({"goal": purchase, "date_range": range, "timezone": ZONE, "filters": [["is", "visit:country", ["DE"]]], "pagination": {"limit": 10000}}));
    bodies.push(json!({"goal": purchase, "date_range": range, "timezone": ZONE, "filters": [["is_not", "event:revenue_currency", ["USD"]]], "pagination": {"limit": 10000}}));
    bodies.push(json!({"goal": purchase, "date_range": range, "timezone": ZONE, "model": "last_touch", "channel": "visit:medium", "pagination": {"limit": 10000}}));
    bodies.push(json!({"goal": purchase, "date_range": range, "timezone": ZONE, "model": "linear", "channel": "visit:click_id_type", "count": "all", "pagination": {"limit": 10000}}));
    let mut blind = 0;
    for body in &bodies {
        let r = read.request("POST", "/v1/attribution", &headers, body.to_string().as_bytes());
        assert_eq!(r.status, 200, "{body}: {:?}\n{}", r.body, read.logs());
        let (channels, conversions, revenue) = expect_attribution(&events, &revenues, "proj_dev", body, from, to);
        assert!(conversions > 5, "the oracle found few conversions for {body}");
        assert_eq!(r.body["total"]["conversions"], conversions, "{body}: {}", r.body);
        if body["goal"]["event"] == "purchase" {
            assert_eq!(r.body["total"]["revenue"], json!(revenue), "{body}");
        }
        let got = r.body["channels"].as_array().unwrap();
        let names: Vec<&str> = got.iter().map(|c| c["value"].as_str().unwrap()).collect();
        let shown = |v: &str| if v.is_empty() { "(none)".to_string() } else { v.to_string() };
        let mut want_names: Vec<String> = channels.keys().map(|k| shown(k)).collect();
        let mut got_names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        want_names.sort();
        got_names.sort();
        assert_eq!(got_names, want_names, "{body}");
        let mut credited_sum = 0.0;
        for c in got {
            let key = if c["value"] == "(none)" { String::new() } else { c["value"].as_str().unwrap().to_string() };
            let (credited, rev, visitors) = &channels[&key];
            close(&c["conversions"], *credited, &format!("{body} {key} conversions"));
            close(&c["share"], credited * 100.0 / conversions as f64, &format!("{body} {key} share"));
            assert_eq!(c["visitors"], *visitors, "{body} {key} visitors");
            for (cur, x) in rev {
                close(&c["revenue"][cur], *x, &format!("{body} {key} revenue {cur}"));
            }
            credited_sum += c["conversions"].as_f64().unwrap();
        }
        // The channels' revenue adds up to the total, to the cent.
        if body["goal"]["event"] == "purchase" {
            for (cur, total) in r.body["total"]["revenue"].as_object().unwrap() {
                let cents = |x: f64| (x * 100.0).round() as i64;
                let parts: i64 = got.iter().filter_map(|c| c["revenue"][cur].as_f64()).map(cents).sum();
                assert_eq!(parts, cents(total.as_str().unwrap().parse().unwrap()), "{body} {cur}: {}", r.body);
            }
        }
        // Every model's weights sum to 1 per conversion: the credit adds up to the conversions.
        assert!((credited_sum - conversions as f64).abs() <= 0.01 * got.len() as f64, "{body}: credited {credited_sum} of {conversions}");
        // Had the other project's events counted, would the answer (which matched the oracle)
        // differ? Where it would, the match shows they did not.
        let leaky = expect_attribution(&as_one_project(&events), &revenues, "proj_dev", body, from, to);
        if leaky == (channels, conversions, revenue) {
            blind += 1;
        }
    }
    assert!(blind <= 2, "{blind} of {} bodies could not tell the other project's events from none", bodies.len());
    revenue_and_goals_in_the_stats_api(&read, &headers, &events, &revenues, &range, from, to);
    for (body, code) in [
        (json!({"goal": purchase, "date_range": "7d", "model": "u_shaped"}), "invalid_model"),
        (json!({"goal": purchase, "date_range": "7d", "lookback": "91d"}), "invalid_lookback"),
        (json!({"date_range": "7d"}), "invalid_goal"),
        (json!({"goal": purchase, "date_range": "7d", "channel": "visit:city"}), "invalid_channel"),
    ] {
        let r = read.request("POST", "/v1/attribution", &headers, body.to_string().as_bytes());
        assert_eq!((r.status, r.code()), (400, code), "{body}: {:?}", r.body);
    }
}

// ---- Retention ----

/// Visitors who come and go over nine weeks: pages, sign-ups, app pages.
fn regulars(project: &'static str, rng: &mut Rng, from: i64, to: i64, n: usize, out: &mut Vec<Ev>) {
    for v in 0..n {
        let aid = format!("{project}-r{v}");
        let mut t = from - 3 * 86_400 + rng.below_u64((to - from) as u64) as i64;
        while t < to + 86_400 {
            let e = match rng.below_u64(5) {
                0 => custom(project, &aid, format!("{aid}-{}", out.len()), t, "signup", None, attrs("", "DE")),
                1 | 2 => pageview(project, &aid, format!("{aid}-{}", out.len()), t, "/app/home", attrs("", "DE")),
                _ => pageview(project, &aid, format!("{aid}-{}", out.len()), t, "/", attrs("Google", "GB")),
            };
            out.push(e);
            t += rng.pick_gap();
        }
    }
}

trait Gap {
    fn pick_gap(&mut self) -> i64;
}

impl Gap for Rng {
    /// Minutes, a day or so, or a couple of weeks.
    fn pick_gap(&mut self) -> i64 {
        match self.below_u64(4) {
            0 => 60 + self.below_u64(3600) as i64,
            1 | 2 => 86_400 + self.below_u64(86_400) as i64,
            _ => 7 * 86_400 + self.below_u64(14 * 86_400) as i64,
        }
    }
}

/// The oracle's triangle: cohort day -> (size, visitors back per period offset).
fn expect_retention(events: &[Ev], project: &str, body: &Value, from: i64, to: i64, tz: &TimeZone) -> Value {
    use jiff::civil::Date;
    let period = body["period"].as_str().unwrap_or("week");
    let start_of = |d: Date| match period {
        "day" => d,
        "week" => d.checked_sub((d.weekday().to_monday_zero_offset() as i64).days()).unwrap(),
        _ => d.first_of_month(),
    };
    let offset = |a: Date, b: Date| match period {
        "day" => (b - a).get_days() as i64,
        "week" => (start_of(b) - start_of(a)).get_days() as i64 / 7,
        _ => (b.year() as i64 - a.year() as i64) * 12 + b.month() as i64 - a.month() as i64,
    };
    let local = |t: i64| Timestamp::from_second(t).unwrap().to_zoned_datetime(tz.clone()).date();
    let is = |goal: &Value, e: &Ev| match (goal["event"].as_str(), goal["page"].as_str()) {
        (Some(name), _) => e.name == name,
        (_, Some(p)) => e.pageview && p.strip_suffix('*').map_or(e.path == p, |pre| e.path.starts_with(pre)),
        _ => true,
    };
    let mut per_visitor: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.project == project && !e.bot && e.t >= from && e.t < to) {
        per_visitor.entry(&e.aid).or_default().push(e);
    }
    let mut cohorts: BTreeMap<Date, (u64, BTreeMap<i64, u64>)> = BTreeMap::new();
    for evs in per_visitor.values() {
        let Some(first) = evs.iter().filter(|e| is(&body["cohort_goal"], e)).map(|e| e.t).min() else { continue };
        let cohort = local(first);
        let c = cohorts.entry(start_of(cohort)).or_default();
        c.0 += 1;
        let mut back: Vec<i64> =
            evs.iter().filter(|e| is(&body["return_goal"], e)).map(|e| offset(cohort, local(e.t))).filter(|k| *k >= 0).collect();
        back.sort();
        back.dedup();
        for k in back {
            *c.1.entry(k).or_default() += 1;
        }
    }
    let last = local(to - 1);
    json!(cohorts
        .iter()
        .map(|(d, (size, back))| {
            let retention: Vec<Value> = (0..=offset(*d, last))
                .map(|k| {
                    let n = back.get(&k).copied().unwrap_or(0);
                    json!({"period": k, "visitors": n, "percentage": ((n as f64 * 100.0 / *size as f64) * 100.0).round() / 100.0})
                })
                .collect();
            json!({"cohort": d.to_string(), "size": size, "retention": retention})
        })
        .collect::<Vec<_>>())
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn retention_matches_the_oracle() {
    // Four weeks before Berlin's autumn DST change to three days after it, laid out from today.
    let DstDays { dst, first, last, from, to } = DstDays::around(27, 3);
    let stack = Stack::named("retention").start();
    let read = stack.start_read();
    let mut rng = Rng(0x4e7e_5eed_0042_9999);
    let mut events = Vec::new();
    regulars("proj_dev", &mut rng, from, to, 150, &mut events);
    regulars("proj_other", &mut rng, from, to, 40, &mut events);
    // A Sunday's last second and the Monday's first, in Berlin (in UTC both are Sunday): the
    // weeks are Berlin's. And an hour of the DST day that happens twice.
    let monday = dst.checked_add(1.days()).unwrap();
    for (i, t) in
        [midnight(monday) - 1, midnight(monday), midnight(dst) + 2 * 3600 + 1800, midnight(dst) + 3 * 3600 + 1800].iter().enumerate()
    {
        events.push(pageview("proj_dev", "midnight", format!("midnight-{i}"), *t, "/app/home", attrs("", "DE")));
    }
    let body: String = events.iter().map(row_json).collect::<Vec<_>>().join("\n");
    stack.query(&format!("INSERT INTO events FORMAT JSONEachRow\n{body}"));
    let auth = format!("Bearer {DEV_READ_ONLY}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let range = json!([first.to_string(), last.to_string()]);
    let dst_week = json!([dst.checked_sub(3.days()).unwrap().to_string(), last.to_string()]);
    let month = json!([first.first_of_month().checked_sub(1.months()).unwrap().to_string(), last.to_string()]);
    let bodies = [
        json!({"date_range": range, "timezone": ZONE, "period": "week"}),
        json!({"date_range": range, "timezone": ZONE, "period": "week", "cohort_goal": {"event": "signup"}, "return_goal": {"page": "/app/*"}}),
        json!({"date_range": dst_week, "timezone": ZONE, "period": "day"}),
        json!({"date_range": month, "timezone": ZONE, "period": "month", "return_goal": {"event": "signup"}}),
        json!({"date_range": range, "timezone": "UTC", "period": "week"}),
    ];
    for body in &bodies {
        let r = read.request("POST", "/v1/retention", &headers, body.to_string().as_bytes());
        assert_eq!(r.status, 200, "{body}: {:?}\n{}", r.body, read.logs());
        let tz = TimeZone::get(body["timezone"].as_str().unwrap()).unwrap();
        let (f, t) = {
            let d = |v: &Value| v.as_str().unwrap().parse::<jiff::civil::Date>().unwrap();
            let m = |x: jiff::civil::Date| x.to_zoned_datetime(tz.clone()).unwrap().timestamp().as_second();
            (m(d(&body["date_range"][0])), m(d(&body["date_range"][1]).tomorrow().unwrap()))
        };
        let want = expect_retention(&events, "proj_dev", body, f, t, &tz);
        assert!(want.as_array().unwrap().len() >= 2, "the oracle found few cohorts for {body}");
        assert_eq!(r.body["cohorts"], want, "retention {body}");
    }
    // The midnight visitor alone: back the next week in Berlin (Monday 00:00), not in UTC (where
    // that second is still Sunday), so the oracle's weeks are the zone's.
    let alone: Vec<Ev> = events.iter().filter(|e| e.aid == "midnight").cloned().collect();
    let back_next_week = |zone: &str| {
        let tz = TimeZone::get(zone).unwrap();
        let body = json!({"period": "week"});
        expect_retention(&alone, "proj_dev", &body, from, to, &tz)[0]["retention"][1]["visitors"].clone()
    };
    assert_eq!((back_next_week(ZONE), back_next_week("UTC")), (json!(1), json!(0)));
    let r = read.request("POST", "/v1/retention", &headers, json!({"date_range": "all", "period": "day"}).to_string().as_bytes());
    assert_eq!((r.status, r.code()), (400, "range_too_long"), "{:?}", r.body);
}

// ---- Paths ----

/// The oracle's paths for a start: (paths in the answer's order, total visits, total visitors).
fn expect_paths(events: &[Ev], project: &str, body: &Value, from: i64, to: i64) -> Value {
    let bots = body["include"]["bots"] == true;
    let next = body["direction"] != "previous";
    let depth = body["depth"].as_u64().unwrap_or(3) as usize;
    let start = &body["start"];
    let is_start = |e: &Ev| match (start["event"].as_str(), start["page"].as_str()) {
        (Some(name), _) => e.name == name,
        (_, Some(p)) => e.pageview && p.strip_suffix('*').map_or(e.path == p, |pre| e.path.starts_with(pre)),
        _ => false,
    };
    let mut per_visitor: BTreeMap<(String, bool), Vec<&Ev>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.project == project && e.t >= from && e.t < to && (bots || !e.bot)) {
        let visitor = if e.aid.is_empty() { format!("~{}", e.id) } else { e.aid.clone() };
        per_visitor.entry((visitor, e.bot)).or_default().push(e);
    }
    let mut found: BTreeMap<Vec<String>, (u64, std::collections::BTreeSet<String>)> = BTreeMap::new();
    let (mut visits, mut visitors) = (0u64, std::collections::BTreeSet::new());
    for ((aid, _), mut evs) in per_visitor {
        evs.sort_by(|a, b| (a.t, &a.id).cmp(&(b.t, &b.id)));
        let mut split: Vec<Vec<&Ev>> = Vec::new();
        for (i, e) in evs.iter().enumerate() {
            if i == 0 || e.t - evs[i - 1].t >= GAP {
                split.push(Vec::new());
            }
            split.last_mut().unwrap().push(e);
        }
        for mut visit in split {
            // A visit's events in the statement's fixed order: the whole event, time first.
            let key = |e: &Ev| {
                (e.t, if e.pageview { "pageview" } else { "custom" }, e.name.clone(), e.path.clone(), e.host.clone(), e.props.clone())
            };
            visit.sort_by_key(|e| key(e));
            let Some(a) = visit.iter().position(|e| is_start(e)) else { continue };
            let mut pages: Vec<&Ev> = if next { visit[a + 1..].to_vec() } else { visit[..a].iter().rev().copied().collect() };
            pages.retain(|e| e.pageview);
            let mut seq: Vec<String> = vec![if visit[a].pageview { visit[a].path.clone() } else { String::new() }];
            seq.extend(pages.iter().map(|e| e.path.clone()));
            let mut path: Vec<String> = (1..seq.len()).filter(|i| seq[*i] != seq[i - 1]).map(|i| seq[i].clone()).take(depth).collect();
            if path.len() < depth {
                path.push(if next { "(exit)" } else { "(entrance)" }.into());
            }
            visits += 1;
            visitors.insert(aid.clone());
            let f = found.entry(path).or_default();
            f.0 += 1;
            f.1.insert(aid.clone());
        }
    }
    // Steps in viewing order, and ties between paths by them.
    let viewed = |mut p: Vec<String>| {
        if !next {
            p.reverse();
        }
        p
    };
    let mut rows: Vec<(Vec<String>, u64, u64)> = found.into_iter().map(|(p, (n, v))| (viewed(p), n, v.len() as u64)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let paths: Vec<Value> = rows
        .into_iter()
        .map(|(p, n, v)| {
            json!({"steps": p, "visits": n, "visitors": v, "share": ((n as f64 * 100.0 / visits as f64) * 100.0).round() / 100.0})
        })
        .collect();
    json!({"paths": paths, "total": {"visits": visits, "visitors": visitors.len()}})
}

#[test]
#[ignore = "needs wrangler and ClickHouse: run scripts/test"]
fn paths_match_the_oracle() {
    let DstDays { dst, first, last, from, to } = DstDays::around(3, 3);
    let stack = Stack::named("paths").start();
    let read = stack.start_read();
    let mut rng = Rng(0x9a75_5eed_0042_3333);
    let mut events = Vec::new();
    generate("proj_dev", &mut rng, from, to, 150, &mut events);
    generate("proj_other", &mut rng, from, to, 40, &mut events);
    // A reload (the same page again at once) is one step; a visit that ends is an exit.
    let t0 = midnight(dst) + 2 * 3600 + 1800;
    for (i, path) in ["/pricing", "/pricing", "/blog/x", "/pricing", "/"].iter().enumerate() {
        events.push(pageview("proj_dev", "reloads", format!("reloads-{i}"), t0 + i as i64 * 60, path, attrs("", "DE")));
    }
    let body: String = events.iter().map(row_json).collect::<Vec<_>>().join("\n");
    stack.query(&format!("INSERT INTO events FORMAT JSONEachRow\n{body}"));
    let auth = format!("Bearer {DEV_READ_ONLY}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let range = json!([first.to_string(), last.to_string()]);
    let bodies = [
        json!({"start": {"page": "/pricing"}, "date_range": range, "timezone": ZONE}),
        json!({"start": {"page": "/pricing"}, "date_range": range, "timezone": ZONE, "depth": 1}),
        json!({"start": {"event": "signup"}, "date_range": range, "timezone": ZONE, "direction": "previous", "depth": 2}),
        json!({"start": {"page": "/*"}, "date_range": range, "timezone": ZONE, "depth": 2, "include": {"bots": true}}),
        json!({"start": {"page": "/blog/x"}, "date_range": range, "timezone": ZONE, "direction": "previous"}),
    ];
    for body in &bodies {
        let mut asked = body.clone();
        asked["pagination"] = json!({"limit": 10000});
        let r = read.request("POST", "/v1/paths", &headers, asked.to_string().as_bytes());
        assert_eq!(r.status, 200, "{body}: {:?}\n{}", r.body, read.logs());
        let want = expect_paths(&events, "proj_dev", body, from, to);
        assert!(want["total"]["visits"].as_u64().unwrap() > 5, "the oracle found few starts for {body}");
        assert_eq!(r.body["total"], want["total"], "paths total {body}");
        assert_eq!(r.body["paths"], want["paths"], "paths {body}");
    }
    // The reload visitor alone: /pricing, /pricing, /blog/x, /pricing, / is one path.
    let alone: Vec<Ev> = events.iter().filter(|e| e.aid == "reloads").cloned().collect();
    let want = expect_paths(&alone, "proj_dev", &bodies[0], from, to);
    assert_eq!(want["paths"][0]["steps"], json!(["/blog/x", "/pricing", "/"]));
    let r =
        read.request("POST", "/v1/paths", &headers, json!({"start": {"page": "/"}, "date_range": "7d", "depth": 4}).to_string().as_bytes());
    assert_eq!((r.status, r.code()), (400, "invalid_depth"), "{:?}", r.body);
}

/// `/v1/query` with revenue metrics and an inline goal: revenue per currency, exact, against the
/// events; mixed currencies refused; `conversion_rate` of a goal, ordered by it.
fn revenue_and_goals_in_the_stats_api(
    read: &support::ReadWorker,
    headers: &[(&str, &str)],
    events: &[Ev],
    revenues: &Revenues,
    range: &Value,
    from: i64,
    to: i64,
) {
    let ask = |body: Value| read.request("POST", "/v1/query", headers, body.to_string().as_bytes());
    let purchase = json!({"event": "purchase"});
    let r = ask(json!({"metrics": ["total_revenue", "average_revenue", "events"], "date_range": range, "timezone": ZONE,
        "dimensions": ["event:revenue_currency"], "goal": purchase}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut want: BTreeMap<String, (i128, u64)> = BTreeMap::new();
    for e in events.iter().filter(|e| e.project == "proj_dev" && !e.bot && e.t >= from && e.t < to && e.name == "purchase") {
        let (amount, cur) = &revenues[&e.id];
        let w = want.entry(cur.clone()).or_default();
        w.0 += micros(amount);
        w.1 += 1;
    }
    assert!(want.len() == 2, "both currencies: {want:?}");
    let got: BTreeMap<String, Value> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["dimensions"][0].as_str().unwrap().to_string(), row["metrics"].clone()))
        .collect();
    for (cur, (total, n)) in &want {
        // The average to the cent, half away from zero, in floating point (the service's is exact).
        let average = (*total as f64 / 1e6 / *n as f64 * 100.0).round() / 100.0;
        assert_eq!(got[cur][0], json!({"value": decimal(*total), "currency": cur}), "total_revenue {cur}");
        assert_eq!(got[cur][1]["value"].as_str().unwrap().parse::<f64>().unwrap(), average, "average_revenue {cur}");
        assert_eq!(got[cur][2], json!(n), "events {cur}");
    }
    // Ordered by the average: its values descend.
    let r = ask(
        json!({"metrics": ["average_revenue"], "date_range": range, "timezone": ZONE, "dimensions": ["event:revenue_currency"], "goal": purchase,
        "order_by": [["average_revenue", "desc"]]}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let averages: Vec<f64> =
        r.body["results"].as_array().unwrap().iter().map(|row| row["metrics"][0]["value"].as_str().unwrap().parse().unwrap()).collect();
    assert!(averages.len() == 2 && averages[0] >= averages[1], "{averages:?}");
    // A currency filter is no revenue metric: nothing to refuse; and every conversion query reads it.
    let not_usd = json!([["is_not", "event:revenue_currency", ["USD"]]]);
    assert_eq!(
        ask(json!({"metrics": ["visitors"], "date_range": range, "filters": [["is_not", "event:revenue_currency", ["(none)"]]]})).status,
        200
    );
    for (path, body) in [
        ("/v1/funnel", json!({"steps": [{"page": "/"}, {"event": "purchase"}], "date_range": range, "filters": not_usd})),
        ("/v1/retention", json!({"date_range": range, "filters": not_usd})),
        ("/v1/paths", json!({"start": {"page": "/"}, "date_range": range, "filters": not_usd})),
        ("/v1/attribution", json!({"goal": purchase, "date_range": range, "filters": not_usd})),
    ] {
        let r = read.request("POST", path, headers, body.to_string().as_bytes());
        assert_eq!(r.status, 200, "{path} {body}: {:?}", r.body);
    }
    // Both currencies in one row: refused, never converted.
    let r = ask(json!({"metrics": ["total_revenue"], "date_range": range, "timezone": ZONE, "goal": purchase}));
    assert_eq!((r.status, r.code()), (400, "mixed_currencies"), "{:?}", r.body);
    assert_eq!(
        ask(json!({"metrics": ["total_revenue"], "date_range": range, "goal": purchase, "source": "aggregates"})).code(),
        "not_in_aggregates"
    );
    // A page goal's conversion rate, ordered by it: each row's visitors on the page over its visitors.
    let by_source = |body: Value| -> BTreeMap<String, f64> {
        let r = ask(body);
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| (row["dimensions"][0].as_str().unwrap().to_string(), row["metrics"][0].as_f64().unwrap()))
            .collect()
    };
    let base = by_source(json!({"metrics": ["visitors"], "date_range": range, "timezone": ZONE, "dimensions": ["visit:source"]}));
    let on_page = by_source(
        json!({"metrics": ["visitors"], "date_range": range, "timezone": ZONE, "dimensions": ["visit:source"], "filters": [["is", "event:page", ["/"]]]}),
    );
    let r = ask(json!({"metrics": ["conversion_rate", "visitors"], "date_range": range, "timezone": ZONE, "dimensions": ["visit:source"],
        "goal": {"page": "/"}, "order_by": [["conversion_rate", "asc"]]}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rows = r.body["results"].as_array().unwrap();
    assert!(rows.len() >= 3, "{rows:?}");
    // The page is ClickHouse's, after the order: offset 1, limit 1 is the second row.
    let page =
        ask(json!({"metrics": ["conversion_rate", "visitors"], "date_range": range, "timezone": ZONE, "dimensions": ["visit:source"],
        "goal": {"page": "/"}, "order_by": [["conversion_rate", "asc"]], "pagination": {"limit": 1, "offset": 1}}));
    assert_eq!(page.body["results"], json!([rows[1]]), "{:?}", page.body);
    let mut last = -1.0;
    for row in rows {
        let (source, rate) = (row["dimensions"][0].as_str().unwrap(), row["metrics"][0].as_f64().unwrap());
        assert_eq!(row["metrics"][1].as_f64().unwrap(), on_page[source], "visitors who reached the goal, {source}");
        assert_eq!(rate, (on_page[source] * 100.0 / base[source] * 100.0).round() / 100.0, "the rate of {source}");
        assert!(rate >= last, "ordered by conversion rate: {rows:?}");
        last = rate;
    }
}
