//! Apply `migrations/*.sql` to a ClickHouse database, each once, recording them.

use super::clickhouse_client::Client;
use millimetric_core::storage::migrations::{self, CREATE_LEDGER};
use std::path::Path;

/// Create the database if needed and apply pending migrations. Returns the versions applied.
pub fn run(server: &Client, database: &str, dir: &Path) -> Result<Vec<u32>, String> {
    run_through(server, database, dir, None)
}

/// As `run`, applying only the pending migrations up to version `last` when it is given: a
/// schema change the running Workers must not see yet waits for the next run
/// (docs/deploy.md: 0007 before the Workers are deployed, 0008 after).
pub fn run_through(server: &Client, database: &str, dir: &Path, last: Option<u32>) -> Result<Vec<u32>, String> {
    if !database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || database.is_empty() {
        return Err(format!("invalid database name {database:?}"));
    }
    server.query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))?;
    let db = server.clone().with_database(database);
    db.query(CREATE_LEDGER)?;

    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.ends_with(".sql") {
            files.push((name, std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?));
        }
    }
    let all = migrations::load(files)?;
    let applied: Vec<(u32, String)> = db
        .query("SELECT version, checksum FROM schema_migrations ORDER BY version FORMAT TabSeparated")?
        .lines()
        .filter_map(|l| {
            let (v, c) = l.split_once('\t')?;
            Some((v.parse().ok()?, c.to_string()))
        })
        .collect();
    let mut done = Vec::new();
    for m in migrations::pending(&all, &applied)?.into_iter().filter(|m| !matches!(last, Some(n) if m.version > n)) {
        for stmt in &m.statements {
            match db.query(stmt) {
                Err(e) if migrations::already_done(stmt, &e) => {}
                r => {
                    r.map_err(|e| format!("migration {:04}_{}: {e}", m.version, m.name))?;
                }
            }
        }
        db.query(&format!(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ({}, '{}', '{}')",
            m.version,
            m.name.replace('\'', ""),
            m.checksum
        ))?;
        done.push(m.version);
    }
    Ok(done)
}
