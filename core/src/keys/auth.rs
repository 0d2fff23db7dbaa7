//! Who may do what with which credential: one policy for every route that takes a key, and
//! one refusal (status, code, sentence) for each case. Pure: the Workers' one adapter
//! (`adapters::auth::authenticate`) parses the credential, refuses a flood of unknown keys per
//! address before any lookup, looks the key up, and asks here. The admin endpoints take the
//! deployment's ADMIN_TOKEN instead of a key (`admin`).
//!
//! | route                      | pk_live_                 | sk_live_            | rk_live_              |
//! |----------------------------|--------------------------|---------------------|-----------------------|
//! | Ingest (`POST /collect`)   | from allowed origins     | never from a browser| 403 read_only_key     |
//! | Query (Stats API, MCP)     | 403 publishable_key_cannot_read | never from a browser | yes        |
//! | VisitorExport              | 403 secret_key_required  | never from a browser| yes                   |
//! | VisitorErasure             | 403 secret_key_required  | never from a browser| 403 read_only_key     |
//! | Audit (`GET /v1/audit`)    | 403 secret_key_required  | never from a browser| 403 secret_key_required |
//!
//! Every route: no key 401 missing_key, no known prefix 401 malformed_key, no record (or one of
//! another kind) 401 unknown_key, revoked or rotated out past its grace 401 revoked_key, an
//! sk_live_ key with any Origin 403 secret_key_in_browser.

use crate::error::ApiError;
use crate::keys::{origin_allowed, origin_present, KeyKind, KeyRecord, Principal, RETENTION_CHOICES};
use sha2::{Digest, Sha256};

/// What a request asks to do with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Send events (`POST /collect` and the ingest protocols).
    Ingest,
    /// Read the project's numbers: `POST /v1/query`, `GET /v1/realtime`.
    Query,
    /// The same numbers for agents, `POST /mcp`: never from a web page (below).
    Mcp,
    /// `GET /visitors/{mm_aid}/events`.
    VisitorExport,
    /// `DELETE /visitors/{mm_aid}`.
    VisitorErasure,
    /// `GET /v1/audit`.
    Audit,
    /// A project's whole export: `/v1/exports`.
    ProjectExport,
}

impl Route {
    /// The key this route wants, as the refusals name it.
    fn wants(self) -> &'static str {
        match self {
            Route::Ingest => "a pk_live_ key (browser) or an sk_live_ key (server)",
            Route::Query | Route::Mcp => "the project's rk_live_ (read-only) key",
            Route::VisitorExport => "the project's sk_live_ key or its rk_live_ key",
            Route::VisitorErasure | Route::Audit | Route::ProjectExport => "the project's sk_live_ key",
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 9110: the scheme is
/// case-insensitive, `bearer` and `BEARER` too, and one or more spaces follow it; white space
/// around the header's value is not part of it). None for any other scheme, or no token.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim_start_matches(' ');
    let one_token = !token.is_empty() && !token.contains(char::is_whitespace);
    (scheme.eq_ignore_ascii_case("bearer") && one_token).then_some(token)
}

/// The key a request presents: its `Authorization: Bearer` token, else the key its body
/// carries (an SDK's write key). A header that is there but of another form (two keys, another
/// scheme, and no key in the body) is refused as a malformed key, not taken for a missing one.
pub fn presented<'a>(route: Route, authorization: Option<&'a str>, body_key: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match (bearer(authorization), body_key) {
        (Some(token), _) => Ok(Some(token)),
        (None, Some(key)) => Ok(Some(key)),
        (None, None) if authorization.is_some_and(|h| !h.trim().is_empty() && !h.trim().eq_ignore_ascii_case("bearer")) => {
            Err(ApiError::new(
                401,
                "malformed_key",
                format!("The Authorization header is not `Bearer <key>` with one key. Send {} that way.", route.wants()),
            ))
        }
        (None, None) => Ok(None),
    }
}

/// The user of an `Authorization: Basic` header: Segment's SDKs send the write key so, with
/// an empty password. None for any other scheme, or what does not decode.
pub fn basic_user(authorization: Option<&str>) -> Option<String> {
    let (scheme, encoded) = authorization?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = crate::base64_text::decode(encoded.as_bytes())?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next().unwrap_or_default().trim();
    (!user.is_empty()).then(|| user.to_string())
}

/// Before any lookup: the kind the raw key's prefix claims, if that kind may use `route` at all.
pub fn claim(route: Route, raw_key: Option<&str>) -> Result<KeyKind, ApiError> {
    let raw = raw_key.map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| missing_key(route))?;
    let kind = KeyKind::from_prefix(raw).ok_or_else(|| {
        ApiError::new(401, "malformed_key", format!("The API key is not of a known form. This endpoint takes {}.", route.wants()))
    })?;
    may_use(route, kind)?;
    Ok(kind)
}

/// Whether keys of `kind` may use `route` at all: the table above.
fn may_use(route: Route, kind: KeyKind) -> Result<(), ApiError> {
    match (route, kind) {
        (_, KeyKind::Secret)
        | (Route::Ingest, KeyKind::Publishable)
        | (Route::Query | Route::Mcp | Route::VisitorExport, KeyKind::ReadOnly) => Ok(()),
        (Route::Ingest | Route::VisitorErasure, KeyKind::ReadOnly) => Err(ApiError::new(
            403,
            "read_only_key",
            format!("rk_live_ keys are read-only: they cannot send events or erase them. Use {}.", route.wants()),
        )),
        (Route::Audit, KeyKind::ReadOnly) => {
            Err(ApiError::new(403, "secret_key_required", "The audit log is read with the project's sk_live_ key, from a server."))
        }
        (Route::ProjectExport, KeyKind::ReadOnly) => Err(ApiError::new(
            403,
            "secret_key_required",
            "A project's export holds every raw event: start and download it with the project's sk_live_ key, from a server.",
        )),
        (Route::Query | Route::Mcp, KeyKind::Publishable) => Err(ApiError::new(
            403,
            "publishable_key_cannot_read",
            "pk_live_ keys are public and only send events. Read with the project's rk_live_ (read-only) key, from a server or an agent.",
        )),
        (Route::VisitorExport | Route::VisitorErasure | Route::Audit | Route::ProjectExport, KeyKind::Publishable) => Err(ApiError::new(
            403,
            "secret_key_required",
            format!("pk_live_ keys are public and only send events. This endpoint takes {}, from a server.", route.wants()),
        )),
    }
}

fn missing_key(route: Route) -> ApiError {
    let how = match route {
        Route::Ingest => "Send it as `Authorization: Bearer <key>` or as the `key` field of the body.".to_string(),
        _ => format!("Send {} as `Authorization: Bearer <key>`.", route.wants()),
    };
    ApiError::new(401, "missing_key", format!("No API key was sent. {how}"))
}

/// Once the key store has answered (`record`: None for an unknown key): who is asking. `origin`
/// is the request's Origin header, which a browser sends.
pub fn authorize(route: Route, claimed: KeyKind, record: Option<KeyRecord>, origin: Option<&str>) -> Result<Principal, ApiError> {
    let record = known_record(claimed, record)?;
    may_use(route, record.kind)?;
    // `null` is an origin like any other here: it reaches the decision.
    let origin = origin.map(str::trim).filter(|o| !o.is_empty());
    if record.kind == KeyKind::Secret && origin_present(origin) {
        return Err(secret_key_in_browser());
    }
    // The MCP transport requires a request from a web page (any Origin: a DNS-rebinding page
    // names this server's own host) to be refused with 403; agents send none.
    if route == Route::Mcp && origin_present(origin) {
        return Err(ApiError::new(
            403,
            "browser_origin_refused",
            "The MCP endpoint does not take requests from web pages (this one sent an Origin header). Call it from an agent or a server.",
        ));
    }
    let cors_origin = match (route, record.kind) {
        (Route::Ingest, KeyKind::Publishable) => publishable_origin(&record, origin)?,
        _ => None,
    };
    Ok(Principal {
        project_id: record.project_id,
        kind: record.kind,
        retention_days: if RETENTION_CHOICES.contains(&record.retention_days) { record.retention_days } else { 90 },
        hash_routing: record.hash_routing,
        cors_origin,
        events_per_minute: record.events_per_minute,
        timezone: record.timezone,
    })
}

/// The origin a publishable key's events may come from, echoed in CORS headers; None for no
/// Origin (a server or tool using the public key: the key is public anyway, and browsers always
/// send Origin on cross-origin POSTs).
fn publishable_origin(record: &KeyRecord, origin: Option<&str>) -> Result<Option<String>, ApiError> {
    match origin {
        None => Ok(None),
        Some("null") if record.allow_null_origin => Ok(Some("null".to_string())),
        Some("null") => Err(ApiError::new(
            403,
            "null_origin_not_allowed",
            "This request has `Origin: null` (a sandboxed iframe, a file:// page or a privacy redirect), which the pk_live_ key does not accept. Send from an allowed origin, or set `allow_null_origin` in the project's key record.",
        )),
        Some(o) if origin_allowed(&record.allowed_origins, o) => Ok(Some(o.to_string())),
        Some(_) => Err(ApiError::new(
            403,
            "origin_not_allowed",
            "This page's origin is not allowed for the pk_live_ key. Add it to the project's allowed origins.",
        )),
    }
}

/// The key's record if it is usable at all: known, not revoked, and of the kind its prefix claims.
pub fn known_record(claimed: KeyKind, record: Option<KeyRecord>) -> Result<KeyRecord, ApiError> {
    let record = record.ok_or_else(|| {
        ApiError::new(401, "unknown_key", "The API key is not known. Check that you copied it whole, and that it belongs to this project.")
    })?;
    if record.revoked {
        return Err(ApiError::new(401, "revoked_key", "The API key was revoked. Create a new key for this project and use that."));
    }
    if record.kind != claimed {
        // A record whose kind disagrees with the prefix is treated as unknown: never guess.
        return Err(ApiError::new(401, "unknown_key", "The API key is not known. Check that you copied it whole."));
    }
    Ok(record)
}

/// The `WWW-Authenticate` challenge that goes with a refusal, as an OAuth resource server
/// gives it (RFC 6750 §3): the bare challenge when no Bearer token came (no credential, or one
/// in another scheme: §3.1 gives no error code then), `invalid_token` for a token refused,
/// `insufficient_scope` for a key of a kind that may not read. Other refusals (a key sent from
/// a browser) are not about the token: none.
pub fn challenge(e: &ApiError, authorization: Option<&str>) -> Option<String> {
    const BARE: &str = r#"Bearer realm="millimetric""#;
    match (e.status, e.code) {
        (401, "missing_key") => Some(BARE.to_string()),
        (401, _) if bearer(authorization).is_none() => Some(BARE.to_string()),
        (401, code) => Some(format!(r#"{BARE}, error="invalid_token", error_description="{code}""#)),
        (403, code @ "publishable_key_cannot_read") => Some(format!(r#"{BARE}, error="insufficient_scope", error_description="{code}""#)),
        _ => None,
    }
}

/// A secret key arrived with an Origin header: a browser has it, so it is exposed.
pub fn secret_key_in_browser() -> ApiError {
    ApiError::new(
        403,
        "secret_key_in_browser",
        "A secret sk_live_ key was sent from a browser, so it is exposed: rotate it now, and use a pk_live_ key in browser code.",
    )
}

/// The admin endpoints: the request's Bearer token equals the deployment's ADMIN_TOKEN (set and
/// not empty). Compared in constant time, so the answer's timing says nothing about how much of
/// a guess was right.
pub fn admin(token: Option<&str>, authorization: Option<&str>) -> Result<(), ApiError> {
    let expected = token.filter(|t| !t.is_empty());
    let given = bearer(authorization);
    match (expected, given) {
        (Some(e), Some(g)) if constant_time_eq(e.as_bytes(), g.as_bytes()) => Ok(()),
        _ => Err(ApiError::new(401, "admin_token_required", "Send the ADMIN_TOKEN as a Bearer token.")),
    }
}

/// Equal bytes? Both sides are hashed first, so the time taken depends on neither the
/// position of the first difference nor (beyond hashing) the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding: a Basic credential was answered `error="invalid_token"`, and a secret key
    /// sent from a page `error="insufficient_scope"`, which OAuth clients read as "ask again
    /// for more scope".
    #[test]
    fn challenges_say_what_was_wrong_with_the_token() {
        let bare = Some(r#"Bearer realm="millimetric""#.to_string());
        let e = |status, code| ApiError::new(status, code, "x");
        assert_eq!(challenge(&e(401, "missing_key"), None), bare);
        assert_eq!(challenge(&e(401, "malformed_key"), Some("Basic Zm9vOg==")), bare, "another scheme: no error code");
        assert_eq!(
            challenge(&e(401, "unknown_key"), Some("Bearer rk_live_x")).as_deref(),
            Some(r#"Bearer realm="millimetric", error="invalid_token", error_description="unknown_key""#)
        );
        assert!(challenge(&e(403, "publishable_key_cannot_read"), Some("Bearer pk_live_x"))
            .unwrap()
            .contains(r#"error="insufficient_scope""#));
        assert_eq!(challenge(&secret_key_in_browser(), Some("Bearer sk_live_x")), None);
        assert_eq!(challenge(&e(403, "browser_origin_refused"), Some("Bearer rk_live_x")), None);
        assert_eq!(challenge(&e(429, "rate_limited"), Some("Bearer rk_live_x")), None);
    }

    fn rec(kind: KeyKind) -> KeyRecord {
        KeyRecord {
            allowed_origins: vec!["https://example.com".into(), "https://*.example.org".into()],
            retention_days: 30,
            ..KeyRecord::new("proj_1", kind)
        }
    }

    #[test]
    fn basic_auth_gives_segments_write_key() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(basic_user(Some(&format!("Basic {}", b64("sk_live_x:")))).as_deref(), Some("sk_live_x"));
        assert_eq!(basic_user(Some(&format!("basic  {}", b64("pk_live_y:ignored")))).as_deref(), Some("pk_live_y"));
        for h in [format!("Bearer {}", b64("sk_live_x:")), "Basic %%%".into(), format!("Basic {}", b64(":pw"))] {
            assert_eq!(basic_user(Some(&h)), None, "{h}");
        }
    }

    /// The ingest decision as the route table has it.
    fn ingest(claimed: KeyKind, record: Option<KeyRecord>, origin: Option<&str>) -> Result<Principal, ApiError> {
        authorize(Route::Ingest, claimed, record, origin)
    }

    const ROUTES: [Route; 6] = [Route::Ingest, Route::Query, Route::Mcp, Route::VisitorExport, Route::VisitorErasure, Route::Audit];

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_trimmed() {
        for h in ["Bearer sk_live_a1", "bearer sk_live_a1", "BEARER  sk_live_a1 ", " Bearer sk_live_a1"] {
            assert_eq!(bearer(Some(h)), Some("sk_live_a1"), "{h:?}");
        }
        for h in [
            "Basic sk_live_a1",
            "Bearer",
            "Bearer   ",
            "sk_live_a1",
            "Bearersk_live_a1",
            "Bearer\tsk_live_a1",
            "Bearer \tsk_live_a1",
            "Bearer sk_live_a1 x",
            "",
        ] {
            assert_eq!(bearer(Some(h)), None, "{h:?}");
        }
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn each_route_takes_the_kinds_of_the_table() {
        let code = |route, raw| claim(route, Some(raw)).err().map(|e| (e.status, e.code));
        let want = [
            (Route::Ingest, [None, None, Some((403, "read_only_key"))]),
            (Route::Query, [Some((403, "publishable_key_cannot_read")), None, None]),
            (Route::Mcp, [Some((403, "publishable_key_cannot_read")), None, None]),
            (Route::VisitorExport, [Some((403, "secret_key_required")), None, None]),
            (Route::VisitorErasure, [Some((403, "secret_key_required")), None, Some((403, "read_only_key"))]),
            (Route::Audit, [Some((403, "secret_key_required")), None, Some((403, "secret_key_required"))]),
        ];
        for (route, [pk, sk, rk]) in want {
            assert_eq!([code(route, "pk_live_a1"), code(route, "sk_live_a1"), code(route, "rk_live_a1")], [pk, sk, rk], "{route:?}");
        }
    }

    #[test]
    fn every_route_refuses_missing_malformed_unknown_revoked_and_exposed_keys_alike() {
        for route in ROUTES {
            assert_eq!(claim(route, None).unwrap_err().code, "missing_key");
            assert_eq!(claim(route, Some("  ")).unwrap_err().code, "missing_key");
            assert_eq!(claim(route, Some("hello")).unwrap_err().code, "malformed_key");
            assert_eq!(authorize(route, KeyKind::Secret, None, None).unwrap_err().code, "unknown_key");
            let revoked = KeyRecord { revoked: true, ..rec(KeyKind::Secret) };
            assert_eq!(authorize(route, KeyKind::Secret, Some(revoked), None).unwrap_err().code, "revoked_key");
            assert_eq!(authorize(route, KeyKind::Secret, Some(rec(KeyKind::Publishable)), None).unwrap_err().code, "unknown_key");
            let e = authorize(route, KeyKind::Secret, Some(rec(KeyKind::Secret)), Some("https://example.com")).unwrap_err();
            assert_eq!((e.status, e.code), (403, "secret_key_in_browser"), "{route:?}");
            assert!(e.message.contains("rotate"));
            let p = authorize(route, KeyKind::Secret, Some(rec(KeyKind::Secret)), None).unwrap();
            assert_eq!((p.project_id.as_str(), p.kind), ("proj_1", KeyKind::Secret));
        }
    }

    /// The MCP endpoint answered a web page (its Origin) with the project's numbers: the
    /// transport requires 403, and a rebinding page's Origin names the server itself.
    #[test]
    fn mcp_refuses_every_web_page() {
        for origin in ["https://elsewhere.example", "null", "http://127.0.0.1:8788"] {
            let e = authorize(Route::Mcp, KeyKind::ReadOnly, Some(rec(KeyKind::ReadOnly)), Some(origin)).unwrap_err();
            assert_eq!((e.status, e.code), (403, "browser_origin_refused"), "{origin}");
        }
        assert!(authorize(Route::Mcp, KeyKind::ReadOnly, Some(rec(KeyKind::ReadOnly)), None).is_ok(), "agents send no Origin");
        assert!(authorize(Route::Query, KeyKind::ReadOnly, Some(rec(KeyKind::ReadOnly)), Some("https://elsewhere.example")).is_ok());
    }

    #[test]
    fn read_keys_carry_the_project_time_zone_and_may_come_from_a_browser() {
        let r = KeyRecord { timezone: Some("Europe/Berlin".into()), ..rec(KeyKind::ReadOnly) };
        let p = authorize(Route::Query, KeyKind::ReadOnly, Some(r), Some("https://elsewhere.example")).unwrap();
        assert_eq!((p.project_id.as_str(), p.timezone.as_deref(), p.cors_origin), ("proj_1", Some("Europe/Berlin"), None));
    }

    #[test]
    fn the_admin_token_is_a_bearer_token_equal_to_the_set_one() {
        let t = Some("s3cret-admin-token");
        assert!(admin(t, Some("Bearer s3cret-admin-token")).is_ok());
        assert!(admin(t, Some("bearer s3cret-admin-token")).is_ok());
        assert!(admin(t, Some("Bearer s3cret-admin-toke")).is_err());
        assert!(admin(t, Some("Bearer s3cret-admin-token x")).is_err());
        assert!(admin(t, Some("Bearer\ts3cret-admin-token")).is_err());
        assert!(admin(t, Some("s3cret-admin-token")).is_err());
        assert!(admin(t, Some("Basic s3cret-admin-token")).is_err());
        assert_eq!(admin(t, None).unwrap_err().code, "admin_token_required");
        // No token configured: nobody, not even an empty bearer.
        assert!(admin(None, Some("Bearer ")).is_err());
        assert!(admin(Some(""), Some("Bearer ")).is_err());
    }

    /// Both steps, as the adapter takes them: the prefix, then the record.
    fn check(route: Route, raw_key: Option<&str>, record: Option<KeyRecord>, origin: Option<&str>) -> Result<String, ApiError> {
        Ok(authorize(route, claim(route, raw_key)?, record, origin)?.project_id)
    }

    #[test]
    fn only_server_keys_reach_visitors_and_only_secret_keys_erase() {
        let record = |kind| Some(KeyRecord::new("proj_a", kind));
        let (export, erase) = (Route::VisitorExport, Route::VisitorErasure);
        assert_eq!(check(erase, Some("sk_live_x"), record(KeyKind::Secret), None).unwrap(), "proj_a");
        assert_eq!(check(export, Some("sk_live_x"), record(KeyKind::Secret), None).unwrap(), "proj_a");
        assert_eq!(check(export, Some("rk_live_x"), record(KeyKind::ReadOnly), None).unwrap(), "proj_a");
        let code = |a, k: &str, r, o| check(a, Some(k), r, o).unwrap_err().code;
        assert_eq!(code(erase, "rk_live_x", record(KeyKind::ReadOnly), None), "read_only_key");
        assert_eq!(code(export, "pk_live_x", record(KeyKind::Publishable), None), "secret_key_required");
        assert_eq!(code(erase, "pk_live_x", record(KeyKind::Publishable), None), "secret_key_required");
        assert_eq!(code(erase, "sk_live_x", record(KeyKind::Secret), Some("https://a.com")), "secret_key_in_browser");
        // `Origin: null` is a browser too (a sandboxed iframe, a file:// page)
        assert_eq!(code(erase, "sk_live_x", record(KeyKind::Secret), Some("null")), "secret_key_in_browser");
        assert_eq!(code(export, "sk_live_x", record(KeyKind::Secret), Some("null")), "secret_key_in_browser");
        assert_eq!(check(export, Some("sk_live_x"), record(KeyKind::Secret), Some("")).unwrap(), "proj_a");
        assert_eq!(code(erase, "sk_live_x", None, None), "unknown_key");
        assert_eq!(code(erase, "sk_live_x", record(KeyKind::ReadOnly), None), "unknown_key", "kind must match the record");
        let revoked = record(KeyKind::Secret).map(|r| KeyRecord { revoked: true, ..r });
        assert_eq!(code(erase, "sk_live_x", revoked, None), "revoked_key");
        assert_eq!(check(erase, None, None, None).unwrap_err().code, "missing_key");
        assert_eq!(code(erase, "live_x", None, None), "malformed_key");
    }

    #[test]
    fn a_record_of_a_kind_the_route_refuses_is_refused_even_past_the_prefix() {
        let e = ingest(KeyKind::ReadOnly, Some(rec(KeyKind::ReadOnly)), None).unwrap_err();
        assert_eq!(e.code, "read_only_key");
        let e = authorize(Route::Audit, KeyKind::ReadOnly, Some(rec(KeyKind::ReadOnly)), None).unwrap_err();
        assert_eq!(e.code, "secret_key_required");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    /// A header that is there but not `Bearer <key>` is a key sent wrongly, not no key: the
    /// answer points at the header.
    #[test]
    fn an_authorization_header_of_another_form_is_a_malformed_key() {
        for header in ["Bearer rk_live_a rk_live_b", "Bearer a, Bearer b", "Token rk_live_x"] {
            let e = presented(Route::Query, Some(header), None).unwrap_err();
            assert_eq!((e.status, e.code), (401, "malformed_key"), "{header}");
            assert!(e.message.contains("Bearer <key>"), "{e}");
        }
        assert_eq!(presented(Route::Query, Some("Bearer rk_live_a"), None).unwrap(), Some("rk_live_a"));
        assert_eq!(presented(Route::Query, None, None).unwrap(), None, "no header: missing, as claim says");
        assert_eq!(presented(Route::Query, Some("  "), None).unwrap(), None);
        // `Bearer` with no token (an unset variable in a client's config) sent no key: missing,
        // so an MCP client still meets the challenge that asks for one.
        assert_eq!(presented(Route::Mcp, Some("Bearer "), None).unwrap(), None);
        assert_eq!(presented(Route::Mcp, Some("bearer"), None).unwrap(), None);
        // An SDK's write key in the body (Segment's Basic header carries it too) stands.
        assert_eq!(presented(Route::Ingest, Some("Basic c2tfbGl2ZV94Og=="), Some("sk_live_x")).unwrap(), Some("sk_live_x"));
    }

    #[test]
    fn raw_key_checks() {
        assert_eq!(claim(Route::Ingest, None).unwrap_err().code, "missing_key");
        assert_eq!(claim(Route::Ingest, Some("  ")).unwrap_err().code, "missing_key");
        assert_eq!(claim(Route::Ingest, Some("hello")).unwrap_err().code, "malformed_key");
        let e = claim(Route::Ingest, Some("rk_live_x1")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "read_only_key"));
        assert_eq!(claim(Route::Ingest, Some("sk_live_x1")).unwrap(), KeyKind::Secret);
    }

    #[test]
    fn unknown_and_revoked_keys_are_401() {
        let e = ingest(KeyKind::Publishable, None, None).unwrap_err();
        assert_eq!((e.status, e.code), (401, "unknown_key"));
        let mut r = rec(KeyKind::Publishable);
        r.revoked = true;
        let e = ingest(KeyKind::Publishable, Some(r), None).unwrap_err();
        assert_eq!((e.status, e.code), (401, "revoked_key"));
        // prefix says secret, record says publishable
        let e = ingest(KeyKind::Secret, Some(rec(KeyKind::Publishable)), None).unwrap_err();
        assert_eq!(e.status, 401);
    }

    #[test]
    fn publishable_key_only_from_allowed_origins() {
        let p = ingest(KeyKind::Publishable, Some(rec(KeyKind::Publishable)), Some("https://example.com")).unwrap();
        assert_eq!(p.cors_origin.as_deref(), Some("https://example.com"));
        assert_eq!(p.retention_days, 30);
        let p = ingest(KeyKind::Publishable, Some(rec(KeyKind::Publishable)), Some("https://shop.example.org")).unwrap();
        assert_eq!(p.cors_origin.as_deref(), Some("https://shop.example.org"));
        let e = ingest(KeyKind::Publishable, Some(rec(KeyKind::Publishable)), Some("https://evil.com")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "origin_not_allowed"));
        // lookalike suffix is not a subdomain
        assert!(!origin_allowed(&rec(KeyKind::Publishable).allowed_origins, "https://badexample.org"));
        assert!(!origin_allowed(&rec(KeyKind::Publishable).allowed_origins, "http://shop.example.org"));
    }

    #[test]
    fn secret_key_from_browser_is_refused_with_rotation_advice() {
        let e = ingest(KeyKind::Secret, Some(rec(KeyKind::Secret)), Some("https://example.com")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "secret_key_in_browser"));
        assert!(e.message.contains("rotate"));
        assert!(ingest(KeyKind::Secret, Some(rec(KeyKind::Secret)), None).is_ok());
    }

    #[test]
    fn null_origin_needs_the_record_to_allow_it() {
        // Sandboxed iframes, file:// pages and privacy redirects send `Origin: null`.
        for allowed in [vec!["https://example.com".to_string()], vec!["*".to_string()], vec![]] {
            let r = KeyRecord { allowed_origins: allowed, ..rec(KeyKind::Publishable) };
            let e = ingest(KeyKind::Publishable, Some(r), Some("null")).unwrap_err();
            assert_eq!((e.status, e.code), (403, "null_origin_not_allowed"));
            assert!(e.message.contains("allow_null_origin"), "{}", e.message);
        }
        let r = KeyRecord { allow_null_origin: true, ..rec(KeyKind::Publishable) };
        let p = ingest(KeyKind::Publishable, Some(r.clone()), Some("null")).unwrap();
        assert_eq!(p.cors_origin.as_deref(), Some("null"));
        // allowing null allows nothing else
        assert_eq!(ingest(KeyKind::Publishable, Some(r), Some("https://evil.com")).unwrap_err().code, "origin_not_allowed");
        // records written before the field existed do not allow it
        let old: KeyRecord = serde_json::from_str(r#"{"project_id":"p","kind":"publishable","allowed_origins":["*"]}"#).unwrap();
        assert!(!old.allow_null_origin);
    }

    #[test]
    fn a_secret_key_with_any_origin_is_exposed() {
        for origin in ["null", "https://example.com", "file://", "chrome-extension://abc", " null "] {
            let e = ingest(KeyKind::Secret, Some(rec(KeyKind::Secret)), Some(origin)).unwrap_err();
            assert_eq!((e.status, e.code), (403, "secret_key_in_browser"), "{origin:?}");
        }
        // even a record that allows null for its browser key: a secret key is never from a browser
        let r = KeyRecord { allow_null_origin: true, ..rec(KeyKind::Secret) };
        assert_eq!(ingest(KeyKind::Secret, Some(r), Some("null")).unwrap_err().code, "secret_key_in_browser");
        // an empty header is no Origin (browsers never send one empty)
        assert!(ingest(KeyKind::Secret, Some(rec(KeyKind::Secret)), Some("")).is_ok());
        assert!(origin_present(Some("null")) && !origin_present(Some("  ")) && !origin_present(None));
    }
}
