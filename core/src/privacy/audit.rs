//! The audit log the DPA promises ("audit logs for admin actions and data exports, retained
//! 90 days"): one record per visitor export and erasure, project export, closure and deletion,
//! key change, and dead letters an operator read or replayed, with the project, the action,
//! which key (a prefix of its hash, never the key), when, and the outcome: `ok`, or the code of
//! a refusal given once the project was known (a rate limit's aside, so a client retrying in a
//! loop cannot fill the log). Never an IP, never the visitor's id (an erasure's record must not
//! keep the id it erased). Kept in KV for 90 days; listed newest first with the project's
//! sk_live_ key.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};

pub const KEEP_SECONDS: u64 = 90 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    VisitorExport,
    VisitorErasure,
    DeadLetterReplay,
    /// Dead letters shown to an operator (`GET /admin/dead-letters`): their rows are the project's.
    DeadLetterRead,
    KeyChange,
    /// A project's monthly quota set (`PUT /admin/projects/{id}/quota`).
    QuotaChange,
    /// A project's closure scheduled.
    ProjectClosure,
    /// A project's scheduled closure cancelled.
    ProjectClosureCancelled,
    /// A project's whole data deleted.
    ProjectDeletion,
    /// A project's whole data exported (started, resumed), or a part of it downloaded.
    ProjectExport,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub project_id: String,
    pub action: Action,
    /// `key:` and the first 12 hex digits of the key's SHA-256, or `admin` for ADMIN_TOKEN.
    pub by: String,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    /// `ok`, or the error code the request was refused with.
    pub outcome: String,
    /// Rows replayed, for a replay; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// For a key change: what was done; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<KeyChange>,
    /// For a key change: the key it was done to, named as `by` names one (absent for a
    /// creation refused before any key was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// What a key change did (`/admin/keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChange {
    Create,
    /// Its settings (origins, limit, retention, hash routing, time zone, domains).
    Set,
    Rotate,
    Revoke,
}

impl Record {
    /// This record as a key change: what was done, and to which key (its hash).
    pub fn key_change(mut self, change: KeyChange, key_hash: Option<&str>) -> Record {
        self.change = Some(change);
        self.key = key_hash.map(by_key);
        self
    }
}

/// Who did it, as the log names them: never the raw key, a prefix of its hash.
pub fn by_key(key_hash: &str) -> String {
    format!("key:{}", key_hash.get(..12).unwrap_or(key_hash))
}

pub fn outcome<T>(result: &Result<T, ApiError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => e.code.to_string(),
    }
}

pub fn record(project_id: &str, action: Action, by: String, at_ms: i64, outcome: String, rows: Option<u64>) -> Record {
    Record { project_id: project_id.to_string(), action, by, at: rfc3339(at_ms), outcome, rows, change: None, key: None }
}

/// One record per project among `project_ids` (one entry a row), with its count of rows: what
/// an operator's action over many projects' rows (dead letters read or replayed) leaves in
/// each project's log.
pub fn per_project<'a>(project_ids: impl IntoIterator<Item = &'a str>, action: Action, by: &str, at_ms: i64, outcome: &str) -> Vec<Record> {
    let mut rows: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for p in project_ids {
        *rows.entry(p).or_default() += 1;
    }
    rows.into_iter().map(|(p, n)| record(p, action, by.to_string(), at_ms, outcome.to_string(), Some(n))).collect()
}

/// Epoch milliseconds as RFC 3339, UTC (empty when out of range).
pub fn rfc3339(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(at_ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The KV prefix of a project's records.
pub fn prefix(project_id: &str) -> String {
    format!("audit:{project_id}:")
}

/// A record's KV key: newest first in KV's ascending order (the time inverted), then `nonce`
/// so two records in one millisecond both stay.
pub fn kv_key(project_id: &str, at_ms: i64, nonce: &str) -> String {
    format!("{}{:013}:{nonce}", prefix(project_id), 9_999_999_999_999i64.saturating_sub(at_ms.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_the_key_by_a_hash_prefix_and_sort_newest_first() {
        let hash = "a3f1c2d4e5b60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
        assert_eq!(by_key(hash), "key:a3f1c2d4e5b6");
        let r = record("proj_a", Action::VisitorErasure, by_key(hash), 1_796_032_800_123, "ok".into(), None);
        assert_eq!(r.at, "2026-11-30T10:00:00.123Z");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"project_id":"proj_a","action":"visitor_erasure","by":"key:a3f1c2d4e5b6","at":"2026-11-30T10:00:00.123Z","outcome":"ok"}"#
        );
        let older = kv_key("proj_a", 1_000, "x");
        let newer = kv_key("proj_a", 2_000, "x");
        assert!(newer < older, "KV lists ascending: the newer record comes first");
        assert!(newer.starts_with(&prefix("proj_a")) && !newer.starts_with(&prefix("proj_ab")));
        assert_eq!(outcome::<()>(&Err(ApiError::new(403, "read_only_key", "x"))), "read_only_key");
    }

    /// A key change says what was done and to which key, so a revocation is told from a
    /// creation in the log; like `by`, the key is a prefix of its hash.
    #[test]
    fn a_key_change_names_what_was_done_and_the_key() {
        let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = record("p", Action::KeyChange, "admin".into(), 1_000, "ok".into(), None).key_change(KeyChange::Revoke, Some(hash));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!((v["change"].as_str(), v["key"].as_str()), (Some("revoke"), Some("key:0123456789ab")));
        assert!(!v.to_string().contains(&hash[12..]), "never the whole hash: {v}");
        let refused =
            record("p", Action::KeyChange, "admin".into(), 1_000, "invalid_domain".into(), None).key_change(KeyChange::Create, None);
        let v = serde_json::to_value(&refused).unwrap();
        assert_eq!((v["change"].as_str(), v.get("key")), (Some("create"), None));
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, refused);
    }

    #[test]
    fn an_action_over_many_projects_rows_is_one_record_per_project() {
        let recs = per_project(["b", "a", "b", "b"], Action::DeadLetterRead, "admin", 1_000, "ok");
        let got: Vec<(&str, Option<u64>)> = recs.iter().map(|r| (r.project_id.as_str(), r.rows)).collect();
        assert_eq!(got, [("a", Some(1)), ("b", Some(3))]);
        assert!(recs.iter().all(|r| r.action == Action::DeadLetterRead && r.by == "admin" && r.outcome == "ok"));
        assert!(per_project([], Action::DeadLetterReplay, "admin", 1_000, "ok").is_empty());
        assert_eq!(serde_json::to_value(Action::DeadLetterRead).unwrap(), "dead_letter_read");
    }
}
