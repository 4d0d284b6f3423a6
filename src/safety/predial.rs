//! Before dialing: the objective screened against the configured categories
//! ([`Screener`]), the one function both the submit path (`place()`) and the
//! dispatcher's gates call. A critical match refuses the request
//! (`objective-refused`, naming the category) with a critical flag, which
//! pauses the user; a lesser match lets the call through with a flag of that
//! severity on it.

use std::time::Duration;

use serde_json::json;

use super::screen::{Hit, Screener};
use crate::ai::summary::Summarizer;
use crate::config::Settings;
use crate::domain::safety::Severity;
use crate::store::flags::NewFlag;

/// The refusal's code (HTTP 422 at submit, the call's `reason` at dispatch).
pub const OBJECTIVE_REFUSED: &str = "objective-refused";
/// The `type` of a flag raised by the word screen.
pub const OBJECTIVE_SCREEN: &str = "objective_screen";
/// The `type` of a flag raised by the reasoning model's refusal.
pub const OBJECTIVE_MODEL: &str = "objective_model";
/// The `type` of the flag saying the model's check could not run.
pub const OBJECTIVE_MODEL_UNAVAILABLE: &str = "objective_model_unavailable";

/// The reasoning model that classifies objectives at submit
/// (`[safety.classifier]` on, and a `[summary]` model configured).
#[derive(Debug, Clone)]
pub struct Classifier {
    model: Summarizer,
    timeout: Duration,
}

impl Classifier {
    /// `None` when `[safety.classifier]` is off or no summary model is configured.
    pub fn from_settings(settings: &Settings) -> Option<Classifier> {
        if !settings.safety.classifier.enabled {
            return None;
        }
        Some(Classifier {
            model: Summarizer::from_settings(&settings.summary)?,
            timeout: settings.safety.classifier.timeout,
        })
    }
}

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

/// The objective at submit: the word screen ([`screen_objective`]), then — when
/// it lets the objective through and a [`Classifier`] is configured — the
/// model. `allowed: false` refuses with the model's reason and a `high`
/// `objective_model` flag (a model's judgement does not pause the user by
/// itself: an admin reviews it). A model error or timeout lets the request
/// through with a `low` `objective_model_unavailable` flag.
pub async fn check_objective(
    screener: &Screener,
    classifier: Option<&Classifier>,
    objective: &str,
) -> Verdict {
    let mut flags = match screen_objective(screener, objective) {
        Verdict::Refused(refusal) => return Verdict::Refused(refusal),
        Verdict::Allowed(flags) => flags,
    };
    let Some(classifier) = classifier else {
        return Verdict::Allowed(flags);
    };
    let asked = tokio::time::timeout(
        classifier.timeout,
        classifier.model.classify_objective(objective),
    )
    .await;
    let failure = match asked {
        Ok(Ok(verdict)) if verdict.allowed => return Verdict::Allowed(flags),
        Ok(Ok(verdict)) => {
            flags.push(NewFlag {
                kind: OBJECTIVE_MODEL.to_owned(),
                severity: Severity::High,
                reason: format!("the model refused the objective: {}", verdict.reason),
                evidence: json!({
                    "category": verdict.category,
                    "reason": verdict.reason,
                    "model": classifier.model.model(),
                }),
                auto_detected: true,
            });
            return Verdict::Refused(Refusal {
                message: format!("the objective was refused: {}", verdict.reason),
                category: verdict.category,
                flags,
            });
        }
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!(
            "the model did not answer within {} ms",
            classifier.timeout.as_millis()
        ),
    };
    tracing::warn!(error = %failure, "the objective's model check could not run; let through");
    flags.push(NewFlag {
        kind: OBJECTIVE_MODEL_UNAVAILABLE.to_owned(),
        severity: Severity::Low,
        reason: "the model's check of the objective could not run".to_owned(),
        evidence: json!({ "error": failure, "model": classifier.model.model() }),
        auto_detected: true,
    });
    Verdict::Allowed(flags)
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
