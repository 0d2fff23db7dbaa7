-- Usage per project and UTC day (core/src/usage). Works on 18.16 and modern servers.

-- Which way an event came in (`collect`; the SDK-compatible routes add theirs), for usage by
-- route. Rows stored before this migration came in through /collect.
ALTER TABLE events ADD COLUMN ingest_route LowCardinality(String) DEFAULT 'collect';

-- Counters that are not stored events: events refused by code, queries, exports. Each isolate
-- flushes its counts now and then under a fresh `source_id`; a flush sent twice (a retried
-- insert that had landed) repeats its rows exactly, and readers take one value per
-- (project, day, metric, dim, source_id). Kept: usage is what a project is billed on.
CREATE TABLE IF NOT EXISTS usage_counts
(
    project_id String,
    day Date,
    metric LowCardinality(String),
    dim String,
    source_id String,
    n UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, metric, dim, source_id);

-- Stored events per project and day, snapshotted by the daily cron from the raw rows (each
-- event id once), so usage outlives raw retention. Each run writes its days under a new
-- `version`, then a marker row per day (project ''); readers take each day's latest marked
-- version, and count days without one live from `events`.
CREATE TABLE IF NOT EXISTS usage_daily
(
    project_id String,
    day Date,
    key_kind LowCardinality(String),
    ingest_route LowCardinality(String),
    is_bot UInt8,
    version UInt64,
    n UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, version, key_kind, ingest_route, is_bot);
