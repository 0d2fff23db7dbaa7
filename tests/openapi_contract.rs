//! docs/openapi.json stays true: its request examples pass the real validator and pipeline,
//! its error codes are exactly the ones the code can answer with, and its Event fields are
//! exactly the ones the decoder reads.

use millimetric_core::enrich::geo::Geo;
use millimetric_core::ingest::event::{parse_envelope, validate_event, EVENT_FIELDS, LIMITS};
use millimetric_core::ingest::pipeline::{build_row, RequestContext};
use millimetric_core::keys::{KeyKind, Principal};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn doc() -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")).unwrap()).unwrap()
}

#[test]
fn request_examples_are_accepted_by_the_real_code() {
    let d = doc();
    let examples = d["paths"]["/collect"]["post"]["requestBody"]["content"]["application/json"]["examples"].as_object().unwrap();
    assert!(examples.len() >= 3);
    for (name, ex) in examples {
        let kind = if ex["x-key-kind"] == "secret" { KeyKind::Secret } else { KeyKind::Publishable };
        let env = parse_envelope(ex["value"].to_string().as_bytes(), &LIMITS).unwrap_or_else(|e| panic!("example {name}: {e}"));
        let principal = Principal::new("p", kind);
        let ctx = RequestContext {
            // The real clock: an example must be accepted on the day a reader copies it.
            received_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
            user_agent: Some("Mozilla/5.0".into()),
            edge_geo: Geo::default(),
            id_secret: None,
        };
        for ev in env.events {
            let ev = validate_event(ev, kind == KeyKind::Secret, &LIMITS).unwrap_or_else(|e| panic!("example {name}: {e}"));
            build_row(&principal, ev, &ctx, &|_| None, &mut || "id".into()).unwrap_or_else(|e| panic!("example {name}: {e}"));
        }
    }
}

/// Error codes the source can produce: the first string literal passed to ApiError::new
/// (after the status) or ApiError::bad_request.
fn codes_in_source() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack: Vec<_> = ["core/src", "workers/adapters/src", "workers/edge/src", "tools"].iter().map(|d| root.join(d)).collect();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue; // fixtures beside the code (the warm-up's gzip body)
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // `bad(` is the query parser's shorthand for ApiError::bad_request.
            // `Self::new(` is ApiError's own constructors (method_not_allowed).
            for (call, skip_status) in
                [("ApiError::new(", true), ("Self::new(", true), ("ApiError::bad_request(", false), (" bad(", false), ("(bad(", false)]
            {
                for (at, _) in text.match_indices(call) {
                    let mut rest = text[at + call.len()..].trim_start();
                    if skip_status {
                        rest = rest[rest.find(',').unwrap() + 1..].trim_start();
                    }
                    if let Some(lit) = rest.strip_prefix('"') {
                        let code = &lit[..lit.find('"').unwrap()];
                        if code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                            codes.insert(code.to_string());
                        }
                    }
                }
            }
        }
    }
    codes
}

#[test]
fn error_codes_match_the_source_both_ways() {
    let d = doc();
    let documented: BTreeSet<String> =
        d["components"]["schemas"]["ErrorCode"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let used = codes_in_source();
    assert!(used.len() > 20, "the source scan found too little: {used:?}");
    let undocumented: Vec<_> = used.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&used).collect();
    assert!(undocumented.is_empty(), "codes the API can answer with but the document lacks: {undocumented:?}");
    assert!(stale.is_empty(), "codes documented but never produced: {stale:?}");
    // every error example uses a documented code
    for (status, resp) in d["paths"]["/collect"]["post"]["responses"].as_object().unwrap() {
        if let Some(exs) = resp["content"]["application/json"]["examples"].as_object() {
            for ex in exs.values() {
                let code = ex["value"]["error"]["code"].as_str().or(ex["value"]["rejected"][0]["code"].as_str());
                if let Some(code) = code {
                    assert!(documented.contains(code), "{status} example uses unknown code {code}");
                }
            }
        }
    }
}

#[test]
fn event_fields_match_the_decoder() {
    let d = doc();
    let documented: BTreeSet<&str> =
        d["components"]["schemas"]["Event"]["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let read: BTreeSet<&str> = EVENT_FIELDS.iter().copied().collect();
    assert_eq!(documented, read);
}

/// Review finding: the document's one server was the edge Worker's, so a generated client sent
/// `/v1/query` there (404), and `POST /mcp` was missing. Every path the read Worker routes is
/// in the document, served from the read Worker; every other path from the edge.
#[test]
fn each_path_names_the_worker_that_serves_it() {
    let d = doc();
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("workers/read/src/lib.rs")).unwrap();
    let mut read: BTreeSet<String> = BTreeSet::new();
    for piece in source.split("(Method::").skip(1) {
        let Some(path) = piece.split('"').nth(1).filter(|p| p.starts_with('/')) else { continue };
        read.insert(path.to_string());
    }
    read.extend(["/v1/funnel", "/v1/attribution", "/v1/retention", "/v1/paths"].map(String::from)); // conversions::Kind::from_path
    read.remove("/health"); // both Workers answer it
    assert!(read.len() >= 8 && read.contains("/mcp"), "the route scan found {read:?}");
    let servers = |path: &str| -> Vec<String> {
        let own = &d["paths"][path]["servers"];
        let list = if own.is_array() { own } else { &d["servers"] };
        list.as_array().unwrap().iter().map(|s| s["url"].as_str().unwrap().to_string()).collect()
    };
    for path in &read {
        assert!(d["paths"].get(path).is_some(), "{path} is served by the read Worker but not in docs/openapi.json");
        assert_eq!(servers(path), ["http://127.0.0.1:8788"], "{path}");
    }
    for path in d["paths"].as_object().unwrap().keys().filter(|p| !read.contains(*p) && *p != "/health") {
        assert_eq!(servers(path), ["http://127.0.0.1:8787"], "{path}");
    }
}
