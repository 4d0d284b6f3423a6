//! The post-call summary: a reasoning model reads an AI call's transcript and the
//! assistant's goal and answers with a summary and an [`AiOutcome`], over
//! Anthropic's Messages API or OpenAI's Chat Completions API (`[summary]`
//! settings; the base URL is overridable, for proxies and tests).

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use super::cost::SummaryUsage;
use crate::config::{SummaryProvider, SummarySettings};

/// Anthropic's API version header value.
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// How much of an error body is kept in [`SummaryError::Status`].
const ERROR_EXCERPT_CHARS: usize = 300;
/// Longest transcript sent: a longer one keeps its beginning and its end.
pub(super) const MAX_TRANSCRIPT_CHARS: usize = 60_000;

const SYSTEM_PROMPT: &str = "You review phone calls that an AI voice assistant handled. \
You are given the assistant's instructions (its goal), how the call ended, the tools it used \
and the transcript. Reply with only a JSON object, no prose and no code fence: \
{\"summary\": \"<two to four sentences: who called, what they wanted, what was done or agreed>\", \
\"outcome\": \"<one of: goal_achieved, transferred, caller_hung_up, no_answer, error, unresolved>\"}. \
Outcomes: goal_achieved = the goal in the instructions was met; transferred = the caller was \
handed to a human; caller_hung_up = the caller left before the goal was met; no_answer = the \
caller never said anything; error = a technical failure ended the conversation; unresolved = \
the call ended without meeting the goal for another reason. Judge from the transcript, not from \
its length.";

/// What the call came to, as the summary model judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiOutcome {
    GoalAchieved,
    Transferred,
    CallerHungUp,
    NoAnswer,
    Error,
    Unresolved,
}

impl AiOutcome {
    pub const ALL: [AiOutcome; 6] = [
        AiOutcome::GoalAchieved,
        AiOutcome::Transferred,
        AiOutcome::CallerHungUp,
        AiOutcome::NoAnswer,
        AiOutcome::Error,
        AiOutcome::Unresolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AiOutcome::GoalAchieved => "goal_achieved",
            AiOutcome::Transferred => "transferred",
            AiOutcome::CallerHungUp => "caller_hung_up",
            AiOutcome::NoAnswer => "no_answer",
            AiOutcome::Error => "error",
            AiOutcome::Unresolved => "unresolved",
        }
    }

    /// Accepts `goal_achieved`, and the near misses a model writes
    /// (`Goal achieved`, `goal-achieved`).
    pub fn parse(raw: &str) -> Option<AiOutcome> {
        let normal = raw.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        Self::ALL.into_iter().find(|o| o.as_str() == normal)
    }
}

/// The facts of a finished AI call the summary is written from.
pub struct SummaryInput<'a> {
    /// The assistant's instructions: its goal.
    pub instructions: &'a str,
    /// The conversation in order: (`caller`|`assistant`, text).
    pub turns: &'a [(String, String)],
    /// How the assistant's part ended: `caller_hangup`, `end_call`, `transferred`,
    /// `assistant_failed`…
    pub ended_by: &'a str,
    pub tools_used: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    pub summary: String,
    pub outcome: AiOutcome,
    pub usage: SummaryUsage,
}

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The API answered with an error status (the body's start is kept).
    #[error("the summary API answered {0}: {1}")]
    Status(u16, String),
    #[error("the summary API did not answer in time")]
    Timeout,
    /// The API could not be reached, or its answer was not the API's JSON.
    #[error("the summary API could not be used: {0}")]
    Transport(String),
    /// The model's answer is not the JSON asked for (or names no known outcome).
    #[error("the summary model's answer is unusable: {0}")]
    BadAnswer(String),
}

impl From<reqwest::Error> for SummaryError {
    fn from(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            SummaryError::Timeout
        } else {
            SummaryError::Transport(err.without_url().to_string())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provider {
    Anthropic,
    OpenAi,
}

/// A client of the summary model; cheap to clone.
#[derive(Clone)]
pub struct Summarizer {
    /// With the configured timeout on every request.
    pub(super) http: reqwest::Client,
    pub(super) provider: Provider,
    /// Without a trailing slash; `/v1/…` is appended.
    pub(super) base_url: String,
    pub(super) model: String,
    pub(super) max_tokens: u32,
    pub(super) api_key: SecretString,
}

impl std::fmt::Debug for Summarizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summarizer")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Summarizer {
    /// `None` when the provider is `off`, unknown, or has no API key.
    pub fn from_settings(settings: &SummarySettings) -> Option<Summarizer> {
        let provider = match settings.provider {
            SummaryProvider::Anthropic => Provider::Anthropic,
            SummaryProvider::OpenAi => Provider::OpenAi,
            SummaryProvider::Off => return None,
        };
        let api_key = settings
            .api_key
            .clone()
            .filter(|k| !k.expose_secret().is_empty())?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the summary HTTP client"))
            .ok()?;
        Some(Summarizer {
            http,
            provider,
            base_url: settings.base_url().to_owned(),
            model: settings.model().to_owned(),
            max_tokens: settings.max_tokens,
            api_key,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Asks the model for the call's summary and outcome.
    #[tracing::instrument(skip_all, fields(provider = ?self.provider, model = %self.model))]
    pub async fn summarize(&self, input: &SummaryInput<'_>) -> Result<CallSummary, SummaryError> {
        let facts = facts(input);
        let (text, usage) = self.text(SYSTEM_PROMPT, &facts, true).await?;
        let usage = self.usage(&usage);
        let (summary, outcome) = parse_answer(&text)?;
        Ok(CallSummary {
            summary,
            outcome,
            usage,
        })
    }

    /// Asks the model one question outside the summary (the `consult` tool of an
    /// outbound call): `system` and `prompt` in, the answer's text and the API's
    /// raw `usage` out.
    #[tracing::instrument(skip_all, fields(provider = ?self.provider, model = %self.model))]
    pub async fn ask(&self, system: &str, prompt: &str) -> Result<(String, Value), SummaryError> {
        self.text(system, prompt, false).await
    }

    /// One question answered in text: the answer and the API's raw `usage`.
    /// `json_object` asks OpenAI for a JSON object (Anthropic has no such switch:
    /// the prompt says so).
    async fn text(
        &self,
        system: &str,
        prompt: &str,
        json_object: bool,
    ) -> Result<(String, Value), SummaryError> {
        match self.provider {
            Provider::Anthropic => {
                let answer = self
                    .post_messages(&json!({
                        "model": self.model,
                        "max_tokens": self.max_tokens,
                        "system": system,
                        "messages": [{ "role": "user", "content": prompt }],
                    }))
                    .await?;
                // The first text block (a thinking block may come before it).
                let text = answer["content"]
                    .as_array()
                    .and_then(|blocks| {
                        blocks
                            .iter()
                            .find(|b| b["type"] == "text")
                            .and_then(|b| b["text"].as_str())
                    })
                    .ok_or_else(|| {
                        SummaryError::BadAnswer("no text block in content".to_owned())
                    })?;
                Ok((text.to_owned(), answer["usage"].clone()))
            }
            Provider::OpenAi => {
                let mut body = json!({
                    "model": self.model,
                    "max_completion_tokens": self.max_tokens,
                    "messages": [
                        { "role": "system", "content": system },
                        { "role": "user", "content": prompt },
                    ],
                });
                if json_object {
                    body["response_format"] = json!({ "type": "json_object" });
                }
                let answer = self.post_chat(&body).await?;
                let text = answer["choices"][0]["message"]["content"]
                    .as_str()
                    .ok_or_else(|| {
                        SummaryError::BadAnswer("no choices[0].message.content".to_owned())
                    })?;
                Ok((text.to_owned(), answer["usage"].clone()))
            }
        }
    }

    /// The API's raw `usage`, read as this provider writes it.
    pub(super) fn usage(&self, raw: &Value) -> SummaryUsage {
        match self.provider {
            Provider::Anthropic => anthropic_usage(&self.model, raw),
            Provider::OpenAi => openai_usage(&self.model, raw),
        }
    }

    /// POSTs an Anthropic Messages request; the answer's JSON.
    pub(super) async fn post_messages(&self, body: &Value) -> Result<Value, SummaryError> {
        let request = self
            .http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", self.api_key.expose_secret())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(body);
        send(request).await
    }

    /// POSTs an OpenAI Chat Completions request; the answer's JSON.
    pub(super) async fn post_chat(&self, body: &Value) -> Result<Value, SummaryError> {
        let request = self
            .http
            .post(format!("{}/v1/chat/completions", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .json(body);
        send(request).await
    }
}

/// Anthropic Messages `usage` (docs.anthropic.com, prompt caching): `input_tokens`
/// are the tokens after the last cache breakpoint only; `cache_read_input_tokens`
/// and `cache_creation_input_tokens` come on top. Reads are the cached input;
/// writes are counted as full-rate input (the engine sets no cache breakpoint, so
/// there are none).
pub(super) fn anthropic_usage(model: &str, usage: &Value) -> SummaryUsage {
    let n = |key: &str| usage[key].as_u64().unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    SummaryUsage {
        model: model.to_owned(),
        input_tokens: n("input_tokens") + n("cache_creation_input_tokens") + cached,
        cached_input_tokens: cached,
        output_tokens: n("output_tokens"),
    }
}

/// Chat Completions `usage` (OpenAI API reference): `prompt_tokens` includes
/// `prompt_tokens_details.cached_tokens`, which are billed at the cached rate.
pub(super) fn openai_usage(model: &str, usage: &Value) -> SummaryUsage {
    SummaryUsage {
        model: model.to_owned(),
        input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
        cached_input_tokens: usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
        output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
    }
}

/// Sends a request; a non-2xx status becomes [`SummaryError::Status`].
async fn send(request: reqwest::RequestBuilder) -> Result<Value, SummaryError> {
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(SummaryError::Status(
            status.as_u16(),
            body.chars().take(ERROR_EXCERPT_CHARS).collect(),
        ));
    }
    response.json::<Value>().await.map_err(SummaryError::from)
}

/// The user message: the goal, how the call ended, the tools used, the transcript.
fn facts(input: &SummaryInput<'_>) -> String {
    let tools = if input.tools_used.is_empty() {
        "none".to_owned()
    } else {
        input.tools_used.join(", ")
    };
    let mut transcript = String::new();
    for (role, text) in input.turns {
        transcript.push_str(role);
        transcript.push_str(": ");
        transcript.push_str(text.trim());
        transcript.push('\n');
    }
    if transcript.is_empty() {
        transcript.push_str("(nobody said anything)\n");
    }
    format!(
        "Assistant instructions (its goal):\n<instructions>\n{}\n</instructions>\n\n\
         How the call ended: {}\nTools used: {}\n\n\
         Transcript:\n<transcript>\n{}</transcript>",
        input.instructions.trim(),
        input.ended_by,
        tools,
        shorten(&transcript, MAX_TRANSCRIPT_CHARS),
    )
}

/// Keeps the first and last halves of an over-long text.
pub(super) fn shorten(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_owned();
    }
    let half = max_chars / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(count - half).collect();
    format!(
        "{head}\n[… {} characters left out …]\n{tail}",
        count - 2 * half
    )
}

/// Finds the JSON object in the model's text (it may be wrapped in prose or a code
/// fence) and reads `summary` and `outcome` from it.
fn parse_answer(text: &str) -> Result<(String, AiOutcome), SummaryError> {
    let bad = |why: &str| SummaryError::BadAnswer(format!("{why}: {}", excerpt(text)));
    let object = json_object_in(text).ok_or_else(|| bad("no JSON object"))?;
    let summary = object["summary"]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no summary"))?;
    let outcome = object["outcome"]
        .as_str()
        .and_then(AiOutcome::parse)
        .ok_or_else(|| bad("no known outcome"))?;
    Ok((summary.to_owned(), outcome))
}

/// The first `{…}` in `text` that parses as a JSON object.
pub(super) fn json_object_in(text: &str) -> Option<Value> {
    text.match_indices('{').find_map(|(start, _)| {
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) if value.is_object() => Some(value),
            _ => None,
        }
    })
}

pub(super) fn excerpt(text: &str) -> String {
    text.chars().take(ERROR_EXCERPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_in_prose_and_code_fences() {
        let plain = r#"{"summary":"Booked a table.","outcome":"goal_achieved"}"#;
        assert_eq!(
            parse_answer(plain).ok(),
            Some(("Booked a table.".to_owned(), AiOutcome::GoalAchieved))
        );
        let fenced = "Here you go:\n```json\n{\"summary\": \"Wanted a human {urgently}.\", \
                      \"outcome\": \"Transferred\"}\n```";
        assert_eq!(
            parse_answer(fenced).ok(),
            Some((
                "Wanted a human {urgently}.".to_owned(),
                AiOutcome::Transferred
            ))
        );
        let stray = "Note {not json} then {\"summary\":\"x\",\"outcome\":\"caller-hung-up\"}";
        assert_eq!(
            parse_answer(stray).map(|a| a.1).ok(),
            Some(AiOutcome::CallerHungUp)
        );
    }

    #[test]
    fn unusable_answers_are_bad_answers() {
        for text in [
            "I think it went well.",
            r#"{"summary":"x","outcome":"great_success"}"#,
            r#"{"summary":"","outcome":"error"}"#,
            r#"{"outcome":"error"}"#,
            r#"["summary","outcome"]"#,
        ] {
            assert!(
                matches!(parse_answer(text), Err(SummaryError::BadAnswer(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn outcomes_have_stable_names() {
        for outcome in AiOutcome::ALL {
            assert_eq!(
                serde_json::to_value(outcome).ok(),
                Some(json!(outcome.as_str()))
            );
            assert_eq!(AiOutcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(AiOutcome::parse(" No answer "), Some(AiOutcome::NoAnswer));
        assert_eq!(AiOutcome::parse("maybe"), None);
    }

    #[test]
    fn the_prompt_carries_the_goal_the_ending_the_tools_and_the_turns() {
        let turns = vec![
            ("caller".to_owned(), "I'd like a table for two.".to_owned()),
            ("assistant".to_owned(), "Booked for 8 pm.".to_owned()),
        ];
        let tools = vec!["log_event".to_owned()];
        let text = facts(&SummaryInput {
            instructions: "Book tables at Chez Nous.",
            turns: &turns,
            ended_by: "end_call",
            tools_used: &tools,
        });
        for needle in [
            "Book tables at Chez Nous.",
            "How the call ended: end_call",
            "Tools used: log_event",
            "caller: I'd like a table for two.\nassistant: Booked for 8 pm.",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let silent = facts(&SummaryInput {
            instructions: "x",
            turns: &[],
            ended_by: "caller_hangup",
            tools_used: &[],
        });
        assert!(silent.contains("(nobody said anything)") && silent.contains("Tools used: none"));
    }

    #[test]
    fn long_transcripts_keep_their_beginning_and_end() {
        let text = format!("{}{}", "a".repeat(100), "b".repeat(100));
        let short = shorten(&text, 50);
        assert!(short.starts_with(&"a".repeat(25)) && short.ends_with(&"b".repeat(25)));
        assert!(short.contains("150 characters left out"));
        assert_eq!(shorten("small", 50), "small");
    }

    #[test]
    fn no_key_or_provider_off_means_no_summarizer() {
        let mut settings = crate::config::Settings::defaults().summary;
        assert!(Summarizer::from_settings(&settings).is_none(), "no key");
        settings.api_key = Some(SecretString::from("k"));
        let summarizer = Summarizer::from_settings(&settings).expect("a summarizer");
        assert_eq!(summarizer.model(), "claude-haiku-4-5");
        assert!(!format!("{summarizer:?}").contains("\"k\""));
        settings.provider = SummaryProvider::Off;
        assert!(Summarizer::from_settings(&settings).is_none(), "off");
    }
}
