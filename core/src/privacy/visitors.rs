//! Export and erasure of one visitor's events, on request (the public promise: "erase and
//! export by visitor"). A visitor is the snippet's anonymous id (`mm_aid`) within a project.
//!
//! `GET /visitors/{mm_aid}/events` answers the visitor's stored events as NDJSON (a secret or
//! read-only key); `DELETE /visitors/{mm_aid}` deletes them (a secret key only). The key names
//! the project: a key never reaches another project's visitors.

use crate::error::ApiError;
use crate::ingest::event::LIMITS;
use crate::storage::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Export,
    Erase,
}

/// What the path asks for: `/visitors/{id}/events` (export) or `/visitors/{id}` (erase), with
/// the id percent-decoded. None when the path is not under /visitors/ at all.
pub fn parse_path(path: &str) -> Option<(Action, Result<String, ApiError>)> {
    let rest = path.strip_prefix("/visitors/")?;
    let (segment, action) = match rest.strip_suffix("/events") {
        Some(id) => (id, Action::Export),
        None => (rest, Action::Erase),
    };
    Some((action, visitor_id(segment)))
}

fn visitor_id(segment: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_visitor_id",
            format!(
                "The visitor id in the path must be the `mm_aid` the events carried: 1 to {} bytes, percent-encoded.",
                LIMITS.max_id_bytes
            ),
        )
    };
    if segment.contains('/') {
        return Err(bad());
    }
    let decoded = crate::percent::decode_strict(segment).ok_or_else(bad)?;
    // Exactly the ids ingestion takes (event::check_id): an id that can be stored can be erased.
    match crate::ingest::event::check_id("mm_aid", Some(decoded), &LIMITS) {
        Ok(Some(id)) => Ok(id),
        _ => Err(bad()),
    }
}

/// The index of the days each visitor has events on, keyed by a hash of the visitor's id
/// (migrations/0007, `sql::id_hash`).
pub const DAYS_TABLE: &str = "visitor_day_hashes";

/// The rows of `table` that carry any of the ids a visitor's rows may carry: the id as stored
/// (its keyed hash when it is personal data, `privacy::pseudonym`) and, when that differs, the
/// id as given, which rows written before identifiers were hashed carry. As a condition:
/// `anonymous_id IN ('mmh_...', 'v-1')`. An id that is personal data (an e-mail address the
/// client named the visitor by) is matched by its hash, never spelled: a statement's text
/// outlives it in the server's logs and, for an erasure, in `system.mutations`.
fn visitor_in(table: &str, visitor_ids: &[&str]) -> String {
    let (hashed, spelled): (Vec<&str>, Vec<&str>) =
        visitor_ids.iter().partition(|v| table == DAYS_TABLE || crate::enrich::pii::is_personal_id(v));
    let by_hash = format!("{} IN ({})", hashed_column(table), joined(hashed.iter().map(|v| sql::id_hash(v))));
    let by_id = format!("anonymous_id IN ({})", joined(spelled.iter().map(|v| sql::string(v))));
    match (hashed.is_empty(), spelled.is_empty()) {
        (true, _) => by_id,
        (false, true) => by_hash,
        (false, false) => format!("({by_id} OR {by_hash})"),
    }
}

/// SQL literals, a run of repeats written once, comma-separated.
fn joined(literals: impl Iterator<Item = String>) -> String {
    let mut literals: Vec<String> = literals.collect();
    literals.dedup();
    literals.join(", ")
}

/// The visitor's events as ClickHouse answers them: one JSON object per line, oldest first,
/// each event once however often it was retried (FINAL). Only the days the visitor has events
/// on are read (the days index, then the sort key's day), not the project's whole table.
pub fn export_sql(database: &str, table: &str, project_id: &str, visitor_ids: &[&str]) -> String {
    let p = sql::string(project_id);
    let (days, events) = (visitor_in(DAYS_TABLE, visitor_ids), visitor_in(table, visitor_ids));
    format!(
        "SELECT * FROM {database}.{table} FINAL WHERE project_id = {p} AND toDate(timestamp) IN (SELECT day FROM {database}.{DAYS_TABLE} WHERE project_id = {p} AND {days}) \
         AND {events} ORDER BY timestamp, event_id FORMAT JSONEachRow"
    )
}

/// How `table` names a visitor by the hash of the id (`sql::id_hash_of`): the days index holds
/// it, the events' column gives it. A deletion names every id so, never spelled: the path of an
/// erasure may name a user id, which is stored only as its keyed hash (`privacy::pseudonym`),
/// and spelled it would outlive the rows in `system.mutations`, and for days in the erasure's
/// record. A read (`visitor_in`) names so the days, and the ids that are personal data.
fn hashed_column(table: &str) -> String {
    if table == DAYS_TABLE {
        "visitor_hash".to_string()
    } else {
        sql::id_hash_of("anonymous_id")
    }
}

/// Deletes the visitor's events, and their days from the days index (mutations: ClickHouse
/// rewrites the parts that hold them, in the background, usually within seconds). Each id is
/// named by its hash (`hashed_column`).
pub fn erase_sql(database: &str, table: &str, project_id: &str, visitor_ids: &[&str]) -> [String; 2] {
    let p = sql::string(project_id);
    let hashes = joined(visitor_ids.iter().map(|v| sql::id_hash(v)));
    [table, DAYS_TABLE].map(|t| format!("ALTER TABLE {database}.{t} DELETE WHERE project_id = {p} AND {} IN ({hashes})", hashed_column(t)))
}

/// An erased visitor as the daily re-run knows it, from its record (`parse_erasure_key`): the
/// project, and the hash of the id (`sql::id_hash_hex`), never the id itself.
pub type Erased = (String, String);

/// The erased visitor `id` of `project`.
pub fn erased(project_id: &str, id: &str) -> Erased {
    (project_id.to_string(), sql::id_hash_hex(id))
}

/// One statement of `erase_many_sql`: the project it deletes from, whether from the events
/// themselves (else from the days index), and the mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub project: String,
    pub of_events: bool,
    pub sql: String,
}

/// The daily re-application of recent erasures, batched: one mutation per project (several
/// only when its list of visitors would pass `max_bytes` of SQL), each deleting all of that
/// project's erased visitors at once, by their hashes. Projects in order; ids deduplicated.
pub fn erase_many_sql(database: &str, table: &str, erasures: &[Erased], max_bytes: usize) -> Vec<Deletion> {
    let mut by_project: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = std::collections::BTreeMap::new();
    for (p, hash) in erasures {
        by_project.entry(p).or_default().insert(hash);
    }
    let mut out = Vec::new();
    for ((project, hashes), t, of_events) in by_project.iter().flat_map(|pv| [(pv, table, true), (pv, DAYS_TABLE, false)]) {
        let project = *project;
        let head = format!("ALTER TABLE {database}.{t} DELETE WHERE project_id = {} AND {} IN (", sql::string(project), hashed_column(t));
        let deletion = |ids: &[String]| Deletion { project: project.to_string(), of_events, sql: format!("{head}{})", ids.join(", ")) };
        let mut cur: Vec<String> = Vec::new();
        let mut len = head.len() + 1;
        for hash in hashes {
            let lit = sql::id_hash_literal(hash);
            if !cur.is_empty() && len + lit.len() + 2 > max_bytes {
                out.push(deletion(&cur));
                cur.clear();
                len = head.len() + 1;
            }
            len += lit.len() + 2;
            cur.push(lit);
        }
        if !cur.is_empty() {
            out.push(deletion(&cur));
        }
    }
    out
}

/// The count of the rows a deletion of ours (`ALTER TABLE t DELETE WHERE c`) would delete:
/// the daily re-application asks it first and sends the mutation only when it is not 0, so
/// erasures whose rows are gone cost no rewrite of the table's parts, and an export running
/// then is not ended by a deletion that deletes nothing.
pub fn probe_sql(deletion: &str) -> Option<String> {
    let (table, condition) = deletion.strip_prefix("ALTER TABLE ")?.split_once(" DELETE WHERE ")?;
    Some(format!("SELECT count() FROM {table} WHERE {condition} FORMAT TSV"))
}

/// Whether a re-applied deletion is sent, from its probe's answer (`probe_sql`): when rows are
/// left, and when the count cannot be read (ClickHouse's error, or a credential without
/// SELECT on that table): a deletion too many costs a rewrite of parts, one too few would
/// keep an erased visitor's rows.
pub fn deletion_needed<E>(probe: Result<&str, E>) -> bool {
    match probe {
        Ok(count) => count.trim() != "0",
        Err(_) => true,
    }
}

/// The mark, in the erasures' KV beside their records, of a project whose exports the daily
/// re-run still has to delete: set before it deletes late events of an erased visitor, cleared
/// once the exports are gone, so a failure between the two is retried the next day (when no
/// rows are left to count).
pub fn exports_due_key(project_id: &str) -> String {
    format!("exports-due:{project_id}")
}

/// The project of an `exports_due_key`; None for any other key.
pub fn parse_exports_due_key(key: &str) -> Option<&str> {
    key.strip_prefix("exports-due:")
}

/// What a re-applied deletion of events means for its project's exports, which may hold the
/// events: (delete them in this run, take back the mark set for it). `marked_before`: the
/// project was already due (an earlier run, or an earlier statement of this one). Only a
/// deletion that was sent makes them due: one that failed (ClickHouse down) leaves them, and
/// tomorrow's count finds the rows again.
pub fn exports_after_deletion(marked_before: bool, deletion_sent: bool) -> (bool, bool) {
    (marked_before || deletion_sent, !marked_before && !deletion_sent)
}

/// Export and erasure requests a key may make per minute. Each erasure is a ClickHouse
/// mutation (a rewrite of the parts that hold the rows), so a flood of them must not reach it.
pub const REQUESTS_PER_MINUTE: u32 = 60;

/// How long an erasure is re-applied by the daily job. An accepted event can sit in the queue
/// while ClickHouse is down (100 retries, backoff up to 5 minutes: about 8 hours at most), so
/// an event sent before the erasure can land after it; re-applying for 8 days catches it.
pub const RECHECK_SECONDS: u64 = 8 * 24 * 3600;

/// The erasure's record in KV: the project and the hash of the visitor's id, as a JSON triple
/// (`["proj_a","id_hash","<24 hex>"]`). Never the id: it may be a user id, stored nowhere as
/// sent, and the record stays for `RECHECK_SECONDS`.
pub fn erasure_key(project_id: &str, visitor: &str) -> String {
    serde_json::to_string(&[project_id, HASHED, &sql::id_hash_hex(visitor)]).expect("three strings serialize")
}

const HASHED: &str = "id_hash";

/// The erased visitor back from a KV key; None for anything else. A record written before
/// erasures were kept as hashes (a JSON pair of the project and the id) is read as the same
/// visitor.
pub fn parse_erasure_key(key: &str) -> Option<Erased> {
    if let Ok([project, form, hash]) = serde_json::from_str::<[String; 3]>(key) {
        let is_hash = form == HASHED && hash.len() == 2 * sql::ID_HASH_BYTES && hash.bytes().all(|b| b.is_ascii_hexdigit());
        return is_hash.then(|| (project, hash.to_ascii_lowercase()));
    }
    let [project, visitor]: [String; 2] = serde_json::from_str(key).ok()?;
    Some(erased(&project, &visitor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visitor id ingestion stores can be named in the path that exports and erases it:
    /// `.` and `..` could not (a URL parser resolves `%2E` segments), so ingestion refuses them.
    #[test]
    fn every_stored_visitor_id_can_be_named_in_the_path() {
        use crate::ingest::event::validate_event;
        for id in [".", "..", "...", "a.", "%2E"] {
            let stored = validate_event(serde_json::json!({"url": "https://a.com/", "mm_aid": id}), false, &LIMITS).map(|e| e.anonymous_id);
            let enc: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
            let path = url::Url::parse(&format!("https://x.dev/visitors/{enc}/events")).unwrap().path().to_string();
            let exported = matches!(parse_path(&path), Some((Action::Export, Ok(ref got))) if got == id);
            assert!(stored.is_err() || exported, "mm_aid {id:?} is stored ({stored:?}) but GET /visitors/{enc}/events reaches {path:?}");
            assert_eq!(stored.is_err(), [".", ".."].contains(&id), "{id:?}");
        }
    }

    #[test]
    fn daily_reapply_is_one_mutation_per_project() {
        let erasures = vec![erased("a", "v1"), erased("b", "w'1"), erased("a", "v2"), erased("a", "v1")];
        let sql = erase_many_sql("millimetric", "events", &erasures, 128 * 1024);
        assert_eq!(sql.iter().map(|d| d.of_events).collect::<Vec<_>>(), [true, false, true, false]);
        let (events, h) = (sql::id_hash_of("anonymous_id"), sql::id_hash);
        let mut two = [h("v1"), h("v2")];
        two.sort(); // in the order of their hashes
        let two = two.join(", ");
        let expected: Vec<(String, String)> = vec![
            ("a".into(), format!("ALTER TABLE millimetric.events DELETE WHERE project_id = 'a' AND {events} IN ({two})")),
            ("a".into(), format!("ALTER TABLE millimetric.visitor_day_hashes DELETE WHERE project_id = 'a' AND visitor_hash IN ({two})")),
            ("b".into(), format!("ALTER TABLE millimetric.events DELETE WHERE project_id = 'b' AND {events} IN ({})", h("w'1"))),
            (
                "b".into(),
                format!("ALTER TABLE millimetric.visitor_day_hashes DELETE WHERE project_id = 'b' AND visitor_hash IN ({})", h("w'1")),
            ),
        ];
        assert_eq!(sql.iter().map(|d| (d.project.clone(), d.sql.clone())).collect::<Vec<_>>(), expected);
        // A project with more erasures than one statement holds gets a few, none too long.
        let many: Vec<Erased> = (0..5000).map(|i| erased("a", &format!("{i:0>100}"))).collect();
        let sql = erase_many_sql("millimetric", "events", &many, 128 * 1024);
        assert!(sql.len() > 2 && sql.len() < 20 && sql.iter().all(|d| d.sql.len() <= 128 * 1024));
        let ids = |table: &str| {
            sql.iter().filter(|d| d.sql.contains(&format!(".{table} "))).map(|d| d.sql.matches("unhex('").count()).sum::<usize>()
        };
        assert_eq!((ids("events"), ids(DAYS_TABLE)), (5000, 5000), "each id once per table");
    }

    #[test]
    fn paths_name_the_action_and_the_visitor() {
        assert_eq!(parse_path("/visitors/v-1/events").map(|(a, id)| (a, id.unwrap())), Some((Action::Export, "v-1".into())));
        assert_eq!(parse_path("/visitors/v-1").map(|(a, id)| (a, id.unwrap())), Some((Action::Erase, "v-1".into())));
        assert_eq!(parse_path("/visitors/a%20b%2Fc+d").map(|(_, id)| id.unwrap()), Some("a b/c+d".into()));
        assert!(parse_path("/collect").is_none());
        // Exactly the id, never a prefix of it: `&` and `#` once cut the id short (it was read
        // as a form), and `+` must not turn into a space.
        let id = |p: &str| parse_path(p).unwrap().1.unwrap();
        assert_eq!(id("/visitors/a&b"), "a&b");
        assert_eq!(id("/visitors/a%26b%23c%25d%2Be%C3%A9"), "a&b#c%d+eé");
        assert_eq!(id("/visitors/%E8%A8%AA%E5%95%8F%E8%80%85/events"), "訪問者");
        // The longest id ingestion takes (128 bytes) is taken here too.
        assert_eq!(id(&format!("/visitors/{}", "é".repeat(64))).len(), 128);
        for bad in [
            "/visitors/",
            "/visitors//events",
            "/visitors/a/b",
            "/visitors/%0A",
            "/visitors/%ZZ",
            "/visitors/%+1",
            "/visitors/%C3",
            &format!("/visitors/{}", "é".repeat(65)),
            &format!("/visitors/{}", "x".repeat(129)),
        ] {
            assert_eq!(parse_path(bad).unwrap().1.unwrap_err().code, "invalid_visitor_id", "{bad}");
        }
    }

    /// Review finding: an erasure named the id as given (an e-mail address) in its statement,
    /// whose text ClickHouse keeps in `system.mutations` and its logs after the rows are gone.
    /// And a later one: an id that does not look personal (`user-4711`) may still be a user id,
    /// stored only as its keyed hash, and was spelled, there and in the erasure's KV record.
    #[test]
    fn an_erasure_never_spells_the_id_it_was_given() {
        let ids = ["mmh_0123abcd", "jane@example.com", "user-4711"];
        let [events, days] = erase_sql("millimetric", "events", "proj_a", &ids);
        let export = export_sql("millimetric", "events", "proj_a", &ids[..2]);
        for sql in [&events, &days, &export] {
            assert!(!sql.contains("jane@"), "{sql}");
        }
        for sql in [&events, &days] {
            assert!(!sql.contains("user-4711") && !sql.contains("mmh_0123abcd"), "{sql}");
            assert!(ids.iter().all(|id| sql.contains(&sql::id_hash(id))), "{sql}");
        }
        assert!(events.contains(&format!("AND {} IN (", sql::id_hash_of("anonymous_id"))), "{events}");
        let key = erasure_key("proj_a", "user-4711");
        assert!(!key.contains("user-4711"), "{key}");
        for d in erase_many_sql("millimetric", "events", &[parse_erasure_key(&key).unwrap()], 1 << 17) {
            assert!(!d.sql.contains("user-4711") && d.sql.contains(&sql::id_hash("user-4711")), "{}", d.sql);
        }
    }

    #[test]
    fn erasure_records_round_trip() {
        for (p, v) in [("proj_a", "v-1"), ("proj_a", "a\"b\\c\n]"), ("p", &"x".repeat(128)), ("p", &"é".repeat(64))] {
            let key = erasure_key(p, v);
            assert!(key.len() <= 512, "KV keys are at most 512 bytes");
            assert_eq!(parse_erasure_key(&key), Some(erased(p, v)));
            // A record written before they were kept as hashes names the same visitor.
            assert_eq!(parse_erasure_key(&serde_json::to_string(&[p, v]).unwrap()), Some(erased(p, v)));
        }
        assert_eq!(parse_erasure_key("proj_a/v-1"), None);
        assert_eq!(parse_erasure_key(r#"["only one"]"#), None);
        assert_eq!(parse_erasure_key(r#"["p","id_hash","not hex"]"#), None);
        assert_eq!(parse_erasure_key(r#"["p","other","0123456789abcdef01234567"]"#), None);
    }

    #[test]
    fn values_cannot_escape_their_literal() {
        assert_eq!(sql::string("v-1"), "'v-1'");
        assert_eq!(sql::string(r"a'b\c"), r"'a\'b\\c'");
        let [events, days] = erase_sql("millimetric", "events", "proj_a", &["x' OR 1=1 --"]);
        let hashed = sql::id_hash("x' OR 1=1 --");
        assert_eq!(
            events,
            format!(
                "ALTER TABLE millimetric.events DELETE WHERE project_id = 'proj_a' AND {} IN ({hashed})",
                sql::id_hash_of("anonymous_id")
            )
        );
        assert_eq!(
            days,
            format!("ALTER TABLE millimetric.visitor_day_hashes DELETE WHERE project_id = 'proj_a' AND visitor_hash IN ({hashed})")
        );
        assert!(
            hashed.starts_with("unhex('") && hashed[7..].chars().take_while(|c| c.is_ascii_hexdigit()).count() == 2 * sql::ID_HASH_BYTES,
            "{hashed}"
        );
        let sql = export_sql("millimetric", "events", "proj_a", &["v"]);
        let days = format!(
            "(SELECT day FROM millimetric.visitor_day_hashes WHERE project_id = 'proj_a' AND visitor_hash IN ({}))",
            sql::id_hash("v")
        );
        assert!(
            sql.starts_with(&format!("SELECT * FROM millimetric.events FINAL WHERE project_id = 'proj_a' AND toDate(timestamp) IN {days}")),
            "{sql}"
        );
        assert!(sql.contains(" AND anonymous_id IN ('v') ORDER BY"), "{sql}");
        // an id stored as its keyed hash: both forms are looked up, each once, the one that is
        // personal data by its hash
        let export = export_sql("db", "events", "p", &["mmh_0123", "jane@example.com"]);
        let hashed = format!("{} IN ({})", sql::id_hash_of("anonymous_id"), sql::id_hash("jane@example.com"));
        assert!(export.contains(&format!("(anonymous_id IN ('mmh_0123') OR {hashed})")), "{export}");
        assert!(export_sql("db", "events", "p", &["v", "v"]).contains("anonymous_id IN ('v') ORDER BY"));
    }

    #[test]
    fn a_re_applied_deletion_is_probed_first_with_the_same_condition() {
        let erasures = vec![erased("p", "v1")];
        for Deletion { sql, .. } in erase_many_sql("db", "events", &erasures, 128 * 1024) {
            let probe = probe_sql(&sql).unwrap();
            let condition = sql.split_once(" DELETE WHERE ").unwrap().1;
            assert!(probe.starts_with("SELECT count() FROM db.") && probe.contains(condition) && probe.ends_with(" FORMAT TSV"), "{probe}");
        }
        assert_eq!(probe_sql("SELECT 1"), None);
    }

    /// The maintenance credential of docs/deploy.md lacked SELECT on the days index, so its
    /// probe failed every day and the deletion it guarded was never sent.
    #[test]
    fn a_probe_that_cannot_be_read_still_deletes() {
        assert!(!deletion_needed::<&str>(Ok("0\n")));
        assert!(deletion_needed::<&str>(Ok("3\n")));
        assert!(deletion_needed(Err("Code: 497. DB::Exception: Not enough privileges")));
    }

    /// A failed deletion (ClickHouse down) deleted every export of every project with a recent
    /// erasure, though no late rows had gone anywhere.
    #[test]
    fn only_a_sent_deletion_makes_exports_due() {
        assert_eq!(exports_after_deletion(false, true), (true, false));
        assert_eq!(exports_after_deletion(false, false), (false, true), "a failed deletion leaves the exports and its mark");
        assert_eq!(exports_after_deletion(true, false), (true, false), "due from before: still due");
        assert_eq!(exports_after_deletion(true, true), (true, false));
    }

    #[test]
    fn an_exports_due_mark_names_its_project_and_no_erasure() {
        let key = exports_due_key("proj:1");
        assert_eq!(parse_exports_due_key(&key), Some("proj:1"));
        assert_eq!(parse_erasure_key(&key), None, "not read as an erasure");
        assert_eq!(parse_exports_due_key(&erasure_key("p", "v")), None);
        assert_eq!(parse_exports_due_key(&crate::privacy::exports::state_key("p", "0123")), None);
    }
}
