-- The two id indexes, keyed by a 12-byte hash of the id in place of its text
-- (core/src/storage/sql.rs `id_hash_of`: the first 96 bits of its SHA-256). A random UUID's
-- text is 36 bytes that LZ4 cannot shrink, stored once in `events` and again in each index:
-- with ids as clients send them, `event_ids` took 40 compressed bytes an event and
-- `visitor_days` 9.7 (bench/storage). Works on 18.16 and modern servers.
--
-- Each index is made anew under a new name, its view started, then filled from `events`. The
-- old indexes stay, still filled, for the Workers deployed before this: migration 0008 drops
-- them once the new Workers are out (docs/deploy.md: `migrate --through 7`, deploy, `migrate`),
-- and first fills in again what was inserted around this one (an insert that began before a
-- view existed and ended after its fill read `events`). A row that two fills wrote is one row
-- once merged, and the lookups group.

-- One row per stored event id: what the writer asks before each insert (first write wins,
-- core/src/ingest/first_write.rs). `day` places the row in `events`' partition, so the
-- retention job drops both together.
CREATE TABLE IF NOT EXISTS event_id_hashes
(
    project_id String,
    id_hash FixedString(12),
    day Date,
    key_kind LowCardinality(String),
    retention_days UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY (retention_days, toMonday(day))
ORDER BY (project_id, id_hash, key_kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS event_id_hashes_mv TO event_id_hashes
AS SELECT project_id, toFixedString(substring(SHA256(event_id), 1, 12), 12) AS id_hash, toDate(timestamp) AS day, key_kind, retention_days FROM events;

INSERT INTO event_id_hashes SELECT project_id, toFixedString(substring(SHA256(event_id), 1, 12), 12), toDate(timestamp), key_kind, retention_days FROM events;

-- The days each visitor has events on, so exporting or erasing one visitor reads only those
-- days of `events` (core/src/privacy/visitors.rs). Erasure deletes the visitor's hash from it.
CREATE TABLE IF NOT EXISTS visitor_day_hashes
(
    project_id String,
    visitor_hash FixedString(12),
    day Date,
    retention_days UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY (retention_days, toMonday(day))
ORDER BY (project_id, visitor_hash, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS visitor_day_hashes_mv TO visitor_day_hashes
AS SELECT project_id, toFixedString(substring(SHA256(anonymous_id), 1, 12), 12) AS visitor_hash, toDate(timestamp) AS day, retention_days FROM events WHERE anonymous_id != '';

INSERT INTO visitor_day_hashes SELECT DISTINCT project_id, toFixedString(substring(SHA256(anonymous_id), 1, 12), 12), toDate(timestamp), retention_days FROM events WHERE anonymous_id != '';
