//! What one report to the error monitor holds, and its envelope. Its fields are the whole of
//! it: a kind, a machine-readable code, a route template, the release, the environment and a
//! count. Nothing from a request or an event can reach it: codes and routes are checked
//! against what they may be, and a message is built from them alone.

use crate::privacy::audit::rfc3339;
use serde_json::json;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An answer with a 5xx status (the error's code, e.g. `clickhouse_unavailable`).
    ServerError,
    /// A handler that failed before it could answer (workerd answers 500 itself).
    Failure,
    /// Queue messages that could not be stored and went to the dead-letter store.
    DeadLetter,
    /// A condition the Workers log as `ALARM {code}` (credentials refused, audit not written).
    Alarm,
    /// A Rust panic: the request or job it happened in failed (workerd answers 500 and the
    /// isolate's wasm is started afresh). The panic's message is never sent: it may quote input.
    Panic,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::ServerError => "server_error",
            Kind::Failure => "failure",
            Kind::DeadLetter => "dead_letter",
            Kind::Alarm => "alarm",
            Kind::Panic => "panic",
        }
    }
}

/// One report: `count` occurrences of `kind`/`code` on `route` since the last one sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: Kind,
    pub code: String,
    pub route: &'static str,
    pub count: u64,
}

impl Report {
    /// `code` is kept only when it is what codes are (lower-case letters, digits, `_`, at most
    /// 64), else `other`: an error's code never carries what a client sent.
    pub fn new(kind: Kind, code: &str, route: &'static str, count: u64) -> Report {
        let ok = (1..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        Report { kind, code: if ok { code.to_string() } else { "other".to_string() }, route, count }
    }

    /// What throttling counts by.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.kind.name(), self.code, self.route)
    }
}

/// The routes a report may name: a request's path as its template (`/visitors/{mm_aid}`, never
/// the visitor id itself), a vendor's ingest path by its protocol, anything else as `other`.
pub fn route_of(path: &str) -> &'static str {
    const EXACT: &[&str] = &[
        "/collect",
        "/mm.js",
        "/health",
        "/v1/query",
        "/v1/realtime",
        "/v1/audit",
        "/v1/usage",
        "/v1/exports",
        "/mcp",
        "/admin/usage",
        "/admin/keys",
        "/admin/dead-letters",
        "/admin/dead-letters/replay",
        "/admin/config-check",
        "/admin/meter",
        "queue:events",
        "queue:exports",
        "queue:dead_letters",
    ];
    if let Some(p) = EXACT.iter().find(|p| **p == path) {
        return p;
    }
    if let Some(kind) = crate::conversions::Kind::from_path(path) {
        return kind.path();
    }
    if let Some(endpoint) = crate::compat::route(path) {
        return endpoint.name();
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["visitors", _] => "/visitors/{mm_aid}",
        ["visitors", _, "events"] => "/visitors/{mm_aid}/events",
        ["admin", "keys", _] => "/admin/keys/{hash}",
        ["admin", "keys", _, "rotate"] => "/admin/keys/{hash}/rotate",
        ["admin", "keys", _, "revoke"] => "/admin/keys/{hash}/revoke",
        ["admin", "projects", _] => "/admin/projects/{id}",
        ["admin", "projects", _, "closure"] => "/admin/projects/{id}/closure",
        ["admin", "projects", _, "quota"] => "/admin/projects/{id}/quota",
        ["admin", "projects", _, "exports"] => "/admin/projects/{id}/exports",
        ["v1", "exports", _] => "/v1/exports/{id}",
        ["v1", "exports", _, "resume"] => "/v1/exports/{id}/resume",
        ["v1", "exports", _, "parts", ..] => "/v1/exports/{id}/parts/{name}",
        _ => "other",
    }
}

/// The code of a log line `ALARM {code}: ...`.
pub fn alarm_code(line: &str) -> Option<&str> {
    let code = line.strip_prefix("ALARM ")?.split(':').next()?;
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(code)
}

/// Who sends it, for the envelope and the `X-Sentry-Auth` header.
pub const CLIENT: &str = concat!("millimetric/", env!("CARGO_PKG_VERSION"));

/// The envelope (`application/x-sentry-envelope`): its header, one `event` item's header, the
/// event. `event_id` is 32 hex digits (random, from the caller); `release` and `environment`
/// name the deployment.
pub fn envelope(r: &Report, event_id: &str, now_ms: i64, dsn: &str, release: &str, environment: &str) -> String {
    let level = if r.kind == Kind::Alarm || r.kind == Kind::DeadLetter { "warning" } else { "error" };
    let times = if r.count == 1 { String::new() } else { format!(" ({} times)", r.count) };
    let event = json!({
        "event_id": event_id,
        "timestamp": now_ms as f64 / 1000.0,
        "platform": "other",
        "level": level,
        "logger": "millimetric",
        "release": release,
        "environment": environment,
        "message": {"formatted": format!("{}: {} on {}{times}", r.kind.name(), r.code, r.route)},
        "tags": {"kind": r.kind.name(), "code": r.code, "route": r.route},
        "fingerprint": [r.kind.name(), r.code, r.route],
        "extra": {"count": r.count},
        "sdk": {"name": "millimetric", "version": env!("CARGO_PKG_VERSION")},
    })
    .to_string();
    let header = json!({"event_id": event_id, "sent_at": rfc3339(now_ms), "dsn": dsn, "sdk": {"name": "millimetric", "version": env!("CARGO_PKG_VERSION")}});
    let item = json!({"type": "event", "length": event.len(), "content_type": "application/json"});
    format!("{header}\n{item}\n{event}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_holds_its_code_and_route_template_only() {
        let r = Report::new(Kind::ServerError, "clickhouse_unavailable", route_of("/visitors/jane%40example.com/events"), 3);
        let env = envelope(&r, &"a".repeat(32), 1_796_032_800_000, "https://k@h/1", "edge@abc", "production");
        let lines: Vec<serde_json::Value> = env.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["event_id"], "a".repeat(32));
        assert_eq!(lines[1]["type"], "event");
        assert_eq!(lines[1]["length"].as_u64().unwrap() as usize, env.lines().nth(2).unwrap().len());
        assert_eq!(lines[2]["tags"]["route"], "/visitors/{mm_aid}/events");
        assert_eq!(lines[2]["message"]["formatted"], "server_error: clickhouse_unavailable on /visitors/{mm_aid}/events (3 times)");
        assert_eq!((lines[2]["release"].as_str(), lines[2]["extra"]["count"].as_u64()), (Some("edge@abc"), Some(3)));
        assert!(!env.contains("jane"), "{env}");
    }

    #[test]
    fn codes_that_are_not_codes_and_unknown_paths_are_not_sent() {
        for bad in ["jane@example.com", "Invalid value \"x\"", "", &"a".repeat(65), "sk_live_Secret"] {
            assert_eq!(Report::new(Kind::Alarm, bad, "other", 1).code, "other", "{bad}");
        }
        assert_eq!(Report::new(Kind::Alarm, "clickhouse_auth_failed", "other", 1).code, "clickhouse_auth_failed");
        assert_eq!(alarm_code("ALARM clickhouse_auth_failed: refused (code 516)"), Some("clickhouse_auth_failed"));
        assert_eq!(alarm_code("batch writer: dead-lettering"), None);
        for (path, route) in [
            ("/collect", "/collect"),
            ("/visitors/v1", "/visitors/{mm_aid}"),
            ("/admin/keys/0123abcd/rotate", "/admin/keys/{hash}/rotate"),
            ("/admin/projects/shop/closure", "/admin/projects/{id}/closure"),
            ("/collect/81.2.69.142", "other"),
            ("/jane@example.com", "other"),
        ] {
            assert_eq!(route_of(path), route, "{path}");
        }
    }

    #[test]
    fn every_route_the_workers_serve_is_named() {
        for k in crate::conversions::Kind::ALL {
            let path = format!("/v1/{}", k.name());
            assert_eq!(route_of(&path), path, "a conversion query");
        }
        assert_eq!(route_of("/admin/meter"), "/admin/meter");
        // The vendors' ingest paths by protocol (a PostHog token in a path is never named).
        for (path, route) in [
            ("/v1/track", "segment"),
            ("/v1/b", "segment"),
            ("/v1/m", "segment (ignored)"),
            ("/i/v0/e/", "posthog"),
            ("/capture", "posthog"),
            ("/engage", "posthog (ignored)"),
            ("/decide", "posthog flags"),
            ("/array/phc_token123/config.js", "posthog flags"),
            ("/api/event", "plausible"),
        ] {
            assert_eq!(route_of(path), route, "{path}");
        }
    }
}
