//! Enrichment: everything derived from an event on its way to a row. Pure functions.
pub mod attribution;
pub mod bots;
pub mod geo;
pub mod geo_db;
pub mod hardware_addresses;
pub mod home_paths;
pub mod iban;
pub mod labelled_secrets;
pub mod pii;
pub mod referrer_hosts;
pub mod secrets;
pub mod text_pii;
pub mod url_credentials;
pub mod url_scrub;
pub mod user_agent;
