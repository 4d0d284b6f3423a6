//! The missed-call text (issue 14): a caller who hung up while ringing, or left a
//! voicemail, is texted from the number they called, through the fake Twilio's
//! Messages resource (`fake_providers::messages`); at most once per caller,
//! number and day; never to a number on the do-not-call list; the text and its
//! delivery status in the call's trail.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};
use switchboard::config::Settings;
use switchboard::domain::text_template::TextTemplate;
use switchboard::twilio::signature::sign;

use crate::db::TestDb;
use crate::fake_providers::messages::Fault;
use crate::fake_providers::{FakeProvider, TWILIO_SECRET, TWILIO_SID};
use crate::helpers::{
    frame, new_call_sid, spawn_app_with, stream_parameter, TestApp, TwilioStream, ADMIN_TOKEN,
    CALLER, NUMBER,
};

/// The number's own text (every other number has the default template).
const TEMPLATE: &str = "Sorry we missed you, {caller}. Call {number} back any time.";
const OTHER_CALLER: &str = "+14155559877";

/// The engine on the fake Twilio's account; with `texts`, the missed-call text on
/// and `NUMBER`'s template set.
fn on_fake_twilio(fake: &FakeProvider, texts: bool) -> impl FnOnce(&mut Settings) {
    let base = fake.base.clone();
    move |s| {
        s.twilio.account_sid = TWILIO_SID.into();
        s.twilio.auth_token = Some(SecretString::from(TWILIO_SECRET));
        s.twilio.api_base = base.parse().expect("the fake's URL");
        let t = &mut s.missed_call_text;
        t.enabled = texts;
        t.numbers.insert(
            NUMBER.into(),
            TextTemplate::parse(TEMPLATE).expect("a valid template"),
        );
        t.retry_backoff = Duration::from_millis(20);
    }
}

async fn texting_app(db: TestDb, fake: &FakeProvider) -> TestApp {
    spawn_app_with(db, on_fake_twilio(fake, true)).await
}

/// Twilio announces a call from `from` to `to` (signed with the fake account's
/// token) and opens its Media Stream; the engine's call id and the stream.
async fn ring_in(app: &TestApp, from: &str, to: &str) -> (String, TwilioStream) {
    let call_sid = new_call_sid();
    let params: Vec<(String, String)> = [
        ("AccountSid", TWILIO_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", from),
        ("To", to),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let signature = sign(
        TWILIO_SECRET,
        &format!("{}/twilio/voice", app.address),
        &params,
    );
    let borrowed: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, twiml) = app
        .form_post("/twilio/voice", &borrowed, Some(&signature))
        .await;
    assert_eq!(status, 200, "{twiml}");
    let call_id = stream_parameter(&twiml, "call_id").expect("a call id in the TwiML");
    let stream = TwilioStream::open(
        &app.stream_url(),
        TWILIO_SECRET,
        &call_sid,
        json!({ "call_id": call_id }),
    )
    .await
    .expect("the engine accepts the stream");
    (call_id, stream)
}

/// `NUMBER` goes straight to voicemail.
async fn voicemail_number(app: &TestApp) {
    app.create_number(NUMBER, "production", json!({ "kind": "voicemail" }))
        .await;
}

/// A caller who hangs up during the voicemail prompt, before saying anything:
/// the call ends `abandoned`.
async fn hang_up_early(app: &TestApp, from: &str) -> String {
    let (call_id, mut twilio) = ring_in(app, from, NUMBER).await;
    twilio.stop();
    let record = app.wait_for_outcome(&call_id).await;
    assert_eq!(record["outcome"], "abandoned");
    call_id
}

fn events_of<'a>(call: &'a Value, kind: &str) -> Vec<&'a Value> {
    call["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}

/// The call's `missed_call_text` event, once it is in the trail.
async fn text_event(app: &TestApp, call_id: &str) -> Value {
    let call = app
        .wait_for_call(call_id, |c| !events_of(c, "missed_call_text").is_empty())
        .await;
    let events = events_of(&call, "missed_call_text");
    assert_eq!(events.len(), 1, "one text event: {call}");
    let last = call["events"]
        .as_array()
        .and_then(|e| e.iter().position(|e| e["kind"] == "missed_call_text"))
        .expect("the event");
    let ended = call["events"]
        .as_array()
        .and_then(|e| e.iter().position(|e| e["kind"] == "ended"))
        .expect("ended");
    assert!(last > ended, "the text comes after the call's end: {call}");
    events[0]["detail"].clone()
}

#[actix_web::test]
async fn the_missed_call_text_is_off_by_default_and_sends_nothing() {
    let fake = FakeProvider::start().await;
    let app = spawn_app_with(TestDb::Sqlite, on_fake_twilio(&fake, false)).await;
    voicemail_number(&app).await;
    let first = hang_up_early(&app, CALLER).await;
    // The next call's whole record is written after the first call's end: had a
    // text been started, its request would have had time to reach the fake.
    let second = hang_up_early(&app, OTHER_CALLER).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.message_creates(), 0);
    for id in [first, second] {
        let call = app.call(&id).await;
        assert!(events_of(&call, "missed_call_text").is_empty(), "{call}");
    }
    assert!(!Settings::defaults().missed_call_text.enabled);
}

#[actix_web::test]
async fn a_caller_who_hangs_up_while_ringing_gets_the_numbers_text_from_the_number_called() {
    let fake = FakeProvider::start().await;
    let app = texting_app(TestDb::Sqlite, &fake).await;
    let agent = app.create_agent("a", "production").await;
    app.number_for_everyone().await;
    let mut phone = app.available_softphone(&agent).await;
    let (call_id, mut twilio) = ring_in(&app, CALLER, NUMBER).await;
    phone.expect_ring(&call_id).await;
    twilio.stop();
    let cancel = phone.expect("ring_cancel").await;
    assert_eq!(cancel["reason"], "caller_hangup");

    let text = text_event(&app, &call_id).await;
    let body = format!("Sorry we missed you, {CALLER}. Call {NUMBER} back any time.");
    assert_eq!(text["status"], "queued", "{text}");
    assert_eq!(text["to"], CALLER);
    assert_eq!(text["from"], NUMBER);
    assert_eq!(text["body"], body);
    assert_eq!(text["attempts"], 1);
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(text["sid"], messages[0]["sid"]);
    assert!(messages[0]["sid"]
        .as_str()
        .is_some_and(|s| s.starts_with("SM")));
    assert_eq!(messages[0]["to"], CALLER);
    assert_eq!(messages[0]["from"], NUMBER);
    assert_eq!(messages[0]["body"], body);
    let creates = fake.state().messages.creates.clone();
    let callback = creates[0]
        .iter()
        .find(|(k, _)| k == "StatusCallback")
        .map(|(_, v)| v.clone())
        .expect("a StatusCallback");
    assert_eq!(
        callback,
        format!(
            "{}/twilio/missed-call-text/status?call={call_id}",
            app.address
        )
    );
}

#[actix_web::test]
async fn a_caller_who_leaves_a_voicemail_gets_a_text() {
    let fake = FakeProvider::start().await;
    let app = texting_app(TestDb::Sqlite, &fake).await;
    voicemail_number(&app).await;
    let (call_id, mut twilio) = ring_in(&app, CALLER, NUMBER).await;
    let mark = twilio.wait_for("mark").await;
    assert_eq!(mark["mark"]["name"], "voicemail-prompt");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for seq in 0..10 {
        twilio.send_media(&frame(0x33, seq));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    twilio.stop();
    let record = app.wait_for_outcome(&call_id).await;
    assert_eq!(record["outcome"], "voicemail");

    let text = text_event(&app, &call_id).await;
    assert_eq!(text["status"], "queued", "{text}");
    assert_eq!(text["to"], CALLER);
    assert_eq!(fake.messages().len(), 1);
}

#[actix_web::test]
async fn a_second_missed_call_the_same_day_sends_nothing_more() {
    let fake = FakeProvider::start().await;
    let app = texting_app(TestDb::Sqlite, &fake).await;
    voicemail_number(&app).await;
    let first = hang_up_early(&app, CALLER).await;
    assert_eq!(text_event(&app, &first).await["status"], "queued");
    let second = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &second).await;
    assert_eq!(
        (&text["status"], &text["reason"]),
        (&json!("skipped"), &json!("already-texted-today")),
        "{text}"
    );
    // Another caller still gets theirs.
    let other = hang_up_early(&app, OTHER_CALLER).await;
    assert_eq!(text_event(&app, &other).await["status"], "queued");
    assert_eq!(fake.message_creates(), 2);
}

#[actix_web::test]
async fn a_caller_on_the_do_not_call_list_gets_no_text() {
    let fake = FakeProvider::start().await;
    let app = texting_app(TestDb::Sqlite, &fake).await;
    voicemail_number(&app).await;
    let (status, body) = app
        .post_json(
            "/api/dnc",
            &json!({ "e164": CALLER, "reason": "asked not to be contacted" }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let call_id = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &call_id).await;
    assert_eq!(
        (&text["status"], &text["reason"]),
        (&json!("skipped"), &json!("do-not-call")),
        "{text}"
    );
    assert_eq!(fake.message_creates(), 0);
}

#[actix_web::test]
async fn a_twilio_5xx_is_retried_and_the_text_then_goes_out() {
    let fake = FakeProvider::start().await;
    fake.state()
        .messages
        .faults
        .extend([Fault::Status(500), Fault::Status(503)]);
    let app = texting_app(TestDb::Sqlite, &fake).await;
    voicemail_number(&app).await;
    let call_id = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &call_id).await;
    assert_eq!(text["status"], "queued", "{text}");
    assert_eq!(text["attempts"], 3);
    assert_eq!(fake.message_creates(), 3);
    assert_eq!(fake.messages().len(), 1);
    // Before each retry the engine looked for the text in Twilio's list.
    assert_eq!(fake.message_lists(), 2);
}

/// An app whose texts give up on Twilio after 300 ms.
async fn impatient_texting_app(fake: &FakeProvider) -> TestApp {
    impatient_texting_app_with(fake, |_| {}).await
}

/// [`impatient_texting_app`], its settings changed by `configure` too.
async fn impatient_texting_app_with(
    fake: &FakeProvider,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        on_fake_twilio(fake, true)(s);
        s.missed_call_text.send_timeout = Duration::from_millis(300);
        configure(s);
    })
    .await;
    voicemail_number(&app).await;
    app
}

#[actix_web::test]
async fn a_text_whose_answer_was_lost_is_found_in_twilios_list_and_not_sent_twice() {
    let fake = FakeProvider::start().await;
    // Twilio creates the message but answers after the engine stopped waiting.
    fake.state()
        .messages
        .faults
        .push_back(Fault::Hang(Duration::from_secs(3)));
    let app = impatient_texting_app(&fake).await;
    let call_id = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &call_id).await;
    assert_eq!(text["status"], "queued", "{text}");
    assert_eq!(text["attempts"], 1, "{text}");
    assert_eq!(text["found_in_list"], true, "{text}");
    assert_eq!(fake.message_creates(), 1, "the caller is texted once");
    assert_eq!(fake.message_lists(), 1);
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(text["sid"], messages[0]["sid"], "{text}");
    // Its status callbacks land on the call as for any text.
    let sid = messages[0]["sid"].as_str().expect("a sid").to_owned();
    assert_eq!(fake.send_message_status(&sid, "delivered", None).await, 204);
}

#[actix_web::test]
async fn a_last_attempt_whose_answer_was_lost_is_still_looked_up_so_the_trail_says_it_went_out() {
    let fake = FakeProvider::start().await;
    fake.state()
        .messages
        .faults
        .push_back(Fault::Hang(Duration::from_secs(3)));
    let app = impatient_texting_app_with(&fake, |s| s.missed_call_text.max_attempts = 1).await;
    let call_id = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &call_id).await;
    assert_eq!(text["status"], "queued", "{text}");
    assert_eq!(text["found_in_list"], true, "{text}");
    assert_eq!(fake.message_creates(), 1);
}

#[actix_web::test]
async fn a_text_that_twilio_did_not_create_before_timing_out_is_sent_again() {
    let fake = FakeProvider::start().await;
    // Another conversation with the caller from the same number, and a text to
    // someone else, both just now: neither is this text.
    let app = impatient_texting_app(&fake).await;
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .expect("a time");
    {
        let mut state = fake.state();
        for (k, (to, body)) in [(CALLER, "Your appointment is at 3"), (OTHER_CALLER, "x")]
            .into_iter()
            .enumerate()
        {
            state.messages.messages.push(json!({
                "sid": format!("SM{:032x}", k + 900),
                "to": to, "from": NUMBER, "body": body, "status": "delivered",
                "date_created": now,
            }));
        }
        // A 5xx: nothing is created; the list shows nothing of ours.
        state.messages.faults.push_back(Fault::Status(500));
    }
    let call_id = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &call_id).await;
    assert_eq!(text["status"], "queued", "{text}");
    assert_eq!(text["attempts"], 2, "{text}");
    assert!(text.get("found_in_list").is_none(), "{text}");
    assert_eq!(fake.message_creates(), 2);
    assert_eq!(fake.message_lists(), 1);
}

#[actix_web::test]
async fn a_text_whose_answer_was_lost_is_not_sent_again_when_twilios_list_fails_too() {
    let fake = FakeProvider::start().await;
    {
        let mut state = fake.state();
        state.messages.faults.push_back(Fault::Status(503));
        state.messages.list_faults.push_back(Fault::Status(500));
    }
    let app = impatient_texting_app(&fake).await;
    let call_id = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &call_id).await;
    assert_eq!(text["status"], "failed", "{text}");
    assert_eq!(text["attempts"], 1, "{text}");
    let why = text["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("not sent again"), "{text}");
    assert_eq!(fake.message_creates(), 1, "never a second text on a guess");
    // The call's own record is whole.
    assert_eq!(app.call(&call_id).await["outcome"], "abandoned");
}

#[actix_web::test]
async fn a_twilio_400_is_recorded_as_failed_in_the_trail_without_a_retry() {
    let fake = FakeProvider::start().await;
    fake.state().messages.unsubscribed.insert(CALLER.to_owned());
    let app = texting_app(TestDb::Sqlite, &fake).await;
    voicemail_number(&app).await;
    let call_id = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &call_id).await;
    assert_eq!(text["status"], "failed", "{text}");
    assert_eq!(text["attempts"], 1);
    assert_eq!(text["error"]["http_status"], 400);
    assert_eq!(text["error"]["code"], 21610);
    assert_eq!(fake.message_creates(), 1);
    // The call's own record is whole.
    let call = app.call(&call_id).await;
    assert_eq!(call["outcome"], "abandoned");
    assert!(fake.messages().is_empty());
}

#[actix_web::test]
async fn delivered_and_failed_status_callbacks_land_in_the_trail() {
    let fake = FakeProvider::start().await;
    let app = texting_app(TestDb::Sqlite, &fake).await;
    voicemail_number(&app).await;
    let delivered = hang_up_early(&app, CALLER).await;
    let failed = hang_up_early(&app, OTHER_CALLER).await;
    let first = text_event(&app, &delivered).await;
    let second = text_event(&app, &failed).await;
    let (sid1, sid2) = (
        first["sid"].as_str().expect("a sid").to_owned(),
        second["sid"].as_str().expect("a sid").to_owned(),
    );
    assert_eq!(fake.send_message_status(&sid1, "sent", None).await, 204);
    assert_eq!(
        fake.send_message_status(&sid1, "delivered", None).await,
        204
    );
    assert_eq!(
        fake.send_message_status(&sid2, "undelivered", Some("30003"))
            .await,
        204
    );
    assert_eq!(
        fake.send_message_status(&sid2, "failed", Some("30006"))
            .await,
        204
    );

    let call = app
        .wait_for_call(&delivered, |c| {
            events_of(c, "missed_call_text_status").len() == 2
        })
        .await;
    let statuses: Vec<&Value> = events_of(&call, "missed_call_text_status")
        .iter()
        .map(|e| &e["detail"]["status"])
        .collect();
    assert_eq!(statuses, [&json!("sent"), &json!("delivered")]);
    assert_eq!(
        events_of(&call, "missed_call_text_status")[1]["detail"]["sid"],
        sid1.as_str()
    );
    let call = app
        .wait_for_call(&failed, |c| {
            events_of(c, "missed_call_text_status").len() == 2
        })
        .await;
    let last = events_of(&call, "missed_call_text_status")[1]["detail"].clone();
    assert_eq!(last["status"], "failed");
    assert_eq!(last["error_code"], "30006");

    // Unsigned, or for a call that sent no text: refused, nothing recorded.
    let path = format!("/twilio/missed-call-text/status?call={delivered}");
    let forged = [("MessageSid", sid1.as_str()), ("MessageStatus", "failed")];
    let (status, _) = app.form_post(&path, &forged, None).await;
    assert_eq!(status, 403);
    let unknown = format!(
        "{}/twilio/missed-call-text/status?call=nosuchcall",
        app.address
    );
    let params = vec![
        ("MessageSid".to_owned(), sid1.clone()),
        ("MessageStatus".to_owned(), "failed".to_owned()),
    ];
    let signature = sign(TWILIO_SECRET, &unknown, &params);
    let (status, _) = app
        .form_post(
            "/twilio/missed-call-text/status?call=nosuchcall",
            &forged,
            Some(&signature),
        )
        .await;
    assert_eq!(status, 404);
    let call = app.call(&delivered).await;
    assert_eq!(events_of(&call, "missed_call_text_status").len(), 2);
}

#[actix_web::test]
async fn on_postgres_two_missed_calls_ending_together_send_one_text() {
    let fake = FakeProvider::start().await;
    let app = texting_app(TestDb::Postgres, &fake).await;
    voicemail_number(&app).await;
    let (a, mut twilio_a) = ring_in(&app, CALLER, NUMBER).await;
    let (b, mut twilio_b) = ring_in(&app, CALLER, NUMBER).await;
    twilio_a.stop();
    twilio_b.stop();
    let texts = [text_event(&app, &a).await, text_event(&app, &b).await];
    let mut statuses: Vec<&str> = texts
        .iter()
        .map(|t| t["status"].as_str().unwrap_or_default())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["queued", "skipped"], "{texts:?}");
    assert_eq!(fake.message_creates(), 1);
    let again = hang_up_early(&app, CALLER).await;
    assert_eq!(
        text_event(&app, &again).await["reason"],
        "already-texted-today"
    );
    assert_eq!(fake.message_creates(), 1);
}

#[actix_web::test]
async fn bad_twilio_credentials_are_a_failed_text_in_the_trail_and_not_retried() {
    let fake = FakeProvider::start().await;
    let app = spawn_app_with(TestDb::Sqlite, |s| {
        on_fake_twilio(&fake, true)(s);
        s.twilio.account_sid = "AC00000000000000000000000000000000".into();
    })
    .await;
    voicemail_number(&app).await;
    let call_id = hang_up_early(&app, CALLER).await;
    let text = text_event(&app, &call_id).await;
    assert_eq!(text["status"], "failed", "{text}");
    assert_eq!(text["attempts"], 1);
    assert_eq!(text["error"]["http_status"], 401);
    assert_eq!(text["error"]["code"], 20003);
    assert!(fake.messages().is_empty());
    assert_eq!(app.call(&call_id).await["outcome"], "abandoned");
}
