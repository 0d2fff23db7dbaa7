//! Rows onto the events queue, and any other message body we send: as text. A JSON message
//! (workers-rs' default) is `JSON.stringify`'d again by the runtime, which doubles every `\` and
//! `"` that serde_json already escaped, so a message sized against the queue's limits by its
//! own bytes could pass them once encoded (a row of quotes grows about twice over). As text, the
//! queue counts exactly the bytes `encode_messages` and `chunk_for_send_batch` measured.

use millimetric_adapters::meter;
use millimetric_core::ingest::row::{chunk_for_send_batch, encode_messages, EventRow, MAX_MESSAGE_BYTES};
use worker::{MessageBuilder, Queue, QueueContentType, SendMessage};

/// One message body, sent as text, after `delay_s` seconds when given.
pub fn text(body: String, delay_s: Option<u32>) -> SendMessage<String> {
    let m = MessageBuilder::new(body).content_type(QueueContentType::Text);
    match delay_s {
        Some(d) => m.delay_seconds(d),
        None => m,
    }
    .build()
}

/// `rows` as row-batch messages, as few calls as the queue's limits allow, each counted by the
/// meter. Stops at the first call the queue refuses (the calls before it are sent).
pub async fn send_rows(queue: &Queue, rows: &[EventRow], delay_s: Option<u32>) -> worker::Result<()> {
    for call in chunk_for_send_batch(encode_messages(rows, MAX_MESSAGE_BYTES)) {
        for m in &call {
            meter::queue_message("queue.written", "queue.written_units", m.len());
        }
        queue.send_batch(call.into_iter().map(|m| text(m, delay_s))).await?;
    }
    Ok(())
}
