//! Prints the local development keys' KV records as `wrangler kv bulk put` JSON.
fn main() {
    println!("{}", millimetric_tools::dev_keys::bulk_json());
}
