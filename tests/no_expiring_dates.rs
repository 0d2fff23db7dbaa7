//! CI must be green on any day. The end-to-end tests talk to a Worker whose clock is the run's
//! own, and the ingest contract refuses timestamps older than 30 days, so a date written into
//! one of them expires (one did: 2026-11-01 broke CI on 2026-12-01). This fails on any
//! calendar date in the files that drive the real Worker; they use `support::time_ago`.
//! Pure tests with a fixed `received_ms` (never_panics.rs, unit tests) may pin dates.

use std::path::{Path, PathBuf};

/// Byte offsets of `YYYY-MM-DD` (years 19xx/20xx) in `text`.
fn dates_in(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    (0..b.len().saturating_sub(9))
        .filter(|&i| {
            (b[i..].starts_with(b"19") || b[i..].starts_with(b"20"))
                && (i == 0 || !digit(i - 1))
                && digit(i + 2)
                && digit(i + 3)
                && b[i + 4] == b'-'
                && digit(i + 5)
                && digit(i + 6)
                && b[i + 7] == b'-'
                && digit(i + 8)
                && digit(i + 9)
        })
        .collect()
}

fn files_driving_the_worker(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files_driving_the_worker(&p, out);
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let in_snippet_dir = p.parent().is_some_and(|d| d.ends_with("snippet"));
        if name.starts_with("e2e_") || in_snippet_dir || (name == "mod.rs" && p.parent().is_some_and(|d| d.ends_with("support"))) {
            out.push(p);
        }
    }
}

#[test]
fn the_detector_finds_dates() {
    assert_eq!(dates_in(r#"{"timestamp":"2026-11-01T10:00:00Z"}"#).len(), 1);
    assert_eq!(dates_in("at 1999-12-31 23:59"), vec![3]);
    assert!(dates_in("id 12026-11-01x, v2.0-1, 2026-1-01").is_empty());
}

#[test]
fn end_to_end_tests_pin_no_calendar_date() {
    let mut files = Vec::new();
    files_driving_the_worker(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"), &mut files);
    assert!(files.len() >= 5, "found only {files:?}");
    // MCP protocol revisions are names that look like dates, not times that expire.
    const PROTOCOL_REVISIONS: &[&str] = &["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for at in dates_in(&text).into_iter().filter(|&at| !PROTOCOL_REVISIONS.contains(&&text[at..at + 10])) {
            let line = text[..at].lines().count().max(1);
            found.push(format!("{}:{line}: {}", f.display(), &text[at..at + 10]));
        }
    }
    assert!(found.is_empty(), "fixed dates expire; use support::time_ago:\n{}", found.join("\n"));
}
