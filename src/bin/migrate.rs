//! `cargo run --bin migrate -- [--url URL] [--database DB] [--user USER] [--dir migrations]`
//! Applies pending ClickHouse migrations; prints what it applied. The password comes from the
//! environment (`MM_CH_PASSWORD`), never the command line, where `ps` would show it.
//! ClickHouse Cloud: `--url https://HOST:8443 --user millimetric_migrator`.

fn main() {
    let mut url = std::env::var("MM_CH_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let mut database = std::env::var("MM_CH_DATABASE").unwrap_or_else(|_| "millimetric".into());
    let mut user = std::env::var("MM_CH_USER").unwrap_or_else(|_| "default".into());
    let mut dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations").to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--url" => url = val(),
            "--database" => database = val(),
            "--user" => user = val(),
            "--dir" => dir = val(),
            _ => fail(&format!(
                "unknown argument {a}; usage: migrate [--url URL] [--database DB] [--user USER] [--dir DIR] (password: MM_CH_PASSWORD)"
            )),
        }
    }
    let mut client = millimetric_edge::native::clickhouse_client::Client::new(&url);
    client.user = user;
    client.password = std::env::var("MM_CH_PASSWORD").unwrap_or_default();
    match millimetric_edge::native::migrate::run(&client, &database, std::path::Path::new(&dir)) {
        Ok(v) if v.is_empty() => println!("migrations: {database} is up to date"),
        Ok(v) => println!("migrations: applied {v:?} to {database}"),
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("migrate: {msg}");
    std::process::exit(1);
}
