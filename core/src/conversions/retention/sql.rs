//! Retention in one statement, on ClickHouse 18.16 and modern servers alike: the query's
//! visits (so filters mean what they mean in `/v1/query`) expanded to their events; per
//! visitor, the cohort event (the first event in the range, or the first that is the cohort
//! goal) and the calendar periods, in the query's zone, with a returning event (any event, or
//! the return goal); per cohort, its size (offset -1) and the visitors back in each later
//! period (offset k >= 0).

use super::request::{Period, Retention};
use crate::query::goal::VISIT_EVENT;
use crate::query::sql::{self, Level, Scope};
use crate::storage::sql::string;

/// (period number, period start date) of a time expression, in zone `tz`.
fn period(p: Period, t: &str, tz: &str) -> (String, String) {
    let tz = string(tz);
    match p {
        Period::Day => (format!("toRelativeDayNum({t}, {tz})"), format!("toDate({t}, {tz})")),
        Period::Week => (format!("toRelativeWeekNum({t}, {tz})"), format!("toMonday({t}, {tz})")),
        Period::Month => (format!("toRelativeMonthNum({t}, {tz})"), format!("toStartOfMonth({t}, {tz})")),
    }
}

/// The statement: rows of `cohort` (the period's first day), `k` (-1: the cohort's size; else
/// the periods since the cohort's) and `n` (visitors).
pub fn statement(r: &Retention, s: &Scope) -> String {
    let goal = |g: &Option<crate::query::goal::Goal>| g.as_ref().map(|g| g.condition(VISIT_EVENT)).unwrap_or_else(|| "1".into());
    let (c, back) = (goal(&r.cohort_goal), goal(&r.return_goal));
    let where_ = r.common.filter.as_ref().map(|f| format!(" WHERE {}", sql::condition(f, s.timezone, Level::Raw))).unwrap_or_default();
    let props = r.common.reads_props(r.cohort_goal.iter().chain(r.return_goal.iter()));
    let visits =
        sql::visits_with(s.database, s.table, &sql::scope_events(s), &r.common.visit_attrs(&[]), r.common.revenue_columns(), props);
    let events =
        format!("SELECT visitor, ev.1 AS t, toUInt8({c}) AS c, toUInt8({back}) AS b FROM ({visits}) ARRAY JOIN vevs AS ev{where_}");
    let (num_t, _) = period(r.period, "toDateTime(t)", s.timezone);
    let per_visitor = format!("SELECT visitor, minIf(t, c = 1) AS ct, groupUniqArrayIf({num_t}, b = 1) AS back FROM ({events}) GROUP BY visitor HAVING countIf(c = 1) > 0");
    let (num_c, label_c) = period(r.period, "toDateTime(ct)", s.timezone);
    // The offsets are taken where `cn` is made: 18.16 keeps of a subquery only the columns
    // named outside a lambda.
    let offsets = format!(
        "SELECT ct, {num_c} AS cn, arrayFilter(x -> x >= 0, arrayMap(x -> toInt64(x) - toInt64(cn), back)) AS ks FROM ({per_visitor})"
    );
    format!(
        "SELECT toString({label_c}) AS cohort, arrayJoin(arrayConcat([-1], ks)) AS k, count() AS n FROM ({offsets}) GROUP BY cohort, k ORDER BY cohort, k FORMAT JSONEachRow"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::retention::request::parse;

    #[test]
    fn calendar_periods_in_the_query_zone() {
        let r = parse(br#"{"date_range":["2026-11-01","2026-11-30"],"timezone":"Europe/Berlin","cohort_goal":{"event":"sign'up"},"return_goal":{"page":"/app/*"},"filters":[["is","visit:country",["DE"]]]}"#, None, 0).unwrap();
        let sql = statement(&r, &r.common.scope("millimetric", "events", "p'1"));
        assert!(
            sql.contains("toRelativeWeekNum(toDateTime(t), 'Europe/Berlin')") && sql.contains("toMonday(toDateTime(ct), 'Europe/Berlin')"),
            "{sql}"
        );
        assert!(
            sql.contains("'sign\\'up'")
                && sql.contains("project_id = 'p\\'1'")
                && sql.contains("is_bot = 0")
                && sql.contains("(v_country IN ('DE'))"),
            "{sql}"
        );
        let r = parse(br#"{"date_range":["2026-11-01","2026-11-30"],"period":"day"}"#, None, 0).unwrap();
        let sql = statement(&r, &r.common.scope("millimetric", "events", "p"));
        assert!(sql.contains("toRelativeDayNum(toDateTime(t), 'UTC')") && sql.contains("toUInt8(1) AS c"), "{sql}");
    }
}
