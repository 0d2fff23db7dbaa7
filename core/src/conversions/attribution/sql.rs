//! Attribution in one statement, on ClickHouse 18.16 and modern servers alike.
//!
//! Inside out:
//! 1. Visits (`query::sql::visits_with`, with each event's revenue) over the range and the
//!    lookback before it (and a day more: `sql::VISIT_CONTEXT_SECONDS`), so a conversion's
//!    touches may lie before `date_range`, and a visit keeps its start however the lookback
//!    cuts it.
//! 2. Per visitor: its touches, sorted by start (start, channel value, not direct); its
//!    conversions in the range (time, revenue, currency, the converting visit's start), sorted;
//!    the channel values of its visits that start in the range and match the filters (what
//!    each channel brought).
//! 3. Per conversion counted (the first, or all): its touches are the visits that start within
//!    `lookback` before it (inclusive) and the converting visit; each gets the model's weight.
//!    Every (touch, weight) is a row; so is every channel a visitor was brought by.
//! 4. Per (channel value, currency): credited conversions and revenue, the conversions
//!    themselves (counted once, at their first touch), their exact revenue, and visitors brought.

use super::request::{Attribution, Model, HALF_LIFE};
use crate::conversions::common::name_visit_columns;
use crate::query::goal::VISIT_EVENT;
use crate::query::request::Dimension;
use crate::query::sql::{self, Level, Scope};

/// At most this many conversions of one visitor are credited (with `"count": "all"`).
pub const MAX_CONVERSIONS_PER_VISITOR: u32 = 1000;

/// The weight of touch `x`, the `i`-th (1-based) of a conversion's `q`: (conversion, touches,
/// n, the last non-direct touch's index, the sum of the touches' decays), by model.
fn weight(m: Model) -> String {
    match m {
        Model::FirstTouch => "toFloat64(i = 1)".into(),
        Model::LastTouch => "toFloat64(i = q.3)".into(),
        Model::LastNonDirect => "toFloat64(i = q.4)".into(),
        Model::Linear => "1 / q.3".into(),
        Model::PositionBased => "multiIf(q.3 = 1, 1., q.3 = 2, 0.5, i = 1 OR i = q.3, 0.4, 0.2 / (q.3 - 2))".into(),
        Model::TimeDecay => format!("{} / q.5", decay("x", "q.1")),
    }
}

/// A touch's decay before its conversion: it halves every HALF_LIFE seconds.
fn decay(touch: &str, conversion: &str) -> String {
    format!("pow(2, (toFloat64({touch}.1) - toFloat64(tupleElement({conversion}, 1))) / {HALF_LIFE})")
}

/// The statement: rows of `ch` (the channel value), `cur` (a conversion's currency, '' without
/// revenue), `credited`, `credited_revenue` (floats), `conversions` (at their first touch),
/// `revenue` (their exact sum, as text) and `visitors` (brought).
pub fn statement(a: &Attribution, s: &Scope) -> String {
    let (from, to, lookback) = (s.from, s.to, a.lookback);
    // The range's events, and of the lookback before it (and a day more, so a visit running
    // when the lookback starts keeps its real start and channel) only those of visitors with
    // an event in the range: no one else converts in it, and the lookback is most of what is read.
    let wide = Scope { from: s.from - i64::from(lookback) - sql::VISIT_CONTEXT_SECONDS, ..s.clone() };
    let in_range = format!("SELECT anonymous_id FROM {}.{} WHERE {} AND anonymous_id != ''", s.database, s.table, sql::scope_events(s));
    let events = format!(
        "{} AND (timestamp >= toDateTime({from}) OR (anonymous_id != '' AND anonymous_id IN ({in_range})))",
        sql::scope_events(&wide)
    );
    let attrs = a.common.visit_attrs(&[Dimension::Source, a.channel.clone()]);
    let visits = sql::visits_with(
        s.database,
        s.table,
        &events,
        &attrs,
        &["revenue_amount", "revenue_currency", "event_id"],
        a.common.reads_props([&a.goal]),
    );
    let ch = sql::column(&a.channel, s.timezone, Level::Raw);
    let filter = a.common.filter.as_ref().map(|f| format!(" AND {}", sql::condition(f, s.timezone, Level::Raw))).unwrap_or_default();
    let goal = a.goal.condition(VISIT_EVENT);
    let named = name_visit_columns(a.common.filter.as_ref(), s.timezone);
    // ev: 1 t, ..., 8 revenue_amount, 9 revenue_currency, 10 event_id. A conversion: (t,
    // event_id, amount, currency, its visit's start), so the first is the lowest (t, id). A
    // visit's conversions are picked before the visits are grouped: 18.16 cannot see a visit's
    // columns from a lambda inside an aggregate function.
    // A visit the filters match (one of its events does: a visit filter matches all or none).
    let hit = if filter.is_empty() { "1".to_string() } else { format!("arrayExists(ev -> 1{filter}, vevs)") };
    let per_visit = format!(
        "SELECT visitor, start, {ch} AS ch, toUInt8(v_source != '') AS nd, {hit} AS hit, \
         arrayMap(ev -> (ev.1, ev.10, ev.8, concat(ev.9, ''), start), arrayFilter(ev -> {goal} AND ev.1 >= {from} AND ev.1 < {to}{filter}, vevs)) AS cs \
         FROM ({visits}) WHERE notEmpty(vevs){named}"
    );
    let per_visitor = format!(
        "SELECT visitor, arraySort(groupArray((start, ch, nd))) AS touches, arraySort(groupArrayArray(cs)) AS convs, \
         groupUniqArrayIf(ch, start >= {from} AND start < {to} AND hit) AS brought FROM ({per_visit}) GROUP BY visitor"
    );
    let counted =
        if a.count_all { format!("arraySlice(convs, 1, {MAX_CONVERSIONS_PER_VISITOR})") } else { "arraySlice(convs, 1, 1)".into() };
    // Per conversion, once: its touches, their count, the last non-direct one, the decays' sum.
    let touches = format!(
        "arrayMap(c -> (c, arrayFilter(x -> (toInt64(x.1) >= toInt64(c.1) - {lookback} AND x.1 <= c.1) OR x.1 = c.5, touches)), {counted})"
    );
    let last_non_direct = "arrayFirstIndex(y -> y.3 = 1, arrayReverse(p.2))";
    let context = format!(
        "arrayMap(p -> (p.1, p.2, length(p.2), if({last_non_direct} = 0, length(p.2), toUInt64(length(p.2) + 1 - {last_non_direct})), arraySum(y -> {}, p.2)), {touches})",
        decay("y", "p.1")
    );
    // Each visitor with something to count (the WHERE also names the columns the lambdas read).
    let per_conversion =
        format!("SELECT {context} AS ctx, brought FROM ({per_visitor}) WHERE notEmpty(touches) AND (notEmpty(convs) OR notEmpty(brought))");
    let credits = format!(
        "arrayReduce('groupArrayArray', arrayMap(q -> arrayMap((x, i) -> (x.2, toFloat64({w}), tupleElement(q.1, 3), tupleElement(q.1, 4), toUInt8(i = 1)), q.2, arrayEnumerate(q.2)), ctx))",
        w = weight(a.model),
    );
    let items = format!("arrayConcat({credits}, arrayMap(b -> (b, toFloat64(0), toDecimal64(0, 6), '', toUInt8(2)), brought))");
    format!(
        "SELECT it.1 AS ch, it.4 AS cur, sum(it.2) AS credited, sum(toFloat64(it.3) * it.2) AS credited_revenue, countIf(it.5 = 1) AS conversions, \
         toString(sumIf(it.3, it.5 = 1)) AS revenue, countIf(it.5 = 2) AS visitors FROM ({per_conversion}) ARRAY JOIN {items} AS it \
         WHERE notEmpty(ctx) OR notEmpty(brought) GROUP BY ch, cur FORMAT JSONEachRow"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::attribution::request::parse;

    #[test]
    fn one_statement_reaching_back_by_the_lookback() {
        let a = parse(br#"{"goal":{"event":"sign'up"},"date_range":["2026-11-01","2026-11-30"],"lookback":"7d","channel":"visit:utm_campaign","filters":[["is","visit:country",["DE"]]]}"#, None, 1_796_032_800_000).unwrap();
        let s = a.common.scope("millimetric", "events", "p'1");
        let sql = statement(&a, &s);
        assert!(
            sql.contains(&format!("timestamp >= toDateTime({})", s.from - 7 * 86_400 - 86_400)),
            "the lookback is read, and a day before it for the visits running when it starts: {sql}"
        );
        assert!(sql.contains(&format!("OR (anonymous_id != '' AND anonymous_id IN (SELECT anonymous_id FROM millimetric.events WHERE project_id = 'p\\'1' AND timestamp >= toDateTime({})", s.from)), "of the range's visitors: {sql}");
        assert!(sql.contains(&format!("ev.1 >= {} AND ev.1 < {}", s.from, s.to)), "conversions in the range only: {sql}");
        assert!(
            sql.contains("project_id = 'p\\'1'")
                && sql.contains("is_bot = 0")
                && sql.contains("'sign\\'up'")
                && sql.contains("(v_country IN ('DE'))")
        );
        assert!(sql.contains("v_utm_campaign") && sql.contains("arraySlice(convs, 1, 1)") && sql.ends_with("FORMAT JSONEachRow"));
        // Review finding: the visitors a channel brought counted every visit, so a DE-only
        // answer listed channels of GB visitors beside DE conversions.
        assert!(
            sql.contains("arrayExists(ev -> 1 AND (v_country IN ('DE')), vevs) AS hit"),
            "a visit counts as brought only where the filters match it: {sql}"
        );
        assert!(sql.contains(&format!("groupUniqArrayIf(ch, start >= {} AND start < {} AND hit)", s.from, s.to)), "{sql}");
        assert!(
            sql.contains("arraySlice(convs, 1, 1)") && sql.contains("ev.10") && sql.contains("event_id"),
            "the first by (t, event id): {sql}"
        );
        let all = parse(br#"{"goal":{"event":"a"},"date_range":"7d","count":"all","model":"time_decay"}"#, None, 0).unwrap();
        let sql = statement(&all, &all.common.scope("millimetric", "events", "p"));
        assert!(sql.contains("arraySlice(convs, 1, 1000)") && sql.contains("/ 604800) / q.5"), "{sql}");
        // Each model's weight names only the conversion's precomputed context.
        for m in Model::ALL {
            assert!(!weight(m).contains("arrayFilter"), "{m:?} recomputes the touches per touch");
        }
    }
}
