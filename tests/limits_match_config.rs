//! The core's idea of a limit and the binding that enforces it are one number: each Worker's
//! `IP_RATE_LIMITER` in wrangler.toml allows `rate_limit::IP_REQUESTS_PER_MINUTE` a minute.
use millimetric_core::rate_limit::IP_REQUESTS_PER_MINUTE;

#[test]
fn the_per_ip_limit_is_the_bindings() {
    for worker in ["workers/edge", "workers/read"] {
        let toml = std::fs::read_to_string(format!("{}/{worker}/wrangler.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let block = toml.split("[[ratelimits]]").find(|b| b.contains("\"IP_RATE_LIMITER\"")).expect("an IP_RATE_LIMITER");
        let want = format!("simple = {{ limit = {IP_REQUESTS_PER_MINUTE}, period = 60 }}");
        assert!(block.contains(&want), "{worker}: want `{want}` in {block}");
    }
}
