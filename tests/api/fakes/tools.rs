//! A fake webhook-tool endpoint: any method on any path of 127.0.0.1:PORT.
//!
//! # Public API
//!
//! [`FakeTools::start`], [`url`](FakeTools::url)`(path)`,
//! [`on`](FakeTools::on)`(path, ToolAnswer)`, [`calls`](FakeTools::calls)`(path)`
//! (the JSON bodies received, in order; a body that is not JSON is recorded as a
//! JSON string, an empty one as `null`),
//! [`content_types`](FakeTools::content_types)`(path)` (each request's
//! `Content-Type`, in the same order).
//!
//! A path with no answer set gets 404 `{"error":"no tool at this path"}` (and the
//! call is still recorded). [`ToolAnswer`]: `Json(value)` → 200 with that body,
//! `Status(code)` → that status with `{"error":"status <code>"}`, `Hang` → never
//! answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub enum ToolAnswer {
    Json(Value),
    Status(u16),
    Hang,
}

/// A running fake; see the module doc.
pub struct FakeTools {
    port: u16,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    answers: HashMap<String, ToolAnswer>,
    /// Per path: (body, content type).
    calls: HashMap<String, Vec<(Value, Option<String>)>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeTools {
    pub async fn start() -> FakeTools {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let http = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(tool))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("the fake tools bind");
        let port = http.addrs()[0].port();
        actix_rt::spawn(http.run());
        FakeTools { port, state }
    }

    /// `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn on(&self, path: &str, answer: ToolAnswer) {
        lock(&self.state).answers.insert(path.to_owned(), answer);
    }

    /// JSON bodies received on `path`, in order.
    pub fn calls(&self, path: &str) -> Vec<Value> {
        self.recorded(path)
            .into_iter()
            .map(|(body, _)| body)
            .collect()
    }

    /// `Content-Type` of each request on `path`, in order.
    pub fn content_types(&self, path: &str) -> Vec<Option<String>> {
        self.recorded(path).into_iter().map(|(_, ct)| ct).collect()
    }

    fn recorded(&self, path: &str) -> Vec<(Value, Option<String>)> {
        lock(&self.state)
            .calls
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

async fn tool(req: HttpRequest, body: Bytes, state: web::Data<Mutex<State>>) -> HttpResponse {
    let path = req.path().to_owned();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let answer = {
        let mut state = lock(&state);
        state
            .calls
            .entry(path.clone())
            .or_default()
            .push((value, content_type));
        state.answers.get(&path).cloned()
    };
    match answer {
        Some(ToolAnswer::Json(value)) => HttpResponse::Ok().json(value),
        Some(ToolAnswer::Status(code)) => {
            let status = StatusCode::from_u16(code).expect("an HTTP status");
            HttpResponse::build(status).json(json!({ "error": format!("status {code}") }))
        }
        Some(ToolAnswer::Hang) => std::future::pending().await,
        None => HttpResponse::NotFound().json(json!({ "error": "no tool at this path" })),
    }
}
