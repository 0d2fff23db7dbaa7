-- The days each visitor has events on, so exporting (or erasing) one visitor reads only those
-- days of `events` (its sort key starts with project_id, toDate(timestamp)), not the project's
-- whole table. ClickHouse 18.16 has no data-skipping indexes or projections; this works on
-- every version. Holds the visitor id, so erasure deletes from it too, and it is partitioned
-- like `events` so the retention job drops its weeks with theirs.
CREATE TABLE IF NOT EXISTS visitor_days
(
    project_id String,
    anonymous_id String,
    day Date,
    retention_days UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY (retention_days, toMonday(day))
ORDER BY (project_id, anonymous_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS visitor_days_mv TO visitor_days
AS SELECT project_id, anonymous_id, toDate(timestamp) AS day, retention_days FROM events WHERE anonymous_id != '';

-- Days of events stored before this migration.
INSERT INTO visitor_days SELECT DISTINCT project_id, anonymous_id, toDate(timestamp) AS day, retention_days FROM events WHERE anonymous_id != '';
