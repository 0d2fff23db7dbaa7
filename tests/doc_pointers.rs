//! Every pointer into the docs still points at something: an error message, a tool, a comment
//! or a script that names `docs/PAGE` (and a quoted section of it, `docs/PAGE, "Heading"`) names
//! a page that exists and a heading it has; README's links lead to pages that exist; nothing
//! points into README's sections any more (they moved to docs/); README stays a front door.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's own text files under `dirs` (no build output, no installed packages).
fn files(dirs: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                if !["target", "build", "node_modules", ".wrangler"].contains(&name) {
                    walk(&p, out);
                }
            } else if std::fs::read_to_string(&p).is_ok() {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        let p = root().join(d);
        if p.is_file() {
            out.push(p);
        } else {
            walk(&p, &mut out);
        }
    }
    out
}

/// Each `docs/<page>.md` or `docs/<page>.json` in `text`, with the quoted heading after it if any.
fn pointers(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("docs/") {
        let rest = &text[i + 5..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.').collect();
        let name = name.trim_end_matches('.').to_string();
        if !(name.ends_with(".md") || name.ends_with(".json")) {
            continue;
        }
        // A section is named as `docs/<page>.md, "Heading"` (or with escaped quotes, in code).
        let after = rest[name.len()..].strip_prefix(", ");
        let after = after.and_then(|a| a.strip_prefix("\\\"").or_else(|| a.strip_prefix('"')));
        let heading = after.and_then(|a| a.split(['"', '\\']).next()).map(str::to_string);
        out.push((name, heading));
    }
    out
}

/// A Markdown page's headings' titles (fenced code, where `#` starts a shell comment, left out).
fn headings(doc: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let title = line.trim_start_matches('#');
            if title.starts_with(' ') {
                out.push(title.trim());
            }
        }
    }
    out
}

/// Every relative link of a Markdown file (`[text](target)`), without its `#anchor`.
fn links(doc: &str) -> Vec<&str> {
    doc.match_indices("](")
        .filter_map(|(i, _)| doc[i + 2..].split(')').next())
        .map(|t| t.split('#').next().unwrap_or(""))
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.contains(' '))
        .collect()
}

#[test]
fn every_relative_link_of_readme_and_docs_leads_to_a_file() {
    let mut broken = Vec::new();
    for file in files(&["README.md", "docs"]).into_iter().filter(|f| f.extension().is_some_and(|e| e == "md")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for target in links(&text) {
            if !file.parent().unwrap().join(target).exists() {
                broken.push(format!("{}: ({target})", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing:\n{}", broken.join("\n"));
}

#[test]
fn every_pointer_into_the_docs_names_a_page_and_heading_that_exist() {
    let mut broken = Vec::new();
    let mut seen = 0;
    for file in files(&["core", "tools", "workers", "scripts", "tests", "bench", "README.md", "docs", ".ci"]) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (page, heading) in pointers(&text) {
            seen += 1;
            let path = root().join("docs").join(&page);
            let Ok(doc) = std::fs::read_to_string(&path) else {
                broken.push(format!("{}: docs/{page} does not exist", file.display()));
                continue;
            };
            if let Some(h) = heading.filter(|h| !h.is_empty()) {
                if !headings(&doc).iter().any(|title| title.starts_with(h.as_str())) {
                    broken.push(format!("{}: docs/{page} has no heading \"{h}\"", file.display()));
                }
            }
        }
    }
    assert!(seen >= 10, "only {seen} pointers found: the scan is broken");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn nothing_points_into_readme_sections_any_more() {
    let mut found = Vec::new();
    for file in files(&["core", "tools", "workers", "scripts", "bench", "tests", "docs", ".ci"]) {
        if file.ends_with("tests/doc_pointers.rs") {
            continue; // its own patterns
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for pat in ["README, \"", "README \"", "README's \"", "README, \\\"", "README, \n", "see README)"] {
            if text.contains(pat) {
                found.push(format!("{}: {pat}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "point into docs/ instead:\n{}", found.join("\n"));
}

#[test]
fn readme_is_a_front_door_with_the_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.lines().count() <= 200, "README.md has {} lines; the rest belongs in docs/", readme.lines().count());
    let commands: Vec<&str> = readme.lines().filter(|l| l.starts_with("    scripts/")).collect();
    assert_eq!(commands, ["    scripts/dev", "    scripts/test"], "the two commands, near the top");
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("exec scripts/test"), ".ci/run runs the README's test command");
    for (page, _) in pointers(&readme) {
        assert!(root().join("docs").join(&page).exists(), "README links docs/{page}, which does not exist");
    }
}
