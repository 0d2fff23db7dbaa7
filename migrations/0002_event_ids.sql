-- One row per stored event id: what the batch writer asks before each insert so that the
-- first write of an id wins and a retry is never stored twice (src/first_write.rs).
-- Filled by a materialized view in the same INSERT as `events`; partitioned like `events`
-- so the retention job drops both together. Holds no visitor id and nothing from the event
-- but its id and time.
CREATE TABLE IF NOT EXISTS event_ids
(
    project_id String,
    event_id String,
    timestamp DateTime('UTC'),
    key_kind LowCardinality(String),
    retention_days UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY (retention_days, toMonday(timestamp))
ORDER BY (project_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_mv TO event_ids
AS SELECT project_id, event_id, timestamp, key_kind, retention_days FROM events;

-- Ids of events stored before this migration.
INSERT INTO event_ids SELECT project_id, event_id, timestamp, key_kind, retention_days FROM events;
