//! The batch writer: a Queue consumer that turns up to 100 messages (each the rows of one
//! request, or of a group that could not be inserted straight away) into one ClickHouse insert,
//! through `writer`, so the first write of an id wins and a retried request is stored once.
//! Acks only what is stored; retries with backoff what may succeed later (authentication
//! failures with an alarm, for a bounded time); dead-letters what cannot, replayably.

use super::writer::{self, Written};
use super::{clickhouse_sink, config};
use millimetric_adapters::meter;
use millimetric_core::ingest::first_write;
use millimetric_core::ingest::row::{EventRow, Failure, RowBatch};
use millimetric_core::monitor::report::{self, Kind};
use millimetric_core::storage::clickhouse::{is_data_error, on_failure, FailureAction, InsertOutcome};
use worker::*;

pub async fn consume(batch: MessageBatch<String>, env: &Env, ctx: &Context) -> Result<()> {
    let mut messages = Vec::new();
    for m in batch.messages()? {
        meter::queue_message("queue.read", "queue.read_units", m.body().len());
        match RowBatch::from_message(m.body()) {
            Ok(b) => messages.push((m, b)),
            // Not ours to fix by retrying: keep it, body and reason, in the dead-letter store.
            Err(reason) => {
                let body = RowBatch::unreadable(m.body(), reason.clone());
                dead_letter(env, &m, body, Failure { code: None, reason }).await
            }
        }
    }
    if messages.is_empty() {
        return Ok(());
    }
    let cfg = config::clickhouse(env, millimetric_core::storage::clickhouse::Role::Writer);
    let rows: Vec<&EventRow> = messages.iter().flat_map(|(_, b)| b.rows.iter()).collect();
    let Written { outcome, stored, skipped } = writer::first_writes(&cfg, &rows).await;
    let Some(mut stored) = stored else {
        console_log!("batch writer: {} messages, {} rows: {}", messages.len(), rows.len(), describe(&outcome));
        for (m, _) in &messages {
            fail(env, ctx, m, None, &outcome).await;
        }
        return Ok(());
    };
    console_log!("batch writer: {} messages, {} rows ({} already stored): {}", messages.len(), rows.len(), skipped, describe(&outcome));
    match outcome {
        InsertOutcome::Stored => messages.iter().for_each(|(m, _)| ack(m)),
        InsertOutcome::Fatal { code, .. } if is_data_error(code) && messages.len() > 1 => {
            // One bad row fails the whole insert: try each message alone so the good ones land.
            // Each decides on its own rows against what is stored so far (not against copies
            // that other messages hold, which may not land), and what lands counts as stored.
            for (m, b) in &messages {
                let own_rows: Vec<&EventRow> = b.rows.iter().collect();
                let own: Vec<&EventRow> = first_write::first_writes(&own_rows, &stored).into_iter().map(|i| own_rows[i]).collect();
                match if own.is_empty() { InsertOutcome::Stored } else { clickhouse_sink::insert(&cfg, &own).await } {
                    InsertOutcome::Stored => {
                        first_write::record(&mut stored, &own);
                        ack(m)
                    }
                    other => fail(env, ctx, m, Some(b), &other).await,
                }
            }
        }
        other => {
            for (m, b) in &messages {
                fail(env, ctx, m, Some(b), &other).await;
            }
            return Ok(());
        }
    }
    // Capped projects that this batch may have taken past their quota (at most once a minute each).
    super::quota::after_store(env, messages.iter().flat_map(|(_, b)| b.rows.iter().map(|r| r.project_id.clone())).collect()).await;
    Ok(())
}

fn describe(o: &InsertOutcome) -> String {
    match o {
        InsertOutcome::Stored => "stored".into(),
        InsertOutcome::Retry { reason } => format!("will retry ({reason})"),
        InsertOutcome::AuthFailed { code, reason } => format!("authentication failed, code {code:?} ({reason})"),
        InsertOutcome::MissingTable { reason } => format!("table missing ({reason})"),
        InsertOutcome::Fatal { code, reason } => format!("fatal, code {code:?} ({reason})"),
    }
}

pub(crate) fn age_seconds(m: &Message<String>) -> u64 {
    (Date::now().as_millis().saturating_sub(m.timestamp().as_millis())) / 1000
}

/// What the core decides for a message whose insert failed: retry later (with an alarm when
/// an operator must act) or dead-letter it with the reason.
async fn fail(env: &Env, ctx: &Context, m: &Message<String>, batch: Option<&RowBatch>, outcome: &InsertOutcome) {
    match on_failure(outcome, age_seconds(m)) {
        FailureAction::Retry { delay_s, alarm } => {
            if let Some(alarm) = alarm {
                console_error!("{alarm}");
                let code = report::alarm_code(&alarm).unwrap_or("alarm");
                if let Some(send) = millimetric_adapters::monitor::report(env, Kind::Alarm, code, "queue:events", 1) {
                    ctx.wait_until(send);
                }
            }
            retry_in(m, delay_s);
        }
        FailureAction::DeadLetter { code, reason } => {
            let rows = batch.map(|b| b.rows.clone()).or_else(|| RowBatch::from_message(m.body()).ok().map(|b| b.rows)).unwrap_or_default();
            console_error!("batch writer: dead-lettering a message of {} rows (code {code:?}): {reason}", rows.len());
            dead_letter(env, m, RowBatch { rows, failure: None, raw: None }, Failure { code, reason }).await
        }
    }
}

/// Done with a message: the queue deletes it (a billed operation per 64 KB).
fn ack(m: &Message<String>) {
    meter::queue_message("queue.deleted", "queue.deleted_units", m.body().len());
    m.ack()
}

pub(crate) fn retry_in(m: &Message<String>, delay_s: u32) {
    meter::add("queue.retried", 1);
    let opts = QueueRetryOptionsBuilder::new().with_delay_seconds(delay_s).build();
    m.retry_with_options(&opts);
}

/// Move a message to the dead-letter queue with the reason, then ack it. If the DLQ itself
/// cannot take it, the message is retried instead: never dropped.
async fn dead_letter(env: &Env, m: &Message<String>, batch: RowBatch, failure: Failure) {
    let body = RowBatch { rows: batch.rows, failure: Some(failure), raw: batch.raw }.to_message();
    let sent = match env.queue(config::DEAD_LETTER_QUEUE) {
        Ok(q) => q.send(super::row_queue::text(body, None)).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => ack(m),
        Err(e) => {
            console_error!("batch writer: could not dead-letter a message ({e}); retrying it instead");
            retry_in(m, millimetric_core::storage::clickhouse::retry_delay_seconds(age_seconds(m)));
        }
    }
}
