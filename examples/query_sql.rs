//! Prints the SQL a Stats API query (or a funnel, a body with `steps`; retention, `period`;
//! paths, `start`; attribution, `goal` without `metrics`) becomes, through the planner:
//! `cargo run --example query_sql -- '<query json>' [project] [database] [rollup frontier day]`.
//! With a frontier day (YYYY-MM-DD, the last rolled-up UTC day), queries routed to
//! aggregates read them up to it.
use millimetric_core::conversions::{attribution, funnel, paths, retention};
use millimetric_core::query::{aggregates, plan};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let body = args.get(1).cloned().unwrap_or_else(|| r#"{"metrics":["visitors"],"date_range":"7d"}"#.into());
    let project = args.get(2).map(String::as_str).unwrap_or("proj_dev");
    let database = args.get(3).map(String::as_str).unwrap_or("millimetric");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // Which API the body is for, by its top-level fields.
    let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    let has = |k: &str| fields.contains_key(k);
    if has("steps") {
        // A funnel (POST /v1/funnel): its one statement.
        let tables = plan::Tables { database, table: "events" };
        let f = funnel::plan(body.as_bytes(), project, None, tables, now).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", f.sql);
        return;
    }
    if has("period") || has("cohort_goal") || has("return_goal") {
        // Retention (POST /v1/retention).
        let tables = plan::Tables { database, table: "events" };
        let r = retention::plan(body.as_bytes(), project, None, tables, now).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", r.sql);
        return;
    }
    if has("start") {
        // Paths (POST /v1/paths).
        let tables = plan::Tables { database, table: "events" };
        let p = paths::plan(body.as_bytes(), project, None, tables, now).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", p.sql);
        return;
    }
    if has("goal") && !has("metrics") {
        // Attribution (POST /v1/attribution): its one statement. (A Stats API query may carry
        // a goal too; it always names its metrics.)
        let tables = plan::Tables { database, table: "events" };
        let a = attribution::plan(body.as_bytes(), project, None, tables, now).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", a.sql);
        return;
    }
    let mut p =
        plan::plan(body.as_bytes(), project, None, plan::Tables { database, table: "events" }, now).unwrap_or_else(|e| panic!("{e}"));
    if let (true, Some(day)) = (p.wants_frontier(), args.get(4)) {
        let cut = aggregates::parse_frontier(&format!("{day}\t1\n")).unwrap();
        p = p.with_frontier(cut).unwrap_or_else(|e| panic!("{e}"));
    }
    println!("{}", p.now.rows);
    for s in [p.now.total_rows, p.now.total_visitors, p.now.conversion_base].into_iter().flatten() {
        println!("{s}");
    }
}
