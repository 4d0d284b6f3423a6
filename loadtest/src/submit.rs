//! `--scenario submit`: outbound submit throughput. It creates `--users` users on a
//! plan whose quotas and budget never refuse during the run (the spawned engine's
//! `--config` adds `[plans.loadtest]` and opens the burst limiter and the calling
//! hours), then sends `--requests` `POST /api/calls/outbound` at `--concurrency`
//! over a client pool of exactly that many connections, round-robin over the users.
//! It reports requests per second, latency percentiles, the answers by status and
//! the engine's CPU over the timed window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::json;

use super::admin::wait_healthy;
use super::controller::{check_alive, progress, Target};
use super::engine::EngineProcess;
use super::procfs::{clock_ticks_per_second, cpu_ticks};
use super::report::EngineInfo;
use super::{Histogram, LoadtestArgs, HTTP_TIMEOUT, MAX_NOTES};

/// The spawned engine's settings for this scenario: a plan no run exhausts, a burst
/// limiter that never refuses, and calling hours open all day (the engine's clock
/// is the wall clock). A call still to be dialed at 23:59 callee time is deferred.
pub(super) const ENGINE_TOML: &str = "\
[outbound]
calling_hours_start = \"00:00\"
calling_hours_end = \"23:59\"
burst_size = 1000000
burst_per_second = 1000000

[plans.loadtest]
calls_per_hour = 10000
calls_per_day = 100000
monthly_budget_usd = 1000000.0
max_call_minutes = 1
";

/// The callees: +1 415 201 0000 onward (valid San Francisco numbers by
/// libphonenumber's metadata, unlike the fictional 555-01xx block).
fn callee(i: usize) -> String {
    format!("+1415201{:04}", i % 10_000)
}

pub(super) fn request_body(i: usize) -> serde_json::Value {
    json!({
        "to": callee(i),
        "contact_name": "Load Test",
        "contact_company": "Acme Plumbing",
        "purpose": "existing_client",
        "objective": "Book a visit for Tuesday morning, any time before noon.",
        "attestation": {
            "legitimate_purpose": true,
            "not_dnc": true,
            "reasonable_basis": true,
            "understands_recording": true,
            "accepts_responsibility": true,
            "signature_full_name": "Load Test",
        },
    })
}

/// One request: its latency in microseconds and the status and body answered, or
/// the transport error.
type Answer = (u64, Result<(u16, String), String>);

#[derive(Debug, Serialize)]
pub(super) struct SubmitReport {
    pub(super) requests: usize,
    pub(super) concurrency: usize,
    pub(super) users: usize,
    pub(super) seconds: f64,
    pub(super) requests_per_second: f64,
    /// Microseconds, request sent → answer body read.
    pub(super) latency_us: LatencySummary,
    /// `202`, `4xx`, `5xx` and `transport` (no answer).
    pub(super) statuses: BTreeMap<String, u64>,
    /// A few refusals and errors, verbatim.
    pub(super) notes: Vec<String>,
    /// The engine's CPU over the timed window, in cores (1.0 = one core busy).
    pub(super) engine_cpu_cores: Option<f64>,
    pub(super) engine: EngineInfo,
}

#[derive(Debug, Serialize)]
pub(super) struct LatencySummary {
    pub(super) p50: u64,
    pub(super) p90: u64,
    pub(super) p99: u64,
    pub(super) max: u64,
}

impl LatencySummary {
    pub(super) fn of(histogram: &Histogram) -> LatencySummary {
        LatencySummary {
            p50: histogram.percentile(0.50),
            p90: histogram.percentile(0.90),
            p99: histogram.percentile(0.99),
            max: histogram.max(),
        }
    }
}

pub(super) fn check_args(args: &LoadtestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=1_000_000).contains(&args.requests),
        "--requests must be between 1 and 1000000"
    );
    anyhow::ensure!(
        (1..=4096).contains(&args.concurrency),
        "--concurrency must be between 1 and 4096"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.users),
        "--users must be between 1 and 10000"
    );
    anyhow::ensure!(
        args.requests.div_ceil(args.users) <= 10_000,
        "--requests per user must stay within the loadtest plan's 10000 calls per hour: \
         raise --users"
    );
    Ok(())
}

/// Sets the floor up and drives the requests; the caller adds the engine's info.
pub(super) async fn drive(
    args: &LoadtestArgs,
    target: &Target,
    pid: Option<u32>,
    mut process: Option<&mut EngineProcess>,
) -> anyhow::Result<SubmitReport> {
    // The pool's limit is the concurrency: every request in flight has its own
    // connection, none waits for one, and no more are opened.
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(args.concurrency))
        .timeout(HTTP_TIMEOUT)
        .finish();
    wait_healthy(&client, target, process.as_deref_mut()).await?;
    let run = random_suffix()?;
    let keys = create_users(&client, target, args.users, &run).await?;
    progress(format_args!(
        "{} users created; sending {} requests at concurrency {}",
        keys.len(),
        args.requests,
        args.concurrency
    ));
    let url = format!("{}/api/calls/outbound", target.base);
    let cpu_before = pid.and_then(|pid| cpu_ticks(&pid.to_string()));
    let started = Instant::now();
    let answers: Vec<Answer> = futures_util::stream::iter(0..args.requests)
        .map(|i| {
            let (client, url, key) = (&client, &url, &keys[i % keys.len()]);
            async move {
                let sent = Instant::now();
                let answer = match client
                    .post(url)
                    .bearer_auth(key)
                    .send_json(&request_body(i))
                    .await
                {
                    Ok(mut res) => match res.body().await {
                        Ok(body) => Ok((
                            res.status().as_u16(),
                            String::from_utf8_lossy(&body).into_owned(),
                        )),
                        Err(err) => Err(format!("reading the answer: {err}")),
                    },
                    Err(err) => Err(err.to_string()),
                };
                (sent.elapsed().as_micros() as u64, answer)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let cpu_after = pid.and_then(|pid| cpu_ticks(&pid.to_string()));
    check_alive(process)?;
    let engine_cpu_cores = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(
            after.since(before).total() as f64
                / clock_ticks_per_second()
                / elapsed.as_secs_f64().max(1e-9),
        ),
        _ => None,
    };
    Ok(summarise(args, &answers, elapsed, engine_cpu_cores))
}

fn summarise(
    args: &LoadtestArgs,
    answers: &[Answer],
    elapsed: Duration,
    engine_cpu_cores: Option<f64>,
) -> SubmitReport {
    let mut histogram = Histogram::default();
    let mut statuses = BTreeMap::<String, u64>::new();
    let mut notes = Vec::new();
    for (micros, answer) in answers {
        histogram.record(*micros);
        let (class, note) = match answer {
            Ok((202, _)) => ("202".to_owned(), None),
            Ok((status, body)) => (
                format!("{}xx", status / 100),
                Some(format!(
                    "{status} {}",
                    body.chars().take(200).collect::<String>()
                )),
            ),
            Err(err) => ("transport".to_owned(), Some(err.clone())),
        };
        *statuses.entry(class).or_default() += 1;
        if let Some(note) = note {
            if notes.len() < MAX_NOTES && !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    SubmitReport {
        requests: answers.len(),
        concurrency: args.concurrency,
        users: args.users,
        seconds: elapsed.as_secs_f64(),
        requests_per_second: answers.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_us: LatencySummary::of(&histogram),
        statuses,
        notes,
        engine_cpu_cores,
        engine: EngineInfo::external(None, false),
    }
}

fn random_suffix() -> anyhow::Result<String> {
    super::random_hex(4)
}

/// `n` users on the `loadtest` plan; returns their API keys.
pub(super) async fn create_users(
    client: &awc::Client,
    target: &Target,
    n: usize,
    run: &str,
) -> anyhow::Result<Vec<String>> {
    let url = format!("{}/api/users", target.base);
    let keys: Vec<anyhow::Result<String>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let url = &url;
            async move {
                let body = json!({
                    "email": format!("loadtest-{run}-{i}@example.com"),
                    "name": format!("Load Test {i}"),
                    "plan": "loadtest",
                });
                let mut res = client
                    .post(url)
                    .bearer_auth(&target.admin_token)
                    .send_json(&body)
                    .await
                    .map_err(|e| anyhow::anyhow!("POST /api/users: {e}"))?;
                let bytes = res.body().await?;
                anyhow::ensure!(
                    res.status().as_u16() == 201,
                    "POST /api/users: {} {}",
                    res.status(),
                    String::from_utf8_lossy(&bytes)
                );
                let value: serde_json::Value = serde_json::from_slice(&bytes)?;
                value["api_key"]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("no api_key in {value}"))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    keys.into_iter().collect()
}

pub(super) fn render_text(report: &SubmitReport) -> String {
    let mut out = String::new();
    let ms = |us: u64| us as f64 / 1000.0;
    let l = &report.latency_us;
    out.push_str(&format!(
        "submit: {} requests from {} users at concurrency {} in {:.2} s: {:.0} requests/s\n",
        report.requests,
        report.users,
        report.concurrency,
        report.seconds,
        report.requests_per_second
    ));
    out.push_str(&format!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.max)
    ));
    let statuses: Vec<String> = report
        .statuses
        .iter()
        .map(|(class, n)| format!("{class}: {n}"))
        .collect();
    out.push_str(&format!("answers: {}\n", statuses.join(", ")));
    match report.engine_cpu_cores {
        Some(cores) => out.push_str(&format!("engine CPU: {:.0} % of a core\n", cores * 100.0)),
        None => out.push_str("engine CPU: unknown (no pid)\n"),
    }
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
    fn the_submit_options_parse_and_are_checked() {
        let args = LoadtestArgs::try_parse_from([
            "switchboard-loadtest",
            "--scenario",
            "submit",
            "--requests",
            "5000",
            "--concurrency",
            "64",
            "--engine-database-url",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ])
        .expect("parses");
        assert_eq!(args.scenario, Scenario::Submit);
        assert_eq!((args.requests, args.concurrency), (5000, 64));
        assert!(check_args(&args).is_ok());
        let defaults =
            LoadtestArgs::try_parse_from(["switchboard-loadtest", "--scenario", "submit"])
                .expect("parses");
        assert_eq!((defaults.requests, defaults.concurrency), (5000, 64));
        let too_many = LoadtestArgs::try_parse_from([
            "x",
            "--scenario",
            "submit",
            "--requests",
            "20001",
            "--users",
            "2",
        ])
        .expect("parses");
        assert!(
            check_args(&too_many).is_err(),
            "one user over its hourly plan"
        );
    }

    #[test]
    fn the_report_counts_statuses_and_renders_percentiles() {
        let args = LoadtestArgs::try_parse_from(["x", "--scenario", "submit"]).expect("parses");
        let answers = vec![
            (1_000, Ok((202, "{}".to_owned()))),
            (2_000, Ok((202, "{}".to_owned()))),
            (3_000, Ok((429, "{\"code\":\"rate-limited\"}".to_owned()))),
            (40_000, Err("timeout".to_owned())),
        ];
        let report = summarise(&args, &answers, Duration::from_secs(2), Some(0.5));
        assert_eq!(report.statuses["202"], 2);
        assert_eq!(report.statuses["4xx"], 1);
        assert_eq!(report.statuses["transport"], 1);
        assert_eq!(report.requests_per_second, 2.0);
        assert_eq!(report.latency_us.max, 40_000);
        let text = render_text(&report);
        assert!(
            text.contains("4 requests from 100 users at concurrency 64"),
            "{text}"
        );
        assert!(text.contains("max 40.00"), "{text}");
        assert!(text.contains("202: 2, 4xx: 1, transport: 1"), "{text}");
        assert!(text.contains("engine CPU: 50 % of a core"), "{text}");
        assert!(text.contains("429 {\"code\":\"rate-limited\"}"), "{text}");
    }
}
