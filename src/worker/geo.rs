//! The MaxMind-format database for forwarded visitor IPs: read once per isolate from KV
//! (`GEO_DB`, key `city.mmdb`; too large to bundle) and only when an event needs it.

use super::config;
use crate::enrich::geo_db::GeoDb;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{console_error, Env};

pub const GEO_DB_KEY: &str = "city.mmdb";

thread_local! {
    static DB: RefCell<Option<Rc<GeoDb>>> = const { RefCell::new(None) };
}

pub async fn database(env: &Env) -> Option<Rc<GeoDb>> {
    if let Some(db) = DB.with(|d| d.borrow().clone()) {
        return Some(db);
    }
    let kv = env.kv(config::GEO_DB_KV).ok()?;
    let bytes = match kv.get(GEO_DB_KEY).bytes().await {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => {
            console_error!("geo: could not read the database from KV: {e}");
            return None;
        }
    };
    match GeoDb::from_bytes(bytes) {
        Ok(db) => {
            let db = Rc::new(db);
            DB.with(|d| *d.borrow_mut() = Some(db.clone()));
            Some(db)
        }
        Err(e) => {
            console_error!("geo: {e}");
            None
        }
    }
}
