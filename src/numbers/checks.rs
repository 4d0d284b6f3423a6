//! Validation of the directory and the diff of two workspaces: pure functions over
//! what the engine holds, so the rules are tested without a database.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::{Diff, DiffChange, DiffSide, DirectoryEntry, Finding, LiveNumber, Validation};
use crate::store::pool::UNPARSEABLE;

/// The workspaces the staging-vs-production warning compares.
pub const STAGING: &str = "staging";
pub const PRODUCTION: &str = "production";

/// Errors: numbers without provider ids (live numbers no provider account of their
/// workspace holds), assignments and routes naming agents that no longer exist or
/// belong to another workspace, one number held by several provider accounts of a
/// workspace. Warnings: numbers a provider lists in a form that is not E.164
/// (kept as `unparseable`, never assigned or routed), numbers in staging but not
/// in production.
///
/// `agents` maps every existing agent's id to its workspace.
pub fn validate(
    entries: &[DirectoryEntry],
    live: &[LiveNumber],
    agents: &HashMap<String, String>,
) -> Validation {
    let mut held: BTreeMap<(&str, &str), Vec<&DirectoryEntry>> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.status != "RELEASED") {
        held.entry((entry.e164.as_str(), entry.workspace.as_str()))
            .or_default()
            .push(entry);
    }
    let mut v = Validation::default();
    let mut error = |e164: &str, workspace: &str, message: String| {
        v.errors.push(Finding {
            e164: e164.to_owned(),
            workspace: workspace.to_owned(),
            message,
        })
    };
    for number in live {
        if !held.contains_key(&(number.e164.as_str(), number.workspace.as_str())) {
            error(
                &number.e164,
                &number.workspace,
                "no provider id: live here, but no provider account of this workspace holds it"
                    .to_owned(),
            );
        }
        let ids = number
            .route
            .get("agent_ids")
            .and_then(|ids| ids.as_array())
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str());
        for id in ids {
            match agents.get(id) {
                None => error(
                    &number.e164,
                    &number.workspace,
                    format!("route rings agent {id}, which no longer exists"),
                ),
                Some(ws) if ws != &number.workspace => error(
                    &number.e164,
                    &number.workspace,
                    format!("route rings agent {id} of workspace {ws}"),
                ),
                Some(_) => {}
            }
        }
    }
    for ((e164, workspace), group) in &held {
        for entry in group {
            if entry.provider_id.trim().is_empty() {
                error(
                    e164,
                    workspace,
                    format!("no provider id at {}", entry.provider),
                );
            }
            // An assistant's number: deleting the assistant releases it, so it
            // cannot outlive its holder.
            if entry.status == "ASSIGNED" && entry.assistant_id.is_none() {
                match entry.agent_id.as_deref() {
                    None => error(
                        e164,
                        workspace,
                        "ASSIGNED, but to no agent or assistant".to_owned(),
                    ),
                    Some(id) => match agents.get(id) {
                        None => error(
                            e164,
                            workspace,
                            format!("assigned to agent {id}, which no longer exists"),
                        ),
                        Some(ws) if ws != workspace => error(
                            e164,
                            workspace,
                            format!("assigned to agent {id} of workspace {ws}"),
                        ),
                        Some(_) => {}
                    },
                }
            }
        }
        if group.len() > 1 {
            let holders: BTreeSet<String> = group
                .iter()
                .map(|e| format!("{} {}", e.provider, e.provider_id))
                .collect();
            let holders = holders.into_iter().collect::<Vec<_>>().join(", ");
            error(
                e164,
                workspace,
                format!(
                    "duplicate: held by {} provider accounts ({holders})",
                    group.len()
                ),
            );
        }
    }
    for entry in entries
        .iter()
        .filter(|e| e.status != "RELEASED" && e.note.as_deref() == Some(UNPARSEABLE))
    {
        v.warnings.push(Finding {
            e164: entry.e164.clone(),
            workspace: entry.workspace.clone(),
            message: format!(
                "unparseable: {} {} lists it as {:?}, which is not an E.164 number; \
                 it cannot be assigned or routed",
                entry.provider, entry.provider_id, entry.e164
            ),
        });
    }
    let production: BTreeSet<&str> = held
        .keys()
        .filter(|(_, w)| *w == PRODUCTION)
        .map(|(e, _)| *e)
        .collect();
    for (e164, _) in held.keys().filter(|(_, w)| *w == STAGING) {
        if !production.contains(e164) {
            v.warnings.push(Finding {
                e164: (*e164).to_owned(),
                workspace: STAGING.to_owned(),
                message: format!("in {STAGING} but not in {PRODUCTION}"),
            });
        }
    }
    let order = |a: &Finding, b: &Finding| {
        (&a.e164, &a.workspace, &a.message).cmp(&(&b.e164, &b.workspace, &b.message))
    };
    v.errors.sort_by(order);
    v.warnings.sort_by(order);
    v
}

/// The numbers (not released) of workspace `a` and of `b`, compared by E.164:
/// present on one side only, or present on both with a different type, provider,
/// nickname or status.
pub fn diff(entries: &[DirectoryEntry], a: &str, b: &str) -> Diff {
    let side = |workspace: &str| {
        let mut map: BTreeMap<&str, Vec<&DirectoryEntry>> = BTreeMap::new();
        for e in entries
            .iter()
            .filter(|e| e.workspace == workspace && e.status != "RELEASED")
        {
            map.entry(e.e164.as_str()).or_default().push(e);
        }
        map
    };
    let (left, right) = (side(a), side(b));
    let mut diff = Diff {
        a: a.to_owned(),
        b: b.to_owned(),
        ..Diff::default()
    };
    for (e164, group) in &left {
        match right.get(e164) {
            None => diff.only_a.push(DiffSide {
                e164: (*e164).to_owned(),
                summary: summary(group),
            }),
            Some(other) => {
                let before = diff.differ.len();
                for (field, get) in FIELDS {
                    let (x, y) = (describe(group, *get), describe(other, *get));
                    if x != y {
                        diff.differ.push(DiffChange {
                            e164: (*e164).to_owned(),
                            field: (*field).to_owned(),
                            a: x,
                            b: y,
                        });
                    }
                }
                if diff.differ.len() == before {
                    diff.same += 1;
                }
            }
        }
    }
    for (e164, group) in &right {
        if !left.contains_key(e164) {
            diff.only_b.push(DiffSide {
                e164: (*e164).to_owned(),
                summary: summary(group),
            });
        }
    }
    diff
}

type Field = fn(&DirectoryEntry) -> String;

const FIELDS: &[(&str, Field)] = &[
    ("type", |e| e.number_type.clone()),
    ("provider", |e| e.provider.clone()),
    ("nickname", |e| e.nickname.clone().unwrap_or_default()),
    ("status", |e| e.status.clone()),
];

fn describe(group: &[&DirectoryEntry], get: Field) -> String {
    let values: BTreeSet<String> = group.iter().map(|e| get(e)).collect();
    values.into_iter().collect::<Vec<_>>().join("+")
}

/// `local, twilio, "Front desk"`.
fn summary(group: &[&DirectoryEntry]) -> String {
    let (types, providers) = (
        describe(group, |e| e.number_type.clone()),
        describe(group, |e| e.provider.clone()),
    );
    match describe(group, |e| e.nickname.clone().unwrap_or_default()) {
        nick if nick.is_empty() => format!("{types}, {providers}"),
        nick => format!("{types}, {providers}, {nick:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::model::test_entry as entry;
    use serde_json::json;

    #[test]
    fn validation_finds_every_known_problem_and_nothing_else() {
        let mut assigned = entry("+14155550102", "production", "vapi", "v2");
        assigned.status = "ASSIGNED".into();
        assigned.agent_id = Some("gone".into());
        let mut released = entry("+14155550109", "staging", "twilio", "PN9");
        released.status = "RELEASED".into();
        let entries = vec![
            entry("+14155550101", "production", "twilio", "PN1"),
            entry("+14155550101", "staging", "twilio", "PN1s"),
            assigned,
            entry("+14155550103", "production", "twilio", "PN3"),
            entry("+14155550103", "production", "retell", "+14155550103"),
            entry("+14155550104", "staging", "retell", "+14155550104"),
            released,
        ];
        let live = vec![
            LiveNumber {
                e164: "+14155550101".into(),
                workspace: "production".into(),
                route: json!({"kind": "agents", "agent_ids": ["ada"]}),
            },
            LiveNumber {
                e164: "+14155550105".into(),
                workspace: "production".into(),
                route: json!({"kind": "voicemail"}),
            },
        ];
        let agents = HashMap::from([("ada".to_owned(), "production".to_owned())]);
        let v = validate(&entries, &live, &agents);
        let lines: Vec<String> = v
            .errors
            .iter()
            .chain(&v.warnings)
            .map(|f| format!("{} {} {}", f.e164, f.workspace, f.message))
            .collect();
        assert_eq!(
            lines,
            [
                "+14155550102 production assigned to agent gone, which no longer exists",
                "+14155550103 production duplicate: held by 2 provider accounts (retell +14155550103, twilio PN3)",
                "+14155550105 production no provider id: live here, but no provider account of this workspace holds it",
                "+14155550104 staging in staging but not in production",
            ]
        );
    }

    #[test]
    fn the_diff_tells_what_is_on_one_side_only_and_what_differs() {
        let mut nicknamed = entry("+14155550102", "production", "twilio", "PN2");
        nicknamed.nickname = Some("Front desk".into());
        let entries = vec![
            entry("+14155550101", "staging", "twilio", "a"),
            entry("+14155550101", "production", "twilio", "b"),
            entry("+14155550102", "staging", "twilio", "c"),
            nicknamed,
            entry("+14155550103", "staging", "vapi", "d"),
            entry("+14155550104", "production", "retell", "e"),
        ];
        let d = diff(&entries, "staging", "production");
        assert_eq!(d.same, 1);
        assert_eq!(d.only_a[0].e164, "+14155550103");
        assert_eq!(d.only_a[0].summary, "local, vapi");
        assert_eq!(d.only_b[0].e164, "+14155550104");
        assert_eq!(
            d.differ,
            vec![DiffChange {
                e164: "+14155550102".into(),
                field: "nickname".into(),
                a: String::new(),
                b: "Front desk".into(),
            }]
        );
    }
}
