//! The engine's [`CallHooks`]: puts an [`AiLeg`] on AI-routed calls, and after every
//! call works out its cost — and, for an assistant's call, asks the summary model
//! for a summary and an outcome — then hands the result to the journal, which
//! writes it on the call's record.
//!
//! An outbound call's assistant is `outbound-<outbound id>`: for it the
//! after-call work goes on ([`after_outbound_call`]): the structured task-outcome
//! extraction (`task_outcome`), the model costs (the realtime session and its
//! transcription; the reasoning model: `consult`, the summary, the extraction),
//! written to the outbound row with the summary and `analyzed_at` — which the
//! reconciler (`outbound::reconcile_cost`) waits for.

use std::sync::Arc;

use switchboard_actors::assistant::{
    AssistantLink, AssistantReport, AssistantSession, CallHooks, CallReport,
};
use switchboard_actors::journal::{Journal, JournalEntry};
use switchboard_actors::AssistantId;

use super::cost::{
    amount, breakdown, text_model, CallCostInput, Pricing, RealtimeUsage, SummaryUsage,
    TranscriptionUsage,
};
use super::relay::{AiLeg, RelayDeps};
use super::summary::{anthropic_usage, openai_usage, AiOutcome, Summarizer, SummaryInput};
use super::task_outcome::Extracted;
use crate::store::outbound::OutboundId;
use crate::store::outbound_result::OutboundAnalysis;
use crate::store::Store;

/// "Now" in milliseconds since the epoch: the engine's clock (a test's
/// `ManualClock`), as the outbound gates read it.
pub type NowMs = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The assistant id of an outbound call: this prefix, then the outbound id.
pub const OUTBOUND_ASSISTANT_PREFIX: &str = "outbound-";

pub struct EngineHooks {
    pub relay: RelayDeps,
    pub journal: Arc<dyn Journal>,
    pub pricing: Arc<Pricing>,
    pub summarizer: Option<Arc<Summarizer>>,
    /// Where an outbound call's result is written.
    pub store: Store,
    pub now_ms: NowMs,
}

impl CallHooks for EngineHooks {
    fn start_assistant(&self, session: AssistantSession) -> AssistantLink {
        let relay = AiLeg::start(session, self.relay.clone());
        AssistantLink {
            stop: relay.clone().recipient(),
            notices: relay.recipient(),
        }
    }

    fn call_ended(&self, report: CallReport) {
        let Some(assistant) = report.assistant.clone() else {
            let cost = cost_of(
                &self.pricing,
                &report,
                &RealtimeUsage::default(),
                &TranscriptionUsage::default(),
                None,
            );
            self.journal.append(JournalEntry::Cost {
                call_id: report.call_id,
                cost,
            });
            return;
        };
        let journal = Arc::clone(&self.journal);
        let pricing = Arc::clone(&self.pricing);
        let summarizer = self.summarizer.clone();
        let load = Arc::clone(&self.relay.load);
        let outbound = assistant
            .assistant_id
            .as_str()
            .strip_prefix(OUTBOUND_ASSISTANT_PREFIX)
            .and_then(OutboundId::parse)
            .map(|id| (id, self.store.clone(), Arc::clone(&self.now_ms)));
        actix_rt::spawn(async move {
            let mut realtime = RealtimeUsage::default();
            for (model, usage) in &assistant.usage {
                realtime.add(model, usage);
            }
            let mut transcription = TranscriptionUsage::default();
            for (model, usage) in &assistant.transcription_usage {
                transcription.add(model, usage);
            }
            let instructions = load(assistant.assistant_id.clone())
                .await
                .map(|a| a.instructions)
                .unwrap_or_default();
            let (summary, outcome, usage) = match &summarizer {
                Some(summarizer) => summarize(summarizer, &instructions, &report, &assistant).await,
                None => (None, known_outcome(&assistant), None),
            };
            let cost = cost_of(&pricing, &report, &realtime, &transcription, usage.as_ref());
            if let Some((id, store, now_ms)) = outbound {
                let facts = OutboundFacts {
                    summary: summary.clone(),
                    summary_usage: usage.clone(),
                    cost: &cost,
                };
                after_outbound_call(
                    &store,
                    summarizer.as_deref(),
                    &pricing,
                    &id,
                    &assistant,
                    facts,
                    now_ms(),
                )
                .await;
            }
            journal.append(JournalEntry::AiResult {
                call_id: report.call_id,
                summary,
                ai_outcome: outcome.map(|o| o.as_str().to_owned()),
                cost,
            });
        });
    }
}

/// What the facts alone say, when no summary model is configured or it failed:
/// a handover is `transferred`, a dead session `error`; anything else needs the
/// model's judgement and stays unknown.
fn known_outcome(assistant: &AssistantReport) -> Option<AiOutcome> {
    match assistant.ended_by.as_str() {
        "transferred" => Some(AiOutcome::Transferred),
        "assistant_failed" => Some(AiOutcome::Error),
        _ => None,
    }
}

async fn summarize(
    summarizer: &Summarizer,
    instructions: &str,
    report: &CallReport,
    assistant: &AssistantReport,
) -> (
    Option<String>,
    Option<AiOutcome>,
    Option<super::cost::SummaryUsage>,
) {
    let input = SummaryInput {
        instructions,
        turns: &assistant.turns,
        ended_by: &assistant.ended_by,
        tools_used: &assistant.tools_used,
    };
    match summarizer.summarize(&input).await {
        Ok(summary) => (
            Some(summary.summary),
            Some(summary.outcome),
            Some(summary.usage),
        ),
        Err(e) => {
            tracing::warn!(call_id = %report.call_id, error = %e, "the call could not be summarized");
            (None, known_outcome(assistant), None)
        }
    }
}

/// What the inbound-style after-call work already found for an outbound call.
pub struct OutboundFacts<'a> {
    pub summary: Option<String>,
    pub summary_usage: Option<SummaryUsage>,
    /// The call's [`breakdown`] (its realtime and transcription parts are the
    /// realtime model's cost).
    pub cost: &'a serde_json::Value,
}

/// A `consult` usage as the reasoning model reported it: Anthropic Messages'
/// `usage` (`input_tokens`…) or Chat Completions' (`prompt_tokens`…).
fn reasoning_usage(model: &str, usage: &serde_json::Value) -> SummaryUsage {
    if usage.get("prompt_tokens").is_some() {
        openai_usage(model, usage)
    } else {
        anthropic_usage(model, usage)
    }
}

fn round6(amount: f64) -> f64 {
    (amount * 1e6).round() / 1e6
}

/// The after-call work of an outbound call (see the module doc): never fails
/// the call; what cannot be done is logged, and an unusable task outcome is
/// kept as `{"unavailable": "<why>"}`.
pub async fn after_outbound_call(
    store: &Store,
    summarizer: Option<&Summarizer>,
    pricing: &Pricing,
    id: &OutboundId,
    assistant: &AssistantReport,
    facts: OutboundFacts<'_>,
    now_ms: i64,
) {
    let call = match store.get_outbound(id).await {
        Ok(Some(call)) => call,
        Ok(None) => {
            tracing::warn!(outbound_id = %id, "an outbound assistant's call has no outbound row");
            return;
        }
        Err(e) => {
            tracing::error!(outbound_id = %id, error = %e, "the outbound call could not be read");
            return;
        }
    };
    let (task_outcome, extraction_usage) = match summarizer {
        None => (
            serde_json::json!({ "unavailable": "no reasoning model is configured ([summary])" }),
            None,
        ),
        Some(summarizer) => match summarizer
            .extract_task_outcome(&call.objective, &assistant.ended_by, &assistant.turns)
            .await
        {
            Ok(Extracted {
                outcome: Ok(outcome),
                usage,
            }) => (serde_json::json!(outcome), Some(usage)),
            Ok(Extracted {
                outcome: Err(why),
                usage,
            }) => {
                tracing::warn!(outbound_id = %id, reason = %why, "the task outcome is unusable");
                (serde_json::json!({ "unavailable": why }), Some(usage))
            }
            Err(e) => {
                tracing::warn!(outbound_id = %id, error = %e, "the task outcome could not be extracted");
                (serde_json::json!({ "unavailable": e.to_string() }), None)
            }
        },
    };

    let realtime_amount =
        round6(amount(&facts.cost["realtime"]) + amount(&facts.cost["transcription"]));
    let consult: Vec<serde_json::Value> = assistant
        .reasoning_usage
        .iter()
        .map(|(model, usage)| text_model(pricing, &reasoning_usage(model, usage)))
        .collect();
    let summary_part = facts.summary_usage.as_ref().map(|u| text_model(pricing, u));
    let outcome_part = extraction_usage.as_ref().map(|u| text_model(pricing, u));
    let reasoning_amount = round6(
        consult.iter().map(amount).sum::<f64>()
            + summary_part.as_ref().map(amount).unwrap_or(0.0)
            + outcome_part.as_ref().map(amount).unwrap_or(0.0),
    );
    let cost_detail = serde_json::json!({
        "currency": "USD",
        "realtime_model": {
            "amount": realtime_amount,
            "realtime": facts.cost["realtime"],
            "transcription": facts.cost["transcription"],
        },
        "reasoning_model": {
            "amount": reasoning_amount,
            "consult": consult,
            "summary": summary_part,
            "task_outcome": outcome_part,
        },
    });
    let analysis = OutboundAnalysis {
        summary: facts.summary,
        task_outcome: Some(task_outcome),
        cost_detail,
    };
    match store.record_outbound_analysis(id, &analysis, now_ms).await {
        Ok(true) => tracing::info!(outbound_id = %id, "outbound call analyzed"),
        Ok(false) => tracing::debug!(outbound_id = %id, "outbound call was already analyzed"),
        Err(e) => {
            tracing::error!(outbound_id = %id, error = %e, "the outbound analysis could not be written")
        }
    }
}

fn cost_of(
    pricing: &Pricing,
    report: &CallReport,
    realtime: &RealtimeUsage,
    transcription: &TranscriptionUsage,
    summary: Option<&super::cost::SummaryUsage>,
) -> serde_json::Value {
    breakdown(
        pricing,
        &CallCostInput {
            to: &report.to,
            started_at: report.started_at,
            ended_at: report.ended_at,
            media_ms: report.media.map(|(start, end)| end - start),
            realtime,
            transcription,
            summary,
        },
    )
}

/// The hooks of a running engine: assistants come from `store` as each call starts.
pub fn build(
    settings: &crate::config::Settings,
    store: crate::store::Store,
    start_recording: Option<super::relay::StartRecording>,
    journal: Arc<dyn Journal>,
    stats: Arc<switchboard_actors::stats::EngineStats>,
    now_ms: NowMs,
) -> anyhow::Result<EngineHooks> {
    use anyhow::Context as _;

    let openai = &settings.openai;
    let config = super::relay::RelayConfig {
        realtime_url: openai.realtime_url.to_string(),
        api_key: openai.api_key.clone(),
        connect_timeout: openai.connect_timeout,
        transcription_model: openai.transcription_model.clone(),
        exit_grace: openai.exit_grace,
        max_frame_bytes: 16 << 20,
        mark_interval_ms: openai.mark_interval.as_millis() as u64,
        max_connections: openai.max_connections,
    };
    let outbound_settings =
        Arc::new((settings.outbound.clone(), settings.safety.recording.clone()));
    let loader_store = store.clone();
    let load: super::relay::LoadAssistant = Arc::new(move |id: AssistantId| {
        let store = loader_store.clone();
        let outbound_settings = Arc::clone(&outbound_settings);
        Box::pin(async move {
            if let Some(outbound_id) = super::outbound::outbound_id_of(&id) {
                let (outbound, recording) = &*outbound_settings;
                return super::outbound::load(&store, outbound, recording, id, outbound_id).await;
            }
            match store.get_assistant(&id).await {
                Ok(Some(a)) => Ok(super::relay::AssistantConfig {
                    id: a.id,
                    model: a.model,
                    voice: a.voice,
                    instructions: a.instructions,
                    greeting: a.greeting,
                    tools: a.tools,
                    on_failure: a.on_failure,
                    outbound: None,
                }),
                Ok(None) => Err(format!("assistant {id} does not exist")),
                Err(e) => Err(format!("assistant {id} could not be read: {e}")),
            }
        })
    });
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client for webhook tools")?;
    let summarizer = Summarizer::from_settings(&settings.summary).map(Arc::new);
    Ok(EngineHooks {
        relay: RelayDeps {
            config: Arc::new(config),
            load,
            http,
            stats,
            store: store.clone(),
            start_recording,
            reasoner: summarizer.clone(),
        },
        journal,
        pricing: Arc::new(settings.pricing.clone()),
        summarizer,
        store,
        now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended_by(how: &str) -> AssistantReport {
        AssistantReport {
            assistant_id: AssistantId::parse("asst_1").expect("a valid id"),
            turns: Vec::new(),
            usage: Vec::new(),
            transcription_usage: Vec::new(),
            reasoning_usage: Vec::new(),
            tools_used: Vec::new(),
            ended_by: how.into(),
        }
    }

    #[test]
    fn without_a_summary_only_the_facts_decide_the_outcome() {
        assert_eq!(
            known_outcome(&ended_by("transferred")).map(AiOutcome::as_str),
            Some("transferred")
        );
        assert_eq!(
            known_outcome(&ended_by("assistant_failed")).map(AiOutcome::as_str),
            Some("error")
        );
        assert_eq!(known_outcome(&ended_by("caller_hangup")), None);
        assert_eq!(known_outcome(&ended_by("end_call")), None);
    }
}
