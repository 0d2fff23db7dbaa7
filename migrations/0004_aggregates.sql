-- Aggregates that outlive raw events (src/query/aggregates.rs, src/rollup.rs). The rollup job
-- derives visits from raw events for closed UTC days (the same SQL a raw query runs) and
-- inserts them into the `*_rollup` tables; those are Null tables (nothing is stored in them)
-- whose materialized views fold the rows into AggregatingMergeTree tables, in buckets of
-- the UTC hour each visit started in. The visitor id reaches only the Null tables: the aggregates
-- hold uniqCombined sketches of it, never the id. Each run writes a day under a new
-- `version` and records, when finished, each project it wrote that day for in `rollup_done`
-- (and the day itself under project ''); reads take a project's latest finished version of
-- each day, so a re-run (late events, a failed run) never counts a day twice, and a re-run
-- after retention dropped a project's raw events leaves that project's version standing.
-- `rollup_runs` holds the start of each complete scheduled run (late events are those
-- received since). The
-- retention job does not touch these tables ("aggregate counters may be retained").
-- Works on 18.16 and modern servers (no SimpleAggregateFunction, no TTL).

CREATE TABLE IF NOT EXISTS rollup_done
(
    project_id String,
    day Date,
    version UInt64,
    finished_at DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY (project_id, day, version);

CREATE TABLE IF NOT EXISTS rollup_runs
(
    started_ms UInt64,
    finished_at DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY started_ms;

-- One row per visit.
CREATE TABLE IF NOT EXISTS visit_rollup
(
    project_id String,
    version UInt64,
    bucket DateTime('UTC'),
    is_bot UInt8,
    visitor String,
    entry_page String,
    exit_page String,
    v_source String,
    v_medium String,
    v_referrer String,
    v_utm_source String,
    v_utm_medium String,
    v_utm_campaign String,
    v_utm_term String,
    v_utm_content String,
    v_click_id_type String,
    v_country String,
    v_region String,
    v_city String,
    v_browser String,
    v_os String,
    v_device String,
    pageviews UInt64,
    events UInt64,
    bounce UInt8,
    duration UInt64
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS visits_agg
(
    project_id String,
    day Date,
    version UInt64,
    bucket DateTime('UTC'),
    is_bot UInt8,
    entry_page String,
    exit_page String,
    v_source String,
    v_medium String,
    v_referrer String,
    v_utm_source String,
    v_utm_medium String,
    v_utm_campaign String,
    v_utm_term String,
    v_utm_content String,
    v_click_id_type String,
    v_country String,
    v_region String,
    v_city String,
    v_browser String,
    v_os String,
    v_device String,
    visitors AggregateFunction(uniqCombined, String),
    visits AggregateFunction(sum, UInt64),
    pageviews AggregateFunction(sum, UInt64),
    events AggregateFunction(sum, UInt64),
    bounces AggregateFunction(sum, UInt64),
    duration AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, version, bucket, is_bot, v_source, v_country, v_device, v_browser, v_os, entry_page, exit_page, v_medium, v_referrer, v_utm_source, v_utm_medium, v_utm_campaign, v_utm_term, v_utm_content, v_click_id_type, v_region, v_city);

CREATE MATERIALIZED VIEW IF NOT EXISTS visits_agg_mv TO visits_agg
AS SELECT project_id, toDate(bucket) AS day, version, bucket, is_bot, entry_page, exit_page, v_source, v_medium, v_referrer, v_utm_source, v_utm_medium, v_utm_campaign, v_utm_term, v_utm_content, v_click_id_type, v_country, v_region, v_city, v_browser, v_os, v_device,
    uniqCombinedState(visitor) AS visitors, sumState(toUInt64(1)) AS visits, sumState(pageviews) AS pageviews,
    sumState(events) AS events, sumState(toUInt64(bounce)) AS bounces, sumState(duration) AS duration
FROM visit_rollup
GROUP BY project_id, day, version, bucket, is_bot, entry_page, exit_page, v_source, v_medium, v_referrer, v_utm_source, v_utm_medium, v_utm_campaign, v_utm_term, v_utm_content, v_click_id_type, v_country, v_region, v_city, v_browser, v_os, v_device;

-- One row per (visit, hostname, page, event name).
CREATE TABLE IF NOT EXISTS page_rollup
(
    project_id String,
    version UInt64,
    bucket DateTime('UTC'),
    is_bot UInt8,
    visitor String,
    visit_key String,
    host String,
    page String,
    event_name String,
    pageviews UInt64,
    events UInt64,
    bounce UInt8
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS pages_agg
(
    project_id String,
    day Date,
    version UInt64,
    bucket DateTime('UTC'),
    is_bot UInt8,
    host String,
    page String,
    event_name String,
    visitors AggregateFunction(uniqCombined, String),
    visits AggregateFunction(uniqCombined, String),
    pageviews AggregateFunction(sum, UInt64),
    events AggregateFunction(sum, UInt64),
    bounces AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, version, bucket, is_bot, page, event_name, host);

CREATE MATERIALIZED VIEW IF NOT EXISTS pages_agg_mv TO pages_agg
AS SELECT project_id, toDate(bucket) AS day, version, bucket, is_bot, host, page, event_name,
    uniqCombinedState(visitor) AS visitors, uniqCombinedState(visit_key) AS visits, sumState(pageviews) AS pageviews,
    sumState(events) AS events, sumState(toUInt64(bounce)) AS bounces
FROM page_rollup
GROUP BY project_id, day, version, bucket, is_bot, host, page, event_name;

-- One row per (visit, event name, property key, value).
CREATE TABLE IF NOT EXISTS prop_rollup
(
    project_id String,
    version UInt64,
    bucket DateTime('UTC'),
    is_bot UInt8,
    visitor String,
    visit_key String,
    event_name String,
    prop_key String,
    prop_value String,
    pageviews UInt64,
    events UInt64
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS props_agg
(
    project_id String,
    day Date,
    version UInt64,
    bucket DateTime('UTC'),
    is_bot UInt8,
    event_name String,
    prop_key String,
    prop_value String,
    visitors AggregateFunction(uniqCombined, String),
    visits AggregateFunction(uniqCombined, String),
    pageviews AggregateFunction(sum, UInt64),
    events AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, version, prop_key, bucket, is_bot, event_name, prop_value);

CREATE MATERIALIZED VIEW IF NOT EXISTS props_agg_mv TO props_agg
AS SELECT project_id, toDate(bucket) AS day, version, bucket, is_bot, event_name, prop_key, prop_value,
    uniqCombinedState(visitor) AS visitors, uniqCombinedState(visit_key) AS visits, sumState(pageviews) AS pageviews,
    sumState(events) AS events
FROM prop_rollup
GROUP BY project_id, day, version, bucket, is_bot, event_name, prop_key, prop_value;
