//! The dependency rules of README.md's "Architecture" section hold in `src/`: every module is
//! listed there, and its code (outside its unit tests) uses only the modules in its row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The table of README.md's "Architecture" section: module → the modules it may use.
fn rules() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Architecture\n")
        .nth(1)
        .expect("README.md has an \"## Architecture\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut rules = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(
            cells.len(),
            3,
            "an Architecture row has three cells: {line}"
        );
        let allowed = cells[2]
            .split(',')
            .map(|c| c.trim().trim_matches('`').to_string())
            .filter(|c| !c.is_empty() && c != "—")
            .collect();
        rules.insert(cells[0].trim_matches('`').to_string(), allowed);
    }
    assert!(!rules.is_empty(), "the Architecture table has rows");
    rules
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The library's top-level modules with their source files (`lib.rs` and `main.rs` are the
/// roots, not modules).
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let src = root().join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            modules.insert(name, rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            modules.insert(name, vec![path]);
        }
    }
    modules
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level modules `code` names as `crate::NAME`.
fn used_modules(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // `crate::` itself, not the end of a longer path such as `sso_operator_crate::`.
            !code[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

/// `code` without its unit tests: everything from the first top-level `#[cfg(test)]` on.
fn without_tests(code: &str) -> &str {
    match code.find("\n#[cfg(test)]") {
        Some(at) => &code[..at],
        None => code,
    }
}

#[test]
fn every_module_of_src_is_in_the_architecture_table_and_nothing_else_is() {
    let listed: BTreeSet<String> = rules().into_keys().collect();
    let present: BTreeSet<String> = modules().into_keys().collect();
    assert_eq!(
        listed, present,
        "README.md's Architecture table must list exactly the modules of src/"
    );
}

#[test]
fn each_module_uses_only_the_modules_its_row_allows() {
    let rules = rules();
    let mut broken = Vec::new();
    for (module, files) in modules() {
        let Some(allowed) = rules.get(&module) else {
            continue;
        };
        for file in files {
            let code = std::fs::read_to_string(&file).unwrap();
            for used in used_modules(without_tests(&code)) {
                if used != module && !allowed.contains(&used) {
                    broken.push(format!(
                        "{} uses crate::{used}, which the `{module}` row does not allow",
                        file.strip_prefix(root()).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_scan_finds_paths_in_use_lines_and_in_code_but_not_in_tests() {
    let code = "use crate::api::X;\nfn f() { crate::store::g(); my_crate::z(); }\n#[cfg(test)]\nmod tests { use crate::server; }\n";
    assert_eq!(
        used_modules(without_tests(code)),
        BTreeSet::from(["api".to_string(), "store".to_string()])
    );
}
