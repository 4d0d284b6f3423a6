//! The phone-number benchmark (issue 5): a sync of 100,000 numbers from a fake
//! Twilio serving pages of 1,000, then `switchboard numbers list` and `report`
//! over them. Ignored by default; run it with
//!
//! ```sh
//! cargo test --release --test api numbers_bench -- --ignored --nocapture
//! ```
//!
//! It prints the times and the peak memory (VmHWM) of the test process (engine,
//! fake provider and database together) and of each CLI run (`/usr/bin/time -v`).
//! Figures are recorded in docs/BENCHMARKS.md; no time limit is asserted here.

use std::time::Instant;

use serde_json::json;
use switchboard::domain::phone::PhoneNumber;

use crate::db::TestDb;
use crate::fake_providers::{account, FakeProvider};
use crate::helpers::{spawn_app_with, ADMIN_TOKEN};

const NUMBERS: usize = 100_000;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The sync, with a client that waits as long as it takes (the harness's gives up
/// after 10 s).
async fn sync_patiently(app: &crate::helpers::TestApp) -> (u16, serde_json::Value) {
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .finish();
    let mut res = client
        .post(format!("{}/api/numbers/sync", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send_json(&json!({}))
        .await
        .expect("the engine answers the sync");
    let body = res.body().limit(1 << 20).await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}

#[actix_web::test]
#[ignore = "benchmark: run with --ignored --nocapture (see the module docs)"]
async fn numbers_bench_sync_list_and_report_of_100_000_numbers() {
    let fake = FakeProvider::start().await;
    let mut n = 0;
    'fill: for area in [415, 628, 650, 510, 408, 212, 646, 917, 312, 617, 202, 303] {
        for exchange in 201..=299 {
            for line in 0..100 {
                let e164 = format!("+1{area}{exchange}{line:04}");
                if PhoneNumber::parse(&e164).is_ok() {
                    fake.add_twilio(n, &e164, "", "");
                    n += 1;
                    if n == NUMBERS {
                        break 'fill;
                    }
                }
            }
        }
    }
    assert_eq!(n, NUMBERS);
    let app = spawn_app_with(TestDb::Sqlite, {
        let accounts = vec![account(&fake, "twilio", "production")];
        move |s| {
            s.numbers.accounts = accounts;
            s.numbers.page_size = 1000;
        }
    })
    .await;
    let before = peak_rss_kib();
    let started = Instant::now();
    let (status, body) = sync_patiently(&app).await;
    let sync = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], NUMBERS);
    println!("sync answer: {}", body["accounts"]);
    println!(
        "sync of {NUMBERS} numbers (100 pages of 1000): {:.2} s; test-process peak RSS {} MiB (before sync {} MiB)",
        sync.as_secs_f64(),
        peak_rss_kib() / 1024,
        before / 1024
    );
    let started = Instant::now();
    let (_, again) = sync_patiently(&app).await;
    println!(
        "second sync, nothing changed ({} added, {} updated, {} released): {:.2} s",
        again["added"],
        again["updated"],
        again["released"],
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .finish();
    let mut res = client
        .get(format!("{}/api/directory", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the engine answers");
    let bytes = res.body().limit(1 << 30).await.expect("body");
    assert_eq!(res.status(), 200);
    println!(
        "GET /api/directory (engine side of list/report): {:.2} s, {} bytes",
        started.elapsed().as_secs_f64(),
        bytes.len()
    );
    for args in [
        vec!["numbers", "list"],
        vec!["numbers", "report", "--format", "table"],
        vec!["numbers", "report", "--format", "json"],
        vec!["numbers", "report", "--format", "csv"],
    ] {
        let url = app.address.clone();
        let shown = args.join(" ");
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("/usr/bin/time")
                .arg("-v")
                .arg(env!("CARGO_BIN_EXE_switchboard"))
                .args(&args)
                .env("SWITCHBOARD_URL", url)
                .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
                .output()
        })
        .await
        .expect("thread")
        .expect("/usr/bin/time runs the CLI");
        let elapsed = started.elapsed();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let rss = stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        println!(
            "`switchboard {shown}`: {:.2} s, {} lines, {} bytes, CLI peak RSS {} KiB",
            elapsed.as_secs_f64(),
            output.stdout.iter().filter(|b| **b == b'\n').count(),
            output.stdout.len(),
            rss
        );
    }
    println!(
        "test-process peak RSS at the end: {} MiB",
        peak_rss_kib() / 1024
    );
}
