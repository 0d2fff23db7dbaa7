//! `cargo run --bin migrate -- [--url URL] [--database DB] [--user USER] [--dir migrations]`
//! Applies pending ClickHouse migrations; prints what it applied. The password comes from the
//! environment (`MM_CH_PASSWORD`), never the command line, where `ps` would show it.
//! ClickHouse Cloud: `--url https://HOST:8443 --user millimetric_migrator`.

use millimetric_tools::clickhouse_settings::{exit, Settings};

fn main() {
    let mut dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations").to_string();
    let ch = Settings::from_env_and_args("migrate", "[--dir DIR]", |flag, value| match flag {
        "--dir" => {
            dir = value();
            true
        }
        _ => false,
    });
    let database = ch.database.clone();
    match millimetric_tools::migrate::run(&ch.client(), &database, std::path::Path::new(&dir)) {
        Ok(v) if v.is_empty() => println!("migrations: {database} is up to date"),
        Ok(v) => println!("migrations: applied {v:?} to {database}"),
        Err(e) => exit("migrate", &e),
    }
}
