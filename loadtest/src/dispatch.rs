//! `--scenario dispatch`: how long the engine takes from a submitted outbound
//! call to Twilio's `Calls.json`. The generator serves a minimal Twilio
//! (`FakeTwilio`: the `IncomingPhoneNumbers` list the engine's number sync
//! reads, giving the workspace one number to dial from, and `Calls.json`,
//! answered `201` at once, each arrival timed), spawns the engine pointed at it
//! (`TWILIO_API_BASE`), syncs the pool, creates `--users` users, then sends
//! `--requests` `POST /api/calls/outbound` at `--concurrency`, each to its own
//! number (`--submit-rate` paces them). It reports, per call, submit sent → `Calls.json` received and `202`
//! received → `Calls.json` received (the dispatcher's own share), and checks
//! that every accepted call was dialed exactly once.
//!
//! The engine's caps are opened for the run (`max_concurrent`, `max_per_user`):
//! the fake sends no status callbacks, so every dialed call stays `dialing` and
//! holds its slot; `--requests` stays below the node's realtime room
//! (`openai.max_connections × (1 − reserve_inbound)`, 8,000 by default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::json;

use super::admin::wait_healthy;
use super::controller::{check_alive, progress, Target};
use super::engine::EngineProcess;
use super::report::EngineInfo;
use super::submit::{create_users, request_body, LatencySummary};
use super::{Histogram, LoadtestArgs, HTTP_TIMEOUT, MAX_NOTES};

/// The fake account (any `AC` + 32 hex digits).
pub(super) const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
/// The workspace's one Twilio number.
const POOL_NUMBER: &str = "+14152019999";

/// The engine's settings for this scenario: the submit scenario's plan, calling
/// hours open all day, and caps that a run never reaches.
pub(super) const ENGINE_TOML: &str = "\
[outbound]
calling_hours_start = \"00:00\"
calling_hours_end = \"23:59\"
burst_size = 1000000
burst_per_second = 1000000
max_concurrent = 1000000
max_per_user = 1000000

[plans.loadtest]
calls_per_hour = 10000
calls_per_day = 100000
monthly_budget_usd = 1000000.0
max_call_minutes = 1
";

/// What the fake Twilio saw: each `Calls.json` by `To`, when it arrived.
#[derive(Default)]
struct Seen {
    dials: HashMap<String, Vec<Instant>>,
}

type Shared = web::Data<Arc<Mutex<Seen>>>;

/// The fake Twilio: a server on a free loopback port.
struct FakeTwilio {
    base: String,
    seen: Arc<Mutex<Seen>>,
    server: actix_web::dev::ServerHandle,
}

impl FakeTwilio {
    fn start() -> anyhow::Result<FakeTwilio> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let data = web::Data::new(Arc::clone(&seen));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("a free port")?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json",
                    web::get().to(numbers),
                )
                .route(
                    "/2010-04-01/Accounts/{sid}/Calls.json",
                    web::post().to(create),
                )
                .route("/2010-04-01/Accounts/{sid}/Calls.json", web::get().to(list))
        })
        .workers(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(FakeTwilio {
            base: format!("http://127.0.0.1:{port}"),
            seen,
            server: handle,
        })
    }
}

/// One page with the pool's number (Twilio's IncomingPhoneNumbers list).
async fn numbers() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "incoming_phone_numbers": [{
            "sid": "PN00000000000000000000000000000001",
            "phone_number": POOL_NUMBER,
            "friendly_name": "loadtest",
            "voice_url": "",
        }],
        "next_page_uri": null,
    }))
}

/// `Calls.json`: timed, answered `201` with a `queued` call.
async fn create(form: web::Form<Vec<(String, String)>>, seen: Shared) -> HttpResponse {
    let arrived = Instant::now();
    let form = form.into_inner();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (to, from) = (field("To"), field("From"));
    let n = {
        let mut seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dials = seen.dials.entry(to.clone()).or_default();
        dials.push(arrived);
        seen.dials.values().map(Vec::len).sum::<usize>()
    };
    HttpResponse::Created().json(json!({
        "sid": format!("CA{n:032x}"),
        "status": "queued",
        "to": to,
        "from": from,
    }))
}

/// No call is ever listed (reconciliation would find none).
async fn list() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "calls": [], "next_page_uri": null }))
}

#[derive(Debug, Serialize)]
pub(super) struct DispatchReport {
    pub(super) requests: usize,
    pub(super) accepted: usize,
    pub(super) concurrency: usize,
    /// Submits per second asked for (0: unpaced).
    pub(super) submit_rate: f64,
    pub(super) users: usize,
    pub(super) seconds: f64,
    /// Microseconds, submit sent → `Calls.json` received.
    pub(super) submit_to_dial_us: LatencySummary,
    /// Microseconds, `202` received → `Calls.json` received (negative ones, a
    /// dial before the answer reached the generator, count as 0).
    pub(super) accepted_to_dial_us: LatencySummary,
    /// Accepted calls never dialed within the wait.
    pub(super) not_dialed: usize,
    /// Numbers dialed more than once (must be 0).
    pub(super) dialed_twice: usize,
    pub(super) notes: Vec<String>,
    pub(super) engine: EngineInfo,
}

pub(super) fn check_args(args: &LoadtestArgs) -> anyhow::Result<()> {
    super::submit::check_args(args)?;
    anyhow::ensure!(
        args.requests <= 8_000,
        "--requests must stay within the node's outbound room (8000 by default): every \
         dialed call stays dialing for the run"
    );
    anyhow::ensure!(
        args.submit_rate >= 0.0 && args.submit_rate.is_finite(),
        "--submit-rate must be ≥ 0"
    );
    anyhow::ensure!(
        args.requests <= 10_000,
        "--requests must be at most 10000 (one callee number each)"
    );
    Ok(())
}

/// Starts the fake, then the engine against it; drives and reports.
pub(super) async fn run(args: &LoadtestArgs) -> anyhow::Result<DispatchReport> {
    anyhow::ensure!(
        args.engine_url.is_none(),
        "--scenario dispatch spawns its engine (it points the engine at its fake Twilio)"
    );
    let fake = FakeTwilio::start()?;
    let env = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
        ("TWILIO_API_BASE", fake.base.clone()),
    ];
    let (mut process, target) = EngineProcess::spawn(args, &env, ENGINE_TOML)?;
    let outcome = drive(args, &target, &fake, &mut process).await;
    let engine = process.finish();
    fake.server.stop(false).await;
    let mut report = outcome.with_context(|| {
        format!(
            "the dispatch load test stopped; engine {} (log {})\n  {}",
            engine.exit.as_deref().unwrap_or("left running"),
            engine.log.as_deref().unwrap_or("-"),
            engine.log_problems.join("\n  ")
        )
    })?;
    report.engine = engine;
    Ok(report)
}

/// What one submit saw: its callee, when it was sent, when `202` came back.
struct Submitted {
    to: String,
    sent: Instant,
    accepted: Option<Instant>,
    note: Option<String>,
}

async fn drive(
    args: &LoadtestArgs,
    target: &Target,
    fake: &FakeTwilio,
    process: &mut EngineProcess,
) -> anyhow::Result<DispatchReport> {
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(args.concurrency))
        .timeout(HTTP_TIMEOUT)
        .finish();
    wait_healthy(&client, target, Some(&mut *process)).await?;
    let mut res = client
        .post(format!("{}/api/numbers/sync", target.base))
        .bearer_auth(&target.admin_token)
        .send_json(&json!({ "provider": "twilio" }))
        .await
        .map_err(|e| anyhow::anyhow!("POST /api/numbers/sync: {e}"))?;
    let body = res.body().await?;
    anyhow::ensure!(
        res.status().is_success(),
        "POST /api/numbers/sync: {} {}",
        res.status(),
        String::from_utf8_lossy(&body)
    );
    let run = super::random_hex(4)?;
    let keys = create_users(&client, target, args.users, &run).await?;
    progress(format_args!(
        "{} users and a pool number; submitting {} calls at concurrency {}",
        keys.len(),
        args.requests,
        args.concurrency
    ));
    let url = format!("{}/api/calls/outbound", target.base);
    let started = Instant::now();
    let submitted: Vec<Submitted> = futures_util::stream::iter(0..args.requests)
        .map(|i| {
            let (client, url, key) = (&client, &url, &keys[i % keys.len()]);
            async move {
                if args.submit_rate > 0.0 {
                    let at = started + Duration::from_secs_f64(i as f64 / args.submit_rate);
                    actix_rt::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                }
                let body = request_body(i);
                let to = body["to"].as_str().unwrap_or_default().to_owned();
                let sent = Instant::now();
                let (accepted, note) =
                    match client.post(url).bearer_auth(key).send_json(&body).await {
                        Ok(mut res) => {
                            let answer = res.body().await;
                            let at = Instant::now();
                            match (res.status().as_u16(), answer) {
                                (202, Ok(_)) => (Some(at), None),
                                (status, Ok(body)) => (
                                    None,
                                    Some(format!(
                                        "{status} {}",
                                        String::from_utf8_lossy(&body)
                                            .chars()
                                            .take(200)
                                            .collect::<String>()
                                    )),
                                ),
                                (_, Err(err)) => (None, Some(format!("reading the answer: {err}"))),
                            }
                        }
                        Err(err) => (None, Some(err.to_string())),
                    };
                Submitted {
                    to,
                    sent,
                    accepted,
                    note,
                }
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    // Every accepted call should be dialed within moments; wait up to 10 s.
    let accepted = submitted.iter().filter(|s| s.accepted.is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dialed = {
            let seen = fake
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.dials.len()
        };
        if dialed >= accepted || Instant::now() > deadline {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    // Late second dials would show within a few dispatcher rounds.
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    check_alive(Some(process))?;
    let seen = fake
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(summarise(args, &submitted, &seen, elapsed))
}

fn summarise(
    args: &LoadtestArgs,
    submitted: &[Submitted],
    seen: &Seen,
    elapsed: Duration,
) -> DispatchReport {
    let mut from_submit = Histogram::default();
    let mut from_accept = Histogram::default();
    let mut notes = Vec::new();
    let mut not_dialed = 0;
    for s in submitted {
        if let Some(note) = &s.note {
            if notes.len() < MAX_NOTES && !notes.contains(note) {
                notes.push(note.clone());
            }
        }
        let Some(accepted) = s.accepted else {
            continue;
        };
        match seen.dials.get(&s.to).and_then(|d| d.first()) {
            Some(dialed) => {
                from_submit.record(dialed.saturating_duration_since(s.sent).as_micros() as u64);
                from_accept.record(dialed.saturating_duration_since(accepted).as_micros() as u64);
            }
            None => not_dialed += 1,
        }
    }
    DispatchReport {
        requests: submitted.len(),
        accepted: submitted.iter().filter(|s| s.accepted.is_some()).count(),
        concurrency: args.concurrency,
        submit_rate: args.submit_rate,
        users: args.users,
        seconds: elapsed.as_secs_f64(),
        submit_to_dial_us: LatencySummary::of(&from_submit),
        accepted_to_dial_us: LatencySummary::of(&from_accept),
        not_dialed,
        dialed_twice: seen.dials.values().filter(|d| d.len() > 1).count(),
        notes,
        engine: EngineInfo::external(None, false),
    }
}

pub(super) fn render_text(report: &DispatchReport) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let line = |name: &str, l: &LatencySummary| {
        format!(
            "{name} ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max)
        )
    };
    let pace = if report.submit_rate > 0.0 {
        format!(", paced at {}/s", report.submit_rate)
    } else {
        String::new()
    };
    let mut out = format!(
        "dispatch: {} submits ({} accepted) from {} users at concurrency {}{pace} in {:.2} s\n",
        report.requests, report.accepted, report.users, report.concurrency, report.seconds
    );
    out.push_str(&line(
        "submit sent -> Calls.json",
        &report.submit_to_dial_us,
    ));
    out.push_str(&line(
        "202 received -> Calls.json",
        &report.accepted_to_dial_us,
    ));
    out.push_str(&format!(
        "not dialed: {}  dialed twice: {}\n",
        report.not_dialed, report.dialed_twice
    ));
    let e = &report.engine;
    out.push_str(&format!(
        "engine: {} (log {}: {} warnings, {} errors)\n",
        e.exit.as_deref().unwrap_or(e.mode),
        e.log.as_deref().unwrap_or("-"),
        e.log_warnings,
        e.log_errors
    ));
    for note in &report.notes {
        out.push_str(&format!("  {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::Scenario;

    #[test]
    fn the_dispatch_options_parse_and_the_report_counts_double_dials() {
        let args = LoadtestArgs::try_parse_from([
            "x",
            "--scenario",
            "dispatch",
            "--requests",
            "100",
            "--concurrency",
            "8",
        ])
        .expect("parses");
        assert_eq!(args.scenario, Scenario::Dispatch);
        assert!(check_args(&args).is_ok());
        let too_many = LoadtestArgs::try_parse_from([
            "x",
            "--scenario",
            "dispatch",
            "--requests",
            "9000",
            "--users",
            "10",
        ])
        .expect("parses");
        assert!(check_args(&too_many).is_err());

        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let submitted = vec![
            Submitted {
                to: "+1".into(),
                sent: at(0),
                accepted: Some(at(2)),
                note: None,
            },
            Submitted {
                to: "+2".into(),
                sent: at(0),
                accepted: Some(at(3)),
                note: None,
            },
            Submitted {
                to: "+3".into(),
                sent: at(0),
                accepted: None,
                note: Some("429 rate-limited".into()),
            },
        ];
        let mut seen = Seen::default();
        seen.dials.insert("+1".into(), vec![at(10), at(20)]);
        let report = summarise(&args, &submitted, &seen, Duration::from_secs(1));
        assert_eq!(
            (report.accepted, report.not_dialed, report.dialed_twice),
            (2, 1, 1)
        );
        assert!((9_900..=10_100).contains(&report.submit_to_dial_us.max));
        assert!((7_900..=8_100).contains(&report.accepted_to_dial_us.max));
        let text = render_text(&report);
        assert!(text.contains("not dialed: 1  dialed twice: 1"), "{text}");
        assert!(text.contains("429 rate-limited"), "{text}");
    }
}
