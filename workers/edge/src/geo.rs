//! The MaxMind-format database for forwarded visitor IPs: read once per isolate from R2
//! (bucket binding `GEO`, object `city.mmdb`; a real city database is larger than a KV value
//! may be), and only when an event needs it. When to load, wait or skip is decided by the
//! pure `millimetric_core::ingest::geo_load`; this file only fetches and times.
//!
//! Concurrent first requests share one load: the first loads; the others wait for it by
//! asking the shared state again on a timer (workerd lets no request resolve another
//! request's promise), for at most `Policy::wait_ms`, and then go on without geo.
//!
//! Memory: the object is streamed into one buffer of its exact size in wasm memory, so the
//! isolate holds the database once. `ObjectBody::bytes()` would first materialise the whole
//! file as a JS ArrayBuffer and then copy it, holding it twice at the peak.

use futures_util::StreamExt;
use millimetric_core::enrich::geo_db::GeoDb;
use millimetric_core::ingest::geo_load::{GeoLoad, Outcome, Policy, Step};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::{console_error, console_log, Date, Delay, Env};

pub const GEO_BUCKET: &str = "GEO";
pub const GEO_DB_KEY: &str = "city.mmdb";

/// How often a request waiting for another's load asks again.
const POLL: Duration = Duration::from_millis(20);

thread_local! {
    static LOAD: RefCell<GeoLoad<Rc<GeoDb>>> = RefCell::new(GeoLoad::new(Policy::default()));
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// The isolate's geo database, loading it on first use; None while it is missing, failed or
/// still loading after this request's wait (the event then simply gets no database geo).
pub async fn database(env: &Env) -> Option<Rc<GeoDb>> {
    let give_up_at = now_ms() + LOAD.with(|l| l.borrow().policy().wait_ms);
    loop {
        let now = now_ms();
        match LOAD.with(|l| l.borrow_mut().decide(now)) {
            Step::Use(db) => {
                log_memory_growth();
                return Some(db);
            }
            Step::Skip => return None,
            Step::Load(ticket) => {
                let outcome = load(env).await;
                let db = match &outcome {
                    Outcome::Loaded(db) => Some(db.clone()),
                    _ => None,
                };
                LOAD.with(|l| l.borrow_mut().finish(ticket, outcome, now_ms()));
                return db;
            }
            Step::Wait if now >= give_up_at => return None,
            Step::Wait => Delay::from(POLL).await,
        }
    }
}

/// Wasm linear memory in MiB (it only ever grows): logged around the load, and read by
/// bench/geo-memory; logged after each export step too (super::exports).
pub(crate) fn wasm_memory_mib() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65_536) as f64 / (1024.0 * 1024.0)
}

thread_local! {
    static LOGGED_MIB: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

/// With the database in memory the isolate's headroom is what is left of 128 MB: say when wasm
/// memory has grown by a MiB or more since it was last said (a few lines per isolate at most).
fn log_memory_growth() {
    let now = wasm_memory_mib();
    if now >= LOGGED_MIB.with(|l| l.get()) + 1.0 {
        LOGGED_MIB.with(|l| l.set(now));
        console_log!("geo: wasm memory {now:.1} MiB with the database loaded");
    }
}

async fn load(env: &Env) -> Outcome<Rc<GeoDb>> {
    let started = now_ms();
    let memory_before = wasm_memory_mib();
    let bucket = match env.bucket(GEO_BUCKET) {
        Ok(b) => b,
        Err(_) => {
            console_log!("geo: no `{GEO_BUCKET}` R2 binding; forwarded IPs get no geo");
            return Outcome::Missing;
        }
    };
    millimetric_adapters::meter::add("r2.class_b", 1);
    let object = match bucket.get(GEO_DB_KEY).execute().await {
        Ok(Some(o)) => o,
        Ok(None) => {
            console_log!("geo: no `{GEO_DB_KEY}` in R2 bucket `{GEO_BUCKET}`; forwarded IPs get no geo for now");
            return Outcome::Missing;
        }
        Err(e) => {
            console_error!("geo: could not read `{GEO_DB_KEY}` from R2: {e}");
            return Outcome::Failed;
        }
    };
    let size = object.size();
    // GEO_MAX_BYTES raises the limit for bench/geo-memory only, which measures databases that
    // do not fit; production keeps the policy's.
    let max = super::config::var(env, "GEO_MAX_BYTES")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| LOAD.with(|l| l.borrow().policy().max_bytes));
    if size > max {
        console_error!("geo: `{GEO_DB_KEY}` is {size} bytes, more than the {max} an isolate can hold next to its requests; not loaded");
        return Outcome::TooLarge;
    }
    let bytes = match read_body(&object, size as usize).await {
        Ok(b) => b,
        Err(e) => {
            console_error!("geo: reading `{GEO_DB_KEY}` from R2 failed: {e}");
            return Outcome::Failed;
        }
    };
    match GeoDb::from_bytes(bytes) {
        Ok(db) => {
            LOGGED_MIB.with(|l| l.set(wasm_memory_mib()));
            console_log!(
                "geo: loaded `{GEO_DB_KEY}` ({size} bytes) in {} ms; wasm memory {memory_before:.1} MiB -> {:.1} MiB",
                now_ms() - started,
                wasm_memory_mib()
            );
            Outcome::Loaded(Rc::new(db))
        }
        Err(e) => {
            console_error!("geo: `{GEO_DB_KEY}`: {e}");
            Outcome::Failed
        }
    }
}

/// The object's body, streamed chunk by chunk into one allocation of exactly `size` bytes.
async fn read_body(object: &worker::Object, size: usize) -> Result<Vec<u8>, String> {
    let body = object.body().ok_or("the object has no body")?;
    let mut stream = body.stream().map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(size).map_err(|_| format!("cannot allocate {size} bytes"))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if bytes.len() + chunk.len() > size {
            return Err(format!("the body is longer than the object's size ({size} bytes)"));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.len() != size {
        return Err(format!("the body ended after {} of {size} bytes", bytes.len()));
    }
    Ok(bytes)
}
