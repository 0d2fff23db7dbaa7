//! ClickHouse schema migrations: ordered SQL files in `migrations/`, applied once each and
//! recorded in `schema_migrations`. This module plans; `native::migrate` talks to the server.

use super::clickhouse;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: String,
    pub statements: Vec<String>,
    /// SHA-256 of the file, so an applied migration that was edited afterwards is noticed.
    pub checksum: String,
}

pub const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
    (version UInt32, name String, checksum String, applied_at DateTime DEFAULT now()) \
    ENGINE = MergeTree ORDER BY version";

/// `0001_create_events.sql` -> (1, "create_events"). Other names are not migrations.
pub fn parse_file_name(file: &str) -> Option<(u32, String)> {
    let stem = file.strip_suffix(".sql")?;
    let (num, name) = stem.split_once('_')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some((num.parse().ok()?, name.to_string()))
}

/// Statements of one file: `--` comment lines dropped, split at `;` ending a line.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let t = line.trim();
        if t.starts_with("--") || t.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').trim().to_string();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            cur.clear();
        }
    }
    let rest = cur.trim().to_string();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Files (name, content) to migrations in version order; duplicate versions are an error.
pub fn load(files: Vec<(String, String)>) -> Result<Vec<Migration>, String> {
    let mut ms: Vec<Migration> = files
        .into_iter()
        .filter_map(|(file, sql)| {
            let (version, name) = parse_file_name(&file)?;
            let checksum = crate::keys::hex(&Sha256::digest(sql.as_bytes()));
            Some(Migration { version, name, statements: split_statements(&sql), checksum })
        })
        .collect();
    ms.sort_by_key(|m| m.version);
    if let Some(w) = ms.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(format!("two migrations share version {}: {} and {}", w[0].version, w[0].name, w[1].name));
    }
    Ok(ms)
}

/// Which migrations still need applying, given the (version, checksum) pairs already recorded.
/// An applied migration whose file changed since is an error: write a new migration instead.
pub fn pending<'a>(all: &'a [Migration], applied: &[(u32, String)]) -> Result<Vec<&'a Migration>, String> {
    for (v, sum) in applied {
        if let Some(m) = all.iter().find(|m| m.version == *v) {
            if &m.checksum != sum {
                return Err(format!(
                    "migration {:04}_{} was changed after it was applied; add a new migration instead of editing it",
                    m.version, m.name
                ));
            }
        }
    }
    Ok(all.iter().filter(|m| !applied.iter().any(|(v, _)| *v == m.version)).collect())
}

/// Whether a statement's failure means a rerun found it already done, so a migration that
/// failed part-way can be run again from its first statement: an `ADD COLUMN` whose column
/// exists (18.16 has no `ADD COLUMN IF NOT EXISTS`), or a `RENAME TABLE a TO b` (one table)
/// whose `a` is gone or whose `b` is there (18.16 checks `b` first). A migration that renames
/// checks before that neither both are there (0009's guard); the statements after a rename read
/// `b`, so a rerun in any other state stops at them.
pub fn already_done(statement: &str, error: &str) -> bool {
    rename_done(statement, error) || column_added(statement, error)
}

fn rename_done(statement: &str, error: &str) -> bool {
    let Some(pair) = statement.strip_prefix("RENAME TABLE ") else { return false };
    let Some((from, to)) = pair.split_once(" TO ") else { return false };
    let (from, to) = (from.trim(), to.trim());
    let names = |table: &str, what: &str| error.contains(&format!(".{table} {what}")) || error.contains(&format!(".`{table}` {what}"));
    let code = clickhouse::error_code(error);
    !from.is_empty()
        && !to.is_empty()
        && !pair.contains(',')
        && ((code == Some(clickhouse::UNKNOWN_TABLE) && names(from, "doesn't exist"))
            || (code == Some(clickhouse::TABLE_ALREADY_EXISTS) && names(to, "already exists")))
}

fn column_added(statement: &str, error: &str) -> bool {
    // One column a statement, named in the error (`b` or `` `b` ``): an ALTER that adds two
    // would be refused whole, and passing it would leave the second unadded.
    let mut adds = statement.split(" ADD COLUMN ").skip(1);
    let (Some(added), None) = (adds.next(), adds.next()) else { return false };
    let column = added.split_whitespace().next().unwrap_or("");
    !column.is_empty()
        && error.contains("column with this name already exists")
        && (error.contains(&format!("column {column}:")) || error.contains(&format!("column `{column}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name("0001_create_events.sql"), Some((1, "create_events".into())));
        assert_eq!(parse_file_name("README.md"), None);
        assert_eq!(parse_file_name("x_y.sql"), None);
        assert_eq!(parse_file_name("0002_.sql"), None);
    }

    #[test]
    fn statements_split_at_line_end_semicolons() {
        let s = "-- c\nCREATE TABLE a (x String) ENGINE = Memory;\n\nCREATE VIEW v AS\n  SELECT ';' FROM a;\n";
        assert_eq!(
            split_statements(s),
            vec!["CREATE TABLE a (x String) ENGINE = Memory".to_string(), "CREATE VIEW v AS\n  SELECT ';' FROM a".to_string()]
        );
    }

    #[test]
    fn plan_applies_nothing_twice_and_notices_edits() {
        let all = load(vec![
            ("0002_b.sql".into(), "SELECT 2;".into()),
            ("0001_a.sql".into(), "SELECT 1;".into()),
            ("notes.txt".into(), "".into()),
        ])
        .unwrap();
        assert_eq!(all.iter().map(|m| m.version).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(pending(&all, &[]).unwrap().len(), 2);
        let applied = vec![(1, all[0].checksum.clone())];
        assert_eq!(pending(&all, &applied).unwrap().iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
        let both: Vec<(u32, String)> = all.iter().map(|m| (m.version, m.checksum.clone())).collect();
        assert!(pending(&all, &both).unwrap().is_empty());
        assert!(pending(&all, &[(1, "edited".into())]).is_err());
        assert!(load(vec![("0001_a.sql".into(), "".into()), ("0001_b.sql".into(), "".into())]).is_err());
    }

    #[test]
    fn a_column_added_before_a_failure_is_done_on_the_rerun() {
        let add = "ALTER TABLE events ADD COLUMN revenue_amount Decimal(18, 6) DEFAULT 0";
        let (old, modern) = (
            "Code: 44, e.displayText() = DB::Exception: Cannot add column revenue_amount: column with this name already exists",
            "Code: 15. DB::Exception: Cannot add column `revenue_amount`: column with this name already exists. (DUPLICATE_COLUMN)",
        );
        assert!(already_done(add, old) && already_done(add, modern));
        assert!(!already_done(add, "Code: 497. ACCESS_DENIED"));
        assert!(!already_done("ALTER TABLE events ADD COLUMN other UInt8", old), "another column's error");
        assert!(!already_done("ALTER TABLE events ADD COLUMN revenue_amount UInt8, ADD COLUMN b UInt8", old), "two columns at once");
        assert!(!already_done("CREATE TABLE x (a UInt8) ENGINE = Memory", old));
    }

    /// Migration 0009 rebuilds `events`: its new table must have every column the old one had
    /// (0001's, then each one added since), and its copy must carry each of them by name.
    #[test]
    fn the_rebuilt_events_table_keeps_every_column() {
        let files = [
            include_str!("../../../migrations/0001_create_events.sql"),
            include_str!("../../../migrations/0005_usage.sql"),
            include_str!("../../../migrations/0006_revenue.sql"),
        ];
        let block = |sql: &str, start: &str| -> Vec<String> {
            let from = sql.find(start).expect("the CREATE") + start.len();
            let body = &sql[from..from + sql[from..].find("\n)").expect("its end")];
            body.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| *w != "(").map(str::to_string).collect()
        };
        let mut had = block(files[0], "CREATE TABLE IF NOT EXISTS events\n");
        for sql in &files[1..] {
            had.extend(sql.split("ALTER TABLE events ADD COLUMN ").skip(1).map(|rest| rest.split_whitespace().next().unwrap().to_string()));
        }
        let rebuild = include_str!("../../../migrations/0009_events_by_visitor.sql");
        assert_eq!(block(rebuild, "CREATE TABLE events_by_visitor\n"), had, "the new table's columns");
        let copy = rebuild.split("INSERT INTO events_by_visitor (").nth(1).expect("the copy");
        let (into, select) = copy.split_once(")\nSELECT ").expect("columns, then SELECT");
        let select = select.split(" FROM events_by_day").next().unwrap();
        for list in [into, select] {
            assert_eq!(list.split(", ").collect::<Vec<_>>(), had, "the copy names every column");
        }
        assert_eq!(had.len(), 37);
    }

    #[test]
    fn a_table_renamed_before_a_failure_is_done_on_the_rerun() {
        let rename = "RENAME TABLE events TO events_by_day";
        let (old, modern) = (
            "Code: 60, e.displayText() = DB::Exception: Table millimetric.events doesn't exist., e.what() = DB::Exception",
            "Code: 60. DB::Exception: Table `millimetric`.`events` doesn't exist. (UNKNOWN_TABLE)",
        );
        assert!(already_done(rename, old) && already_done(rename, modern));
        let there = "Code: 57, e.displayText() = DB::Exception: Table millimetric.events_by_day already exists., e.what() = DB::Exception";
        assert!(already_done(rename, there), "18.16 names the target first");
        assert!(already_done(
            rename,
            "Code: 57. DB::Exception: Table `millimetric`.`events_by_day` already exists. (TABLE_ALREADY_EXISTS)"
        ));
        assert!(!already_done("RENAME TABLE events_by_day TO events", there), "the source's name is not the target's");
        assert!(!already_done("RENAME TABLE other TO events_by_day", old), "another table's error");
        assert!(!already_done("RENAME TABLE events_x TO y", old), "a name that only starts alike");
        assert!(!already_done("RENAME TABLE events TO a, b TO c", old), "two renames at once");
        assert!(!already_done("DROP TABLE events", old));
    }
}
