//! ClickHouse over HTTP, the pure half: how an insert request is spelled, how a failure is
//! classified (retry later, or dead-letter now), and which servers get async inserts.
//! The Worker's sink (workers/adapters/src/clickhouse_sink.rs) only sends what this builds.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseConfig {
    /// Base URL of the HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub database: String,
    pub table: String,
    pub user: String,
    pub password: String,
    pub async_insert: AsyncInsert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncInsert {
    /// Use it when the server's version has it (21.11+).
    Auto,
    On,
    Off,
}

impl AsyncInsert {
    pub fn parse(s: &str) -> AsyncInsert {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" | "1" | "true" => AsyncInsert::On,
            "off" | "0" | "false" => AsyncInsert::Off,
            _ => AsyncInsert::Auto,
        }
    }
}

/// Which ClickHouse credential a statement goes out with. Each may be its own ClickHouse user
/// with only the grants its statements need (docs/deploy.md, "2. ClickHouse Cloud"):
/// - `Writer` (CLICKHOUSE_USER): the batch writer's `INSERT INTO events` (and `SELECT
///   version()`, which needs no grant);
/// - `Reader` (CLICKHOUSE_READ_USER): visitor export, `SELECT ... FROM events FINAL`;
/// - `Maintainer` (CLICKHOUSE_MAINTENANCE_USER): erasures (`ALTER TABLE events DELETE`) and
///   the retention job (`SELECT ... FROM system.parts`, `ALTER TABLE events DROP PARTITION`)
///   and the rollup job (`SELECT` from events and rollup_done, `INSERT` into the `*_rollup`
///   tables, whose views write the `*_agg` tables, and into rollup_done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
    Maintainer,
    /// Usage counters (core/src/usage): INSERT on `usage_counts` only, from both Workers.
    Counter,
}

impl Role {
    pub fn user_var(self) -> &'static str {
        match self {
            Role::Writer => "CLICKHOUSE_USER",
            Role::Reader => "CLICKHOUSE_READ_USER",
            Role::Maintainer => "CLICKHOUSE_MAINTENANCE_USER",
            Role::Counter => "CLICKHOUSE_USAGE_USER",
        }
    }

    pub fn password_var(self) -> &'static str {
        match self {
            Role::Writer => "CLICKHOUSE_PASSWORD",
            Role::Reader => "CLICKHOUSE_READ_PASSWORD",
            Role::Maintainer => "CLICKHOUSE_MAINTENANCE_PASSWORD",
            Role::Counter => "CLICKHOUSE_USAGE_PASSWORD",
        }
    }
}

/// (user, password) for `role`, from `lookup` (a variable's value, None when unset): the
/// role's own pair when its user is set, else the writer's (locally one user does it all;
/// `GET /admin/config-check` reports a deployment where that is so). No writer user: `default`.
pub fn credentials(role: Role, lookup: impl Fn(&str) -> Option<String>) -> (String, String) {
    let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let own = if role == Role::Writer { None } else { get(role.user_var()).map(|u| (u, get(role.password_var()))) };
    let (user, password) = own.unwrap_or_else(|| (get("CLICKHOUSE_USER").unwrap_or_else(|| "default".into()), get("CLICKHOUSE_PASSWORD")));
    (user, password.unwrap_or_default())
}

/// async_insert arrived in ClickHouse 21.11; older servers refuse the setting.
pub fn server_supports_async_insert(version: &str) -> bool {
    let mut it = version.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (21, 11)
}

/// A plain database or table name (the only kind we put into SQL text).
fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !s.as_bytes()[0].is_ascii_digit()
}

impl ClickHouseConfig {
    /// Err unless the database and table names are plain identifiers: every statement that
    /// names them (insert, retention, visitors) asks this first.
    pub fn check_names(&self) -> Result<(), String> {
        if is_identifier(&self.database) && is_identifier(&self.table) {
            Ok(())
        } else {
            Err(format!("invalid database or table name: {}.{}", self.database, self.table))
        }
    }
}

/// The URL of one `INSERT ... FORMAT JSONEachRow`; rows go in the body. `use_async`: the
/// caller decided (config + server version) that async inserts are wanted and available.
pub fn insert_url(cfg: &ClickHouseConfig, use_async: bool) -> Result<String, String> {
    cfg.check_names()?;
    let mut url = Url::parse(&cfg.url).map_err(|e| format!("invalid CLICKHOUSE_URL: {e}"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("query", &format!("INSERT INTO {}.{} FORMAT JSONEachRow", cfg.database, cfg.table));
        // An unknown field is a schema mismatch: fail loudly rather than drop data.
        q.append_pair("input_format_skip_unknown_fields", "0");
        q.append_pair("allow_experimental_low_cardinality_type", "1");
        if use_async {
            q.append_pair("async_insert", "1");
            // Only answer once the rows are written, so an ack means stored.
            q.append_pair("wait_for_async_insert", "1");
        }
    }
    Ok(url.into())
}

/// The most rows one read returns (`max_result_rows` of READ_LIMITS).
pub const READ_MAX_RESULT_ROWS: u64 = 100_000;

/// What one read may use (the Stats API's statements): past any of these ClickHouse stops it
/// and the client hears how to narrow the query (query::plan::refusal).
pub const READ_LIMITS: &[(&str, &str)] = &[
    ("max_execution_time", "15"),
    ("max_memory_usage", "2000000000"),
    ("max_result_rows", "100000"), // READ_MAX_RESULT_ROWS
    ("result_overflow_mode", "throw"),
    ("max_rows_to_read", "2000000000"),
    // Buffer the answer until the query ends, so a limit hit after the first rows is an HTTP
    // error (and the client's 422), not a 200 with an error line at its end.
    ("wait_end_of_query", "1"),
];

/// The URL for a read (statement in the body): the read limits as settings. The read user's
/// profile is `readonly = 2`, which lets a query lower its own limits but change nothing else.
pub fn read_url(cfg: &ClickHouseConfig) -> Result<String, String> {
    let mut url = Url::parse(&cfg.url).map_err(|e| format!("invalid CLICKHOUSE_URL: {e}"))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in READ_LIMITS {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}

/// A statement as it is posted: (the URL, with `settings` only; the body, the statement).
/// ClickHouse before 21.5 refuses URLs over 16 KiB, and a statement (an erasure's list of ids)
/// may be longer.
pub fn statement_post(cfg: &ClickHouseConfig, sql: &str, settings: &[(&str, &str)]) -> Result<(String, String), String> {
    let mut url = Url::parse(&cfg.url).map_err(|e| format!("invalid CLICKHOUSE_URL: {e}"))?;
    if !settings.is_empty() {
        url.query_pairs_mut().extend_pairs(settings);
    }
    Ok((url.into(), sql.to_string()))
}

/// The settings of a statement that names a visitor (an export's or an erasure's ids): kept
/// out of ClickHouse's own query log (`system.query_log`, on by default in modern servers and
/// ClickHouse Cloud), so an erased visitor's id does not outlive the erasure there. The read
/// user's `readonly = 2` lets a statement set it.
pub const UNLOGGED: &[(&str, &str)] = &[("log_queries", "0")];

/// A count in a JSONEachRow answer: ClickHouse writes 64-bit integers quoted by default
/// (`output_format_json_quote_64bit_integers`), smaller ones bare.
pub fn json_u64(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// What to do with a batch after ClickHouse answered (or did not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Stored,
    /// Worth trying again later: the server is down, overloaded, or timed out.
    Retry {
        reason: String,
    },
    /// ClickHouse (or a proxy in front) refused our credentials: a rotated password, a
    /// revoked grant, a proxy's 401. An operator can fix it, so it is retried for
    /// AUTH_RETRY_SECONDS, with an alarm in the log each time, before it is dead-lettered.
    AuthFailed {
        code: Option<u32>,
        reason: String,
    },
    /// The table is not there: migration 0009 renames `events` away while it copies it, or
    /// `CLICKHOUSE_TABLE` names no table. Retried with an alarm, like AuthFailed, for
    /// AUTH_RETRY_SECONDS, then dead-lettered with the reason.
    MissingTable {
        reason: String,
    },
    /// Retrying cannot fix it (schema mismatch, bad data): dead-letter it (replayable).
    Fatal {
        code: Option<u32>,
        reason: String,
    },
}

/// ClickHouse error codes about who we are, not what we sent.
const AUTH_CODES: &[u32] = &[
    192, // UNKNOWN_USER
    193, // WRONG_PASSWORD
    194, // REQUIRED_PASSWORD
    497, // ACCESS_DENIED
    516, // AUTHENTICATION_FAILED
];

/// How long an authentication failure is retried before its message is dead-lettered: long
/// enough for someone to answer the alarm and fix the secret, short of the queue's own
/// limits (wrangler.toml: max_retries 100 at up to 300 s apart is over 8 hours).
pub const AUTH_RETRY_SECONDS: u64 = 6 * 3600;

/// What the batch writer does with a message after a failed insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureAction {
    /// Try again after `delay_s`; `alarm`: a line for whoever watches the logs.
    Retry {
        delay_s: u32,
        alarm: Option<String>,
    },
    DeadLetter {
        code: Option<u32>,
        reason: String,
    },
}

/// The decision for a message `age_s` seconds old whose insert ended in `outcome` (not Stored).
pub fn on_failure(outcome: &InsertOutcome, age_s: u64) -> FailureAction {
    let hours = AUTH_RETRY_SECONDS / 3600;
    match outcome {
        InsertOutcome::Stored | InsertOutcome::Retry { .. } => FailureAction::Retry { delay_s: retry_delay_seconds(age_s), alarm: None },
        InsertOutcome::AuthFailed { code, reason } => retried_with_an_alarm(
            age_s,
            format!(
                "ALARM clickhouse_auth_failed: ClickHouse refused the batch writer's credentials (code {code:?}: {reason}); \
                 retrying for up to {hours} h from each message's first attempt, then dead-lettering. Fix CLICKHOUSE_USER / CLICKHOUSE_PASSWORD or the proxy."
            ),
            *code,
            format!("authentication kept failing for {hours} h: {reason}"),
        ),
        InsertOutcome::MissingTable { reason } => retried_with_an_alarm(
            age_s,
            format!(
                "ALARM clickhouse_table_missing: {reason}; retrying for up to {hours} h from each message's first attempt, then dead-lettering. \
                 Expected while migration 0009 copies `events`; otherwise check CLICKHOUSE_TABLE and the migrations."
            ),
            Some(UNKNOWN_TABLE),
            format!("the table was missing for {hours} h: {reason}"),
        ),
        InsertOutcome::Fatal { code, reason } => FailureAction::DeadLetter { code: *code, reason: reason.clone() },
    }
}

/// A failure an operator can fix: retried with `alarm` in the log each time until the message
/// is AUTH_RETRY_SECONDS old, then dead-lettered with `code` and `given_up` as the reason.
fn retried_with_an_alarm(age_s: u64, alarm: String, code: Option<u32>, given_up: String) -> FailureAction {
    if age_s < AUTH_RETRY_SECONDS {
        FailureAction::Retry { delay_s: retry_delay_seconds(age_s), alarm: Some(alarm) }
    } else {
        FailureAction::DeadLetter { code, reason: given_up }
    }
}

/// ClickHouse's code for a table that does not exist.
pub const UNKNOWN_TABLE: u32 = 60;
/// ClickHouse's code for a table that exists already (a CREATE or RENAME onto it).
pub const TABLE_ALREADY_EXISTS: u32 = 57;

/// ClickHouse error codes that retrying will not fix.
const FATAL_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    8,   // THERE_IS_NO_COLUMN
    16,  // NO_SUCH_COLUMN_IN_TABLE
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    62,  // SYNTAX_ERROR
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    81,  // UNKNOWN_DATABASE
    115, // UNKNOWN_SETTING
    117, // INCORRECT_DATA (unknown field in JSONEachRow)
];

/// `Code: 117, e.displayText() = ...` (18.x) or `Code: 117. DB::Exception: ...` (modern).
pub fn error_code(body: &str) -> Option<u32> {
    let rest = &body[body.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Whether the error is about the data (one bad row fails the batch, so re-trying the batch's
/// messages one by one isolates it) rather than about the table or credentials (all fail).
pub fn is_data_error(code: Option<u32>) -> bool {
    matches!(code, Some(6 | 26 | 27 | 38 | 41 | 70 | 72))
}

/// Classify an HTTP answer. `status` None: the request did not complete (connection refused,
/// timeout). `header_code`: `X-ClickHouse-Exception-Code` when the server sends it.
pub fn classify(status: Option<u16>, header_code: Option<&str>, body: &str) -> InsertOutcome {
    let Some(status) = status else {
        return InsertOutcome::Retry { reason: format!("ClickHouse unreachable: {}", first_line(body)) };
    };
    if (200..300).contains(&status) {
        return InsertOutcome::Stored;
    }
    let code = header_code.and_then(|c| c.trim().parse().ok()).or_else(|| error_code(body));
    let reason = format!("HTTP {status}: {}", first_line(body));
    if code.is_some_and(|c| AUTH_CODES.contains(&c)) || matches!(status, 401 | 403) {
        return InsertOutcome::AuthFailed { code, reason };
    }
    // A missing table is waited for, not dead-lettered at once: migration 0009 renames
    // `events` away while it copies it (18.16 answers it with HTTP 404).
    if code == Some(UNKNOWN_TABLE) {
        return InsertOutcome::MissingTable { reason };
    }
    let fatal = code.map(|c| FATAL_CODES.contains(&c)).unwrap_or(false) || status == 404;
    if fatal {
        InsertOutcome::Fatal { code, reason }
    } else {
        InsertOutcome::Retry { reason }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

/// How often the events queue retries a message before it goes to the dead-letter queue
/// (workers/edge/wrangler.toml: `max_retries`, checked by tests/limits_match_config.rs).
pub const EVENTS_QUEUE_MAX_RETRIES: u32 = 100;

/// The longest an accepted event waits on the events queue before it is stored or
/// dead-lettered: every retry taken, each after `retry_delay_seconds` (about 7.7 hours).
/// Its `received_at` is then that much older than its insert: the rollup looks back as far.
pub fn longest_queue_stay_seconds() -> u64 {
    (0..EVENTS_QUEUE_MAX_RETRIES).fold(0u64, |age, _| age + u64::from(retry_delay_seconds(age)))
}

/// Delay before a failed message is tried again, from how long it has already waited:
/// roughly doubling (2 s, 4 s, 8 s ...) and capped at 5 minutes.
pub fn retry_delay_seconds(age_seconds: u64) -> u32 {
    age_seconds.clamp(2, 300) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read limit's rows, as the planner bounds its statements by them (READ_MAX_RESULT_ROWS).
    #[test]
    fn the_read_limits_rows_are_one_number() {
        assert!(READ_LIMITS.contains(&("max_result_rows", READ_MAX_RESULT_ROWS.to_string().as_str())));
    }

    fn cfg() -> ClickHouseConfig {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "millimetric".into(),
            table: "events".into(),
            user: "u".into(),
            password: "p".into(),
            async_insert: AsyncInsert::Auto,
        }
    }

    #[test]
    fn insert_url_spells_the_query_and_settings() {
        let u = insert_url(&cfg(), false).unwrap();
        let parsed = Url::parse(&u).unwrap();
        let q: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert!(q.contains(&("query".into(), "INSERT INTO millimetric.events FORMAT JSONEachRow".into())));
        assert!(q.contains(&("input_format_skip_unknown_fields".into(), "0".into())));
        assert!(!u.contains("async_insert"));
        assert!(insert_url(&cfg(), true).unwrap().contains("async_insert=1&wait_for_async_insert=1"));
        let mut bad = cfg();
        bad.table = "events; DROP TABLE x".into();
        assert!(insert_url(&bad, false).is_err());
    }

    #[test]
    fn statements_naming_a_visitor_stay_out_of_the_query_log() {
        let (url, _) = statement_post(&cfg(), "SELECT 1", UNLOGGED).unwrap();
        let q: Vec<(String, String)> = Url::parse(&url).unwrap().query_pairs().into_owned().collect();
        assert_eq!(q, [("log_queries".to_string(), "0".to_string())]);
        assert!(!statement_post(&cfg(), "SELECT 1", &[]).unwrap().0.contains("log_queries"));
    }

    #[test]
    fn a_statement_travels_in_the_body_so_its_size_never_meets_the_url_limit() {
        // ClickHouse before 21.5 refuses URLs over 16 KiB: a day's erasures of a busy project
        // (visitors' ids, one mutation) are longer than that.
        let ids: Vec<String> = (0..600).map(|i| format!("{i:08}-0000-4000-8000-000000000000")).collect();
        let erasures: Vec<(String, String)> = ids.iter().map(|v| ("proj_a".to_string(), v.clone())).collect();
        for crate::privacy::visitors::Deletion { sql, .. } in
            crate::privacy::visitors::erase_many_sql("millimetric", "events", &erasures, 128 * 1024)
        {
            assert!(sql.len() > 16 * 1024, "the case must be long enough to matter");
            for settings in [&[][..], UNLOGGED] {
                let (url, body) = statement_post(&cfg(), &sql, settings).unwrap();
                assert!(url.len() < 200 && !url.contains("ALTER"), "{url}");
                assert_eq!(body, sql);
            }
        }
    }

    #[test]
    fn each_role_has_its_own_credential_or_the_writers() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let split = vars(&[
            ("CLICKHOUSE_USER", "writer"),
            ("CLICKHOUSE_PASSWORD", "wpw"),
            ("CLICKHOUSE_READ_USER", "reader"),
            ("CLICKHOUSE_READ_PASSWORD", "rpw"),
            ("CLICKHOUSE_MAINTENANCE_USER", "maint"),
            ("CLICKHOUSE_MAINTENANCE_PASSWORD", "mpw"),
        ]);
        assert_eq!(credentials(Role::Writer, split), ("writer".into(), "wpw".into()));
        assert_eq!(credentials(Role::Reader, split), ("reader".into(), "rpw".into()));
        assert_eq!(credentials(Role::Maintainer, split), ("maint".into(), "mpw".into()));
        // One user (local development): every role is the writer; never the writer's user
        // with another role's password, or the other way round.
        let one = vars(&[
            ("CLICKHOUSE_USER", "millimetric"),
            ("CLICKHOUSE_PASSWORD", "pw"),
            ("CLICKHOUSE_READ_USER", " "),
            ("CLICKHOUSE_MAINTENANCE_PASSWORD", "stray"),
        ]);
        for role in [Role::Writer, Role::Reader, Role::Maintainer] {
            assert_eq!(credentials(role, one), ("millimetric".into(), "pw".into()), "{role:?}");
        }
        let reader_without_password = vars(&[("CLICKHOUSE_USER", "w"), ("CLICKHOUSE_PASSWORD", "wpw"), ("CLICKHOUSE_READ_USER", "r")]);
        assert_eq!(credentials(Role::Reader, reader_without_password), ("r".into(), "".into()));
        assert_eq!(credentials(Role::Writer, vars(&[])), ("default".into(), "".into()));
    }

    #[test]
    fn reads_carry_their_limits() {
        let u = read_url(&cfg()).unwrap();
        for want in ["max_execution_time=15", "max_result_rows=100000", "result_overflow_mode=throw", "max_memory_usage="] {
            assert!(u.contains(want), "{u}");
        }
        let parsed = Url::parse(&u).unwrap();
        assert!(parsed.query_pairs().all(|(k, _)| k != "query"), "the statement goes in the body: {u}");
    }

    #[test]
    fn async_insert_only_on_servers_that_have_it() {
        assert!(!server_supports_async_insert("18.16.1"));
        assert!(!server_supports_async_insert("21.10.2.15"));
        assert!(server_supports_async_insert("21.11.1"));
        assert!(server_supports_async_insert("25.8.1.1"));
        assert!(!server_supports_async_insert("garbage"));
        assert_eq!(AsyncInsert::parse("OFF"), AsyncInsert::Off);
        assert_eq!(AsyncInsert::parse(""), AsyncInsert::Auto);
    }

    #[test]
    fn classification() {
        assert_eq!(classify(Some(200), None, ""), InsertOutcome::Stored);
        assert!(matches!(classify(None, None, "connection refused"), InsertOutcome::Retry { .. }));
        let old = "Code: 117, e.displayText() = DB::Exception: Unknown field found while parsing JSONEachRow format: title, e.what() = DB::Exception\n";
        assert_eq!(error_code(old), Some(117));
        assert!(matches!(classify(Some(500), None, old), InsertOutcome::Fatal { code: Some(117), .. }));
        let modern = "Code: 516. DB::Exception: default: Authentication failed";
        assert!(matches!(classify(Some(516), None, modern), InsertOutcome::AuthFailed { code: Some(516), .. }));
        assert!(matches!(
            classify(Some(401), None, "Code: 193, e.displayText() = wrong password"),
            InsertOutcome::AuthFailed { code: Some(193), .. }
        ));
        assert!(matches!(classify(Some(403), None, "<html>Forbidden</html>"), InsertOutcome::AuthFailed { code: None, .. }));
        assert!(matches!(classify(Some(500), Some("497"), "Not enough privileges"), InsertOutcome::AuthFailed { .. }));
        assert!(matches!(classify(Some(500), Some("252"), "Too many parts"), InsertOutcome::Retry { .. }));
        assert!(matches!(classify(Some(503), None, "Service Unavailable"), InsertOutcome::Retry { .. }));
        assert!(is_data_error(Some(27)) && !is_data_error(Some(117)));
        // `events` renamed away while migration 0009 copies it: waited for, not dead-lettered
        // at once (18.16 answers an unknown table with HTTP 404).
        let gone = "Code: 60, e.displayText() = DB::Exception: Table millimetric.events doesn't exist., e.what() = DB::Exception";
        assert!(matches!(classify(Some(404), None, gone), InsertOutcome::MissingTable { .. }));
        let modern = classify(Some(404), Some("60"), "Table `millimetric`.`events` doesn't exist. (UNKNOWN_TABLE)");
        assert!(matches!(modern, InsertOutcome::MissingTable { .. }));
        // With an alarm each time, then dead-lettered with the reason.
        assert!(matches!(on_failure(&modern, 60), FailureAction::Retry { alarm: Some(a), .. } if a.contains("clickhouse_table_missing")));
        assert!(
            matches!(on_failure(&modern, AUTH_RETRY_SECONDS), FailureAction::DeadLetter { code: Some(60), reason } if reason.contains("missing"))
        );
        assert!(matches!(classify(Some(404), Some("81"), "Database millimetric doesn't exist"), InsertOutcome::Fatal { .. }));
    }

    /// A rotated password is not a reason to give data up: retried with an alarm for
    /// AUTH_RETRY_SECONDS, then dead-lettered with the reason (and replayable from there).
    #[test]
    fn authentication_failures_are_retried_with_an_alarm_then_dead_lettered() {
        let auth = classify(Some(401), None, "Code: 193, e.displayText() = DB::Exception: Wrong password for user millimetric");
        match on_failure(&auth, 0) {
            FailureAction::Retry { delay_s: 2, alarm: Some(a) } => {
                assert!(a.starts_with("ALARM clickhouse_auth_failed") && a.contains("CLICKHOUSE_PASSWORD"), "{a}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(on_failure(&auth, AUTH_RETRY_SECONDS - 1), FailureAction::Retry { delay_s: 300, alarm: Some(_) }));
        match on_failure(&auth, AUTH_RETRY_SECONDS) {
            FailureAction::DeadLetter { code: Some(193), reason } => assert!(reason.contains("6 h"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // The queue must keep retrying at least that long: its retries (wrangler.toml), each at
        // most 300 s apart once the message is old, cover it.
        let age = longest_queue_stay_seconds();
        assert!(age > AUTH_RETRY_SECONDS, "the queue's retries span only {age} s");
        // Down or overloaded: retried, no alarm; bad data: dead-lettered at once.
        assert!(matches!(on_failure(&InsertOutcome::Retry { reason: "down".into() }, 10), FailureAction::Retry { alarm: None, .. }));
        assert!(matches!(on_failure(&InsertOutcome::Fatal { code: Some(27), reason: "r".into() }, 0), FailureAction::DeadLetter { .. }));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(retry_delay_seconds(0), 2);
        assert_eq!(retry_delay_seconds(8), 8);
        assert_eq!(retry_delay_seconds(100_000), 300);
    }
}
