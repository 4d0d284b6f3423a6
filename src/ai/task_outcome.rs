//! The task outcome of an outbound call: after the call, the reasoning model
//! (the summary's client and `[summary]` settings) reads the objective and the
//! transcript and answers `{"objective_met": bool, "key_findings": "…",
//! "evidence": ["quoted turns"]}` under a JSON schema ([`schema`]):
//!
//! - Anthropic Messages: one tool whose `input_schema` is the schema, forced
//!   with `tool_choice: {"type":"tool","name":…}`; the answer is the `input` of
//!   the `tool_use` block
//!   (https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use,
//!   "Forcing tool use").
//! - OpenAI Chat Completions: `response_format: {"type":"json_schema",
//!   "json_schema":{"name","strict":true,"schema"}}`; the answer is the message's
//!   `content` (a JSON text), or a `refusal`
//!   (https://platform.openai.com/docs/guides/structured-outputs).
//!
//! Whatever comes back is validated again here ([`validate`]): a provider may
//! not hold to the schema, and a malformed answer becomes no outcome with the
//! reason kept, never a crash. The tokens are counted either way.

use serde::Serialize;
use serde_json::{json, Value};

use super::summary::{
    anthropic_usage, excerpt, openai_usage, shorten, Provider, Summarizer, SummaryError,
    SummaryUsage, MAX_TRANSCRIPT_CHARS,
};

/// The Anthropic tool the answer is forced through.
pub const TOOL_NAME: &str = "record_task_outcome";
/// At most this many evidence quotes are kept.
const MAX_EVIDENCE: usize = 20;

const SYSTEM_PROMPT: &str = "You review a phone call an AI voice assistant placed on a \
user's behalf to reach an objective. You are given the objective, how the call ended and the \
transcript (\"assistant\" is the AI, \"callee\" the person called). Judge whether the objective \
was met, state the key findings (what was agreed, learned or refused, with any dates, times, \
prices or names) and quote the turns that prove it, word for word. Record your judgement with \
the record_task_outcome tool / the JSON schema given; nothing else.";

/// What the call achieved, as the reasoning model judges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskOutcome {
    pub objective_met: bool,
    pub key_findings: String,
    pub evidence: Vec<String>,
}

/// The extraction's answer: the outcome, or why the answer was unusable; and
/// the tokens it used either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub outcome: Result<TaskOutcome, String>,
    pub usage: SummaryUsage,
}

/// The JSON schema of the answer (strict: every property required, no others).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "objective_met": {
                "type": "boolean",
                "description": "true only when the transcript shows the objective was reached",
            },
            "key_findings": {
                "type": "string",
                "description": "what was agreed, learned or refused, in one to three sentences",
            },
            "evidence": {
                "type": "array",
                "items": { "type": "string" },
                "description": "turns of the transcript quoted word for word that support the judgement",
            },
        },
        "required": ["objective_met", "key_findings", "evidence"],
        "additionalProperties": false,
    })
}

/// Checks an answer against [`schema`]: the three fields with their types,
/// nothing else; findings not blank. Evidence quotes are trimmed, blanks
/// dropped, at most [`MAX_EVIDENCE`] kept.
pub fn validate(answer: &Value) -> Result<TaskOutcome, String> {
    let object = answer
        .as_object()
        .ok_or_else(|| format!("not a JSON object: {}", excerpt(&answer.to_string())))?;
    if let Some(extra) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "objective_met" | "key_findings" | "evidence"))
    {
        return Err(format!("unexpected field {extra:?}"));
    }
    let objective_met = object
        .get("objective_met")
        .and_then(Value::as_bool)
        .ok_or("objective_met: must be true or false")?;
    let key_findings = object
        .get("key_findings")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or("key_findings: must be a non-empty string")?
        .to_owned();
    let evidence = object
        .get("evidence")
        .and_then(Value::as_array)
        .ok_or("evidence: must be an array of strings")?;
    let mut quotes = Vec::new();
    for quote in evidence {
        let quote = quote
            .as_str()
            .ok_or("evidence: must be an array of strings")?;
        let quote = quote.trim();
        if !quote.is_empty() && quotes.len() < MAX_EVIDENCE {
            quotes.push(quote.to_owned());
        }
    }
    Ok(TaskOutcome {
        objective_met,
        key_findings,
        evidence: quotes,
    })
}

/// The user message: the objective, how the call ended, the transcript.
fn facts(objective: &str, ended_by: &str, turns: &[(String, String)]) -> String {
    let mut transcript = String::new();
    for (role, text) in turns {
        let role = if role == "caller" { "callee" } else { role };
        transcript.push_str(role);
        transcript.push_str(": ");
        transcript.push_str(text.trim());
        transcript.push('\n');
    }
    if transcript.is_empty() {
        transcript.push_str("(nobody said anything)\n");
    }
    format!(
        "Objective:\n<objective>\n{}\n</objective>\n\nHow the call ended: {ended_by}\n\n\
         Transcript:\n<transcript>\n{}</transcript>",
        objective.trim(),
        shorten(&transcript, MAX_TRANSCRIPT_CHARS),
    )
}

impl Summarizer {
    /// Asks the reasoning model whether the call met `objective`. An error is
    /// the API's (no answer to read); an unusable answer is
    /// `Extracted { outcome: Err(reason), .. }`.
    #[tracing::instrument(skip_all, fields(provider = ?self.provider, model = %self.model))]
    pub async fn extract_task_outcome(
        &self,
        objective: &str,
        ended_by: &str,
        turns: &[(String, String)],
    ) -> Result<Extracted, SummaryError> {
        let facts = facts(objective, ended_by, turns);
        match self.provider {
            Provider::Anthropic => self.outcome_anthropic(&facts).await,
            Provider::OpenAi => self.outcome_openai(&facts).await,
        }
    }

    async fn outcome_anthropic(&self, facts: &str) -> Result<Extracted, SummaryError> {
        let body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": SYSTEM_PROMPT,
            "messages": [{ "role": "user", "content": facts }],
            "tools": [{
                "name": TOOL_NAME,
                "description": "Records whether the call met its objective, its key findings and the quoted evidence.",
                "input_schema": schema(),
            }],
            "tool_choice": { "type": "tool", "name": TOOL_NAME },
        });
        let answer = self.post_messages(&body).await?;
        let usage = anthropic_usage(&self.model, &answer["usage"]);
        let input = answer["content"].as_array().and_then(|blocks| {
            blocks
                .iter()
                .find(|b| b["type"] == "tool_use" && b["name"] == TOOL_NAME)
                .map(|b| &b["input"])
        });
        let outcome = match input {
            Some(input) => validate(input),
            None => Err(format!("no {TOOL_NAME} tool_use block in the answer")),
        };
        Ok(Extracted { outcome, usage })
    }

    async fn outcome_openai(&self, facts: &str) -> Result<Extracted, SummaryError> {
        let body = json!({
            "model": self.model,
            "max_completion_tokens": self.max_tokens,
            "messages": [
                { "role": "system", "content": SYSTEM_PROMPT },
                { "role": "user", "content": facts },
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": { "name": "task_outcome", "strict": true, "schema": schema() },
            },
        });
        let answer = self.post_chat(&body).await?;
        let usage = openai_usage(&self.model, &answer["usage"]);
        let message = &answer["choices"][0]["message"];
        let outcome = if let Some(refusal) = message["refusal"].as_str() {
            Err(format!("the model refused: {}", excerpt(refusal)))
        } else {
            match message["content"].as_str() {
                Some(text) => serde_json::from_str::<Value>(text)
                    .map_err(|e| format!("not JSON ({e}): {}", excerpt(text)))
                    .and_then(|v| validate(&v)),
                None => Err("no choices[0].message.content".to_owned()),
            }
        };
        Ok(Extracted { outcome, usage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_answer_is_read_and_its_quotes_trimmed() {
        let outcome = validate(&json!({
            "objective_met": true,
            "key_findings": " Visit booked for Tuesday 9 am. ",
            "evidence": ["callee: Tuesday at nine works. ", "  "],
        }))
        .expect("valid");
        assert!(outcome.objective_met);
        assert_eq!(outcome.key_findings, "Visit booked for Tuesday 9 am.");
        assert_eq!(outcome.evidence, vec!["callee: Tuesday at nine works."]);
    }

    #[test]
    fn malformed_answers_are_refused_with_the_reason() {
        for (answer, why) in [
            (json!("yes"), "not a JSON object"),
            (
                json!({"objective_met": "yes", "key_findings": "x", "evidence": []}),
                "objective_met",
            ),
            (
                json!({"objective_met": true, "key_findings": " ", "evidence": []}),
                "key_findings",
            ),
            (
                json!({"objective_met": true, "key_findings": "x", "evidence": [1]}),
                "evidence",
            ),
            (
                json!({"objective_met": true, "key_findings": "x"}),
                "evidence",
            ),
            (
                json!({"objective_met": true, "key_findings": "x", "evidence": [], "mood": "ok"}),
                "unexpected field",
            ),
        ] {
            let error = validate(&answer).expect_err("refused");
            assert!(error.contains(why), "{answer}: {error}");
        }
    }

    #[test]
    fn the_schema_requires_every_field_and_no_other() {
        let schema = schema();
        assert_eq!(
            schema["required"],
            json!(["objective_met", "key_findings", "evidence"])
        );
        assert_eq!(schema["additionalProperties"], json!(false));
    }
}
