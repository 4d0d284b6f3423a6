//! The Twilio Calls client against the fake Twilio (issue 11, item 5's REST
//! side): a create's form is Twilio's, and every failure says whether the call
//! was refused, may exist (unknown) or was never sent; listing follows Twilio's
//! pages; fetching reads the price. And the fake plays a call like Twilio,
//! signed, against the engine's own webhooks.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use switchboard::config::Settings;
use switchboard::providers::twilio::calls::{
    AmdMode, AnsweredBy, CallEvent, CallStatus, CreateCall, DialError, MachineDetection,
};
use switchboard::providers::twilio::TwilioClient;
use time::OffsetDateTime;

use crate::db::TestDb;
use crate::fake_providers::calls::{LikeTwilio, Refusal};
use crate::fake_providers::{FakeProvider, TWILIO_SECRET, TWILIO_SID};
use crate::helpers::{spawn_app_with, CALLER, NUMBER};

const CALLEE: &str = "+14155550123";
const POOL_NUMBER: &str = "+14155550100";
const HOOKS: &str = "https://switchboard.example/twilio/outbound";

fn client_with(base: &str, token: &str, timeout: Duration) -> TwilioClient {
    let mut settings = Settings::defaults();
    settings.twilio.account_sid = TWILIO_SID.into();
    settings.twilio.auth_token = Some(SecretString::from(token));
    settings.twilio.api_base = base.parse().expect("a base URL");
    settings.outbound.dial_timeout = timeout;
    TwilioClient::for_calls(&settings)
        .expect("a client")
        .expect("credentials are set")
}

fn client(fake: &FakeProvider) -> TwilioClient {
    client_with(&fake.base, TWILIO_SECRET, Duration::from_secs(5))
}

fn dial(to: &str) -> CreateCall {
    CreateCall {
        to: to.into(),
        from: POOL_NUMBER.into(),
        url: format!("{HOOKS}/voice?attempt=at_1"),
        status_callback: format!("{HOOKS}/status?attempt=at_1"),
        status_callback_events: CallEvent::ALL.to_vec(),
        machine_detection: Some(MachineDetection {
            mode: AmdMode::DetectMessageEnd,
            async_callback: Some(format!("{HOOKS}/amd?attempt=at_1")),
        }),
        timeout_secs: 30,
        time_limit_secs: 300,
        send_digits: Some("ww1234".into()),
        record: false,
    }
}

/// A create sent to whatever listens on `port` (if anything), which must fail.
async fn dial_port(port: u16) -> DialError {
    client_with(
        &format!("http://127.0.0.1:{port}"),
        TWILIO_SECRET,
        Duration::from_secs(5),
    )
    .create_call(&dial(CALLEE))
    .await
    .expect_err("no call from there")
}

fn pairs(body: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(body).expect("a form body")
}

#[actix_web::test]
async fn a_create_posts_twilios_form_with_each_status_event_and_async_amd() {
    let fake = FakeProvider::start().await;
    let call = client(&fake)
        .create_call(&dial(CALLEE))
        .await
        .expect("Twilio creates the call");
    assert!(call.sid.starts_with("CA"), "{call:?}");
    assert_eq!(
        (call.status, call.to.as_str()),
        (CallStatus::Queued, CALLEE)
    );

    let bodies = fake.state().calls.create_bodies.clone();
    assert_eq!(bodies.len(), 1);
    let expected: Vec<(String, String)> = [
        ("To", CALLEE),
        ("From", POOL_NUMBER),
        ("Method", "POST"),
        (
            "StatusCallback",
            "https://switchboard.example/twilio/outbound/status?attempt=at_1",
        ),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
        ("StatusCallbackMethod", "POST"),
        ("SendDigits", "ww1234"),
        ("Timeout", "30"),
        ("MachineDetection", "DetectMessageEnd"),
        ("AsyncAmd", "true"),
        (
            "AsyncAmdStatusCallback",
            "https://switchboard.example/twilio/outbound/amd?attempt=at_1",
        ),
        ("AsyncAmdStatusCallbackMethod", "POST"),
        ("TimeLimit", "300"),
        (
            "Url",
            "https://switchboard.example/twilio/outbound/voice?attempt=at_1",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(pairs(&bodies[0]), expected);
    assert_eq!(fake.dials(CALLEE), 1);

    // Without machine detection or digits, none of their parameters is sent.
    let plain = CreateCall {
        machine_detection: None,
        send_digits: None,
        record: false,
        ..dial(CALLEE)
    };
    client(&fake).create_call(&plain).await.expect("created");
    let body = pairs(&fake.state().calls.create_bodies[1]);
    let names: Vec<&str> = body.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("MachineDetection")
            || n.starts_with("AsyncAmd")
            || *n == "SendDigits"),
        "{names:?}"
    );
}

#[actix_web::test]
async fn a_wrong_auth_token_is_refused_with_twilios_401_and_nothing_is_created() {
    let fake = FakeProvider::start().await;
    let wrong = client_with(&fake.base, "not-the-token", Duration::from_secs(5));
    match wrong.create_call(&dial(CALLEE)).await {
        Err(DialError::Refused { status, code, .. }) => {
            assert_eq!((status, code), (401, Some(20003)))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(fake.state().calls.calls.is_empty());
}

#[actix_web::test]
async fn a_blocked_destination_is_refused_with_twilios_code_and_message() {
    let fake = FakeProvider::start().await;
    fake.state().calls.refusal = Some(Refusal::blocked_destination());
    match client(&fake).create_call(&dial(CALLEE)).await {
        Err(DialError::Refused {
            status,
            code,
            message,
        }) => {
            assert_eq!((status, code), (400, Some(21216)));
            assert!(message.contains("not allowed to call"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(fake.state().calls.calls.is_empty());
    assert_eq!(fake.dials(CALLEE), 1);
}

#[actix_web::test]
async fn a_number_that_is_not_e164_is_refused_by_the_fake_as_by_twilio() {
    let fake = FakeProvider::start().await;
    let err = client(&fake)
        .create_call(&dial("4155550123"))
        .await
        .expect_err("not E.164");
    assert!(
        matches!(
            err,
            DialError::Refused {
                status: 400,
                code: Some(21211),
                ..
            }
        ),
        "{err:?}"
    );
    let no_url = CreateCall {
        url: String::new(),
        ..dial(CALLEE)
    };
    let err = client(&fake)
        .create_call(&no_url)
        .await
        .expect_err("no Url");
    assert!(
        matches!(
            err,
            DialError::Refused {
                status: 400,
                code: Some(21205),
                ..
            }
        ),
        "{err:?}"
    );
}

#[actix_web::test]
async fn a_5xx_leaves_the_call_unknown() {
    let fake = FakeProvider::start().await;
    fake.state().calls.fail_status = Some(500);
    let err = client(&fake)
        .create_call(&dial(CALLEE))
        .await
        .expect_err("a 500");
    assert!(matches!(err, DialError::Unknown { .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
}

#[actix_web::test]
async fn a_create_that_hangs_past_the_dial_timeout_is_unknown_and_the_call_exists() {
    let fake = FakeProvider::start().await;
    fake.state().calls.hang_for = Some(Duration::from_secs(60));
    let timeout = Duration::from_millis(300);
    let impatient = client_with(&fake.base, TWILIO_SECRET, timeout);
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let started = Instant::now();
    let err = impatient
        .create_call(&dial(CALLEE))
        .await
        .expect_err("no answer in time");
    let waited = started.elapsed();
    assert!(matches!(err, DialError::Unknown { .. }), "{err:?}");
    // Gave up on its own timeout: not before it, and long before the fake answers.
    assert!(waited >= timeout, "{waited:?}");
    assert!(waited < timeout * 20, "{waited:?}");

    // The unknown case: Twilio did create the call, and the list shows it.
    fake.state().calls.hang_for = None;
    let listed = client(&fake)
        .list_calls_to(CALLEE, before)
        .await
        .expect("the list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(fake.dials(CALLEE), 1);
}

#[actix_web::test]
async fn a_refused_connection_is_transport_nothing_was_sent() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("bound").port()
    };
    let err = dial_port(port).await;
    assert!(matches!(err, DialError::Transport { .. }), "{err:?}");
    assert!(!err.to_string().contains(TWILIO_SID), "{err}");
}

#[actix_web::test]
async fn a_connection_dropped_after_the_request_was_sent_is_unknown() {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let port = listener.local_addr().expect("bound").port();
    let read = actix_rt::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("the client connects");
        let mut request = vec![0_u8; 64 * 1024];
        let mut got = 0;
        // Read the whole request (headers and form), then hang up without a word.
        while !String::from_utf8_lossy(&request[..got]).contains("Url=") {
            match socket.read(&mut request[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        String::from_utf8_lossy(&request[..got]).into_owned()
    });
    let err = dial_port(port).await;
    let request = read.await.expect("the server's read");
    assert!(request.starts_with("POST "), "{request}");
    assert!(matches!(err, DialError::Unknown { .. }), "{err:?}");
}

#[actix_web::test]
async fn listing_calls_to_a_number_follows_every_page_and_keeps_the_filters() {
    let fake = FakeProvider::start().await;
    let now = OffsetDateTime::now_utc();
    let hour_ago = now - time::Duration::hours(1);
    let mut recent = Vec::new();
    for _ in 0..5 {
        recent.push(fake.add_call(CALLEE, POOL_NUMBER, hour_ago));
    }
    fake.add_call(CALLEE, POOL_NUMBER, now - time::Duration::days(3));
    fake.add_call("+14155550999", POOL_NUMBER, hour_ago);
    fake.state().calls.page_limit = Some(2);

    let calls = client(&fake)
        .list_calls_to(CALLEE, now - time::Duration::days(1))
        .await
        .expect("every page");
    let mut sids: Vec<String> = calls.iter().map(|c| c.sid.clone()).collect();
    sids.sort();
    recent.sort();
    assert_eq!(sids, recent);

    let gets: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/Calls.json"))
        .collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(
        gets.iter()
            .all(|g| g.contains("To=%2B14155550123") && g.contains("StartTime%3E=")),
        "{gets:?}"
    );
}

#[actix_web::test]
async fn fetching_a_call_reads_its_status_duration_price_and_who_answered() {
    let fake = FakeProvider::start().await;
    let sid = fake.add_call(CALLEE, POOL_NUMBER, OffsetDateTime::now_utc());
    let twilio = client(&fake);
    let queued = twilio.fetch_call(&sid).await.expect("the call");
    assert_eq!(
        (queued.status, queued.price, queued.duration),
        (CallStatus::Queued, None, None)
    );

    fake.complete_call(&sid, 61).await;
    fake.state()
        .calls
        .calls
        .iter_mut()
        .for_each(|c| c.resource["answered_by"] = "human".into());
    let done = twilio.fetch_call(&sid).await.expect("the call");
    assert_eq!(done.status, CallStatus::Completed);
    assert_eq!(done.duration, Some(61));
    assert_eq!(done.price, Some(-0.028));
    assert_eq!(done.price_unit.as_deref(), Some("USD"));
    assert_eq!(done.answered_by, Some(AnsweredBy::Human));

    let err = twilio
        .fetch_call("CA00000000000000000000000000000999")
        .await
        .expect_err("no such call");
    assert!(
        matches!(
            err,
            DialError::Refused {
                status: 404,
                code: Some(20404),
                ..
            }
        ),
        "{err:?}"
    );
}

#[actix_web::test]
async fn the_fake_plays_a_created_call_like_twilio_signed_against_the_engines_webhooks() {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        s.twilio.auth_token = Some(SecretString::from(TWILIO_SECRET));
    })
    .await;
    // The engine does not place calls yet: it takes the fake's TwiML fetch as a
    // call to a number of its pool, which is enough to check every signature.
    app.number_for_everyone().await;
    let fake = FakeProvider::start().await;
    fake.state().calls.like_twilio = Some(LikeTwilio {
        answered_by: "human".into(),
    });
    let request = CreateCall {
        url: format!("{}/twilio/voice", app.address),
        status_callback: format!("{}/twilio/status", app.address),
        machine_detection: Some(MachineDetection {
            mode: AmdMode::DetectMessageEnd,
            async_callback: Some(format!("{}/twilio/status", app.address)),
        }),
        ..dial(NUMBER)
    };
    let request = CreateCall {
        from: CALLER.into(),
        ..request
    };
    let call = client(&fake).create_call(&request).await.expect("created");

    let deliveries = fake.deliveries(5).await;
    let seen: Vec<(String, Option<&str>, Option<&str>)> = deliveries
        .iter()
        .map(|d| {
            let path = d.url.trim_start_matches(&app.address).to_owned();
            (path, d.param("CallStatus"), d.param("AnsweredBy"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("/twilio/status".to_owned(), Some("initiated"), None),
            ("/twilio/status".to_owned(), Some("ringing"), None),
            ("/twilio/voice".to_owned(), Some("in-progress"), None),
            ("/twilio/status".to_owned(), Some("in-progress"), None),
            ("/twilio/status".to_owned(), None, Some("human")),
        ]
    );
    // Every request passed the engine's signature check (unsigned ones are 403).
    for d in &deliveries {
        assert!(d.status != 403 && d.status != 0, "{d:?}");
        assert_eq!(d.param("CallSid"), Some(call.sid.as_str()), "{d:?}");
    }
    // The engine answered the TwiML fetch with its stream, and took the
    // callbacks of the call it now knows.
    assert_eq!(deliveries[2].status, 200, "{:?}", deliveries[2]);
    assert!(
        deliveries[2].body.contains("<Stream"),
        "{}",
        deliveries[2].body
    );
    assert_eq!(deliveries[3].status, 204, "{:?}", deliveries[3]);
    // The same request under a signature made with another token is refused.
    let forged = switchboard::twilio::signature::sign(
        "another-token",
        &deliveries[3].url,
        &deliveries[3].params,
    );
    let answer = reqwest::Client::new()
        .post(&deliveries[3].url)
        .header("X-Twilio-Signature", forged)
        .form(&deliveries[3].params)
        .send()
        .await
        .expect("the engine answers");
    assert_eq!(answer.status(), 403);

    fake.complete_call(&call.sid, 42).await;
    let deliveries = fake.deliveries(6).await;
    let completed = deliveries.last().expect("the completed callback");
    assert_eq!(completed.param("CallStatus"), Some("completed"));
    assert_eq!(completed.param("CallDuration"), Some("42"));
    assert_eq!(completed.status, 204, "{completed:?}");
    let fetched = client(&fake).fetch_call(&call.sid).await.expect("the call");
    assert_eq!(fetched.answered_by, Some(AnsweredBy::Human));
    assert_eq!(fake.dials(NUMBER), 1);
}
