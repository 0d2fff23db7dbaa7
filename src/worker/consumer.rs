//! The batch writer: a Queue consumer that turns up to 100 messages (each the rows of one
//! request) into one ClickHouse insert. Acks only what is stored; retries with backoff what
//! may succeed later; dead-letters what cannot.

use super::{clickhouse_sink, config};
use crate::clickhouse::{is_data_error, retry_delay_seconds, InsertOutcome};
use crate::row::{EventRow, Failure, RowBatch};
use worker::*;

pub async fn consume(batch: MessageBatch<String>, env: &Env) -> Result<()> {
    let mut messages = Vec::new();
    for m in batch.messages()? {
        match RowBatch::from_message(m.body()) {
            Ok(b) => messages.push((m, b)),
            // Not ours to fix by retrying: keep it, with the reason, in the dead-letter store.
            Err(reason) => dead_letter(env, &m, RowBatch { rows: vec![], failure: None }, Failure { code: None, reason }).await,
        }
    }
    if messages.is_empty() {
        return Ok(());
    }
    let cfg = config::clickhouse(env, crate::clickhouse::Role::Writer);
    let rows: Vec<&EventRow> = messages.iter().flat_map(|(_, b)| b.rows.iter()).collect();
    let outcome = clickhouse_sink::insert(&cfg, &rows).await;
    console_log!("batch writer: {} messages, {} rows: {}", messages.len(), rows.len(), describe(&outcome));
    match outcome {
        InsertOutcome::Stored => messages.iter().for_each(|(m, _)| m.ack()),
        InsertOutcome::Retry { .. } => messages.iter().for_each(|(m, _)| retry_later(m)),
        InsertOutcome::Fatal { code, .. } if is_data_error(code) && messages.len() > 1 => {
            // One bad row fails the whole insert: try each message alone so the good ones land.
            for (m, b) in messages {
                let rows: Vec<&EventRow> = b.rows.iter().collect();
                match clickhouse_sink::insert(&cfg, &rows).await {
                    InsertOutcome::Stored => m.ack(),
                    InsertOutcome::Retry { .. } => retry_later(&m),
                    InsertOutcome::Fatal { code, reason } => dead_letter(env, &m, b, Failure { code, reason }).await,
                }
            }
        }
        InsertOutcome::Fatal { code, reason } => {
            console_error!("batch writer: ClickHouse refused the insert and retrying cannot fix it (code {code:?}): {reason}");
            for (m, b) in messages {
                dead_letter(env, &m, b, Failure { code, reason: reason.clone() }).await;
            }
        }
    }
    Ok(())
}

fn describe(o: &InsertOutcome) -> String {
    match o {
        InsertOutcome::Stored => "stored".into(),
        InsertOutcome::Retry { reason } => format!("will retry ({reason})"),
        InsertOutcome::Fatal { code, reason } => format!("fatal, code {code:?} ({reason})"),
    }
}

fn retry_later(m: &Message<String>) {
    let age_s = (Date::now().as_millis().saturating_sub(m.timestamp().as_millis())) / 1000;
    let opts = QueueRetryOptionsBuilder::new().with_delay_seconds(retry_delay_seconds(age_s)).build();
    m.retry_with_options(&opts);
}

/// Move a message to the dead-letter queue with the reason, then ack it. If the DLQ itself
/// cannot take it, the message is retried instead: never dropped.
async fn dead_letter(env: &Env, m: &Message<String>, batch: RowBatch, failure: Failure) {
    let body = RowBatch { rows: batch.rows, failure: Some(failure) }.to_message();
    let sent = match env.queue(config::DEAD_LETTER_QUEUE) {
        Ok(q) => q.send(body).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => m.ack(),
        Err(e) => {
            console_error!("batch writer: could not dead-letter a message ({e}); retrying it instead");
            retry_later(m);
        }
    }
}
