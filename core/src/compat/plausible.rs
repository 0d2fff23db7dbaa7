//! Plausible's Events API: `POST /api/event` with `{n, u, d, r, p, h, revenue}` as the script
//! sends them (revenue as `$`, and `p` may be a JSON string), or with the long names Plausible
//! reads too and its documentation shows (`name`, `url`, `domain`, `referrer`, `props`/`meta`). No key: the site is its domain `d`,
//! registered on one of the project's pk_live_ keys (`keys::KeyRecord::domains`).
//!
//! Plausible's script sends no visitor id, and Plausible counts a visitor by a daily hash of
//! the address and user agent. So does this: `daily_visitor` makes that seed at the edge, it
//! becomes `user_id`, and only its keyed hash is stored (`privacy::pseudonym`). The address
//! itself is dropped as for every request; a visitor gets a new id every UTC day.

use super::{flat_props, json_body, text_at, Message, LIMITS};
use crate::error::ApiError;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// A Plausible event: the domain it names (the first of a comma-separated list) and the
/// `/collect` event it is (Nothing for the script's engagement pings).
#[derive(Debug)]
pub struct Received {
    pub domain: String,
    pub message: Message,
}

pub fn parse(json: &[u8]) -> Result<Received, ApiError> {
    let body = json_body(json)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("invalid_body", "The body must be a JSON object: {\"n\", \"u\", \"d\", ...}."));
    }
    let domain = field(&body, "d", "domain")
        .and_then(|d| d.split(',').next().map(|d| d.trim().to_string()))
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("missing_domain", "`d` (or `domain`) must name the site's domain, as registered with the project's key.")
        })?;
    let domain = crate::keys::normalize_domain(&domain).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_domain",
            "`d` is not a domain: send the site's host name, such as example.com, as registered with the project's key.",
        )
    })?;
    let name = field(&body, "n", "name")
        .ok_or_else(|| ApiError::bad_request("missing_name", "`n` (or `name`) must name the event: `pageview` or your own."))?;
    if name == "engagement" {
        return Ok(Received { domain, message: Message::Nothing });
    }
    let mut ev = Map::new();
    if name == "pageview" {
        ev.insert("type".into(), json!("pageview"));
    } else {
        ev.insert("type".into(), json!("event"));
        ev.insert("name".into(), json!(name));
    }
    // A pageview needs its page; a custom event's page, or a referrer, that cannot be stored is
    // left out rather than the event refused.
    let url = field(&body, "u", "url");
    ev.insert("url".into(), json!(if name == "pageview" { url } else { super::web_page(url) }));
    ev.insert("referrer".into(), json!(super::bounded(field(&body, "r", "referrer"), LIMITS.max_url_bytes)));
    let props = match ["p", "m", "props", "meta"].iter().find_map(|k| body.get(*k).filter(|v| !v.is_null())) {
        // JSON inside a string: bounded in values as a body is, else left out.
        Some(Value::String(s)) => crate::ingest::event::json_value(s.as_bytes(), "").ok(),
        other => other.cloned(),
    };
    ev.insert("props".into(), Value::Object(flat_props(props.as_ref(), &|_| false, &LIMITS)));
    if let Some(r) = body.get("revenue").or_else(|| body.get("$")).filter(|r| r.is_object()) {
        let revenue = r.get("amount").and_then(|amount| super::revenue(amount, text_at(r, &["currency"])));
        ev.insert("revenue".into(), json!(revenue));
    }
    ev.retain(|_, v| !v.is_null());
    Ok(Received { domain, message: Message::Event(Value::Object(ev)) })
}

/// A field by its short name (the script's) or its long one (the documented API's).
fn field(body: &Value, short: &str, long: &str) -> Option<String> {
    text_at(body, &[short]).or_else(|| text_at(body, &[long]))
}

/// The seed of a visitor's id for one UTC day (as Plausible counts): a digest of the day, the
/// site, the address and the user agent. It is never stored: the pipeline stores only its
/// keyed hash, as for any `user_id`.
pub fn daily_visitor(received_ms: i64, domain: &str, ip: &str, user_agent: &str) -> String {
    let day = received_ms.div_euclid(86_400_000);
    let digest = Sha256::digest(format!("plausible-visitor\0{day}\0{domain}\0{ip}\0{user_agent}").as_bytes());
    crate::keys::hex(&digest)
}

/// Whether a browser's `Origin` is the site `domain` names: its host is the domain or one of
/// its subdomains (the key's allowed origins are checked too, as for every pk_live_ request).
pub fn origin_is_domain(origin: &str, domain: &str) -> bool {
    let Some(host) = url::Url::parse(origin).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)) else { return false };
    host == domain || host.strip_suffix(domain).is_some_and(|sub| sub.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(r: Received) -> Value {
        match r.message {
            Message::Event(v) => v,
            other => panic!("not an event: {other:?}"),
        }
    }

    /// What does not fit is left out, not the event (docs/switching.md): a long referrer (the
    /// script sends `document.referrer`, a previous page's whole URL), and a custom event's page
    /// that is too long or not a web page's. A pageview's own page is still required.
    #[test]
    fn what_does_not_fit_is_left_out_not_the_event() {
        let valid = |b: Value| crate::ingest::event::validate_event(event(parse(b.to_string().as_bytes()).unwrap()), false, &LIMITS);
        let long = format!("https://a.com/search?q={}", "x".repeat(LIMITS.max_url_bytes));
        let ev = valid(json!({"n":"pageview","u":"https://a.com/","d":"a.com","r":long})).expect("taken");
        assert_eq!(ev.referrer, None);
        for u in [long.as_str(), "app://settings"] {
            let ev = valid(json!({"n":"Signup","u":u,"d":"a.com"})).expect("taken");
            assert_eq!(ev.url, None, "{u}");
        }
        assert_eq!(valid(json!({"n":"pageview","u":long,"d":"a.com"})).unwrap_err().code, "field_too_long");
    }

    #[test]
    fn the_scripts_events_and_the_events_api() {
        let body = json!({"n":"pageview","u":"https://a.com/p","d":"A.com,b.com","r":null,"v":36});
        let r = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.domain, "a.com");
        assert_eq!(event(r), json!({"type":"pageview","url":"https://a.com/p","props":{}}));
        // `p` as a JSON string; revenue as the script sends it (`$`) and as the API does.
        let body = json!({"n":"Signup","u":"https://a.com/","d":"a.com","r":"https://news.com/","p":"{\"plan\":\"pro\",\"n\":{\"x\":1}}","$":{"amount":"9.5","currency":"EUR"}});
        let ev = event(parse(body.to_string().as_bytes()).unwrap());
        assert_eq!(ev["name"], "Signup");
        assert_eq!(ev["props"], json!({"plan":"pro"}));
        assert_eq!(ev["revenue"], json!({"amount":"9.5","currency":"EUR"}));
        assert_eq!(ev["referrer"], "https://news.com/");
        let api = json!({"n":"Buy","u":"https://a.com/","d":"a.com","revenue":{"amount":3,"currency":"USD"}});
        assert_eq!(event(parse(api.to_string().as_bytes()).unwrap())["revenue"], json!({"amount":3,"currency":"USD"}));
    }

    /// The Events API's own example, and what server-side clients send: the long names.
    #[test]
    fn the_documented_long_names_are_read() {
        let body = br#"{"name":"Signup","url":"https://a.com/","domain":"a.com","referrer":"https://r.com/","props":{"plan":"pro"}}"#;
        let r = parse(body).unwrap();
        assert_eq!(r.domain, "a.com");
        let ev = event(r);
        assert_eq!(
            (ev["name"].as_str(), ev["referrer"].as_str(), ev["props"]["plan"].as_str()),
            (Some("Signup"), Some("https://r.com/"), Some("pro"))
        );
        let ev = event(parse(br#"{"name":"pageview","url":"http://dummy.site","domain":"dummy.site","meta":{"k":"v"}}"#).unwrap());
        assert_eq!(ev, json!({"type":"pageview","url":"http://dummy.site","props":{"k":"v"}}));
    }

    #[test]
    fn engagement_pings_store_nothing_and_bad_bodies_are_refused() {
        let ping = json!({"n":"engagement","u":"https://a.com/","d":"a.com","sd":40,"e":3000});
        assert!(matches!(parse(ping.to_string().as_bytes()).unwrap().message, Message::Nothing));
        assert_eq!(parse(br#"{"n":"pageview","u":"https://a.com/"}"#).unwrap_err().code, "missing_domain");
        assert_eq!(parse(br#"{"u":"https://a.com/","d":"a.com"}"#).unwrap_err().code, "missing_name");
        assert_eq!(parse(b"[]").unwrap_err().code, "invalid_body");
        // The domain is looked up as registered (keys::normalize_domain), and bounded.
        assert_eq!(parse(br#"{"n":"pageview","u":"https://a.com/","d":"A.com."}"#).unwrap().domain, "a.com");
        let long = format!(r#"{{"n":"pageview","u":"https://a.com/","d":"{}.com"}}"#, "a".repeat(600));
        assert_eq!(parse(long.as_bytes()).unwrap_err().code, "invalid_domain");
        // Revenue that cannot be read is left out, not the event.
        let bad = json!({"n":"Buy","u":"https://a.com/","d":"a.com","revenue":{"amount":"lots","currency":"USD"}});
        assert!(event(parse(bad.to_string().as_bytes()).unwrap()).get("revenue").is_none());
    }

    #[test]
    fn the_origin_must_be_the_named_site() {
        assert!(origin_is_domain("https://a.com", "a.com"));
        assert!(origin_is_domain("http://www.a.com:8080", "a.com"));
        for (origin, domain) in
            [("https://evil-a.com", "a.com"), ("https://a.com.evil.com", "a.com"), ("null", "a.com"), ("https://b.com", "a.com")]
        {
            assert!(!origin_is_domain(origin, domain), "{origin} {domain}");
        }
    }

    #[test]
    fn a_visitor_is_one_per_day_site_address_and_browser() {
        let day = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000;
        let a = daily_visitor(day + 1_000, "a.com", "81.2.69.142", "UA");
        assert_eq!(a, daily_visitor(day + 86_399_999, "a.com", "81.2.69.142", "UA"));
        for other in [
            daily_visitor(day + 86_400_000, "a.com", "81.2.69.142", "UA"),
            daily_visitor(day, "b.com", "81.2.69.142", "UA"),
            daily_visitor(day, "a.com", "81.2.69.143", "UA"),
            daily_visitor(day, "a.com", "81.2.69.142", "UA2"),
        ] {
            assert_ne!(a, other);
        }
        assert!(!a.contains("81.2.69.142") && a.len() == 64);
    }
}
