//! A fake summary API speaking two dialects on one port: Anthropic Messages
//! (`POST /v1/messages`) and OpenAI Chat Completions (`POST /v1/chat/completions`).
//!
//! # Public API
//!
//! [`FakeLlm::start`]`(answer)`, [`base_url`](FakeLlm::base_url)
//! (`http://127.0.0.1:PORT`, the paths above hang off it),
//! [`api_key`](FakeLlm::api_key), [`requests`](FakeLlm::requests) (JSON bodies of
//! the requests that passed authentication, in order),
//! [`seen`](FakeLlm::seen) (the same requests with their path and headers),
//! [`set_answer`](FakeLlm::set_answer),
//! [`set_structured_answer`](FakeLlm::set_structured_answer) (the answer to
//! requests for structured output, below). [`LlmAnswer`]: `Text` (the assistant's
//! text, e.g. a JSON summary), `ThinkingThenText` (Anthropic: a `thinking` block
//! before the text block; OpenAI: the text), `Status(code)` (that status with the
//! dialect's error JSON), `Hang` (never answers).
//!
//! # Structured output
//!
//! * Anthropic, a request with `tool_choice: {"type":"tool","name":N}` (forced tool
//!   use, docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use):
//!   N must be one of `tools` (else 400 `invalid_request_error`); the answer is one
//!   `tool_use` block `{"type":"tool_use","id","name":N,"input"}` whose `input` is
//!   the answer text parsed as JSON (the text itself as a string when it does not
//!   parse), `stop_reason: "tool_use"`.
//! * OpenAI, a request with `response_format: {"type":"json_schema",
//!   "json_schema":{"name","schema",…}}` (platform.openai.com/docs/guides/
//!   structured-outputs): `json_schema.name` and `.schema` required (else 400);
//!   the answer text is the message's `content`.
//!
//! Both use the structured answer when one is set, else the usual answer.
//!
//! # Checks
//!
//! * Anthropic: `x-api-key` = the key (else 401 `authentication_error`),
//!   `anthropic-version` present (else 400 `invalid_request_error`), body with
//!   `model`, `max_tokens` and `messages` (else 400 `invalid_request_error`).
//! * OpenAI: `Authorization: Bearer <key>` (else 401 `invalid_api_key`), body with
//!   `model` and `messages` (else 400).
//!
//! # Deterministic token counts
//!
//! * input = ceil(characters of the prompt / 4), where the prompt is Anthropic's
//!   `system` (a string or text blocks) plus every message's content (a string, or
//!   the `text` of its blocks), or every Chat Completions message's content;
//! * output = ceil(characters of the answer text / 4) (a thinking block is not
//!   counted).
//! * OpenAI caches prompts automatically (platform.openai.com/docs/guides/
//!   prompt-caching: prompts of 1,024 tokens or more, hits in increments of 128
//!   tokens, reported as `usage.prompt_tokens_details.cached_tokens`, part of
//!   `prompt_tokens`): cached = ceil(characters of the longest prefix this
//!   prompt shares with an earlier Chat Completions prompt of the same model / 4),
//!   rounded down to a multiple of 128, or 0 below 1,024. The prompt is the
//!   messages' contents joined in order.
//! * Anthropic caches only at `cache_control` breakpoints; the engine sets none,
//!   so `cache_creation_input_tokens` and `cache_read_input_tokens` are 0.
//!
//! Characters are Unicode scalar values (`str::chars().count()`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

pub const API_KEY: &str = "sk-llm-test-fake";

#[derive(Clone, Debug)]
pub enum LlmAnswer {
    /// The assistant's text.
    Text(String),
    /// Anthropic: a `thinking` block (with a signature), then a text block with
    /// `text`, as with extended thinking; OpenAI: just `text`.
    ThinkingThenText { thinking: String, text: String },
    /// This status with the dialect's error JSON.
    Status(u16),
    /// Never answers.
    Hang,
}

/// One authenticated request, as [`FakeLlm::seen`] gives it.
#[derive(Clone, Debug)]
pub struct LlmRequest {
    pub path: String,
    /// Names in lower case; a repeated header keeps its last value.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

impl LlmRequest {
    /// The header's value (`name` in lower case), when present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A running fake; see the module doc.
pub struct FakeLlm {
    port: u16,
    state: Arc<Mutex<State>>,
}

struct State {
    answer: LlmAnswer,
    /// For requests asking for structured output, when set.
    structured: Option<LlmAnswer>,
    requests: Vec<Value>,
    seen: Vec<LlmRequest>,
    ids: u64,
    /// Earlier Chat Completions prompts: (model, prompt text), for the cache.
    prompts: Vec<(String, String)>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeLlm {
    pub async fn start(answer: LlmAnswer) -> FakeLlm {
        let state = Arc::new(Mutex::new(State {
            answer,
            structured: None,
            requests: Vec::new(),
            seen: Vec::new(),
            ids: 0,
            prompts: Vec::new(),
        }));
        let data = web::Data::from(state.clone());
        let http = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::JsonConfig::default().limit(16 << 20))
                .route("/v1/messages", web::post().to(messages))
                .route("/v1/chat/completions", web::post().to(chat_completions))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("the fake LLM binds");
        let port = http.addrs()[0].port();
        actix_rt::spawn(http.run());
        FakeLlm { port, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn api_key(&self) -> &str {
        API_KEY
    }

    /// JSON bodies of the authenticated requests, in order.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.state).requests.clone()
    }

    /// The same requests as [`requests`](Self::requests), with path and headers.
    pub fn seen(&self) -> Vec<LlmRequest> {
        lock(&self.state).seen.clone()
    }

    pub fn set_answer(&self, answer: LlmAnswer) {
        lock(&self.state).answer = answer;
    }

    /// The answer to requests for structured output (a forced tool, a JSON schema).
    pub fn set_structured_answer(&self, answer: LlmAnswer) {
        lock(&self.state).structured = Some(answer);
    }
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn chars_of_content(content: &Value) -> usize {
    match content {
        Value::String(text) => text.chars().count(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| block["text"].as_str().map_or(0, |t| t.chars().count()))
            .sum(),
        _ => 0,
    }
}

fn messages_chars(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| chars_of_content(&m["content"]))
                .sum()
        })
        .unwrap_or(0)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("an HTTP status")
}

/// The answer once it is due (`Hang` never is).
async fn answer(state: &Mutex<State>, req: &HttpRequest, body: Value) -> (LlmAnswer, u64) {
    let headers = req
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let (answer, id) = {
        let mut state = lock(state);
        state.seen.push(LlmRequest {
            path: req.path().to_owned(),
            headers,
            body: body.clone(),
        });
        let structured = body["tool_choice"]["type"] == "tool"
            || body["response_format"]["type"] == "json_schema";
        state.requests.push(body);
        state.ids += 1;
        let answer = match (&state.structured, structured) {
            (Some(answer), true) => answer.clone(),
            _ => state.answer.clone(),
        };
        (answer, state.ids)
    };
    if let LlmAnswer::Hang = answer {
        std::future::pending::<()>().await;
    }
    (answer, id)
}

fn anthropic_error(code: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status(code)).json(json!({
        "type": "error",
        "error": { "type": kind, "message": message },
    }))
}

async fn messages(
    req: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    if header(&req, "x-api-key") != Some(API_KEY) {
        return anthropic_error(401, "authentication_error", "invalid x-api-key");
    }
    if header(&req, "anthropic-version").is_none() {
        return anthropic_error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let body = body.into_inner();
    for field in ["model", "max_tokens", "messages"] {
        if body.get(field).is_none() {
            return anthropic_error(
                400,
                "invalid_request_error",
                &format!("{field}: Field required"),
            );
        }
    }
    let forced_tool = body["tool_choice"]["name"].as_str().map(str::to_owned);
    if let Some(name) = &forced_tool {
        let known = body["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["name"] == name.as_str()));
        if !known {
            return anthropic_error(
                400,
                "invalid_request_error",
                &format!("tool_choice: tool {name} is not in tools"),
            );
        }
    }
    let input = (chars_of_content(&body["system"]) + messages_chars(&body)).div_ceil(4);
    let model = body["model"].clone();
    let (thinking, text, id) = match answer(&state, &req, body).await {
        (LlmAnswer::Text(text), id) => (None, text, id),
        (LlmAnswer::ThinkingThenText { thinking, text }, id) => (Some(thinking), text, id),
        (LlmAnswer::Status(code), _) => return anthropic_status(code),
        (LlmAnswer::Hang, _) => unreachable!("a hanging answer never returns"),
    };
    if let Some(name) = forced_tool {
        let tool_input =
            serde_json::from_str::<Value>(&text).unwrap_or_else(|_| Value::String(text.clone()));
        return HttpResponse::Ok().json(json!({
            "id": format!("msg_fake{id:04}"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{
                "type": "tool_use",
                "id": format!("toolu_fake{id:04}"),
                "name": name,
                "input": tool_input,
            }],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {
                "input_tokens": input,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": text.chars().count().div_ceil(4),
            },
        }));
    }
    let mut content = Vec::new();
    if let Some(thinking) = thinking {
        content.push(json!({ "type": "thinking", "thinking": thinking, "signature": "sig_fake" }));
    }
    content.push(json!({ "type": "text", "text": text }));
    HttpResponse::Ok().json(json!({
        "id": format!("msg_fake{id:04}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {
            "input_tokens": input,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": text.chars().count().div_ceil(4),
        },
    }))
}

fn anthropic_status(code: u16) -> HttpResponse {
    let kind = match code {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    anthropic_error(code, kind, "the fake LLM was told to fail")
}

fn openai_error(code: u16, kind: &str, error_code: Option<&str>, message: &str) -> HttpResponse {
    HttpResponse::build(status(code)).json(json!({
        "error": { "message": message, "type": kind, "param": null, "code": error_code },
    }))
}

async fn chat_completions(
    req: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let bearer = header(&req, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(API_KEY) {
        return openai_error(
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        );
    }
    let body = body.into_inner();
    for field in ["model", "messages"] {
        if body.get(field).is_none() {
            return openai_error(
                400,
                "invalid_request_error",
                None,
                &format!("Missing required parameter: '{field}'."),
            );
        }
    }
    if body["response_format"]["type"] == "json_schema" {
        let spec = &body["response_format"]["json_schema"];
        if !spec["name"].is_string() || !spec["schema"].is_object() {
            return openai_error(
                400,
                "invalid_request_error",
                None,
                "Missing required parameter: 'response_format.json_schema.name' or '.schema'.",
            );
        }
    }
    let input = messages_chars(&body).div_ceil(4);
    let model = body["model"].clone();
    let cached = cached_tokens(&state, &body, input);
    match answer(&state, &req, body).await {
        (LlmAnswer::Text(text), id) | (LlmAnswer::ThinkingThenText { text, .. }, id) => {
            let output = text.chars().count().div_ceil(4);
            HttpResponse::Ok().json(json!({
                "id": format!("chatcmpl-fake{id:04}"),
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": { "role": "assistant", "content": text, "refusal": null },
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": {
                    "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output,
                    "prompt_tokens_details": { "cached_tokens": cached, "audio_tokens": 0 },
                    "completion_tokens_details": {
                        "reasoning_tokens": 0, "audio_tokens": 0,
                        "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
                    },
                },
            }))
        }
        (LlmAnswer::Status(code), _) => {
            let (kind, error_code) = match code {
                401 => ("invalid_request_error", Some("invalid_api_key")),
                429 => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
                c if c >= 500 => ("server_error", None),
                _ => ("invalid_request_error", None),
            };
            openai_error(code, kind, error_code, "the fake LLM was told to fail")
        }
        (LlmAnswer::Hang, _) => unreachable!("a hanging answer never returns"),
    }
}

/// OpenAI's automatic prompt caching, as the module doc has it; records the prompt.
fn cached_tokens(state: &Mutex<State>, body: &Value, input: usize) -> usize {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let prompt: String = body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter_map(|m| m["content"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let mut state = lock(state);
    let shared = state
        .prompts
        .iter()
        .filter(|(m, _)| *m == model)
        .map(|(_, earlier)| {
            earlier
                .chars()
                .zip(prompt.chars())
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0);
    state.prompts.push((model, prompt));
    let shared = shared.div_ceil(4).min(input);
    if input < 1_024 || shared < 1_024 {
        0
    } else {
        shared / 128 * 128
    }
}
