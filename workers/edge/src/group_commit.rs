//! Group commit: requests that arrive in the same isolate within a few milliseconds share one
//! write, straight into ClickHouse or, when it fails or is slow, onto the events queue
//! (millimetric_core::ingest::delivery decides). Every request still answers only after its own
//! rows are stored or on the queue (or with 503 if neither took them, so the client retries):
//! nothing is acknowledged before it is durable. Fewer, larger writes also make inserts larger.
//!
//! workerd forbids resolving one request's promises from another request, so the leader does
//! not wake the others: each waiter checks the shared outcome on its own timer.

use super::{config, writer};
use futures_util::future::{select, Either};
use millimetric_adapters::clickhouse_sink;
use millimetric_adapters::meter;
use millimetric_core::ingest::delivery::{self, Breaker, Ended, Mode, Path};
use millimetric_core::ingest::row::EventRow;
use millimetric_core::storage::clickhouse::{InsertOutcome, Role};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::{console_error, console_log, Date, Delay, Env};

type Outcome = Rc<RefCell<Option<Result<(), String>>>>;

struct Group {
    rows: Vec<EventRow>,
    outcome: Outcome,
    started_ms: i64,
}

/// A group still pending this long after it started lost its leader (a cancelled request):
/// the next request fails it (its waiters answer 503 and retry; nothing of it was sent) and
/// starts a new one, so one cancelled request cannot stall the isolate.
const STALE_MS: i64 = 1_000;

thread_local! {
    static PENDING: RefCell<Option<Group>> = const { RefCell::new(None) };
    /// How long this isolate's recent sends took (ms, moving average): waiters sleep that long
    /// after their group's send starts before they begin to poll, instead of polling through it.
    static SEND_MS: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
    /// Whether groups go straight into ClickHouse now (millimetric_core::ingest::delivery).
    static BREAKER: RefCell<Breaker> = RefCell::new(Breaker::default());
}

/// How long a waiter waits for its leader before answering 503 (the leader's request may have
/// been cancelled); the client then retries with the same ids. Longer than a leader waits on
/// ClickHouse before it hands its group to the queue.
const GIVE_UP: Duration = Duration::from_millis(delivery::GIVE_UP_MS as u64 + 10_000);
const POLL: Duration = Duration::from_millis(1);
/// Polls back off to this, so a group waiting on a frozen ClickHouse costs little CPU.
const MAX_POLL: Duration = Duration::from_millis(50);
const MAX_EXPECTED_SEND_MS: i64 = 50;

/// Store `rows`, together with whatever other requests of this isolate bring within `window`.
/// Err(reason) when neither ClickHouse nor the queue took them.
pub async fn enqueue(env: &Env, rows: Vec<EventRow>, window: Duration) -> Result<(), String> {
    if window.is_zero() {
        return deliver(env, rows).await;
    }
    let now = now_ms();
    let (outcome, leader, started) = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if let Some(stale) = p.as_ref().filter(|g| now - g.started_ms > STALE_MS) {
            *stale.outcome.borrow_mut() = Some(Err("the group lost its leader".into()));
            *p = None;
        }
        match p.as_mut() {
            Some(group) => {
                group.rows.extend(rows);
                (group.outcome.clone(), false, group.started_ms)
            }
            None => {
                let outcome: Outcome = Rc::new(RefCell::new(None));
                *p = Some(Group { rows, outcome: outcome.clone(), started_ms: now });
                (outcome, true, now)
            }
        }
    });
    if leader {
        Delay::from(window).await;
        // Take the pending group only if it is still ours (it may have been failed as stale).
        let group = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            if p.as_ref().is_some_and(|g| Rc::ptr_eq(&g.outcome, &outcome)) {
                p.take()
            } else {
                None
            }
        });
        let Some(group) = group else {
            return outcome.borrow().clone().unwrap_or_else(|| Err("the group was abandoned".into()));
        };
        let sent_at = now_ms();
        let result = deliver(env, group.rows).await;
        let took = (now_ms() - sent_at) as f64;
        SEND_MS.with(|m| m.set(if m.get() == 0.0 { took } else { 0.8 * m.get() + 0.2 * took }));
        *outcome.borrow_mut() = Some(result.clone());
        return result;
    }
    // The leader sends when its window ends and the send takes about as long as the last ones:
    // sleep until then, and only poll after that (each poll is a timer and a call into wasm).
    // Capped, so one slow send (a queue hiccup) cannot make the next waiters oversleep.
    let expected_send = (SEND_MS.with(|m| m.get()) as i64).min(MAX_EXPECTED_SEND_MS);
    let until_done = (started + window.as_millis() as i64 + expected_send - now).max(0) as u64;
    let mut waited = Duration::from_millis(until_done);
    Delay::from(waited).await;
    let mut poll = POLL;
    loop {
        if let Some(result) = outcome.borrow().clone() {
            return result;
        }
        if waited >= GIVE_UP {
            return Err("the group's send did not finish".into());
        }
        Delay::from(poll).await;
        waited += poll;
        if waited > Duration::from_millis(MAX_EXPECTED_SEND_MS as u64) {
            poll = (poll * 2).min(MAX_POLL);
        }
    }
}

/// One group's rows, stored: straight into ClickHouse when the breaker allows, else (or when
/// that fails) onto the queue. Ok only once one of them has them.
async fn deliver(env: &Env, rows: Vec<EventRow>) -> Result<(), String> {
    let mode = Mode::parse(config::var(env, "INGEST_WRITE").as_deref());
    let cfg = config::clickhouse(env, Role::Writer);
    let chosen = if mode.writes_direct(clickhouse_sink::known_async_inserts(&cfg)) {
        BREAKER.with(|b| b.borrow_mut().choose(mode, now_ms()))
    } else {
        Path::Queue
    };
    let ticket = match chosen {
        Path::Queue => {
            meter::add("queued.groups", 1);
            return send(env, &rows, None).await;
        }
        Path::Direct(ticket) => ticket,
    };
    let refs: Vec<&EventRow> = rows.iter().collect();
    // In `auto`, the first group of an isolate learns whether the server takes async inserts.
    let attempt = Box::pin(async {
        if !mode.writes_direct(clickhouse_sink::async_inserts(&cfg).await) {
            return None;
        }
        Some(writer::first_writes(&cfg, &refs).await)
    });
    // How it ended, ClickHouse's answer to a failed insert, and whether the insert was sent.
    let (ended, failure, sent) = match select(attempt, Delay::from(Duration::from_millis(delivery::GIVE_UP_MS as u64))).await {
        Either::Left((None, _)) => {
            BREAKER.with(|b| b.borrow_mut().release(ticket));
            meter::add("queued.groups", 1);
            return send(env, &rows, None).await;
        }
        Either::Left((Some(written), _)) => match written.outcome {
            InsertOutcome::Stored => {
                if written.skipped > 0 {
                    console_log!("direct write: {} rows ({} already stored): stored", rows.len(), written.skipped);
                }
                (Ended::Stored, None, true)
            }
            failed => {
                console_error!("collect: a direct insert failed, the queue takes its rows: {failed:?}");
                (Ended::Failed, Some(failed), written.stored.is_some())
            }
        },
        Either::Right(_) => (Ended::GaveUp, None, true),
    };
    BREAKER.with(|b| b.borrow_mut().finished(ticket, ended, now_ms()));
    if ended == Ended::Stored {
        meter::add("direct.groups", 1);
        super::quota::stored(rows.iter().map(|r| r.project_id.clone()));
        return Ok(());
    }
    meter::add(if ended == Ended::GaveUp { "direct.given_up" } else { "direct.failed" }, 1);
    // ClickHouse may still complete an insert it did not refuse: then the queue's copy waits
    // until it has.
    send(env, &rows, delivery::queue_delay_s(ended, failure.as_ref(), sent)).await
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

async fn send(env: &Env, rows: &[EventRow], delay_s: Option<u32>) -> Result<(), String> {
    let queue = env.queue(config::EVENTS_QUEUE).map_err(|e| e.to_string())?;
    // One string per message: a single crossing into JS instead of building an object field by
    // field (the consumer parses it back with serde_json); each row serialized once.
    super::row_queue::send_rows(&queue, rows, delay_s).await.map_err(|e| {
        console_error!("collect: queue send failed: {e}");
        e.to_string()
    })
}
