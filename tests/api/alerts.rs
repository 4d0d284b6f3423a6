//! Alerts (issue 14, item 6): a rule crossing its threshold sends a signed
//! `firing` event to every webhook and a `resolved` one when it comes back;
//! `/metrics` shows `switchboard_alert_firing`; a hanging webhook is retried
//! with backoff then given up while the engine and the other webhooks go on;
//! e-mail reaches a local SMTP sink; bad alert configuration is refused.
//!
//! The rules are driven for real: a pool number rested in the engine's own
//! database (`number_rested`), and PostgreSQL refusing the test database's
//! connections (`database_unreachable`, `crate::db::set_postgres_reachable`).
//! The webhook receiver is `outbound_notify`'s (a small actix server).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use switchboard::config::{AlertWebhook, Settings, SmtpTls};
use switchboard::store::Store;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::db::{fresh_database_url, set_postgres_reachable, TestDb};
use crate::fake_providers::calls::Refusal;
use crate::helpers::{spawn_app_with, spill_path_for, TestApp, CALLER, NUMBER, PATIENCE};
use crate::outbound_claims::outbound_request;
use crate::outbound_dispatch::{setup, submit_ok, wait_for_status, CALLEE};
use crate::outbound_notify::{signature_is_valid, Answer, Received, Receiver};

const SECRET: &str = "alert-webhook-secret";
const POOL_NUMBER: &str = "+14155550111";

/// Every rule off but `only`, which fires and resolves at its first
/// observation; judged every 50 ms; events to `hooks`.
fn alerting(s: &mut Settings, only: &str, hooks: &[&Receiver]) {
    let alerts = &mut s.alerts;
    alerts.evaluate_interval = Duration::from_millis(50);
    alerts.webhook_timeout = Duration::from_secs(2);
    alerts.webhook_retry_base = Duration::from_millis(50);
    alerts.webhook_retry_max = Duration::from_millis(200);
    let rules = &mut alerts.rules;
    for (name, rule) in [
        ("ai_failure_rate", &mut rules.ai_failure_rate),
        ("provider_errors", &mut rules.provider_errors),
        ("journal_backlog", &mut rules.journal_backlog),
        ("number_rested", &mut rules.number_rested),
        ("database_unreachable", &mut rules.database_unreachable),
        ("recordings_disk", &mut rules.recordings_disk),
    ] {
        rule.enabled = name == only;
        rule.for_ = Duration::ZERO;
        rule.clear = Duration::ZERO;
    }
    alerts.webhooks = hooks
        .iter()
        .map(|hook| webhook(&hook.url, SECRET))
        .collect();
}

fn webhook(url: &str, secret: &str) -> AlertWebhook {
    let toml = format!("url = {url:?}\nsecret = {secret:?}");
    toml::from_str(&toml).expect("a webhook")
}

async fn store_of(app: &TestApp) -> Store {
    Store::connect(&app.database_url, "alerts-test")
        .await
        .expect("the store")
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Rests the pool number for an hour (`rest = true`) or ends its rest.
async fn rest(store: &Store, rest: bool) {
    let now = now_ms();
    let until = if rest { now + 3_600_000 } else { now - 1 };
    store
        .rest_number(POOL_NUMBER, "test", &json!({}), now, until)
        .await
        .expect("the rest is stored");
}

fn body(received: &Received) -> Value {
    serde_json::from_slice(&received.body).expect("a JSON body")
}

/// The bodies `receiver` got, once it got `n`.
async fn events(receiver: &Receiver, n: usize) -> Vec<Value> {
    receiver.wait_for(n).await.iter().map(body).collect()
}

async fn wait_for_metric(app: &TestApp, name: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = app.metric(name).await;
        if now == value {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed {now}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const RESTED_FIRING: &str = "switchboard_alert_firing{alert=\"number_rested\"}";

async fn a_rested_number_fires_a_signed_alert_and_its_end_resolves_it(db: TestDb) {
    let receiver = Receiver::start(&[]);
    let app = spawn_app_with(db, |s| {
        s.node_id = "node-a".into();
        alerting(s, "number_rested", &[&receiver]);
    })
    .await;
    let store = store_of(&app).await;
    assert_eq!(app.metric(RESTED_FIRING).await, 0.0);

    rest(&store, true).await;
    let got = receiver.wait_for(1).await;
    let firing = &got[0];
    assert!(signature_is_valid(SECRET, firing), "{firing:?}");
    assert!(!signature_is_valid("another secret", firing));
    assert_eq!(firing.content_type.as_deref(), Some("application/json"));
    let event = body(firing);
    assert_eq!(firing.event_id.as_deref(), event["event_id"].as_str());
    assert_eq!(event["alert"], "number_rested");
    assert_eq!(event["status"], "firing");
    assert_eq!(event["severity"], "warning");
    assert_eq!(event["value"], 1.0);
    assert_eq!(event["threshold"], 0.0);
    assert_eq!(event["node"], "node-a");
    assert!(event["summary"]
        .as_str()
        .is_some_and(|s| s.contains("resting")));
    assert!(event["started_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(event.get("resolved_at").is_none(), "{event}");
    wait_for_metric(&app, RESTED_FIRING, 1.0).await;
    assert_eq!(
        app.metric("switchboard_alert_value{alert=\"number_rested\"}")
            .await,
        1.0
    );

    rest(&store, false).await;
    let got = receiver.wait_for(2).await;
    let resolved = &got[1];
    assert!(signature_is_valid(SECRET, resolved), "{resolved:?}");
    let event2 = body(resolved);
    assert_eq!(event2["alert"], "number_rested");
    assert_eq!(event2["status"], "resolved");
    assert_eq!(event2["value"], 0.0);
    assert_eq!(event2["started_at"], event["started_at"]);
    assert!(event2["resolved_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_ne!(event2["event_id"], event["event_id"]);
    wait_for_metric(&app, RESTED_FIRING, 0.0).await;
    wait_for_metric(&app, "switchboard_alert_notifications_delivered_total", 2.0).await;
    // Nothing changes after: no flapping, no repeat.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2);
}

#[actix_web::test]
async fn a_rested_number_fires_a_signed_alert_and_its_end_resolves_it_on_sqlite() {
    a_rested_number_fires_a_signed_alert_and_its_end_resolves_it(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_rested_number_fires_a_signed_alert_and_its_end_resolves_it_on_postgres() {
    a_rested_number_fires_a_signed_alert_and_its_end_resolves_it(TestDb::Postgres).await;
}

#[actix_web::test]
async fn a_database_outage_fires_database_unreachable_and_its_return_resolves_it() {
    let receiver = Receiver::start(&[]);
    let app = spawn_app_with(TestDb::Postgres, |s| {
        alerting(s, "database_unreachable", &[&receiver]);
    })
    .await;
    let firing = "switchboard_alert_firing{alert=\"database_unreachable\"}";
    assert_eq!(app.metric(firing).await, 0.0);

    set_postgres_reachable(&app.database_url, false).await;
    let got = events(&receiver, 1).await;
    set_postgres_reachable(&app.database_url, true).await;
    assert_eq!(got[0]["alert"], "database_unreachable");
    assert_eq!(got[0]["status"], "firing");
    assert_eq!(got[0]["severity"], "critical");
    assert_eq!(got[0]["summary"], "the database does not answer");

    let got = events(&receiver, 2).await;
    assert_eq!(got[1]["alert"], "database_unreachable");
    assert_eq!(got[1]["status"], "resolved");
    assert!(receiver
        .received()
        .iter()
        .all(|r| signature_is_valid(SECRET, r)));
    wait_for_metric(&app, firing, 0.0).await;
}

/// Assistant sessions that cannot start (nothing listens where the realtime
/// API should be) push the failure rate over its threshold; once they leave
/// the window the rate is judged 0 again and the alert resolves.
#[actix_web::test]
async fn assistants_failing_to_start_fire_the_failure_rate_alert_until_they_leave_the_window() {
    let receiver = Receiver::start(&[]);
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        // Nothing listens on port 1.
        s.openai.realtime_url = "ws://127.0.0.1:1/v1/realtime".parse().expect("a URL");
        s.openai.api_key = Some(secrecy::SecretString::from("sk-test"));
        s.summary.provider = switchboard::config::SummaryProvider::Off;
        alerting(s, "ai_failure_rate", &[&receiver]);
        let rule = &mut s.alerts.rules.ai_failure_rate;
        rule.threshold = 50.0;
        rule.min_sessions = 2;
        // Long enough for both calls to fail inside it on a busy machine.
        rule.window = Duration::from_secs(3);
    })
    .await;
    let assistant = json!({
        "name": "Ada",
        "workspace": "production",
        "instructions": "You are Ada.",
        "voice": "marin",
        "model": "gpt-realtime",
        "greeting": "Hello.",
        "tools": [],
        "on_failure": { "kind": "voicemail" },
    });
    let (status, created) = app
        .post_json(
            "/api/assistants",
            &assistant,
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    app.create_number(
        NUMBER,
        "production",
        json!({ "kind": "ai", "assistant_id": created["id"] }),
    )
    .await;

    for _ in 0..2 {
        let call = app.ring_in(CALLER, NUMBER).await;
        let mut twilio = app.open_stream(&call).await;
        // The voicemail prompt: the assistant failed and the caller moved on.
        twilio.wait_for("mark").await;
        twilio.stop();
    }
    let got = events(&receiver, 1).await;
    assert_eq!(got[0]["alert"], "ai_failure_rate");
    assert_eq!(got[0]["status"], "firing");
    assert_eq!(got[0]["severity"], "critical");
    assert_eq!(got[0]["value"], 100.0);
    assert_eq!(app.metric("switchboard_ai_start_failures_total").await, 2.0);

    let got = events(&receiver, 2).await;
    assert_eq!(got[1]["status"], "resolved");
    assert_eq!(got[1]["value"], 0.0);
}

/// Twilio refusing a dial (its 401 for a wrong account: the fake follows
/// Twilio's error body, `fake_providers::calls`) is a provider error; once it
/// leaves the window the alert resolves.
#[actix_web::test]
async fn a_provider_refusing_a_dial_fires_the_provider_errors_alert_until_it_leaves_the_window() {
    let receiver = Receiver::start(&[]);
    let hook = receiver.clone();
    let s = setup(TestDb::Sqlite, move |fake, settings| {
        fake.state().calls.refusal = Some(Refusal {
            status: 401,
            code: 20003,
            message: "Authenticate".into(),
        });
        alerting(settings, "provider_errors", &[&hook]);
        let rule = &mut settings.alerts.rules.provider_errors;
        rule.threshold = 0.0;
        rule.window = Duration::from_secs(2);
    })
    .await;
    let id = submit_ok(&s.app, &s.user, &outbound_request(CALLEE)).await;
    wait_for_status(&s.app, &id, "failed").await;

    let got = events(&receiver, 1).await;
    assert_eq!(got[0]["alert"], "provider_errors");
    assert_eq!(got[0]["status"], "firing");
    assert_eq!(got[0]["value"], 1.0);
    assert_eq!(s.app.metric("switchboard_provider_errors_total").await, 1.0);
    let got = events(&receiver, 2).await;
    assert_eq!(got[1]["status"], "resolved");
    assert_eq!(got[1]["value"], 0.0);
}

/// Under a threshold of 100 % free, any disk is short of space: the rule
/// fires with the free share it measured.
#[actix_web::test]
async fn a_recordings_disk_under_its_free_space_threshold_fires() {
    let receiver = Receiver::start(&[]);
    let dir = std::env::temp_dir().display().to_string();
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        alerting(s, "recordings_disk", &[&receiver]);
        s.alerts.rules.recordings_disk.threshold = 100.0;
        s.alerts.rules.recordings_disk.path = dir.clone();
    })
    .await;
    let got = events(&receiver, 1).await;
    assert_eq!(got[0]["alert"], "recordings_disk");
    assert_eq!(got[0]["status"], "firing");
    let free = got[0]["value"].as_f64().expect("a share");
    assert!((0.0..100.0).contains(&free), "{free}");
    assert!(
        got[0]["summary"].as_str().is_some_and(|s| s.contains(&dir)),
        "{}",
        got[0]
    );
    wait_for_metric(
        &app,
        "switchboard_alert_firing{alert=\"recordings_disk\"}",
        1.0,
    )
    .await;
}

/// A status callback Twilio sends during an outage is taken into the journal
/// (protocol §5): the backlog crosses its threshold, and drains once the
/// database is back.
#[actix_web::test]
async fn a_journal_backlog_over_its_threshold_fires_and_resolves_once_the_journal_drains() {
    let receiver = Receiver::start(&[]);
    let app = spawn_app_with(TestDb::Postgres, |s| {
        alerting(s, "journal_backlog", &[&receiver]);
        let rule = &mut s.alerts.rules.journal_backlog;
        rule.threshold = 0.0;
        // A healthy journal holds a record for the moment of its write; only
        // a backlog that lasts (the outage's) fires.
        rule.for_ = Duration::from_secs(1);
    })
    .await;
    app.create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let mut twilio = app.open_stream(&call).await;
    twilio.wait_for("mark").await;
    twilio.stop();
    app.wait_for_outcome(&call.call_id).await;

    set_postgres_reachable(&app.database_url, false).await;
    assert_eq!(app.status_callback(&call.call_sid, "completed").await, 204);
    let got = events(&receiver, 1).await;
    set_postgres_reachable(&app.database_url, true).await;
    assert_eq!(got[0]["alert"], "journal_backlog");
    assert_eq!(got[0]["status"], "firing");
    assert!(
        got[0]["value"].as_f64().is_some_and(|v| v >= 1.0),
        "{}",
        got[0]
    );

    let got = events(&receiver, 2).await;
    assert_eq!(got[1]["alert"], "journal_backlog");
    assert_eq!(got[1]["status"], "resolved");
    assert_eq!(got[1]["value"], 0.0);
    wait_for_metric(
        &app,
        "switchboard_alert_firing{alert=\"journal_backlog\"}",
        0.0,
    )
    .await;
}

#[actix_web::test]
async fn a_hanging_webhook_is_retried_with_backoff_then_given_up_while_the_engine_and_other_webhooks_go_on(
) {
    let hanging = Receiver::start(&[Answer::Hang; 16]);
    let good = Receiver::start(&[]);
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        alerting(s, "number_rested", &[&hanging, &good]);
        s.alerts.webhook_timeout = Duration::from_millis(300);
        s.alerts.webhook_max_attempts = 3;
    })
    .await;
    let store = store_of(&app).await;

    rest(&store, true).await;
    // The good webhook hears of it, its own queue untouched by the hanging one.
    let got = events(&good, 1).await;
    assert_eq!(got[0]["status"], "firing");
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, 200);
    wait_for_metric(&app, RESTED_FIRING, 1.0).await;

    // Three attempts of the same event, then given up.
    let tries = hanging.wait_for(3).await;
    assert!(tries.iter().all(|t| signature_is_valid(SECRET, t)));
    assert!(
        tries.iter().all(|t| t.event_id == tries[0].event_id),
        "every attempt is the same event"
    );
    wait_for_metric(&app, "switchboard_alert_notifications_given_up_total", 1.0).await;
    assert_eq!(hanging.received().len(), 3, "no attempt after the last");

    // The next event goes out to both as usual.
    rest(&store, false).await;
    let got = events(&good, 2).await;
    assert_eq!(got[1]["status"], "resolved");
    let tries = hanging.wait_for(4).await;
    assert_eq!(body(&tries[3])["status"], "resolved");
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, 200);
}

/// An alert that fired just before a shutdown still reaches its webhook: the
/// engine stops while the event waits for its retry, and the retry goes out
/// (within `alerts.shutdown_grace_secs`) before the engine is gone.
#[actix_web::test]
async fn an_alert_event_waiting_for_its_retry_at_shutdown_is_still_delivered() {
    let receiver = Receiver::start(&[Answer::Status(503)]);
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        alerting(s, "number_rested", &[&receiver]);
        s.alerts.webhook_retry_base = Duration::from_millis(300);
        s.alerts.webhook_retry_max = Duration::from_millis(300);
    })
    .await;
    let store = store_of(&app).await;
    rest(&store, true).await;
    let refused = receiver.wait_for(1).await;
    assert_eq!(body(&refused[0])["status"], "firing");

    // The first try was refused: the event waits for its retry as the engine stops.
    app.server.stop(true).await;
    app.stopped.await.expect("the engine stops");
    let tries = receiver.received();
    assert_eq!(
        tries.len(),
        2,
        "the retry went out before the engine was gone"
    );
    assert_eq!(tries[1].event_id, tries[0].event_id);
    assert!(signature_is_valid(SECRET, &tries[1]));
    store.close().await;
}

/// A local SMTP sink: enough of RFC 5321 for one client at a time (220, EHLO
/// → 250, MAIL / RCPT → 250, DATA → 354, the message up to "." → 250, QUIT →
/// 221); keeps each message's envelope and text.
#[derive(Clone, Default)]
struct SmtpSink {
    messages: Arc<Mutex<Vec<Mail>>>,
}

#[derive(Clone, Debug, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

impl SmtpSink {
    async fn start() -> (SmtpSink, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        let sink = SmtpSink::default();
        let messages = Arc::clone(&sink.messages);
        actix_rt::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let messages = Arc::clone(&messages);
                actix_rt::spawn(async move {
                    let _ = serve_smtp(socket, messages).await;
                });
            }
        });
        (sink, port)
    }

    async fn wait_for(&self, n: usize) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let messages = self.messages.lock().expect("sink").clone();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} e-mails, got {}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve_smtp(
    socket: tokio::net::TcpStream,
    messages: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut mail = Mail::default();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line["MAIL FROM:".len()..].trim().to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line["RCPT TO:".len()..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 end with .\r\n").await?;
            while let Some(data) = lines.next_line().await? {
                if data == "." {
                    break;
                }
                mail.data.push_str(data.strip_prefix('.').unwrap_or(&data));
                mail.data.push('\n');
            }
            messages
                .lock()
                .expect("sink")
                .push(std::mem::take(&mut mail));
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

#[actix_web::test]
async fn an_alert_is_e_mailed_when_smtp_is_configured() {
    let (sink, port) = SmtpSink::start().await;
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.node_id = "node-mail".into();
        alerting(s, "number_rested", &[]);
        let smtp = &mut s.alerts.smtp;
        smtp.host = "127.0.0.1".into();
        smtp.port = port;
        smtp.tls = SmtpTls::None;
        smtp.from = "switchboard <alerts@switchboard.test>".into();
        smtp.to = vec!["ops@example.com".into(), "oncall@example.com".into()];
    })
    .await;
    let store = store_of(&app).await;

    rest(&store, true).await;
    let mails = sink.wait_for(1).await;
    let mail = &mails[0];
    assert_eq!(mail.from, "<alerts@switchboard.test>");
    assert_eq!(mail.to, ["<ops@example.com>", "<oncall@example.com>"]);
    assert!(
        mail.data
            .lines()
            .any(|l| l == "Subject: [switchboard] FIRING warning number_rested on node-mail"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("Alert: number_rested"), "{}", mail.data);
    assert!(mail.data.contains("Status: firing"), "{}", mail.data);

    rest(&store, false).await;
    let mails = sink.wait_for(2).await;
    assert!(
        mails[1].data.contains("RESOLVED warning number_rested"),
        "{}",
        mails[1].data
    );
    assert!(mails[1].data.contains("Resolved at: "), "{}", mails[1].data);
    wait_for_metric(&app, "switchboard_alert_notifications_delivered_total", 2.0).await;
}

fn refusal(overlay: &str, env: &[(&str, &str)]) -> String {
    let table: toml::Table = overlay.parse().expect("TOML");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    match Settings::from_sources(Some(table), |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }) {
        Ok(_) => panic!("{overlay} was accepted"),
        Err(error) => format!("{error:#}"),
    }
}

#[actix_web::test]
async fn bad_alert_configuration_is_refused_with_the_key_named() {
    let unknown = refusal("[alerts.rules.cpu_hot]\nthreshold = 1\n", &[]);
    assert!(
        unknown.contains("alerts.rules") && unknown.contains("cpu_hot"),
        "{unknown}"
    );
    let negative = refusal("[alerts.rules.journal_backlog]\nthreshold = -5\n", &[]);
    assert!(
        negative.contains("alerts.rules.journal_backlog.threshold must be a number ≥ 0"),
        "{negative}"
    );
    let percent = refusal("[alerts.rules.recordings_disk]\nthreshold = 150\n", &[]);
    assert!(
        percent.contains("alerts.rules.recordings_disk.threshold is a percentage"),
        "{percent}"
    );
    let url = refusal(
        "[[alerts.webhooks]]\nurl = \"ftp://alerts.example.com\"\nsecret = \"s\"\n",
        &[],
    );
    assert!(
        url.contains("alerts.webhooks") && url.contains("must start with"),
        "{url}"
    );
    let no_secret = refusal(
        "[[alerts.webhooks]]\nurl = \"https://alerts.example.com\"\nsecret_env = \"ALERT_SECRET\"\n",
        &[],
    );
    assert!(no_secret.contains("has no secret"), "{no_secret}");
    let typo = refusal("[alerts.rules.journal_backlog]\nthreshhold = 5\n", &[]);
    assert!(typo.contains("threshhold"), "{typo}");
    let smtp = refusal("[alerts.smtp]\nhost = \"mail.example.com\"\n", &[]);
    assert!(smtp.contains("alerts.smtp.to"), "{smtp}");
    let bad_from = refusal(
        "[alerts.smtp]\nhost = \"mail.example.com\"\nfrom = \"not an address\"\nto = [\"ops@example.com\"]\n",
        &[],
    );
    assert!(bad_from.contains("alerts.smtp.from"), "{bad_from}");

    // The secret from the environment, and a valid SMTP section, load.
    let table: toml::Table = "[[alerts.webhooks]]\nurl = \"https://alerts.example.com/hook\"\n\
         secret_env = \"ALERT_SECRET\"\n[alerts.smtp]\nhost = \"mail.example.com\"\n\
         to = [\"ops@example.com\"]\n"
        .parse()
        .expect("TOML");
    let settings = Settings::from_sources(Some(table), |name| match name {
        "ALERT_SECRET" => Some("s3cret".to_owned()),
        "SWITCHBOARD_ALERTS_SMTP_USERNAME" => Some("mailer".to_owned()),
        _ => None,
    })
    .expect("a good alert configuration loads");
    assert!(settings.alerts.notifies());
    assert!(settings.alerts.webhooks[0].secret.is_some());
    assert_eq!(settings.alerts.smtp.username.as_deref(), Some("mailer"));
}

#[actix_web::test]
async fn a_recordings_directory_that_cannot_be_measured_stops_the_engine_at_start() {
    let mut settings = Settings::defaults();
    settings.bind = "127.0.0.1:0".into();
    settings.database_url = fresh_database_url(TestDb::Sqlite).await;
    settings.journal.spill_path = spill_path_for(&settings.database_url);
    settings.alerts.rules.recordings_disk.path = "/no/such/recordings/dir".into();
    let error = match switchboard::startup::Application::build(settings).await {
        Ok(_) => panic!("the engine started"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("alerts.rules.recordings_disk.path \"/no/such/recordings/dir\""),
        "{error}"
    );
}
