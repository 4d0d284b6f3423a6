//! The engine's [`CallHooks`]: puts an [`AiLeg`] on AI-routed calls, and after every
//! call works out its cost — and, for an assistant's call, asks the summary model
//! for a summary and an outcome — then hands the result to the journal, which
//! writes it on the call's record.

use std::sync::Arc;

use switchboard_actors::assistant::{
    AssistantLink, AssistantReport, AssistantSession, CallHooks, CallReport,
};
use switchboard_actors::journal::{Journal, JournalEntry};
use switchboard_actors::AssistantId;

use super::cost::{breakdown, CallCostInput, Pricing, RealtimeUsage, TranscriptionUsage};
use super::relay::{AiLeg, RelayDeps};
use super::summary::{AiOutcome, Summarizer, SummaryInput};

pub struct EngineHooks {
    pub relay: RelayDeps,
    pub journal: Arc<dyn Journal>,
    pub pricing: Arc<Pricing>,
    pub summarizer: Option<Arc<Summarizer>>,
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
    journal: Arc<dyn Journal>,
    stats: Arc<switchboard_actors::stats::EngineStats>,
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
    let outbound_settings = Arc::new(settings.outbound.clone());
    let loader_store = store.clone();
    let load: super::relay::LoadAssistant = Arc::new(move |id: AssistantId| {
        let store = loader_store.clone();
        let outbound_settings = Arc::clone(&outbound_settings);
        Box::pin(async move {
            if let Some(outbound_id) = super::outbound::outbound_id_of(&id) {
                return super::outbound::load(&store, &outbound_settings, id, outbound_id).await;
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
            store,
            reasoner: summarizer.clone(),
        },
        journal,
        pricing: Arc::new(settings.pricing.clone()),
        summarizer,
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
