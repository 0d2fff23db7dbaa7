//! `cargo run --bin rollup -- [--url URL] [--database DB] [--table events] [--all] [--days FIRST..LAST]`
//! Runs the rollup job (core/src/storage/rollup/driver.rs, the loop the daily Cron Trigger runs) from a
//! shell: new closed days and days that received late events. `--all` keeps going past one
//! run's cap (a backfill); `--days` rolls those days again whatever the state (after a
//! dead-letter replay, say). The password comes from `MM_CH_PASSWORD`.

use millimetric_core::storage::rollup::{self, driver};
use millimetric_tools::clickhouse_settings::{exit, Settings};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::Date;

fn main() {
    let mut table = "events".to_string();
    let (mut all, mut days) = (false, None::<String>);
    let ch = Settings::from_env_and_args("rollup", "[--table T] [--all] [--days YYYY-MM-DD..YYYY-MM-DD]", |flag, value| {
        match flag {
            "--table" => table = value(),
            "--all" => all = true,
            "--days" => days = Some(value()),
            _ => return false,
        }
        true
    });
    let database = ch.database.clone();
    let name_ok = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !name_ok(&database) || !name_ok(&table) {
        fail("--database and --table are names of letters, digits and _");
    }
    let mut client = ch.client().with_database(&database);
    client.timeout = Duration::from_secs(1800);
    let query = |sql: String| std::future::ready(client.query(&sql));
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let mut report = |r: driver::Rolled| eprintln!("rollup: {} to {} (version {})", r.first, r.last, r.version);
    let rolled = match &days {
        None => driver::block_on(driver::run(&database, &table, now_ms(), all, query, now_ms, &mut report)),
        Some(range) => {
            let today = rollup::today(now_ms()).unwrap_or_else(|e| fail(&e));
            let batches = days_again(&database, range, today, &|sql| client.query(&sql).unwrap_or_else(|e| fail(&e)));
            driver::block_on(driver::write(&database, &table, &batches, now_ms() as u64, &query, &now_ms, &mut report))
        }
    };
    match rolled {
        Ok(n) => println!("rollup: {n} day(s) rolled up"),
        Err(e) => fail(&e),
    }
}

/// `--days FIRST..LAST`, in batches: only days already rolled up, since a later day would move
/// the frontier past days not yet closed or rolled (readers would take them from empty
/// aggregates).
fn days_again(database: &str, range: &str, today: Date, q: &dyn Fn(String) -> String) -> Vec<Vec<Date>> {
    let (a, b) = range.split_once("..").unwrap_or_else(|| fail("--days is FIRST..LAST"));
    let listed = rollup::parse_days(&format!("{a}\n{b}\n"));
    let [first, last] = listed[..] else { fail("--days is YYYY-MM-DD..YYYY-MM-DD") };
    let state = rollup::parse_state(&q(rollup::state_sql(database))).unwrap_or_else(|e| fail(&e));
    match state.frontier {
        Some(f) if last <= f => {}
        Some(f) => fail(&format!("--days may only roll days up to {f}, the last one rolled up; run without --days for later ones")),
        None => fail("nothing is rolled up yet: run without --days first"),
    }
    let mut all_days = Vec::new();
    let mut d = first;
    while d <= last {
        all_days.push(d);
        d += time::Duration::days(1);
    }
    // Days whose eve may be dropped keep their versions (rollup::eve_may_be_gone), and so does
    // the day after the last of them, whose visits may now start on it.
    if let Some(last_gone) = all_days.iter().rposition(|d| rollup::eve_may_be_gone(*d, today)) {
        let kept = all_days.drain(..(last_gone + 2).min(all_days.len())).collect::<Vec<_>>();
        eprintln!("rollup: {} to {} keep their versions: the raw events before them may be dropped", kept[0], kept[kept.len() - 1]);
    }
    all_days.chunks(rollup::BATCH_DAYS).map(<[Date]>::to_vec).collect()
}

fn fail(msg: &str) -> ! {
    exit("rollup", msg)
}
