//! `cargo run --bin migrate -- [--url URL] [--database DB] [--user USER] [--dir migrations] [--through N]`
//! Applies pending ClickHouse migrations (with `--through N`, only those up to version N);
//! prints what it applied. The password comes from the
//! environment (`MM_CH_PASSWORD`), never the command line, where `ps` would show it.
//! ClickHouse Cloud: `--url https://HOST:8443 --user millimetric_migrator`.

use millimetric_tools::clickhouse_settings::{exit, Settings};

fn main() {
    let mut dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations").to_string();
    let mut through = None;
    let ch = Settings::from_env_and_args("migrate", "[--dir DIR] [--through VERSION]", |flag, value| match flag {
        "--dir" => {
            dir = value();
            true
        }
        "--through" => {
            let v = value();
            through = Some(
                v.parse::<u32>().unwrap_or_else(|_| exit("migrate", &format!("--through takes a migration's version number, not {v:?}"))),
            );
            true
        }
        _ => false,
    });
    let database = ch.database.clone();
    // A migration that copies a table (0009) takes as long as the table is large.
    let mut client = ch.client();
    client.timeout = std::time::Duration::from_secs(3600);
    match millimetric_tools::migrate::run_through(&client, &database, std::path::Path::new(&dir), through) {
        Ok(v) if v.is_empty() => println!("migrations: {database} is up to date"),
        Ok(v) => println!("migrations: applied {v:?} to {database}"),
        Err(e) => exit("migrate", &e),
    }
}
