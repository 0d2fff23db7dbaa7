//! The row written to ClickHouse `events` (see migrations/), and the queue message that
//! carries rows from the edge to the batch writer. Neither has a field for an IP address.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub project_id: String,
    pub event_id: String,
    /// UTC, `YYYY-MM-DD hh:mm:ss`.
    pub timestamp: String,
    pub received_at: String,
    pub event_type: String,
    pub event_name: String,
    pub anonymous_id: String,
    pub url_host: String,
    pub url_path: String,
    pub url_query: String,
    pub url_fragment: String,
    pub title: String,
    pub referrer: String,
    pub referrer_host: String,
    pub country: String,
    pub region: String,
    pub city: String,
    pub browser: String,
    pub os: String,
    pub device_type: String,
    pub is_bot: u8,
    pub source: String,
    pub medium: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_term: String,
    pub utm_content: String,
    pub click_id_type: String,
    pub click_id: String,
    pub prop_keys: Vec<String>,
    pub prop_values: Vec<String>,
    pub key_kind: String,
    pub retention_days: u16,
}

/// One queue message: the rows accepted from one request. A `#[derive(Serialize)]` struct
/// (a `serde_json::json!` value arrives empty through workers-rs queues).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowBatch {
    pub rows: Vec<EventRow>,
    /// Set when the batch writer dead-letters the message: why retrying cannot store it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl RowBatch {
    /// The queue message body: the batch as one JSON string.
    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("RowBatch always serializes")
    }

    /// A queue message body back to a batch; Err with a reason for anything else.
    pub fn from_message(body: &str) -> Result<RowBatch, String> {
        serde_json::from_str(body).map_err(|e| format!("not a row batch ({e}): {}", body.chars().take(200).collect::<String>()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// ClickHouse's error code, when it gave one.
    pub code: Option<u32>,
    pub reason: String,
}

/// Queues take at most 128 KB a message; leave room for the envelope.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// Rows as queue message bodies: as few as fit `max_bytes` each, in order, every row serialized
/// once. Each body is exactly `RowBatch { rows, failure: None }.to_message()`.
/// A single row is always under the limit: the contract bounds every field.
pub fn encode_messages(rows: &[EventRow], max_bytes: usize) -> Vec<String> {
    const HEAD: &str = "{\"rows\":[";
    const TAIL: &str = "]}";
    let mut out = Vec::new();
    let mut cur = String::from(HEAD);
    for r in rows {
        let json = serde_json::to_string(r).expect("EventRow always serializes");
        let first = cur.len() == HEAD.len();
        if !first && cur.len() + 1 + json.len() + TAIL.len() > max_bytes {
            cur.push_str(TAIL);
            out.push(std::mem::replace(&mut cur, String::from(HEAD)));
        } else if !first {
            cur.push(',');
        }
        cur.push_str(&json);
    }
    if cur.len() > HEAD.len() {
        cur.push_str(TAIL);
        out.push(cur);
    }
    out
}

/// Queues' sendBatch takes at most 100 messages and 256 KB in all: group message bodies (each
/// at most MAX_MESSAGE_BYTES) into calls that respect both, in order.
pub fn chunk_for_send_batch(messages: Vec<String>) -> Vec<Vec<String>> {
    const MAX_CALL_BYTES: usize = 240 * 1024;
    const MAX_CALL_MESSAGES: usize = 100;
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut size = 0;
    for m in messages {
        let n = m.len();
        match out.last_mut() {
            Some(call) if call.len() < MAX_CALL_MESSAGES && size + n <= MAX_CALL_BYTES => {
                size += n;
                call.push(m);
            }
            _ => {
                size = n;
                out.push(vec![m]);
            }
        }
    }
    out
}

/// Rows as a ClickHouse `JSONEachRow` body: one JSON object per line.
pub fn to_json_each_row<'a>(rows: impl IntoIterator<Item = &'a EventRow>) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r).expect("EventRow always serializes"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(id: &str, title_len: usize) -> EventRow {
        let v = serde_json::json!({
            "project_id":"p","event_id":id,"timestamp":"2026-11-22 10:00:00","received_at":"2026-11-22 10:00:00",
            "event_type":"pageview","event_name":"pageview","anonymous_id":"","url_host":"a.com","url_path":"/",
            "url_query":"","url_fragment":"","title":"t".repeat(title_len),"referrer":"","referrer_host":"","country":"",
            "region":"","city":"","browser":"","os":"","device_type":"other","is_bot":0,"source":"","medium":"direct",
            "utm_source":"","utm_medium":"","utm_campaign":"","utm_term":"","utm_content":"","click_id_type":"",
            "click_id":"","prop_keys":[],"prop_values":[],"key_kind":"secret","retention_days":90
        });
        serde_json::from_value(v).unwrap()
    }

    fn decode(msgs: &[String]) -> Vec<EventRow> {
        msgs.iter().flat_map(|m| RowBatch::from_message(m).unwrap().rows).collect()
    }

    #[test]
    fn splits_by_size_keeping_every_row_once_in_order() {
        let rows: Vec<EventRow> = (0..50).map(|i| sample(&format!("e{i}"), 400)).collect();
        let msgs = encode_messages(&rows, 4096);
        assert!(msgs.len() > 1);
        for m in &msgs {
            assert!(m.len() <= 4096);
        }
        assert_eq!(decode(&msgs), rows);
        assert_eq!(encode_messages(&[sample("x", 1)], MAX_MESSAGE_BYTES).len(), 1);
        assert!(encode_messages(&[], MAX_MESSAGE_BYTES).is_empty());
    }

    #[test]
    fn encoded_messages_are_what_to_message_writes() {
        let rows = vec![sample("a", 3), sample("b", 5)];
        let msgs = encode_messages(&rows, MAX_MESSAGE_BYTES);
        assert_eq!(msgs, vec![RowBatch { rows, failure: None }.to_message()]);
    }

    #[test]
    fn send_batch_calls_respect_queue_limits() {
        let rows: Vec<EventRow> = (0..400).map(|i| sample(&format!("e{i}"), 1500)).collect();
        let calls = chunk_for_send_batch(encode_messages(&rows, MAX_MESSAGE_BYTES));
        assert!(calls.len() > 1);
        for c in &calls {
            assert!(c.len() <= 100);
            assert!(c.iter().map(String::len).sum::<usize>() <= 240 * 1024);
        }
        let all: Vec<String> = calls.into_iter().flatten().collect();
        assert_eq!(decode(&all), rows);
    }

    #[test]
    fn queue_message_round_trip() {
        let b = RowBatch { rows: vec![sample("a", 3)], failure: Some(Failure { code: Some(117), reason: "r".into() }) };
        assert_eq!(RowBatch::from_message(&b.to_message()).unwrap(), b);
        assert!(RowBatch::from_message("{}").is_err());
        assert!(RowBatch::from_message("garbage").unwrap_err().contains("garbage"));
    }

    #[test]
    fn json_each_row_is_one_object_per_line() {
        let body = to_json_each_row(&[sample("a", 1), sample("b", 1)]);
        assert_eq!(body.lines().count(), 2);
        assert!(body.ends_with('\n'));
        let first: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        assert_eq!(first["event_id"], "a");
    }
}
