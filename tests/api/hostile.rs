//! Hostile clients of the Twilio webhooks: unsigned or falsely signed POSTs whose
//! bodies are huge or trickle in. Until a request's `X-Twilio-Signature` has been
//! checked the sender is anyone (Twilio: "validate that incoming requests came from
//! Twilio", <https://www.twilio.com/docs/usage/security#validating-requests>), so
//! the engine must not spend memory or time on it: no signature → 403 on the
//! headers alone; otherwise a capped body (Twilio's forms are a few KiB), read
//! within a deadline, by a bounded number of requests at once.
//!
//! These tests speak raw HTTP/1.1 over TCP, as an attacker would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::db::{fresh_database_url, TestDb};
use crate::engine_process::{config_file, serve_command, EngineProcess};
use crate::helpers::{new_call_sid, spawn_app, spawn_app_with, PATIENCE};

/// Well-formed (base64 of 20 bytes) but not the signature of anything.
const BOGUS_SIGNATURE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The head of a form POST to `path` declaring `length` body bytes.
fn head(port: u16, path: &str, length: usize, signature: Option<&str>) -> String {
    let signature = signature
        .map(|s| format!("X-Twilio-Signature: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {length}\r\n{signature}\r\n"
    )
}

/// Opens a connection and sends `head` and the first `sent` bytes of the body.
async fn start_request(port: u16, head: &str, sent: &[u8]) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(sent).await?;
    Ok(stream)
}

/// The status code of the response on `stream`; `None` if the engine closed the
/// connection (or reset it) without one, or nothing came within `wait`.
async fn response_status(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    let mut buf = [0u8; 12];
    let mut got = 0;
    let read = async {
        while got < buf.len() {
            match stream.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    };
    tokio::time::timeout(wait, read).await.ok()?;
    std::str::from_utf8(&buf[..got])
        .ok()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()
}

/// The 99th percentile of `n` sequential `/healthz` round trips to the engine
/// at `url`, on one kept-alive connection.
async fn healthz_p99(url: &str, n: usize) -> Duration {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let res = client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .expect("the engine answers");
        let status = res.status();
        let _ = res.bytes().await;
        times.push(started.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    times[(n * 99).div_ceil(100) - 1]
}

/// What the engine did with the requests of one attack.
#[derive(Default)]
struct Tally {
    /// Requests the engine answered 403, 503 and 408.
    forbidden: AtomicUsize,
    busy: AtomicUsize,
    timed_out: AtomicUsize,
    /// Connections the engine closed (or reset) without a readable answer.
    closed: AtomicUsize,
    other: AtomicUsize,
    /// Requests whose head and first body bytes went out.
    started: AtomicUsize,
}

impl Tally {
    fn count(&self, status: Option<u16>) {
        let counter = match status {
            Some(403) => &self.forbidden,
            Some(503) => &self.busy,
            Some(408) => &self.timed_out,
            None => &self.closed,
            Some(_) => &self.other,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn answered(&self) -> usize {
        [
            &self.forbidden,
            &self.busy,
            &self.timed_out,
            &self.closed,
            &self.other,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }
}

/// One slow client: the head, `upfront` body bytes at once, then a byte a second
/// (never the whole body) until the engine answers or hangs up. One task, one
/// small buffer: the attack's own share of this process's memory stays small.
fn slow_client(port: u16, head: String, upfront: Arc<Vec<u8>>, tally: Arc<Tally>) {
    actix_rt::spawn(async move {
        let started = start_request(port, &head, &upfront).await;
        tally.started.fetch_add(1, Ordering::SeqCst);
        drop(head);
        let Ok(mut stream) = started else {
            tally.count(None);
            return;
        };
        let mut buf = [0u8; 12];
        let mut got = 0;
        let mut trickle = tokio::time::interval(Duration::from_secs(1));
        trickle.tick().await;
        while got < buf.len() {
            tokio::select! {
                read = stream.read(&mut buf[got..]) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                },
                _ = trickle.tick() => {
                    // The engine may have hung up already; the read says so next.
                    let _ = stream.write_all(b"a").await;
                }
            }
        }
        let status = std::str::from_utf8(&buf[..got])
            .ok()
            .and_then(|s| s.strip_prefix("HTTP/1.1 "))
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok());
        tally.count(status);
    });
}

/// Starts `unsigned` slow unsigned voice webhooks (200 KB declared, 16 KiB sent at
/// once) and `signed` falsely signed status callbacks (8,000 bytes declared, under
/// the cap; 1 KiB sent), all trickling.
fn attack(port: u16, unsigned: usize, signed: usize) -> (Arc<Tally>, Arc<Tally>) {
    let unsigned_tally = Arc::new(Tally::default());
    let upfront = Arc::new(vec![b'a'; 16 * 1024]);
    for _ in 0..unsigned {
        let head = head(port, "/twilio/voice", 200_000, None);
        slow_client(port, head, upfront.clone(), unsigned_tally.clone());
    }
    let signed_tally = Arc::new(Tally::default());
    let small = Arc::new(vec![b'a'; 1024]);
    for _ in 0..signed {
        let head = head(port, "/twilio/status", 8000, Some(BOGUS_SIGNATURE));
        slow_client(port, head, small.clone(), signed_tally.clone());
    }
    (unsigned_tally, signed_tally)
}

/// Waits until `done` holds, or `deadline` passes.
async fn until(deadline: Duration, done: impl Fn() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while !done() {
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The figure: 1,000 slow unsigned bodies leave RSS within 20 MB of idle
/// and `/healthz` fast. The engine runs as its own process, so that RSS is the
/// engine's alone (the test binary's other tests allocate in parallel), measured
/// before and during the attack. The `/healthz` p99 under attack is compared with
/// the p99 of the same engine idle, measured in the same run: at most ten times it,
/// or it plus 100 ms, whichever is larger — a wall-clock 10 ms would flake on a
/// shared 2-core machine, while an engine whose workers are tied up by the attack
/// (seconds per request) still fails. 200 falsely signed slow bodies join in,
/// beyond the bound on bodies read at once.
#[actix_web::test]
async fn a_thousand_slow_unsigned_bodies_cost_little_memory_and_leave_healthz_fast() {
    // 1,200 client sockets and as many on the engine's side, in one process.
    let limit = rlimit::increase_nofile_limit(8192).expect("reading RLIMIT_NOFILE");
    assert!(
        limit >= 3000,
        "this test needs ~2,500 file descriptors; the hard limit allows {limit}"
    );
    let database_url = fresh_database_url(TestDb::Sqlite).await;
    let config = config_file(&database_url, "");
    let (command, port) = serve_command(&database_url, &config);
    let engine = EngineProcess::start(command, port, config.with_extension("log")).await;
    // Warm up: connections, pages, caches, and the allocator's arenas (which keep
    // what a burst of connections freed), with the same burst of unsigned requests:
    // "idle" is an engine that has seen traffic, and what the attack below adds is
    // what it holds, not the allocator's high-water mark.
    healthz_p99(&engine.url, 100).await;
    let (warm_up, _) = attack(port, 1000, 0);
    // (An engine that holds slow bodies never answers these: the checks below fail.)
    until(PATIENCE, || warm_up.answered() == 1000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle_p99 = healthz_p99(&engine.url, 300).await;
    let idle_rss = engine.rss_bytes();

    let (unsigned, signed) = attack(port, 1000, 200);
    let all_started = until(Duration::from_secs(60), || {
        unsigned.started.load(Ordering::SeqCst) == 1000
            && signed.started.load(Ordering::SeqCst) == 200
    })
    .await;
    assert!(all_started, "the attack could not open its connections");
    // Every unsigned request is refused on its headers; the signed ones beyond the
    // bound on concurrent reads are turned away.
    until(PATIENCE, || {
        unsigned.answered() == 1000 && signed.busy.load(Ordering::SeqCst) >= 200 - 64
    })
    .await;

    let attack_p99 = healthz_p99(&engine.url, 300).await;
    let attack_rss = engine.rss_bytes();
    let growth = attack_rss.saturating_sub(idle_rss);
    eprintln!(
        "idle: rss {} MB, healthz p99 {idle_p99:?}; attack: rss {} MB (+{} KB), healthz p99 {attack_p99:?}; \
         unsigned: {} forbidden, {} closed, {} other; signed: {} busy",
        idle_rss >> 20,
        attack_rss >> 20,
        growth >> 10,
        unsigned.forbidden.load(Ordering::SeqCst),
        unsigned.closed.load(Ordering::SeqCst),
        unsigned.other.load(Ordering::SeqCst),
        signed.busy.load(Ordering::SeqCst),
    );
    assert!(
        growth < 20 << 20,
        "RSS grew by {} MB under the attack",
        growth >> 20
    );
    assert_eq!(
        unsigned.answered(),
        1000,
        "every unsigned request is answered (403) or hung up on at once, none left reading"
    );
    assert_eq!(unsigned.other.load(Ordering::SeqCst), 0);
    assert!(
        signed.busy.load(Ordering::SeqCst) >= 200 - 64,
        "at most 64 bodies are read at once; the rest get 503"
    );
    let bound = (idle_p99 * 10).max(idle_p99 + Duration::from_millis(100));
    assert!(
        attack_p99 <= bound,
        "healthz p99 {attack_p99:?} under attack, {idle_p99:?} idle"
    );
    // The signed ones being read time out (5 s by default): nothing stays open.
    let all_done = until(PATIENCE, || signed.answered() == 200).await;
    assert!(all_done, "the slow signed bodies were never timed out");
    assert_eq!(
        signed.busy.load(Ordering::SeqCst) + signed.timed_out.load(Ordering::SeqCst),
        200
    );
    drop(engine);
    let _ = std::fs::remove_file(config.with_extension("log"));
    let _ = std::fs::remove_file(&config);
}

#[actix_web::test]
async fn an_unsigned_webhook_is_refused_before_its_body_is_read() {
    let app = spawn_app().await;
    for path in ["/twilio/voice", "/twilio/status"] {
        // The head promises a body that never comes.
        let mut stream = start_request(app.port, &head(app.port, path, 1000, None), b"")
            .await
            .expect("connects");
        assert_eq!(
            response_status(&mut stream, PATIENCE).await,
            Some(403),
            "{path}"
        );
    }
    // A malformed signature header is refused on the headers too.
    let head = head(app.port, "/twilio/voice", 1000, Some("not base64!"));
    let mut stream = start_request(app.port, &head, b"").await.expect("connects");
    assert_eq!(response_status(&mut stream, PATIENCE).await, Some(403));
}

#[actix_web::test]
async fn a_webhook_body_larger_than_twilio_sends_is_refused() {
    let app = spawn_app_with(TestDb::Sqlite, |s| s.twilio.webhook_max_body_bytes = 4096).await;
    // Declared too large: refused without reading it.
    let head_big = head(app.port, "/twilio/voice", 4097, Some(BOGUS_SIGNATURE));
    let mut stream = start_request(app.port, &head_big, b"")
        .await
        .expect("connects");
    assert_eq!(response_status(&mut stream, PATIENCE).await, Some(413));
    // Chunked, so no length is declared: refused once past the cap.
    let chunked = format!(
        "POST /twilio/voice HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nX-Twilio-Signature: {BOGUS_SIGNATURE}\r\n\r\n",
        app.port
    );
    let chunk = format!("1000\r\n{}\r\n", "a".repeat(4096));
    let mut stream = start_request(app.port, &chunked, chunk.as_bytes())
        .await
        .expect("connects");
    let _ = stream.write_all(chunk.as_bytes()).await;
    assert_eq!(response_status(&mut stream, PATIENCE).await, Some(413));
    // A 200 KB From (the case) cannot come in either.
    let sid = new_call_sid();
    let from = "1".repeat(200_000);
    let (status, _) = app
        .twilio_post(
            "/twilio/voice",
            &[("CallSid", &sid), ("From", &from), ("To", "+14155550100")],
        )
        .await;
    assert_eq!(status, 413);
}

#[actix_web::test]
async fn a_webhook_body_that_trickles_in_is_timed_out() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.twilio.webhook_body_timeout = Duration::from_secs_f64(0.3);
    })
    .await;
    let head = head(app.port, "/twilio/voice", 500, Some(BOGUS_SIGNATURE));
    let mut stream = start_request(app.port, &head, b"CallSid=CA")
        .await
        .expect("connects");
    assert_eq!(response_status(&mut stream, PATIENCE).await, Some(408));
}

#[actix_web::test]
async fn bodies_read_at_once_are_bounded_and_the_rest_are_told_to_retry() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.twilio.webhook_max_concurrent_reads = 2;
        s.twilio.webhook_body_timeout = Duration::from_secs_f64(1.0);
    })
    .await;
    let head = head(app.port, "/twilio/status", 500, Some(BOGUS_SIGNATURE));
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            start_request(app.port, &head, b"CallSid=")
                .await
                .expect("connects"),
        );
    }
    // Give the engine the two slow heads first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = start_request(app.port, &head, b"CallSid=")
        .await
        .expect("connects");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(PATIENCE, third.read(&mut buf))
        .await
        .expect("an answer at once")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    // When the slow two are timed out, a real Twilio request is read again.
    for stream in &mut held {
        assert_eq!(response_status(stream, PATIENCE).await, Some(408));
    }
    app.number_for_everyone().await;
    let (status, twiml) = app
        .voice_webhook(&new_call_sid(), "+14155559876", "+14155550100")
        .await;
    assert_eq!(status, 200, "{twiml}");
}
