//! The fixed local-development keys written in README.md, and their KV records.
//! Never used outside `wrangler dev --local`.

use millimetric_core::keys::{admin, key_hash, KeyKind, KeyRecord};

pub const DEV_PROJECT: &str = "proj_dev";
pub const DEV_PUBLISHABLE: &str = "pk_live_dev_publishable_0001";
pub const DEV_SECRET: &str = "sk_live_dev_secret_0001";
pub const DEV_READ_ONLY: &str = "rk_live_dev_readonly_0001";
/// A second project whose key has a tiny per-key limit, for rate-limit tests.
pub const DEV_LIMITED_SECRET: &str = "sk_live_dev_limited_0001";
/// A key with a very high per-key limit, for load benchmarks.
pub const DEV_BENCH_SECRET: &str = "sk_live_dev_bench_0001";
/// Its browser twin, for the browser shapes of `bench/cost`.
pub const DEV_BENCH_PUBLISHABLE: &str = "pk_live_dev_bench_0001";
/// Another project, for tests that one project's numbers never show in another's answers;
/// its days are New York's (the project time zone setting).
pub const DEV_OTHER_PROJECT: &str = "proj_other";
pub const DEV_OTHER_SECRET: &str = "sk_live_dev_other_0001";
pub const DEV_OTHER_READ_ONLY: &str = "rk_live_dev_other_0001";
pub const DEV_OTHER_TIMEZONE: &str = "America/New_York";
/// A revoked key, for the 401 test.
pub const DEV_REVOKED: &str = "sk_live_dev_revoked_0001";
pub const DEV_ALLOWED_ORIGINS: &[&str] = &["http://localhost:8080", "http://127.0.0.1:8080", "https://example.com"];

fn record(project: &str, kind: KeyKind) -> KeyRecord {
    KeyRecord { allowed_origins: DEV_ALLOWED_ORIGINS.iter().map(|s| s.to_string()).collect(), ..KeyRecord::new(project, kind) }
}

pub fn records() -> Vec<(&'static str, KeyRecord)> {
    let mut limited = record("proj_limited", KeyKind::Secret);
    limited.events_per_minute = Some(5);
    let mut bench = record("proj_bench", KeyKind::Secret);
    bench.events_per_minute = Some(100_000_000);
    let mut bench_browser = record("proj_bench", KeyKind::Publishable);
    bench_browser.events_per_minute = Some(100_000_000);
    let mut revoked = record(DEV_PROJECT, KeyKind::Secret);
    revoked.revoked = true;
    let mut other_secret = record(DEV_OTHER_PROJECT, KeyKind::Secret);
    other_secret.timezone = Some(DEV_OTHER_TIMEZONE.into());
    let mut other_read = record(DEV_OTHER_PROJECT, KeyKind::ReadOnly);
    other_read.timezone = Some(DEV_OTHER_TIMEZONE.into());
    vec![
        (DEV_OTHER_SECRET, other_secret),
        (DEV_OTHER_READ_ONLY, other_read),
        (DEV_PUBLISHABLE, record(DEV_PROJECT, KeyKind::Publishable)),
        (DEV_SECRET, record(DEV_PROJECT, KeyKind::Secret)),
        (DEV_READ_ONLY, record(DEV_PROJECT, KeyKind::ReadOnly)),
        (DEV_LIMITED_SECRET, limited),
        (DEV_BENCH_SECRET, bench),
        (DEV_BENCH_PUBLISHABLE, bench_browser),
        (DEV_REVOKED, revoked),
    ]
}

/// `wrangler kv bulk put` input: records under the SHA-256 of each key, never the key itself.
pub fn bulk_json() -> String {
    let items: Vec<serde_json::Value> = records().into_iter().map(|(raw, rec)| bulk_item(raw, &rec)).collect();
    serde_json::to_string_pretty(&items).unwrap()
}

/// One key record as `wrangler kv bulk put` takes it, with the metadata the Worker stores with
/// it (`keys::admin::kv_metadata`).
pub fn bulk_item(raw: &str, rec: &KeyRecord) -> serde_json::Value {
    serde_json::json!({ "key": key_hash(raw), "value": serde_json::to_string(rec).unwrap(), "metadata": admin::kv_metadata(rec) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_json_holds_hashes_not_raw_keys() {
        let j = bulk_json();
        for (raw, _) in records() {
            assert!(!j.contains(raw), "raw key {raw} must not be stored");
            assert!(j.contains(&key_hash(raw)));
        }
    }
}
