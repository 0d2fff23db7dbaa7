//! The core's idea of a limit and the binding that enforces it are one number: each Worker's
//! `IP_RATE_LIMITER` in wrangler.toml allows `rate_limit::IP_REQUESTS_PER_MINUTE` a minute; the
//! events queue retries a message `clickhouse::EVENTS_QUEUE_MAX_RETRIES` times, and the
//! dead-letter queue's consumer keeps retrying as long.
use millimetric_core::rate_limit::IP_REQUESTS_PER_MINUTE;
use millimetric_core::storage::clickhouse::EVENTS_QUEUE_MAX_RETRIES;

fn edge_toml() -> String {
    std::fs::read_to_string(format!("{}/workers/edge/wrangler.toml", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A queue consumer's setting, as a number.
fn consumer_setting(toml: &str, queue: &str, name: &str) -> Option<u64> {
    let named = format!("queue = \"{queue}\"");
    let block = toml.split("[[").find(|b| b.starts_with("queues.consumers]]") && b.lines().any(|l| l.trim() == named))?;
    let line = block.lines().find(|l| l.trim_start().starts_with(&format!("{name} =")))?;
    line.split('=').nth(1)?.trim().parse().ok()
}

#[test]
fn the_queues_retries_are_the_cores() {
    let toml = edge_toml();
    assert_eq!(consumer_setting(&toml, "millimetric-events", "max_retries"), Some(EVENTS_QUEUE_MAX_RETRIES as u64));
    // A dead letter whose KV write failed was retried ten times at once, then deleted by the
    // queue with its rows: its consumer now retries as often, and waits between batch retries.
    let dlq = |name| consumer_setting(&toml, "millimetric-events-dlq", name);
    assert!(dlq("max_retries").is_some_and(|n| n >= EVENTS_QUEUE_MAX_RETRIES as u64), "{:?}", dlq("max_retries"));
    assert!(dlq("retry_delay").is_some_and(|s| s >= 30), "{:?}", dlq("retry_delay"));
}

#[test]
fn the_per_ip_limit_is_the_bindings() {
    for worker in ["workers/edge", "workers/read"] {
        let toml = std::fs::read_to_string(format!("{}/{worker}/wrangler.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let block = toml.split("[[ratelimits]]").find(|b| b.contains("\"IP_RATE_LIMITER\"")).expect("an IP_RATE_LIMITER");
        let want = format!("simple = {{ limit = {IP_REQUESTS_PER_MINUTE}, period = 60 }}");
        assert!(block.contains(&want), "{worker}: want `{want}` in {block}");
    }
}
