//! Each class of personal data and secret the issue names, several instances each, through
//! the real path to a row (`event::validate_event` then `pipeline::build_row`). The pipeline
//! is the only way to a row, and the queue message, dead letter and every log line that
//! carries event data are made from rows, so asserting on the row and the queue message
//! (`row::encode_messages`) covers everything that is stored.

use millimetric_core::enrich::geo::Geo;
use millimetric_core::ingest::event::{validate_event, LIMITS};
use millimetric_core::ingest::pipeline::{build_row, RequestContext};
use millimetric_core::ingest::row::{encode_messages, EventRow, MAX_MESSAGE_BYTES};
use millimetric_core::keys::{KeyKind, Principal};
use millimetric_core::privacy::pseudonym::{IdSecret, PREFIX};
use serde_json::{json, Value};

/// The identifier-hash secret these rows are built with (a test value, as ID_HASH_SECRET).
const ID_SECRET: &str = "pii-scrubbing-test-id-hash-secret-0123456789";

fn row_with(v: Value, hash_routing: bool) -> EventRow {
    let principal = Principal { hash_routing, ..Principal::new("p", KeyKind::Secret) };
    let ctx = RequestContext {
        received_ms: 1_795_000_000_000,
        user_agent: None,
        edge_geo: Geo::default(),
        id_secret: Some(IdSecret::new(ID_SECRET)),
    };
    let ev = validate_event(v.clone(), true, &LIMITS).unwrap_or_else(|e| panic!("{v}: {e}"));
    build_row(&principal, ev, &ctx, &|_| None, &mut || "id".into()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn row(v: Value) -> EventRow {
    row_with(v, false)
}

fn page(url: &str) -> EventRow {
    row(json!({ "url": url }))
}

fn query(url: &str) -> String {
    page(url).url_query
}

fn path(url: &str) -> String {
    page(url).url_path
}

fn title(t: &str) -> String {
    row(json!({"url": "https://shop.example/", "title": t})).title
}

fn name(n: &str) -> String {
    row(json!({"type": "event", "name": n, "url": "https://shop.example/"})).event_name
}

fn props(p: Value) -> Vec<(String, String)> {
    let r = row(json!({"url": "https://shop.example/", "props": p}));
    r.prop_keys.into_iter().zip(r.prop_values).collect()
}

/// Everything stored for one row: the row as ClickHouse gets it and the queue message.
fn stored(r: &EventRow) -> String {
    let messages = encode_messages(std::slice::from_ref(r), MAX_MESSAGE_BYTES);
    format!("{}\n{}", serde_json::to_string(r).unwrap(), messages.join("\n"))
}

#[test]
fn values_percent_encoded_more_than_once() {
    // decoded until stable: twice, three times, in names and values, in query, path, title, props
    assert_eq!(query("https://shop.example/p?q=jane%2540example.com&x=1"), "x=1");
    assert_eq!(query("https://shop.example/p?q=jane%252540example.com&x=1"), "x=1");
    assert_eq!(query("https://shop.example/p?e%252Dmail=abc&x=1"), "x=1");
    assert_eq!(query("https://shop.example/p?m=%252B44%252020%25207946%25200958&x=1"), "x=1");
    assert_eq!(query("https://shop.example/p?k=AKIAIOSFODNN7EXAMPL%2545&x=1"), "x=1");
    assert_eq!(path("https://shop.example/u/jane%2540example.com/orders"), "/u/:redacted/orders");
    let t = title("Orders of jane%2540example.com");
    assert!(!t.contains("jane") && t.contains("[email]"), "{t}");
    assert_eq!(props(json!({"contact": "jane%252540example.com", "plan": "pro"})), vec![("plan".into(), "pro".into())]);
    assert_eq!(row(json!({"url": "https://shop.example/?utm_source=jane%2540example.com"})).utm_source, "");
    // bounded: a value still changing after the last round is not judged clean, it is removed
    let mut deep = "jane@example.com".to_string();
    for _ in 0..12 {
        deep = deep.replace('%', "%25").replace('@', "%40");
    }
    assert_eq!(query(&format!("https://shop.example/p?q={deep}&x=1")), "x=1");
    // an ordinary encoded value is kept as sent
    assert_eq!(query("https://shop.example/p?q=red%2520shoes&x=1"), "q=red%2520shoes&x=1");
}

#[test]
fn emails_inside_free_text_with_punctuation_or_brackets() {
    for (t, want) in [
        ("Contact <jane.doe@example.com> today", "Contact <[email]> today"),
        ("Support (help@shop.example)", "Support ([email])"),
        ("[bob@mail.example.org] profile", "[[email]] profile"),
        ("\"ann@example.com\", \"lee@example.com\"", "\"[email]\", \"[email]\""),
        ("mailto:jane@example.com", "mailto:[email]"),
        ("Write to jane@example.com.", "Write to [email]."),
        ("«bob_smith+tag@mail.example.co.uk»", "«[email]»"),
        ("Hi jane@example.com!", "Hi [email]!"),
        ("{ops@example.io}", "{[email]}"),
    ] {
        assert_eq!(title(t), want, "{t}");
    }
    assert_eq!(query("https://shop.example/s?q=reach+me+(jane%40example.com).&x=1"), "x=1");
    assert_eq!(query("https://shop.example/s?q=%3Cjane%40example.com%3E&x=1"), "x=1");
    // not addresses
    for t in ["Follow @millimetric", "npm i left-pad@1.3.0", "a@b", "email us", "Price @ 20% off"] {
        assert_eq!(title(t), t);
    }
}

#[test]
fn phone_numbers_in_free_text_international_forms_included() {
    for t in [
        "Call +44 20 7946 0958 now",
        "Call +1 (415) 555-0123 now",
        "Call +49 30 1234567 now",
        "Call +33 1 23 45 67 89 now",
        "Call 0044 20 7946 0958 now",
        "Call +81-3-1234-5678 now",
        "Call (555) 123-4567 now",
        "Call 555.123.4567 now",
        "Call +91 98765 43210 now",
        "Call tel:+14155550123 now",
        "Call 2026-11-22 +44 20 7946 0958 now",
    ] {
        let got = title(t);
        assert!(got.contains("[phone]") && !got.contains("7946") && !got.contains("555") && !got.contains("1234567"), "{t} -> {got}");
        assert!(got.starts_with("Call ") && got.ends_with(" now"), "{t} -> {got}");
    }
    assert_eq!(query("https://shop.example/c?n=%2B1%20415%20555%200123&x=1"), "x=1");
    assert_eq!(query("https://shop.example/c?n=tel%3A%2B33123456789&x=1"), "x=1");
    // not phone numbers
    for t in [
        "Released 2026-11-22",
        "Valid 22.11.2026",
        "Sizes 10 12 14 16",
        "SKU 12345-678",
        "Order 1700000000",
        "ISBN 978-3-16-148410-0",
        "v10.15.7",
    ] {
        assert_eq!(title(t), t);
    }
}

#[test]
fn ip_addresses_in_any_value_whatever_the_parameter_is_called() {
    for q in [
        "foo=81.2.69.142",
        "x=2001:db8::1",
        "h=%5B2001%3Adb8%3A%3Aff00%3A42%3A8329%5D%3A443",
        "upstream=10.0.0.1%3A8080",
        "a=%3A%3Affff%3A192.0.2.1",
        "zone=fe80%3A%3A1%25eth0",
        "list=1.1.1.1%2C8.8.8.8",
    ] {
        assert_eq!(query(&format!("https://shop.example/p?{q}&x=1")), "x=1", "{q}");
    }
    assert_eq!(title("Server 192.168.1.20 is down"), "Server [ip] is down");
    assert_eq!(title("from 2001:db8:85a3::8a2e:370:7334 today"), "from [ip] today");
    assert_eq!(props(json!({"client": "203.0.113.9", "via": "::1", "plan": "pro"})), vec![("plan".into(), "pro".into())]);
    // not addresses
    for t in ["Version 1.2.3", "Build v1.2.3.4", "Opens 10:30:00", "std::vector docs", "Score 999.1.1.1"] {
        assert_eq!(title(t), t);
    }
}

const GITHUB: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
const GITHUB_FINE: &str = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH";
const STRIPE: &str = "sk_live_51H8a2bC3dE4fG5hI6jK7lM8nO";
const SLACK: &str = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp";
const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
const GOOGLE: &str = "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI";
const GITLAB: &str = "glpat-x2Yz3AbCdEf4GhIjKl5M";
const OPENAI: &str = "sk-proj-abcDEF1234567890ghiJKL";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7x\n-----END RSA PRIVATE KEY-----";

#[test]
fn secrets_with_well_known_shapes() {
    let secrets = [
        GITHUB,
        GITHUB_FINE,
        STRIPE,
        SLACK,
        AWS,
        GOOGLE,
        GITLAB,
        OPENAI,
        JWT,
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----",
    ];
    for s in secrets {
        let enc: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        assert_eq!(query(&format!("https://shop.example/p?v={enc}&x=1")), "x=1", "{s}");
        let t = title(&format!("key {s} here"));
        assert!(t.contains("[secret]") && !t.contains(&s[5..]), "{s} -> {t}");
        assert_eq!(props(json!({"v": s, "plan": "pro"})), vec![("plan".into(), "pro".into())], "{s}");
    }
    let t = title(&format!("leaked {PEM}"));
    assert_eq!(t, "leaked [secret]");
    assert!(!name(&format!("used {GITHUB}")).contains("16C7e42F"));
    // shapes that merely start alike are not secrets
    for t in ["ghp_ docs", "the sk_live_ prefix", "AKIA keys", "xoxb- tokens", "eyJ is base64 for {\""] {
        assert_eq!(title(t), t);
    }
}

#[test]
fn path_segments_and_matrix_parameters_with_tokens_sessions_or_emails() {
    for (url, want) in [
        ("https://shop.example/cart;jsessionid=0A1B2C3D4E5F6A7B8C9D/checkout", "/cart/checkout"),
        ("https://shop.example/shop;JSESSIONID=abc123?x=1", "/shop"),
        ("https://shop.example/cars;color=red;sid=abc", "/cars;color=red"),
        ("https://shop.example/a;email=jane%40example.com;b=1/x", "/a;b=1/x"),
        ("https://shop.example/users/jane@example.com/settings", "/users/:redacted/settings"),
        (&format!("https://shop.example/reset/{JWT}"), "/reset/:redacted"),
        (&format!("https://shop.example/api/{GITHUB}/repos"), "/api/:redacted/repos"),
        ("https://shop.example/password-reset/8f14e45fceea167a5a36dedd4bea2543", "/password-reset/:redacted"),
        ("https://shop.example/session/Xk29fLq0Zp", "/session/:redacted"),
        ("https://shop.example/token/550e8400-e29b-41d4-a716-446655440000", "/token/:redacted"),
        ("https://shop.example/peer/81.2.69.142/status", "/peer/:redacted/status"),
        ("https://shop.example/call/+14155550123", "/call/:redacted"),
        // digits alone after a segment that names what they are
        ("https://shop.example/phone/4155550123", "/phone/:redacted"),
        ("https://shop.example/by-phone/415-555-0123/edit", "/by-phone/:redacted/edit"),
        ("https://shop.example/password-reset/83920174", "/password-reset/:redacted"),
        ("https://app.example/otp/492817", "/otp/:redacted"),
    ] {
        assert_eq!(path(url), want, "{url}");
    }
    // ids, dates, versions, slugs and commit hashes stay
    for url in [
        "https://shop.example/products/550e8400-e29b-41d4-a716-446655440000",
        "https://shop.example/blog/2026/11/22/release-notes",
        "https://docs.example/v1.2.3/install",
        "https://git.example/org/repo/commit/9fceb02d0ae598e95dc970b74767f19372d61af8",
        "https://shop.example/cars;color=red",
        "https://shop.example/session-replay/2024-release-notes",
        "https://shop.example/orders/12345678",
        "https://shop.example/phone/cases/2026",
    ] {
        assert_eq!(path(url), url::Url::parse(url).unwrap().path(), "{url}");
    }
    let r = row(json!({"url": "https://shop.example/", "referrer": "https://other.example/u/jane@example.com;jsessionid=X1/p"}));
    assert_eq!(r.referrer, "https://other.example/u/:redacted/p");
}

#[test]
fn urls_nested_inside_parameters_are_scrubbed_recursively() {
    assert_eq!(
        query("https://shop.example/login?next=https%3A%2F%2Fapp.example%2Fwelcome%3Femail%3Djane%2540example.com%26step%3D2&x=1"),
        "next=https%3A%2F%2Fapp.example%2Fwelcome%3Fstep%3D2&x=1"
    );
    assert_eq!(query("https://shop.example/login?return_to=%2Faccount%3Ftoken%3Dabc%26tab%3D2"), "return_to=%2Faccount%3Ftab%3D2");
    assert_eq!(
        query("https://shop.example/login?redirect=https://a.example/u/jane@example.com"),
        "redirect=https%3A%2F%2Fa.example%2Fu%2F%3Aredacted"
    );
    assert_eq!(query("https://shop.example/go?url=%2F%2Fcdn.example%2Fx%3Fsid%3D1%26v%3D2"), "url=%2F%2Fcdn.example%2Fx%3Fv%3D2");
    // two levels deep
    let inner: String = url::form_urlencoded::byte_serialize(b"https://b.example/?email=jane@example.com&k=1").collect();
    let outer: String =
        url::form_urlencoded::byte_serialize(format!("https://a.example/sso?return_to={inner}&lang=en").as_bytes()).collect();
    let q = query(&format!("https://shop.example/login?next={outer}"));
    assert!(!q.contains("jane") && !q.contains("email") && q.contains("lang%3Den") && q.contains("k%253D1"), "{q}");
    assert_eq!(
        millimetric_core::enrich::pii::decode_until_stable(&q, true),
        "next=https://a.example/sso?return_to=https://b.example/?k=1&lang=en"
    );
    // deeper than the bound (MAX_NESTED_DEPTH levels are scrubbed): the parameter that holds
    // the URL nested too deep goes, unjudged
    let mut deep = "https://z.example/?k=1".to_string();
    for _ in 0..6 {
        let enc: String = url::form_urlencoded::byte_serialize(deep.as_bytes()).collect();
        deep = format!("https://n.example/?next={enc}");
    }
    let enc: String = url::form_urlencoded::byte_serialize(deep.as_bytes()).collect();
    let q = millimetric_core::enrich::pii::decode_until_stable(&query(&format!("https://shop.example/?next={enc}&x=1")), true);
    assert_eq!(q.matches("n.example").count(), millimetric_core::enrich::url_scrub::MAX_NESTED_DEPTH, "{q}");
    assert!(!q.contains("z.example") && q.ends_with("&x=1"), "{q}");
    let enc: String = url::form_urlencoded::byte_serialize(b"https://n.example/?next=https%3A%2F%2Fn.example%2F%3Fnext%3Dhttps%253A%252F%252Fn.example%252F%253Fnext%253D%25252Fu%25252Fjane%252540example.com").collect();
    let q = query(&format!("https://shop.example/?next={enc}&x=1"));
    assert!(!millimetric_core::enrich::pii::decode_until_stable(&q, true).contains("jane"), "{q}");
    // user info and IP hosts inside a nested URL
    assert_eq!(query("https://shop.example/?url=https%3A%2F%2Fjane%3Ahunter2%40a.example%2F"), "url=https%3A%2F%2Fa.example%2F");
    assert_eq!(query("https://shop.example/?url=http%3A%2F%2F10.0.0.7%2Fadmin&x=1"), "x=1");
    // a clean nested URL is kept as sent
    assert_eq!(query("https://shop.example/?next=%2Fpricing%3Fplan%3Dpro"), "next=%2Fpricing%3Fplan%3Dpro");
    // in properties too
    assert_eq!(
        props(json!({"link": "https://a.example/p?email=jane@example.com&ref=nl"})),
        vec![("link".into(), "https://a.example/p?ref=nl".into())]
    );
}

#[test]
fn fragments_kept_for_hash_routing_are_scrubbed_like_paths_and_queries() {
    let frag = |u: &str| row_with(json!({ "url": u }), true).url_fragment;
    for (url, want) in [
        ("https://app.example/#/users/jane@example.com/edit", "/users/:redacted/edit"),
        (&format!("https://app.example/#/reset/{JWT}"), "/reset/:redacted"),
        ("https://app.example/#/search?q=jane%40example.com&page=2", "/search?page=2"),
        ("https://app.example/#/cb?next=https%3A%2F%2Fx.example%2F%3Ftoken%3Dabc%26a%3D1", "/cb?next=https%3A%2F%2Fx.example%2F%3Fa%3D1"),
        ("https://app.example/#access_token=ya29.abc&state=s1", "state=s1"),
        ("https://app.example/#/s;jsessionid=ABC123/x", "/s/x"),
        ("https://app.example/#/peer/10.0.0.1", "/peer/:redacted"),
        ("https://app.example/#jane@example.com", ":redacted"),
        ("https://app.example/#/pricing", "/pricing"),
        ("https://app.example/#section-2", "section-2"),
    ] {
        assert_eq!(frag(url), want, "{url}");
    }
    assert_eq!(page("https://app.example/#/users/jane@example.com").url_fragment, "");
}

#[test]
fn titles_custom_event_names_and_property_keys_are_checked_like_values() {
    assert_eq!(title("Invoice for jane@example.com – Shop"), "Invoice for [email] – Shop");
    assert_eq!(title("Pricing – Shop"), "Pricing – Shop");
    assert_eq!(name("signup jane@example.com"), "signup [email]");
    assert_eq!(name("callback +44 20 7946 0958"), "callback [phone]");
    assert_eq!(name("login from 81.2.69.142"), "login from [ip]");
    assert_eq!(name(&format!("token {AWS}")), "token [secret]");
    assert_eq!(name("signup"), "signup");
    let kept = props(json!({
        "jane@example.com": true, GITHUB: 1, "81.2.69.142": "x", "+44 20 7946 0958": "x", "user_email": "x", "plan": "pro",
    }));
    assert_eq!(kept, vec![("plan".into(), "pro".into())]);
}

/// One event carrying every class at once: nothing of it reaches the row or the queue message.
#[test]
fn a_pii_laden_event_leaves_no_trace_in_the_row_or_queue_message() {
    let next: String = url::form_urlencoded::byte_serialize(b"https://app.example/welcome?email=zed@example.com&ip=81.2.69.142").collect();
    let event = json!({
        "type": "event",
        "name": "signup ann@example.com",
        "url": format!("https://shop.example/u/bob@example.com;jsessionid=SESSION42ABC/p?q=cy%2540example.com&n=%2B44%2020%207946%200958&h=10.1.2.3&k={AWS}&utm_source=dee%2540example.com&utm_campaign=198.51.100.7&next={next}#/r/{JWT}?t={GITHUB}"),
        "referrer": format!("https://ref.example/x;sid=REFSESSION9/y?u=eve@example.com&s={STRIPE}"),
        "title": format!("Hello fay@example.com, call +1 (415) 555-0199 from 2001:db8::42 with {SLACK}"),
        "props": {"gus@example.com": "x", "note": "hal@example.com", "ip": "203.0.113.77", "key": GOOGLE, "pem": PEM, "link": "https://a.example/?jwt=x&e=ivy@example.com"},
        "mm_aid": "visitor-1",
    });
    for hash_routing in [false, true] {
        let r = row_with(event.clone(), hash_routing);
        let s = stored(&r);
        for needle in [
            "ann@",
            "bob@",
            "cy%40",
            "cy@",
            "zed",
            "dee",
            "eve@",
            "fay@",
            "gus@",
            "hal@",
            "ivy@",
            "example.com",
            "SESSION42ABC",
            "REFSESSION9",
            "7946",
            "0958",
            "555-0199",
            "10.1.2.3",
            "198.51.100.7",
            "81.2.69.142",
            "2001:db8",
            "203.0.113.77",
            AWS,
            GITHUB,
            STRIPE,
            SLACK,
            GOOGLE,
            "eyJ",
            "PRIVATE KEY",
            "MIIEp",
        ] {
            assert!(!s.contains(needle), "`{needle}` reached what is stored (hash routing {hash_routing}):\n{s}");
        }
        assert_eq!(r.url_host, "shop.example");
        assert!(r.title.starts_with("Hello [email]"), "{}", r.title);
    }
}

/// From the final review: relative URLs in properties and `#/key=value&...` routes leaked.
#[test]
fn relative_urls_in_props_and_parameter_routes_are_scrubbed() {
    use millimetric_core::enrich::geo::Geo;
    use millimetric_core::ingest::event::{validate_event, LIMITS};
    use millimetric_core::ingest::pipeline::{build_row, RequestContext};
    use millimetric_core::keys::{KeyKind, Principal};
    let mut principal = Principal::new("p", KeyKind::Secret);
    principal.hash_routing = true;
    let ctx = RequestContext {
        received_ms: 1_795_000_000_000,
        user_agent: None,
        edge_geo: Geo::default(),
        id_secret: Some(IdSecret::new(ID_SECRET)),
    };
    for (url, props) in [
        (
            "https://a.example/#/access_token=ya29secret&token_type=Bearer",
            serde_json::json!({"next": "/account?password=hunter2&email_token=abc"}),
        ),
        ("https://a.example/#/cb/session_id=s3ss10n&x=1", serde_json::json!({"back": "//b.example/?session=abc&auth=zz"})),
    ] {
        let ev = validate_event(serde_json::json!({"type":"event","name":"n","url":url,"props":props}), true, &LIMITS).unwrap();
        let row = build_row(&principal, ev, &ctx, &|_| None, &mut || "id".into()).unwrap();
        let stored = serde_json::to_string(&row).unwrap();
        for secret in ["ya29secret", "hunter2", "email_token=abc", "s3ss10n", "session=abc", "auth=zz"] {
            assert!(!stored.contains(secret), "{secret} stored: {stored}");
        }
    }
}

// --- The classes Sentry Relay treats as personal (issue 21): IBANs, credentials in URLs,
// account names in home-directory paths, and sensitive names. Each value goes into every place
// an event carries text; its telling part must reach no place of the row.

/// `value` in each place an event carries text, and what was stored there: a query value, a
/// path segment, a hash-routing fragment, the title, a custom event name, a property value and
/// key, and a UTM value (URL places get the value percent-encoded, as a browser sends it).
fn in_every_place(value: &str) -> Vec<(&'static str, String)> {
    let enc: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let segment = enc.replace('+', "%20");
    let all_props = |p: Value| props(p).into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    vec![
        ("query value", query(&format!("https://shop.example/p?q={enc}&x=1"))),
        ("path segment", path(&format!("https://shop.example/files/{segment}/x"))),
        ("fragment", row_with(json!({ "url": format!("https://shop.example/#/s?q={enc}&x=1") }), true).url_fragment),
        ("fragment route", row_with(json!({ "url": format!("https://shop.example/#/f/{segment}/x") }), true).url_fragment),
        ("title", title(value)),
        ("event name", name(value)),
        ("property value", all_props(json!({ "note": value, "plan": "pro" }))),
        ("property key", all_props(json!({ value: "1", "plan": "pro" }))),
        ("utm value", row(json!({ "url": format!("https://shop.example/?utm_campaign={enc}") })).utm_campaign),
    ]
}

/// `needle` (the telling part of `value`) reaches no place; the rest of each row is still there.
fn gone_everywhere(value: &str, needle: &str) {
    for (place, stored) in in_every_place(value) {
        assert!(!stored.contains(needle), "{needle:?} of {value:?} stored in the {place}: {stored:?}");
    }
}

#[test]
fn ibans_in_every_place() {
    for (value, needle) in [
        ("DE89370400440532013000", "370400440532013000"),
        ("pay GB82 WEST 1234 5698 7654 32 today", "1234 5698 7654"),
        ("Refund to FR1420041010050500013M02606", "20041010050500013"),
        ("iban NL91ABNA0417164300", "0417164300"),
        ("NO9386011117947", "86011117947"),
        ("LC72HEMM254988987389111701748958", "254988987389111701748958"),
        ("RU0204452560040702810412345678901", "04452560040702810412345678901"),
    ] {
        gone_everywhere(value, needle);
    }
    assert_eq!(title("Refund to DE89370400440532013000 sent"), "Refund to [iban] sent");
    assert_eq!(title("Pay DE89 3704 0044 0532 0130 00."), "Pay [iban].");
}

#[test]
fn credentials_in_urls_in_every_place() {
    for (value, needle) in [
        ("postgres://app:Sup3rS3cret@db.internal:5432/prod", "Sup3rS3cret"),
        ("see redis://cache:hunter22@10.0.0.5:6379/0", "hunter22"),
        ("https://admin:pa55word@intranet.example.com/report", "pa55word"),
        ("ftp://jdoe:letmein99@files.example.org/in", "letmein99"),
        ("mongodb+srv://svc:Zq8kLm2p@cluster0.example.net/db", "Zq8kLm2p"),
    ] {
        gone_everywhere(value, needle);
    }
    assert_eq!(title("Failed pg://matt:pass@localhost/1"), "Failed pg://[credentials]@localhost/1");
    assert_eq!(name("sync https://jane@example.com/x"), "sync https://[credentials]@example.com/x");
}

#[test]
fn account_names_in_home_directory_paths_in_every_place() {
    for (value, needle) in [
        ("/Users/mwhitfield/Development/app/main.rs", "mwhitfield"),
        ("Error in /home/okonkwo/.config/app.toml", "okonkwo"),
        ("C:\\Users\\Ljubomir\\AppData\\Local\\app.log", "Ljubomir"),
        ("C:\\Documents and Settings\\Brunhilde\\Desktop", "Brunhilde"),
        ("C:\\Windows\\Profiles\\Anneliese\\Temp", "Anneliese"),
    ] {
        gone_everywhere(value, needle);
    }
    assert_eq!(title("Crash in /Users/mwhitfield/Development/app"), "Crash in /Users/[user]/Development/app");
    // the page path itself: capital `Users` is a home directory, not a site's route
    assert_eq!(path("https://shop.example/Users/mwhitfield/Desktop"), "/Users/:redacted/Desktop");
    for (route, want) in [
        ("/Users/jdoe/Sites/a.html", "/Users/:redacted/Sites/a.html"),
        ("/Users/jdoe/projects/app", "/Users/:redacted/projects/app"),
        ("/Users/jdoe/Desktop;x=1", "/Users/:redacted/Desktop;x=1"),
        ("/Users/jdoe/%44esktop", "/Users/:redacted/%44esktop"),
    ] {
        assert_eq!(path(&format!("https://shop.example{route}")), want);
    }
}

#[test]
fn sensitive_names_in_parameters_and_properties() {
    for key in
        ["two-factor", "two_factor", "MYSQL_PWD", "csrf", "_csrf", "xsrf", "_xsrf", "fastcsrf", "_iris_csrf", "sentrysid", "_vercel_jwt"]
    {
        assert_eq!(query(&format!("https://shop.example/p?{key}=982451&x=1")), "x=1", "{key}");
        assert_eq!(props(json!({ key: "982451", "plan": "pro" })), vec![("plan".into(), "pro".into())], "{key}");
    }
}

/// Look-alikes of the new rules: ordinary values that must be kept as sent.
#[test]
fn look_alikes_of_ibans_credentials_home_paths_and_names_are_kept() {
    for t in [
        "Order DE89370400440532013001 shipped",     // IBAN shape, wrong check digits
        "Ref NO9386011117945",                      // the same
        "SKU AT1234567890123456",                   // too short for Austria
        "Release notes 1.2.3 (2026-01-15)",         // a version and a date, not a phone
        "iPhone 15 (2023) 256GB",                   // a model, a year, a size
        "How CSRF protection works",                // a name in prose
        "Two-factor authentication guide",          //
        "Follow @jane on https://medium.com/@jane", // handles, not credentials
        "npm i left-pad@1.3.0",                     //
        "Users / Settings",                         // not a path
        "ISBN 978-3-16-148410-0, 2nd ed.",          // an ISBN
        "Invoice INV-2026-000123 – EUR 1,299.00",   // an order number and a price
    ] {
        assert_eq!(title(t), t, "title");
        assert_eq!(name(t), t, "event name");
    }
    assert_eq!(path("https://shop.example/users/jane-doe/settings"), "/users/jane-doe/settings");
    // a site's MVC routes under a capital `Users` (ASP.NET): an action, not an account
    for route in ["/Users/Edit/5", "/Users/Create", "/Users/Index", "/Users/Details/42"] {
        assert_eq!(path(&format!("https://shop.example{route}")), route);
    }
    assert_eq!(path("https://shop.example/home/feed"), "/home/feed");
    assert_eq!(query("https://shop.example/blog?topic=csrf&tag=2fa-guide"), "topic=csrf&tag=2fa-guide");
    assert_eq!(
        props(json!({ "order_ref": "DE89370400440532013001", "route": "/users/jane-doe/settings", "author": "Ann" })),
        vec![
            ("author".into(), "Ann".into()),
            ("order_ref".into(), "DE89370400440532013001".into()),
            ("route".into(), "/users/jane-doe/settings".into())
        ]
    );
}

/// Identifiers that are personal data never reach a row as sent: an e-mail address as `mm_aid`
/// or in an event id becomes a keyed hash, different per project; opaque ids stay as sent.
#[test]
fn personal_identifiers_are_stored_as_keyed_hashes() {
    let in_project = |project: &str, v: Value| {
        let principal = Principal::new(project, KeyKind::Secret);
        let ctx = RequestContext {
            received_ms: 1_795_000_000_000,
            user_agent: None,
            edge_geo: Geo::default(),
            id_secret: Some(IdSecret::new(ID_SECRET)),
        };
        build_row(&principal, validate_event(v, true, &LIMITS).unwrap(), &ctx, &|_| None, &mut || "id".into()).unwrap()
    };
    let event = json!({"type": "event", "name": "purchase", "url": "https://shop.example/", "mm_aid": "jane.doe@example.com", "id": "order-for-bob@example.com"});
    let (a, b) = (in_project("p1", event.clone()), in_project("p2", event));
    for r in [&a, &b] {
        let all = stored(r);
        assert!(!all.contains("jane.doe") && !all.contains("bob@example.com"), "{all}");
        assert!(r.anonymous_id.starts_with(PREFIX) && r.event_id.starts_with(PREFIX), "{r:?}");
    }
    assert_ne!(a.anonymous_id, b.anonymous_id, "the same e-mail address in two projects");
    assert_eq!(a.anonymous_id, in_project("p1", json!({"url": "https://shop.example/", "mm_aid": "jane.doe@example.com"})).anonymous_id);
    // also behind an opaque run that the token rule would take first (`tenant/<hex>/…`)
    let token = "6f1d0f0e3c1b4e8a9f361b2a3c4d5e6f";
    let behind_token = [format!("{token}/jane@example.com"), format!("{token}/81.2.69.142"), format!("t/{token}/DE89370400440532013000")];
    for id in ["+44 20 7946 0958", "DE89370400440532013000", "81.2.69.142", "jane.doe%40example.com"]
        .into_iter()
        .chain(behind_token.iter().map(String::as_str))
    {
        assert!(row(json!({"url": "https://shop.example/", "mm_aid": id})).anonymous_id.starts_with(PREFIX), "{id}");
    }
    for id in ["6f1d0f0e-3c1b-4e8a-9f36-1b2a3c4d5e6f", "k3J9xQ2mP7vL4nR8tW1yZ5bC6dF0gH3j", "ORD-2026-000123", "visitor-1"] {
        let r = row(json!({"url": "https://shop.example/", "mm_aid": id, "id": id}));
        assert_eq!((r.anonymous_id.as_str(), r.event_id.as_str()), (id, id), "opaque ids are kept");
    }
    // Without a secret (a deployment that lacks ID_HASH_SECRET) such an event is refused, not stored raw.
    let principal = Principal::new("p1", KeyKind::Secret);
    let ctx = RequestContext { received_ms: 1_795_000_000_000, user_agent: None, edge_geo: Geo::default(), id_secret: None };
    let ev = validate_event(json!({"url": "https://shop.example/", "mm_aid": "jane.doe@example.com"}), true, &LIMITS).unwrap();
    let refused = build_row(&principal, ev, &ctx, &|_| None, &mut || "id".into()).unwrap_err();
    assert_eq!((refused.status, refused.code), (503, "config_error"));
}
