-- bench/query's generated events (bench/query, bench/storage): @EVENTS@ events over the 13 months
-- before @NOW@ (Unix seconds), for two projects; the scripts put the numbers in with sed.
INSERT INTO events (project_id, event_id, timestamp, received_at, event_type, event_name, anonymous_id, url_host, url_path, referrer, source, medium, utm_source, utm_campaign, country, region, city, browser, os, device_type, is_bot, prop_keys, prop_values, key_kind, retention_days)
SELECT if(v % 20 = 7, 'proj_other', 'proj_dev'), concat('b', toString(number)),
  toDateTime(@NOW@ - 395 * 86400 + toUInt32(v * ((395 * 86400 - 7200) / (N / 4))) + i * if(v % 3 = 0, 2000, 45 + (v % 7) * 20)) AS ts, ts,
  if(custom, 'custom', 'pageview'), if(custom, 'signup', 'pageview'), concat('bv', toString(v % 400000)), if(v % 10 = 0, 'docs.example.com', 'example.com'),
  concat('/p/', toString(toUInt32(300 * pow((cityHash64(v, i) % 10000) / 10000, 3)))), '',
  ['', 'Google', 'ChatGPT', 'Perplexity', 'Newsletter', 'Bing', 'Claude', 'Hacker News'][v % 8 + 1] AS src, if(src = '', '', if(src = 'Newsletter', 'email', 'referral')),
  if(v % 9 = 0, 'newsletter', ''), if(v % 9 = 0, concat('launch-', toString(v % 12)), ''), ['DE','GB','US','FR','NL','IN','NP','BR','JP','CA'][(v * 31) % 10 + 1] AS c,
  concat(c, '-', toString(v % 5)), concat(c, '-city-', toString(v % 20)), ['Chrome','Safari','Firefox','Edge','Opera'][v % 5 + 1], ['Windows','macOS','iOS','Android','Linux'][(v * 3) % 5 + 1],
  ['desktop','mobile','tablet'][(v * 7) % 3 + 1], toUInt8(v % 50 = 1), if(custom, ['plan'], emptyArrayString()), if(custom, [['free','pro','team'][v % 3 + 1]], emptyArrayString()), 'secret', 365
FROM (SELECT number, intDiv(number, 4) AS v, number % 4 AS i, (i = 3 AND v % 5 = 0) AS custom, @EVENTS@ AS N FROM system.numbers LIMIT @EVENTS@)
