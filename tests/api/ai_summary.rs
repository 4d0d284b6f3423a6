//! The post-call summary client against a local HTTP server that speaks the two
//! documented APIs (Anthropic Messages, OpenAI Chat Completions): what it sends,
//! what it reads back, and how it fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::ai::summary::{AiOutcome, Summarizer, SummaryError, SummaryInput};
use switchboard::config::{Settings, SummarySettings};

const KEY: &str = "test-llm-key";

/// How the fake API answers.
#[derive(Clone)]
enum Answer {
    /// 200 with the model writing this text.
    Text(&'static str),
    /// This status and body.
    Status(u16, &'static str),
    /// A valid answer, after this long.
    Slow(Duration),
}

/// One request the fake API received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    /// `x-api-key`, `anthropic-version` and `authorization`, when present.
    api_key: Option<String>,
    version: Option<String>,
    authorization: Option<String>,
    body: Value,
}

struct FakeLlm {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: actix_web::dev::ServerHandle,
}

impl FakeLlm {
    async fn start(answer: Answer) -> FakeLlm {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = web::Data::new((answer, Arc::clone(&seen)));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::JsonConfig::default().limit(1 << 20))
                .route("/v1/messages", web::post().to(messages))
                .route("/v1/chat/completions", web::post().to(completions))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind the fake LLM");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        FakeLlm {
            base_url: format!("http://127.0.0.1:{port}"),
            seen,
            server: handle,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    async fn stop(self) {
        self.server.stop(false).await;
    }
}

type State = web::Data<(Answer, Arc<Mutex<Vec<Seen>>>)>;

fn record(state: &State, req: &HttpRequest, body: Value) {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Ok(mut seen) = state.1.lock() {
        seen.push(Seen {
            path: req.path().to_owned(),
            api_key: header("x-api-key"),
            version: header("anthropic-version"),
            authorization: header("authorization"),
            body,
        });
    }
}

const GOOD: &str =
    r#"{"summary": "The caller booked a table for two at 8 pm.", "outcome": "goal_achieved"}"#;

/// The model's text, or the error response the fake was told to give.
async fn text_of(state: &State) -> Result<&'static str, HttpResponse> {
    match &state.0 {
        Answer::Text(text) => Ok(text),
        Answer::Status(status, body) => Err(HttpResponse::build(
            actix_web::http::StatusCode::from_u16(*status).expect("status"),
        )
        .content_type("application/json")
        .body(*body)),
        Answer::Slow(delay) => {
            tokio::time::sleep(*delay).await;
            Ok(GOOD)
        }
    }
}

/// Anthropic Messages API: `content` blocks and `usage.input_tokens/output_tokens`.
async fn messages(state: State, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    let body = body.into_inner();
    let model = body["model"].clone();
    record(&state, &req, body);
    if req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return HttpResponse::Unauthorized().json(json!({
            "type": "error",
            "error": { "type": "authentication_error", "message": "invalid x-api-key" }
        }));
    }
    match text_of(&state).await {
        Ok(text) => HttpResponse::Ok().json(json!({
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [
                { "type": "thinking", "thinking": "Let me look at the goal.", "signature": "sig" },
                { "type": "text", "text": text }
            ],
            "stop_reason": "end_turn",
            "usage": { "input_tokens": 812, "output_tokens": 64 }
        })),
        Err(response) => response,
    }
}

/// OpenAI Chat Completions: `choices[0].message.content` and
/// `usage.prompt_tokens/completion_tokens`.
async fn completions(state: State, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    let body = body.into_inner();
    let model = body["model"].clone();
    record(&state, &req, body);
    let bearer = format!("Bearer {KEY}");
    if req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(&bearer)
    {
        return HttpResponse::Unauthorized().json(json!({
            "error": { "message": "Incorrect API key provided", "type": "invalid_request_error",
                       "code": "invalid_api_key" }
        }));
    }
    match text_of(&state).await {
        Ok(text) => HttpResponse::Ok().json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text },
                "finish_reason": "stop"
            }],
            "usage": { "prompt_tokens": 700, "completion_tokens": 50, "total_tokens": 750 }
        })),
        Err(response) => response,
    }
}

fn settings(provider: &str, base_url: &str) -> SummarySettings {
    let mut settings = Settings::defaults().summary;
    settings.provider = provider.to_owned();
    settings.base_url = format!("{base_url}/");
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
    let llm = FakeLlm::start(Answer::Text(
        "Here is the review:\n```json\n{\"summary\": \"Booked a table for two at 8 pm.\", \"outcome\": \"goal_achieved\"}\n```",
    ))
    .await;
    let summarizer =
        Summarizer::from_settings(&settings("anthropic", &llm.base_url)).expect("a summarizer");
    let summary = summarize(&summarizer).await.expect("a summary");
    assert_eq!(summary.summary, "Booked a table for two at 8 pm.");
    assert_eq!(summary.outcome, AiOutcome::GoalAchieved);
    assert_eq!(summary.usage.model, "claude-haiku-4-5");
    assert_eq!(
        (summary.usage.input_tokens, summary.usage.output_tokens),
        (812, 64)
    );

    let seen = llm.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.api_key.as_deref(), Some(KEY));
    assert_eq!(request.version.as_deref(), Some("2023-06-01"));
    assert_eq!(
        request.authorization, None,
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
    llm.stop().await;
}

#[actix_web::test]
async fn openai_summaries_come_from_chat_completions_in_json_mode() {
    let llm = FakeLlm::start(Answer::Text(
        r#"{"summary": "The caller asked for a person.", "outcome": "transferred"}"#,
    ))
    .await;
    let mut config = settings("openai", &llm.base_url);
    config.model = "gpt-4o-mini".into();
    let summarizer = Summarizer::from_settings(&config).expect("a summarizer");
    let summary = summarize(&summarizer).await.expect("a summary");
    assert_eq!(summary.summary, "The caller asked for a person.");
    assert_eq!(summary.outcome, AiOutcome::Transferred);
    assert_eq!(summary.usage.model, "gpt-4o-mini");
    assert_eq!(
        (summary.usage.input_tokens, summary.usage.output_tokens),
        (700, 50)
    );

    let seen = llm.seen();
    let request = &seen[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.api_key, None);
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
    llm.stop().await;
}

#[actix_web::test]
async fn an_answer_without_a_known_outcome_is_a_bad_answer() {
    for text in [
        r#"{"summary": "It went fine.", "outcome": "vibes"}"#,
        "The call went fine, I think.",
    ] {
        let llm = FakeLlm::start(Answer::Text(text)).await;
        for provider in ["anthropic", "openai"] {
            let summarizer = Summarizer::from_settings(&settings(provider, &llm.base_url))
                .expect("a summarizer");
            let result = summarize(&summarizer).await;
            assert!(
                matches!(result, Err(SummaryError::BadAnswer(_))),
                "{provider} {text}: {result:?}"
            );
        }
        llm.stop().await;
    }
}

#[actix_web::test]
async fn an_error_status_is_reported_with_the_start_of_its_body() {
    let llm = FakeLlm::start(Answer::Status(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ))
    .await;
    let summarizer =
        Summarizer::from_settings(&settings("anthropic", &llm.base_url)).expect("a summarizer");
    match summarize(&summarizer).await {
        Err(SummaryError::Status(529, body)) => {
            assert!(body.contains("overloaded_error"), "{body}")
        }
        other => panic!("expected a 529: {other:?}"),
    }

    // A wrong key is the API's 401, not a summary.
    let mut wrong = settings("openai", &llm.base_url);
    wrong.api_key = Some(SecretString::from("sk-wrong"));
    let summarizer = Summarizer::from_settings(&wrong).expect("a summarizer");
    assert!(matches!(
        summarize(&summarizer).await,
        Err(SummaryError::Status(401, _))
    ));
    llm.stop().await;
}

#[actix_web::test]
async fn a_slow_api_times_out() {
    let llm = FakeLlm::start(Answer::Slow(Duration::from_secs(3))).await;
    let mut config = settings("openai", &llm.base_url);
    config.timeout_secs = 0.3;
    let summarizer = Summarizer::from_settings(&config).expect("a summarizer");
    let started = std::time::Instant::now();
    let result = summarize(&summarizer).await;
    assert!(matches!(result, Err(SummaryError::Timeout)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    llm.stop().await;
}

#[actix_web::test]
async fn an_unreachable_api_is_a_transport_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let summarizer =
        Summarizer::from_settings(&settings("anthropic", &format!("http://127.0.0.1:{port}")))
            .expect("a summarizer");
    let result = summarize(&summarizer).await;
    assert!(
        matches!(result, Err(SummaryError::Transport(_))),
        "{result:?}"
    );
}
