//! Segment's, PostHog's and Plausible's ingest endpoints: the body read and decoded, the
//! vendor's messages translated (millimetric_core::compat), the key found, and the events
//! handed to `/collect`'s own way in (`collect::accept`). Answers as each SDK expects.

use super::collect::{self, Refusal, Seen, Way};
use super::http;
use millimetric_adapters::auth::{authenticate, authenticate_hash, domain_key, Caller};
use millimetric_core::compat::{self, body, plausible, posthog, segment, Endpoint, Incoming, Message, Protocol};
use millimetric_core::error::ApiError;
use millimetric_core::keys::auth::{self, Route};
use millimetric_core::keys::KeyKind;
use serde_json::Value;
use worker::*;

pub async fn handle(mut req: Request, env: &Env, endpoint: Endpoint) -> Result<Response> {
    let any_origin = collect::header(&req, "Origin").unwrap_or_else(|| "*".into());
    let (protocol, call) = match endpoint {
        // Nothing in them is the caller's data: any page may read them.
        Endpoint::PostHogFlags => return Ok(http::json(200, compat::POSTHOG_FLAGS, Some(&any_origin))),
        Endpoint::PostHogConfigScript => {
            let script = compat::posthog_config_script(&req.path());
            return Ok(http::typed(200, "application/javascript", &script, Some(&any_origin)));
        }
        Endpoint::Ignored(protocol) => {
            let (status, body) = compat::success(protocol);
            return Ok(http::json(status, body, Some(&any_origin)));
        }
        Endpoint::Ingest(protocol, call) => (protocol, call),
    };
    let mut seen = Seen::of(&req);
    let answer = if req.method() != Method::Post {
        Err(ApiError::method_not_allowed("POST, OPTIONS", "Send events with POST.").into())
    } else if let Some(refused) = collect::refused_before_the_body(&req, env) {
        Err(refused)
    } else {
        receive(&mut req, env, &mut seen, protocol, call).await.map(|()| compat::success(protocol)).map(|(s, b)| (s, b.to_string()))
    };
    collect::count_if_unkeyed(&req, env, &seen, &answer).await;
    Ok(collect::respond(answer, &seen))
}

async fn receive(
    req: &mut Request,
    env: &Env,
    seen: &mut Seen,
    protocol: Protocol,
    call: Option<segment::Call>,
) -> std::result::Result<(), Refusal> {
    let received_ms = Date::now().as_millis() as i64;
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    let (encoding, content_type) = (collect::header(req, "Content-Encoding"), collect::header(req, "Content-Type"));
    let framing = body::Framing::of_request(encoding.as_deref(), content_type.as_deref(), query.as_deref())?;
    let raw = millimetric_adapters::body::read_capped(req, protocol.limits()).await?;
    let json = body::decode(&raw, &framing, protocol.limits())?;
    let authorization = collect::header(req, "Authorization");
    let (incoming, domain) = match (protocol, call) {
        (Protocol::Segment, Some(call)) => {
            (segment::parse(call, &json, auth::basic_user(authorization.as_deref()).as_deref(), received_ms)?, None)
        }
        (Protocol::PostHog, _) => (posthog::parse(&json, received_ms, query.as_deref())?, None),
        (_, _) => {
            let r = plausible::parse(&json)?;
            (Incoming { key: None, messages: vec![r.message], is_batch: false }, Some(r.domain))
        }
    };
    let caller = match &domain {
        Some(d) if auth::bearer(authorization.as_deref()).is_none() => plausible_site(req, env, d).await?,
        _ => authenticate(req, env, Route::Ingest, incoming.key.as_deref()).await?,
    };
    let kind = caller.principal.kind;
    let mut events: Vec<std::result::Result<Value, ApiError>> = incoming
        .messages
        .into_iter()
        .filter_map(|m| match m {
            Message::Event(v) => Some(Ok(compat::for_key(kind, v))),
            Message::Nothing => None,
            Message::Refused(e) => Some(Err(e)),
        })
        .collect();
    // Plausible's events name no visitor, nor do posthog-js's in its cookieless mode.
    let site = match (&domain, protocol) {
        (Some(d), _) => Some(d.clone()),
        (None, Protocol::PostHog) => Some(caller.principal.project_id.clone()),
        _ => None,
    };
    if let Some(site) = site {
        let headers_name_the_visitor = domain.is_some();
        events.iter_mut().flatten().for_each(|e| daily_visitor(req, kind, &site, headers_name_the_visitor, received_ms, e));
    }
    if events.is_empty() {
        seen.cors = caller.principal.cors_origin; // an identify: answered, nothing kept
        return Ok(());
    }
    let way = Way { route: protocol.route_name(), limits: &compat::LIMITS, browser_batches: true };
    collect::accept(req, env, seen, caller, events, incoming.is_batch, &way).await.map(|_| ())
}

/// A Plausible event with no key: the pk_live_ key that registered its site, with that key's
/// origin rules, and a page on the site it names.
async fn plausible_site(req: &Request, env: &Env, domain: &str) -> std::result::Result<Caller, ApiError> {
    let hash = domain_key(req, env, domain).await?;
    let caller = authenticate_hash(req, env, Route::Ingest, KeyKind::Publishable, hash).await?;
    match caller.principal.cors_origin.as_deref() {
        Some(origin) if !plausible::origin_is_domain(origin, domain) => Err(ApiError::new(
            403,
            "origin_not_allowed",
            format!("This page's origin is not on the site `{domain}` the event names. Send `d` as the site's registered domain."),
        )),
        _ => Ok(caller),
    }
}

/// An event that names no visitor (Plausible's; posthog-js's in cookieless mode) gets the day's
/// seed from the address and user agent (millimetric_core::compat::plausible::daily_visitor),
/// stored only as its keyed hash. A server with an sk_live_ key forwards its visitor's address
/// and user agent in the event, or (Plausible's API: `headers_name_the_visitor`) in
/// `X-Forwarded-For` and `User-Agent`, then used for geo and device too; for anyone else
/// X-Forwarded-For is ignored.
fn daily_visitor(req: &Request, kind: KeyKind, site: &str, headers_name_the_visitor: bool, received_ms: i64, event: &mut Value) {
    let Some(obj) = event.as_object_mut() else { return };
    if obj.contains_key("mm_aid") || obj.contains_key("user_id") {
        return;
    }
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let user_agent = text("user_agent").or_else(|| collect::header(req, "User-Agent")).unwrap_or_default();
    let forwarded = || compat::forwarded_ip(collect::header(req, "X-Forwarded-For"));
    let ip = match kind {
        // A server that forwards no address: the connecting one is its own, not its visitor's.
        KeyKind::Secret => text("ip").or_else(|| forwarded().filter(|_| headers_name_the_visitor)).unwrap_or_default(),
        _ => collect::header(req, "CF-Connecting-IP").unwrap_or_default(),
    };
    if kind == KeyKind::Secret && headers_name_the_visitor {
        if !ip.is_empty() {
            obj.insert("ip".into(), Value::from(ip.clone()));
        }
        let bounded = compat::bounded(Some(user_agent.clone()), compat::LIMITS.max_user_agent_bytes);
        obj.insert("user_agent".into(), Value::from(bounded));
    }
    obj.insert("user_id".into(), Value::from(plausible::daily_visitor(received_ms, site, &ip, &user_agent)));
}
