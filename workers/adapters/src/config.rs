//! Settings from the Worker's environment (wrangler.toml [vars], secrets, .dev.vars).

use millimetric_core::config_check::{self, Report, Settings};
use millimetric_core::error::ApiError;
use millimetric_core::privacy::pseudonym::IdSecret;
use millimetric_core::storage::clickhouse::{self, AsyncInsert, ClickHouseConfig, Role};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use worker::Env;

thread_local! {
    /// Every setting this isolate has read, by name (None: not set). An isolate's environment
    /// never changes (new values are a new deployment, served by new isolates), so each name
    /// crosses into JavaScript once, not on every request (a request reads a dozen).
    static READ: RefCell<HashMap<String, Option<String>>> = RefCell::new(HashMap::new());
    static ENVIRONMENT: Cell<Option<config_check::Environment>> = const { Cell::new(None) };
}

/// A [vars] value or a secret, as a string; None when the Worker has neither.
pub fn var(env: &Env, name: &str) -> Option<String> {
    if let Some(known) = READ.with(|r| r.borrow().get(name).cloned()) {
        return known;
    }
    let value = env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|v| v.to_string()));
    READ.with(|r| r.borrow_mut().insert(name.to_string(), value.clone()));
    value
}

fn var_or(env: &Env, name: &str, default: &str) -> String {
    var(env, name).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

/// The connection for one role's statements (see `millimetric_core::storage::clickhouse::Role`): the batch
/// writer inserts, visitor export reads, erasure and retention delete.
pub fn clickhouse(env: &Env, role: Role) -> ClickHouseConfig {
    let (user, password) = clickhouse::credentials(role, |name| var(env, name));
    ClickHouseConfig {
        url: var_or(env, "CLICKHOUSE_URL", "http://127.0.0.1:8123"),
        database: var_or(env, "CLICKHOUSE_DATABASE", "millimetric"),
        table: var_or(env, "CLICKHOUSE_TABLE", "events"),
        user,
        password,
        async_insert: AsyncInsert::parse(&var_or(env, "CLICKHOUSE_ASYNC_INSERT", "auto")),
    }
}

pub fn dead_letter_queue_name(env: &Env) -> String {
    var_or(env, "DEAD_LETTER_QUEUE_NAME", "millimetric-events-dlq")
}

/// The queue a project export's steps go through (workers/edge/src/exports.rs).
pub fn export_queue_name(env: &Env) -> String {
    var_or(env, "EXPORT_QUEUE_NAME", "millimetric-exports")
}

pub const KEYS_KV: &str = "KEYS";
pub const DEAD_LETTERS_KV: &str = "DEAD_LETTERS";
pub const ERASURES_KV: &str = "ERASURES";
pub const AUDIT_KV: &str = "AUDIT";
pub const KEY_LIMITER: &str = "KEY_LIMITER";
pub const IP_RATE_LIMITER: &str = "IP_RATE_LIMITER";
pub const EVENTS_QUEUE: &str = "EVENTS_QUEUE";
pub const DEAD_LETTER_QUEUE: &str = "DEAD_LETTER_QUEUE";

/// Whether this is local development (MM_ENV=development with a loopback ClickHouse): the
/// only place test-only routes answer.
pub fn is_local_development(env: &Env) -> bool {
    environment(env) == config_check::Environment::Development
}

/// Decided once per isolate, like the settings it reads (`var`): it parses a URL.
fn environment(env: &Env) -> config_check::Environment {
    if let Some(known) = ENVIRONMENT.with(Cell::get) {
        return known;
    }
    let decided = config_check::environment(var(env, "MM_ENV").as_deref(), var(env, "CLICKHOUSE_URL").as_deref());
    ENVIRONMENT.with(|e| e.set(Some(decided)));
    decided
}

/// Where bench/load cuts an ingest request short (`MM_BENCH_STOP_AFTER`); always None outside
/// local development (`config_check::bench_stop`).
pub fn bench_stop(env: &Env) -> Option<config_check::BenchStop> {
    config_check::bench_stop(environment(env), var(env, "MM_BENCH_STOP_AFTER").as_deref())
}

/// Salt for hashing client IPs before the per-IP limiter sees them (a secret in production).
/// Outside local development a missing, public or short salt is an error, never a fallback
/// (`millimetric_core::config_check::ip_hash_salt`).
pub fn ip_hash_salt(env: &Env) -> Result<String, ApiError> {
    config_check::ip_hash_salt(environment(env), var(env, "IP_HASH_SALT").as_deref())
}

/// The secret identifiers that are personal data are hashed with (`millimetric_core::privacy::pseudonym`):
/// none outside local development unless ID_HASH_SECRET is set and safe.
pub fn id_hash_secret(env: &Env) -> Option<IdSecret> {
    config_check::id_hash_secret(environment(env), var(env, "ID_HASH_SECRET").as_deref())
}

/// Every configuration check, for `GET /admin/config-check` (no secret values in it).
pub fn report(env: &Env) -> Report {
    let names = [
        "MM_ENV",
        "CLICKHOUSE_URL",
        "CLICKHOUSE_USER",
        "CLICKHOUSE_PASSWORD",
        "CLICKHOUSE_READ_USER",
        "CLICKHOUSE_READ_PASSWORD",
        "CLICKHOUSE_MAINTENANCE_USER",
        "CLICKHOUSE_MAINTENANCE_PASSWORD",
        "IP_HASH_SALT",
        "ID_HASH_SECRET",
        "ADMIN_TOKEN",
        "ERROR_MONITOR_DSN",
    ];
    let v: Vec<Option<String>> = names.iter().map(|n| var(env, n)).collect();
    let at = |i: usize| v[i].as_deref();
    config_check::report(&Settings {
        mm_env: at(0),
        clickhouse_url: at(1),
        clickhouse_user: at(2),
        clickhouse_password: at(3),
        clickhouse_read_user: at(4),
        clickhouse_read_password: at(5),
        clickhouse_maintenance_user: at(6),
        clickhouse_maintenance_password: at(7),
        ip_hash_salt: at(8),
        id_hash_secret: at(9),
        admin_token: at(10),
        error_monitor_dsn: at(11),
    })
}
