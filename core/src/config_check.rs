//! Is the Worker's configuration safe to run with? Pure decisions over the raw settings, so
//! the Worker's request path (which refuses to hash IPs with a public salt) and
//! `GET /admin/config-check` (which reports every check) decide the same way.
//!
//! Development is explicit and local: `MM_ENV=development` (set by `.dev.vars`, which
//! `wrangler deploy` never uploads, and by the test harness) *and* a ClickHouse URL on this
//! machine (a deployed Worker cannot reach a loopback address, so a Worker that works in
//! production can never count as development, whatever MM_ENV says). Anything else is
//! production, including a deploy that forgot every variable.

use crate::error::ApiError;
use crate::privacy::pseudonym::IdSecret;
use serde::Serialize;
use std::net::IpAddr;
use url::{Host, Url};

/// The salt `workers/adapters/src/config.rs` falls back to in development. Public: it is in this file.
pub const DEFAULT_IP_HASH_SALT: &str = "millimetric-local-development-salt";

/// Salts anyone can read in this repository: the fallback above and `.dev.vars.example`'s.
const PUBLIC_SALTS: &[&str] = &[DEFAULT_IP_HASH_SALT, "local-development-salt"];

/// The identifier-hash secret development falls back to (`privacy::pseudonym`). Public.
pub const DEFAULT_ID_HASH_SECRET: &str = "millimetric-local-development-id-hash-secret";

/// 32 characters: 128 bits as hex (`openssl rand -hex 32` gives 64). IPv4 is only 2^32
/// addresses, so a short salt is all that stands between a limiter key and the IP.
pub const MIN_SALT_CHARS: usize = 32;

/// Shorter admin tokens are reported (a warning: the token guards reads, not ingestion).
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Development,
    Production,
}

/// Development only when MM_ENV says so *and* ClickHouse is on this machine (see the top).
pub fn environment(mm_env: Option<&str>, clickhouse_url: Option<&str>) -> Environment {
    let says_dev = mm_env.is_some_and(|v| v.trim().eq_ignore_ascii_case("development"));
    if says_dev && clickhouse_url.is_some_and(is_loopback_url) {
        Environment::Development
    } else {
        Environment::Production
    }
}

/// `http://127.0.0.1:8123`, `http://localhost:8123`, `http://[::1]:8123`: true.
pub fn is_loopback_url(url: &str) -> bool {
    match Url::parse(url.trim()).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Why a salt must not be used outside development.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltProblem {
    /// Unset, empty or only whitespace.
    Missing,
    /// One of the salts published in this repository.
    Public,
    TooShort,
}

impl SaltProblem {
    /// The problem, naming the setting (`IP_HASH_SALT`, `ID_HASH_SECRET`).
    pub fn describe(self, setting: &str) -> String {
        match self {
            SaltProblem::Missing => format!("{setting} is not set"),
            SaltProblem::Public => format!("{setting} is the public development value from this repository"),
            SaltProblem::TooShort => format!("{setting} is shorter than {MIN_SALT_CHARS} characters"),
        }
    }
}

pub fn salt_problem(salt: Option<&str>) -> Option<SaltProblem> {
    secret_problem(salt, PUBLIC_SALTS)
}

/// Missing, one of the `public` values, or shorter than MIN_SALT_CHARS.
fn secret_problem(value: Option<&str>, public: &[&str]) -> Option<SaltProblem> {
    let s = value.map(str::trim).unwrap_or_default();
    if s.is_empty() {
        Some(SaltProblem::Missing)
    } else if public.contains(&s) {
        Some(SaltProblem::Public)
    } else if s.chars().count() < MIN_SALT_CHARS {
        Some(SaltProblem::TooShort)
    } else {
        None
    }
}

/// How to fix any salt problem, for log lines and the 503.
pub const SALT_FIX: &str = "Set a random one with `openssl rand -hex 32 | npx wrangler secret put IP_HASH_SALT`.";

/// The salt the per-IP limiter may hash client IPs with, or the refusal to hash them at all.
/// Development may use the public salt (the value of a local limiter key protects nothing);
/// production never: it gets a 503 `config_error` naming IP_HASH_SALT, never a fallback.
pub fn ip_hash_salt(environment: Environment, salt: Option<&str>) -> Result<String, ApiError> {
    match (salt_problem(salt), environment) {
        (None, _) => Ok(salt.unwrap_or_default().trim().to_string()),
        (Some(SaltProblem::Missing), Environment::Development) => Ok(DEFAULT_IP_HASH_SALT.to_string()),
        (Some(_), Environment::Development) => Ok(salt.unwrap_or_default().trim().to_string()),
        (Some(problem), Environment::Production) => Err(ApiError::new(
            503,
            "config_error",
            format!(
                "This deployment is misconfigured: {}, so it refuses to hash client IPs for the per-IP rate limit. {SALT_FIX}",
                problem.describe("IP_HASH_SALT")
            ),
        )),
    }
}

/// How to fix an identifier-hash secret problem. Set it once: a new secret hashes the same
/// e-mail address to another id, so export and erasure by it would miss the older events.
pub const ID_SECRET_FIX: &str = "Set a random one, once, with `openssl rand -hex 32 | npx wrangler secret put ID_HASH_SECRET`.";

/// The secret identifiers that are personal data are hashed with (`privacy::pseudonym`), or
/// none: then such an id is refused with a 503 rather than stored. Development may use the
/// public default; production never.
pub fn id_hash_secret(environment: Environment, value: Option<&str>) -> Option<IdSecret> {
    match (secret_problem(value, &[DEFAULT_ID_HASH_SECRET]), environment) {
        (None, _) => value.map(IdSecret::new),
        (Some(SaltProblem::Missing), Environment::Development) => Some(IdSecret::new(DEFAULT_ID_HASH_SECRET)),
        (Some(_), Environment::Development) => value.map(IdSecret::new),
        (Some(_), Environment::Production) => None,
    }
}

/// The raw settings a report looks at (values as the Worker sees them; None when unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings<'a> {
    pub mm_env: Option<&'a str>,
    pub clickhouse_url: Option<&'a str>,
    pub clickhouse_user: Option<&'a str>,
    pub clickhouse_password: Option<&'a str>,
    pub clickhouse_read_user: Option<&'a str>,
    pub clickhouse_read_password: Option<&'a str>,
    pub clickhouse_maintenance_user: Option<&'a str>,
    pub clickhouse_maintenance_password: Option<&'a str>,
    pub ip_hash_salt: Option<&'a str>,
    pub id_hash_secret: Option<&'a str>,
    pub admin_token: Option<&'a str>,
    pub error_monitor_dsn: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Works, but weaker than it should be.
    Warn,
    /// Unsafe or broken: fix before serving traffic.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found and what to do; never a secret's value or length.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub environment: Environment,
    /// False when any check failed.
    pub ok: bool,
    pub checks: Vec<Check>,
}

fn set(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check { name, status, detail: detail.into() }
}

/// Every check, in a fixed order. In development a failure is only a warning.
pub fn report(s: &Settings) -> Report {
    let env = environment(s.mm_env, s.clickhouse_url);
    let prod = env == Environment::Production;
    let fail = if prod { Status::Fail } else { Status::Warn };
    let mut checks = Vec::new();

    checks.push(match salt_problem(s.ip_hash_salt) {
        None => check("ip_hash_salt", Status::Ok, "IP_HASH_SALT is set, not a public value, and long enough."),
        Some(p) if prod => check(
            "ip_hash_salt",
            Status::Fail,
            format!("{}: browser events are refused with 503 config_error. {SALT_FIX}", p.describe("IP_HASH_SALT")),
        ),
        Some(p) => check("ip_hash_salt", Status::Warn, format!("{} (allowed in local development only).", p.describe("IP_HASH_SALT"))),
    });
    checks.push(match secret_problem(s.id_hash_secret, &[DEFAULT_ID_HASH_SECRET]) {
        None => check("id_hash_secret", Status::Ok, "ID_HASH_SECRET is set, not a public value, and long enough."),
        Some(p) if prod => check(
            "id_hash_secret",
            Status::Fail,
            format!(
                "{}: events whose mm_aid or id holds personal data are refused with 503 config_error. {ID_SECRET_FIX}",
                p.describe("ID_HASH_SECRET")
            ),
        ),
        Some(p) => check("id_hash_secret", Status::Warn, format!("{} (allowed in local development only).", p.describe("ID_HASH_SECRET"))),
    });

    checks.push(match set(s.clickhouse_url) {
        None => check("clickhouse_url", fail, "CLICKHOUSE_URL is not set."),
        Some(u) if Url::parse(u).is_err() => check("clickhouse_url", fail, "CLICKHOUSE_URL is not a URL."),
        Some(u) if prod && is_loopback_url(u) => {
            check("clickhouse_url", Status::Fail, "CLICKHOUSE_URL points at this machine (loopback), which a deployed Worker cannot reach. Set your ClickHouse Cloud HTTPS endpoint in wrangler.toml [vars].")
        }
        Some(u) if prod && !u.starts_with("https://") => {
            check("clickhouse_url", Status::Fail, "CLICKHOUSE_URL is not https: the password would cross the internet in the clear.")
        }
        Some(_) => check("clickhouse_url", Status::Ok, "CLICKHOUSE_URL is set."),
    });

    checks.push(match set(s.clickhouse_user) {
        None | Some("default") => check(
            "clickhouse_user",
            fail,
            "CLICKHOUSE_USER is unset or `default` (an administrator): create an insert-only user for the batch writer (docs/deploy.md, \"Deploy to Cloudflare\").",
        ),
        Some(_) => check("clickhouse_user", Status::Ok, "CLICKHOUSE_USER is set (the batch writer's insert-only user)."),
    });
    checks.push(match set(s.clickhouse_password) {
        None => check("clickhouse_password", fail, "CLICKHOUSE_PASSWORD is not set: `npx wrangler secret put CLICKHOUSE_PASSWORD`."),
        Some(_) => check("clickhouse_password", Status::Ok, "CLICKHOUSE_PASSWORD is set."),
    });

    for (name, user_var, user, password, does) in [
        ("clickhouse_read_user", "CLICKHOUSE_READ_USER", s.clickhouse_read_user, s.clickhouse_read_password, "visitor exports"),
        (
            "clickhouse_maintenance_user",
            "CLICKHOUSE_MAINTENANCE_USER",
            s.clickhouse_maintenance_user,
            s.clickhouse_maintenance_password,
            "erasures and the retention job",
        ),
    ] {
        let password_var = if user_var == "CLICKHOUSE_READ_USER" { "CLICKHOUSE_READ_PASSWORD" } else { "CLICKHOUSE_MAINTENANCE_PASSWORD" };
        checks.push(match (set(user), set(password)) {
            (None, _) => check(
                name,
                if prod { Status::Warn } else { Status::Ok },
                format!("{user_var} is not set: {does} use CLICKHOUSE_USER, which then needs more than INSERT."),
            ),
            (Some(u), _) if Some(u) == set(s.clickhouse_user) => check(
                name,
                Status::Warn,
                format!("{user_var} is the same user as CLICKHOUSE_USER: {does} and inserts share one credential."),
            ),
            (Some(_), None) => {
                check(name, fail, format!("{user_var} is set but {password_var} is not: `npx wrangler secret put {password_var}`."))
            }
            (Some(_), Some(_)) => check(name, Status::Ok, format!("{user_var} and {password_var} are set ({does}).")),
        });
    }

    checks.push(match set(s.admin_token) {
        None => check("admin_token", fail, "ADMIN_TOKEN is not set: the admin endpoints answer 401 to everyone."),
        Some(t) if t.chars().count() < MIN_ADMIN_TOKEN_CHARS => check(
            "admin_token",
            Status::Warn,
            format!("ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_CHARS} characters: `openssl rand -hex 32 | npx wrangler secret put ADMIN_TOKEN`."),
        ),
        Some(_) => check("admin_token", Status::Ok, "ADMIN_TOKEN is set."),
    });

    checks.push(match set(s.error_monitor_dsn).map(crate::monitor::dsn::Dsn::parse) {
        None => check("error_monitor", Status::Warn, "ERROR_MONITOR_DSN is not set: errors are only logged, nobody is told."),
        Some(None) => {
            check("error_monitor", Status::Warn, "ERROR_MONITOR_DSN is not a DSN (https://KEY@HOST/PROJECT): nothing is reported.")
        }
        Some(Some(_)) => check(
            "error_monitor",
            Status::Ok,
            "ERROR_MONITOR_DSN is set: 5xx answers, dead letters and alarms are reported, without payloads.",
        ),
    });

    let ok = checks.iter().all(|c| c.status != Status::Fail);
    Report { environment: env, ok, checks }
}

/// Where bench/load's stage runs cut an ingest request short (`MM_BENCH_STOP_AFTER`: `/collect`
/// and the vendors' routes alike): the request
/// is answered as accepted right after that step, so a run shows what the steps up to it cost.
/// Local development only: anywhere else the setting is ignored, as it would drop accepted events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchStop {
    /// After the body is parsed and the key authenticated.
    Auth,
    /// After the quota and the per-key limit too.
    Limits,
    /// After the rows are built too: everything but their write.
    Rows,
}

pub fn bench_stop(environment: Environment, value: Option<&str>) -> Option<BenchStop> {
    if environment != Environment::Development {
        return None;
    }
    match value?.trim() {
        "auth" => Some(BenchStop::Auth),
        "limits" => Some(BenchStop::Limits),
        "rows" => Some(BenchStop::Rows),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_SALT: &str = "3f1c9a7e0b5d42e8a6c1f09b7d3e5a21";

    #[test]
    fn development_needs_both_the_flag_and_a_local_clickhouse() {
        let local = Some("http://127.0.0.1:8123");
        assert_eq!(environment(Some("development"), local), Environment::Development);
        assert_eq!(environment(Some(" Development "), Some("http://localhost:18123")), Environment::Development);
        assert_eq!(environment(Some("development"), Some("http://[::1]:8123/")), Environment::Development);
        // The flag alone (a deployed Worker talking to ClickHouse Cloud) is production.
        assert_eq!(environment(Some("development"), Some("https://abc.eu-west-1.aws.clickhouse.cloud:8443")), Environment::Production);
        // A local URL alone (wrangler.toml's placeholder, deployed unchanged) is production.
        assert_eq!(environment(None, local), Environment::Production);
        assert_eq!(environment(Some("production"), local), Environment::Production);
        assert_eq!(environment(Some("dev"), local), Environment::Production);
        assert_eq!(environment(Some("development"), None), Environment::Production);
        assert_eq!(environment(Some("development"), Some("not a url")), Environment::Production);
        assert_eq!(environment(Some("development"), Some("http://127.0.0.1.evil.example:8123")), Environment::Production);
        assert_eq!(environment(Some("development"), Some("http://10.0.0.5:8123")), Environment::Production);
    }

    #[test]
    fn salt_problems() {
        assert_eq!(salt_problem(None), Some(SaltProblem::Missing));
        assert_eq!(salt_problem(Some("")), Some(SaltProblem::Missing));
        assert_eq!(salt_problem(Some("   ")), Some(SaltProblem::Missing));
        assert_eq!(salt_problem(Some(DEFAULT_IP_HASH_SALT)), Some(SaltProblem::Public));
        assert_eq!(salt_problem(Some(" local-development-salt\n")), Some(SaltProblem::Public));
        assert_eq!(salt_problem(Some("short-but-secret")), Some(SaltProblem::TooShort));
        assert_eq!(salt_problem(Some(&GOOD_SALT[..31])), Some(SaltProblem::TooShort));
        assert_eq!(salt_problem(Some(GOOD_SALT)), None);
    }

    #[test]
    fn production_refuses_every_unsafe_salt_and_names_it() {
        for bad in [None, Some(""), Some(DEFAULT_IP_HASH_SALT), Some("local-development-salt"), Some("tooshort")] {
            let e = ip_hash_salt(Environment::Production, bad).unwrap_err();
            assert_eq!((e.status, e.code), (503, "config_error"), "{bad:?}");
            assert!(e.message.contains("IP_HASH_SALT") && e.message.contains("wrangler secret put IP_HASH_SALT"), "{}", e.message);
        }
        assert_eq!(ip_hash_salt(Environment::Production, Some(GOOD_SALT)).unwrap(), GOOD_SALT);
    }

    #[test]
    fn development_may_use_the_public_salt() {
        assert_eq!(ip_hash_salt(Environment::Development, None).unwrap(), DEFAULT_IP_HASH_SALT);
        assert_eq!(ip_hash_salt(Environment::Development, Some("local-development-salt")).unwrap(), "local-development-salt");
        assert_eq!(ip_hash_salt(Environment::Development, Some(GOOD_SALT)).unwrap(), GOOD_SALT);
    }

    fn production() -> Settings<'static> {
        Settings {
            mm_env: None,
            clickhouse_url: Some("https://abc.eu-west-1.aws.clickhouse.cloud:8443"),
            clickhouse_user: Some("millimetric_writer"),
            clickhouse_password: Some("writer-secret-value"),
            clickhouse_read_user: Some("millimetric_reader"),
            clickhouse_read_password: Some("reader-secret-value"),
            clickhouse_maintenance_user: Some("millimetric_maintenance"),
            clickhouse_maintenance_password: Some("maintenance-secret-value"),
            ip_hash_salt: Some(GOOD_SALT),
            id_hash_secret: Some("another-random-secret-0123456789abcdef"),
            admin_token: Some("a-long-admin-token-0123456789abcdef"),
            error_monitor_dsn: Some("https://0123abcd@o1.ingest.sentry.io/42"),
        }
    }

    fn status(r: &Report, name: &str) -> Status {
        r.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}")).status
    }

    #[test]
    fn a_complete_production_config_passes() {
        let r = report(&production());
        assert_eq!(r.environment, Environment::Production);
        assert!(r.ok, "{r:?}");
        assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{r:?}");
    }

    #[test]
    fn production_failures() {
        let r = report(&Settings { ip_hash_salt: Some(DEFAULT_IP_HASH_SALT), ..production() });
        assert!(!r.ok);
        assert_eq!(status(&r, "ip_hash_salt"), Status::Fail);
        let r = report(&Settings { clickhouse_url: Some("http://127.0.0.1:8123"), ..production() });
        assert_eq!(status(&r, "clickhouse_url"), Status::Fail);
        let r = report(&Settings { clickhouse_url: Some("http://ch.example.com:8123"), ..production() });
        assert_eq!(status(&r, "clickhouse_url"), Status::Fail);
        let r = report(&Settings { clickhouse_user: Some("default"), clickhouse_password: Some(""), ..production() });
        assert_eq!((status(&r, "clickhouse_user"), status(&r, "clickhouse_password")), (Status::Fail, Status::Fail));
        let r = report(&Settings { clickhouse_read_password: None, ..production() });
        assert_eq!(status(&r, "clickhouse_read_user"), Status::Fail);
        for dsn in [None, Some("not a dsn")] {
            let r = report(&Settings { error_monitor_dsn: dsn, ..production() });
            assert_eq!((status(&r, "error_monitor"), r.ok), (Status::Warn, true), "{dsn:?}: works without one, says so");
        }
        let r = report(&Settings { admin_token: None, ..production() });
        assert_eq!(status(&r, "admin_token"), Status::Fail);
        for secret in [None, Some(DEFAULT_ID_HASH_SECRET), Some("short")] {
            let r = report(&Settings { id_hash_secret: secret, ..production() });
            assert_eq!(status(&r, "id_hash_secret"), Status::Fail, "{secret:?}");
            assert!(!r.ok);
        }
    }

    #[test]
    fn the_id_hash_secret_falls_back_only_in_development() {
        let good = "another-random-secret-0123456789abcdef";
        assert_eq!(id_hash_secret(Environment::Production, Some(good)), Some(IdSecret::new(good)));
        assert_eq!(id_hash_secret(Environment::Production, None), None);
        assert_eq!(id_hash_secret(Environment::Production, Some(DEFAULT_ID_HASH_SECRET)), None);
        assert_eq!(id_hash_secret(Environment::Production, Some("short")), None);
        assert_eq!(id_hash_secret(Environment::Development, None), Some(IdSecret::new(DEFAULT_ID_HASH_SECRET)));
        assert_eq!(id_hash_secret(Environment::Development, Some("short")), Some(IdSecret::new("short")));
    }

    #[test]
    fn production_warnings_do_not_fail_the_report() {
        let r = report(&Settings {
            clickhouse_read_user: None,
            clickhouse_maintenance_user: Some("millimetric_writer"),
            admin_token: Some("short"),
            ..production()
        });
        assert!(r.ok, "{r:?}");
        assert_eq!(status(&r, "clickhouse_read_user"), Status::Warn);
        assert_eq!(status(&r, "clickhouse_maintenance_user"), Status::Warn);
        assert_eq!(status(&r, "admin_token"), Status::Warn);
    }

    #[test]
    fn local_development_only_warns() {
        // What scripts/dev and the e2e harness run with: one local user, the public salt.
        let r = report(&Settings {
            mm_env: Some("development"),
            clickhouse_url: Some("http://127.0.0.1:8123"),
            clickhouse_user: Some("millimetric"),
            clickhouse_password: Some("millimetric-dev"),
            admin_token: Some("dev-admin-token"),
            ..Settings::default()
        });
        assert_eq!(r.environment, Environment::Development);
        assert!(r.ok, "{r:?}");
        assert_eq!(status(&r, "ip_hash_salt"), Status::Warn);
        assert_eq!(status(&r, "clickhouse_read_user"), Status::Ok);
    }

    #[test]
    fn the_report_never_contains_a_secret() {
        let s = production();
        let json = serde_json::to_string(&report(&s)).unwrap();
        for secret in [
            s.clickhouse_password,
            s.clickhouse_read_password,
            s.clickhouse_maintenance_password,
            s.ip_hash_salt,
            s.id_hash_secret,
            s.error_monitor_dsn,
            s.admin_token,
        ] {
            assert!(!json.contains(secret.unwrap()), "{json}");
        }
        let weak = Settings { ip_hash_salt: Some("tooshort-salt"), admin_token: Some("short-token"), ..production() };
        let json = serde_json::to_string(&report(&weak)).unwrap();
        assert!(!json.contains("tooshort-salt") && !json.contains("short-token"), "{json}");
    }

    #[test]
    fn bench_stops_only_in_local_development() {
        assert_eq!(bench_stop(Environment::Development, Some("rows")), Some(BenchStop::Rows));
        assert_eq!(bench_stop(Environment::Development, Some("auth")), Some(BenchStop::Auth));
        assert_eq!(bench_stop(Environment::Development, Some("limits")), Some(BenchStop::Limits));
        assert_eq!(bench_stop(Environment::Development, Some("everything")), None);
        assert_eq!(bench_stop(Environment::Development, None), None);
        // Production never drops an accepted event, whatever the setting says.
        for v in ["auth", "limits", "rows"] {
            assert_eq!(bench_stop(Environment::Production, Some(v)), None);
        }
    }
}
