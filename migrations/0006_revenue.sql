-- What an event earned (core/src/ingest/revenue.rs): a decimal, never a float (0 without
-- revenue; negative for a refund), and its ISO 4217 currency ('' without revenue). Works on
-- 18.16 and modern servers. Rows stored before this migration earned nothing.
ALTER TABLE events ADD COLUMN revenue_amount Decimal(18, 6) DEFAULT 0;
ALTER TABLE events ADD COLUMN revenue_currency LowCardinality(String) DEFAULT '';

-- The dedup view: 18.16 fixed its `*` when it was made, so it is made again to show the new
-- columns (and 0005's ingest_route).
DROP TABLE IF EXISTS events_dedup;
CREATE VIEW IF NOT EXISTS events_dedup AS SELECT * FROM events FINAL;
