//! PostHog's capture API (`/e/`, `/i/v0/e/`, `/batch/`, `/capture/`, `/track/`): one event, an
//! array of them, or `{"batch": [...]}`. The project token is `api_key` or `token`, at the top
//! or in an event's properties. Each event is translated to a `/collect` event:
//!
//! | PostHog | `/collect` |
//! |---|---|
//! | `uuid` | `id` (the first write of an id wins) |
//! | `properties.$device_id`, else `distinct_id` | `mm_aid`, else `user_id` (stored only as a keyed hash) |
//! | `offset`, or `timestamp` and `sent_at` | `timestamp`, corrected for the client's clock |
//! | `$pageview`, `$screen`: `$current_url`, `$referrer`, `title` | a pageview |
//! | any event not starting with `$` | a custom event, `$current_url` its page |
//! | properties not starting with `$` | props |
//! | `$ip`, `$raw_user_agent` | `ip`, `user_agent` (with a server key only) |
//! | `$identify`, `$set`, `$create_alias`, every other `$` event | nothing: answered, no person property kept |

use super::{flat_props, json_body, skew_corrected, text_at, Incoming, Message, LIMITS};
use crate::error::ApiError;
use serde_json::{json, Map, Value};

/// The `distinct_id` posthog-js sends for every visitor in its cookieless mode
/// (`cookieless_mode: "always"`, or `"on_reject"` once consent is refused).
pub const COOKIELESS_ID: &str = "$posthog_cookieless";

/// A PostHog body, and the request's query string: posthog-js sends the time it sent a
/// request there (`?_=<epoch ms>`), not in the body, when it does not batch.
pub fn parse(json: &[u8], received_ms: i64, query: Option<&str>) -> Result<Incoming, ApiError> {
    let body = json_body(json)?;
    let (top, events, is_batch) = match body {
        Value::Array(events) => (Value::Null, events, true),
        Value::Object(mut obj) => match obj.remove("batch") {
            Some(Value::Array(events)) => (Value::Object(obj), events, true),
            Some(_) => return Err(ApiError::bad_request("invalid_field", "`batch` must be an array of events.")),
            // One event: its own token and `sent_at` are read with it (below), as a batch's are.
            None => (Value::Null, vec![Value::Object(obj)], false),
        },
        _ => return Err(ApiError::bad_request("invalid_body", "The body must be an event, an array of events, or {\"batch\": [...]}.")),
    };
    if events.len() > LIMITS.max_batch_events {
        return Err(super::batch_too_large(events.len(), LIMITS.max_batch_events));
    }
    let token_of = |v: &Value| ["api_key", "token"].iter().find_map(|k| text_at(v, &[k]).or_else(|| text_at(v, &["properties", k])));
    let key = token_of(&top).or_else(|| events.iter().find_map(token_of));
    let sent_at = top.get("sent_at").cloned().or_else(|| sent_at_in_query(query));
    let messages = events.iter().map(|e| message(e, sent_at.as_ref(), received_ms)).collect();
    Ok(Incoming { key, messages, is_batch })
}

/// posthog-js's send time, `_` in the query (PostHog's capture reads it as `sent_at`).
fn sent_at_in_query(query: Option<&str>) -> Option<Value> {
    let (_, ms) = url::form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == "_")?;
    ms.parse::<i64>().ok().map(Value::from)
}

/// Events that carry person or group properties, or PostHog's own instrumentation
/// (`$autocapture`, `$pageleave`, `$web_vitals`, `$exception` ...): none is stored.
fn stores_nothing(name: &str) -> bool {
    name.starts_with('$') && !matches!(name, "$pageview" | "$screen")
}

fn message(e: &Value, batch_sent_at: Option<&Value>, received_ms: i64) -> Message {
    if !e.is_object() {
        return Message::Refused(ApiError::bad_request("invalid_event", "Each event must be a JSON object."));
    }
    let Some(name) = text_at(e, &["event"]) else {
        return Message::Refused(ApiError::bad_request("missing_name", "Each event needs `event`, its name."));
    };
    if stores_nothing(&name) {
        return Message::Nothing;
    }
    let prop = |k: &str| text_at(e, &["properties", k]);
    if name == "$screen" && prop("$current_url").is_none() {
        return Message::Nothing; // an app's screen: no page to count
    }
    let mut ev = Map::new();
    // An event captured under the name pageviews have is a pageview, as its sender means, when
    // it names a web page; else it is refused on its own (no custom event may take the name).
    if name == crate::ingest::event::PAGEVIEW_NAME && super::web_page(prop("$current_url")).is_none() {
        return Message::Refused(crate::ingest::event::reserved_name());
    }
    let pageview = name == "$pageview" || name == "$screen" || name == crate::ingest::event::PAGEVIEW_NAME;
    if pageview {
        ev.insert("type".into(), json!("pageview"));
        ev.insert("title".into(), json!(super::bounded(prop("title"), LIMITS.max_title_bytes)));
        ev.insert("referrer".into(), json!(super::bounded(prop("$referrer").filter(|r| r != "$direct"), LIMITS.max_url_bytes)));
    } else {
        ev.insert("type".into(), json!("event"));
        ev.insert("name".into(), json!(name));
    }
    let offset = e.get("offset").and_then(Value::as_i64);
    let happened = match offset {
        Some(offset) => Some(received_ms.saturating_sub(offset.max(0))),
        None => skew_corrected(e.get("timestamp"), e.get("sent_at").or(batch_sent_at), received_ms),
    };
    // posthog-js's cookieless mode sends one placeholder for every visitor: no id at all (the
    // edge gives such an event the day's visitor from address and user agent, as PostHog does).
    let distinct_id = text_at(e, &["distinct_id"]).or_else(|| prop("distinct_id")).filter(|id| id != COOKIELESS_ID);
    let fields = [
        // A custom event needs no page: one too long to store, or an app's, is left out, not the event.
        ("url", if pageview { prop("$current_url") } else { super::web_page(prop("$current_url")) }),
        ("id", text_at(e, &["uuid"])),
        ("mm_aid", prop("$device_id")),
        ("user_id", distinct_id),
        ("ip", super::forwarded_ip(prop("$ip"))),
        ("user_agent", super::bounded(prop("$raw_user_agent"), LIMITS.max_user_agent_bytes)),
    ];
    for (k, v) in fields {
        ev.insert(k.into(), json!(v));
    }
    ev.insert("timestamp".into(), json!(happened));
    let own = |k: &str| k.starts_with('$') || matches!(k, "token" | "api_key" | "distinct_id") || (pageview && k == "title");
    ev.insert("props".into(), Value::Object(flat_props(e.get("properties"), &own, &LIMITS)));
    ev.retain(|_, v| !v.is_null());
    Message::Event(Value::Object(ev))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn events(body: Value) -> Incoming {
        parse(body.to_string().as_bytes(), NOW, None).unwrap()
    }

    fn event(m: &Message) -> &Value {
        match m {
            Message::Event(v) => v,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn cookieless_mode_sends_no_visitor_id_and_what_does_not_fit_is_left_out() {
        let body = json!({"batch":[{"event":"added_to_cart","uuid":"u-1","distinct_id":"$posthog_cookieless","properties":{"$device_id":null,
            "$current_url":"capacitor://localhost/cart","$ip":"unknown","plan":"pro"}},
            {"event":"$pageview","uuid":"u-2","properties":{"distinct_id":"$posthog_cookieless","$current_url":"https://a.com/","$ip":"81.2.69.142, 10.0.0.1"}}],
            "api_key":"sk_live_t"});
        let inc = events(body);
        let custom = event(&inc.messages[0]);
        assert_eq!(
            custom,
            &json!({"type":"event","name":"added_to_cart","id":"u-1","props":{"plan":"pro"}}),
            "no id, no app page, no address"
        );
        let page = event(&inc.messages[1]);
        assert_eq!((page.get("user_id"), page.get("mm_aid"), page["ip"].as_str()), (None, None, Some("81.2.69.142")));
        // Captured under the name pageviews have: a pageview (a custom event may not take it).
        let named =
            events(json!({"event":"pageview","distinct_id":"d","properties":{"$current_url":"https://a.com/"},"api_key":"sk_live_t"}));
        assert_eq!((event(&named.messages[0])["type"].as_str(), event(&named.messages[0]).get("name")), (Some("pageview"), None));
        let server = events(json!({"event":"pageview","distinct_id":"d","api_key":"sk_live_t"}));
        assert!(matches!(&server.messages[0], Message::Refused(e) if e.code == "reserved_event_name"), "{:?}", server.messages);
    }

    #[test]
    fn a_posthog_js_pageview_keeps_the_page_and_the_device_not_the_person() {
        let body = json!([{"event":"$pageview","uuid":"0192-u1","offset":1500,"properties":{"token":"pk_live_t","distinct_id":"jane@example.com",
            "$device_id":"0192-device","$current_url":"https://a.com/p?x=1","$referrer":"$direct","title":"P","$browser":"Chrome",
            "$set":{"email":"jane@example.com"},"plan":"pro"}}]);
        let inc = events(body);
        assert_eq!((inc.key.as_deref(), inc.is_batch), (Some("pk_live_t"), true));
        let ev = event(&inc.messages[0]);
        assert_eq!(
            ev,
            &json!({"type":"pageview","title":"P","url":"https://a.com/p?x=1","id":"0192-u1","mm_aid":"0192-device",
                "user_id":"jane@example.com","timestamp": NOW - 1500,"props":{"plan":"pro"}})
        );
    }

    #[test]
    fn server_sdk_batches_and_custom_events() {
        let body = json!({"api_key":"sk_live_s","sent_at": NOW + 3_600_000, "batch":[
            {"event":"signed up","distinct_id":"user-42","timestamp": NOW + 3_600_000 - 2_000,"properties":{"plan":"team","$ip":"81.2.69.142","$lib":"posthog-python"}},
            {"event":"$identify","distinct_id":"user-42","properties":{"$set":{"email":"x@y.z"}}},
            {"event":"$set","distinct_id":"user-42"},
            {"event":"$autocapture","distinct_id":"user-42"},
            {"distinct_id":"no name"}]});
        let inc = events(body);
        assert_eq!(inc.key.as_deref(), Some("sk_live_s"));
        let ev = event(&inc.messages[0]);
        assert_eq!(ev["type"], "event");
        assert_eq!(ev["name"], "signed up");
        assert_eq!(ev["timestamp"], json!(NOW - 2_000), "an hour-fast clock corrected");
        assert_eq!((ev["user_id"].as_str(), ev["ip"].as_str()), (Some("user-42"), Some("81.2.69.142")));
        assert_eq!(ev["props"], json!({"plan":"team"}));
        assert!(ev.get("url").is_none() && ev.get("mm_aid").is_none());
        assert!(inc.messages[1..4].iter().all(|m| matches!(m, Message::Nothing)));
        assert!(matches!(&inc.messages[4], Message::Refused(e) if e.code == "missing_name"));
    }

    /// Review finding: posthog-js, one event a request (as docs/switching.md asks), sends the
    /// time it sent in the query (`?_=`): a device clock hours behind was stored as it said,
    /// and one over 30 days off was refused.
    #[test]
    fn posthog_js_send_time_in_the_query_corrects_its_clock() {
        let behind = 2 * 3_600_000;
        let body = json!({"event":"x","token":"pk_live_a","distinct_id":"d","timestamp": NOW - behind}).to_string();
        let query = format!("ip=0&_={}&ver=1.200.0", NOW - behind + 1_000);
        let inc = parse(body.as_bytes(), NOW, Some(&query)).unwrap();
        assert_eq!(event(&inc.messages[0])["timestamp"], json!(NOW - 1_000));
        for q in [None, Some("_=soon"), Some("ver=1")] {
            let inc = parse(body.as_bytes(), NOW, q).unwrap();
            assert_eq!(event(&inc.messages[0])["timestamp"], json!(NOW - behind), "{q:?}: no send time, no correction");
        }
        let own =
            json!({"sent_at": NOW - behind, "batch": [{"event":"x","distinct_id":"d","timestamp": NOW - behind - 5_000}]}).to_string();
        let inc = parse(own.as_bytes(), NOW, Some(&query)).unwrap();
        assert_eq!(event(&inc.messages[0])["timestamp"], json!(NOW - 5_000), "the body's own sent_at first");
    }

    #[test]
    fn a_mobile_screen_without_a_url_stores_nothing() {
        let inc = events(json!({"event":"$screen","distinct_id":"d","properties":{"$screen_name":"Home"}}));
        assert!(matches!(inc.messages[0], Message::Nothing));
    }

    #[test]
    fn a_single_event_and_its_token_in_any_place() {
        let single = events(json!({"event":"x","token":"pk_live_a","distinct_id":"d"}));
        assert_eq!((single.key.as_deref(), single.is_batch, single.messages.len()), (Some("pk_live_a"), false, 1));
        assert_eq!(events(json!({"event":"x","properties":{"api_key":"pk_live_b"}})).key.as_deref(), Some("pk_live_b"));
        assert_eq!(events(json!({"event":"x"})).key, None);
        assert_eq!(parse(b"\"x\"", NOW, None).unwrap_err().code, "invalid_body");
        let too_many = Value::Array(vec![json!({"event":"e"}); LIMITS.max_batch_events + 1]);
        assert_eq!(parse(too_many.to_string().as_bytes(), NOW, None).unwrap_err().status, 413);
    }
}
