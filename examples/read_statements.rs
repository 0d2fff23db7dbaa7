//! Prints, one per line, every kind of statement the read side and the batch writer's id
//! lookup send, for checking them on another ClickHouse (scripts/check-modern-clickhouse):
//! every metric, every dimension, each filter operator, both comparisons, the helpers, realtime
//! and the MCP tool list_events' statement.
//! `cargo run --example read_statements`
use millimetric_core::query::{aggregates, dates, events, plan, realtime, request, sql};
use millimetric_core::storage::rollup;

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
    // Revenue by currency with an inline goal, ordered by it; a goal's conversion rate, ordered by it.
    bodies.push(r#"{"metrics":["total_revenue","average_revenue","visitors"],"date_range":["2026-11-01","2026-11-30"],"dimensions":["event:revenue_currency","visit:source"],"goal":{"event":"signup","props":{"plan":"pro"}},"order_by":[["total_revenue","desc"]],"compare":"previous_period"}"#.into());
    bodies.push(r#"{"metrics":["visitors","conversion_rate"],"date_range":["2026-11-01","2026-11-30"],"dimensions":["visit:source","visit:country"],"goal":{"page":"/welcome*"},"filters":[["is","visit:device",["mobile"]]],"order_by":[["conversion_rate","desc"]],"include":{"total_rows":true}}"#.into());
    // Conversion rates by the event's own name (one denominator, joined across) and property
    // (denominators by the other dimension, renamed into place), each ordered by the rate.
    bodies.push(r#"{"metrics":["visitors","conversion_rate"],"date_range":["2026-11-01","2026-11-30"],"dimensions":["event:name"],"filters":[["is","event:name",["signup","purchase"]]],"order_by":[["conversion_rate","desc"]]}"#.into());
    bodies.push(r#"{"metrics":["visitors","conversion_rate"],"date_range":["2026-11-01","2026-11-30"],"dimensions":["event:props:plan","visit:source"],"filters":[["is","event:name",["signup"]]],"order_by":[["conversion_rate","desc"]],"compare":"previous_period"}"#.into());
    // Visitor export (through the visitor_day_hashes index) and erasure.
    println!(
        "{}",
        millimetric_core::privacy::visitors::export_sql(
            "millimetric",
            "events",
            "proj_modern",
            &["v1", "mmh_0123456789abcdef0123456789abcdef"]
        )
    );
    for b in &bodies {
        let q = request::parse(b.as_bytes()).unwrap_or_else(|e| panic!("{b}: {e}"));
        let (tz_name, tz) = dates::time_zone(q.timezone.as_deref()).unwrap();
        let r = dates::resolve(&q.date_range, &tz, 1_795_000_000_000).unwrap();
        let scope = sql::Scope {
            database: "millimetric",
            table: "events",
            project_id: "proj_modern",
            from: r.from,
            to: r.to,
            timezone: &tz_name,
            include_bots: q.include_bots,
        };
        let st = sql::statements(&q, &scope, None);
        // A compared period's rows are kept to this page's (the same period here: the SQL's shape).
        let then = q.compare.map(|_| sql::statements(&q, &scope, Some(&st.around_page)).rows);
        for s in [Some(st.rows), st.total_rows, st.total_visitors, st.conversion_base, then].into_iter().flatten() {
            println!("{s}");
        }
    }
    // The MCP tool list_events: event names and their property keys over a period.
    let tables = plan::Tables { database: "millimetric", table: "events" };
    println!("{}", events::statement(tables, "proj_modern", 1_794_000_000, 1_795_000_000));
    let (current, per_minute) = realtime::statements("millimetric", "events", "proj_modern", 1_795_000_000);
    println!("{current}\n{per_minute}");

    // The rollup job's statements (over the sample rows' November), then reads from the
    // aggregates: wholly from them, and split at a frontier mid-range.
    let nov1 = time::macros::date!(2026 - 11 - 01);
    let days: Vec<time::Date> = (0..30).map(|i| nov1 + time::Duration::days(i)).collect();
    let state = rollup::State { frontier: Some(days[29]), last_version_ms: 1_795_000_000_000 };
    println!(
        "{}\n{}\n{}",
        rollup::state_sql("millimetric"),
        rollup::first_day_sql("millimetric", "events"),
        rollup::late_days_sql("millimetric", "events", &state, days[29]).unwrap()
    );
    for s in rollup::insert_sql("millimetric", "events", &days, 7) {
        println!("{s}");
    }
    for s in rollup::done_sql("millimetric", "events", &days, 7, 1_795_000_000_000) {
        println!("{s}");
    }
    println!("{}", rollup::run_done_sql("millimetric", 1_795_000_000_000, 1_795_000_000_000));
    println!("{}", aggregates::frontier_sql("millimetric"));
    let agg_bodies = [
        r#"{"metrics":["visitors","visits","pageviews","views_per_visit","bounce_rate","visit_duration","events","percentage"],"date_range":["2026-11-01","2026-11-30"],"dimensions":["visit:country","time:day"],"filters":[["contains","visit:source",["o"]]],"include":{"total_rows":true},"source":"aggregates"}"#,
        r#"{"metrics":["visitors","visits","pageviews","bounce_rate","events","percentage"],"date_range":["2026-11-01","2026-11-30"],"dimensions":["event:page"],"filters":[["matches","event:hostname",["^ex"]]],"source":"aggregates","compare":"previous_period"}"#,
        r#"{"metrics":["visitors","conversion_rate"],"date_range":["2026-11-01","2026-11-30"],"filters":[["is","event:name",["signup"]]],"source":"aggregates"}"#,
        r#"{"metrics":["visitors","conversion_rate"],"date_range":["2026-11-01","2026-11-30"],"goal":{"page":"/welcome*"},"source":"aggregates"}"#,
        r#"{"metrics":["visitors","visits","pageviews","events"],"date_range":["2026-11-01","2026-11-30"],"dimensions":["event:props:plan","time:week"],"filters":[["is","event:props:plan",["pro","team"]]],"source":"aggregates","include":{"bots":true}}"#,
    ];
    // Usage (core/src/usage): the cron's snapshot of the sample rows' days, then every read,
    // for one project and for all; a counters flush and its read.
    use millimetric_core::usage::{sql as usage, tally};
    let (nov20, dec1) = (nov1 + time::Duration::days(19), time::macros::date!(2026 - 12 - 01));
    for s in usage::snapshot_sql("millimetric", "events", nov20 + time::Duration::days(1), 9) {
        println!("{s}");
    }
    println!("{}", usage::marked_sql("millimetric", nov1, dec1));
    let marked = vec![("2026-11-18".to_string(), 9), ("2026-11-19".to_string(), 9)];
    for scope in [usage::Scope::Project("proj_modern"), usage::Scope::All] {
        println!("{}", usage::stored_snapshot_sql("millimetric", scope, &marked).expect("days marked"));
        println!("{}", usage::stored_live_sql("millimetric", "events", scope, nov1, dec1, &marked));
        println!("{}", usage::counters_sql("millimetric", scope, nov1, dec1));
    }
    // A project's export: its plan, a part, the aggregates as CSV.
    use millimetric_core::privacy::exports;
    let job = exports::Job::new("0123456789abcdef0123456789abcdef", "proj_modern", "admin".into(), 1_796_000_000_000);
    println!("{}", exports::plan_sql("millimetric", "events", &job));
    println!("{}", exports::events_sql("millimetric", "events", &job, "2026-11-18", &exports::After::default()));
    let after = exports::After { event_id: "e1".into(), anonymous_id: Some("v1".into()) };
    println!("{}", exports::events_sql("millimetric", "events", &job, "2026-11-18", &after));
    println!("{}", exports::aggregates_plan_sql("millimetric", "proj_modern"));
    println!("{}", exports::deletions_sql("millimetric", "events", "proj_modern"));
    for table in exports::AGGREGATES {
        println!("{}", exports::aggregates_sql("millimetric", table, "proj_modern", "2026-11-17", "2026-11-18"));
    }
    let mut t = tally::Tally::default();
    t.add(
        tally::Slot {
            project_id: "proj_modern".into(),
            day: nov20.to_string(),
            counter: millimetric_core::usage::Counter::Query,
            dim: "stats".into(),
        },
        2,
        0,
    );
    for f in t.take("flush-1".into()) {
        println!("{}", usage::counters_insert("millimetric", f.rows().trim()).replace('\n', " "));
    }

    for b in agg_bodies {
        for cut_day in ["2026-11-30", "2026-11-15"] {
            let cut = aggregates::parse_frontier(&format!("{cut_day}\t1\n")).unwrap();
            let p = plan::plan(b.as_bytes(), "proj_modern", None, tables, 1_796_000_000_000).unwrap_or_else(|e| panic!("{b}: {e}"));
            let p = p.with_frontier(cut).unwrap();
            for st in [Some(p.now), p.then].into_iter().flatten() {
                for s in [Some(st.rows), st.total_rows, st.total_visitors, st.conversion_base].into_iter().flatten() {
                    println!("{s}");
                }
            }
        }
    }
    conversions();
}

/// The conversion queries' statements: a funnel each way (ordered and strict, by visitor and
/// by visit, with and without a breakdown and filters), attribution by every model, retention
/// by each period, and paths both ways.
fn conversions() {
    use millimetric_core::conversions::{attribution, funnel, paths, retention};
    let funnels = [
        r#"{"steps":[{"page":"/welcome"},{"event":"signup","props":{"plan":"pro"}},{"page":"/docs/*"}],"date_range":["2026-11-01","2026-11-30"],"breakdown":"visit:source"}"#,
        r#"{"steps":[{"page":"/*"},{"event":"signup"}],"date_range":["2026-11-01","2026-11-30"],"order":"strict","by":"visit","window":"30m","filters":[["is","visit:country",["GB"]],["contains","event:page",["e"]]],"include":{"bots":true}}"#,
    ];
    for b in funnels {
        let f = funnel::request::parse(b.as_bytes(), None, 1_796_000_000_000).unwrap_or_else(|e| panic!("{b}: {e}"));
        let s = f.common.scope("millimetric", "events", "proj_modern");
        println!("{}", funnel::sql::statement(&f, &s));
    }
    for model in attribution::request::Model::ALL {
        let b = format!(
            r#"{{"goal":{{"event":"signup","props":{{"plan":"pro"}}}},"date_range":["2026-11-01","2026-11-30"],"model":"{}","count":"all","channel":"visit:utm_campaign","filters":[["is","visit:country",["GB"]]]}}"#,
            model.name()
        );
        let a = attribution::request::parse(b.as_bytes(), None, 1_796_000_000_000).unwrap_or_else(|e| panic!("{b}: {e}"));
        println!("{}", attribution::sql::statement(&a, &a.common.scope("millimetric", "events", "proj_modern")));
    }
    for b in [
        r#"{"date_range":["2026-10-01","2026-11-30"],"period":"week","timezone":"Europe/Berlin","cohort_goal":{"event":"signup"},"return_goal":{"page":"/*"},"filters":[["is","visit:country",["GB"]]]}"#,
        r#"{"date_range":["2026-11-01","2026-11-30"],"period":"day"}"#,
        r#"{"date_range":["2026-01-01","2026-11-30"],"period":"month","include":{"bots":true}}"#,
    ] {
        let r = retention::request::parse(b.as_bytes(), None, 1_796_000_000_000).unwrap_or_else(|e| panic!("{b}: {e}"));
        println!("{}", retention::sql::statement(&r, &r.common.scope("millimetric", "events", "proj_modern")));
    }
    for b in [
        r#"{"start":{"page":"/welcome"},"date_range":["2026-11-01","2026-11-30"],"depth":3,"filters":[["is","visit:country",["GB"]],["is_not","event:page",["/x"]]]}"#,
        r#"{"start":{"event":"signup","props":{"plan":"pro"}},"date_range":["2026-11-01","2026-11-30"],"direction":"previous","depth":1}"#,
    ] {
        let p = paths::request::parse(b.as_bytes(), None, 1_796_000_000_000).unwrap_or_else(|e| panic!("{b}: {e}"));
        println!("{}", paths::sql::statement(&p, &p.common.scope("millimetric", "events", "proj_modern")));
    }
}
