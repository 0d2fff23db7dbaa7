//! The row written to ClickHouse `events` (see migrations/), and the queue message that
//! carries rows from the edge to the batch writer. Neither has a field for an IP address.

use crate::storage::sql::id_hash_hex;
use serde::{Deserialize, Serialize};

/// Every field has a default when a message lacks it: a message queued by the previous
/// deploy, before a field was added, is still stored (with the field's default) rather than
/// dead-lettered. `retention_days` defaults to the shortest window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Which way the event came in (`collect`; the SDK-compatible routes set theirs): usage by
    /// route (core/src/usage). A message from before the field existed came through /collect.
    pub ingest_route: String,
    /// What the event earned: a decimal (0 without revenue) and its ISO 4217 currency ('').
    pub revenue_amount: super::revenue::Amount,
    pub revenue_currency: String,
}

impl Default for EventRow {
    fn default() -> Self {
        EventRow {
            project_id: String::new(),
            event_id: String::new(),
            timestamp: String::new(),
            received_at: String::new(),
            event_type: String::new(),
            event_name: String::new(),
            anonymous_id: String::new(),
            url_host: String::new(),
            url_path: String::new(),
            url_query: String::new(),
            url_fragment: String::new(),
            title: String::new(),
            referrer: String::new(),
            referrer_host: String::new(),
            country: String::new(),
            region: String::new(),
            city: String::new(),
            browser: String::new(),
            os: String::new(),
            device_type: String::new(),
            is_bot: 0,
            source: String::new(),
            medium: String::new(),
            utm_source: String::new(),
            utm_medium: String::new(),
            utm_campaign: String::new(),
            utm_term: String::new(),
            utm_content: String::new(),
            click_id_type: String::new(),
            click_id: String::new(),
            prop_keys: Vec::new(),
            prop_values: Vec::new(),
            key_kind: String::new(),
            retention_days: 30,
            ingest_route: "collect".into(),
            revenue_amount: Default::default(),
            revenue_currency: String::new(),
        }
    }
}

impl EventRow {
    /// Whether the row names what it must to be stored at all: a message missing these is not
    /// an older format but something else.
    pub fn is_complete(&self) -> bool {
        !self.project_id.is_empty() && !self.event_id.is_empty() && !self.timestamp.is_empty() && !self.received_at.is_empty()
    }

    /// When the row passes its retention (`retention_days` from its timestamp, unix ms); None
    /// for a row without a window (0, as the retention job reads it) or a time that does not
    /// read: such a row is kept, as in the table.
    pub fn expires_at_ms(&self) -> Option<i64> {
        let kept_ms = i64::from(self.retention_days) * 86_400_000;
        let t = crate::ingest::timestamp::parse_clickhouse_datetime(&self.timestamp)?;
        (self.retention_days > 0).then(|| t.saturating_add(kept_ms))
    }
}

/// What one row may take serialized: a queue message holds at most MAX_MESSAGE_BYTES, so any
/// single row fits one with room to spare. The field bounds in event::LIMITS keep real events
/// far below it (31 KiB at the worst: every field at its bound, percent-encoded URLs; see the
/// test worst_case_rows_fit_a_queue_message);
/// this is the backstop that refuses one event alone rather than fail a shared queue send.
pub const MAX_ROW_BYTES: usize = 64 * 1024;

impl EventRow {
    /// The row's text fields with their names, for sizing.
    fn text_fields(&self) -> [(&'static str, &str); 27] {
        [
            ("project_id", &self.project_id),
            ("id", &self.event_id),
            ("timestamp", &self.timestamp),
            ("received_at", &self.received_at),
            ("type", &self.event_type),
            ("name", &self.event_name),
            ("mm_aid", &self.anonymous_id),
            ("url", &self.url_host),
            ("url", &self.url_path),
            ("url", &self.url_query),
            ("url", &self.url_fragment),
            ("title", &self.title),
            ("referrer", &self.referrer),
            ("referrer", &self.referrer_host),
            ("country", &self.country),
            ("region", &self.region),
            ("city", &self.city),
            ("browser", &self.browser),
            ("os", &self.os),
            ("device_type", &self.device_type),
            ("source", &self.source),
            ("medium", &self.medium),
            ("url", &self.utm_source),
            ("url", &self.utm_medium),
            ("url", &self.utm_campaign),
            ("url", &self.utm_term),
            ("url", &self.utm_content),
        ]
    }

    /// An upper bound on `serde_json::to_string(self).len()`, without serializing: the JSON
    /// bytes of every value plus the fixed field names and punctuation. Also which request
    /// field (url, title, props, ...) contributes most, to name it in a refusal.
    pub fn serialized_bound(&self) -> (usize, &'static str) {
        use crate::ingest::event::json_len;
        const FIXED: usize = 700; // field names, quotes, commas, is_bot, retention_days
        let mut per_field: Vec<(&'static str, usize)> = Vec::new();
        let mut add = |name: &'static str, n: usize| match per_field.iter_mut().find(|(f, _)| *f == name) {
            Some((_, total)) => *total += n,
            None => per_field.push((name, n)),
        };
        for (name, v) in self.text_fields() {
            add(name, json_len(v));
        }
        add("url", json_len(&self.click_id) + json_len(&self.click_id_type));
        add("key_kind", json_len(&self.key_kind));
        let props: usize = self.prop_keys.iter().chain(&self.prop_values).map(|s| json_len(s) + 3).sum();
        add("props", props);
        let total = FIXED + per_field.iter().map(|(_, n)| n).sum::<usize>();
        let largest = per_field.iter().max_by_key(|(_, n)| *n).map(|(f, _)| *f).unwrap_or("url");
        (total, largest)
    }
}

/// One queue message: the rows accepted from one request. A `#[derive(Serialize)]` struct
/// (a `serde_json::json!` value arrives empty through workers-rs queues).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowBatch {
    pub rows: Vec<EventRow>,
    /// Set when the batch writer dead-letters the message: why retrying cannot store it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// A dead letter of a message that could not be read as rows: its body as it came, so
    /// nothing is lost and an operator can see what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl RowBatch {
    /// The queue message body: the batch as one JSON string.
    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("RowBatch always serializes")
    }

    /// A queue message body back to a batch; Err with a reason for anything else.
    pub fn from_message(body: &str) -> Result<RowBatch, String> {
        // The reason says where, not what: it is logged, and the body may hold a visitor id.
        let batch: RowBatch = serde_json::from_str(body).map_err(|e| format!("not a row batch ({e}); its body is kept in `raw`"))?;
        if batch.rows.iter().any(|r| !r.is_complete()) {
            return Err("a row lacks project_id, event_id, timestamp or received_at".into());
        }
        Ok(batch)
    }

    /// This batch without one visitor's rows (an erasure reaching the dead-letter store):
    /// None when it holds none of them.
    pub fn without_visitor(&self, project_id: &str, anonymous_id: &str) -> Option<RowBatch> {
        self.without_visitors(&[(project_id.to_string(), id_hash_hex(anonymous_id))].into())
    }

    /// This batch without the rows of any of `erased` (project, hash of the visitor's id:
    /// `storage::sql::id_hash_hex`, as erasures are recorded) pairs: None when it holds none.
    /// An unreadable body that names an erased visitor's project and, in any of its strings,
    /// the id goes whole: its rows cannot be told apart.
    pub fn without_visitors(&self, erased: &std::collections::BTreeSet<(String, String)>) -> Option<RowBatch> {
        self.without(
            |r| erased.contains(&(r.project_id.clone(), id_hash_hex(&r.anonymous_id))),
            |raw| {
                let flat = unspaced(raw);
                let named: std::collections::BTreeSet<&str> =
                    erased.iter().filter(|(p, _)| flat.contains(&project_named(p))).map(|(_, h)| h.as_str()).collect();
                !named.is_empty() && json_strings(raw).any(|s| named.contains(id_hash_hex(&s).as_str()))
            },
        )
    }

    /// This batch without any row of the project (a project's deletion): None when it holds
    /// none. An unreadable body that names the project goes whole: it cannot be told apart.
    pub fn without_project(&self, project_id: &str) -> Option<RowBatch> {
        let named = project_named(project_id);
        self.without(|r| r.project_id == project_id, |raw| unspaced(raw).contains(&named))
    }

    /// This batch without the rows past their retention at `now_ms` (`retention_days` from
    /// their timestamp): a dead letter must not keep, nor a replay store, an event that
    /// retention has dropped from the table. None when none is. An unreadable body cannot be
    /// dated: it stays until its own expiry.
    pub fn without_expired(&self, now_ms: i64) -> Option<RowBatch> {
        self.without(|r| r.expires_at_ms().is_some_and(|t| t < now_ms), |_| false)
    }

    /// `theirs` picks the rows to drop; `raw_theirs` judges an unreadable body.
    fn without(&self, theirs: impl Fn(&EventRow) -> bool, raw_theirs: impl Fn(&str) -> bool) -> Option<RowBatch> {
        let raw_theirs = self.raw.as_deref().is_some_and(raw_theirs);
        if !self.rows.iter().any(&theirs) && !raw_theirs {
            return None;
        }
        Some(RowBatch {
            rows: self.rows.iter().filter(|r| !theirs(r)).cloned().collect(),
            failure: self.failure.clone(),
            raw: if raw_theirs { None } else { self.raw.clone() },
        })
    }

    /// The projects whose data an operator sees in this dead letter: each row's (once a row),
    /// and each one an unreadable body names with a whole `"project_id": "..."`.
    pub fn projects_shown(&self) -> Vec<String> {
        let rows = self.rows.iter().map(|r| r.project_id.clone());
        let flat = self.raw.as_deref().map(unspaced).unwrap_or_default();
        let named = flat.match_indices("\"project_id\":").filter_map(|(i, m)| {
            let rest = &flat[i + m.len()..];
            let value = json_strings(rest).next()?;
            // Only a string that is the value itself, closed within the body.
            rest.starts_with(&json_string(&value)).then_some(value)
        });
        rows.chain(named).collect()
    }

    /// The dead letter of a message that is not a row batch: no rows, the reason, the body.
    pub fn unreadable(body: &str, reason: String) -> RowBatch {
        RowBatch { rows: vec![], failure: Some(Failure { code: None, reason }), raw: Some(body.to_string()) }
    }
}

fn unspaced(text: &str) -> String {
    text.chars().filter(|c| !c.is_ascii_whitespace()).collect()
}

/// The strings of a JSON text, each decoded, in order; also of one cut short or broken, as
/// far as their quotes pair up.
fn json_strings(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let open = rest.find('"')?;
        let (mut escaped, mut close) = (false, None);
        for (i, c) in rest[open + 1..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    close = Some(open + 1 + i);
                    break;
                }
                _ => {}
            }
        }
        let close = close?;
        let literal = &rest[open..=close];
        rest = &rest[close + 1..];
        if let Ok(s) = serde_json::from_str::<String>(literal) {
            return Some(s);
        }
    })
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// How a row batch's JSON, unspaced, names a project.
fn project_named(project_id: &str) -> String {
    format!("\"project_id\":{}", json_string(project_id))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// ClickHouse's error code, when it gave one.
    pub code: Option<u32>,
    pub reason: String,
}

/// Queues take at most 128 KB a message; leave room for the envelope. The edge sends every
/// message as text (`row_queue` in the edge Worker), so the queue counts exactly these bytes.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// Rows as queue message bodies: as few as fit `max_bytes` each, in order, every row serialized
/// once. Each body is exactly `RowBatch { rows, failure: None, raw: None }.to_message()`.
/// A single row is always under the limit: pipeline::build_row refuses any row whose
/// `serialized_bound` passes MAX_ROW_BYTES.
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
pub(crate) mod tests {
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
        assert_eq!(msgs, vec![RowBatch { rows, failure: None, raw: None }.to_message()]);
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
        let b = RowBatch { rows: vec![sample("a", 3)], failure: Some(Failure { code: Some(117), reason: "r".into() }), raw: None };
        assert_eq!(RowBatch::from_message(&b.to_message()).unwrap(), b);
        assert!(RowBatch::from_message("{}").is_err());
        assert!(!RowBatch::from_message("garbage mm_aid=v1").unwrap_err().contains("v1"), "the reason is logged: no content in it");
        assert!(RowBatch::from_message(r#"{"rows":[{"title":"no ids"}]}"#).is_err(), "a row without its ids is not an old format");
        let dead = RowBatch::unreadable("garbage", "not a row batch".into());
        assert_eq!(RowBatch::from_message(&dead.to_message()).unwrap().raw.as_deref(), Some("garbage"));
    }

    #[test]
    fn erasure_takes_one_visitors_rows_out_of_a_dead_letter() {
        let mut a = sample("a", 1);
        a.anonymous_id = "v1".into();
        let mut b = sample("b", 1);
        b.anonymous_id = "v2".into();
        let batch = RowBatch { rows: vec![a.clone(), b.clone()], failure: None, raw: None };
        assert_eq!(batch.without_visitor("p", "v1").unwrap().rows, vec![b.clone()]);
        assert!(batch.without_visitor("p", "v3").is_none());
        assert!(batch.without_visitor("other", "v1").is_none(), "another project's visitor is another visitor");
        let both = [("p".to_string(), id_hash_hex("v1")), ("p".to_string(), id_hash_hex("v2"))].into();
        assert_eq!(batch.without_visitors(&both).unwrap().rows, vec![]);
    }

    /// Review finding: dead letters ignored retention, so an event sent 29 days late under a
    /// 30-day key was kept, and could be replayed, for 30 days more.
    #[test]
    fn rows_past_their_retention_leave_a_dead_letter() {
        let now = crate::test_clock::now_ms();
        let at = |days_ago: i64, retention: u16| {
            let mut r = sample("a", 1);
            r.event_id = format!("{days_ago}-{retention}");
            r.timestamp = crate::ingest::timestamp::clickhouse_datetime(now - days_ago * 86_400_000);
            r.retention_days = retention;
            r
        };
        let batch = RowBatch { rows: vec![at(31, 30), at(29, 30), at(31, 90), at(400, 365), at(400, 0)], failure: None, raw: None };
        let left = batch.without_expired(now).unwrap();
        assert_eq!(left.rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(), ["29-30", "31-90", "400-0"]);
        assert!(left.without_expired(now).is_none(), "nothing more to drop");
        assert!(RowBatch::unreadable("garbage", "r".into()).without_expired(now).is_none(), "an unreadable body cannot be dated");
    }

    #[test]
    fn erasure_takes_an_unreadable_dead_letter_that_names_the_visitor() {
        // A body that no longer reads as a row batch still holds the visitor's id, URL and
        // properties: it goes whole once it names the visitor's project and id.
        for raw in [
            r#"{"rows":[{"project_id":"p","anonymous_id":"visitor-42","url_path":"/x""#,
            r#"{ "project_id" : "p", "anonymous_id" : "visitor-42" "#,
            r#"{"rows":[{"project_id":"p","title":"a \"quoted\" title","anonymous_id":"visitor\u002d42","url"#,
        ] {
            let dead = RowBatch::unreadable(raw, "cut short".into());
            assert_eq!(dead.without_visitor("p", "visitor-42").unwrap().raw, None, "{raw}");
            assert!(dead.without_visitor("p", "visitor-4").is_none(), "{raw}: an id is not a prefix");
            assert!(dead.without_visitor("q", "visitor-42").is_none(), "{raw}: another project's visitor");
        }
    }

    #[test]
    fn a_projects_deletion_takes_its_rows_and_only_its_rows_out_of_a_dead_letter() {
        let mut a = sample("a", 1);
        a.project_id = "proj_a".into();
        let mut ab = sample("b", 1);
        ab.project_id = "proj_ab".into();
        let batch = RowBatch { rows: vec![a.clone(), ab.clone()], failure: None, raw: None };
        assert_eq!(batch.without_project("proj_a").unwrap().rows, vec![ab.clone()], "a project id is not a prefix");
        assert_eq!(batch.without_project("proj_ab").unwrap().rows, vec![a.clone()]);
        assert!(batch.without_project("proj").is_none());
        // An unreadable body goes whole once it names the project, however it is spaced.
        for raw in [r#"{"rows":[{"project_id":"proj_a""#, r#"{ "project_id" : "proj_a" , "x"#] {
            let dead = RowBatch::unreadable(raw, "cut short".into());
            assert_eq!(dead.without_project("proj_a").unwrap().raw, None, "{raw}");
            assert!(dead.without_project("proj_ab").is_none(), "{raw}");
        }
    }

    /// Review finding: an operator's listing showed an unreadable body whole, but only the
    /// readable rows' projects heard of it. The projects it names are found as the deletion
    /// finds them, however it is spaced, and a value that is not a string names none.
    #[test]
    fn the_projects_shown_include_those_an_unreadable_body_names() {
        let batch = RowBatch { rows: vec![sample("a", 1), sample("b", 1)], failure: None, raw: None };
        assert_eq!(batch.projects_shown(), ["p", "p"]);
        let raw = r#"{"rows":[{"project_id":"proj_a","x":1},{ "project_id" : "proj_b" , "y":"z"},{"project_id":null,"k":"proj_c"},{"project_id":"proj_d"#;
        assert_eq!(RowBatch::unreadable(raw, "cut short".into()).projects_shown(), ["proj_a", "proj_b"]);
    }

    /// A deploy that adds a row field must not lose what the previous deploy queued: a message
    /// without the newest fields still reads, with their defaults.
    #[test]
    fn a_message_in_the_previous_format_still_reads() {
        let mut v: serde_json::Value =
            serde_json::from_str(&RowBatch { rows: vec![sample("old", 3)], failure: None, raw: None }.to_message()).unwrap();
        let row = v["rows"][0].as_object_mut().unwrap();
        for newer in ["click_id_type", "click_id", "key_kind", "retention_days", "ingest_route", "revenue_amount", "revenue_currency"] {
            row.remove(newer);
        }
        let batch = RowBatch::from_message(&v.to_string()).expect("an older message reads");
        assert_eq!(batch.rows[0].event_id, "old");
        assert_eq!((batch.rows[0].retention_days, batch.rows[0].click_id.as_str()), (30, ""));
        assert_eq!((batch.rows[0].revenue_amount.as_str(), batch.rows[0].revenue_currency.as_str()), ("0", ""));
        assert_eq!(batch.rows[0].ingest_route, "collect");
        // And a newer deploy's message (a field this one does not know) reads too.
        let mut v = v.clone();
        v["rows"][0]["added_later"] = serde_json::json!("x");
        assert!(RowBatch::from_message(&v.to_string()).is_ok());
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
