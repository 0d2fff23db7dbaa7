-- `events` sorted by visitor within each day: (project_id, day, anonymous_id, event_id), where it
-- was (project_id, day, event_id). Clients' event ids are random, so sorting by them put every
-- column of a day in random order; a visitor's rows now lie together, and their visitor id,
-- country, browser, source and times compress to a fraction (bench/storage). Queries still
-- find a project's days by the key's start. FINAL folds copies of an event that share a day
-- and a visitor id; the writer stores only the first write of an id however the key is laid
-- out (core/src/ingest/first_write.rs).
--
-- ClickHouse cannot change a sort key in place, so the table is made anew and the rows copied.
-- `events` is renamed away first: until the copy is in place, inserts find no `events` and are
-- retried (an unknown table is retried, never dead-lettered: storage::clickhouse::classify),
-- so none is lost; reads fail, and erasures answer 503 with nothing half done. The id
-- indexes' views are made again on the new table, and every row is hashed into the indexes
-- again, whatever arrived while they were away (a row written twice is one row once merged).
--
-- It can be run again after a failure at any step: a rename already done is passed
-- (storage::migrations::already_done), and the copy starts from a new, empty table. Once the
-- copy is `events`, a rerun copies that. One state stops it: the copy renamed to `events` and
-- the old table still there (the first statement): check `events`, drop `events_by_day`, and
-- run it again.
SELECT throwIf((SELECT count() FROM system.tables WHERE database = currentDatabase() AND name IN ('events', 'events_by_day')) = 2);

DROP TABLE IF EXISTS events_by_visitor;

CREATE TABLE events_by_visitor
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

RENAME TABLE events TO events_by_day;

DROP TABLE IF EXISTS event_id_hashes_mv;
DROP TABLE IF EXISTS visitor_day_hashes_mv;

-- An insert under way when `events` was renamed may still commit into the old table: ClickHouse
-- Cloud renames without waiting for it, and its views have already hashed its ids, so a later
-- copy of it would be skipped. The Worker waits 20 s for an insert, then hands its rows to the
-- queue 120 s later (core/src/ingest/delivery.rs); so when the old table holds rows, wait 150 s
-- before copying. (A fresh database has none and does not wait.)
SELECT sleepEachRow(1) FROM numbers(150)
WHERE (SELECT count() FROM events_by_day) > 0
SETTINGS max_block_size = 1;

-- By name, not position: a server upgraded column by column may hold them in another order.
INSERT INTO events_by_visitor (project_id, event_id, timestamp, received_at, event_type, event_name, anonymous_id, url_host, url_path, url_query, url_fragment, title, referrer, referrer_host, country, region, city, browser, os, device_type, is_bot, source, medium, utm_source, utm_medium, utm_campaign, utm_term, utm_content, click_id_type, click_id, prop_keys, prop_values, key_kind, retention_days, ingest_route, revenue_amount, revenue_currency)
SELECT project_id, event_id, timestamp, received_at, event_type, event_name, anonymous_id, url_host, url_path, url_query, url_fragment, title, referrer, referrer_host, country, region, city, browser, os, device_type, is_bot, source, medium, utm_source, utm_medium, utm_campaign, utm_term, utm_content, click_id_type, click_id, prop_keys, prop_values, key_kind, retention_days, ingest_route, revenue_amount, revenue_currency FROM events_by_day;

RENAME TABLE events_by_visitor TO events;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_id_hashes_mv TO event_id_hashes
AS SELECT project_id, toFixedString(substring(SHA256(event_id), 1, 12), 12) AS id_hash, toDate(timestamp) AS day, key_kind, retention_days FROM events;

CREATE MATERIALIZED VIEW IF NOT EXISTS visitor_day_hashes_mv TO visitor_day_hashes
AS SELECT project_id, toFixedString(substring(SHA256(anonymous_id), 1, 12), 12) AS visitor_hash, toDate(timestamp) AS day, retention_days FROM events WHERE anonymous_id != '';

INSERT INTO event_id_hashes SELECT project_id, toFixedString(substring(SHA256(event_id), 1, 12), 12), toDate(timestamp), key_kind, retention_days FROM events;

INSERT INTO visitor_day_hashes SELECT DISTINCT project_id, toFixedString(substring(SHA256(anonymous_id), 1, 12), 12), toDate(timestamp), retention_days FROM events
WHERE anonymous_id != '';

DROP TABLE IF EXISTS events_by_day;

-- The dedup view, made again over the new table (18.16 fixed its `*` when it was made).
DROP TABLE IF EXISTS events_dedup;
CREATE VIEW IF NOT EXISTS events_dedup AS SELECT * FROM events FINAL;
