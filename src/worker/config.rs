//! Settings from the Worker's environment (wrangler.toml [vars], secrets, .dev.vars).

use crate::clickhouse::{AsyncInsert, ClickHouseConfig};
use worker::Env;

pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|v| v.to_string()))
}

fn var_or(env: &Env, name: &str, default: &str) -> String {
    var(env, name).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

pub fn clickhouse(env: &Env) -> ClickHouseConfig {
    ClickHouseConfig {
        url: var_or(env, "CLICKHOUSE_URL", "http://127.0.0.1:8123"),
        database: var_or(env, "CLICKHOUSE_DATABASE", "millimetric"),
        table: var_or(env, "CLICKHOUSE_TABLE", "events"),
        user: var_or(env, "CLICKHOUSE_USER", "default"),
        password: var(env, "CLICKHOUSE_PASSWORD").unwrap_or_default(),
        async_insert: AsyncInsert::parse(&var_or(env, "CLICKHOUSE_ASYNC_INSERT", "auto")),
    }
}

pub fn dead_letter_queue_name(env: &Env) -> String {
    var_or(env, "DEAD_LETTER_QUEUE_NAME", "millimetric-events-dlq")
}

pub const KEYS_KV: &str = "KEYS";
pub const DEAD_LETTERS_KV: &str = "DEAD_LETTERS";
pub const ERASURES_KV: &str = "ERASURES";
pub const KEY_LIMITER: &str = "KEY_LIMITER";
pub const IP_RATE_LIMITER: &str = "IP_RATE_LIMITER";
pub const EVENTS_QUEUE: &str = "EVENTS_QUEUE";
pub const DEAD_LETTER_QUEUE: &str = "DEAD_LETTER_QUEUE";

/// Salt for hashing client IPs before the per-IP limiter sees them (a secret in production).
pub fn ip_hash_salt(env: &Env) -> String {
    var_or(env, "IP_HASH_SALT", "millimetric-local-development-salt")
}
