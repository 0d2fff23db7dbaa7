//! Paths in one statement, on ClickHouse 18.16 and modern servers alike. Per visit (as
//! `/v1/query` derives them; an event filter keeps the matching events): its events in a fixed
//! order (time; custom events before pageviews; name; path; host; properties), the first that is the start goal, and the paths
//! of the pageviews after it (or before it, nearest first), a page viewed again at once
//! collapsed into one step (the start's own page included), cut at `depth`; a path shorter than
//! `depth` ends with `(exit)` (after) or `(entrance)` (before). Per path: visits and visitors;
//! the total (`total` 1, first) in the same pass.

use super::request::Paths;
use crate::conversions::common::name_visit_columns;
use crate::query::goal::VISIT_EVENT;
use crate::query::sql::{self, Level, Scope};
use crate::storage::sql::string;

pub const EXIT: &str = "(exit)";
pub const ENTRANCE: &str = "(entrance)";

/// The statement: rows of `total`, `path` (nearest step first), `visits`, `visitors`.
pub fn statement(p: &Paths, s: &Scope) -> String {
    let visits = sql::visits_with(
        s.database,
        s.table,
        &sql::scope_events(s),
        &p.common.visit_attrs(&[]),
        p.common.revenue_columns(),
        p.common.reads_props([&p.start]),
    );
    let keep = p.common.filter.as_ref().map(|f| sql::condition(f, s.timezone, Level::Raw)).unwrap_or_else(|| "1".into());
    let named = name_visit_columns(p.common.filter.as_ref(), s.timezone);
    let goal = p.start.condition(VISIT_EVENT);
    // ev: 1 t, 2 event_type, 3 event_name, 4 url_host, 5 url_path, 6 prop_keys, 7 prop_values;
    // sorted by time, then custom events ('event') before pageviews, name, path, host, props.
    let per_visit = format!(
        "SELECT visitor, arraySort(ev -> (ev.1, ev.2, ev.3, ev.5, ev.4, ev.6, ev.7), arrayFilter(ev -> {keep}, vevs)) AS evs, arrayFirstIndex(ev -> {goal}, evs) AS a FROM ({visits}) WHERE notEmpty(vevs){named}"
    );
    let (pages, end) =
        if p.next { ("arraySlice(evs, a + 1)", string(EXIT)) } else { ("arrayReverse(arraySlice(evs, 1, a - 1))", string(ENTRANCE)) };
    let depth = p.depth;
    let steps = format!(
        "SELECT visitor, arrayConcat([if(tupleElement(arrayElement(evs, a), 2) = 'pageview', tupleElement(arrayElement(evs, a), 5), '')], \
         arrayMap(ev -> ev.5, arrayFilter(ev -> ev.2 = 'pageview', {pages}))) AS seq, \
         arraySlice(arrayFilter((x, i) -> i > 1 AND x != seq[i - 1], seq, arrayEnumerate(seq)), 1, {depth}) AS st, \
         if(length(st) < {depth}, arrayConcat(st, [{end}]), st) AS pth FROM ({per_visit}) WHERE a > 0"
    );
    format!(
        "SELECT g.1 AS total, g.2 AS path, count() AS visits, uniqExact(visitor) AS visitors FROM ({steps}) ARRAY JOIN [(1, emptyArrayString()), (0, pth)] AS g \
         GROUP BY g ORDER BY total DESC, visits DESC, {viewed} ASC LIMIT {} FORMAT JSONEachRow",
        p.offset + p.limit + 1,
        // Ties by the path in viewing order: stored nearest step first when going back.
        viewed = if p.next { "path" } else { "arrayReverse(path)" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::paths::request::parse;

    #[test]
    fn next_and_previous_pages_of_one_project() {
        let p = parse(br#"{"start":{"page":"/pri'cing"},"date_range":"7d","depth":2,"filters":[["is","visit:country",["DE"]]]}"#, None, 0)
            .unwrap();
        let sql = statement(&p, &p.common.scope("millimetric", "events", "p'1"));
        assert!(sql.contains("project_id = 'p\\'1'") && sql.contains("is_bot = 0"), "{sql}");
        assert!(sql.contains("arraySlice(evs, a + 1)") && sql.contains("'(exit)'") && sql.contains("length(st) < 2"), "{sql}");
        assert!(sql.contains("AND length(v_country) >= 0") && sql.contains("(v_country IN ('DE'))"), "{sql}");
        let p = parse(br#"{"start":{"event":"signup"},"date_range":"7d","direction":"previous"}"#, None, 0).unwrap();
        let sql = statement(&p, &p.common.scope("millimetric", "events", "p"));
        assert!(sql.contains("arrayReverse(arraySlice(evs, 1, a - 1))") && sql.contains("'(entrance)'"), "{sql}");
        // Ties go by the path as it is viewed (stored nearest step first when going back).
        assert!(sql.contains("ORDER BY total DESC, visits DESC, arrayReverse(path) ASC"), "{sql}");
    }

    /// Same-second events: custom events before pageviews, then by name, then page (path, then
    /// host), as docs/conversions.md says; the tuple's own order would put the host first.
    #[test]
    fn same_second_events_go_by_name_then_page() {
        let p = parse(br#"{"start":{"page":"/pricing"},"date_range":"7d"}"#, None, 0).unwrap();
        let sql = statement(&p, &p.common.scope("millimetric", "events", "p"));
        assert!(sql.contains("arraySort(ev -> (ev.1, ev.2, ev.3, ev.5, ev.4, ev.6, ev.7), arrayFilter("), "{sql}");
        assert!(sql.contains("ORDER BY total DESC, visits DESC, path ASC"), "{sql}");
    }
}
