//! The post-call summary client against the shared fake LLM (`fakes::llm`), which
//! speaks the two documented APIs (Anthropic Messages, OpenAI Chat Completions):
//! what it sends, what it reads back, and how it fails.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::ai::summary::{AiOutcome, Summarizer, SummaryError, SummaryInput};
use switchboard::config::{Settings, SummaryProvider, SummarySettings};

use crate::fakes::llm::{FakeLlm, LlmAnswer, API_KEY as KEY};

/// The fake's deterministic token count for this many characters.
fn tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

/// Characters of a request's messages' contents (all strings here).
fn message_chars(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            m["content"]
                .as_str()
                .expect("string content")
                .chars()
                .count()
        })
        .sum()
}

fn settings(provider: SummaryProvider, base_url: &str) -> SummarySettings {
    let mut settings = Settings::defaults().summary;
    settings.provider = provider;
    settings.base_url = Some(format!("{base_url}/").parse().expect("the fake's URL"));
    settings.api_key = Some(SecretString::from(KEY));
    settings
}

fn turns() -> Vec<(String, String)> {
    vec![
        (
            "assistant".to_owned(),
            "Chez Nous, how can I help?".to_owned(),
        ),
        (
            "caller".to_owned(),
            "A table for two at eight, please.".to_owned(),
        ),
        (
            "assistant".to_owned(),
            "Booked. See you at eight!".to_owned(),
        ),
    ]
}

async fn summarize(
    summarizer: &Summarizer,
) -> Result<switchboard::ai::summary::CallSummary, SummaryError> {
    let turns = turns();
    let tools = vec!["end_call".to_owned()];
    summarizer
        .summarize(&SummaryInput {
            instructions: "Book tables at Chez Nous.",
            turns: &turns,
            ended_by: "end_call",
            tools_used: &tools,
        })
        .await
}

#[actix_web::test]
async fn anthropic_summaries_come_from_the_messages_api() {
    // A thinking block comes before the text block, which wraps the JSON in prose
    // and a code fence.
    let text = "Here is the review:\n```json\n{\"summary\": \"Booked a table for two at 8 pm.\", \"outcome\": \"goal_achieved\"}\n```";
    let llm = FakeLlm::start(LlmAnswer::ThinkingThenText {
        thinking: "Let me look at the goal.".to_owned(),
        text: text.to_owned(),
    })
    .await;
    let summarizer =
        Summarizer::from_settings(&settings(SummaryProvider::Anthropic, &llm.base_url()))
            .expect("a summarizer");
    let summary = summarize(&summarizer).await.expect("a summary");
    assert_eq!(summary.summary, "Booked a table for two at 8 pm.");
    assert_eq!(summary.outcome, AiOutcome::GoalAchieved);
    assert_eq!(summary.usage.model, "claude-haiku-4-5");

    let seen = llm.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    // The usage is the API's `usage.input_tokens/output_tokens` (the fake counts
    // ceil(characters / 4) of the system prompt and messages, and of the text).
    let system_chars = request.body["system"]
        .as_str()
        .map_or(0, |s| s.chars().count());
    assert_eq!(
        (summary.usage.input_tokens, summary.usage.output_tokens),
        (
            tokens(system_chars + message_chars(&request.body)),
            tokens(text.chars().count())
        )
    );
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(llm.api_key()));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        request.header("authorization"),
        None,
        "the key goes in x-api-key only"
    );
    assert_eq!(request.body["model"], "claude-haiku-4-5");
    assert_eq!(request.body["max_tokens"], 400);
    assert!(request.body["system"]
        .as_str()
        .is_some_and(|s| s.contains("goal_achieved") && s.contains("JSON")));
    assert_eq!(request.body["messages"][0]["role"], "user");
    let content = request.body["messages"][0]["content"]
        .as_str()
        .expect("content");
    for needle in [
        "Book tables at Chez Nous.",
        "How the call ended: end_call",
        "Tools used: end_call",
        "caller: A table for two at eight, please.",
    ] {
        assert!(content.contains(needle), "{needle} in {content}");
    }
}

#[actix_web::test]
async fn openai_summaries_come_from_chat_completions_in_json_mode() {
    let text = r#"{"summary": "The caller asked for a person.", "outcome": "transferred"}"#;
    let llm = FakeLlm::start(LlmAnswer::Text(text.to_owned())).await;
    let mut config = settings(SummaryProvider::OpenAi, &llm.base_url());
    config.model = "gpt-4o-mini".into();
    let summarizer = Summarizer::from_settings(&config).expect("a summarizer");
    let summary = summarize(&summarizer).await.expect("a summary");
    assert_eq!(summary.summary, "The caller asked for a person.");
    assert_eq!(summary.outcome, AiOutcome::Transferred);
    assert_eq!(summary.usage.model, "gpt-4o-mini");

    let seen = llm.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    // The usage is the API's `usage.prompt_tokens/completion_tokens` (the fake
    // counts ceil(characters / 4) of the messages, and of the text).
    assert_eq!(
        (summary.usage.input_tokens, summary.usage.output_tokens),
        (
            tokens(message_chars(&request.body)),
            tokens(text.chars().count())
        )
    );
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {}", llm.api_key()).as_str())
    );
    assert_eq!(request.header("x-api-key"), None);
    assert_eq!(request.body["model"], "gpt-4o-mini");
    assert_eq!(
        request.body["response_format"],
        json!({ "type": "json_object" })
    );
    let messages = request.body["messages"].as_array().expect("messages");
    assert_eq!(
        messages
            .iter()
            .map(|m| m["role"].as_str())
            .collect::<Vec<_>>(),
        [Some("system"), Some("user")]
    );
    assert!(messages[1]["content"]
        .as_str()
        .is_some_and(|c| c.contains("assistant: Booked. See you at eight!")));
}

#[actix_web::test]
async fn an_answer_without_a_known_outcome_is_a_bad_answer() {
    // The answer is set for each text below.
    let llm = FakeLlm::start(LlmAnswer::Hang).await;
    for text in [
        r#"{"summary": "It went fine.", "outcome": "vibes"}"#,
        "The call went fine, I think.",
    ] {
        llm.set_answer(LlmAnswer::Text(text.to_owned()));
        for provider in [SummaryProvider::Anthropic, SummaryProvider::OpenAi] {
            let summarizer = Summarizer::from_settings(&settings(provider, &llm.base_url()))
                .expect("a summarizer");
            let result = summarize(&summarizer).await;
            assert!(
                matches!(result, Err(SummaryError::BadAnswer(_))),
                "{provider:?} {text}: {result:?}"
            );
        }
    }
    assert_eq!(llm.requests().len(), 4, "every answer was the API's");
}

#[actix_web::test]
async fn an_error_status_is_reported_with_the_start_of_its_body() {
    // Anthropic's 529 body: {"type":"error","error":{"type":"overloaded_error",…}}.
    let llm = FakeLlm::start(LlmAnswer::Status(529)).await;
    let summarizer =
        Summarizer::from_settings(&settings(SummaryProvider::Anthropic, &llm.base_url()))
            .expect("a summarizer");
    match summarize(&summarizer).await {
        Err(SummaryError::Status(529, body)) => {
            assert!(body.contains("overloaded_error"), "{body}")
        }
        other => panic!("expected a 529: {other:?}"),
    }

    // A wrong key is the API's 401, not a summary.
    let mut wrong = settings(SummaryProvider::OpenAi, &llm.base_url());
    wrong.api_key = Some(SecretString::from("sk-wrong"));
    let summarizer = Summarizer::from_settings(&wrong).expect("a summarizer");
    assert!(matches!(
        summarize(&summarizer).await,
        Err(SummaryError::Status(401, _))
    ));
}

#[actix_web::test]
async fn a_slow_api_times_out() {
    // An API that never answers: the client gives up after its timeout.
    let llm = FakeLlm::start(LlmAnswer::Hang).await;
    let mut config = settings(SummaryProvider::OpenAi, &llm.base_url());
    config.timeout = Duration::from_millis(300);
    let summarizer = Summarizer::from_settings(&config).expect("a summarizer");
    let started = std::time::Instant::now();
    let result = summarize(&summarizer).await;
    assert!(matches!(result, Err(SummaryError::Timeout)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(llm.requests().len(), 1, "the request reached the API");
}

#[actix_web::test]
async fn an_unreachable_api_is_a_transport_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let summarizer = Summarizer::from_settings(&settings(
        SummaryProvider::Anthropic,
        &format!("http://127.0.0.1:{port}"),
    ))
    .expect("a summarizer");
    let result = summarize(&summarizer).await;
    assert!(
        matches!(result, Err(SummaryError::Transport(_))),
        "{result:?}"
    );
}
