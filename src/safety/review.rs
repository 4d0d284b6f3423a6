//! The post-call review (issue 12, item 2): a periodic task
//! ([`ReviewWorker`], every `safety.review.poll_secs`, "now" from the engine's
//! clock) that looks at every ended outbound call once.
//!
//! 1. It takes terminal calls with `reviewed_at` unset, `batch_size` at a time
//!    — an answered one once its after-call work is written (`analyzed_at`),
//!    or `analysis_wait_secs` after it ended if that never comes, and only once
//!    its call record is closed (its transcript written whole). The state is
//!    the row itself, so a call that ended while the engine was down is
//!    reviewed after it starts; nothing is held in memory between rounds.
//! 2. Transcript: both sides' turns (`call_turns`) are screened with the
//!    configured categories ([`Screener`], the same as objectives): a flag
//!    `transcript` per category found, of its severity, the quoted turns as
//!    `evidence`.
//! 3. Telephony pattern: the user's calls over `window_secs` (once
//!    `min_calls` were dialed): short-call ratio, answer rate, callee hang-ups
//!    in the first `early_hangup_secs`, opt-outs; each threshold crossed is a
//!    flag (`telephony_short_calls`, `telephony_answer_rate`,
//!    `telephony_early_hangups`, `telephony_opt_outs`) of `pattern_severity`
//!    with the counts as evidence, once per user and window.
//! 4. Written in one transaction per batch ([`Store::record_reviews`]): each
//!    call marked `reviewed_at` and its flags raised only if this marked it, so
//!    a crash at any point never flags a call twice nor loses its review. A
//!    critical flag pauses the user in that transaction; the dispatcher then
//!    ends the user's queued calls `canceled` (`account-paused`).
//! 5. Number health ([`super::number_health`]) is judged after each batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::number_health;
use super::screen::{Hit, Screener};
use crate::config::{ReviewSettings, Settings};
use crate::store::flags::NewFlag;
use crate::store::safety_review::{CallFigures, Review, ReviewTurn};
use crate::store::{Store, StoreError};

/// Flag types the review raises.
pub mod kinds {
    pub const TRANSCRIPT: &str = "transcript";
    pub const SHORT_CALLS: &str = "telephony_short_calls";
    pub const ANSWER_RATE: &str = "telephony_answer_rate";
    pub const EARLY_HANGUPS: &str = "telephony_early_hangups";
    pub const OPT_OUTS: &str = "telephony_opt_outs";
}

/// "Now" in ms since the epoch: the engine's clock (`outbound::clock`, a
/// `ManualClock` in tests), passed in so that `safety` does not import
/// `outbound` (which imports `safety`).
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the review works with.
#[derive(Clone)]
pub struct ReviewDeps {
    pub store: Store,
    pub now: Now,
    pub screener: Arc<Screener>,
    pub settings: Arc<Settings>,
}

impl ReviewDeps {
    pub fn new(settings: Arc<Settings>, store: Store, now: Now) -> Self {
        Self {
            store,
            now,
            screener: Arc::new(Screener::new(&settings.safety.categories)),
            settings,
        }
    }
}

/// The periodic task; stop it with [`ReviewWorker::stop`].
pub struct ReviewWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ReviewWorker {
    pub fn spawn(deps: ReviewDeps) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let every = deps.settings.safety.review.poll;
        let task = tokio::spawn(async move {
            loop {
                // Batches back to back while there are full ones.
                loop {
                    match review_round(&deps).await {
                        Ok(n) if n >= deps.settings.safety.review.batch_size as usize => {}
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "a post-call review round failed");
                            break;
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Self { stop, task }
    }

    /// Stops after the round in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One batch: reviews up to `batch_size` ended calls; answers how many.
pub async fn review_round(deps: &ReviewDeps) -> Result<usize, StoreError> {
    let now_ms = (deps.now)();
    let config = &deps.settings.safety.review;
    let due = deps
        .store
        .outbound_to_review(
            now_ms.saturating_sub(ms(config.analysis_wait)),
            config.batch_size,
        )
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = due.iter().map(|c| c.id.as_str()).collect();
    let transcripts = deps.store.transcripts_of(&ids).await?;
    let since = now_ms.saturating_sub(ms(config.window));
    // A user's pattern is judged once per batch, on their first call in it.
    let mut judged: HashMap<String, ()> = HashMap::new();
    let mut reviews = Vec::with_capacity(due.len());
    for call in &due {
        let mut flags = transcript_flags(
            &deps.screener,
            transcripts.get(&call.id).map_or(&[][..], Vec::as_slice),
        );
        if judged
            .insert(call.user_id.as_str().to_owned(), ())
            .is_none()
        {
            let figures = deps
                .store
                .user_call_figures(
                    &call.user_id,
                    since,
                    ms(config.short_call),
                    ms(config.early_hangup),
                )
                .await?;
            for flag in pattern_flags(config, &figures) {
                if !deps
                    .store
                    .has_auto_flag_since(&call.user_id, &flag.kind, since)
                    .await?
                {
                    flags.push(flag);
                }
            }
        }
        reviews.push(Review {
            outbound_id: call.id.clone(),
            user_id: call.user_id.clone(),
            flags,
        });
    }
    let raised = deps.store.record_reviews(&reviews, now_ms).await?;
    for (outbound_id, done) in &raised {
        tracing::info!(
            outbound_id,
            flags = done.flags.len(),
            paused = done.paused,
            "post-call review raised flags"
        );
    }
    if let Err(e) = number_health::judge(&deps.store, &deps.settings, now_ms).await {
        tracing::warn!(error = %e, "number health could not be judged");
    }
    Ok(due.len())
}

/// A flag per category found in the transcript, its turns quoted.
pub fn transcript_flags(screener: &Screener, turns: &[ReviewTurn]) -> Vec<NewFlag> {
    // category → (severity, terms, quoted turns)
    let mut found: Vec<(Hit, Vec<String>, Vec<serde_json::Value>)> = Vec::new();
    for turn in turns {
        for hit in screener.scan(&turn.text) {
            let quote = json!({ "seq": turn.seq, "role": turn.role, "text": turn.text });
            match found
                .iter_mut()
                .find(|(h, _, _)| h.category == hit.category)
            {
                Some((_, terms, quotes)) => {
                    if !terms.contains(&hit.term) {
                        terms.push(hit.term.clone());
                    }
                    if !quotes.contains(&quote) {
                        quotes.push(quote);
                    }
                }
                None => found.push((hit.clone(), vec![hit.term.clone()], vec![quote])),
            }
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0.severity));
    found
        .into_iter()
        .map(|(hit, terms, quotes)| NewFlag {
            kind: kinds::TRANSCRIPT.to_owned(),
            severity: hit.severity,
            reason: format!(
                "the transcript says {} ({})",
                hit.category,
                terms.join(", ")
            ),
            evidence: json!({ "category": hit.category, "terms": terms, "turns": quotes }),
            auto_detected: true,
        })
        .collect()
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The figures as evidence.
pub fn figures_json(figures: &CallFigures) -> serde_json::Value {
    json!({
        "calls": figures.calls,
        "answered": figures.answered,
        "short_calls": figures.short,
        "early_hangups": figures.early_hangups,
        "opt_outs": figures.opt_outs,
        "answer_rate": ratio(figures.answered, figures.calls),
        "short_call_ratio": ratio(figures.short, figures.answered),
        "early_hangup_ratio": ratio(figures.early_hangups, figures.answered),
    })
}

/// A flag per pattern threshold crossed by a user's figures.
pub fn pattern_flags(config: &ReviewSettings, figures: &CallFigures) -> Vec<NewFlag> {
    let mut flags = Vec::new();
    let flag = |kind: &str, reason: String| NewFlag {
        kind: kind.to_owned(),
        severity: config.pattern_severity,
        reason,
        evidence: json!({
            "window_secs": config.window.as_secs(),
            "figures": figures_json(figures),
        }),
        auto_detected: true,
    };
    // Opt-outs count whatever the number of calls.
    if figures.opt_outs > i64::from(config.max_opt_outs) {
        flags.push(flag(
            kinds::OPT_OUTS,
            format!(
                "{} callees opted out in the window (at most {})",
                figures.opt_outs, config.max_opt_outs
            ),
        ));
    }
    if figures.calls < i64::from(config.min_calls) {
        return flags;
    }
    let answer_rate = ratio(figures.answered, figures.calls);
    if answer_rate < config.min_answer_rate {
        flags.push(flag(
            kinds::ANSWER_RATE,
            format!(
                "{} of {} calls answered ({:.0} % < {:.0} %)",
                figures.answered,
                figures.calls,
                answer_rate * 100.0,
                config.min_answer_rate * 100.0
            ),
        ));
    }
    let short = ratio(figures.short, figures.answered);
    if figures.answered > 0 && short > config.max_short_call_ratio {
        flags.push(flag(
            kinds::SHORT_CALLS,
            format!(
                "{} of {} answered calls shorter than {} s ({:.0} % > {:.0} %)",
                figures.short,
                figures.answered,
                config.short_call.as_secs(),
                short * 100.0,
                config.max_short_call_ratio * 100.0
            ),
        ));
    }
    let early = ratio(figures.early_hangups, figures.answered);
    if figures.answered > 0 && early > config.max_early_hangup_ratio {
        flags.push(flag(
            kinds::EARLY_HANGUPS,
            format!(
                "{} of {} answered calls hung up within {} s ({:.0} % > {:.0} %)",
                figures.early_hangups,
                figures.answered,
                config.early_hangup.as_secs(),
                early * 100.0,
                config.max_early_hangup_ratio * 100.0
            ),
        ));
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::safety::Severity;

    fn turn(seq: i64, role: &str, text: &str) -> ReviewTurn {
        ReviewTurn {
            seq,
            role: role.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn a_transcript_gets_a_flag_per_category_with_the_turns_that_say_it() {
        let screener = Screener::new(&Settings::defaults().safety.categories);
        let flags = transcript_flags(
            &screener,
            &[
                turn(1, "caller", "That is an issue; I will pursue it."),
                turn(2, "assistant", "You have won a prize, but the I.R.S. says…"),
                turn(3, "caller", "Won't you stop?"),
            ],
        );
        let kinds: Vec<(&str, Severity)> = flags
            .iter()
            .map(|f| (f.evidence["category"].as_str().unwrap_or(""), f.severity))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("government_impersonation", Severity::Critical),
                ("prizes", Severity::High)
            ]
        );
        assert_eq!(flags[0].evidence["turns"][0]["seq"], 2);
        assert_eq!(flags[0].evidence["turns"].as_array().map(Vec::len), Some(1));
        assert!(flags
            .iter()
            .all(|f| f.kind == kinds::TRANSCRIPT && f.auto_detected));
    }

    #[test]
    fn a_pattern_is_flagged_past_each_threshold_once_there_are_enough_calls() {
        let config = ReviewSettings::default();
        let quiet = CallFigures {
            calls: 9,
            answered: 0,
            short: 0,
            early_hangups: 0,
            opt_outs: 0,
        };
        assert!(pattern_flags(&config, &quiet).is_empty(), "too few calls");
        let bad = CallFigures {
            calls: 20,
            answered: 1,
            short: 1,
            early_hangups: 1,
            opt_outs: 4,
        };
        let kinds: Vec<String> = pattern_flags(&config, &bad)
            .into_iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                kinds::OPT_OUTS,
                kinds::ANSWER_RATE,
                kinds::SHORT_CALLS,
                kinds::EARLY_HANGUPS
            ]
        );
    }
}
