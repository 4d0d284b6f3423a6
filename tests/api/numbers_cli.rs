//! `switchboard numbers …`: the real binary against a spawned engine, on a seeded
//! directory with known problems (every line of validate, diff and report is
//! checked), and the cut-over and rollback of routes and Twilio webhooks.

use serde_json::{json, Value};
use sqlx::Connection as _;

use crate::db::TestDb;
use crate::fake_providers::{account, FakeProvider, RETELL_KEY, TWILIO_SECRET};
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN};

/// Production: Twilio 0101 "Main line" (live, its route rings Ada — deleted
/// since), 0102 at Twilio *and* Retell (a duplicate), toll-free 0103 assigned to an
/// agent that no longer exists; 0105 live but held by no provider. Staging:
/// Twilio 0101 "Main line (staging)" and 0104 (not in production).
struct Seeded {
    app: TestApp,
    _prod: FakeProvider,
    ada: String,
    pn: Vec<String>,
}

async fn seeded() -> Seeded {
    let prod = FakeProvider::start().await;
    let staging = FakeProvider::start().await;
    let pn = vec![
        prod.add_twilio(1, "+14155550101", "Main line", ""),
        prod.add_twilio(2, "+14155550102", "Sales", ""),
        prod.add_twilio(3, "+18005550103", "Toll free", ""),
    ];
    prod.add_retell("+14155550102", "Sales (Retell)");
    staging.add_twilio(11, "+14155550101", "Main line (staging)", "");
    staging.add_twilio(14, "+14155550104", "Staging only", "");
    let accounts = vec![
        account(&prod, "twilio", "production"),
        account(&prod, "retell", "production"),
        account(&staging, "twilio", "staging"),
    ];
    let app = spawn_app_with(TestDb::Sqlite, move |s| s.numbers.accounts = accounts).await;
    let sync = app.cli(&["numbers", "sync"]).await;
    assert_eq!(sync.code, 0, "{}", sync.stderr);
    assert_eq!(
        sync.lines(),
        [
            "added 6, updated 0, released 0",
            "  twilio (production): added 3, updated 0, released 0",
            "  retell (production): added 1, updated 0, released 0",
            "  twilio (staging): added 2, updated 0, released 0",
        ]
    );
    assert_eq!(sync.stderr, "", "no progress bar when piped");
    let ada = app.create_agent("Ada", "production").await;
    app.create_number(
        "+14155550101",
        "production",
        json!({ "kind": "agents", "agent_ids": [ada.id] }),
    )
    .await;
    app.create_number("+14155550105", "production", json!({ "kind": "voicemail" }))
        .await;
    let (status, body) = app
        .send_json(
            actix_web::http::Method::DELETE,
            &format!("/api/agents/{}", ada.id),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // An assignment whose agent vanished without the API (e.g. removed by hand).
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("the test database");
    sqlx::query(
        "UPDATE phone_numbers SET status = 'ASSIGNED', agent_id = 'ghost' WHERE e164 = '+18005550103'",
    )
    .execute(&mut db)
    .await
    .expect("seeding a dangling assignment");
    Seeded {
        app,
        _prod: prod,
        ada: ada.id,
        pn,
    }
}

#[actix_web::test]
async fn validate_reports_every_known_problem_of_a_seeded_directory_and_fails() {
    let Seeded { app, ada, pn, .. } = seeded().await;
    let run = app.cli(&["numbers", "validate"]).await;
    assert_eq!(run.code, 1, "errors make the exit status non-zero");
    assert_eq!(
        run.lines(),
        [
            format!("error: +14155550101 [production] route rings agent {ada}, which no longer exists").as_str(),
            format!("error: +14155550102 [production] duplicate: held by 2 provider accounts (retell +14155550102, twilio {})", pn[1]).as_str(),
            "error: +14155550105 [production] no provider id: live here, but no provider account of this workspace holds it",
            "error: +18005550103 [production] assigned to agent ghost, which no longer exists",
            "warning: +14155550104 [staging] in staging but not in production",
            "4 errors, 1 warning",
        ]
    );
}

#[actix_web::test]
async fn diff_staging_production_lists_each_difference() {
    let Seeded { app, .. } = seeded().await;
    let run = app.cli(&["numbers", "diff", "staging", "production"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "- +14155550104 only in staging (local, twilio, \"Staging only\")",
            "+ +14155550102 only in production (local, retell+twilio, \"Sales+Sales (Retell)\")",
            "+ +18005550103 only in production (toll-free, twilio, \"Toll free\")",
            "~ +14155550101 nickname: \"Main line (staging)\" → \"Main line\"",
            "1 only in staging, 2 only in production, 1 differ, 0 same",
        ]
    );
}

#[actix_web::test]
async fn report_as_csv_table_and_json_shows_every_number() {
    let Seeded { app, pn, .. } = seeded().await;
    let csv = app.cli(&["numbers", "report", "--format", "csv"]).await;
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let staging = |n: usize| format!("PN{n:032x}");
    assert_eq!(
        csv.lines(),
        [
            "workspace,e164,type,provider,provider_id,status,nickname,agent_id,agent_name"
                .to_owned(),
            format!(
                "production,+14155550101,local,twilio,{},AVAILABLE,Main line,,",
                pn[0]
            ),
            "production,+14155550102,local,retell,+14155550102,AVAILABLE,Sales (Retell),,"
                .to_owned(),
            format!(
                "production,+14155550102,local,twilio,{},AVAILABLE,Sales,,",
                pn[1]
            ),
            format!(
                "production,+18005550103,toll-free,twilio,{},ASSIGNED,Toll free,ghost,",
                pn[2]
            ),
            format!(
                "staging,+14155550101,local,twilio,{},AVAILABLE,Main line (staging),,",
                staging(11)
            ),
            format!(
                "staging,+14155550104,local,twilio,{},AVAILABLE,Staging only,,",
                staging(14)
            ),
        ]
    );

    let table = app.cli(&["numbers", "report", "--format", "table"]).await;
    let lines = table.lines();
    assert_eq!(lines.len(), 1 + 6 + 1 + 3, "{}", table.stdout);
    assert!(
        lines[0].starts_with("WORKSPACE   NUMBER        TYPE       PROVIDER  STATUS     NICKNAME"),
        "{}",
        lines[0]
    );
    assert!(lines[4].contains("ghost (deleted)"), "{}", lines[4]);
    assert_eq!(
        &lines[7..],
        [
            "",
            "production: 3 AVAILABLE, 1 ASSIGNED, 0 RELEASED",
            "staging: 2 AVAILABLE, 0 ASSIGNED, 0 RELEASED",
            "total: 6 numbers (5 AVAILABLE, 1 ASSIGNED, 0 RELEASED)",
        ]
    );

    let dir = tempdir();
    let file = dir.join("report.json");
    let json_run = app
        .cli(&[
            "numbers",
            "report",
            "--format",
            "json",
            "--output",
            file.to_str().unwrap_or_default(),
        ])
        .await;
    assert_eq!(json_run.code, 0, "{}", json_run.stderr);
    assert_eq!(json_run.stdout, "");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap_or_default()).unwrap_or_default();
    assert_eq!(report["summary"]["total"], 6);
    assert_eq!(
        report["summary"]["by_workspace"]["production"]["ASSIGNED"],
        1
    );
    assert_eq!(report["numbers"].as_array().map(Vec::len), Some(6));
}

#[actix_web::test]
async fn list_show_agent_numbers_and_unassigned_answer_from_the_directory() {
    let Seeded { app, pn, .. } = seeded().await;
    let list = app
        .cli(&["numbers", "list", "--workspace", "staging"])
        .await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_eq!(list.lines().len(), 3, "{}", list.stdout);
    let json_list = app.cli(&["numbers", "list", "--json"]).await;
    let parsed: Vec<Value> = serde_json::from_str(&json_list.stdout).unwrap_or_default();
    assert_eq!(parsed.len(), 6);

    let show = app.cli(&["numbers", "show", "+1 415 555 0101"]).await;
    assert_eq!(show.code, 0, "{}", show.stderr);
    let lines = show.lines();
    assert_eq!(lines[0], "+14155550101  +1 415-555-0101  (415) 555-0101");
    assert_eq!(lines[1], "type: local  area code: 415  region: US");
    assert!(
        lines[2].starts_with("live in production: route {\"agent_ids\":["),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        format!(
            "[production] twilio {} AVAILABLE no agent nickname \"Main line\"",
            pn[0]
        )
    );
    assert_eq!(
        lines[4],
        format!(
            "[staging] twilio PN{:032x} AVAILABLE no agent nickname \"Main line (staging)\"",
            11
        )
    );

    let unassigned = app
        .cli(&["numbers", "unassigned", "--workspace", "production"])
        .await;
    assert_eq!(unassigned.lines().len(), 1 + 3, "{}", unassigned.stdout);
    assert!(
        !unassigned.stdout.contains("ASSIGNED "),
        "{}",
        unassigned.stdout
    );

    let bea = app.create_agent("Bea", "production").await;
    let (status, body) = app
        .post_json(
            "/api/directory/assign",
            &json!({ "e164": "+14155550104", "workspace": "production", "agent_id": bea.id }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 409, "0104 is not a production number: {body}");
    let (status, body) = app
        .post_json(
            "/api/directory/assign",
            &json!({ "e164": "+14155550101", "workspace": "production", "agent_id": bea.id }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let theirs = app.cli(&["numbers", "agent-numbers", &bea.id]).await;
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let lines = theirs.lines();
    assert_eq!(lines[0], format!("agent Bea ({}) of production", bea.id));
    assert!(
        lines[2].contains("+14155550101") && lines[2].contains("ASSIGNED"),
        "{}",
        theirs.stdout
    );
    assert_eq!(
        lines[3],
        "route: +14155550101 [production] rings this agent"
    );

    let bad = app.cli(&["numbers", "show", "555-1234"]).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("e164 must be in international form"),
        "{}",
        bad.stderr
    );
}

#[actix_web::test]
async fn export_writes_a_master_file_and_one_per_workspace_without_credentials() {
    let Seeded { app, .. } = seeded().await;
    let dir = tempdir();
    let run = app
        .cli(&["numbers", "export", dir.to_str().unwrap_or_default()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "", "no progress bar when piped");
    assert!(
        run.stdout.starts_with("exported 6 numbers to "),
        "{}",
        run.stdout
    );
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap_or_default();
    let master: Vec<Value> = serde_json::from_str(&read("numbers.json")).unwrap_or_default();
    let production: Vec<Value> =
        serde_json::from_str(&read("workspaces/production.json")).unwrap_or_default();
    let staging: Vec<Value> =
        serde_json::from_str(&read("workspaces/staging.json")).unwrap_or_default();
    assert_eq!((master.len(), production.len(), staging.len()), (6, 4, 2));
    assert_eq!(master[0]["e164"], "+14155550101");
    assert!(
        master[0].get("created_at").is_none(),
        "no timestamps: exports diff cleanly"
    );
    for text in [read("numbers.json"), read("workspaces/production.json")] {
        for secret in [TWILIO_SECRET, RETELL_KEY, ADMIN_TOKEN] {
            assert!(!text.contains(secret), "an export never holds a credential");
        }
    }
    let first = read("numbers.json");
    let again = app
        .cli(&["numbers", "export", dir.to_str().unwrap_or_default()])
        .await;
    assert_eq!(again.code, 0);
    assert_eq!(
        read("numbers.json"),
        first,
        "the same directory exports the same bytes"
    );
}

#[actix_web::test]
async fn migrate_moves_a_share_and_rollback_restores_routes_and_twilio_webhooks_exactly() {
    cut_over_and_back(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn migrate_and_rollback_restore_exactly_on_postgres() {
    cut_over_and_back(TestDb::Postgres).await;
}

async fn cut_over_and_back(db: TestDb) {
    let fake = FakeProvider::start().await;
    let other = "https://other-platform.example/voice";
    for i in 1..=4 {
        fake.add_twilio(i, &format!("+1415555020{i}"), "", other);
    }
    let app = spawn_app_with(db, {
        let accounts = vec![account(&fake, "twilio", "production")];
        move |s| s.numbers.accounts = accounts
    })
    .await;
    assert_eq!(app.cli(&["numbers", "sync"]).await.code, 0);
    let ada = app.create_agent("Ada", "production").await;
    for i in 1..=4 {
        let route = app
            .cli(&[
                "numbers",
                "route",
                &format!("+1415555020{i}"),
                "--to",
                "agents",
                "--agent",
                &ada.id,
            ])
            .await;
        assert_eq!(route.code, 0, "{}", route.stderr);
    }
    let live_before = app.get_json("/api/numbers").await.1;
    let twilio_before = fake.state().twilio.clone();

    let run = app
        .cli(&[
            "numbers",
            "migrate",
            "--to",
            "voicemail",
            "--percent",
            "50",
            "--workspace",
            "production",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert!(
        lines[0].starts_with("migration ") && lines[0].ends_with(": moved 2 numbers of production"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("  +14155550201 from {")
            && lines[1].ends_with("(Twilio webhook re-pointed at switchboard)"),
        "{}",
        run.stdout
    );
    let webhook = format!("{}/twilio/voice", app.address);
    let urls: Vec<Value> = fake
        .state()
        .twilio
        .iter()
        .map(|n| n["voice_url"].clone())
        .collect();
    assert_eq!(
        urls,
        [json!(webhook), json!(webhook), json!(other), json!(other)]
    );
    let (_, moved) = app.get_json("/api/numbers/+14155550201").await;
    assert_eq!(moved["route"], json!({ "kind": "voicemail" }));
    let (_, kept) = app.get_json("/api/numbers/+14155550203").await;
    assert_eq!(kept["route"]["kind"], "agents");
    let again = app
        .cli(&[
            "numbers",
            "migrate",
            "--to",
            "voicemail",
            "--percent",
            "50",
            "--workspace",
            "production",
        ])
        .await;
    assert_eq!(
        again.lines(),
        ["nothing to move: 50% of production is on that route already"]
    );

    let back = app
        .cli(&["numbers", "rollback", "--workspace", "production"])
        .await;
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert!(
        back.lines()[0].ends_with(": restored 2 numbers"),
        "{}",
        back.stdout
    );
    assert_eq!(
        fake.state().twilio.clone(),
        twilio_before,
        "the webhooks point where they did"
    );
    let strip = |v: &Value| -> Vec<(Value, Value, Value)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["e164"].clone(),
                    n["workspace"].clone(),
                    n["route"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        strip(&app.get_json("/api/numbers").await.1),
        strip(&live_before)
    );
    let twice = app
        .cli(&["numbers", "rollback", "--workspace", "production"])
        .await;
    assert_eq!(twice.code, 1);
    assert!(
        twice.stderr.contains("no migration to roll back"),
        "{}",
        twice.stderr
    );

    let ai = app
        .cli(&[
            "numbers",
            "route",
            "+14155550201",
            "--to",
            "ai",
            "--assistant",
            "asst_1",
        ])
        .await;
    assert_eq!(ai.code, 1, "the engine validates the ai route it was sent");
    assert!(ai.stderr.contains("unknown-assistant"), "{}", ai.stderr);
    let (status, assistant) = app
        .post_json(
            "/api/assistants",
            &serde_json::json!({
                "name": "Ada",
                "workspace": "production",
                "instructions": "Answer questions about orders.",
                "voice": "marin",
                "model": "gpt-realtime",
            }),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{assistant}");
    let assistant_id = assistant["id"].as_str().expect("an assistant id");
    let to_ai = app
        .cli(&[
            "numbers",
            "route",
            "+14155550201",
            "--to",
            "ai",
            "--assistant",
            assistant_id,
        ])
        .await;
    assert_eq!(to_ai.code, 0, "{}", to_ai.stderr);
    let (_, live) = app.get_json("/api/numbers/+14155550201").await;
    assert_eq!(
        live["route"],
        serde_json::json!({ "kind": "ai", "assistant_id": assistant_id })
    );
    let no_assistant = app
        .cli(&["numbers", "route", "+14155550201", "--to", "ai"])
        .await;
    assert_eq!(no_assistant.code, 1);
    assert!(
        no_assistant.stderr.contains("--assistant"),
        "{}",
        no_assistant.stderr
    );
}

#[actix_web::test]
async fn the_cli_says_so_when_the_engine_cannot_be_reached_or_refuses_its_token() {
    let app = crate::helpers::spawn_app().await;
    let unreachable = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["numbers", "list"])
            .env("SWITCHBOARD_URL", "http://127.0.0.1:9")
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
    })
    .await
    .expect("thread")
    .expect("runs");
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr)
        .contains("cannot reach the engine at http://127.0.0.1:9"));
    let refused = app.cli(&["numbers", "list", "--token", "wrong"]).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("wrong admin token (unauthorized)"),
        "{}",
        refused.stderr
    );
    let sync = app.cli(&["numbers", "sync", "--provider", "plivo"]).await;
    assert_eq!(sync.code, 1);
    assert!(
        sync.stderr.contains("unknown provider \"plivo\""),
        "{}",
        sync.stderr
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb_export_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// An engine that is not ours (or not honest): its directory names workspaces
/// `../../…` and absolute paths.
async fn hostile_engine(workspaces: Vec<String>) -> String {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let entries: Vec<Value> = workspaces
        .iter()
        .enumerate()
        .map(|(i, w)| {
            json!({
                "id": format!("id{i}"), "e164": format!("+1415555060{i}"), "type": "local",
                "workspace": w, "provider": "twilio", "provider_id": format!("PN{i}"),
                "status": "AVAILABLE", "created_at": 0, "updated_at": 0,
            })
        })
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("bound").port();
    let server = HttpServer::new(move || {
        let entries = entries.clone();
        App::new().route(
            "/api/directory",
            web::get().to(move || {
                let entries = entries.clone();
                async move { HttpResponse::Ok().json(entries) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .expect("listens")
    .run();
    actix_rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[actix_web::test]
async fn export_never_writes_outside_dir_whatever_workspace_names_the_server_sends() {
    let root = tempdir();
    let dir = root.join("export");
    let absolute = root.join("absolute").display().to_string();
    let url = hostile_engine(vec![
        "production".into(),
        "../../escaped".into(),
        absolute,
        "..".into(),
    ])
    .await;
    let dir_arg = dir.display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["numbers", "export", &dir_arg])
            .env("SWITCHBOARD_URL", url)
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
    })
    .await
    .expect("thread")
    .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut outside = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d).expect("readable").flatten() {
            let path = item.path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.starts_with(&dir) {
                outside.push(path);
            }
        }
    }
    assert!(outside.is_empty(), "written outside DIR: {outside:?}");
    let files: Vec<String> = std::fs::read_dir(dir.join("workspaces"))
        .expect("the workspaces folder")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files.contains(&"production.json".to_owned()), "{files:?}");
    let _ = std::fs::remove_dir_all(&root);
}
