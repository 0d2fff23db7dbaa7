//! Other vendors' ingest protocols, so that an app's existing Segment, PostHog or Plausible
//! tracking moves here by changing one host name. Each protocol's body becomes `/collect`
//! events (JSON, as a client would have sent them), which then take exactly `/collect`'s way
//! in: the same key rules, limits, validation, scrubbing, enrichment, rows and queue.
//!
//! Top to bottom: which endpoint a path is (`route`), the body's framing (`body`), one
//! translator per protocol (`segment`, `posthog`, `plausible`), and what they share here:
//! properties made flat and bounded (`flat_props`), clock-skew correction (`skew_corrected`),
//! and the fields a browser key may not forward (`for_key`).

pub mod body;
pub mod plausible;
pub mod posthog;
pub mod segment;

use crate::error::ApiError;
use crate::ingest::event::{self, json_len, Limits};
use crate::keys::KeyKind;
use serde_json::{Map, Value};

/// `/collect`'s bounds, but with the vendors' batch sizes (Segment's 2,500 messages and
/// 500 KB), and custom events that need no page (server-side `track` calls have none).
pub const LIMITS: Limits =
    Limits { max_batch_events: 2_500, max_decoded_bytes: 2 * 1024 * 1024, custom_events_need_url: false, ..event::LIMITS };

/// Segment's own bounds on a body: 500 KB (its SDKs keep their batches under it).
pub const SEGMENT_LIMITS: Limits = Limits { max_body_bytes: 500 * 1024, ..LIMITS };

/// posthog-python adds events to a batch until it passes 5 MiB, each at most 900 KiB, so a full
/// batch is up to about 6 MiB uncompressed.
pub const POSTHOG_LIMITS: Limits = Limits { max_body_bytes: 7 * 1024 * 1024, max_decoded_bytes: 10 * 1024 * 1024, ..LIMITS };

/// Which protocol a request speaks: also its `ingest_route` in rows and usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Segment,
    PostHog,
    Plausible,
}

impl Protocol {
    /// The bounds on a body of this protocol (the events' own are `LIMITS`' in each).
    pub fn limits(self) -> &'static Limits {
        match self {
            Protocol::Segment => &SEGMENT_LIMITS,
            Protocol::PostHog => &POSTHOG_LIMITS,
            Protocol::Plausible => &LIMITS,
        }
    }

    pub fn route_name(self) -> &'static str {
        match self {
            Protocol::Segment => "segment",
            Protocol::PostHog => "posthog",
            Protocol::Plausible => "plausible",
        }
    }
}

/// What a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Events to store, in `protocol`'s body; for Segment, the call the path names.
    Ingest(Protocol, Option<segment::Call>),
    /// PostHog's feature-flag and remote-config requests (`/flags`, `/decide`,
    /// `/array/{token}/config`): answered "no flags, nothing to record" so posthog-js carries on.
    PostHogFlags,
    /// The same remote config as the script posthog-js loads (`/array/{token}/config.js`):
    /// `posthog_config_script`.
    PostHogConfigScript,
    /// Requests an SDK makes that carry nothing we keep (PostHog `/engage`, session recordings,
    /// logs; Segment's SDK metrics): answered as the vendor would, nothing read or stored.
    Ignored(Protocol),
}

impl Endpoint {
    /// The endpoint's name where a bounded name is wanted (the meter, error reports): by
    /// protocol, never the path (PostHog's config paths hold a project token).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Ingest(protocol, _) => protocol.route_name(),
            Endpoint::Ignored(Protocol::Segment) => "segment (ignored)",
            Endpoint::Ignored(Protocol::PostHog) => "posthog (ignored)",
            Endpoint::Ignored(Protocol::Plausible) => "plausible (ignored)",
            Endpoint::PostHogFlags | Endpoint::PostHogConfigScript => "posthog flags",
        }
    }
}

/// The endpoint of a path, with or without its trailing slash; None for no compat path.
pub fn route(path: &str) -> Option<Endpoint> {
    let p = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    if let Some(call) = p.strip_prefix("/v1/").and_then(segment::Call::from_path) {
        return Some(Endpoint::Ingest(Protocol::Segment, Some(call)));
    }
    Some(match p {
        "/v1/m" | "/m" => Endpoint::Ignored(Protocol::Segment),
        "/e" | "/i/v0/e" | "/batch" | "/capture" | "/track" => Endpoint::Ingest(Protocol::PostHog, None),
        "/engage" | "/s" | "/i/v1/logs" | "/i/v1/metrics" => Endpoint::Ignored(Protocol::PostHog),
        "/flags" | "/decide" => Endpoint::PostHogFlags,
        p if p.starts_with("/array/") && p.ends_with("/config") => Endpoint::PostHogFlags,
        p if p.starts_with("/array/") && p.ends_with("/config.js") => Endpoint::PostHogConfigScript,
        "/api/event" => Endpoint::Ingest(Protocol::Plausible, None),
        _ => return None,
    })
}

/// A body, translated: the key it carried (None for Plausible, found by its domain), and each
/// message in order.
#[derive(Debug)]
pub struct Incoming {
    pub key: Option<String>,
    pub messages: Vec<Message>,
    pub is_batch: bool,
}

/// One message of a body.
#[derive(Debug)]
pub enum Message {
    /// A `/collect` event.
    Event(Value),
    /// Taken and answered, nothing stored: an identify, a person-property update, an engagement ping.
    Nothing,
    /// Refused on its own (the rest of a batch goes on).
    Refused(ApiError),
}

/// The answer each SDK counts as success, so it neither retries nor logs an error: Segment's
/// `{"success": true}` (200), PostHog's exact `{"status": 1}` (200; its Python SDK retries even
/// a 202), Plausible's `ok` (202).
pub fn success(protocol: Protocol) -> (u16, &'static str) {
    match protocol {
        Protocol::Segment => (200, r#"{"success":true}"#),
        Protocol::PostHog => (200, r#"{"status":1}"#),
        Protocol::Plausible => (202, "ok"),
    }
}

/// PostHog's flags and remote config, empty: no flags, no session recording, no autocapture,
/// no surveys, so posthog-js asks for nothing more and records nothing it would send elsewhere.
pub const POSTHOG_FLAGS: &str = r#"{"featureFlags":{},"featureFlagPayloads":{},"flags":{},"errorsWhileComputingFlags":false,"quotaLimited":[],"sessionRecording":false,"autocapture_opt_out":true,"capturePerformance":false,"heatmaps":false,"surveys":false,"siteApps":[],"toolbarParams":{},"supportedCompression":["gzip","gzip-js"],"config":{"enable_collect_everything":false}}"#;

/// An event as a key of `kind` may send it: a browser key's request gives its own address and
/// user agent, so a forwarded `ip` or `user_agent` (Segment's `context.ip`, PostHog's `$ip`) is
/// dropped rather than refused: the SDK sets them on its own.
pub fn for_key(kind: KeyKind, mut event: Value) -> Value {
    if kind != KeyKind::Secret {
        if let Some(obj) = event.as_object_mut() {
            obj.remove("ip");
            obj.remove("user_agent");
        }
    }
    event
}

/// A vendor's properties as `/collect` props: only flat strings, numbers and booleans, within
/// `/collect`'s bounds, and at most `max_props` of them. What does not fit is left out, never
/// refused: SDKs send nested objects (a cart's products) and their own fields, and refusing
/// the event for them would lose it. `skip` names the keys a protocol reads itself.
pub fn flat_props(properties: Option<&Value>, skip: &dyn Fn(&str) -> bool, limits: &Limits) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(Value::Object(map)) = properties else { return out };
    for (k, v) in map {
        if out.len() == limits.max_props {
            break;
        }
        let key_fits = !k.trim().is_empty() && !k.chars().any(char::is_control) && json_len(k) <= limits.max_prop_key_bytes;
        let value_fits = match v {
            Value::String(s) => json_len(s) <= limits.max_prop_value_bytes,
            Value::Number(_) | Value::Bool(_) => true,
            _ => false,
        };
        if key_fits && value_fits && !skip(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The event's time as the vendors correct it for a client's wrong clock: `received - (sent -
/// happened)` when both client times parse; else the client time; else None (the edge's time).
pub fn skew_corrected(happened: Option<&Value>, sent: Option<&Value>, received_ms: i64) -> Option<i64> {
    let happened = happened.and_then(crate::ingest::timestamp::epoch_ms)?;
    match sent.and_then(crate::ingest::timestamp::epoch_ms) {
        Some(sent) => Some(received_ms.saturating_sub(sent.saturating_sub(happened).max(0))),
        None => Some(happened),
    }
}

/// Text for a field of `max` bytes (as stored), or None when it is longer: the field is left
/// out rather than the event refused.
pub fn bounded(text: Option<String>, max: usize) -> Option<String> {
    text.filter(|t| json_len(t) <= max)
}

/// posthog-js loads `/array/{token}/config.js` as a script and reads
/// `window._POSTHOG_REMOTE_CONFIG[token].config`: the script sets POSTHOG_FLAGS there (JSON
/// answered instead was a SyntaxError on every page). A token not of a key's shape (letters,
/// digits, `_`, `-`) gets a script that sets nothing, and posthog-js asks `/flags` instead.
pub fn posthog_config_script(path: &str) -> String {
    let token = path
        .trim_end_matches('/')
        .strip_prefix("/array/")
        .and_then(|p| p.strip_suffix("/config.js"))
        .filter(|t| !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    match token {
        Some(t) => format!(
            "(function(){{var c=window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{{}};c[{}]={{config:{POSTHOG_FLAGS},siteApps:[]}};}})();",
            Value::from(t)
        ),
        None => "/* no remote config */".into(),
    }
}

/// A forwarded visitor address as proxies and SDKs write it: the first of a comma-separated
/// list (`X-Forwarded-For` copied into `context.ip`), without a port (`81.2.69.142:51234`,
/// `[2a02:1234::1]:443`). None when it is no address (`unknown`): the address is left out,
/// not the event refused.
pub fn forwarded_ip(text: Option<String>) -> Option<String> {
    let first = text?.split(',').next()?.trim().to_string();
    let unported = match first.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default().to_string(),
        None if first.matches(':').count() == 1 => first.split(':').next().unwrap_or_default().to_string(),
        None => first,
    };
    unported.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

/// A custom event's page, kept only when `/collect` would take it as one (an app's
/// `capacitor://localhost/cart`, a `file:///` page, `https:foo` or one too long is left out,
/// not the event): the event's own check, then the pipeline's parse.
pub fn web_page(url: Option<String>) -> Option<String> {
    event::page_url(url, &LIMITS).ok().filter(|u| crate::enrich::url_scrub::parse_and_scrub(u, false).is_some())
}

/// A vendor's revenue as `/collect`'s `{amount, currency}`, or None when it cannot be read
/// (`"N/A"`, an unknown currency, out of range): the event is kept without it. A JSON float is
/// the amount it means to the micro unit (JavaScript's `0.1 + 0.2` sends 0.30000000000000004).
pub fn revenue(amount: &Value, currency: Option<String>) -> Option<Value> {
    let amount = match amount {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => Value::from(float_amount(n)?),
        other => other.clone(),
    };
    let revenue = serde_json::json!({"amount": amount, "currency": currency?});
    crate::ingest::revenue::parse(&revenue).ok().map(|_| revenue)
}

/// A float amount as text: its shortest digits (serde_json writes the shortest that reads back
/// as the same float, so 8765432109.87 stays that), rounded to the micro unit only when they
/// run longer (0.30000000000000004 is 0.3). None for an amount that rounds to zero but is not.
fn float_amount(n: &serde_json::Number) -> Option<String> {
    let f = n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e12)?;
    let shortest = n.to_string();
    let fits = !shortest.contains(['e', 'E']) && shortest.split('.').nth(1).is_none_or(|frac| frac.len() <= 6);
    let text = if fits { shortest } else { format!("{f:.6}") };
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    let zero = text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.');
    (!zero || f == 0.0).then_some(text)
}

/// Text at `path` inside `v` (a string, or a number written out); None for anything else.
pub fn text_at(v: &Value, path: &[&str]) -> Option<String> {
    match path.iter().try_fold(v, |v, k| v.get(k))? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The body as a JSON value, or the same refusal `/collect` gives.
pub fn json_body(json: &[u8]) -> Result<Value, ApiError> {
    event::json_value(json, "Send the SDK's JSON body.")
}

/// 413 for a batch over `max`.
pub fn batch_too_large(n: usize, max: usize) -> ApiError {
    ApiError::new(413, "batch_too_large", format!("The batch has {n} messages; at most {max} are taken per request. Split it."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_vendor_path_routes_with_or_without_its_slash() {
        for p in ["/e", "/e/", "/i/v0/e/", "/batch/", "/capture", "/track/"] {
            assert_eq!(route(p), Some(Endpoint::Ingest(Protocol::PostHog, None)), "{p}");
        }
        // analytics-next posts its batches (delivery strategy "batching") to `/b`.
        let segment = [
            "/v1/track",
            "/v1/t",
            "/v1/page/",
            "/v1/p",
            "/v1/screen",
            "/v1/identify",
            "/v1/i",
            "/v1/group",
            "/v1/alias",
            "/v1/batch",
            "/v1/b",
        ];
        for p in segment {
            assert!(matches!(route(p), Some(Endpoint::Ingest(Protocol::Segment, Some(_)))), "{p}");
        }
        assert_eq!(route("/api/event"), Some(Endpoint::Ingest(Protocol::Plausible, None)));
        assert_eq!(route("/flags/"), Some(Endpoint::PostHogFlags));
        assert_eq!(route("/array/phc_x/config.js"), Some(Endpoint::PostHogConfigScript));
        assert_eq!(route("/array/phc_x/config"), Some(Endpoint::PostHogFlags));
        assert_eq!(route("/engage/"), Some(Endpoint::Ignored(Protocol::PostHog)));
        for p in ["/collect", "/v1/query", "/v1/audit", "/v1/exports", "/", "/v1/", "/api/events"] {
            assert_eq!(route(p), None, "{p}");
        }
    }

    #[test]
    fn properties_are_made_flat_and_bounded_not_refused() {
        let long = "x".repeat(LIMITS.max_prop_value_bytes + 1);
        let props = json!({"plan":"pro","seats":3,"trial":true,"cart":{"a":1},"items":[1],"none":null,"long":long,"$lib":"web"});
        let out = flat_props(Some(&props), &|k| k.starts_with('$'), &LIMITS);
        assert_eq!(Value::Object(out), json!({"plan":"pro","seats":3,"trial":true}));
        // A name that is not printable text as sent would refuse the whole event: left out.
        let odd = json!({"\u{1}": "x", "tab\there": 1, "ok": 2});
        assert_eq!(Value::Object(flat_props(Some(&odd), &|_| false, &LIMITS)), json!({"ok": 2}));
        let many: Map<String, Value> = (0..50).map(|i| (format!("k{i:02}"), json!(i))).collect();
        assert_eq!(flat_props(Some(&Value::Object(many)), &|_| false, &LIMITS).len(), LIMITS.max_props);
    }

    #[test]
    fn clock_skew_is_corrected_as_the_vendors_do() {
        let received = 1_800_000_000_000;
        // The client's clock is an hour fast: it sent 10 s after the event, by its clock.
        let happened = json!(received + 3_600_000 - 10_000);
        let sent = json!(received + 3_600_000);
        assert_eq!(skew_corrected(Some(&happened), Some(&sent), received), Some(received - 10_000));
        // No send time: the client time as it is (a server SDK importing history).
        assert_eq!(skew_corrected(Some(&json!(received - 5_000)), None, received), Some(received - 5_000));
        assert_eq!(skew_corrected(None, Some(&sent), received), None);
        // Hostile clocks overflow nothing.
        let (min, max) = (json!(i64::MIN), json!(i64::MAX));
        assert!(skew_corrected(Some(&min), Some(&max), received).is_some());
        assert!(skew_corrected(Some(&max), Some(&min), i64::MIN).is_some());
    }

    #[test]
    fn posthog_js_gets_its_remote_config_as_the_script_it_loads() {
        let js = posthog_config_script("/array/pk_live_abc-1/config.js");
        assert!(
            js.starts_with("(function(){var c=window._POSTHOG_REMOTE_CONFIG=")
                && js.contains(r#"c["pk_live_abc-1"]={config:{"featureFlags":{}"#),
            "{js}"
        );
        assert!(js.ends_with("siteApps:[]};})();"), "{js}");
        // Nothing from the path but a key's characters reaches the script.
        for hostile in ["/array/x'];alert(1);//config.js", "/array/</script>/config.js", "/array//config.js", "/array/a\u{2028}/config.js"]
        {
            assert_eq!(posthog_config_script(hostile), "/* no remote config */", "{hostile}");
        }
    }

    #[test]
    fn a_forwarded_address_is_read_as_proxies_write_it_or_left_out() {
        let ip = |s: &str| forwarded_ip(Some(s.to_string()));
        assert_eq!(ip("81.2.69.142, 10.0.0.1"), Some("81.2.69.142".into()), "X-Forwarded-For copied whole");
        assert_eq!(ip(" 81.2.69.142:51234 "), Some("81.2.69.142".into()), "with the port a proxy added");
        assert_eq!(ip("[2a02:1234::1]:443"), Some("2a02:1234::1".into()));
        assert_eq!(ip("2a02:1234::1"), Some("2a02:1234::1".into()));
        for bad in ["unknown", "", " , ", "81.2.69", "jane@example.com", "[]:443", "a:b"] {
            assert_eq!(ip(bad), None, "{bad}");
        }
        assert_eq!(forwarded_ip(None), None);
    }

    #[test]
    fn a_custom_events_page_is_kept_only_when_it_is_a_web_page() {
        let page = |s: &str| web_page(Some(s.to_string()));
        assert_eq!(page("https://a.com/p"), Some("https://a.com/p".into()));
        assert_eq!(page("HTTP://a.com/"), Some("HTTP://a.com/".into()));
        for app in [
            "capacitor://localhost/cart",
            "file:///index.html",
            "app://x",
            "about:blank",
            "/relative",
            "https:foo",
            "https://",
            "https://exa mple.com/",
            "https://[::1/",
        ] {
            assert_eq!(page(app), None, "{app}");
        }
        assert_eq!(page(&format!("https://a.com/{}", "x".repeat(LIMITS.max_url_bytes))), None);
    }

    #[test]
    fn a_browser_key_forwards_no_address_or_user_agent() {
        let ev = json!({"url":"https://a.com/","ip":"81.2.69.142","user_agent":"x"});
        assert_eq!(for_key(KeyKind::Publishable, ev.clone()), json!({"url":"https://a.com/"}));
        assert_eq!(for_key(KeyKind::Secret, ev.clone()), ev);
    }
}
