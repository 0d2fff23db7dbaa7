//! One validated event plus what the edge knows about the request, to one row.
//! Pure: the Worker passes in the time, the edge geo, a geo lookup and an id source.

use crate::enrich::{attribution, geo::Geo, pii, url_scrub, user_agent};
use crate::error::ApiError;
use crate::ingest::event::{Event, EventKind};
use crate::ingest::row::{EventRow, MAX_ROW_BYTES};
use crate::ingest::timestamp::{self, TimestampError};
use crate::keys::{KeyKind, Principal};
use crate::privacy::pseudonym::{self, IdSecret};
use std::net::IpAddr;

/// What the edge knows about the request itself. No IP here: the per-IP limit and the
/// geo lookup of the connecting address happen before, in the adapter.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub received_ms: i64,
    /// The request's User-Agent header (used for browser-key events).
    pub user_agent: Option<String>,
    /// What the edge resolved for the connecting address (used for browser-key events).
    pub edge_geo: Geo,
    /// The deployment's secret for ids that are personal data (`privacy::pseudonym`); None
    /// when it lacks a safe one, and then such an id is refused, never stored as sent.
    pub id_secret: Option<IdSecret>,
}

pub fn build_row(
    principal: &Principal,
    event: Event,
    ctx: &RequestContext,
    geo_lookup: &dyn Fn(IpAddr) -> Option<Geo>,
    new_id: &mut dyn FnMut() -> String,
) -> Result<EventRow, ApiError> {
    let ts = timestamp::resolve(event.timestamp.as_ref(), ctx.received_ms).map_err(|e| match e {
        TimestampError::Unparseable => ApiError::bad_request(
            "invalid_timestamp",
            "`timestamp` must be an RFC 3339 string (2026-11-22T10:00:00Z) or epoch milliseconds.",
        ),
        TimestampError::Seconds => ApiError::bad_request(
            "invalid_timestamp",
            "`timestamp` looks like seconds since the epoch: send milliseconds (seconds x 1000) or an RFC 3339 string.",
        ),
        TimestampError::TooOld => {
            ApiError::bad_request("timestamp_out_of_range", "`timestamp` is more than 30 days in the past; such events are not taken.")
        }
    })?;

    let page_url = match &event.url {
        Some(url) => Some(
            url_scrub::parse_and_scrub(url, principal.hash_routing)
                .ok_or_else(|| ApiError::bad_request("invalid_url", "`url` must be an absolute http(s) URL."))?,
        ),
        None => None, // a server's custom event with no page (compat protocols only)
    };
    // A referrer at an IP address (or a name that spells one, `81-2-69-14.nip.io`) is dropped:
    // an address is never stored, and names no site.
    let referrer = event.referrer.as_deref().and_then(|r| url_scrub::parse_and_scrub(r, false)).filter(|(u, _)| at_a_domain(u));
    let attr = match &page_url {
        Some((url, _)) => attribution::attribute(url, referrer.as_ref().map(|(u, _)| u)),
        None => Default::default(),
    };
    // A page served at an IP address keeps its path, but not its host: an address is never stored.
    let page = page_url
        .map(|(url, mut page)| {
            if !at_a_domain(&url) {
                page.host.clear();
            }
            page
        })
        .unwrap_or_default();

    // Browser keys: the request's own UA and edge geo. Server keys: only what the SDK forwarded
    // for the visitor (the request's own belong to the customer's server).
    let (ua, geo) = match principal.kind {
        KeyKind::Secret => {
            // The IP is parsed, looked up, and dropped here; it is never copied into the row.
            let geo = event.ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()).and_then(geo_lookup).unwrap_or_default();
            (event.user_agent.clone(), geo)
        }
        // A browser always sends a User-Agent: a browser key's request without one is a
        // script's, classified as the empty UA is (a bot), not stored as a visitor's.
        _ => (Some(ctx.user_agent.clone().unwrap_or_default()), ctx.edge_geo.clone()),
    };
    let ua = ua.map(|u| user_agent::classify(&u));

    let (prop_keys, prop_values) = event.props.iter().filter_map(|(k, v)| scrub_prop(k, v.to_stored())).unzip();
    let event_name = match &event.kind {
        EventKind::Custom(name) => pii::redact_text(name),
        EventKind::Pageview => event.kind.name().to_string(),
    };

    let row = EventRow {
        project_id: principal.project_id.clone(),
        event_id: match &event.client_id {
            Some(id) => pseudonym::stored_event_id(ctx.id_secret.as_ref(), &principal.project_id, id)?,
            None => new_id(),
        },
        timestamp: timestamp::clickhouse_datetime(ts),
        received_at: timestamp::clickhouse_datetime(ctx.received_ms),
        event_type: event.kind.type_str().to_string(),
        event_name,
        anonymous_id: match (&event.anonymous_id, &event.user_id) {
            (Some(id), _) => pseudonym::stored_id(ctx.id_secret.as_ref(), &principal.project_id, id)?,
            (None, Some(user)) => pseudonym::user_visitor_id(ctx.id_secret.as_ref(), &principal.project_id, user)?,
            (None, None) => String::new(),
        },
        url_host: page.host,
        url_path: page.path,
        url_query: page.query,
        url_fragment: page.fragment,
        title: event.title.as_deref().map(pii::redact_text).unwrap_or_default(),
        referrer: referrer.as_ref().map(|(u, c)| c.without_fragment(u.scheme())).unwrap_or_default(),
        referrer_host: referrer.map(|(_, c)| c.host).unwrap_or_default(),
        country: geo.country,
        region: geo.region,
        city: geo.city,
        browser: ua.as_ref().map(|u| u.browser).unwrap_or("").to_string(),
        os: ua.as_ref().map(|u| u.os).unwrap_or("").to_string(),
        device_type: ua.as_ref().map(|u| u.device).unwrap_or("other").to_string(),
        is_bot: ua.as_ref().map(|u| u.is_bot as u8).unwrap_or(0),
        source: attr.source,
        medium: attr.medium,
        utm_source: attr.utm_source,
        utm_medium: attr.utm_medium,
        utm_campaign: attr.utm_campaign,
        utm_term: attr.utm_term,
        utm_content: attr.utm_content,
        click_id_type: attr.click_id_type,
        click_id: attr.click_id,
        prop_keys,
        prop_values,
        key_kind: principal.kind.as_str().to_string(),
        retention_days: principal.retention_days,
        ingest_route: "collect".into(),
        revenue_amount: event.revenue.as_ref().map(|r| r.amount.clone()).unwrap_or_default(),
        revenue_currency: event.revenue.as_ref().map(|r| r.currency.clone()).unwrap_or_default(),
    };
    let (bytes, largest) = row.serialized_bound();
    if bytes > MAX_ROW_BYTES {
        return Err(ApiError::new(
            413,
            "event_too_large",
            format!(
                "This event would take {} KiB stored; at most {} KiB are taken. `{largest}` is its largest part: shorten it.",
                bytes / 1024,
                MAX_ROW_BYTES / 1024
            ),
        ));
    }
    Ok(row)
}

/// Whether a URL's host is a name, and not an IP address or a name that spells one
/// (`81-2-69-14.nip.io`).
fn at_a_domain(url: &url::Url) -> bool {
    matches!(url.host(), Some(url::Host::Domain(d)) if !url_scrub::host_spells_ip(d))
}

/// One custom property, as stored, or None when it goes. A property whose name is named or
/// shaped like personal data (`user_email`, `jane@example.com`, a token) goes; a value that is
/// a URL (absolute, `//host` or a path) is scrubbed like a nested URL (and goes if nothing may be kept); any other
/// value that holds personal data or a secret goes, name and all.
fn scrub_prop(key: &str, value: String) -> Option<(String, String)> {
    if pii::is_pii_name(key) || pii::is_pii_value(key) {
        return None;
    }
    // Absolute, scheme-relative and path URLs (`location.pathname + location.search` is a common
    // property) are scrubbed as the page URL's nested ones are.
    if url_scrub::looks_like_nested_url(&value) {
        return match url_scrub::scrub_nested_value(&value, 1)? {
            url_scrub::Nested::Unchanged => Some((key.to_string(), value)),
            url_scrub::Nested::Scrubbed(s) => Some((key.to_string(), s)),
        };
    }
    (!pii::is_pii_value(&value)).then(|| (key.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::event::{validate_event, LIMITS};
    use serde_json::json;

    fn principal(kind: KeyKind) -> Principal {
        Principal::new("p1", kind)
    }

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    fn ctx() -> RequestContext {
        RequestContext {
            received_ms: 1_795_000_000_000,
            user_agent: Some(CHROME.into()),
            edge_geo: Geo::new(Some("DE"), Some("Berlin"), Some("Berlin")),
            id_secret: None,
        }
    }

    #[test]
    fn browser_pageview_row() {
        let ev = validate_event(
            json!({"url":"https://shop.com/p?email=a@b.com&utm_source=nl&gclid=abc#frag","referrer":"https://www.google.com/search?q=x","mm_aid":"aid","title":"P","props":{"plan":"pro","password":"hunter2","note":"call +44 20 7946 0958"}}),
            false,
            &LIMITS,
        )
        .unwrap();
        let mut n = 0;
        let row = build_row(&principal(KeyKind::Publishable), ev, &ctx(), &|_| panic!("no lookup for browser keys"), &mut || {
            n += 1;
            format!("gen{n}")
        })
        .unwrap();
        assert_eq!(row.event_id, "gen1");
        assert_eq!(row.url_query, "utm_source=nl&gclid=abc");
        assert_eq!(row.url_fragment, "");
        assert_eq!((row.country.as_str(), row.city.as_str()), ("DE", "Berlin"));
        assert_eq!((row.browser.as_str(), row.os.as_str(), row.device_type.as_str()), ("Chrome", "Windows", "desktop"));
        assert_eq!((row.source.as_str(), row.utm_source.as_str(), row.click_id.as_str()), ("nl", "nl", "abc"));
        assert_eq!(row.referrer_host, "www.google.com");
        assert_eq!(row.prop_keys, vec!["plan".to_string()]);
        assert_eq!(row.timestamp, row.received_at);

        // A card number sent as a JSON number is still a card number.
        let ev = validate_event(json!({"url":"https://shop.com/","props":{"card":4242424242424242u64,"seats":3}}), false, &LIMITS).unwrap();
        let row = build_row(&principal(KeyKind::Publishable), ev, &ctx(), &|_| None, &mut || "id".into()).unwrap();
        assert_eq!((row.prop_keys, row.prop_values), (vec!["seats".to_string()], vec!["3".to_string()]));
        assert_eq!(row.retention_days, 90);
    }

    #[test]
    fn server_event_uses_forwarded_ip_and_ua_only() {
        let ev = validate_event(
            json!({"type":"event","name":"signup","id":"client-1","url":"https://a.com/","ip":"81.2.69.142","user_agent":"curl/8.0"}),
            true,
            &LIMITS,
        )
        .unwrap();
        let looked_up = std::cell::Cell::new(None);
        let row = build_row(
            &principal(KeyKind::Secret),
            ev,
            &ctx(),
            &|ip| {
                looked_up.set(Some(ip));
                Some(Geo::new(Some("GB"), Some("England"), Some("London")))
            },
            &mut || unreachable!("client id given"),
        )
        .unwrap();
        assert_eq!(looked_up.get(), Some("81.2.69.142".parse().unwrap()));
        assert_eq!(row.event_id, "client-1");
        assert_eq!(row.country, "GB"); // not the edge's DE: that is the customer's server
        assert_eq!((row.is_bot, row.device_type.as_str()), (1, "bot"));
        let json = serde_json::to_string(&row).unwrap();
        assert!(!json.contains("81.2.69.142"), "the IP must not reach the row");
    }

    #[test]
    fn only_coarse_user_agent_facts_reach_the_row() {
        // The promise: coarse UA only, no fingerprinting. Neither the UA string nor any of
        // its version numbers may be stored.
        let ev = validate_event(json!({"url":"https://a.com/"}), false, &LIMITS).unwrap();
        let row = build_row(&principal(KeyKind::Publishable), ev, &ctx(), &|_| None, &mut || "x".into()).unwrap();
        let stored = serde_json::to_string(&row).unwrap();
        for fragment in [CHROME, "131.0.0.0", "537.36", "Win64", "NT 10.0"] {
            assert!(!stored.contains(fragment), "{fragment} reached the row: {stored}");
        }
        assert_eq!((row.browser.as_str(), row.os.as_str()), ("Chrome", "Windows"));
    }

    /// The same over phones, tablets and other browsers (review finding: one desktop UA and a
    /// fixed list of its fragments): no version, build or device model of the UA reaches the row.
    #[test]
    fn no_version_build_or_model_of_any_user_agent_reaches_the_row() {
        let uas = [
            "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.104 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 13; Pixel 7 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.230 Mobile Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (iPad; CPU OS 16_7_10 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
        ];
        for ua in uas {
            let ev = validate_event(json!({"url":"https://a.com/"}), false, &LIMITS).unwrap();
            let ctx = RequestContext { user_agent: Some(ua.into()), ..ctx() };
            let row = build_row(&principal(KeyKind::Publishable), ev, &ctx, &|_| None, &mut || "x".into()).unwrap();
            let stored = serde_json::to_string(&row).unwrap();
            let tokens = ua.split(|c: char| " ;()/".contains(c)).filter(|t| t.len() >= 3 && t.chars().any(|c| c.is_ascii_digit()));
            for t in tokens.chain(["SM-S918B", "Pixel", "Ubuntu", "Intel"]) {
                assert!(!stored.contains(t), "{t} of {ua} reached the row: {stored}");
            }
            assert_eq!(row.is_bot, 0, "{ua}");
            assert!(!row.browser.is_empty() && !row.os.is_empty(), "{ua}: {stored}");
        }
    }

    /// Review finding: a browser key's request without a User-Agent header (a script: .NET's
    /// HttpClient and Rust's reqwest send none) was stored as a human's pageview, while an
    /// empty one counted as a bot.
    #[test]
    fn a_browser_key_request_without_a_user_agent_is_a_bot() {
        for ua in [None, Some(String::new())] {
            let ev = validate_event(json!({"url":"https://a.com/"}), false, &LIMITS).unwrap();
            let ctx = RequestContext { user_agent: ua.clone(), ..ctx() };
            let row = build_row(&principal(KeyKind::Publishable), ev, &ctx, &|_| None, &mut || "x".into()).unwrap();
            assert_eq!((row.is_bot, row.device_type.as_str()), (1, "bot"), "{ua:?}");
        }
    }

    #[test]
    fn server_event_without_forwarded_data_has_no_geo_or_ua() {
        let ev = validate_event(json!({"type":"event","name":"renewal","url":"https://a.com/"}), true, &LIMITS).unwrap();
        let row = build_row(&principal(KeyKind::Secret), ev, &ctx(), &|_| None, &mut || "x".into()).unwrap();
        assert_eq!((row.country.as_str(), row.browser.as_str(), row.is_bot), ("", "", 0));
    }

    #[test]
    fn bad_timestamp_is_refused() {
        let ev = validate_event(json!({"url":"https://a.com/","timestamp":"nope"}), false, &LIMITS).unwrap();
        let e = build_row(&principal(KeyKind::Publishable), ev, &ctx(), &|_| None, &mut || "x".into()).unwrap_err();
        assert_eq!(e.code, "invalid_timestamp");
    }

    fn row_of(v: serde_json::Value) -> Result<EventRow, ApiError> {
        let ev = validate_event(v, true, &LIMITS)?;
        build_row(&principal(KeyKind::Secret), ev, &ctx(), &|_| None, &mut || "generated-id".into())
    }

    /// Review findings: a nested URL whose dot segments hide personal data (the `url` crate
    /// resolves `..`, so its scrubbed and unscrubbed rebuilds agreed and the raw value was
    /// kept) or whose raw form does (`+1415...`, a space once a query is decoded), and addresses
    /// right after a colon, in every field a row stores.
    #[test]
    fn personal_data_hidden_by_dot_segments_or_a_colon_is_not_stored() {
        let ctx = RequestContext { id_secret: Some(IdSecret::new("a-test-secret-of-32-characters-or-more")), ..ctx() };
        let ev = validate_event(
            json!({"type":"event","name":"Blocked ip:81.2.69.14",
            "url":"https://a.com/lookup/ip:8.8.8.8?q=ip:81.2.69.14&next=/account/jane@example.com/../orders&call=/call/+14155550123&to=https://b.com/?to=+14155550123&x=/call/+14155550123?token=x",
            "title":"Login from:81.2.69.14","mm_aid":"ip:81.2.69.14",
            "props":{"next":"/account/jane@example.com/../orders","back":"https://b.com/u/81.2.69.142/../x","client":"addr:2a02:1234::1"}}),
            true,
            &LIMITS,
        )
        .unwrap();
        let row = build_row(&principal(KeyKind::Secret), ev, &ctx, &|_| None, &mut || "generated-id".into()).unwrap();
        assert_ne!(row.anonymous_id, "ip:81.2.69.14", "an id holding an address is stored as its keyed hash");
        let stored = serde_json::to_string(&row).unwrap();
        for leak in ["81.2.69.14", "8.8.8.8", "jane@example.com", "81.2.69.142", "2a02:1234", "4155550123"] {
            assert!(!stored.contains(leak), "{leak} stored: {stored}");
        }
        assert!(row.prop_keys.contains(&"next".to_string()), "what is left of a nested URL stays: {stored}");
    }

    /// Review finding: a user id sent as a property (`track("signup", {user_id: "4711"})`, a
    /// Segment `userId` in properties) was stored as sent, and kept in the aggregates past
    /// retention. A second review: stored as the user's keyed hash, it was the visitor id of
    /// that user's server events, in rows an erasure of that user never reaches and in
    /// aggregates that outlive it. Such a property goes, as other personal data does, and so
    /// does such a URL parameter.
    #[test]
    fn a_user_id_in_the_properties_or_the_url_is_never_stored() {
        let secret = IdSecret::new("a-test-secret-of-32-characters-or-more");
        let hashing = RequestContext { id_secret: Some(secret.clone()), ..ctx() };
        let names = [
            "user_id",
            "userId",
            "uid",
            "customer_id",
            "distinct_id",
            "account-id",
            "memberId",
            "External_ID",
            "client_id",
            "crm_user_id",
            "userIds",
            "ajs_uid",
            "ajs_aid",
        ];
        let mut props: serde_json::Map<String, serde_json::Value> =
            names.iter().map(|n| (n.to_string(), json!(format!("u-{n}-4711")))).collect();
        props.insert("plan".into(), json!("pro"));
        let url =
            format!("https://a.com/signup?{}&plan=pro", names.iter().map(|n| format!("{n}=u-{n}-4711")).collect::<Vec<_>>().join("&"));
        let ev = validate_event(json!({"type":"event","name":"signup","url": url,"props": props}), true, &LIMITS).unwrap();
        let row = build_row(&principal(KeyKind::Secret), ev, &hashing, &|_| None, &mut || "generated-id".into()).unwrap();
        let stored = serde_json::to_string(&row).unwrap();
        assert!(!stored.contains("4711"), "a user id stored as sent: {stored}");
        assert!(
            !stored.contains(&pseudonym::keyed_hash(&secret, "p1", "u-user_id-4711")),
            "a user id stored as the user's visitor id: {stored}"
        );
        assert_eq!((row.prop_keys, row.prop_values), (vec!["plan".to_string()], vec!["pro".to_string()]));
        assert_eq!(row.url_query, "plan=pro", "{stored}");
        for n in ["id", "order_id", "product_id", "users_online", "guide", "fluid", "liquid", "build_id", "variant_id"] {
            assert!(!pii::is_pii_name(n), "{n} names no person");
        }
    }

    /// The review's case: 30 properties of 490 control characters (serde writes each as
    /// `\u0001`, 6 bytes) and a 600-emoji URL made one publishable-key event a row of over
    /// 100 KB. Control characters are now removed, and sizes count bytes.
    #[test]
    fn control_characters_and_emoji_cannot_inflate_a_row() {
        let ctrl = "\u{1}".repeat(490);
        let props: serde_json::Map<String, serde_json::Value> = (0..30).map(|i| (format!("k{i}"), json!(format!("v{ctrl}")))).collect();
        let emoji_url = format!("https://a.com/{}", "\u{1F600}".repeat(600));
        let e = validate_event(json!({"url": emoji_url, "props": props.clone()}), false, &LIMITS).unwrap_err();
        assert_eq!((e.status, e.code), (400, "field_too_long"));
        assert!(e.message.contains("`url`"), "{}", e.message);
        // 400 emoji fit the URL's 2000 bytes; the properties lose their control characters.
        let url = format!("https://a.com/{}", "\u{1F600}".repeat(400));
        let row = row_of(json!({"url": url, "props": props, "title": format!("a\tb\u{0}c{ctrl}")})).unwrap();
        assert!(row.prop_values.iter().all(|v| v == "v"), "{:?}", row.prop_values);
        assert_eq!(row.title, "a bc");
        let stored = serde_json::to_string(&row).unwrap();
        assert!(stored.len() < 16 * 1024, "{} bytes", stored.len());
        assert!(!stored.contains("\\u0001"));
        // An id with a control character is refused, not silently changed.
        assert_eq!(row_of(json!({"url":"https://a.com/","id":"a\u{1}b"})).unwrap_err().code, "invalid_id");
        assert_eq!(row_of(json!({"url":"https://a.com/","mm_aid":"a\nb"})).unwrap_err().code, "invalid_id");
    }

    /// Every field at its byte bound, in the characters that cost the most once stored (quotes
    /// and backslashes escape to two bytes; non-ASCII URL text is percent-encoded to three per
    /// byte): the row stays under MAX_ROW_BYTES, the size bound holds, and a request of 100
    /// such events makes queue messages each under the queue's 128 KB.
    #[test]
    fn worst_case_rows_fit_a_queue_message() {
        let q = |bytes: usize| "\"".repeat(bytes / 2);
        let props: serde_json::Map<String, serde_json::Value> = (0..LIMITS.max_props)
            .map(|i| (format!("{i:02}{}", q(LIMITS.max_prop_key_bytes - 2)), json!(q(LIMITS.max_prop_value_bytes))))
            .collect();
        // 3-byte characters (640 of them, 1920 bytes), each stored as %XX%XX%XX (9 bytes).
        let heavy = "\u{20AC}".repeat((LIMITS.max_url_bytes - 80) / 3);
        let url = format!("https://a.com/{heavy}?utm_source={}&utm_campaign={}#x", "\u{20AC}".repeat(3), "\u{20AC}".repeat(3));
        let event = json!({"type":"event","name": q(LIMITS.max_name_bytes), "url": url, "referrer": format!("https://r.com/{heavy}"),
            "title": q(LIMITS.max_title_bytes), "mm_aid": "a".repeat(LIMITS.max_id_bytes), "id": "i".repeat(LIMITS.max_id_bytes), "props": props});
        let row = row_of(event).unwrap();
        let actual = serde_json::to_string(&row).unwrap().len();
        let (bound, _) = row.serialized_bound();
        assert!(actual <= bound, "the bound {bound} is below the real size {actual}");
        println!("worst-case row: {actual} bytes serialized, bound {bound}");
        assert!(bound <= MAX_ROW_BYTES, "a worst-case event ({bound} bytes) is refused: the field limits and MAX_ROW_BYTES disagree");
        let rows = vec![row; 100];
        let messages = crate::ingest::row::encode_messages(&rows, crate::ingest::row::MAX_MESSAGE_BYTES);
        assert!(messages.len() > 1);
        assert!(
            messages.iter().all(|m| m.len() <= crate::ingest::row::MAX_MESSAGE_BYTES && m.len() < 128 * 1000),
            "a message over the queue's limit"
        );
    }

    /// The backstop: a row over MAX_ROW_BYTES (not reachable through today's field limits) is
    /// refused alone with a 413 naming its largest part.
    #[test]
    fn an_oversized_row_is_refused_naming_the_field() {
        let mut limits = LIMITS;
        limits.max_prop_value_bytes = 10_000;
        let props: serde_json::Map<String, serde_json::Value> = (0..8).map(|i| (format!("k{i}"), json!("x".repeat(9_000)))).collect();
        let ev = validate_event(json!({"url":"https://a.com/","props":props}), true, &limits).unwrap();
        let e = build_row(&principal(KeyKind::Secret), ev, &ctx(), &|_| None, &mut || "x".into()).unwrap_err();
        assert_eq!((e.status, e.code), (413, "event_too_large"));
        assert!(e.message.contains("`props`"), "{}", e.message);
    }
}

#[cfg(test)]
/// Personal data in every column a row is built from, however it is written.
mod pii_in_every_column {
    use super::*;
    use crate::ingest::event::{validate_event, LIMITS};
    use serde_json::json;

    fn row_with(v: serde_json::Value, limits: &crate::ingest::event::Limits) -> EventRow {
        let ctx = RequestContext {
            received_ms: 1_795_000_000_000,
            user_agent: None,
            edge_geo: Geo::default(),
            id_secret: Some(IdSecret::new("a-test-secret-of-32-characters-or-more")),
        };
        let ev = validate_event(v, true, limits).unwrap();
        build_row(&Principal::new("p1", KeyKind::Secret), ev, &ctx, &|_| None, &mut || "gen".into()).unwrap()
    }
    fn row(v: serde_json::Value) -> EventRow {
        row_with(v, &LIMITS)
    }
    fn leaks(row: &EventRow, needles: &[&str]) -> Vec<String> {
        let stored = serde_json::to_string(row).unwrap();
        needles.iter().filter(|n| stored.contains(*n)).map(|n| n.to_string()).collect()
    }

    /// The UTM, `ref` and click-id columns keep only what the stored query would: a nested URL
    /// scrubbed, a phone number written with its `+` gone.
    #[test]
    fn campaign_columns_are_scrubbed_like_the_query() {
        let r = row(
            json!({"url": "https://a.com/?utm_content=https%3A%2F%2Fshop.com%2Fwelcome%3Fpassword%3Dhunter2%26first_name%3DJane&ref=https%3A%2F%2Fp.com%2F%3Fsession%3Dabc123&utm_term=+14155550123"}),
        );
        let r2 = row(json!({"url": "https://a.com/?gclid=+14155550123"}));
        // Segment: context.campaign becomes utm_* on the page URL and lands in the same columns.
        let body = json!({"type":"page","anonymousId":"a-1","context":{"page":{"url":"https://shop.com/"},
            "campaign":{"source":"mail","content":"https://shop.com/reset?token=Xk29fLq0&password=hunter2"}}});
        let inc = crate::compat::segment::parse(crate::compat::segment::Call::Page, body.to_string().as_bytes(), None, 1_795_000_000_000)
            .unwrap();
        let crate::compat::Message::Event(ev) = &inc.messages[0] else { panic!() };
        let r3 = row_with(ev.clone(), &crate::compat::LIMITS);
        let found: Vec<_> =
            [leaks(&r, &["hunter2", "Jane", "abc123", "4155550123"]), leaks(&r2, &["4155550123"]), leaks(&r3, &["hunter2", "Xk29fLq0"])]
                .concat();
        assert!(found.is_empty(), "stored: {found:?}");
    }

    /// Card and phone numbers written with dots, or with Unicode spaces and dashes.
    #[test]
    fn cards_and_phones_with_dots_or_unicode_separators() {
        let mut stored = Vec::new();
        for (card, phone) in [
            ("4111.1111.1111.1111", "+1 415 555 0123"),
            ("4111\u{a0}1111\u{a0}1111\u{a0}1111", "01\u{a0}23\u{a0}45\u{a0}67\u{a0}89"),
            ("4111\u{2011}1111\u{2011}1111\u{2011}1111", "+1\u{a0}415\u{a0}555\u{a0}0123"),
        ] {
            let enc: String = url::form_urlencoded::byte_serialize(card.as_bytes()).collect();
            let r = row(json!({"type":"event","name":format!("Paid {card}"),"url":format!("https://a.com/pay/{enc}?c={enc}"),
                "title":format!("Receipt {card} – call {phone}"),"mm_aid":card,"props":{"note":card,"tel":"x","contact":phone}}));
            stored.extend(leaks(&r, &["4111", "4155550123", "415\u{a0}555", "45\u{a0}67"]));
        }
        assert!(stored.is_empty(), "stored: {stored:?}");
    }

    /// An address after `_` (a server-built id such as `ip_81.2.69.14`).
    #[test]
    fn an_ip_after_an_underscore() {
        let r = row(json!({"url":"https://a.com/?peer=client_81.2.69.14","title":"Blocked ip_81.2.69.14 / ip_2a02:1234:5678::1",
            "mm_aid":"ip_81.2.69.14","props":{"ip_81.2.69.14":"1","peer":"client_81.2.69.14"}}));
        let found = leaks(&r, &["81.2.69.14", "2a02:1234"]);
        assert!(found.is_empty(), "stored: {found:?}");
    }

    /// A secret named by the text around it, whatever its shape (Sentry Relay's `@password`
    /// rule): `Bearer <token>`, and `<name>=<value>` or `"<name>": "<value>"` with a credential's
    /// name, in titles, event names, property values (a `location.search`, a JSON body) and a
    /// parameter's decoded value.
    #[test]
    fn secrets_named_inside_a_value_are_not_stored() {
        let r = row(json!({"type":"event","name":"api_error Bearer mF_9.B5f-4.1JqM",
            "url":"https://a.com/login?next=account%2Freset%3Ftoken%3DXk29fLq0Zp",
            "title":"Authorization: Bearer mF_9.B5f-4.1JqM",
            "props":{"search":"?reset_token=Xk29fLq0Zp&plan=pro","hash":"#access_token=Xk29fLq0Zp&state=s1",
                     "body":"{\"password\":\"hunter2\"}","log":"login failed for api_key: 7Yq2mZp4"}}));
        assert!(leaks(&r, &["Xk29fLq0Zp", "mF_9.B5f-4.1JqM", "hunter2", "7Yq2mZp4"]).is_empty(), "{r:?}");
        assert_eq!((r.event_name.as_str(), r.title.as_str()), ("api_error Bearer [secret]", "Authorization: Bearer [secret]"));
        // Words after such names in prose stay.
        for title in
            ["Bearer of bad news", "Forgot password? Reset it here", "OAuth: Login with Google", "Error code: 500", "Token: what it is"]
        {
            assert_eq!(row(json!({"url":"https://a.com/","title":title})).title, title);
        }
    }

    /// A device's hardware (MAC) address names one device for its whole life (Sentry Relay's
    /// `@mac`): colon- or dash-separated, in titles, names and properties.
    #[test]
    fn hardware_addresses_are_not_stored() {
        let r = row(json!({"type":"event","name":"paired 00:1A:2B:3C:4D:5E","url":"https://a.com/?dev=00-1a-2b-3c-4d-5e",
            "title":"Device 00:1A:2B:3C:4D:5E offline","props":{"device":"00-1a-2b-3c-4d-5e"}}));
        assert!(leaks(&r, &["4D:5E", "4d-5e"]).is_empty(), "{r:?}");
        assert_eq!(r.title, "Device [mac] offline");
        for kept in ["12:34:56", "aa:bb:cc:dd:ee", "v1:2:3:4:5:6", "00:1A-2B:3C:4D:5E"] {
            assert_eq!(row(json!({"url":"https://a.com/","title":kept})).title, kept);
        }
    }

    /// Mailchimp's `mc_eid` is the subscriber's own id, the same on every e-mail to them, so it
    /// maps back to an address: it is neither a click id nor kept in the query.
    #[test]
    fn a_mailing_list_subscriber_id_is_not_stored() {
        let r = row(json!({"url":"https://shop.example/?utm_source=mc&mc_cid=abc123&mc_eid=4f1e2d3c4b"}));
        assert!(leaks(&r, &["4f1e2d3c4b"]).is_empty(), "{r:?}");
        assert_eq!(r.utm_source, "mc");
    }

    /// A page served at an IP address (a staging server, a device on a LAN) keeps its path, but
    /// its host is not stored: an address is never stored.
    #[test]
    fn a_page_at_an_ip_address_keeps_no_host() {
        for url in ["http://81.2.69.14/pricing", "http://[2a02:1234:5678::1]:8080/pricing", "https://81-2-69-14.nip.io/pricing"] {
            let r = row(json!({ "url": url }));
            assert!(leaks(&r, &["81.2.69.14", "2a02", "81-2-69-14"]).is_empty(), "{url}: {r:?}");
            assert_eq!((r.url_host.as_str(), r.url_path.as_str()), ("", "/pricing"), "{url}");
        }
    }

    /// A referrer whose host is an IP address is not kept: an address is never stored, and
    /// names no site a visitor came from.
    #[test]
    fn a_referrer_at_an_ip_address_is_dropped() {
        for referrer in [
            "http://81.2.69.14/x?a=1",
            "http://[2a02:1234:5678::1]:8080/",
            "https://192.168.001.010/",
            "http://81.2.69.14.nip.io/x",
            "http://81-2-69-14.nip.io/",
            "https://app-10-0-0-1.sslip.io/",
            "https://2a01-4f8-c17-b8f--2.sslip.io/",
            "http://ip-81-2-69-14.ec2.internal/",
            "http://de.81.2.69.14.nip.io/",
            "http://2a01--1.sslip.io/",
        ] {
            let r = row(json!({"url":"https://a.com/","referrer":referrer}));
            assert_eq!(
                (r.referrer.as_str(), r.referrer_host.as_str(), r.source.as_str(), r.medium.as_str()),
                ("", "", "", "direct"),
                "{referrer}"
            );
            assert!(leaks(&r, &["81.2.69.14", "2a02", "192.168"]).is_empty(), "{referrer}: {r:?}");
        }
        for host in [
            "news.example",
            "web-1-2-3.example",
            "v2-10-0.example",
            "cafe-babe.example",
            "face--bad.example",
            "xn--p1ai.example",
            "conf-2026-11-22-10-30.example",
            "2024-11-22.example",
        ] {
            let r = row(json!({"url":"https://a.com/","referrer":format!("https://{host}/x")}));
            assert_eq!((r.referrer_host.as_str(), r.source.as_str()), (host, host));
        }
    }

    /// An e-mail address with a digit right after its top-level label.
    #[test]
    fn an_email_followed_by_a_digit() {
        let r = row(json!({"url":"https://a.com/u/jane.doe@example.com1?e=jane.doe@example.com1","title":"Hi jane.doe@example.com1",
            "mm_aid":"jane.doe@example.com1","props":{"contact":"jane.doe@example.com1"}}));
        let found = leaks(&r, &["jane.doe@example.com"]);
        assert!(found.is_empty(), "stored: {found:?}");
    }
}
