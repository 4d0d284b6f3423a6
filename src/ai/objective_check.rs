//! The reasoning model's classification of an outbound request's objective
//! before it is dialed (issue 12): the summary model (`[summary]`) asked for
//! `{allowed: bool, category: string, reason: string}`, with the request shape
//! of [`super::task_outcome`]:
//!
//! - Anthropic Messages: a forced tool (`tool_choice: {"type":"tool","name"}`,
//!   docs.anthropic.com/en/docs/build-with-claude/tool-use), the answer the
//!   `tool_use` block's `input`;
//! - OpenAI Chat Completions: `response_format: {"type":"json_schema",…}`
//!   (platform.openai.com/docs/guides/structured-outputs), the answer the
//!   message's `content`.

use serde_json::{json, Value};

use super::summary::{excerpt, Provider, Summarizer, SummaryError};

/// The forced tool's name (Anthropic) and the schema's (OpenAI).
pub const TOOL_NAME: &str = "classify_objective";

const SYSTEM_PROMPT: &str = "You screen requests for an AI voice assistant that phones people \
on a user's behalf. Given the objective the user wrote for one call, decide whether placing \
the call is allowed. Refuse (allowed: false) harassment, threats, scams, impersonation of a \
government agency or a company, debt collection pressure, fake prizes, and anything unlawful; \
allow ordinary business and personal calls. category: a short snake_case name of what the \
objective is (e.g. appointment, customer_service, threats, impersonation, scam). reason: one \
sentence the user can read.";

/// The model's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub allowed: bool,
    pub category: String,
    pub reason: String,
}

/// The JSON schema asked for (strict: every field required, no other).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "allowed": { "type": "boolean" },
            "category": { "type": "string" },
            "reason": { "type": "string" },
        },
        "required": ["allowed", "category", "reason"],
        "additionalProperties": false,
    })
}

/// Reads an answer against [`schema`].
pub fn validate(answer: &Value) -> Result<Classification, String> {
    let allowed = answer["allowed"]
        .as_bool()
        .ok_or("allowed: not a boolean")?;
    let text = |name: &str| {
        answer[name]
            .as_str()
            .map(|s| s.trim().to_owned())
            .ok_or_else(|| format!("{name}: not a string"))
    };
    Ok(Classification {
        allowed,
        category: text("category")?,
        reason: text("reason")?,
    })
}

fn prompt(objective: &str) -> String {
    format!(
        "Objective of the call:\n<objective>\n{}\n</objective>",
        objective.trim()
    )
}

impl Summarizer {
    /// Asks the model whether a call with `objective` may be placed. An error
    /// is the API's, or an answer that is not the schema's.
    #[tracing::instrument(skip_all, fields(provider = ?self.provider, model = %self.model))]
    pub async fn classify_objective(
        &self,
        objective: &str,
    ) -> Result<Classification, SummaryError> {
        let prompt = prompt(objective);
        let answer = match self.provider {
            Provider::Anthropic => {
                let body = json!({
                    "model": self.model,
                    "max_tokens": self.max_tokens,
                    "system": SYSTEM_PROMPT,
                    "messages": [{ "role": "user", "content": prompt }],
                    "tools": [{
                        "name": TOOL_NAME,
                        "description": "Records whether the call may be placed, its category and why.",
                        "input_schema": schema(),
                    }],
                    "tool_choice": { "type": "tool", "name": TOOL_NAME },
                });
                let answer = self.post_messages(&body).await?;
                answer["content"]
                    .as_array()
                    .and_then(|blocks| {
                        blocks
                            .iter()
                            .find(|b| b["type"] == "tool_use" && b["name"] == TOOL_NAME)
                            .map(|b| b["input"].clone())
                    })
                    .ok_or_else(|| {
                        SummaryError::BadAnswer(format!("no {TOOL_NAME} tool_use block"))
                    })?
            }
            Provider::OpenAi => {
                let body = json!({
                    "model": self.model,
                    "max_completion_tokens": self.max_tokens,
                    "messages": [
                        { "role": "system", "content": SYSTEM_PROMPT },
                        { "role": "user", "content": prompt },
                    ],
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": { "name": TOOL_NAME, "strict": true, "schema": schema() },
                    },
                });
                let answer = self.post_chat(&body).await?;
                let message = &answer["choices"][0]["message"];
                if let Some(refusal) = message["refusal"].as_str() {
                    return Err(SummaryError::BadAnswer(format!(
                        "the model refused: {}",
                        excerpt(refusal)
                    )));
                }
                let text = message["content"].as_str().ok_or_else(|| {
                    SummaryError::BadAnswer("no choices[0].message.content".to_owned())
                })?;
                serde_json::from_str::<Value>(text).map_err(|e| {
                    SummaryError::BadAnswer(format!("not JSON ({e}): {}", excerpt(text)))
                })?
            }
        };
        validate(&answer).map_err(SummaryError::BadAnswer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_is_read_and_a_malformed_one_refused() {
        let ok = validate(&json!({"allowed": false, "category": "scam", "reason": " A scam. "}));
        assert_eq!(
            ok,
            Ok(Classification {
                allowed: false,
                category: "scam".into(),
                reason: "A scam.".into()
            })
        );
        assert!(validate(&json!({"allowed": "no", "category": "x", "reason": "y"})).is_err());
        assert!(validate(&json!({"allowed": true, "reason": "y"})).is_err());
    }
}
