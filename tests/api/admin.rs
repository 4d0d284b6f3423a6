//! The admin REST API: agents, numbers, calls; its auth and its refusals.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let (status, body) = app.post_json(path, &body, Some(ADMIN_TOKEN)).await;
    (status.as_u16(), body)
}

#[actix_web::test]
async fn creating_an_agent_returns_its_id_and_a_softphone_token() {
    let app = spawn_app().await;
    let (status, body) = post(
        &app,
        "/api/agents",
        json!({ "name": "Ada", "workspace": "production" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["id"].is_string());
    assert!(body["token"].as_str().is_some_and(|t| t.len() > 32));
    let (status, listed) = app.get_json("/api/agents").await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["name"], "Ada");
    assert!(listed[0].get("token").is_none(), "tokens are shown once");
    let (status, one) = app
        .get_json(&format!(
            "/api/agents/{}",
            body["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        (status.as_u16(), one["workspace"].clone()),
        (200, json!("production"))
    );
}

#[actix_web::test]
async fn the_admin_api_wants_the_admin_token() {
    let app = spawn_app().await;
    let body = json!({ "name": "Ada", "workspace": "production" });
    for token in [None, Some("wrong")] {
        let (status, error) = app.post_json("/api/agents", &body, token).await;
        assert_eq!(status, 401);
        assert_eq!(error["code"], "unauthorized");
    }
    let (status, _) = app.get("/api/calls/abc", None).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn bad_agents_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({ "name": "", "workspace": "production" }), "name"),
        (
            json!({ "name": "Ada", "workspace": "Prod Uction" }),
            "workspace",
        ),
        (json!({ "name": "Ada" }), "workspace"),
        (
            json!({ "name": "Ada", "workspace": "production", "admin": true }),
            "admin",
        ),
    ] {
        let (status, error) = post(&app, "/api/agents", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{error}"
        );
    }
    let (_, listed) = app.get_json("/api/agents").await;
    assert_eq!(listed, json!([]), "nothing was created");
}

#[actix_web::test]
async fn numbers_are_validated_and_normalised_to_e164() {
    let app = spawn_app().await;
    let agent = app.create_agent("Ada", "production").await;
    let (status, body) = post(
        &app,
        "/api/numbers",
        json!({ "e164": "+1 415 555 1234", "workspace": "production", "route": { "kind": "agents", "agent_ids": [agent.id] } }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["e164"], "+14155551234");
    for bad in ["555-1234", "+1 415 555 123", "+1 ABC DEF GHIJ", ""] {
        let (status, error) = post(
            &app,
            "/api/numbers",
            json!({ "e164": bad, "workspace": "production", "route": { "kind": "voicemail" } }),
        )
        .await;
        assert_eq!(status, 400, "{bad:?}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains("e164"),
            "{error}"
        );
    }
}

#[actix_web::test]
async fn routes_to_unknown_or_foreign_agents_and_unknown_kinds_are_refused() {
    let app = spawn_app().await;
    let staging = app.create_agent("Bob", "staging").await;
    for (route, code) in [
        (
            json!({ "kind": "agents", "agent_ids": ["nosuchagent"] }),
            "unknown-agent",
        ),
        (
            json!({ "kind": "agents", "agent_ids": [staging.id] }),
            "wrong-workspace",
        ),
        (
            json!({ "kind": "ai", "assistant_id": "x" }),
            "unknown-assistant",
        ),
        (json!({ "kind": "pigeon" }), "bad-field"),
    ] {
        let (status, error) = post(
            &app,
            "/api/numbers",
            json!({ "e164": "+14155551234", "workspace": "production", "route": route }),
        )
        .await;
        assert_eq!(
            (status, error["code"].clone()),
            (400, json!(code)),
            "{error}"
        );
    }
    let (status, _) = app.get_json("/api/numbers/+14155551234").await;
    assert_eq!(status, 404, "nothing was created");
}

#[actix_web::test]
async fn a_changed_route_takes_effect_on_the_next_call() {
    let app = spawn_app().await;
    let agent = app.create_agent("Ada", "production").await;
    let mut phone = app.available_softphone(&agent).await;
    app.create_number(
        "+14155551234",
        "production",
        json!({ "kind": "agents", "agent_ids": [] }),
    )
    .await;
    let first = app.ring_in("+14155559876", "+14155551234").await;
    let _t1 = app.open_stream(&first).await;
    phone.expect_ring(&first.call_id).await;

    let (status, body) = post(
        &app,
        "/api/numbers",
        json!({ "e164": "+14155551234", "workspace": "production", "route": { "kind": "voicemail" } }),
    )
    .await;
    assert_eq!(status, 200, "an existing number is updated: {body}");
    let second = app.ring_in("+14155559876", "+14155551234").await;
    let mut t2 = app.open_stream(&second).await;
    t2.wait_for("mark").await;
    let record = app
        .wait_for_call(&second.call_id, |c| c["status"] == "voicemail")
        .await;
    assert_eq!(record["agent_id"], Value::Null);
}

#[actix_web::test]
async fn unknown_calls_and_recordings_are_not_found() {
    let app = spawn_app().await;
    let (status, error) = app.get_json("/api/calls/nosuchcall").await;
    assert_eq!(
        (status.as_u16(), error["code"].clone()),
        (404, json!("not-found"))
    );
    let (status, _) = app
        .get("/api/calls/nosuchcall/recording", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get_json("/api/calls/BAD%20ID").await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn metrics_are_served_as_prometheus_text() {
    let app = spawn_app().await;
    let (status, body) = app.get("/metrics", None).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("# TYPE switchboard_calls_started counter"),
        "{text}"
    );
    assert!(text.contains("switchboard_calls_active 0"));
}

// ---- issue 9: hostile input, auth details, secrets ---------------------------

/// PostgreSQL TEXT cannot hold NUL ("invalid byte sequence for encoding UTF8:
/// 0x00", <https://www.postgresql.org/docs/current/datatype-character.html>), and
/// control characters have no place in names, numbers or ids: every JSON field of
/// the admin API refuses them with `400 bad-field` naming the field, and nothing is
/// created.
async fn control_characters_in_admin_fields_are_refused(db: crate::db::TestDb) {
    let app = crate::helpers::spawn_app_with(db, |_| {}).await;
    let agent = app.create_agent("Ada", "production").await;
    let assistant = json!({
        "name": "Front\u{0}desk",
        "workspace": "production",
        "instructions": "Line one.\nLine two.",
        "voice": "marin",
        "model": "gpt-realtime",
    });
    for (path, body, field) in [
        (
            "/api/agents",
            json!({ "name": "A\u{0}da", "workspace": "production" }),
            "name",
        ),
        (
            "/api/agents",
            json!({ "name": "Ada", "workspace": "produc\u{0}tion" }),
            "workspace",
        ),
        (
            "/api/numbers",
            json!({ "e164": "+1415555\u{0}1234", "workspace": "production", "route": { "kind": "voicemail" } }),
            "e164",
        ),
        (
            "/api/numbers",
            json!({ "e164": "+14155551234", "workspace": "production", "route": { "kind": "agents", "agent_ids": [agent.id, "x\u{1b}[31m"] } }),
            "route.agent_ids[1]",
        ),
        ("/api/assistants", assistant, "name"),
    ] {
        let (status, error) = post(&app, path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {error}");
        assert_eq!(error["code"], "bad-field", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("{field}:")),
            "{error}"
        );
    }
    let (_, agents) = app.get_json("/api/agents").await;
    assert_eq!(agents.as_array().map(Vec::len), Some(1), "{agents}");
    let (_, numbers) = app.get_json("/api/numbers").await;
    assert_eq!(numbers, json!([]));
    let (_, assistants) = app.get_json("/api/assistants").await;
    assert_eq!(assistants, json!([]));
    // Renaming is refused the same way.
    let (status, error) = app
        .send_json(
            actix_web::http::Method::PATCH,
            &format!("/api/agents/{}", agent.id),
            Some(&json!({ "name": "Ada\u{0}" })),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error["code"].clone()),
        (400, json!("bad-field"))
    );
}

#[actix_web::test]
async fn control_characters_in_admin_fields_are_refused_on_sqlite() {
    control_characters_in_admin_fields_are_refused(crate::db::TestDb::Sqlite).await;
}

#[actix_web::test]
async fn control_characters_in_admin_fields_are_refused_on_postgres() {
    control_characters_in_admin_fields_are_refused(crate::db::TestDb::Postgres).await;
}

/// RFC 9110 §11.1: "It uses a case-insensitive token to identify the authentication
/// scheme"; RFC 6750 §2.1 names the scheme `Bearer`.
#[actix_web::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let mut res = app
            .client
            .get(format!("{}/api/agents", app.address))
            .insert_header(("Authorization", format!("{scheme} {ADMIN_TOKEN}")))
            .send()
            .await
            .expect("reaches the engine");
        assert_eq!(res.status(), 200, "{scheme}");
        let _ = res.body().await;
    }
    let res = app
        .client
        .get(format!("{}/api/agents", app.address))
        .insert_header(("Authorization", format!("Basic {ADMIN_TOKEN}")))
        .send()
        .await
        .expect("reaches the engine");
    assert_eq!(res.status(), 401);
}

/// The agent's token is shown once, in this response: no cache may store it
/// (RFC 9111 §5.2.2.5 `no-store`; OAuth token responses, RFC 6749 §5.1, do the same).
#[actix_web::test]
async fn the_one_time_agent_token_is_not_cacheable() {
    let app = spawn_app().await;
    let mut res = app
        .client
        .post(format!("{}/api/agents", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send_json(&json!({ "name": "Ada", "workspace": "production" }))
        .await
        .expect("reaches the engine");
    assert_eq!(res.status(), 201);
    let cache = res
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cache.split(',').any(|d| d.trim() == "no-store"),
        "{cache:?}"
    );
    let _ = res.body().await;
}

/// What `switchboard serve` wrote until it logged that it listens: (stdout, stderr).
fn serve_until_listening(envs: &[(&str, &str)]) -> (String, String) {
    use std::io::{BufRead as _, BufReader, Read as _};
    let db = std::env::temp_dir().join(format!("sb_log_{}.db", uuid::Uuid::new_v4().simple()));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .arg("serve")
        .env_remove("SWITCHBOARD_ADMIN_TOKEN")
        .env_remove("SWITCHBOARD_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .env("SWITCHBOARD_BIND", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the switchboard binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen.contains("switchboard listening") && std::time::Instant::now() < deadline {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    seen.push_str(&rest);
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    assert!(seen.contains("switchboard listening"), "{seen}\n{stderr}");
    (seen, stderr)
}

/// The generated admin token is printed once, as a plain line on standard error,
/// and never reaches the structured log (standard output), which log shippers read.
/// Logs written to a file (not a terminal) carry no colour codes; with
/// `SWITCHBOARD_LOG_FORMAT=json` every log line is a JSON object.
#[actix_web::test]
async fn the_generated_admin_token_stays_out_of_the_log_and_logs_suit_files() {
    let (log, stderr) = tokio::task::spawn_blocking(|| serve_until_listening(&[]))
        .await
        .expect("thread");
    let token_line = stderr
        .lines()
        .find(|l| l.contains("generated admin token"))
        .unwrap_or_else(|| panic!("no token line on stderr: {stderr}"));
    let token = token_line.rsplit(' ').next().unwrap_or_default();
    assert!(
        token.starts_with("sba_") && token.len() > 40,
        "{token_line}"
    );
    assert_eq!(stderr.matches(token).count(), 1, "printed once");
    assert!(!log.contains(token), "the token is in the log:\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );

    let (log, stderr) = tokio::task::spawn_blocking(|| {
        serve_until_listening(&[("SWITCHBOARD_LOG_FORMAT", "json")])
    })
    .await
    .expect("thread");
    let token_line = stderr
        .lines()
        .find(|l| l.contains("generated admin token"))
        .unwrap_or_else(|| panic!("no token line on stderr: {stderr}"));
    let token = token_line.rsplit(' ').next().unwrap_or_default();
    assert!(!log.contains(token));
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("\"message\":\"switchboard listening\"")));
}
