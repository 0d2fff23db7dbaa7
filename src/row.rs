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
