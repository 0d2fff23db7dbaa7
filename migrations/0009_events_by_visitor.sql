-- `events` sorted by visitor within each day: (project_id, day, anonymous_id, event_id), where it
-- was (project_id, day, event_id). Clients' event ids are random, so sorting by them put every
-- column of a day in random order; a visitor's rows now lie together, and their visitor id,
-- country, browser, source and times compress to a fraction (bench/storage). Queries still
-- find a project's days by the key's start. A row stays one row per (day, visitor, event id)
-- in what FINAL reads; the writer stores the first write of an id however the key is laid out
-- (core/src/ingest/first_write.rs).
--
-- ClickHouse cannot change a sort key in place, so the table is made anew and the rows copied.
-- `events` is renamed away first: until the copy is in place, inserts find no `events` and are
-- retried from the queue (none is lost; docs/deploy.md), reads fail, and erasures answer 503
-- (none half done). The id indexes' views are made again on the new table, and what arrived
-- since they were dropped is hashed in again. The migration can be run again after a failure
-- at any step: a rename already done is passed (storage::migrations::already_done), the copy
-- starts from an empty table, and once the old table is dropped a rerun copies the new one.
DROP TABLE IF EXISTS event_id_hashes_mv;
DROP TABLE IF EXISTS visitor_day_hashes_mv;

CREATE TABLE IF NOT EXISTS events_by_visitor
(
    project_id String,
    event_id String,
    timestamp DateTime('UTC'),
    received_at DateTime('UTC'),
    event_type LowCardinality(String),
    event_name String,
    anonymous_id String,
    url_host String,
    url_path String,
    url_query String,
    url_fragment String,
    title String,
    referrer String,
    referrer_host String,
    country LowCardinality(String),
    region String,
    city String,
    browser LowCardinality(String),
    os LowCardinality(String),
    device_type LowCardinality(String),
    is_bot UInt8,
    source String,
    medium LowCardinality(String),
    utm_source String,
    utm_medium String,
    utm_campaign String,
    utm_term String,
    utm_content String,
    click_id_type LowCardinality(String),
    click_id String,
    prop_keys Array(String),
    prop_values Array(String),
    key_kind LowCardinality(String),
    retention_days UInt16,
    ingest_route LowCardinality(String) DEFAULT 'collect',
    revenue_amount Decimal(18, 6) DEFAULT 0,
    revenue_currency LowCardinality(String) DEFAULT ''
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY (retention_days, toMonday(timestamp))
ORDER BY (project_id, toDate(timestamp), anonymous_id, event_id);

-- A rerun stops here if both the old table and its copy are in place: the copy was renamed to
-- `events` but the old table not yet dropped. Check `events`, drop `events_by_day`, run again.
SELECT throwIf((SELECT count() FROM system.tables WHERE database = currentDatabase() AND name IN ('events', 'events_by_day')) = 2);

RENAME TABLE events TO events_by_day;

TRUNCATE TABLE events_by_visitor;

INSERT INTO events_by_visitor SELECT * FROM events_by_day;

RENAME TABLE events_by_visitor TO events;

DROP TABLE IF EXISTS events_by_day;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_id_hashes_mv TO event_id_hashes
AS SELECT project_id, toFixedString(substring(SHA256(event_id), 1, 12), 12) AS id_hash, toDate(timestamp) AS day, key_kind, retention_days FROM events;

CREATE MATERIALIZED VIEW IF NOT EXISTS visitor_day_hashes_mv TO visitor_day_hashes
AS SELECT project_id, toFixedString(substring(SHA256(anonymous_id), 1, 12), 12) AS visitor_hash, toDate(timestamp) AS day, retention_days FROM events WHERE anonymous_id != '';

INSERT INTO event_id_hashes SELECT project_id, toFixedString(substring(SHA256(event_id), 1, 12), 12), toDate(timestamp), key_kind, retention_days FROM events
WHERE received_at >= now() - 86400;

INSERT INTO visitor_day_hashes SELECT DISTINCT project_id, toFixedString(substring(SHA256(anonymous_id), 1, 12), 12), toDate(timestamp), retention_days FROM events
WHERE anonymous_id != '' AND received_at >= now() - 86400;

-- The dedup view, made again over the new table (18.16 fixed its `*` when it was made).
DROP TABLE IF EXISTS events_dedup;
CREATE VIEW IF NOT EXISTS events_dedup AS SELECT * FROM events FINAL;
