//! Prints the SQL a Stats API query becomes: `cargo run --example query_sql -- '<query json>'`.
use millimetric_edge::query::{dates, request, sql};

fn main() {
    let body = std::env::args().nth(1).unwrap_or_else(|| r#"{"metrics":["visitors"],"date_range":"7d"}"#.into());
    let q = request::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let (tz_name, tz) = dates::time_zone(q.timezone.as_deref()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let r = dates::resolve(&q.date_range, &tz, now).unwrap();
    let scope = sql::Scope { database: "millimetric", table: "events", project_id: "proj_dev", from: r.from, to: r.to, timezone: &tz_name, include_bots: q.include_bots };
    let st = sql::statements(&q, &scope);
    println!("{}", st.rows);
    for s in [st.total_rows, st.total_visitors, st.conversion_base].into_iter().flatten() {
        println!("{s}");
    }
}
