//! `cargo run --bin rollup -- [--url URL] [--database DB] [--table events] [--all] [--days FIRST..LAST]`
//! Runs the rollup job (src/rollup.rs) from a shell, as the daily Cron Trigger does: new
//! closed days and days that received late events. `--all` keeps going past one run's cap
//! (a backfill); `--days` rolls those days again whatever the state (after a dead-letter
//! replay, say). The password comes from `MM_CH_PASSWORD`.

use millimetric_edge::native::clickhouse_client::Client;
use millimetric_edge::rollup;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    let mut url = std::env::var("MM_CH_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let mut database = std::env::var("MM_CH_DATABASE").unwrap_or_else(|_| "millimetric".into());
    let mut user = std::env::var("MM_CH_USER").unwrap_or_else(|_| "default".into());
    let mut table = "events".to_string();
    let (mut all, mut days) = (false, None::<String>);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--url" => url = val(),
            "--database" => database = val(),
            "--user" => user = val(),
            "--table" => table = val(),
            "--all" => all = true,
            "--days" => days = Some(val()),
            _ => fail(&format!(
                "unknown argument {a}; usage: rollup [--url URL] [--database DB] [--table T] [--all] [--days YYYY-MM-DD..YYYY-MM-DD]"
            )),
        }
    }
    let name_ok = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !name_ok(&database) || !name_ok(&table) {
        fail("--database and --table are names of letters, digits and _");
    }
    let mut ch = Client::new(&url).with_database(&database);
    ch.user = user;
    ch.password = std::env::var("MM_CH_PASSWORD").unwrap_or_default();
    ch.timeout = Duration::from_secs(1800);
    let q = |sql: &str| ch.query(sql).unwrap_or_else(|e| fail(&e));
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let mut rolled = 0;
    // The first round's start: late events received before it are what round 0 looked for.
    let first_start = now_ms();
    for run in 0.. {
        let start = if run == 0 { first_start } else { now_ms() };
        let today = rollup::today(start).unwrap_or_else(|e| fail(&e));
        let batches = match &days {
            Some(range) => {
                let (a, b) = range.split_once("..").unwrap_or_else(|| fail("--days is FIRST..LAST"));
                let listed = rollup::parse_days(&format!("{a}\n{b}\n"));
                let [first, last] = listed[..] else { fail("--days is YYYY-MM-DD..YYYY-MM-DD") };
                // Only days already rolled up: a later day would move the frontier past days
                // not yet closed or rolled (readers would take them from empty aggregates).
                let state = rollup::parse_state(&q(&rollup::state_sql(&database))).unwrap_or_else(|e| fail(&e));
                match state.frontier {
                    Some(f) if last <= f => {}
                    Some(f) => {
                        fail(&format!("--days may only roll days up to {f}, the last one rolled up; run without --days for later ones"))
                    }
                    None => fail("nothing is rolled up yet: run without --days first"),
                }
                let mut all_days = Vec::new();
                let mut d = first;
                while d <= last {
                    all_days.push(d);
                    d += time::Duration::days(1);
                }
                all_days.chunks(rollup::BATCH_DAYS).map(<[time::Date]>::to_vec).collect()
            }
            None => {
                let state = rollup::parse_state(&q(&rollup::state_sql(&database))).unwrap_or_else(|e| fail(&e));
                let first = if state.frontier.is_none() {
                    rollup::parse_first_day(&q(&rollup::first_day_sql(&database, &table))).unwrap_or_else(|e| fail(&e))
                } else {
                    None
                };
                // Late days once: a backfill's later rounds only roll new days.
                let late = if run > 0 {
                    Vec::new()
                } else {
                    rollup::late_days_sql(&database, &table, &state, today).map(|s| rollup::parse_days(&q(&s))).unwrap_or_default()
                };
                rollup::batches(&state, first, &late, today)
            }
        };
        if batches.is_empty() {
            break;
        }
        for (i, batch) in batches.iter().enumerate() {
            let version = start as u64 + i as u64;
            for s in rollup::insert_sql(&database, &table, batch, version) {
                q(&s);
            }
            for sql in rollup::done_sql(&database, &table, batch, version, now_ms()) {
                q(&sql);
            }
            rolled += batch.len();
            eprintln!("rollup: {} to {} (version {version})", batch[0], batch[batch.len() - 1]);
        }
        if days.is_some() {
            break;
        }
        if !all {
            break;
        }
    }
    if days.is_none() {
        // A complete run: the late events received before it started are dealt with.
        q(&rollup::run_done_sql(&database, first_start as u64, now_ms()));
    }
    println!("rollup: {rolled} day(s) rolled up");
}

fn fail(msg: &str) -> ! {
    eprintln!("rollup: {msg}");
    std::process::exit(1);
}
