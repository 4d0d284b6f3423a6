//! How the command line shows the directory: aligned tables, CSV, JSON, the lines
//! of a validation or a diff, and the export directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::numbers::model::{Diff, DirectoryEntry, Validation};

const COLUMNS: [&str; 7] = [
    "WORKSPACE",
    "NUMBER",
    "TYPE",
    "PROVIDER",
    "STATUS",
    "NICKNAME",
    "AGENT",
];

fn cells(e: &DirectoryEntry) -> [String; 7] {
    [
        e.workspace.clone(),
        e.e164.clone(),
        e.number_type.clone(),
        e.provider.clone(),
        e.status.clone(),
        e.nickname.clone().unwrap_or_else(|| "-".to_owned()),
        agent_cell(e),
    ]
}

/// `Ada (3f2c…)`, `3f2c… (deleted)` or `-`.
fn agent_cell(e: &DirectoryEntry) -> String {
    match (&e.agent_id, &e.agent_name) {
        (Some(id), Some(name)) => format!("{name} ({id})"),
        (Some(id), None) => format!("{id} (deleted)"),
        (None, _) => "-".to_owned(),
    }
}

/// An aligned table, one line per number, with a header.
pub fn table(entries: &[DirectoryEntry]) -> String {
    let rows: Vec<[String; 7]> = entries.iter().map(cells).collect();
    let mut widths = COLUMNS.map(|c| c.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::with_capacity((rows.len() + 1) * 100);
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&COLUMNS);
    for row in &rows {
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&refs);
    }
    out
}

/// Counts by workspace and status.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub total: usize,
    pub by_status: BTreeMap<String, usize>,
    pub by_workspace: BTreeMap<String, BTreeMap<String, usize>>,
}

pub fn summary(entries: &[DirectoryEntry]) -> Summary {
    let mut s = Summary {
        total: entries.len(),
        ..Summary::default()
    };
    for e in entries {
        *s.by_status.entry(e.status.clone()).or_default() += 1;
        *s.by_workspace
            .entry(e.workspace.clone())
            .or_default()
            .entry(e.status.clone())
            .or_default() += 1;
    }
    s
}

/// The report as a table: every number, then a line per workspace and a total.
pub fn report_table(entries: &[DirectoryEntry]) -> String {
    let mut out = table(entries);
    let s = summary(entries);
    out.push('\n');
    for (workspace, statuses) in &s.by_workspace {
        let _ = writeln!(out, "{workspace}: {}", counts(statuses));
    }
    let _ = writeln!(out, "total: {} numbers ({})", s.total, counts(&s.by_status));
    out
}

fn counts(statuses: &BTreeMap<String, usize>) -> String {
    ["AVAILABLE", "ASSIGNED", "RELEASED"]
        .iter()
        .map(|st| format!("{} {st}", statuses.get(*st).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as JSON: `{"numbers": […], "summary": {…}}`.
pub fn report_json(entries: &[DirectoryEntry]) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Report<'a> {
        numbers: &'a [DirectoryEntry],
        summary: Summary,
    }
    let mut text = serde_json::to_string_pretty(&Report {
        numbers: entries,
        summary: summary(entries),
    })?;
    text.push('\n');
    Ok(text)
}

/// The report as CSV, one row per number.
pub fn report_csv(entries: &[DirectoryEntry]) -> anyhow::Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(entries.len() * 120));
    writer.write_record([
        "workspace",
        "e164",
        "type",
        "provider",
        "provider_id",
        "status",
        "nickname",
        "agent_id",
        "agent_name",
    ])?;
    for e in entries {
        writer.write_record([
            e.workspace.as_str(),
            &e.e164,
            &e.number_type,
            &e.provider,
            &e.provider_id,
            &e.status,
            e.nickname.as_deref().unwrap_or(""),
            e.agent_id.as_deref().unwrap_or(""),
            e.agent_name.as_deref().unwrap_or(""),
        ])?;
    }
    let bytes = writer.into_inner().context("finishing the CSV")?;
    String::from_utf8(bytes).context("the CSV is UTF-8")
}

/// `error: +14155550102 [production] assigned to agent …`, errors first, then
/// warnings, then `N errors, M warnings`.
pub fn validation_lines(v: &Validation) -> Vec<String> {
    let mut lines: Vec<String> = v
        .errors
        .iter()
        .map(|f| format!("error: {} [{}] {}", f.e164, f.workspace, f.message))
        .chain(
            v.warnings
                .iter()
                .map(|f| format!("warning: {} [{}] {}", f.e164, f.workspace, f.message)),
        )
        .collect();
    lines.push(format!(
        "{} {}, {} {}",
        v.errors.len(),
        plural(v.errors.len(), "error"),
        v.warnings.len(),
        plural(v.warnings.len(), "warning")
    ));
    lines
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// `- +1… only in staging (local, twilio)`, `+ +1… only in production (…)`,
/// `~ +1… nickname: "" → "Front desk"`, then a summary line.
pub fn diff_lines(d: &Diff) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &d.only_a {
        lines.push(format!("- {} only in {} ({})", s.e164, d.a, s.summary));
    }
    for s in &d.only_b {
        lines.push(format!("+ {} only in {} ({})", s.e164, d.b, s.summary));
    }
    for c in &d.differ {
        lines.push(format!("~ {} {}: {:?} → {:?}", c.e164, c.field, c.a, c.b));
    }
    let differing: std::collections::BTreeSet<&str> =
        d.differ.iter().map(|c| c.e164.as_str()).collect();
    lines.push(format!(
        "{} only in {}, {} only in {}, {} differ, {} same",
        d.only_a.len(),
        d.a,
        d.only_b.len(),
        d.b,
        differing.len(),
        d.same
    ));
    lines
}

/// A number as the export writes it: what belongs under version control, never a
/// credential, no timestamps (they would change on every sync).
#[derive(Serialize)]
struct Exported<'a> {
    e164: &'a str,
    #[serde(rename = "type")]
    number_type: &'a str,
    workspace: &'a str,
    provider: &'a str,
    provider_id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nickname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_trunk_sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_termination_host: Option<String>,
    /// `unparseable`: `e164` is the provider's text, not an E.164 number.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

impl<'a> Exported<'a> {
    fn of(e: &'a DirectoryEntry) -> Self {
        let trunk = e.sip_trunk.as_ref();
        Self {
            e164: &e.e164,
            number_type: &e.number_type,
            workspace: &e.workspace,
            provider: &e.provider,
            provider_id: &e.provider_id,
            status: &e.status,
            nickname: e.nickname.as_deref(),
            agent_id: e.agent_id.as_deref(),
            route: e.route.as_ref(),
            sip_trunk_sid: trunk.and_then(|t| t.trunk_sid.as_deref()),
            // Only the host: a termination URI may carry credentials.
            sip_termination_host: trunk
                .and_then(|t| t.termination_uri.as_deref())
                .map(|uri| uri.rsplit('@').next().unwrap_or(uri))
                .map(|host| host.trim_start_matches("sip:").to_owned()),
            note: e.note.as_deref(),
        }
    }
}

/// Writes `DIR/numbers.json` (every number of every workspace) and
/// `DIR/workspaces/<workspace>.json` (one per workspace): sorted, pretty JSON that
/// diffs well under version control. `progress` is told each number written.
/// Returns the files written.
pub fn export(
    dir: &Path,
    entries: &[DirectoryEntry],
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut sorted: Vec<&DirectoryEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.e164, &a.workspace, &a.provider, &a.provider_id).cmp(&(
            &b.e164,
            &b.workspace,
            &b.provider,
            &b.provider_id,
        ))
    });
    let workspaces_dir = dir.join("workspaces");
    let mut by_workspace: BTreeMap<&str, Vec<Exported<'_>>> = BTreeMap::new();
    let mut all = Vec::with_capacity(sorted.len());
    for e in &sorted {
        all.push(Exported::of(e));
        by_workspace
            .entry(e.workspace.as_str())
            .or_default()
            .push(Exported::of(e));
        progress(1);
    }
    let write = |path: std::path::PathBuf, numbers: &[Exported<'_>]| -> anyhow::Result<_> {
        let mut text = serde_json::to_string_pretty(numbers)?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    // Every file name is settled (and checked) before anything is written.
    let mut targets: Vec<(std::path::PathBuf, &[Exported<'_>])> = Vec::new();
    let mut owners: BTreeMap<String, &str> = BTreeMap::new();
    for (workspace, numbers) in &by_workspace {
        let name = format!("{}.json", file_component(workspace));
        if let Some(other) = owners.insert(name.clone(), workspace) {
            anyhow::bail!(
                "workspaces {other:?} and {workspace:?} would both be written to \
                 workspaces/{name}; nothing was exported"
            );
        }
        let path = workspaces_dir.join(&name);
        inside(dir, &path)?;
        targets.push((path, numbers));
    }
    std::fs::create_dir_all(&workspaces_dir)
        .with_context(|| format!("creating {}", workspaces_dir.display()))?;
    let mut files = vec![write(dir.join("numbers.json"), &all)?];
    for (path, numbers) in targets {
        files.push(write(path, numbers)?);
    }
    Ok(files)
}

/// A name from the server as one safe file-name component: ASCII letters, digits,
/// `-` and `_` are kept, anything else (`/`, `\\`, `.`, spaces, non-ASCII…) becomes
/// `_`; so it can be neither `..`, nor absolute, nor hidden, nor contain a separator.
fn file_component(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "_".to_owned()
    } else {
        name
    }
}

/// Refuses `path` unless it lies under `dir` through plain names only.
fn inside(dir: &Path, path: &Path) -> anyhow::Result<()> {
    let plain = path.strip_prefix(dir).is_ok_and(|rel| {
        rel.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    });
    anyhow::ensure!(
        plain,
        "refusing to write {} outside {}",
        path.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(e164: &str, workspace: &str) -> DirectoryEntry {
        crate::numbers::model::test_entry(e164, workspace, "twilio", &format!("PN{e164}"))
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sb_render_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    }

    /// Every file under `root`, relative to it.
    fn files_under(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for item in std::fs::read_dir(&dir).expect("readable").flatten() {
                let path = item.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    found.push(rel.display().to_string());
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn an_export_never_writes_outside_its_directory_whatever_the_workspace_names() {
        // The workspace names come from the server: a hostile or broken one may
        // send `../` or an absolute path (issue 9, item 13).
        let root = tempdir();
        let dir = root.join("export");
        let absolute = root.join("absolute").display().to_string();
        let entries = vec![
            entry("+14155550101", "production"),
            entry("+14155550102", "../../escaped"),
            entry("+14155550103", &absolute),
            entry("+14155550104", ".."),
            entry("+14155550105", "a/../../b"),
        ];
        let written = export(&dir, &entries, &mut |_| {}).expect("the export is written");
        for path in &written {
            assert!(
                path.starts_with(&dir)
                    && path.strip_prefix(&dir).is_ok_and(|rel| rel
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))),
                "{} is outside {}",
                path.display(),
                dir.display()
            );
        }
        let everything = files_under(&root);
        assert!(
            everything.iter().all(|f| f.starts_with("export")),
            "files outside the export directory: {everything:?}"
        );
        assert_eq!(written.len(), 6, "numbers.json and one file per workspace");
        let names: Vec<String> = files_under(&dir.join("workspaces"));
        assert!(names.contains(&"production.json".to_owned()), "{names:?}");
        assert!(
            names.iter().all(|n| n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                && !n.starts_with('.')),
            "{names:?}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn two_workspaces_that_would_share_a_file_are_refused_before_anything_is_written() {
        let root = tempdir();
        let dir = root.join("export");
        let entries = vec![entry("+14155550101", "a/b"), entry("+14155550102", "a_b")];
        let error = export(&dir, &entries, &mut |_| {}).expect_err("refused");
        assert!(
            error.to_string().contains("\"a/b\"") && error.to_string().contains("\"a_b\""),
            "{error}"
        );
        assert!(files_under(&root).is_empty(), "nothing was written");
        let _ = std::fs::remove_dir_all(&root);
    }
}
