//! Before dialing: the objective screened against the configured categories
//! ([`Screener`]), the one function both the submit path (`place()`) and the
//! dispatcher's gates call. A critical match refuses the request
//! (`objective-refused`, naming the category) with a critical flag, which
//! pauses the user; a lesser match lets the call through with a flag of that
//! severity on it.

use serde_json::json;

use super::screen::{Hit, Screener};
use crate::domain::safety::Severity;
use crate::store::flags::NewFlag;

/// The refusal's code (HTTP 422 at submit, the call's `reason` at dispatch).
pub const OBJECTIVE_REFUSED: &str = "objective-refused";
/// The `type` of a flag raised by the word screen.
pub const OBJECTIVE_SCREEN: &str = "objective_screen";

/// A refused objective.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The category that refused it (the most severe matched).
    pub category: String,
    /// What the user is told: the category, not the word list.
    pub message: String,
    /// The flags to raise (a critical one among them).
    pub flags: Vec<NewFlag>,
}

/// What screening an objective came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Refused(Refusal),
    /// Through, with these flags (none for an innocent objective).
    Allowed(Vec<NewFlag>),
}

/// One flag per matched category, with its severity and the terms found.
fn flags_of(hits: &[Hit]) -> Vec<NewFlag> {
    let mut flags: Vec<NewFlag> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for hit in hits {
        if seen.contains(&hit.category.as_str()) {
            continue;
        }
        seen.push(&hit.category);
        let terms: Vec<&str> = hits
            .iter()
            .filter(|h| h.category == hit.category)
            .map(|h| h.term.as_str())
            .collect();
        flags.push(NewFlag {
            kind: OBJECTIVE_SCREEN.to_owned(),
            severity: hit.severity,
            reason: format!("the objective matches the category {}", hit.category),
            evidence: json!({"category": hit.category, "terms": terms}),
            auto_detected: true,
        });
    }
    flags
}

/// Screens `objective` (no model: see the module doc).
pub fn screen_objective(screener: &Screener, objective: &str) -> Verdict {
    let hits = screener.scan(objective);
    let flags = flags_of(&hits);
    match hits.first() {
        Some(worst) if worst.severity == Severity::Critical => Verdict::Refused(Refusal {
            category: worst.category.clone(),
            message: format!(
                "the objective was refused: it falls in the category {}",
                worst.category
            ),
            flags,
        }),
        _ => Verdict::Allowed(flags),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SafetyCategory;

    fn screener() -> Screener {
        let category = |name: &str, severity, terms: &[&str]| SafetyCategory {
            name: name.to_owned(),
            severity,
            terms: terms.iter().map(|t| (*t).to_owned()).collect(),
        };
        Screener::new(&[
            category("threats", Severity::Critical, &["kill", "hurt"]),
            category("prizes", Severity::High, &["prize", "sweepstakes"]),
            category("debt_collection", Severity::High, &["overdue debt"]),
        ])
    }

    #[test]
    fn a_critical_match_refuses_naming_the_category_not_the_terms() {
        let Verdict::Refused(refusal) =
            screen_objective(&screener(), "Tell him we will K.I.L.L his prize dog")
        else {
            panic!("not refused");
        };
        assert_eq!(refusal.category, "threats");
        assert!(refusal.message.contains("threats"));
        assert!(!refusal.message.contains("kill"));
        let severities: Vec<_> = refusal.flags.iter().map(|f| f.severity).collect();
        assert_eq!(severities, [Severity::Critical, Severity::High]);
    }

    #[test]
    fn a_high_match_passes_with_one_flag_per_category() {
        let verdict = screen_objective(&screener(), "A prize, a sweepstakes and an overdue debt");
        let Verdict::Allowed(flags) = verdict else {
            panic!("refused");
        };
        assert_eq!(flags.len(), 2);
        assert!(flags.iter().all(|f| f.severity == Severity::High));
        let prizes = flags
            .iter()
            .find(|f| f.evidence["category"] == "prizes")
            .expect("a prizes flag");
        assert_eq!(prizes.evidence["terms"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn an_innocent_objective_passes_without_a_flag() {
        let verdict = screen_objective(&screener(), "Ask about the issue; he won't mind.");
        assert_eq!(verdict, Verdict::Allowed(Vec::new()));
    }
}
