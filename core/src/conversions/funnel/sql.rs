//! A funnel in one statement, on ClickHouse 18.16 and modern servers alike (no window
//! functions, no `windowFunnel` modes: its strict modes came after 2018, and its default
//! mode carries no step times).
//!
//! Inside out:
//! 1. The query's visits (`query::sql::visits`, so filters mean what they mean in
//!    `/v1/query`), expanded to their events; each event gets `mask` (bit k-1: it is step k)
//!    and `rank` (its lowest step, n+1 for none). With `ordered`, only step events are kept.
//! 2. Per visitor (or visit), its events sorted by (time, rank): equal timestamps are taken in
//!    step order. For every event that is step 1 (a start), the earliest later event that is
//!    step 2 within `window` of the start, then step 3 after that, and so on (`strict`: the
//!    very next event, or nothing). Earliest-first is optimal for a given start, so the
//!    furthest step reached from any start is the best over starts. The earliest start that
//!    reaches it gives the step times and the breakdown value.
//! 3. How many reached each step, and the median seconds between steps: in all (`total` 1)
//!    and, with a breakdown, per value (`total` 0) in the same pass, each visitor counted in
//!    both rows (an ARRAY JOIN of the two).

use super::request::{By, Funnel, Order};

/// Of one visitor (or visit), the first this many events are read, and the first this many of
/// them that are step 1 are tried as starts: one visitor's flood of events bounds its own work
/// (starts x events) instead of the query's.
pub const MAX_EVENTS: u32 = 10_000;
pub const MAX_STARTS: u32 = 100;
use crate::query::goal::VISIT_EVENT;
use crate::query::sql::{self, Level, Scope};

/// The statement's columns: `total` (1: the whole funnel, first; 0: a breakdown value's),
/// `d0`, `r1..rN` (reached step k), `m2..mN` (median seconds from step k-1 to k, over those
/// who reached k). Breakdown rows by step-1 count, then value: the first `offset + limit`.
pub fn statement(f: &Funnel, s: &Scope) -> String {
    let n = f.steps.len();
    let conds: Vec<String> = f.steps.iter().map(|g| g.condition(VISIT_EVENT)).collect();
    let mask = conds.iter().enumerate().map(|(i, c)| format!("toUInt16({c}) * {}", 1u32 << i)).collect::<Vec<_>>().join(" + ");
    let rank =
        format!("multiIf({}, {})", conds.iter().enumerate().map(|(i, c)| format!("{c}, {}", i + 1)).collect::<Vec<_>>().join(", "), n + 1);
    let bd = match &f.breakdown {
        Some(d) => sql::column(d, s.timezone, Level::Raw),
        None => "''".into(),
    };
    let mut wheres: Vec<String> = f.common.filter.iter().map(|x| sql::condition(x, s.timezone, Level::Raw)).collect();
    if f.order == Order::Ordered {
        wheres.push("mask > 0".into());
    }
    let where_ = if wheres.is_empty() { String::new() } else { format!(" WHERE {}", wheres.join(" AND ")) };
    let attrs = f.common.visit_attrs(f.breakdown.as_slice());
    let visits =
        sql::visits_with(s.database, s.table, &sql::scope_events(s), &attrs, f.common.revenue_columns(), f.common.reads_props(&f.steps));
    let events = format!(
        "SELECT visitor, is_bot, vi, {bd} AS bd, ev.1 AS t, {rank} AS rank, ({mask}) AS mask FROM ({visits}) ARRAY JOIN vevs AS ev{where_}"
    );
    let key = match f.by {
        By::Visitor => "visitor",
        By::Visit => "visitor, is_bot, vi",
    };
    let w = f.window;
    let mut steps = vec![format!("arraySlice(arrayFilter(k -> bitAnd(ms[k], 1) != 0, arrayEnumerate(ms)), 1, {MAX_STARTS}) AS j1")];
    for k in 2..=n {
        let bit = 1u32 << (k - 1);
        let next = match f.order {
            Order::Ordered => format!("if(j = 0, 0, arrayFirstIndex((m, u, i) -> i > j AND bitAnd(m, {bit}) != 0 AND u <= ts[s] + {w}, ms, ts, arrayEnumerate(ms)))"),
            Order::Strict => format!("if(j > 0 AND j < length(ms) AND bitAnd(ms[j + 1], {bit}) != 0 AND ts[j + 1] <= ts[s] + {w}, j + 1, 0)"),
        };
        steps.push(format!("arrayMap((j, s) -> {next}, j{}, j1) AS j{k}", k - 1));
    }
    let args: Vec<String> = (1..=n).map(|k| format!("a{k}")).collect();
    let reached = args.iter().map(|a| format!("toUInt8({a} > 0)")).collect::<Vec<_>>().join(" + ");
    let js: Vec<String> = (1..=n).map(|k| format!("j{k}")).collect();
    let times = (1..=n).map(|k| format!("if(lvl >= {k}, ts[j{k}[bi]], 0) AS t{k}")).collect::<Vec<_>>().join(", ");
    let per_group = format!(
        "SELECT arraySlice(arraySort(x -> (x.1, x.2, x.3, x.4), groupArray((t, rank, mask, bd))), 1, {MAX_EVENTS}) AS evs, arrayMap(x -> x.1, evs) AS ts, arrayMap(x -> x.3, evs) AS ms, \
         {steps}, arrayMap(({args}) -> {reached}, {js}) AS lv, if(empty(j1), 0, arrayReduce('max', lv)) AS lvl, arrayFirstIndex(l -> l = lvl, lv) AS bi, \
         {times}, if(lvl >= 1, tupleElement(arrayElement(evs, arrayElement(j1, bi)), 4), '') AS bd0 FROM ({events}) GROUP BY {key}",
        steps = steps.join(", "),
        args = args.join(", "),
        js = js.join(", "),
    );
    let mut cols = vec!["count() AS r1".to_string()];
    cols.extend((2..=n).map(|k| format!("countIf(lvl >= {k}) AS r{k}")));
    cols.extend((2..=n).map(|k| format!("quantileExactIf(0.5)(toInt64(t{k}) - toInt64(t{}), lvl >= {k}) AS m{k}", k - 1)));
    let cols = cols.join(", ");
    if f.breakdown.is_some() {
        format!(
            "SELECT g.1 AS total, g.2 AS d0, {cols} FROM ({per_group}) ARRAY JOIN [(1, ''), (0, bd0)] AS g WHERE lvl >= 1 \
             GROUP BY g ORDER BY total DESC, r1 DESC, d0 ASC LIMIT {} FORMAT JSONEachRow",
            f.offset + f.limit + 1
        )
    } else {
        format!("SELECT 1 AS total, '' AS d0, {cols} FROM ({per_group}) WHERE lvl >= 1 FORMAT JSONEachRow")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::funnel::request::parse;

    fn scope(f: &Funnel) -> Scope<'_> {
        f.common.scope("millimetric", "events", "p'1")
    }

    #[test]
    fn one_statement_per_answer_scoped_to_the_project() {
        let body = r#"{"steps":[{"page":"/pricing"},{"event":"sign'up"},{"event":"pay"}],"date_range":"7d","filters":[["is","visit:country",["DE"]]]"#;
        let f = parse(format!("{body}}}").as_bytes(), None, 1_796_032_800_000).unwrap();
        let total = statement(&f, &scope(&f));
        let f = parse(
            format!(r#"{body},"breakdown":"visit:source","pagination":{{"limit":10,"offset":5}}}}"#).as_bytes(),
            None,
            1_796_032_800_000,
        )
        .unwrap();
        let split = statement(&f, &scope(&f));
        for sql in [&total, &split] {
            assert!(sql.contains("project_id = 'p\\'1'") && sql.contains("is_bot = 0") && sql.contains("'sign\\'up'"), "{sql}");
            assert!(sql.contains("(v_country IN ('DE'))") && sql.contains("mask > 0") && sql.contains("u <= ts[s] + 86400"), "{sql}");
            assert!(sql.contains("AS j3") && !sql.contains("AS j4") && sql.contains("AS m3") && sql.ends_with("FORMAT JSONEachRow"));
            assert!(sql.contains("GROUP BY visitor)"), "by visitor: {sql}");
        }
        assert!(
            split.contains("v_source AS bd") && split.contains("GROUP BY g ORDER BY total DESC, r1 DESC, d0 ASC LIMIT 16 FORMAT"),
            "{split}"
        );
        assert!(total.contains("'' AS bd") && !total.contains("GROUP BY g"), "{total}");
    }

    #[test]
    fn strict_order_keeps_every_event_and_takes_the_next() {
        let f = parse(br#"{"steps":[{"page":"/"},{"event":"a"}],"date_range":"7d","order":"strict","by":"visit","window":"30m"}"#, None, 0)
            .unwrap();
        let sql = statement(&f, &scope(&f));
        assert!(!sql.contains("mask > 0") && sql.contains("bitAnd(ms[j + 1], 2) != 0 AND ts[j + 1] <= ts[s] + 1800"), "{sql}");
        assert!(sql.contains("GROUP BY visitor, is_bot, vi"), "{sql}");
    }
}
