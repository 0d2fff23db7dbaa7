//! The ingest contract: what a `/collect` body may hold, decoded and bounded.
//! docs/openapi.yaml describes the same thing for people; tests keep the two in step.

use crate::error::ApiError;
use serde::Deserialize;
use serde_json::Value;
use std::io::Read;

/// Bounds on everything a client controls. Over any of them: a clear error, never a truncation
/// that would silently change the data (except where noted). Text is bounded in the bytes it
/// takes once written into a JSON row (`json_len`), not in characters: an emoji is 4 bytes, a
/// quote 2, so what one event can make of a row and a queue message is bounded in bytes too.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of body as received (compressed or not), counted as they arrive.
    pub max_body_bytes: usize,
    /// Bytes after gzip decoding.
    pub max_decoded_bytes: usize,
    pub max_batch_events: usize,
    pub max_url_bytes: usize,
    pub max_title_bytes: usize,
    pub max_name_bytes: usize,
    pub max_id_bytes: usize,
    pub max_user_agent_bytes: usize,
    pub max_props: usize,
    pub max_prop_key_bytes: usize,
    pub max_prop_value_bytes: usize,
    /// Whether a custom event needs `url`. `/collect` asks for one on every event; the other
    /// vendors' protocols (`compat`) send server-side events with no page, stored with none.
    pub custom_events_need_url: bool,
}

pub const LIMITS: Limits = Limits {
    max_body_bytes: 512 * 1024,
    max_decoded_bytes: 1024 * 1024,
    max_batch_events: 100,
    max_url_bytes: 2000,
    max_title_bytes: 1000,
    max_name_bytes: 200,
    max_id_bytes: 128,
    max_user_agent_bytes: 512,
    max_props: 32,
    max_prop_key_bytes: 64,
    max_prop_value_bytes: 500,
    custom_events_need_url: true,
};

/// The bytes `s` takes inside a JSON string as serde_json writes it: `"` and `\` take two,
/// control characters six (`\u0001`; the short escapes \n \t ... two), the rest their UTF-8.
pub fn json_len(s: &str) -> usize {
    // By bytes: a character's UTF-8 bytes are all 0x80 or above, one each.
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            b if b < 0x20 => 6,
            _ => 1,
        })
        .sum()
}

/// Free text (urls, titles, names, property names and values, user agents) as stored:
/// control characters are removed, and tab, CR and LF become a space. Nothing a client sends
/// as a control character is worth storing, and each would take six bytes of a row.
pub fn clean_text(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    s.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// How much of a refused body the Worker still reads (and drops, holding one chunk at a time)
/// so that its 413 arrives on a clean connection; Cloudflare itself cuts requests at 100 MB.
pub const MAX_DRAIN_BYTES: usize = 100 * 1024 * 1024;

/// A body collected as it arrives, refused once it passes `max_body_bytes`: a chunked body
/// with no Content-Length is never buffered past the cap (the Worker reads the stream into
/// this chunk by chunk and stops reading at the first error).
#[derive(Debug)]
pub struct CappedBody {
    buf: Vec<u8>,
    cap: usize,
}

impl CappedBody {
    /// `declared`: the Content-Length, when the client sent one (refused at once if over).
    pub fn new(limits: &Limits, declared: Option<usize>) -> Result<CappedBody, ApiError> {
        if declared.is_some_and(|n| n > limits.max_body_bytes) {
            return Err(too_large(limits));
        }
        // Reserve what was declared (bounded by the cap), else start small and grow.
        let reserve = declared.unwrap_or(4096).min(limits.max_body_bytes);
        Ok(CappedBody { buf: Vec::with_capacity(reserve), cap: limits.max_body_bytes })
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        let needed = self.buf.len() + chunk.len();
        if needed > self.cap {
            self.buf = Vec::new();
            return Err(too_large_bytes(self.cap));
        }
        if needed > self.buf.capacity() {
            // Grow by doubling, never past the cap (a Vec's own growth could pass it).
            let target = needed.max(self.buf.capacity() * 2).min(self.cap);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Bytes held now (never more than the cap).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// How the body arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Identity,
    Gzip,
}

/// Content types we take: JSON, and text/plain because `navigator.sendBeacon` with a string
/// body sends that and so avoids a CORS preflight.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let essence = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase()).unwrap_or_default();
    match essence.as_str() {
        "application/json" | "text/plain" | "" => Ok(()),
        other => Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!("Content-Type `{other}` is not accepted. Send JSON as application/json (or text/plain from sendBeacon)."),
        )),
    }
}

pub fn check_content_encoding(encoding: Option<&str>) -> Result<BodyEncoding, ApiError> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(BodyEncoding::Identity),
        Some("gzip") | Some("x-gzip") => Ok(BodyEncoding::Gzip),
        Some(other) => Err(ApiError::new(
            415,
            "unsupported_encoding",
            format!("Content-Encoding `{other}` is not accepted. Send the body uncompressed or gzip-compressed."),
        )),
    }
}

/// Raw bytes to JSON text bytes: size checks and gzip decoding, bounded so a small
/// compressed body cannot expand without limit.
pub fn decode_body(raw: &[u8], encoding: BodyEncoding, limits: &Limits) -> Result<Vec<u8>, ApiError> {
    if raw.len() > limits.max_body_bytes {
        return Err(too_large(limits));
    }
    match encoding {
        BodyEncoding::Identity => Ok(raw.to_vec()),
        BodyEncoding::Gzip => {
            // A guess at the decoded size, never past what may be decoded.
            let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limits.max_decoded_bytes + 1));
            let mut dec = flate2::read::GzDecoder::new(raw).take(limits.max_decoded_bytes as u64 + 1);
            dec.read_to_end(&mut out).map_err(|_| {
                ApiError::bad_request(
                    "bad_gzip",
                    "The body says Content-Encoding: gzip but is not valid gzip. Compress it with gzip or drop the header.",
                )
            })?;
            if out.len() > limits.max_decoded_bytes {
                return Err(too_large(limits));
            }
            Ok(out)
        }
    }
}

fn too_large_bytes(cap: usize) -> ApiError {
    ApiError::new(
        413,
        "body_too_large",
        format!("The body is too large: at most {} KiB as sent. Split the batch into smaller requests.", cap / 1024),
    )
}

/// The 413 for a body over the limits (also used when Content-Length already says so).
pub fn too_large(limits: &Limits) -> ApiError {
    ApiError::new(
        413,
        "body_too_large",
        format!(
            "The body is too large: at most {} KiB as sent and {} KiB decoded. Split the batch into smaller requests.",
            limits.max_body_bytes / 1024,
            limits.max_decoded_bytes / 1024
        ),
    )
}

/// A decoded body: the key it carried (if any) and its events, each still raw JSON so
/// that one bad event in a batch is refused on its own.
#[derive(Debug)]
pub struct Envelope {
    pub key: Option<String>,
    pub events: Vec<Value>,
    pub is_batch: bool,
}

/// The most JSON values a body may hold, each key counted as one. A tree of values takes many
/// times its text (16 to 70 bytes a value in wasm), so a 10 MiB body of `0,0,...` or `"a":0,`
/// would take more than an isolate's 128 MB; this many stay under about 35 MiB. A batch of
/// 2,500 PostHog events of 100 properties each holds about 520,000.
pub const MAX_JSON_VALUES: usize = 600_000;

/// A body as JSON, or the refusal every way in gives (empty, not JSON, too many values);
/// `what_to_send` ends the sentence.
pub fn json_value(json: &[u8], what_to_send: &str) -> Result<Value, ApiError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("empty_body", format!("The body is empty. {what_to_send}")));
    }
    if values_at_least(json, MAX_JSON_VALUES + 1) {
        return Err(ApiError::new(
            413,
            "too_many_values",
            format!("The body holds more than {MAX_JSON_VALUES} JSON values. Split it into smaller batches."),
        ));
    }
    serde_json::from_slice(json)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("The body is not valid JSON ({e}). {what_to_send}")))
}

/// Whether JSON text holds at least `n` values, counted before it is parsed, without
/// allocating: every value but the first follows a `,` or opens a container outside a string.
/// (A key counts as a value: a bound, not an exact count.)
fn values_at_least(json: &[u8], n: usize) -> bool {
    let (mut count, mut in_string, mut escaped) = (1usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b'[' | b'{' | b':' => {
                count += 1;
                if count >= n {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

pub fn parse_envelope(json: &[u8], limits: &Limits) -> Result<Envelope, ApiError> {
    let mut value = json_value(json, "Send one event as a JSON object, or {\"batch\": [...]}.")?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("invalid_body", "The body must be a JSON object: one event, or {\"batch\": [...]}."))?;
    let key = match obj.remove("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::bad_request("invalid_field", "`key` must be a string.")),
    };
    match obj.remove("batch") {
        None => Ok(Envelope { key, events: vec![value], is_batch: false }),
        Some(Value::Array(events)) => {
            if events.is_empty() {
                return Err(ApiError::bad_request("empty_batch", "`batch` is empty. Send at least one event."));
            }
            if events.len() > limits.max_batch_events {
                return Err(ApiError::new(
                    413,
                    "batch_too_large",
                    format!("The batch has {} events; at most {} are taken per request. Split it.", events.len(), limits.max_batch_events),
                ));
            }
            Ok(Envelope { key, events, is_batch: true })
        }
        Some(_) => Err(ApiError::bad_request("invalid_field", "`batch` must be an array of events.")),
    }
}

/// One event as the client described it, typed and bounded; nothing enriched yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// None only for a custom event without a page, where `Limits::custom_events_need_url` allows it.
    pub url: Option<String>,
    pub referrer: Option<String>,
    pub title: Option<String>,
    pub anonymous_id: Option<String>,
    /// The customer's own id of a signed-in person (an e-mail, a database id): never stored;
    /// its keyed hash is the visitor id when no `mm_aid` came (`privacy::pseudonym::user_visitor_id`).
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub timestamp: Option<Value>,
    pub props: Vec<(String, PropValue)>,
    /// Server-key events only: the visitor's IP and user agent, forwarded by the SDK.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What the event earned (or refunded): `{"amount": "19.99", "currency": "EUR"}`.
    pub revenue: Option<super::revenue::Revenue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Pageview,
    Custom(String),
}

impl EventKind {
    pub fn type_str(&self) -> &'static str {
        match self {
            EventKind::Pageview => "pageview",
            EventKind::Custom(_) => "custom",
        }
    }
    pub fn name(&self) -> &str {
        match self {
            EventKind::Pageview => "pageview",
            EventKind::Custom(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropValue {
    Str(String),
    /// As the client spelled it (an integer stays an integer).
    Num(serde_json::Number),
    Bool(bool),
}

impl PropValue {
    /// Properties are stored as strings; numbers keep their JSON spelling.
    pub fn to_stored(&self) -> String {
        match self {
            PropValue::Str(s) => s.clone(),
            PropValue::Num(n) => n.to_string(),
            PropValue::Bool(b) => b.to_string(),
        }
    }
}

/// The fields an event may carry (docs/openapi.json's `Event` lists exactly these).
pub const EVENT_FIELDS: &[&str] =
    &["type", "name", "url", "referrer", "title", "mm_aid", "user_id", "id", "timestamp", "props", "ip", "user_agent", "revenue"];

#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    url: Option<String>,
    referrer: Option<String>,
    title: Option<String>,
    mm_aid: Option<String>,
    user_id: Option<String>,
    id: Option<String>,
    timestamp: Option<Value>,
    #[serde(default)]
    props: Option<serde_json::Map<String, Value>>,
    ip: Option<String>,
    user_agent: Option<String>,
    revenue: Option<Value>,
}

/// Free text, cleaned (`clean_text`) and bounded in JSON bytes; blank counts as absent.
fn bounded(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match v.map(clean_text) {
        Some(s) if json_len(&s) > max => Err(too_long(field, max)),
        Some(s) if s.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn too_long(field: &str, max: usize) -> ApiError {
    ApiError::bad_request("field_too_long", format!("`{field}` is longer than {max} bytes (UTF-8, as stored in JSON). Shorten it."))
}

/// An identifier (`id`, `mm_aid`): 1 to `max_id_bytes` bytes, no control characters. Refused
/// rather than cleaned, since a changed id would name another event or visitor; erasure and
/// export take exactly the ids this takes (visitors::parse_path uses it too).
pub fn check_id(field: &str, v: Option<String>, limits: &Limits) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.chars().any(char::is_control) => {
            Err(ApiError::bad_request("invalid_id", format!("`{field}` contains a control character. Ids must be printable text.")))
        }
        Some(s) if json_len(&s) > limits.max_id_bytes => Err(too_long(field, limits.max_id_bytes)),
        Some(s) if s.trim().is_empty() => Ok(None),
        // A URL parser resolves these as path segments, so `/visitors/{id}` could never name them.
        Some(s) if s == "." || s == ".." => Err(ApiError::bad_request(
            "invalid_id",
            format!("`{field}` is `{s}`, which no URL path can name (to export or erase it). Use a random id, as the snippet does."),
        )),
        other => Ok(other),
    }
}

/// Validate one event. `server_fields_allowed` is true for secret keys: only they may forward
/// a visitor's IP and user agent (a browser's are taken from the request itself).
pub fn validate_event(v: Value, server_fields_allowed: bool, limits: &Limits) -> Result<Event, ApiError> {
    if !v.is_object() {
        return Err(ApiError::bad_request("invalid_event", "Each event must be a JSON object."));
    }
    let w: WireEvent = serde_json::from_value(v).map_err(|e| {
        ApiError::bad_request(
            "invalid_event",
            format!("The event has a field of the wrong type ({e}). Check it against the API reference."),
        )
    })?;
    let kind = event_kind(w.kind.as_deref(), bounded("name", w.name, limits.max_name_bytes)?)?;
    let url = match (&kind, w.url) {
        (EventKind::Custom(_), None) if !limits.custom_events_need_url => None,
        (_, url) => Some(page_url(url, limits)?),
    };
    if !server_fields_allowed && (w.ip.is_some() || w.user_agent.is_some()) {
        return Err(ApiError::bad_request(
            "server_fields_not_allowed",
            "`ip` and `user_agent` may only be sent with a secret sk_live_ key from a server; browsers' are taken from the request.",
        ));
    }
    let ip = forwarded_ip(w.ip)?;
    let props = match w.props {
        Some(map) => props(map, limits)?,
        None => Vec::new(),
    };
    Ok(Event {
        kind,
        url,
        referrer: bounded("referrer", w.referrer, limits.max_url_bytes)?,
        title: bounded("title", w.title, limits.max_title_bytes)?,
        anonymous_id: check_id("mm_aid", w.mm_aid, limits)?,
        user_id: check_id("user_id", w.user_id, limits)?,
        client_id: check_id("id", w.id, limits)?,
        timestamp: w.timestamp,
        props,
        ip,
        user_agent: bounded("user_agent", w.user_agent, limits.max_user_agent_bytes)?,
        revenue: w.revenue.as_ref().map(super::revenue::parse).transpose()?,
    })
}

/// The name pageviews have (`event:name`): no custom event may take it, or it would count as
/// a pageview where only the name is kept (the aggregates, a page goal).
pub const PAGEVIEW_NAME: &str = "pageview";

/// A custom event named as pageviews are.
pub fn reserved_name() -> ApiError {
    ApiError::bad_request(
        "reserved_event_name",
        "`pageview` is the name pageviews have: send a pageview with its page's `url`, or give your event another name.",
    )
}

/// `type`: a pageview (the default), or a custom event, which needs its own `name`.
fn event_kind(kind: Option<&str>, name: Option<String>) -> Result<EventKind, ApiError> {
    match kind.map(str::trim) {
        None | Some("pageview") => Ok(EventKind::Pageview),
        Some("event") | Some("custom") => match name {
            None => {
                Err(ApiError::bad_request("missing_name", "A custom event needs a `name`, e.g. {\"type\":\"event\",\"name\":\"signup\"}."))
            }
            Some(n) if n == PAGEVIEW_NAME => Err(reserved_name()),
            Some(n) => Ok(EventKind::Custom(n)),
        },
        Some(other) => {
            Err(ApiError::bad_request("invalid_type", format!("`type` is `{other}`; it must be `pageview` or `event` (with a `name`).")))
        }
    }
}

/// `url`: required, bounded, absolute http(s). A cheap shape check here; the pipeline's one
/// full parse refuses what this lets through.
pub(crate) fn page_url(url: Option<String>, limits: &Limits) -> Result<String, ApiError> {
    let url = bounded("url", url, limits.max_url_bytes)?
        .ok_or_else(|| ApiError::bad_request("missing_url", "The event needs `url`: the full address of the page it happened on."))?;
    let lower_start = url.get(..8).unwrap_or(&url).to_ascii_lowercase();
    if !(lower_start.starts_with("http://") || lower_start.starts_with("https://")) {
        return Err(ApiError::bad_request("invalid_url", "`url` must be an absolute http(s) URL, e.g. https://example.com/pricing."));
    }
    Ok(url)
}

/// A server's forwarded visitor `ip`, if any: an IPv4 or IPv6 address.
fn forwarded_ip(ip: Option<String>) -> Result<Option<String>, ApiError> {
    match ip.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(s) if s.parse::<std::net::IpAddr>().is_err() => {
            Err(ApiError::bad_request("invalid_ip", "`ip` is not an IPv4 or IPv6 address. Send the visitor's address as text."))
        }
        other => Ok(other),
    }
}

/// `props`: at most `max_props`, flat, names and text values within their bounds; a null
/// value is left out.
fn props(map: serde_json::Map<String, Value>, limits: &Limits) -> Result<Vec<(String, PropValue)>, ApiError> {
    if map.len() > limits.max_props {
        return Err(ApiError::bad_request(
            "too_many_props",
            format!("`props` has {} entries; at most {} are taken.", map.len(), limits.max_props),
        ));
    }
    let mut props = Vec::new();
    for (k, v) in map {
        let k = clean_text(k);
        if k.trim().is_empty() || json_len(&k) > limits.max_prop_key_bytes {
            return Err(ApiError::bad_request(
                "invalid_prop_key",
                format!("Property names must be 1 to {} bytes of printable text.", limits.max_prop_key_bytes),
            ));
        }
        if let Some(pv) = prop_value(&k, v, limits)? {
            props.push((k, pv));
        }
    }
    Ok(props)
}

fn prop_value(k: &str, v: Value, limits: &Limits) -> Result<Option<PropValue>, ApiError> {
    Ok(Some(match v {
        Value::String(s) => {
            let s = clean_text(s);
            if json_len(&s) > limits.max_prop_value_bytes {
                return Err(ApiError::bad_request(
                    "prop_value_too_long",
                    format!("Property `{k}` is longer than {} bytes (UTF-8, as stored in JSON). Shorten it.", limits.max_prop_value_bytes),
                ));
            }
            PropValue::Str(s)
        }
        Value::Number(n) => PropValue::Num(n),
        Value::Bool(b) => PropValue::Bool(b),
        Value::Null => return Ok(None),
        Value::Array(_) | Value::Object(_) => {
            return Err(ApiError::bad_request(
                "nested_prop",
                format!("Property `{k}` is a list or object; properties must be flat strings, numbers or booleans."),
            ))
        }
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Commas, colons and brackets inside strings (escaped quotes too) are not values.
    #[test]
    fn values_are_counted_outside_strings() {
        // the array, 1, the object, its key and 2
        assert!(values_at_least(br#"[1,{"a":2}]"#, 5));
        assert!(!values_at_least(br#"[1,{"a":2}]"#, 6));
        assert!(values_at_least(br#"["a,b:[{","c\",d"]"#, 3));
        assert!(!values_at_least(br#"["a,b:[{","c\",d"]"#, 4));
        assert!(values_at_least(br#""\\",[""#, 3), "an escaped backslash ends before the quote");
        assert!(!values_at_least(br#""\\",[""#, 4));
    }

    fn ev(v: Value) -> Result<Event, ApiError> {
        validate_event(v, false, &LIMITS)
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("text/plain;charset=UTF-8")).is_ok());
        assert!(check_content_type(None).is_ok());
        let e = check_content_type(Some("application/x-www-form-urlencoded")).unwrap_err();
        assert_eq!((e.status, e.code), (415, "unsupported_media_type"));
        assert_eq!(check_content_encoding(Some("br")).unwrap_err().status, 415);
    }

    /// `data` gzipped, for tests of bodies (here and in `compat::body`).
    pub(crate) fn gz(data: &[u8]) -> Vec<u8> {
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_bodies_decode_and_are_bounded() {
        let body = br#"{"url":"https://a.com/"}"#;
        assert_eq!(decode_body(&gz(body), BodyEncoding::Gzip, &LIMITS).unwrap(), body);
        // a zip bomb: small compressed, too large decoded
        let bomb = gz(&vec![b' '; LIMITS.max_decoded_bytes + 10]);
        assert!(bomb.len() < LIMITS.max_body_bytes);
        assert_eq!(decode_body(&bomb, BodyEncoding::Gzip, &LIMITS).unwrap_err().code, "body_too_large");
        assert_eq!(decode_body(b"not gzip", BodyEncoding::Gzip, &LIMITS).unwrap_err().code, "bad_gzip");
        let big = vec![b'a'; LIMITS.max_body_bytes + 1];
        assert_eq!(decode_body(&big, BodyEncoding::Identity, &LIMITS).unwrap_err().status, 413);
    }

    /// Review finding: the decoder reserved four times the compressed size, whatever the cap on
    /// what it may decode to (a 7 MiB PostHog body reserved 28 MiB of a 128 MiB isolate).
    #[test]
    fn gzip_decoding_reserves_no_more_than_it_may_decode() {
        let limits = Limits { max_body_bytes: 1024 * 1024, max_decoded_bytes: 2 * 1024 * 1024, ..LIMITS };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..900 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let body = gz(&noise);
        assert!(body.len() <= limits.max_body_bytes && body.len() * 4 > limits.max_decoded_bytes);
        let out = decode_body(&body, BodyEncoding::Gzip, &limits).unwrap();
        assert_eq!(out.len(), noise.len());
        assert!(out.capacity() <= limits.max_decoded_bytes + 1, "reserved {} bytes", out.capacity());
    }

    #[test]
    fn envelope_single_and_batch() {
        let e = parse_envelope(br#"{"key":"pk_live_x","url":"https://a.com"}"#, &LIMITS).unwrap();
        assert_eq!(e.key.as_deref(), Some("pk_live_x"));
        assert!(!e.is_batch);
        assert!(e.events[0].get("key").is_none());
        let e = parse_envelope(br#"{"batch":[{"url":"https://a.com"},{"url":"https://b.com"}]}"#, &LIMITS).unwrap();
        assert_eq!(e.events.len(), 2);
        assert!(e.is_batch);
        assert_eq!(parse_envelope(b"  ", &LIMITS).unwrap_err().code, "empty_body");
        assert_eq!(parse_envelope(b"{", &LIMITS).unwrap_err().code, "invalid_json");
        assert_eq!(parse_envelope(b"[1]", &LIMITS).unwrap_err().code, "invalid_body");
        assert_eq!(parse_envelope(br#"{"batch":[]}"#, &LIMITS).unwrap_err().code, "empty_batch");
        let many = format!(r#"{{"batch":[{}]}}"#, vec![r#"{"url":"https://a.com"}"#; 101].join(","));
        let err = parse_envelope(many.as_bytes(), &LIMITS).unwrap_err();
        assert_eq!((err.status, err.code), (413, "batch_too_large"));
    }

    #[test]
    fn pageview_and_custom_events() {
        let e = ev(json!({"url":"https://a.com/x","mm_aid":"aid1","title":"X"})).unwrap();
        assert_eq!(e.kind, EventKind::Pageview);
        assert_eq!(e.anonymous_id.as_deref(), Some("aid1"));
        let e = ev(json!({"type":"event","name":"signup","url":"https://a.com/x","props":{"plan":"pro","seats":3,"trial":true,"x":null}}))
            .unwrap();
        assert_eq!(e.kind, EventKind::Custom("signup".into()));
        assert_eq!(e.props.len(), 3);
        // Numbers are stored as the client spelled them (found by the snippet's browser test:
        // `seats: 3` was stored as "3.0").
        let stored = |json_props: Value, key: &str| {
            let e = ev(json!({"type":"event","name":"n","url":"https://a.com/","props":json_props})).unwrap();
            e.props.iter().find(|(k, _)| k == key).unwrap().1.to_stored()
        };
        assert_eq!(stored(json!({"seats":3}), "seats"), "3");
        assert_eq!(stored(json!({"price":2.5}), "price"), "2.5");
        assert_eq!(stored(json!({"delta":-7}), "delta"), "-7");
        assert_eq!(stored(json!({"big":4242424242424242u64}), "big"), "4242424242424242");
        assert_eq!(ev(json!({"type":"event","url":"https://a.com"})).unwrap_err().code, "missing_name");
        // A custom event named as pageviews are would count as one where only names are kept.
        assert_eq!(ev(json!({"type":"event","name":"pageview","url":"https://a.com"})).unwrap_err().code, "reserved_event_name");
        assert!(ev(json!({"type":"event","name":"Pageview","url":"https://a.com"})).is_ok());
        assert_eq!(ev(json!({"type":"click","url":"https://a.com"})).unwrap_err().code, "invalid_type");
    }

    #[test]
    fn field_errors_are_specific() {
        assert_eq!(ev(json!({})).unwrap_err().code, "missing_url");
        assert_eq!(ev(json!({"url":"/relative"})).unwrap_err().code, "invalid_url");
        assert_eq!(ev(json!({"url":"javascript:alert(1)"})).unwrap_err().code, "invalid_url");
        assert_eq!(ev(json!({"url": 5})).unwrap_err().code, "invalid_event");
        assert_eq!(ev(json!(5)).unwrap_err().code, "invalid_event");
        let long = format!("https://a.com/{}", "x".repeat(LIMITS.max_url_bytes));
        assert_eq!(ev(json!({"url": long})).unwrap_err().code, "field_too_long");
        assert_eq!(ev(json!({"url":"https://a.com","props":{"a":[1]}})).unwrap_err().code, "nested_prop");
        assert_eq!(ev(json!({"url":"https://a.com","props":{"a":"x".repeat(501)}})).unwrap_err().code, "prop_value_too_long");
        let many: serde_json::Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(ev(json!({"url":"https://a.com","props":many})).unwrap_err().code, "too_many_props");
    }

    #[test]
    fn every_listed_field_is_read() {
        let base = || json!({"type":"event","name":"n","url":"https://a.com/"});
        let plain = validate_event(base(), true, &LIMITS).unwrap();
        let samples = json!({"type":"pageview","name":"other","url":"https://b.com/","referrer":"https://r.com/","title":"T",
            "mm_aid":"a","user_id":"u","id":"i","timestamp":1,"props":{"k":"v"},"ip":"1.2.3.4","user_agent":"ua","revenue":{"amount":"1","currency":"EUR"}});
        for f in EVENT_FIELDS {
            let mut v = base();
            v[*f] = samples[*f].clone();
            let e = validate_event(v, true, &LIMITS).unwrap();
            assert_ne!(e, plain, "field `{f}` is listed but not read");
        }
    }

    #[test]
    fn only_server_keys_forward_ip_and_ua() {
        let v = json!({"url":"https://a.com","ip":"81.2.69.142","user_agent":"curl/8"});
        assert_eq!(ev(v.clone()).unwrap_err().code, "server_fields_not_allowed");
        let e = validate_event(v, true, &LIMITS).unwrap();
        assert_eq!(e.ip.as_deref(), Some("81.2.69.142"));
        let bad = json!({"url":"https://a.com","ip":"999.1.1.1"});
        assert_eq!(validate_event(bad, true, &LIMITS).unwrap_err().code, "invalid_ip");
    }

    #[test]
    fn json_len_counts_what_serde_writes() {
        for s in ["plain", "quote\" back\\ slash", "tab\t nl\n \u{1} \u{1f} \u{7f}", "é € 😀", ""] {
            assert_eq!(json_len(s) + 2, serde_json::to_string(s).unwrap().len(), "{s:?}");
        }
    }

    #[test]
    fn bytes_not_characters_bound_text() {
        // 200 two-byte characters are 400 bytes: over the 200-byte name limit.
        let e = ev(json!({"type":"event","name":"é".repeat(101),"url":"https://a.com/"})).unwrap_err();
        assert_eq!(e.code, "field_too_long");
        assert!(e.message.contains("`name`") && e.message.contains("bytes"), "{}", e.message);
        assert!(ev(json!({"type":"event","name":"é".repeat(100),"url":"https://a.com/"})).is_ok());
        let e = ev(json!({"url":"https://a.com/","props":{"k":"€".repeat(200)}})).unwrap_err();
        assert_eq!(e.code, "prop_value_too_long");
        // Control characters go before the size is counted, and from property names too.
        let e = ev(json!({"url":"https://a.com/","props":{"k\u{1}ey":format!("v{}", "\u{2}".repeat(490))}})).unwrap();
        assert_eq!(e.props, vec![("key".to_string(), PropValue::Str("v".into()))]);
        assert_eq!(ev(json!({"url":"https://a.com/","props":{"\u{1}":"v"}})).unwrap_err().code, "invalid_prop_key");
    }

    /// A body without Content-Length is refused once it passes the cap, and what is held never
    /// exceeds the cap, however much more the client sends.
    #[test]
    fn a_capped_body_holds_at_most_the_cap() {
        // Chunks of a size that does not divide the cap (the review's 100,000 bytes once grew
        // the buffer to 800,000), then the usual 64 KiB.
        for size in [100_000, 333, 64 * 1024] {
            let mut body = CappedBody::new(&LIMITS, None).unwrap();
            let chunk = vec![b'x'; size];
            while body.push(&chunk).is_ok() {
                assert!(body.held() <= LIMITS.max_body_bytes, "{size}-byte chunks: held {} bytes", body.held());
            }
        }
        let mut body = CappedBody::new(&LIMITS, None).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut refused_after = None;
        for i in 0..160 {
            // 10 MiB offered in all
            if let Err(e) = body.push(&chunk) {
                assert_eq!((e.status, e.code), (413, "body_too_large"));
                refused_after = Some(i);
                break;
            }
            assert!(body.held() <= LIMITS.max_body_bytes, "held {} bytes", body.held());
        }
        assert_eq!(refused_after, Some(LIMITS.max_body_bytes / chunk.len()), "refused at the first chunk past the cap");
        assert_eq!(body.held(), 0, "the buffer is released on refusal");
        assert_eq!(CappedBody::new(&LIMITS, Some(LIMITS.max_body_bytes + 1)).unwrap_err().status, 413);
        let mut ok = CappedBody::new(&LIMITS, Some(10)).unwrap();
        ok.push(b"0123456789").unwrap();
        assert_eq!(ok.finish(), b"0123456789");
    }
}
