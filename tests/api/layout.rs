//! The layout rule of docs/architecture.md, checked: adapters depend on the engine's
//! state (`engine`, `error`, `auth`), never on the module that starts the server.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source tree") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_module_but_main_imports_startup() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "the source tree was not found: {src:?}");
    let offenders: Vec<String> = files
        .iter()
        .filter(|file| !file.ends_with("main.rs") && !file.ends_with("startup.rs"))
        .filter(|file| {
            let text = std::fs::read_to_string(file).expect("read a source file");
            text.lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .any(|line| line.contains("crate::startup") || line.contains("super::startup"))
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "these import startup: {offenders:?}");
}

/// The load generator and the shared wire crate are clients of the engine's public
/// protocol: Cargo lets them import only the workspace crates listed here.
#[test]
fn the_load_generator_and_the_wire_crate_depend_on_no_engine_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (dir, allowed) in [("loadtest", &["switchboard-wire"][..]), ("wire", &[][..])] {
        let manifest = root.join(dir).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("read a crate manifest");
        let manifest: toml::Table = text.parse().expect("a TOML manifest");
        let workspace_deps: Vec<&String> =
            ["dependencies", "dev-dependencies", "build-dependencies"]
                .iter()
                .filter_map(|section| manifest.get(*section)?.as_table())
                .flat_map(|deps| deps.keys())
                .filter(|name| name.starts_with("switchboard"))
                .collect();
        let forbidden: Vec<&&String> = workspace_deps
            .iter()
            .filter(|name| !allowed.contains(&name.as_str()))
            .collect();
        assert!(
            forbidden.is_empty(),
            "{dir}/ depends on engine crates: {forbidden:?}"
        );
    }
}
