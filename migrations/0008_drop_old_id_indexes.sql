-- After the Workers that read the hashed id indexes are deployed (migration 0007,
-- docs/deploy.md): the rows received from a day before 0007 was applied are hashed into the
-- new indexes once more, for an insert that began before their views existed and ended after
-- their fills read `events` (a row written twice is one row once merged). A day, because a
-- batch the queue retried is inserted up to about 8 hours after its events were received.
-- Then the old indexes, which hold each id and visitor id in clear, are dropped.
INSERT INTO event_id_hashes SELECT project_id, toFixedString(substring(SHA256(event_id), 1, 12), 12), toDate(timestamp), key_kind, retention_days FROM events
WHERE received_at >= (SELECT toDateTime(min(applied_at)) - 86400 FROM schema_migrations WHERE version = 7);

INSERT INTO visitor_day_hashes SELECT DISTINCT project_id, toFixedString(substring(SHA256(anonymous_id), 1, 12), 12), toDate(timestamp), retention_days FROM events
WHERE anonymous_id != '' AND received_at >= (SELECT toDateTime(min(applied_at)) - 86400 FROM schema_migrations WHERE version = 7);

DROP TABLE IF EXISTS event_ids_mv;
DROP TABLE IF EXISTS event_ids;
DROP TABLE IF EXISTS visitor_days_mv;
DROP TABLE IF EXISTS visitor_days;
