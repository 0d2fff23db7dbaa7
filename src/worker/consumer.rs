//! The batch writer: a Queue consumer that turns up to 100 messages (each the rows of one
//! request) into one ClickHouse insert. Acks only what is stored; retries with backoff what
//! may succeed later; dead-letters what cannot.

use super::{clickhouse_sink, config};
use crate::clickhouse::{is_data_error, retry_delay_seconds, InsertOutcome};
use crate::row::{EventRow, Failure, RowBatch};
use worker::*;

pub async fn consume(batch: MessageBatch<RowBatch>, env: &Env) -> Result<()> {
    let messages = batch.messages()?;
    if messages.is_empty() {
        return Ok(());
    }
    let cfg = config::clickhouse(env);
    let rows: Vec<&EventRow> = messages.iter().flat_map(|m| m.body().rows.iter()).collect();
    let outcome = clickhouse_sink::insert(&cfg, &rows).await;
    console_log!("batch writer: {} messages, {} rows: {}", messages.len(), rows.len(), describe(&outcome));
    match outcome {
        InsertOutcome::Stored => batch.ack_all(),
        InsertOutcome::Retry { .. } => messages.iter().for_each(retry_later),
        InsertOutcome::Fatal { code, .. } if is_data_error(code) && messages.len() > 1 => {
            // One bad row fails the whole insert: try each message alone so the good ones land.
            for m in &messages {
                let rows: Vec<&EventRow> = m.body().rows.iter().collect();
                match clickhouse_sink::insert(&cfg, &rows).await {
                    InsertOutcome::Stored => m.ack(),
                    InsertOutcome::Retry { .. } => retry_later(m),
                    InsertOutcome::Fatal { code, reason } => dead_letter(env, m, Failure { code, reason }).await,
                }
            }
        }
        InsertOutcome::Fatal { code, reason } => {
            console_error!("batch writer: ClickHouse refused the insert and retrying cannot fix it (code {code:?}): {reason}");
            for m in &messages {
                dead_letter(env, m, Failure { code, reason: reason.clone() }).await;
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

fn retry_later(m: &Message<RowBatch>) {
    let age_s = (Date::now().as_millis().saturating_sub(m.timestamp().as_millis())) / 1000;
    let opts = QueueRetryOptionsBuilder::new().with_delay_seconds(retry_delay_seconds(age_s)).build();
    m.retry_with_options(&opts);
}

/// Move a message to the dead-letter queue with the reason, then ack it. If the DLQ itself
/// cannot take it, the message is retried instead: never dropped.
async fn dead_letter(env: &Env, m: &Message<RowBatch>, failure: Failure) {
    let body = RowBatch { rows: m.body().rows.clone(), failure: Some(failure) };
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
