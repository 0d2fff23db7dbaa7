//! One run of the rollup job against a store: the same loop for the daily Cron Trigger
//! (workers/edge/src/rollup_job.rs) and the shell tool (tools/bin/rollup.rs). The store is a function
//! that sends one statement and answers with the body; the clock gives versions and finish
//! times, so a retried trigger never reuses a version.

use super::{batches, done_sql, first_day_sql, insert_sql, late_days_sql, parse_days, parse_first_day, parse_state, run_done_sql};
use super::{state_sql, today};
use std::future::Future;
use time::Date;

/// A batch written: its first and last day, and the version it wrote them under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolled {
    pub first: Date,
    pub last: Date,
    pub version: u64,
}

/// The job as of `scheduled_ms` (the trigger's time): new closed days, then days that received
/// late events. `all` keeps going past one run's cap until no new day is left (a backfill; late
/// days are looked for once). The run is recorded as done only when every batch is written.
/// `rolled` hears of each batch as it is written. The number of days rolled up.
pub async fn run<Q, F>(
    database: &str,
    table: &str,
    scheduled_ms: i64,
    all: bool,
    query: Q,
    clock: impl Fn() -> i64,
    mut rolled: impl FnMut(Rolled),
) -> Result<usize, String>
where
    Q: Fn(String) -> F,
    F: Future<Output = Result<String, String>>,
{
    let started = clock();
    let mut days = 0;
    for round in 0.. {
        let round_start = if round == 0 { started } else { clock() };
        let today = today(if round == 0 { scheduled_ms } else { round_start })?;
        let state = parse_state(&query(state_sql(database)).await?)?;
        let first = match state.frontier {
            None => parse_first_day(&query(first_day_sql(database, table)).await?)?,
            Some(_) => None,
        };
        let late = match late_days_sql(database, table, &state, today).filter(|_| round == 0) {
            Some(sql) => parse_days(&query(sql).await?),
            None => Vec::new(),
        };
        let batches = batches(&state, first, &late, today);
        if batches.is_empty() {
            break;
        }
        days += write(database, table, &batches, round_start as u64, &query, &clock, &mut rolled).await?;
        if !all {
            break;
        }
    }
    query(run_done_sql(database, started as u64, clock())).await?;
    Ok(days)
}

/// Writes `batches` under versions from `first_version` on, one a batch, each batch's days
/// recorded as done after its rows: the days written.
pub async fn write<Q, F>(
    database: &str,
    table: &str,
    batches: &[Vec<Date>],
    first_version: u64,
    query: &Q,
    clock: &impl Fn() -> i64,
    rolled: &mut impl FnMut(Rolled),
) -> Result<usize, String>
where
    Q: Fn(String) -> F,
    F: Future<Output = Result<String, String>>,
{
    let mut days = 0;
    for (i, batch) in batches.iter().filter(|b| !b.is_empty()).enumerate() {
        let version = first_version + i as u64;
        for sql in insert_sql(database, table, batch, version) {
            query(sql).await?;
        }
        for sql in done_sql(database, table, batch, version, clock()) {
            query(sql).await?;
        }
        days += batch.len();
        rolled(Rolled { first: batch[0], last: batch[batch.len() - 1], version });
    }
    Ok(days)
}

/// Runs a future to its end on this thread: how a native tool (`bin/rollup`) drives the loop
/// over a blocking ClickHouse client, whose answers are ready at once; nothing to wait for but
/// the CPU.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    const DAY_MS: i64 = 86_400_000;

    /// A store whose first event is `first_days_ago` days before `now`, which remembers the
    /// last day marked rolled up, and refuses the `fail_at`-th statement if any.
    struct Store {
        now: i64,
        first_days_ago: i64,
        fail_at: Option<usize>,
        sent: RefCell<Vec<String>>,
        frontier: RefCell<Option<Date>>,
    }

    impl Store {
        fn new(now: i64, first_days_ago: i64, fail_at: Option<usize>) -> Store {
            Store { now, first_days_ago, fail_at, sent: RefCell::default(), frontier: RefCell::default() }
        }

        async fn query(&self, sql: String) -> Result<String, String> {
            self.sent.borrow_mut().push(sql.clone());
            if self.fail_at == Some(self.sent.borrow().len()) {
                return Err("ClickHouse is down".into());
            }
            if sql.starts_with("INSERT INTO db.rollup_done (project_id, day, version, finished_at) VALUES") {
                let marked = sql.split('\'').filter_map(super::super::parse_date).max();
                let known = *self.frontier.borrow();
                *self.frontier.borrow_mut() = marked.max(known);
            }
            Ok(if sql.contains("FROM db.rollup_done WHERE project_id = ''") {
                match *self.frontier.borrow() {
                    Some(d) => format!("{d}\t0\t1\n"),
                    None => "\t\t0\n".to_string(),
                }
            } else if sql.starts_with("SELECT toString(min(toDate(timestamp") {
                format!("{}\t10\n", today(self.now - self.first_days_ago * DAY_MS).unwrap())
            } else {
                String::new()
            })
        }
    }

    fn run_on(store: &Store, all: bool) -> (Result<usize, String>, Vec<Rolled>) {
        let tick = Cell::new(store.now);
        let clock = || {
            tick.set(tick.get() + 1);
            tick.get()
        };
        let mut seen = Vec::new();
        let result = block_on(run("db", "events", store.now, all, |sql| store.query(sql), clock, |r| seen.push(r)));
        (result, seen)
    }

    #[test]
    fn a_first_run_rolls_every_closed_day_in_batches_then_records_itself() {
        let store = Store::new(1_800_000_000_000, 10, None);
        let (result, rolled) = run_on(&store, false);
        assert_eq!(result, Ok(10), "ten closed days, today excluded");
        assert_eq!(rolled.len(), 2, "batches of {} days", super::super::BATCH_DAYS);
        assert_eq!(rolled[1].version, rolled[0].version + 1);
        assert_eq!(rolled[1].last, today(store.now).unwrap() - time::Duration::days(1));
        let sent = store.sent.borrow();
        assert!(sent.last().unwrap().starts_with("INSERT INTO db.rollup_runs"), "{sent:?}");
        assert_eq!(sent.iter().filter(|s| s.starts_with("INSERT INTO db.rollup_runs")).count(), 1);
    }

    #[test]
    fn a_failed_batch_ends_the_run_unrecorded() {
        // state, first day, then the first batch's first insert fails.
        let store = Store::new(1_800_000_000_000, 10, Some(3));
        let (result, rolled) = run_on(&store, false);
        assert_eq!(result, Err("ClickHouse is down".into()));
        assert!(rolled.is_empty());
        assert!(
            !store.sent.borrow().iter().any(|s| s.contains("rollup_runs (") || s.contains("rollup_done (")),
            "{:?}",
            store.sent.borrow()
        );
    }

    #[test]
    fn one_run_stops_at_its_cap_and_a_backfill_goes_on_to_yesterday() {
        let days_back = super::super::MAX_DAYS_PER_RUN as i64 + 20;
        let store = Store::new(1_800_000_000_000, days_back, None);
        assert_eq!(run_on(&store, false).0, Ok(super::super::MAX_DAYS_PER_RUN));
        let store = Store::new(1_800_000_000_000, days_back, None);
        let (result, rolled) = run_on(&store, true);
        assert_eq!(result, Ok(days_back as usize));
        assert_eq!(rolled.last().unwrap().last, today(store.now).unwrap() - time::Duration::days(1));
        let versions: Vec<u64> = rolled.iter().map(|r| r.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "a version never repeats: {versions:?}");
    }
}
