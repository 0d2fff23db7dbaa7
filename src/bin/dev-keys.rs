//! Prints the local development keys' KV records as `wrangler kv bulk put` JSON.
fn main() {
    println!("{}", millimetric_edge::native::dev_keys::bulk_json());
}
