//! The documents point at real code: every file and every `module::name` that ARCHITECTURE.md
//! names exists, `lib.rs` introduces every module it declares, and every source file is part
//! of the crate. (PROTOCOL.md is checked against live servers by `protocol_doc.rs`, LABS.md by
//! `labs.rs`.)

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The words between backticks in a Markdown text.
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        let parts: Vec<&str> = line.split('`').collect();
        spans.extend(parts.iter().skip(1).step_by(2).map(|s| s.to_string()));
    }
    spans
}

/// The source file of a module path such as `peer::store` (`src/peer/store.rs` or
/// `src/peer/store/mod.rs`).
fn module_file(path: &[&str]) -> Option<PathBuf> {
    let base = root().join("src").join(path.join("/"));
    [base.with_extension("rs"), base.join("mod.rs")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Modules are named in the docs by their last parts (`store::FileStamp`,
/// `download::MIN_RATE`): find every module file whose path ends with `parts`.
fn find_modules(parts: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files
        .into_iter()
        .filter(|f| {
            let rel = f
                .strip_prefix(root().join("src"))
                .expect("under src")
                .with_extension("");
            let mut comps: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if comps.last().is_some_and(|c| c == "mod") {
                comps.pop();
            }
            comps.ends_with(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        })
        .collect()
}

/// Whether `source` defines or re-exports `name`.
fn defines(source: &str, name: &str) -> bool {
    let kinds = [
        "fn", "struct", "enum", "const", "static", "type", "trait", "mod",
    ];
    source.lines().any(|line| {
        let l = line.trim_start();
        let l = l
            .strip_prefix("pub(crate) ")
            .or_else(|| l.strip_prefix("pub "))
            .unwrap_or(l);
        let defined = kinds.iter().any(|k| {
            l.strip_prefix(k)
                .and_then(|rest| rest.strip_prefix(' '))
                .is_some_and(|rest| {
                    rest.starts_with(name)
                        && !rest[name.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
        });
        let reexported = l.starts_with("use ")
            && line.trim_start().starts_with("pub")
            && l.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == name);
        // Enum variants and struct fields are named as `Type::Variant` too.
        let variant = l.starts_with(name)
            && l[name.len()..].starts_with([',', ' ', '(', '{', ':'])
            && !l.contains("=>");
        defined || reexported || variant
    })
}

#[test]
fn every_file_architecture_md_names_exists() {
    let text = read(&root().join("ARCHITECTURE.md"));
    let mut checked = 0;
    for span in code_spans(&text) {
        let span = span.trim_end_matches(['/', ',', '.']);
        let looks_like_path = (span.starts_with("src/")
            || span.starts_with("tests/")
            || span.starts_with("benches/"))
            && !span.contains(' ')
            && !span.contains('*');
        if looks_like_path {
            assert!(
                root().join(span).exists(),
                "ARCHITECTURE.md names {span}, which does not exist"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} paths found in ARCHITECTURE.md"
    );
}

#[test]
fn every_module_item_architecture_md_names_exists() {
    let text = read(&root().join("ARCHITECTURE.md"));
    let mut checked = 0;
    let mut missing = Vec::new();
    for span in code_spans(&text) {
        // `module::name`, possibly `module::Type::method`; not shell or Rust expressions.
        if !span.contains("::") || span.contains(' ') || span.contains('(') {
            continue;
        }
        let parts: Vec<&str> = span.split("::").collect();
        let std_modules = [
            "std",
            "io",
            "fs",
            "net",
            "thread",
            "sync",
            "mem",
            "ptr",
            "arch",
            "time",
            "File",
            "TcpStream",
            "TcpListener",
            "Mutex",
            "Condvar",
            "Arc",
            "Vec",
            "String",
            "Instant",
        ];
        if parts.iter().any(|p| p.is_empty()) || std_modules.contains(&parts[0]) {
            continue;
        }
        // The longest prefix that is a module; the rest are items inside it.
        let found = (1..parts.len()).rev().find_map(|k| {
            let modules = find_modules(&parts[..k]);
            (!modules.is_empty()).then_some((k, modules))
        });
        let ok = match found {
            Some((k, modules)) => modules.iter().any(|m| {
                let source = read(m);
                parts[k..].iter().all(|name| defines(&source, name))
            }),
            // `Type::item` with no module: some file defines both.
            None => {
                let mut files = Vec::new();
                rust_files(&root().join("src"), &mut files);
                files.iter().any(|f| {
                    let source = read(f);
                    parts.iter().all(|name| defines(&source, name))
                })
            }
        };
        if !ok {
            missing.push(span.clone());
        }
        checked += 1;
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names items the code does not have: {missing:?}"
    );
    assert!(
        checked >= 5,
        "only {checked} module paths found in ARCHITECTURE.md"
    );
}

#[test]
fn lib_rs_introduces_every_module_and_every_file_is_compiled() {
    let lib = read(&root().join("src/lib.rs"));
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    assert!(!declared.is_empty());
    for module in &declared {
        assert!(
            lib.contains(&format!("[`{module}`]")),
            "src/lib.rs's tour does not introduce the module {module}"
        );
    }
    // Every source file is declared by its parent, so nothing lies about, uncompiled.
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for file in files {
        let rel = file.strip_prefix(root().join("src")).expect("under src");
        let name = rel
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if rel == Path::new("lib.rs") || rel == Path::new("main.rs") || name == "mod" {
            continue;
        }
        let parent_dir = rel.parent().unwrap_or(Path::new(""));
        let parent = if parent_dir.as_os_str().is_empty() {
            root().join("src/lib.rs")
        } else {
            let parts: Vec<String> = parent_dir
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            module_file(&refs).unwrap_or_else(|| panic!("no module file for {}", rel.display()))
        };
        let source = read(&parent);
        assert!(
            source.contains(&format!("mod {name};")),
            "{} is not declared in {} (it is not compiled)",
            rel.display(),
            parent.display()
        );
    }
}
