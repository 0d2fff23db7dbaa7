//! Sends one batch of rows to ClickHouse over HTTP and reports what the core makes of the answer.

use millimetric_core::ingest::row::{to_json_each_row, EventRow};
use millimetric_core::storage::clickhouse::{self, AsyncInsert, ClickHouseConfig, InsertOutcome};
use std::cell::RefCell;
use wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit, Response};

thread_local! {
    /// The server's version, asked once per isolate (for the async-insert decision).
    static SERVER_VERSION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn request(cfg: &ClickHouseConfig, url: &str, body: Option<String>) -> worker::Result<Request> {
    crate::meter::add("clickhouse.statements", 1);
    let headers = Headers::new();
    headers.set("X-ClickHouse-User", &cfg.user)?;
    headers.set("X-ClickHouse-Key", &cfg.password)?;
    headers.set("Content-Type", "text/plain; charset=utf-8")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(body.map(|b| JsValue::from_str(&b)));
    Request::new_with_init(url, &init)
}

/// How ClickHouse sends an answer over the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// For a large answer (a project's export): gzipped by ClickHouse (`enable_http_compression`),
    /// about a tenth of the bytes, decoded by the runtime as it is read; and sent only once the
    /// query has finished (`wait_end_of_query`), so an error half way is an error status, never
    /// a 200 whose body ends in one. Kept out of the query log (clickhouse::UNLOGGED): an
    /// export's statement names the visitor whose row the part before it ended on.
    Gzip,
}

/// Runs one statement; Ok(the answer, its body not yet read) on 200, else Err with what
/// ClickHouse said.
pub async fn query_response(cfg: &ClickHouseConfig, sql: &str, compression: Compression) -> Result<Response, String> {
    let settings: &[(&str, &str)] = match compression {
        Compression::None => &[],
        Compression::Gzip => &[("enable_http_compression", "1"), ("wait_end_of_query", "1"), clickhouse::UNLOGGED[0]],
    };
    respond(cfg, clickhouse::statement_post(cfg, sql, settings)?, compression).await
}

/// `query_response` for a statement that names a visitor: kept out of ClickHouse's query log
/// (clickhouse::UNLOGGED).
pub async fn query_response_unlogged(cfg: &ClickHouseConfig, sql: &str) -> Result<Response, String> {
    respond(cfg, clickhouse::statement_post(cfg, sql, clickhouse::UNLOGGED)?, Compression::None).await
}

/// `query` for a statement that names a visitor: kept out of ClickHouse's query log.
pub async fn query_unlogged(cfg: &ClickHouseConfig, sql: &str) -> Result<String, String> {
    text(query_response_unlogged(cfg, sql).await?).await
}

/// Posts a statement (clickhouse::statement_post's URL and body).
async fn respond(cfg: &ClickHouseConfig, (url, body): (String, String), compression: Compression) -> Result<Response, String> {
    let req = request(cfg, &url, Some(body)).map_err(|e| format!("could not build the request: {e}"))?;
    if compression == Compression::Gzip {
        req.headers().set("Accept-Encoding", "gzip").map_err(|e| format!("could not build the request: {e}"))?;
    }
    let mut resp = Fetch::Request(req).send().await.map_err(|e| format!("ClickHouse unreachable: {e}"))?;
    match resp.status_code() {
        200 => Ok(resp),
        status => Err(format!("ClickHouse answered {status}: {}", resp.text().await.unwrap_or_default().trim())),
    }
}

/// Runs one statement; Ok(the answer's text) on 200, else Err with what ClickHouse said.
pub async fn query(cfg: &ClickHouseConfig, sql: &str) -> Result<String, String> {
    text(query_response(cfg, sql, Compression::None).await?).await
}

async fn text(mut resp: Response) -> Result<String, String> {
    resp.text().await.map_err(|e| format!("ClickHouse's answer could not be read: {e}"))
}

/// Runs one SELECT, the statement in the body (it may be long); Ok(the answer's text), else
/// how the core classifies the failure (the same classes as an insert's, so an
/// authentication failure is an alarm, not a dead letter).
pub async fn select(cfg: &ClickHouseConfig, sql: &str) -> Result<String, InsertOutcome> {
    let (url, body) = clickhouse::statement_post(cfg, sql, &[]).map_err(|reason| InsertOutcome::Fatal { code: None, reason })?;
    let req = request(cfg, &url, Some(body))
        .map_err(|e| InsertOutcome::Fatal { code: None, reason: format!("could not build the request: {e}") })?;
    match Fetch::Request(req).send().await {
        Err(e) => Err(clickhouse::classify(None, None, &e.to_string())),
        Ok(mut resp) => {
            let status = resp.status_code();
            let header_code = resp.headers().get("X-ClickHouse-Exception-Code").ok().flatten();
            let text = resp.text().await.unwrap_or_default();
            match clickhouse::classify(Some(status), header_code.as_deref(), &text) {
                InsertOutcome::Stored => Ok(text),
                failed => Err(failed),
            }
        }
    }
}

/// Runs one read with the read limits (clickhouse::read_url), the statement in the body.
/// Err: ClickHouse's error code (when it gave one) and what it said.
pub async fn read(cfg: &ClickHouseConfig, sql: &str) -> Result<String, (Option<u32>, String)> {
    let url = clickhouse::read_url(cfg).map_err(|e| (None, e))?;
    let req = request(cfg, &url, Some(sql.to_string())).map_err(|e| (None, format!("could not build the request: {e}")))?;
    let mut resp = Fetch::Request(req).send().await.map_err(|e| (None, format!("ClickHouse unreachable: {e}")))?;
    let status = resp.status_code();
    let header_code = resp.headers().get("X-ClickHouse-Exception-Code").ok().flatten().and_then(|c| c.trim().parse().ok());
    let text = resp.text().await.map_err(|e| (None, format!("ClickHouse's answer could not be read: {e}")))?;
    if status == 200 {
        return Ok(text);
    }
    let first: String = text.lines().next().unwrap_or("").chars().take(300).collect();
    // The size's refusal says so after an excerpt of the statement, which may run past the cut
    // (`query::plan::refusal` tells it from a statement built wrong by these words).
    let size = if text.contains("Max query size exceeded") && !first.contains("Max query size exceeded") {
        " (Max query size exceeded)"
    } else {
        ""
    };
    Err((header_code.or_else(|| clickhouse::error_code(&text)), format!("HTTP {status}: {first}{size}")))
}

async fn server_version(cfg: &ClickHouseConfig) -> Option<String> {
    if let Some(v) = SERVER_VERSION.with(|v| v.borrow().clone()) {
        return Some(v);
    }
    let v = query(cfg, "SELECT version()").await.ok()?.trim().to_string();
    SERVER_VERSION.with(|s| *s.borrow_mut() = Some(v.clone()));
    Some(v)
}

/// Whether inserts go out as async inserts (CLICKHOUSE_ASYNC_INSERT, `auto`: by the server's
/// version, asked once per isolate). None: not known, the server did not answer.
pub async fn async_inserts(cfg: &ClickHouseConfig) -> Option<bool> {
    match known_async_inserts(cfg) {
        Some(known) => Some(known),
        None => server_version(cfg).await.map(|v| clickhouse::server_supports_async_insert(&v)),
    }
}

/// The same, from what this isolate knows already (None: it has not asked yet).
pub fn known_async_inserts(cfg: &ClickHouseConfig) -> Option<bool> {
    match cfg.async_insert {
        AsyncInsert::On => Some(true),
        AsyncInsert::Off => Some(false),
        AsyncInsert::Auto => SERVER_VERSION.with(|v| v.borrow().as_deref().map(clickhouse::server_supports_async_insert)),
    }
}

pub async fn insert(cfg: &ClickHouseConfig, rows: &[&EventRow]) -> InsertOutcome {
    let use_async = async_inserts(cfg).await.unwrap_or(false);
    let url = match clickhouse::insert_url(cfg, use_async) {
        Ok(u) => u,
        Err(reason) => return InsertOutcome::Fatal { code: None, reason },
    };
    let req = match request(cfg, &url, Some(to_json_each_row(rows.iter().copied()))) {
        Ok(r) => r,
        Err(e) => return InsertOutcome::Fatal { code: None, reason: format!("could not build the request: {e}") },
    };
    match Fetch::Request(req).send().await {
        Err(e) => clickhouse::classify(None, None, &e.to_string()),
        Ok(mut resp) => {
            let status = resp.status_code();
            let header_code = resp.headers().get("X-ClickHouse-Exception-Code").ok().flatten();
            let text = resp.text().await.unwrap_or_default();
            clickhouse::classify(Some(status), header_code.as_deref(), &text)
        }
    }
}
