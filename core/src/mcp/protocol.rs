//! MCP over Streamable HTTP, JSON-RPC 2.0 framing and version handling, without I/O.
//!
//! Two eras on one endpoint (spec `basic/versioning.mdx`, "dual-era server"):
//! - modern, `2026-07-28`: stateless; every request carries `_meta` with
//!   `io.modelcontextprotocol/protocolVersion` and `.../clientCapabilities`, and the POST carries
//!   `MCP-Protocol-Version`, `Mcp-Method` and (for `tools/call`) `Mcp-Name`, which must match the
//!   body (else 400, `-32020` HeaderMismatch). Results carry `resultType: "complete"` and
//!   `_meta["io.modelcontextprotocol/serverInfo"]`; `server/discover` and `tools/list` carry
//!   `ttlMs` and `cacheScope`. An unknown method is 404 with `-32601`; an unsupported version
//!   400 with `-32022` and `{supported, requested}`.
//! - legacy, `2025-11-25` and `2025-06-18`: `initialize` negotiates the version (the client's
//!   if we speak it, else our latest), later requests name it in `MCP-Protocol-Version`. No
//!   session id is minted: nothing is kept between requests in either era.
//!
//! Notifications get 202 with no body. GET and DELETE get 405 (the Worker answers those).

use serde_json::{json, Map, Value};

pub const MODERN: &str = "2026-07-28";
/// The `initialize` revisions we speak, newest first.
pub const LEGACY: [&str; 2] = ["2025-11-25", "2025-06-18"];
/// Every version, as `server/discover` and `-32022` list them.
pub const SUPPORTED: [&str; 3] = [MODERN, LEGACY[0], LEGACY[1]];

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const HEADER_MISMATCH: i64 = -32020;
pub const UNSUPPORTED_VERSION: i64 = -32022;

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";
const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";

pub const SERVER_NAME: &str = "millimetric";
pub const INSTRUCTIONS: &str = "Millimetric web analytics for the project of the API key you connected with. Start with `overview` for a period's headline numbers, `top` for the top pages, sources, countries and so on, `timeseries` for trends, `realtime` for right now, `list_events` for custom events and their properties, `query_stats` for anything else, `funnel` for where visitors drop off between steps, `attribution` for which channels bring conversions, `retention` for whether visitors come back, `paths` for where they go next, and `explain_metrics` for what a visit or a bounce means. All numbers exclude bots.";

/// The era a request is served in, with its protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    Modern(String),
    Legacy(String),
}

/// An HTTP answer: status and, unless a 202, a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub status: u16,
    pub body: Option<Value>,
}

impl Out {
    pub fn accepted() -> Out {
        Out { status: 202, body: None }
    }
    pub fn text(&self) -> String {
        self.body.as_ref().map(Value::to_string).unwrap_or_default()
    }
}

/// What a POST asks for, once framing, headers and version are checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Answer as is (a result, a protocol error, a 202).
    Answer(Out),
    /// Run a tool, then answer with `tool_result` (its failures are tool results too).
    Call { id: Value, era: Era, name: String, arguments: Map<String, Value> },
}

fn server_info() -> Value {
    json!({"name": SERVER_NAME, "title": "Millimetric analytics", "version": env!("CARGO_PKG_VERSION")})
}

/// A JSON-RPC error (id `null` when the request's could not be read).
pub fn error(status: u16, id: Option<&Value>, code: i64, message: impl Into<String>, data: Option<Value>) -> Out {
    let mut err = json!({"code": code, "message": message.into()});
    if let Some(d) = data {
        err["data"] = d;
    }
    Out { status, body: Some(json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": err})) }
}

fn unsupported(status: u16, id: Option<&Value>, requested: &str) -> Out {
    error(
        status,
        id,
        UNSUPPORTED_VERSION,
        format!("Unsupported protocol version {requested:?}: this server speaks {}.", SUPPORTED.join(", ")),
        Some(json!({"supported": SUPPORTED, "requested": requested})),
    )
}

/// A result in the request's era: modern results say `resultType` and who answered.
fn result(era: &Era, id: &Value, mut r: Value) -> Out {
    if let Era::Modern(_) = era {
        r["resultType"] = json!("complete");
        let meta = r.as_object_mut().expect("results are objects").entry("_meta").or_insert_with(|| json!({}));
        meta[META_SERVER] = server_info();
    }
    Out { status: 200, body: Some(json!({"jsonrpc": "2.0", "id": id, "result": r})) }
}

/// The status of a JSON-RPC error answered to a well-formed request: the modern transport
/// gives each its HTTP status; legacy clients read the JSON-RPC error off a 200.
fn status_for(era: &Era, modern: u16) -> u16 {
    match era {
        Era::Modern(_) => modern,
        Era::Legacy(_) => 200,
    }
}

/// A header value in the Base64 sentinel form `=?base64?...?=`, decoded; else as sent.
pub fn decode_header(v: &str) -> Option<String> {
    match v.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        Some(b64) => String::from_utf8(crate::base64_text::decode(b64.as_bytes())?).ok(),
        None => Some(v.to_string()),
    }
}

/// A JSON-RPC 2.0 message as sent: its id (None: a notification), method and params.
struct Message {
    id: Option<Value>,
    method: String,
    params: Map<String, Value>,
}

/// The body as one JSON-RPC message, or the protocol error to answer with.
fn message(body: &[u8]) -> Result<Message, Out> {
    let msg: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Err(error(
                400,
                None,
                PARSE_ERROR,
                format!("Parse error: the body is not JSON ({e}). Send one JSON-RPC 2.0 message."),
                None,
            ))
        }
    };
    let Some(obj) = msg.as_object() else {
        let what = if msg.is_array() {
            "JSON-RPC batches are not supported: send one message per POST."
        } else {
            "The body must be one JSON-RPC 2.0 message (an object)."
        };
        return Err(error(400, None, INVALID_REQUEST, format!("Invalid Request: {what}"), None));
    };
    // Echoed in the errors below only when it is an id: else `null` (JSON-RPC 2.0, 5).
    let id = obj.get("id").filter(|v| is_id(v));
    if obj.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(error(400, id, INVALID_REQUEST, "Invalid Request: `jsonrpc` must be \"2.0\".", None));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        // A response, or nothing: this server sends no requests, so expects no responses.
        return Err(error(
            400,
            id,
            INVALID_REQUEST,
            "Invalid Request: a message needs a string `method`; this server sends no requests, so takes no responses.",
            None,
        ));
    };
    let params = match obj.get("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(error(400, id, INVALID_PARAMS, "Invalid params: `params` must be an object.", None)),
    };
    Ok(Message { id: obj.get("id").cloned(), method: method.to_string(), params })
}

/// What MCP takes as a request id: a string or an integer (never null).
fn is_id(v: &Value) -> bool {
    v.is_string() || v.is_i64() || v.is_u64()
}

/// One POST to the MCP endpoint: `header` reads a request header (case-insensitively).
/// `tools` is the `tools/list` answer's list.
pub fn handle(header: &dyn Fn(&str) -> Option<String>, body: &[u8], tools: &Value) -> Step {
    let version_header = header("MCP-Protocol-Version").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let Message { id, method, params } = match message(body) {
        Ok(m) => m,
        Err(out) => return Step::Answer(out),
    };
    let Some(id) = id else { return Step::Answer(notification(version_header.as_deref())) };
    if !is_id(&id) {
        return Step::Answer(error(400, None, INVALID_REQUEST, "Invalid Request: `id` must be a string or an integer.", None));
    }
    match era(header, version_header.as_deref(), &id, &method, &params) {
        Ok(era) => dispatch(era, &id, &method, &params, tools),
        Err(out) => Step::Answer(out),
    }
}

/// A notification. Nothing this server does depends on one; a version header it does not
/// speak is still refused (2025-11-25: 400 for an unsupported MCP-Protocol-Version).
fn notification(version_header: Option<&str>) -> Out {
    match version_header {
        Some(v) if !SUPPORTED.contains(&v) => unsupported(400, None, v),
        _ => Out::accepted(),
    }
}

/// Which protocol a request speaks: modern (`_meta` names the version, mirrored in headers),
/// legacy (`initialize`, then the negotiated version in MCP-Protocol-Version). Err: the answer
/// to give now, a refusal or the legacy handshake's own answer.
fn era(
    header: &dyn Fn(&str) -> Option<String>,
    version_header: Option<&str>,
    id: &Value,
    method: &str,
    params: &Map<String, Value>,
) -> Result<Era, Out> {
    let meta = params.get("_meta").and_then(Value::as_object);
    match meta.and_then(|m| m.get(META_VERSION)) {
        Some(v) => modern(header, version_header, id, method, params, v),
        None if method == "initialize" => Err(initialize(id, params)),
        None => legacy(version_header, id),
    }
}

/// A modern request: the body's version, mirrored in the headers.
fn modern(
    header: &dyn Fn(&str) -> Option<String>,
    version_header: Option<&str>,
    id: &Value,
    method: &str,
    params: &Map<String, Value>,
    v: &Value,
) -> Result<Era, Out> {
    let meta = params.get("_meta").and_then(Value::as_object);
    let Some(v) = v.as_str() else {
        return Err(error(400, Some(id), INVALID_PARAMS, format!("Invalid params: `_meta.{META_VERSION}` must be a string."), None));
    };
    match version_header {
        None => return Err(error(400, Some(id), HEADER_MISMATCH, "Header mismatch: the MCP-Protocol-Version header is missing.", None)),
        Some(h) if h != v => {
            return Err(error(
                400,
                Some(id),
                HEADER_MISMATCH,
                format!("Header mismatch: MCP-Protocol-Version header value '{h}' does not match body value '{v}'."),
                None,
            ))
        }
        _ => {}
    }
    if v != MODERN {
        return Err(unsupported(400, Some(id), v));
    }
    // The method as sent: the Base64 form is for Mcp-Name and Mcp-Param-* only, and a proxy
    // that routes on this header must see the method that runs.
    match header("Mcp-Method").map(|h| h.trim().to_string()) {
        None => return Err(error(400, Some(id), HEADER_MISMATCH, "Header mismatch: the Mcp-Method header is missing.", None)),
        Some(h) if h != method => {
            return Err(error(
                400,
                Some(id),
                HEADER_MISMATCH,
                format!("Header mismatch: Mcp-Method header value '{h}' does not match body value '{method}'."),
                None,
            ))
        }
        _ => {}
    }
    if !meta.is_some_and(|m| m.get(META_CAPS).is_some_and(Value::is_object)) {
        return Err(error(
            400,
            Some(id),
            INVALID_PARAMS,
            format!("Invalid params: `_meta` needs `{META_CAPS}` (an object) on every request."),
            None,
        ));
    }
    if matches!(method, "tools/call" | "resources/read" | "prompts/get") {
        let field = if method == "resources/read" { "uri" } else { "name" };
        let Some(body_name) = params.get(field).and_then(Value::as_str) else {
            return Err(error(400, Some(id), INVALID_PARAMS, format!("Invalid params: `{field}` must be a string."), None));
        };
        match header("Mcp-Name") {
            None => return Err(error(400, Some(id), HEADER_MISMATCH, "Header mismatch: the Mcp-Name header is missing.", None)),
            Some(raw) => match decode_header(raw.trim()) {
                None => {
                    return Err(error(
                        400,
                        Some(id),
                        HEADER_MISMATCH,
                        "Header mismatch: the Mcp-Name header is not valid Base64 in its =?base64?...?= form.",
                        None,
                    ))
                }
                Some(h) if h != body_name => {
                    return Err(error(
                        400,
                        Some(id),
                        HEADER_MISMATCH,
                        format!("Header mismatch: Mcp-Name header value '{h}' does not match body value '{body_name}'."),
                        None,
                    ))
                }
                _ => {}
            },
        }
    }
    Ok(Era::Modern(v.to_string()))
}

/// The legacy handshake: the client's version if we speak it, else our latest.
fn initialize(id: &Value, params: &Map<String, Value>) -> Out {
    let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
    let v = if LEGACY.contains(&asked) { asked } else { LEGACY[0] };
    let era = Era::Legacy(v.to_string());
    result(
        &era,
        id,
        json!({"protocolVersion": v, "capabilities": {"tools": {"listChanged": false}}, "serverInfo": server_info(), "instructions": INSTRUCTIONS}),
    )
}

/// A legacy request after the handshake: the negotiated version in MCP-Protocol-Version.
fn legacy(version_header: Option<&str>, id: &Value) -> Result<Era, Out> {
    match version_header {
        Some(v) if LEGACY.contains(&v) => Ok(Era::Legacy(v.to_string())),
        Some(MODERN) => {
            Err(error(400, Some(id), INVALID_PARAMS, format!("Invalid params: a {MODERN} request carries `_meta.{META_VERSION}` and `_meta.{META_CAPS}`."), None))
        }
        Some(v) => Err(unsupported(400, Some(id), v)),
        None => {
            Err(error(
                400,
                Some(id),
                HEADER_MISMATCH,
                format!("The MCP-Protocol-Version header is missing. Send `_meta.{META_VERSION}` ({MODERN}) with the headers, or `initialize` first and then the negotiated version in MCP-Protocol-Version."),
                None,
            ))
        }
    }
}

/// The method, in the request's protocol era.
fn dispatch(era: Era, id: &Value, method: &str, params: &Map<String, Value>, tools: &Value) -> Step {
    match method {
        "server/discover" if matches!(era, Era::Modern(_)) => Step::Answer(result(
            &era,
            id,
            json!({"supportedVersions": SUPPORTED, "capabilities": {"tools": {}}, "instructions": INSTRUCTIONS, "ttlMs": 3_600_000, "cacheScope": "public"}),
        )),
        "ping" if matches!(era, Era::Legacy(_)) => Step::Answer(result(&era, id, json!({}))),
        "tools/list" => {
            let mut r = json!({"tools": tools});
            if let Era::Modern(_) = era {
                // The same tools for every key.
                r["ttlMs"] = json!(3_600_000);
                r["cacheScope"] = json!("public");
            }
            Step::Answer(result(&era, id, r))
        }
        "tools/call" => {
            let Some(name) = params.get("name").and_then(Value::as_str) else {
                return Step::Answer(error(
                    status_for(&era, 400),
                    Some(id),
                    INVALID_PARAMS,
                    "Invalid params: `tools/call` needs `name`, a string.",
                    None,
                ));
            };
            let arguments = match params.get("arguments") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(a)) => a.clone(),
                Some(_) => {
                    return Step::Answer(error(
                        status_for(&era, 400),
                        Some(id),
                        INVALID_PARAMS,
                        "Invalid params: `arguments` must be an object.",
                        None,
                    ))
                }
            };
            let known = tools.as_array().is_some_and(|ts| ts.iter().any(|t| t["name"] == name));
            if !known {
                let names: Vec<&str> = tools.as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
                return Step::Answer(error(
                    status_for(&era, 400),
                    Some(id),
                    INVALID_PARAMS,
                    format!("Unknown tool: {name}. The tools are {}.", names.join(", ")),
                    None,
                ));
            }
            Step::Call { id: id.clone(), era, name: name.to_string(), arguments }
        }
        _ => Step::Answer(error(status_for(&era, 404), Some(id), METHOD_NOT_FOUND, format!("Method not found: {method}."), None)),
    }
}

/// A tool's answer: structured content and a short summary for the model (and the JSON as
/// text, for clients that read only text), or a tool error saying what to change.
pub fn tool_result(era: &Era, id: &Value, r: &super::tools::ToolResult) -> Out {
    let body = match r {
        super::tools::ToolResult::Ok { structured, summary } => json!({
            "content": [{"type": "text", "text": summary}, {"type": "text", "text": structured.to_string()}],
            "structuredContent": structured,
            "isError": false,
        }),
        super::tools::ToolResult::Error(message) => json!({"content": [{"type": "text", "text": message}], "isError": true}),
    };
    result(era, id, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Value {
        json!([{"name": "overview"}, {"name": "top"}])
    }

    fn post(headers: &[(&str, &str)], body: Value) -> Step {
        let hs: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
        let get = move |n: &str| hs.iter().find(|(k, _)| *k == n.to_ascii_lowercase()).map(|(_, v)| v.clone());
        handle(&get, body.to_string().as_bytes(), &tools())
    }

    fn answer(s: Step) -> Out {
        match s {
            Step::Answer(o) => o,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn code(o: &Out) -> i64 {
        o.body.as_ref().unwrap()["error"]["code"].as_i64().unwrap_or(0)
    }

    fn meta() -> Value {
        json!({META_VERSION: MODERN, META_CAPS: {}, "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}})
    }

    fn modern(method: &str, name: Option<&str>, params: Value) -> Step {
        let mut p = params;
        p["_meta"] = meta();
        let mut h = vec![("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)];
        if let Some(n) = name {
            h.push(("Mcp-Name", n));
        }
        post(&h, json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": p}))
    }

    #[test]
    fn modern_discover_list_and_call() {
        let o = answer(modern("server/discover", None, json!({})));
        let r = &o.body.as_ref().unwrap()["result"];
        assert_eq!(o.status, 200);
        assert_eq!(r["supportedVersions"], json!(["2026-07-28", "2025-11-25", "2025-06-18"]));
        assert_eq!(
            (r["resultType"].clone(), r["cacheScope"].clone(), r["ttlMs"].clone()),
            (json!("complete"), json!("public"), json!(3_600_000))
        );
        assert_eq!(r["_meta"][META_SERVER]["name"], "millimetric");
        assert!(r["capabilities"]["tools"].is_object());
        let o = answer(modern("tools/list", None, json!({})));
        let r = &o.body.as_ref().unwrap()["result"];
        assert_eq!((r["tools"].clone(), r["resultType"].clone(), r["ttlMs"].clone()), (tools(), json!("complete"), json!(3_600_000)));
        match modern("tools/call", Some("top"), json!({"name": "top", "arguments": {"dimension": "event:page"}})) {
            Step::Call { id, era, name, arguments } => {
                assert_eq!((id, era, name.as_str()), (json!(7), Era::Modern(MODERN.into()), "top"));
                assert_eq!(arguments["dimension"], "event:page");
            }
            other => panic!("{other:?}"),
        }
        // Mcp-Name in the Base64 sentinel form is decoded before the comparison.
        assert!(matches!(modern("tools/call", Some("=?base64?dG9w?="), json!({"name": "top"})), Step::Call { .. }));
    }

    #[test]
    fn modern_headers_must_match_the_body() {
        // Mcp-Name differs, or is missing.
        let o = answer(modern("tools/call", Some("overview"), json!({"name": "top"})));
        assert_eq!((o.status, code(&o)), (400, HEADER_MISMATCH));
        assert!(o.text().contains("'overview' does not match body value 'top'"));
        assert_eq!(code(&answer(modern("tools/call", None, json!({"name": "top"})))), HEADER_MISMATCH);
        // Mcp-Method differs.
        let mut p = json!({});
        p["_meta"] = meta();
        let o = answer(post(
            &[("MCP-Protocol-Version", MODERN), ("Mcp-Method", "tools/call")],
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": p}),
        ));
        assert_eq!((o.status, code(&o)), (400, HEADER_MISMATCH));
        // Mcp-Method in the Base64 form, which is Mcp-Name's only.
        let o = answer(post(
            &[("MCP-Protocol-Version", MODERN), ("Mcp-Method", "=?base64?dG9vbHMvbGlzdA==?=")],
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": p}),
        ));
        assert_eq!((o.status, code(&o)), (400, HEADER_MISMATCH));
        // Mcp-Method missing.
        let o = answer(post(&[("MCP-Protocol-Version", MODERN)], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": p})));
        assert_eq!(code(&o), HEADER_MISMATCH);
        // The version header differs from _meta, or is missing.
        let o = answer(post(
            &[("MCP-Protocol-Version", "2025-11-25"), ("Mcp-Method", "tools/list")],
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": p}),
        ));
        assert_eq!((o.status, code(&o)), (400, HEADER_MISMATCH));
        let o = answer(post(&[("Mcp-Method", "tools/list")], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": p})));
        assert_eq!((o.status, code(&o)), (400, HEADER_MISMATCH));
        // Bad Base64 in Mcp-Name.
        assert_eq!(code(&answer(modern("tools/call", Some("=?base64?!!?="), json!({"name": "top"})))), HEADER_MISMATCH);
        // Review finding: a name that is not a string was compared with the header as "", so
        // the client was told of a header mismatch, not of its bad params.
        for name in [json!(5), json!(null), json!(["top"])] {
            let o = answer(modern("tools/call", Some("5"), json!({"name": name})));
            assert_eq!((o.status, code(&o)), (400, INVALID_PARAMS), "{name}");
        }
        assert_eq!(code(&answer(modern("tools/call", Some("top"), json!({})))), INVALID_PARAMS, "no name at all");
    }

    #[test]
    fn versions_are_negotiated() {
        // An unknown version in _meta (and the header): -32022 naming ours.
        let p = json!({"_meta": {META_VERSION: "1900-01-01", META_CAPS: {}}});
        let o = answer(post(
            &[("MCP-Protocol-Version", "1900-01-01"), ("Mcp-Method", "tools/list")],
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": p}),
        ));
        assert_eq!((o.status, code(&o)), (400, UNSUPPORTED_VERSION));
        assert_eq!(o.body.as_ref().unwrap()["error"]["data"], json!({"supported": SUPPORTED, "requested": "1900-01-01"}));
        // A legacy version in modern form is not a modern version we speak.
        let p = json!({"_meta": {META_VERSION: "2025-11-25", META_CAPS: {}}});
        let o = answer(post(
            &[("MCP-Protocol-Version", "2025-11-25"), ("Mcp-Method", "tools/list")],
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": p}),
        ));
        assert_eq!(code(&o), UNSUPPORTED_VERSION);
        // initialize: each legacy revision is echoed; anything else gets our latest.
        for (asked, got) in
            [("2025-11-25", "2025-11-25"), ("2025-06-18", "2025-06-18"), ("2025-03-26", "2025-11-25"), ("2026-07-28", "2025-11-25")]
        {
            let o = answer(post(
                &[],
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}),
            ));
            let r = &o.body.as_ref().unwrap()["result"];
            assert_eq!((o.status, r["protocolVersion"].as_str().unwrap()), (200, got), "asked {asked}");
            assert!(r["capabilities"]["tools"].is_object() && r["serverInfo"]["name"] == "millimetric");
            assert!(r.get("resultType").is_none(), "legacy results are as that revision defines them");
        }
        // Missing _meta fields in the modern form: -32602, 400.
        let o = answer(post(
            &[("MCP-Protocol-Version", MODERN), ("Mcp-Method", "tools/list")],
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {META_VERSION: MODERN}}}),
        ));
        assert_eq!((o.status, code(&o)), (400, INVALID_PARAMS));
        let o = answer(post(
            &[("MCP-Protocol-Version", MODERN), ("Mcp-Method", "tools/list")],
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        ));
        assert_eq!((o.status, code(&o)), (400, INVALID_PARAMS));
    }

    #[test]
    fn legacy_requests_after_initialize() {
        for v in LEGACY {
            let o = answer(post(
                &[("MCP-Protocol-Version", v), ("Mcp-Session-Id", "ignored")],
                json!({"jsonrpc": "2.0", "id": "a", "method": "tools/list"}),
            ));
            let r = &o.body.as_ref().unwrap()["result"];
            assert_eq!((o.status, r["tools"].clone()), (200, tools()));
            assert!(r.get("resultType").is_none() && r.get("ttlMs").is_none());
            let o = answer(post(&[("MCP-Protocol-Version", v)], json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})));
            assert_eq!(o.body.as_ref().unwrap()["result"], json!({}));
            match post(
                &[("MCP-Protocol-Version", v)],
                json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "overview"}}),
            ) {
                Step::Call { era, arguments, .. } => assert_eq!((era, arguments.len()), (Era::Legacy(v.into()), 0)),
                other => panic!("{other:?}"),
            }
        }
        // No version header, or one we do not speak.
        let o = answer(post(&[], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})));
        assert_eq!((o.status, code(&o)), (400, HEADER_MISMATCH));
        let o = answer(post(&[("MCP-Protocol-Version", "2024-11-05")], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})));
        assert_eq!((o.status, code(&o)), (400, UNSUPPORTED_VERSION));
        // server/discover is modern only; ping is legacy only.
        let o = answer(post(&[("MCP-Protocol-Version", "2025-11-25")], json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover"})));
        assert_eq!(code(&o), METHOD_NOT_FOUND);
        let o = answer(modern("ping", None, json!({})));
        assert_eq!((o.status, code(&o)), (404, METHOD_NOT_FOUND));
    }

    #[test]
    fn notifications_framing_and_unknowns() {
        // Notifications: 202, no body, in either era.
        for h in [vec![], vec![("MCP-Protocol-Version", "2025-06-18")], vec![("MCP-Protocol-Version", MODERN)]] {
            assert_eq!(answer(post(&h, json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))), Out::accepted());
        }
        assert_eq!(
            answer(post(&[], json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}))).body,
            None
        );
        assert_eq!(
            answer(post(&[("MCP-Protocol-Version", "1999-01-01")], json!({"jsonrpc": "2.0", "method": "notifications/initialized"})))
                .status,
            400
        );
        // Not JSON, a batch, not JSON-RPC, a response, a bad id.
        let hs = |_: &str| None;
        let o = answer(handle(&hs, b"{not json", &tools()));
        assert_eq!((o.status, code(&o), o.body.as_ref().unwrap()["id"].clone()), (400, PARSE_ERROR, Value::Null));
        let o = answer(post(&[], json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}])));
        assert_eq!((o.status, code(&o)), (400, INVALID_REQUEST));
        assert_eq!(code(&answer(post(&[], json!({"id": 1, "method": "tools/list"})))), INVALID_REQUEST);
        assert_eq!(code(&answer(post(&[], json!({"jsonrpc": "2.0", "id": 1, "result": {}})))), INVALID_REQUEST);
        assert_eq!(code(&answer(post(&[], json!({"jsonrpc": "2.0", "id": null, "method": "initialize"})))), INVALID_REQUEST);
        assert_eq!(code(&answer(post(&[], json!({"jsonrpc": "2.0", "id": 1.5, "method": "initialize"})))), INVALID_REQUEST);
        // An id that is not one (an object, a bool) is never echoed, whichever check refuses
        // the message: JSON-RPC 2.0 answers `null` when the id could not be read.
        for bad in [
            json!({"jsonrpc": "1.0", "id": {"x": 1}, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": true, "result": {}}),
            json!({"jsonrpc": "2.0", "id": [1], "method": "tools/list", "params": []}),
        ] {
            let o = answer(post(&[], bad.clone()));
            assert_eq!((o.status, o.body.as_ref().unwrap()["id"].clone()), (400, Value::Null), "{bad}");
        }
        // A valid id is still echoed with those errors.
        let o = answer(post(&[], json!({"jsonrpc": "2.0", "id": "a", "method": "tools/list", "params": []})));
        assert_eq!((code(&o), o.body.as_ref().unwrap()["id"].clone()), (INVALID_PARAMS, json!("a")));
        // Unknown method: modern 404 -32601; legacy -32601 in a 200.
        let o = answer(modern("resources/list", None, json!({})));
        assert_eq!((o.status, code(&o)), (404, METHOD_NOT_FOUND));
        assert_eq!(o.body.as_ref().unwrap()["id"], 7);
        let o = answer(post(&[("MCP-Protocol-Version", "2025-11-25")], json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/list"})));
        assert_eq!((o.status, code(&o)), (200, METHOD_NOT_FOUND));
        // Unknown tool: a protocol error (-32602), as server/tools.mdx says; bad arguments too.
        let o = answer(modern("tools/call", Some("nope"), json!({"name": "nope"})));
        assert_eq!((o.status, code(&o)), (400, INVALID_PARAMS));
        assert!(o.text().contains("Unknown tool: nope"));
        let o = answer(modern("tools/call", Some("top"), json!({"name": "top", "arguments": [1]})));
        assert_eq!(code(&o), INVALID_PARAMS);
    }

    #[test]
    fn tool_results_and_errors() {
        let ok = super::super::tools::ToolResult::Ok { structured: json!({"visitors": 3}), summary: "3 visitors.".into() };
        let o = tool_result(&Era::Modern(MODERN.into()), &json!(1), &ok);
        let r = &o.body.as_ref().unwrap()["result"];
        assert_eq!(
            (r["structuredContent"].clone(), r["isError"].clone(), r["content"][0]["text"].clone()),
            (json!({"visitors": 3}), json!(false), json!("3 visitors."))
        );
        assert_eq!(r["content"][1]["text"], "{\"visitors\":3}");
        assert_eq!(r["resultType"], "complete");
        let o = tool_result(
            &Era::Legacy("2025-06-18".into()),
            &json!(1),
            &super::super::tools::ToolResult::Error("Use a date_range such as \"7d\".".into()),
        );
        let r = &o.body.as_ref().unwrap()["result"];
        assert_eq!((o.status, r["isError"].clone()), (200, json!(true)));
        assert!(r.get("structuredContent").is_none());
        assert_eq!(decode_header("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(), Some("Hello, 世界"));
        assert_eq!(decode_header("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=").as_deref(), Some("=?base64?literal?="));
        assert_eq!(decode_header("us-west1").as_deref(), Some("us-west1"));
    }
}
