//! The layout rule of docs/architecture.md, checked. The rule is read from the
//! document itself (its "Layout" section: one line per folder, each ending in
//! "May import: …"), so the document and the check cannot drift apart:
//!
//! - every top-level module of `src/` has a line, and imports (`crate::…`) only
//!   what its line allows;
//! - every crate of the workspace has a line, and depends (in its `Cargo.toml`)
//!   only on the workspace crates its line allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `Cargo.toml` of a workspace member (`.` is the root), parsed.
fn manifest(member: &str) -> toml::Table {
    let path = root().join(member).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("read a Cargo.toml");
    text.parse()
        .unwrap_or_else(|err| panic!("{} parses: {err}", path.display()))
}

pub(crate) fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source tree") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// One rule line: `- \`src/api/\` — … May import: \`engine\`, \`store\`.`
/// gives `("src/api", {"engine", "store"})`. "May import: nothing." gives an
/// empty set.
fn rules() -> BTreeMap<String, BTreeSet<String>> {
    rule_lines().into_iter().collect()
}

/// The rule lines in the document's order, lowest layer first.
fn rule_lines() -> Vec<(String, BTreeSet<String>)> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md"))
        .expect("read docs/architecture.md");
    let section = doc
        .split("\n## ")
        .find(|section| section.starts_with("Layout"))
        .expect("docs/architecture.md has a \"## Layout\" section");
    let mut rules: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in section.lines().filter(|line| line.starts_with("- `")) {
        let Some((head, allowed)) = line.split_once("May import:") else {
            continue;
        };
        let folder = head
            .trim_start_matches("- `")
            .split('`')
            .next()
            .expect("a folder in backticks")
            .trim_end_matches('/')
            .trim_end_matches(".rs")
            .to_string();
        let allowed: BTreeSet<String> = allowed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|name| name.trim_end_matches('/').to_string())
            .collect();
        assert!(
            rules.iter().all(|(known, _)| known != &folder),
            "two rule lines for {folder}"
        );
        rules.push((folder, allowed));
    }
    assert!(
        rules.len() > 10,
        "the Layout section has too few rules: {rules:?}"
    );
    rules
}

/// The rule line a name of a "May import:" list stands for: a module of `src/`
/// (`store` is `src/store`) or a crate's folder (`actors`).
fn rule_of(name: &str) -> [String; 2] {
    [format!("src/{name}"), name.to_string()]
}

/// The top-level modules a source text names: `crate::x` and `use crate::{x, y}`
/// (comments left out).
fn imported_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `switchboard_actors::crate::…` never happens; `foocrate::` is not ours
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each item at the group's own depth:
            // `{a::{b, c}, d}` names `a` and `d`.
            let mut depth = 1;
            let mut item_start = true;
            for (at, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if item_start && depth == 1 && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[at..]);
                        if !name.is_empty() {
                            found.insert(name);
                        }
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_module_of_src_imports_only_what_the_layout_section_allows() {
    let rules = rules();
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "the source tree was not found: {src:?}");
    let mut offences = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .expect("a first component")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue; // declares the modules
        }
        let Some(allowed) = rules.get(&format!("src/{top}")) else {
            offences.push(format!("src/{top} has no line in the Layout section"));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read a source file");
        let text = if top == "main" {
            text.replace("switchboard::", "crate::")
        } else {
            text
        };
        for module in imported_modules(&text) {
            if module != top && !allowed.contains(&module) {
                offences.push(format!("{} imports `{module}`", relative.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "against the Layout section: {offences:#?}"
    );
}

#[test]
fn every_workspace_crate_depends_only_on_the_crates_the_layout_section_allows() {
    let rules = rules();
    let workspace = manifest(".");
    let members: Vec<String> = workspace["workspace"]["members"]
        .as_array()
        .expect("workspace members")
        .iter()
        .map(|member| member.as_str().expect("a path").to_string())
        .collect();
    // Each member's package name, by folder.
    let mut names = BTreeMap::new();
    for member in &members {
        let table = manifest(member);
        let name = table["package"]["name"]
            .as_str()
            .expect("a name")
            .to_string();
        names.insert(name, member.clone());
    }
    let mut offences = Vec::new();
    for member in &members {
        let folder = if member == "." {
            "src".to_string()
        } else {
            member.clone()
        };
        let Some(allowed) = rules.get(&folder) else {
            offences.push(format!(
                "the crate in {folder}/ has no line in the Layout section"
            ));
            continue;
        };
        let table = manifest(member);
        // Dev-dependencies are the tests' business: a test may drive any crate.
        let deps = ["dependencies", "build-dependencies"]
            .iter()
            .filter_map(|section| table.get(*section)?.as_table())
            .flat_map(|deps| deps.keys());
        for dep in deps {
            if let Some(dep_folder) = names.get(dep) {
                let dep_folder = if dep_folder == "." { "src" } else { dep_folder };
                if !allowed.contains(dep_folder) {
                    offences.push(format!("{folder}/ depends on {dep} ({dep_folder}/)"));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "against the Layout section: {offences:#?}"
    );
}

#[test]
fn the_layout_section_is_layered_lowest_first_so_nothing_imports_upward() {
    let lines = rule_lines();
    let mut upward = Vec::new();
    for (at, (folder, allowed)) in lines.iter().enumerate() {
        for name in allowed {
            let position = lines
                .iter()
                .position(|(known, _)| rule_of(name).contains(known));
            match position {
                None => upward.push(format!("{folder} may import `{name}`, which has no line")),
                Some(position) if position >= at => {
                    upward.push(format!("{folder} may import `{name}`, a line below it"))
                }
                Some(_) => {}
            }
        }
    }
    assert!(upward.is_empty(), "the layers point upward: {upward:#?}");
}

#[test]
fn the_import_reader_sees_paths_groups_and_skips_comments() {
    let text = "use crate::engine::Engine;\nuse crate::{store::{Store, StoreError}, auth};\n// crate::startup\nlet x = crate::config::secs(1); // crate::cli";
    let found: Vec<String> = imported_modules(text).into_iter().collect();
    assert_eq!(found, ["auth", "config", "engine", "store"]);
}
