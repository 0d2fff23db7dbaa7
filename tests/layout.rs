//! The house's layout holds: the core stays pure (no Workers dependency, no binding in its
//! source), and docs/architecture.md names every folder that exists, and only those.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `[dependencies]` names of a manifest (the table's keys, `name = ...` or `name.workspace`).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line.ends_with("dependencies]");
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or("");
            names.push(name.to_string());
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

const WORKERS_ONLY: [&str; 5] = ["worker", "wasm-bindgen", "js-sys", "web-sys", "millimetric-adapters"];

#[test]
fn the_core_has_no_workers_dependency() {
    let manifest = std::fs::read_to_string(root().join("core/Cargo.toml")).unwrap();
    let deps = dependencies(&manifest);
    assert!(deps.contains(&"serde".to_string()), "the manifest scan found no dependencies: {deps:?}");
    let bad: Vec<_> = deps.iter().filter(|d| WORKERS_ONLY.contains(&d.as_str())).collect();
    assert!(bad.is_empty(), "core/Cargo.toml depends on {bad:?}: the core must stay pure (put it in workers/adapters)");

    let mut files = Vec::new();
    rust_files(&root().join("core/src"), &mut files);
    assert!(files.len() > 30, "only {} files under core/src: the scan is broken", files.len());
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for pat in ["worker::", "wasm_bindgen", "js_sys", "millimetric_adapters", "millimetric_tools"] {
            if text.contains(pat) {
                found.push(format!("{}: {pat}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "the core uses a binding or reaches up a floor:\n{}", found.join("\n"));
}

#[test]
fn the_shared_adapters_never_import_a_worker() {
    // The adapters sit between the core and the Workers: they never import a Worker crate.
    let mut files = Vec::new();
    rust_files(&root().join("workers/adapters/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("millimetric_edge") && !text.contains("millimetric_read"), "{} imports a Worker crate", f.display());
    }
}

/// Backticked folders (ending in `/`) in the first column of the layout table.
fn folders_in_architecture() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let table = doc.split("## Layout").nth(1).expect("docs/architecture.md has a \"Layout\" section");
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|f| f.ends_with('/'))
        .map(|f| f.trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn architecture_names_every_folder_and_only_folders_that_exist() {
    let named = folders_in_architecture();
    assert!(named.len() >= 10, "only {} folders named: the scan is broken ({named:?})", named.len());
    let missing: Vec<_> = named.iter().filter(|f| !root().join(f).is_dir()).collect();
    assert!(missing.is_empty(), "docs/architecture.md names folders that do not exist: {missing:?}");

    let mut actual = vec!["tools".to_string(), "tests".to_string(), "migrations".to_string()];
    for parent in ["core/src", "workers"] {
        for e in std::fs::read_dir(root().join(parent)).unwrap().flatten() {
            if e.path().is_dir() {
                actual.push(format!("{parent}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    let unnamed: Vec<_> = actual.iter().filter(|f| !named.contains(f)).collect();
    assert!(unnamed.is_empty(), "folders with no line in docs/architecture.md's layout: {unnamed:?}");
}
