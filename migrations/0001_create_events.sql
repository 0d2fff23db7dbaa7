-- Raw events, one row per accepted event. No IP column exists, by design.
-- Works on ClickHouse 18.16 (Debian) and modern servers / ClickHouse Cloud:
--   * DateTime in UTC seconds (18.16 has no DateTime64);
--   * properties as parallel arrays (18.16 has no Map);
--   * ReplacingMergeTree on (project, day, event_id): a retried insert or a client's retried
--     request leaves one row in what `FINAL` queries (and the events_dedup view) see;
--   * partitioned by retention class and week, so expiry is `ALTER TABLE ... DROP PARTITION`
--     of whole weeks past a project's 30/90/365 days (no TTL on 18.16).
CREATE TABLE IF NOT EXISTS events
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
    retention_days UInt16
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY (retention_days, toMonday(timestamp))
ORDER BY (project_id, toDate(timestamp), event_id);

-- What queries should read: one row per event id, whatever was retried.
CREATE VIEW IF NOT EXISTS events_dedup AS SELECT * FROM events FINAL;
