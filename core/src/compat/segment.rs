//! Segment's HTTP Tracking API: `POST /v1/{track,page,screen,identify,group,alias,batch}` and
//! analytics-next's short paths (`/v1/t`, `/v1/p` ...). The write key is Basic auth's user, or
//! `writeKey` in the body. Each message is translated to a `/collect` event:
//!
//! | Segment | `/collect` |
//! |---|---|
//! | `messageId` | `id` (the first write of an id wins) |
//! | `anonymousId`, else `userId` | `mm_aid`, else `user_id` (stored only as a keyed hash) |
//! | `originalTimestamp`/`timestamp`, `sentAt` | `timestamp`, corrected for the client's clock |
//! | `track`: `event`, `properties`, `properties.revenue`/`currency` | a custom event, its props, its revenue |
//! | `page`, `screen`: `context.page.{url,referrer,title}` or the properties | a pageview |
//! | `context.campaign.{source,medium,name,term,content}` | `utm_*` on the page URL |
//! | `context.ip`, `context.userAgent` | `ip`, `user_agent` (with a server key only) |
//! | `identify`, `group`, `alias` | nothing: answered, no trait or id kept |

use super::{flat_props, json_body, skew_corrected, text_at, Incoming, Message, LIMITS};
use crate::error::ApiError;
use serde_json::{json, Map, Value};

/// Segment's own bound on one message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
    Batch,
}

impl Call {
    /// The call a path names after `/v1/`: the full name or analytics-next's letter.
    pub fn from_path(rest: &str) -> Option<Call> {
        Some(match rest {
            "track" | "t" => Call::Track,
            "page" | "p" => Call::Page,
            "screen" | "s" => Call::Screen,
            "identify" | "i" => Call::Identify,
            "group" | "g" => Call::Group,
            "alias" | "a" => Call::Alias,
            "batch" | "b" | "import" => Call::Batch,
            _ => return None,
        })
    }

    fn from_type(t: &str) -> Option<Call> {
        Some(match t {
            "track" => Call::Track,
            "page" => Call::Page,
            "screen" => Call::Screen,
            "identify" => Call::Identify,
            "group" => Call::Group,
            "alias" => Call::Alias,
            _ => return None,
        })
    }
}

/// A Segment body. `basic_user`: the user of a Basic `Authorization` header (the write key).
pub fn parse(call: Call, json: &[u8], basic_user: Option<&str>, received_ms: i64) -> Result<Incoming, ApiError> {
    let body = json_body(json)?;
    let Value::Object(mut obj) = body else {
        return Err(ApiError::bad_request("invalid_body", "The body must be a JSON object: one message, or {\"batch\": [...]}."));
    };
    let key = basic_user.map(str::to_string).or_else(|| obj.get("writeKey").and_then(|k| text_at(k, &[])));
    if call != Call::Batch {
        return Ok(Incoming { key, messages: vec![message(Some(call), Value::Object(obj), None, received_ms)], is_batch: false });
    }
    let sent_at = obj.remove("sentAt");
    let Some(Value::Array(batch)) = obj.remove("batch") else {
        return Err(ApiError::bad_request("invalid_field", "`batch` must be an array of messages."));
    };
    if batch.len() > LIMITS.max_batch_events {
        return Err(super::batch_too_large(batch.len(), LIMITS.max_batch_events));
    }
    let messages = batch.into_iter().map(|m| message(None, m, sent_at.as_ref(), received_ms)).collect();
    Ok(Incoming { key, messages, is_batch: true })
}

/// One message; `call` is the path's (single calls) or None (a batch's message names its `type`).
fn message(call: Option<Call>, m: Value, batch_sent_at: Option<&Value>, received_ms: i64) -> Message {
    if serde_json::to_vec(&m).map_or(0, |b| b.len()) > MAX_MESSAGE_BYTES {
        // 400, as Segment answers it: analytics-node drops a 400 and retries a 413.
        return Message::Refused(ApiError::new(
            400,
            "message_too_large",
            format!("A message is over Segment's {} KB. Send fewer or shorter properties.", MAX_MESSAGE_BYTES / 1024),
        ));
    }
    let call = match call.or_else(|| m.get("type").and_then(Value::as_str).and_then(Call::from_type)) {
        Some(c) => c,
        None => {
            return Message::Refused(ApiError::bad_request(
                "invalid_type",
                "Each batch message needs `type`: track, page, screen, identify, group or alias.",
            ))
        }
    };
    match call {
        Call::Identify | Call::Group | Call::Alias | Call::Batch => Message::Nothing,
        Call::Track => match text_at(&m, &["event"]) {
            // Tracked under the name pageviews have: a pageview, as its sender means, when it
            // names a web page; else refused on its own (no custom event may take the name).
            Some(name) if name == crate::ingest::event::PAGEVIEW_NAME => {
                match super::web_page(page_field(&m, "url").map(|u| with_campaign(&u, &m))) {
                    Some(_) => Message::Event(page(&m, batch_sent_at, received_ms)),
                    None => Message::Refused(crate::ingest::event::reserved_name()),
                }
            }
            Some(name) => Message::Event(track(&m, name, batch_sent_at, received_ms)),
            None => Message::Refused(ApiError::bad_request("missing_name", "A track call needs `event`, its name.")),
        },
        Call::Screen if page_field(&m, "url").is_none() => Message::Nothing, // an app's screen: no page to count
        Call::Page | Call::Screen => Message::Event(page(&m, batch_sent_at, received_ms)),
    }
}

fn track(m: &Value, name: String, batch_sent_at: Option<&Value>, received_ms: i64) -> Value {
    let properties = m.get("properties");
    let currency = text_at(m, &["properties", "currency"]).unwrap_or_else(|| "USD".to_string());
    let revenue =
        properties.and_then(|p| p.get("revenue")).filter(|r| !r.is_null()).and_then(|amount| super::revenue(amount, Some(currency)));
    let mut ev = common(m, batch_sent_at, received_ms);
    ev.insert("type".into(), json!("event"));
    ev.insert("name".into(), json!(name));
    // A custom event needs no page: one too long to store, or an app's, is left out, not the event.
    let url = text_at(m, &["context", "page", "url"]).map(|u| with_campaign(&u, m));
    if let Some(url) = super::web_page(url) {
        ev.insert("url".into(), json!(url));
    }
    let skip = |k: &str| revenue.is_some() && (k == "revenue" || k == "currency");
    ev.insert("props".into(), Value::Object(flat_props(properties, &skip, &LIMITS)));
    if let Some(r) = revenue {
        ev.insert("revenue".into(), r);
    }
    Value::Object(ev)
}

/// `page` and `screen`: where the page is, from `context.page` (analytics.js) or the
/// properties (server SDKs put `url`, `referrer`, `title` there).
fn page(m: &Value, batch_sent_at: Option<&Value>, received_ms: i64) -> Value {
    let field = |name: &str| page_field(m, name);
    let mut ev = common(m, batch_sent_at, received_ms);
    ev.insert("type".into(), json!("pageview"));
    let fields = [
        ("url", field("url").map(|u| with_campaign(&u, m))),
        ("referrer", super::bounded(field("referrer"), LIMITS.max_url_bytes)),
        ("title", super::bounded(field("title"), LIMITS.max_title_bytes)),
    ];
    for (ours, value) in fields {
        if let Some(v) = value {
            ev.insert(ours.into(), json!(v));
        }
    }
    let page_fields = |k: &str| matches!(k, "url" | "referrer" | "title" | "path" | "search");
    ev.insert("props".into(), Value::Object(flat_props(m.get("properties"), &page_fields, &LIMITS)));
    Value::Object(ev)
}

/// A page's `url`, `referrer` or `title`: in `context.page`, else in the properties.
fn page_field(m: &Value, name: &str) -> Option<String> {
    text_at(m, &["context", "page", name]).or_else(|| text_at(m, &["properties", name]))
}

/// What every message carries: ids, time, and a server's forwarded address and user agent.
fn common(m: &Value, batch_sent_at: Option<&Value>, received_ms: i64) -> Map<String, Value> {
    let mut ev = Map::new();
    let sent = m.get("sentAt").or(batch_sent_at);
    // The client's time of the event, else the library's (a null or unreadable one is none).
    let happened = ["originalTimestamp", "timestamp"].iter().find_map(|k| skew_corrected(m.get(*k), sent, received_ms));
    let fields = [
        ("id", text_at(m, &["messageId"]).map(Value::from)),
        ("mm_aid", text_at(m, &["anonymousId"]).map(Value::from)),
        ("user_id", text_at(m, &["userId"]).map(Value::from)),
        ("timestamp", happened.map(Value::from)),
        ("ip", super::forwarded_ip(text_at(m, &["context", "ip"])).map(Value::from)),
        ("user_agent", super::bounded(text_at(m, &["context", "userAgent"]), LIMITS.max_user_agent_bytes).map(Value::from)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            ev.insert(k.into(), v);
        }
    }
    ev
}

/// The page URL with `context.campaign` as UTM parameters, each only where the URL has none of
/// its own, so attribution reads them as it reads any tagged link.
fn with_campaign(url: &str, m: &Value) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return url.to_string() };
    let present: Vec<String> = parsed.query_pairs().map(|(k, _)| k.to_ascii_lowercase()).collect();
    let pairs =
        [("source", "utm_source"), ("medium", "utm_medium"), ("name", "utm_campaign"), ("term", "utm_term"), ("content", "utm_content")];
    let added: Vec<(&str, String)> = pairs
        .iter()
        .filter(|(_, utm)| !present.iter().any(|p| p == utm))
        .filter_map(|(field, utm)| text_at(m, &["context", "campaign", field]).map(|v| (*utm, v)))
        .collect();
    if added.is_empty() {
        return url.to_string();
    }
    parsed.query_pairs_mut().extend_pairs(added);
    // The URL as sent when the campaign would make it too long to store.
    super::bounded(Some(parsed.to_string()), LIMITS.max_url_bytes).unwrap_or_else(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn one(call: Call, body: Value) -> Message {
        let mut inc = parse(call, body.to_string().as_bytes(), None, NOW).unwrap();
        assert_eq!(inc.messages.len(), 1);
        inc.messages.remove(0)
    }

    fn event(m: Message) -> Value {
        match m {
            Message::Event(v) => v,
            other => panic!("not an event: {other:?}"),
        }
    }

    /// A page whose URL fits is taken even when `context.campaign` would make it too long: the
    /// campaign is not added then (the URL as sent is kept).
    #[test]
    fn a_campaign_never_pushes_a_page_over_its_bound() {
        let url = format!("https://shop.example/{}", "x".repeat(LIMITS.max_url_bytes - 40));
        let body = json!({"type":"page","anonymousId":"a-1","properties":{"url":url},"context":{"campaign":{"name":"spring-sale","source":"newsletter"}}});
        let ev = crate::ingest::event::validate_event(event(one(Call::Page, body)), true, &LIMITS).expect("taken");
        assert_eq!(ev.url.as_deref(), Some(url.as_str()));
    }

    #[test]
    fn a_null_client_time_falls_back_to_the_librarys_and_what_does_not_fit_is_left_out() {
        let minute_ago = jiff::Timestamp::from_millisecond(NOW - 60_000).unwrap().to_string();
        let body = json!({"type":"track","event":"Opened","messageId":"m-2","originalTimestamp":null,"timestamp": minute_ago,
            "context":{"page":{"url":"capacitor://localhost/home"},"ip":"81.2.69.142, 10.0.0.1"}});
        let ev = event(one(Call::Track, body));
        assert_eq!((ev["timestamp"].as_i64(), ev.get("url"), ev["ip"].as_str()), (Some(NOW - 60_000), None, Some("81.2.69.142")));
        let unknown = event(one(Call::Track, json!({"type":"track","event":"x","context":{"ip":"unknown"}})));
        assert_eq!(unknown.get("ip"), None);
        // Tracked under the name pageviews have: a pageview (a custom event may not take it).
        let named = event(one(Call::Track, json!({"type":"track","event":"pageview","context":{"page":{"url":"https://a.com/p"}}})));
        assert_eq!((named["type"].as_str(), named["url"].as_str(), named.get("name")), (Some("pageview"), Some("https://a.com/p"), None));
        // A server's, with no page: refused on its own, with the reason (the batch goes on).
        match one(Call::Track, json!({"type":"track","event":"pageview","userId":"u"})) {
            Message::Refused(e) => assert_eq!(e.code, "reserved_event_name"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn track_is_a_custom_event_with_props_revenue_and_campaign() {
        let body = json!({"type":"track","event":"Order Completed","messageId":"m-1","anonymousId":"a-1","userId":"jane@example.com",
            "properties":{"plan":"pro","revenue":"19.99","currency":"eur","products":[{"sku":"x"}]},
            "context":{"page":{"url":"https://shop.com/checkout?utm_source=mail"},"campaign":{"source":"ignored","medium":"email","name":"spring"},
                "ip":"81.2.69.142","userAgent":"Mozilla/5.0"}});
        let ev = event(one(Call::Track, body));
        assert_eq!(ev["type"], "event");
        assert_eq!(ev["name"], "Order Completed");
        assert_eq!(
            (ev["id"].as_str(), ev["mm_aid"].as_str(), ev["user_id"].as_str()),
            (Some("m-1"), Some("a-1"), Some("jane@example.com"))
        );
        assert_eq!(ev["props"], json!({"plan":"pro"}));
        assert_eq!(ev["revenue"], json!({"amount":"19.99","currency":"eur"}));
        // The URL's own utm_source stays; the campaign adds what it lacks.
        assert_eq!(ev["url"], "https://shop.com/checkout?utm_source=mail&utm_medium=email&utm_campaign=spring");
        assert_eq!((ev["ip"].as_str(), ev["user_agent"].as_str()), (Some("81.2.69.142"), Some("Mozilla/5.0")));
        // Revenue without a currency is Segment's default, USD; no url: none (a server's track).
        let ev = event(one(Call::Track, json!({"event":"Paid","userId":"42","properties":{"revenue":5}})));
        assert_eq!(ev["revenue"], json!({"amount":5,"currency":"USD"}));
        assert!(ev.get("url").is_none());
        assert!(matches!(one(Call::Track, json!({"userId":"1"})), Message::Refused(e) if e.code == "missing_name"));
        // A float as JavaScript's arithmetic leaves it is the amount it means, to the micro unit;
        // revenue that cannot be read is left out, never the event with it.
        let ev =
            event(one(Call::Track, json!({"event":"Paid","userId":"1","properties":{"revenue":0.30000000000000004,"currency":"EUR"}})));
        assert_eq!(ev["revenue"], json!({"amount":"0.3","currency":"EUR"}));
        // A float's own digits, none invented: /collect stores 8765432109.87 exactly too.
        for (sent, stored) in [(json!(8765432109.87), "8765432109.87"), (json!(99999999999.99), "99999999999.99"), (json!(-2.5), "-2.5")] {
            let ev = event(one(Call::Track, json!({"event":"Paid","userId":"1","properties":{"revenue":sent,"currency":"EUR"}})));
            assert_eq!(ev["revenue"]["amount"], stored);
        }
        for bad in [json!({"revenue":"N/A"}), json!({"revenue":5,"currency":"EURO"}), json!({"revenue":1e300}), json!({"revenue":1e-7})] {
            let ev = event(one(Call::Track, json!({"event":"Paid","userId":"1","properties":bad})));
            assert!(ev.get("revenue").is_none(), "{bad}");
        }
    }

    #[test]
    fn page_takes_its_page_from_the_context_or_the_properties() {
        let from_context = json!({"anonymousId":"a","context":{"page":{"url":"https://a.com/x","referrer":"https://r.com/","title":"X"}},"properties":{"url":"https://ignored.com/","kind":"doc"}});
        let ev = event(one(Call::Page, from_context));
        assert_eq!(
            (ev["type"].as_str(), ev["url"].as_str(), ev["referrer"].as_str()),
            (Some("pageview"), Some("https://a.com/x"), Some("https://r.com/"))
        );
        assert_eq!(ev["props"], json!({"kind":"doc"}));
        // analytics-python: the page in the properties, and an explicit null anonymousId.
        let python = json!({"type":"page","anonymousId":null,"userId":"u1","properties":{"url":"https://a.com/p","title":"P","path":"/p"}});
        let ev = event(one(Call::Page, python));
        assert_eq!((ev["url"].as_str(), ev["title"].as_str(), ev.get("mm_aid")), (Some("https://a.com/p"), Some("P"), None));
        assert_eq!(ev["props"], json!({}));
    }

    #[test]
    fn an_overlong_page_or_user_agent_of_a_custom_event_is_left_out() {
        let url = format!("https://a.com/{}", "x".repeat(LIMITS.max_url_bytes));
        let ua = "u".repeat(LIMITS.max_user_agent_bytes + 1);
        let ev = event(one(Call::Track, json!({"event":"E","userId":"1","context":{"page":{"url":url},"userAgent":ua}})));
        assert!(ev.get("url").is_none() && ev.get("user_agent").is_none(), "{ev}");
    }

    #[test]
    fn a_screen_without_a_url_stores_nothing_and_a_long_title_is_left_out() {
        assert!(matches!(one(Call::Screen, json!({"anonymousId":"a","name":"Home"})), Message::Nothing));
        let long = "t".repeat(LIMITS.max_title_bytes + 1);
        let ev = event(one(Call::Page, json!({"anonymousId":"a","properties":{"url":"https://a.com/","title":long}})));
        assert!(ev.get("title").is_none());
    }

    #[test]
    fn identify_group_and_alias_store_nothing() {
        for call in [Call::Identify, Call::Group, Call::Alias] {
            let m = one(call, json!({"userId":"jane@example.com","traits":{"email":"jane@example.com","name":"Jane"}}));
            assert!(matches!(m, Message::Nothing), "{call:?}");
        }
    }

    #[test]
    fn batches_take_the_key_from_basic_auth_or_the_body_and_correct_each_clock() {
        let body = json!({"writeKey":"sk_live_body","sentAt": NOW + 60_000, "batch":[
            {"type":"track","event":"a","timestamp": NOW + 50_000},
            {"type":"identify","userId":"u"},
            {"type":"nope"},
            {"type":"page","properties":{"url":"https://a.com/"}, "originalTimestamp": NOW, "sentAt": NOW + 1_000}]});
        let inc = parse(Call::Batch, body.to_string().as_bytes(), None, NOW).unwrap();
        assert_eq!(inc.key.as_deref(), Some("sk_live_body"));
        assert!(inc.is_batch);
        let [a, b, c, d]: [Message; 4] = inc.messages.try_into().unwrap();
        assert_eq!(event(a)["timestamp"], json!(NOW - 10_000), "10 s before the batch was sent");
        assert!(matches!(b, Message::Nothing));
        assert!(matches!(c, Message::Refused(e) if e.code == "invalid_type"));
        assert_eq!(event(d)["timestamp"], json!(NOW - 1_000), "a message's own sentAt wins");
        let basic = parse(Call::Batch, body.to_string().as_bytes(), Some("sk_live_basic"), NOW).unwrap();
        assert_eq!(basic.key.as_deref(), Some("sk_live_basic"));
    }

    #[test]
    fn segments_limits_hold() {
        let big = json!({"event":"x","properties":{"blob":"y".repeat(MAX_MESSAGE_BYTES)}});
        assert!(matches!(one(Call::Track, big), Message::Refused(e) if e.status == 400 && e.code == "message_too_large"));
        let many = json!({"batch": vec![json!({"type":"track","event":"e"}); LIMITS.max_batch_events + 1]});
        assert_eq!(parse(Call::Batch, many.to_string().as_bytes(), None, NOW).unwrap_err().code, "batch_too_large");
        let full = json!({"batch": vec![json!({"type":"track","event":"e"}); LIMITS.max_batch_events]});
        assert_eq!(parse(Call::Batch, full.to_string().as_bytes(), None, NOW).unwrap().messages.len(), 2_500);
        assert_eq!(parse(Call::Track, b"[1]", None, NOW).unwrap_err().code, "invalid_body");
        assert_eq!(parse(Call::Track, b"{", None, NOW).unwrap_err().code, "invalid_json");
    }
}
