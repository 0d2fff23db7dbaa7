//! Prints, one per line, every kind of statement the read side and the batch writer's id
//! lookup send, for checking them on another ClickHouse (scripts/check-modern-clickhouse):
//! every metric, every dimension, each filter operator, both comparisons, the helpers, realtime
//! and the MCP tool list_events' statement.
//! `cargo run --example read_statements`
use millimetric_edge::query::{dates, events, plan, realtime, request, sql};

fn main() {
    let mut bodies: Vec<String> = Vec::new();
    let all_metrics = r#"["visitors","visits","pageviews","views_per_visit","bounce_rate","visit_duration","events","percentage"]"#;
    for d in request::dimension_names() {
        let d = d.replace("<key>", "plan");
        bodies.push(format!(r#"{{"metrics":{all_metrics},"date_range":["2026-11-01","2026-11-30"],"dimensions":["{d}"],"timezone":"Asia/Kolkata","include":{{"total_rows":true}}}}"#));
    }
    for op in ["is", "is_not", "contains", "contains_not", "matches", "matches_not"] {
        for d in ["event:page", "visit:country", "event:props:plan"] {
            bodies.push(format!(r#"{{"metrics":["visitors","pageviews"],"date_range":["2026-11-01","2026-11-30"],"filters":[["{op}","{d}",["/welcome","GB","pro"]]]}}"#));
        }
    }
    bodies.push(r#"{"metrics":["visitors","conversion_rate"],"date_range":["2026-11-01","2026-11-30"],"dimensions":["visit:source"],"filters":[["is","event:name",["signup"]]],"compare":"previous_period"}"#.into());
    bodies.push(r#"{"metrics":["visitors"],"date_range":["2026-11-01","2026-11-30"],"filters":[["or",[["is","visit:country",["GB"]],["not",["is","event:page",["/"]]]]]],"compare":"year_over_year","include":{"bots":true}}"#.into());
    // Visitor export (through the visitor_days index) and erasure.
    println!("{}", millimetric_edge::visitors::export_sql("millimetric", "events", "proj_modern", "v1"));
    for b in &bodies {
        let q = request::parse(b.as_bytes()).unwrap_or_else(|e| panic!("{b}: {e}"));
        let (tz_name, tz) = dates::time_zone(q.timezone.as_deref()).unwrap();
        let r = dates::resolve(&q.date_range, &tz, 1_795_000_000_000).unwrap();
        let scope = sql::Scope { database: "millimetric", table: "events", project_id: "proj_modern", from: r.from, to: r.to, timezone: &tz_name, include_bots: q.include_bots };
        let st = sql::statements(&q, &scope);
        for s in [Some(st.rows), st.total_rows, st.total_visitors, st.conversion_base].into_iter().flatten() {
            println!("{s}");
        }
    }
    // The MCP tool list_events: event names and their property keys over a period.
    let tables = plan::Tables { database: "millimetric", table: "events" };
    println!("{}", events::statement(tables, "proj_modern", 1_794_000_000, 1_795_000_000));
    let (current, per_minute) = realtime::statements("millimetric", "events", "proj_modern", 1_795_000_000);
    println!("{current}\n{per_minute}");
}
