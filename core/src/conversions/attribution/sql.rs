//! Attribution in one statement, on ClickHouse 18.16 and modern servers alike.
//!
//! Inside out:
//! 1. Visits (`query::sql::visits_with`, with each event's revenue) over the range and the
//!    lookback before it, so a conversion's touches may lie before `date_range`.
//! 2. Per visitor: its touches, sorted by start (start, channel value, not direct); its
//!    conversions in the range (time, revenue, currency, the converting visit's start), sorted;
//!    the channel values of its visits that start in the range (what each channel brought).
//! 3. Per conversion counted (the first, or all): its touches are the visits that start within
//!    `lookback` before it (inclusive) and the converting visit; each gets the model's weight.
//!    Every (touch, weight) is a row; so is every channel a visitor was brought by.
//! 4. Per (channel value, currency): credited conversions and revenue, the conversions
//!    themselves (counted once, at their first touch), their exact revenue, and visitors brought.

use super::request::{Attribution, Model, HALF_LIFE};
use crate::conversions::goal::VISIT_EVENT;
use crate::query::sql::{self, Level, Scope};

/// The weight of touch `i` (1-based) of `n` in `tt` (the conversion `c`'s touches), by model.
fn weight(m: Model, tt: &str) -> String {
    let n = format!("length({tt})");
    match m {
        Model::FirstTouch => "toFloat64(i = 1)".into(),
        Model::LastTouch => format!("toFloat64(i = {n})"),
        Model::LastNonDirect => {
            let back = format!("arrayFirstIndex(y -> y.3 = 1, arrayReverse({tt}))");
            format!("toFloat64(i = if({back} = 0, {n}, toUInt64({n} + 1 - {back})))")
        }
        Model::Linear => format!("1 / {n}"),
        Model::PositionBased => format!("multiIf({n} = 1, 1., {n} = 2, 0.5, i = 1 OR i = {n}, 0.4, 0.2 / ({n} - 2))"),
        Model::TimeDecay => {
            let decay = |v: &str| format!("pow(2, (toFloat64({v}.1) - toFloat64(c.1)) / {HALF_LIFE})");
            format!("{} / arraySum(y -> {}, {tt})", decay("x"), decay("y"))
        }
    }
}

/// The statement: rows of `ch` (the channel value), `cur` (a conversion's currency, '' without
/// revenue), `credited`, `credited_revenue` (floats), `conversions` (at their first touch),
/// `revenue` (their exact sum, as text) and `visitors` (brought).
pub fn statement(a: &Attribution, s: &Scope) -> String {
    let (from, to, lookback) = (s.from, s.to, a.lookback);
    let wide = Scope { from: s.from - i64::from(lookback), ..s.clone() };
    let visits = sql::visits_with(s.database, s.table, &sql::scope_events(&wide), &["revenue_amount", "revenue_currency"]);
    let ch = sql::column(&a.channel, s.timezone, Level::Raw);
    let filter = a.common.filter.as_ref().map(|f| format!(" AND {}", sql::condition(f, s.timezone, Level::Raw))).unwrap_or_default();
    let goal = a.goal.condition(VISIT_EVENT);
    // ev: 1 t, ..., 8 revenue_amount, 9 revenue_currency.
    // A visit's conversions are picked before the visits are grouped (18.16 cannot see a
    // visit's columns from a lambda inside an aggregate function), and every column a lambda
    // reads is also named outside one (18.16 keeps of a subquery only the columns named so).
    let named: String = a
        .common
        .filter
        .iter()
        .flat_map(|f| f.dimensions())
        .filter(|d| !d.is_event_level())
        .map(|d| format!(" AND length({}) >= 0", sql::column(d, s.timezone, Level::Raw)))
        .collect();
    let per_visit = format!(
        "SELECT visitor, start, {ch} AS ch, toUInt8(v_source != '') AS nd, \
         arrayMap(ev -> (ev.1, ev.8, concat(ev.9, ''), start), arrayFilter(ev -> {goal} AND ev.1 >= {from} AND ev.1 < {to}{filter}, vevs)) AS cs \
         FROM ({visits}) WHERE notEmpty(vevs){named}"
    );
    let per_visitor = format!(
        "SELECT visitor, arraySort(groupArray((start, ch, nd))) AS touches, arraySort(groupArrayArray(cs)) AS convs, \
         groupUniqArrayIf(ch, start >= {from} AND start < {to}) AS brought FROM ({per_visit}) GROUP BY visitor"
    );
    let counted = if a.count_all { "convs" } else { "arraySlice(convs, 1, 1)" };
    let tt = format!("arrayFilter(x -> (toInt64(x.1) >= toInt64(c.1) - {lookback} AND x.1 <= c.1) OR x.1 = c.4, touches)");
    let credits = format!(
        "arrayReduce('groupArrayArray', arrayMap(c -> arrayMap((x, i) -> (x.2, toFloat64({w}), c.2, c.3, toUInt8(i = 1)), {tt}, arrayEnumerate({tt})), {counted}))",
        w = weight(a.model, &tt),
    );
    let items = format!("arrayConcat({credits}, arrayMap(b -> (b, toFloat64(0), toDecimal64(0, 6), '', toUInt8(2)), brought))");
    // The WHERE skips visitors with nothing to count, and names the columns the lambdas read.
    format!(
        "SELECT it.1 AS ch, it.4 AS cur, sum(it.2) AS credited, sum(toFloat64(it.3) * it.2) AS credited_revenue, countIf(it.5 = 1) AS conversions, \
         toString(sumIf(it.3, it.5 = 1)) AS revenue, countIf(it.5 = 2) AS visitors FROM ({per_visitor}) ARRAY JOIN {items} AS it \
         WHERE notEmpty(touches) AND (notEmpty(convs) OR notEmpty(brought)) GROUP BY ch, cur FORMAT JSONEachRow"
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
        assert!(sql.contains(&format!("timestamp >= toDateTime({})", s.from - 7 * 86_400)), "the lookback is read: {sql}");
        assert!(sql.contains(&format!("ev.1 >= {} AND ev.1 < {}", s.from, s.to)), "conversions in the range only: {sql}");
        assert!(
            sql.contains("project_id = 'p\\'1'")
                && sql.contains("is_bot = 0")
                && sql.contains("'sign\\'up'")
                && sql.contains("(v_country IN ('DE'))")
        );
        assert!(sql.contains("v_utm_campaign") && sql.contains("arraySlice(convs, 1, 1)") && sql.ends_with("FORMAT JSONEachRow"));
        for m in Model::ALL {
            assert!(!weight(m, "tt").is_empty());
        }
    }
}
