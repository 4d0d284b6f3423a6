//! The generator end to end, fast (a few calls, one second of audio): against a
//! real engine on loopback driven as a remote one (`--engine-url`, no PID), against
//! a tiny Twilio Media Streams relay in the test (`--peer-url`), and its refusals
//! of bad options. The benchmarks themselves are commands in docs/BENCHMARKS.md.

use std::cell::Cell;
use std::rc::Rc;

use clap::Parser as _;
use secrecy::SecretString;

use super::frame::find;
use super::report::{render_text, NOT_MEASURED};
use super::ws::{read_upgrade_head, switch_protocols, Frame, Message, WsClient};
use super::{check_args, measure, LoadtestArgs};

const ADMIN_TOKEN: &str = "loadtest-admin-token";
const TWILIO_TOKEN: &str = "loadtest-twilio-token";

/// A short run (3 calls, 1 s of audio, one generator thread) with `options`.
async fn short_run(options: &[&str]) -> super::report::Report {
    let mut all = options.to_vec();
    all.extend_from_slice(&["--calls", "3", "--seconds", "1", "--threads", "1"]);
    let options = args(&all);
    check_args(&options).expect("valid options");
    measure(&options).await.expect("the run completes")
}

fn args(list: &[&str]) -> LoadtestArgs {
    let mut all = vec!["switchboard-loadtest"];
    all.extend_from_slice(list);
    LoadtestArgs::try_parse_from(all).expect("the options parse")
}

/// A real engine (the `switchboard` library, as its own tests start it) on a free
/// loopback port with a fresh SQLite database; stopped when the handle drops.
struct Engine {
    url: String,
    server: actix_web::dev::ServerHandle,
    dir: std::path::PathBuf,
}

impl Engine {
    async fn start(configure: impl FnOnce(&mut switchboard::config::Settings)) -> Engine {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-loadtest-e2e-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut settings = switchboard::config::Settings::defaults();
        settings.bind = "127.0.0.1:0".into();
        settings.database_url = format!("sqlite://{}?mode=rwc", dir.join("e2e.db").display());
        settings.admin_token = Some(SecretString::from(ADMIN_TOKEN));
        settings.twilio.auth_token = Some(SecretString::from(TWILIO_TOKEN));
        settings.workers = 2;
        settings.journal.spill_path = dir.join("{node_id}.spill").display().to_string();
        configure(&mut settings);
        let app = switchboard::startup::Application::build(settings)
            .await
            .expect("the engine starts");
        let url = format!("http://127.0.0.1:{}", app.port());
        let server = app.handle();
        actix_rt::spawn(async move {
            let _ = app.run_until_stopped().await;
        });
        Engine { url, server, dir }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        drop(self.server.stop(false));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[actix_rt::test]
async fn a_remote_engine_is_driven_by_url_and_tokens_and_its_process_is_not_measured() {
    let engine = Engine::start(|_| {}).await;
    let report = short_run(&[
        "--engine-url",
        &format!("{}/", engine.url),
        "--admin-token",
        ADMIN_TOKEN,
        "--twilio-token",
        TWILIO_TOKEN,
    ])
    .await;

    assert_eq!(report.calls_bridged, 3);
    let (c2a, a2c) = (&report.caller_to_agent, &report.agent_to_caller);
    assert!(c2a.sent > 0 && a2c.sent > 0, "{c2a:?} {a2c:?}");
    assert_eq!((c2a.lost, a2c.lost), (0, 0), "{c2a:?} {a2c:?}");
    assert_eq!((c2a.misrouted, a2c.misrouted), (0, 0));
    // Without --engine-pid nothing is read from /proc about the engine, and the
    // report says so rather than showing zeros.
    assert_eq!(report.engine.mode, "external");
    assert_eq!(report.engine.pid, None);
    assert_eq!(report.engine.measured, NOT_MEASURED);
    assert!(report.engine_cpu.is_none() && report.engine_memory.is_none());
    let text = render_text(&report);
    assert!(
        text.contains("engine CPU and context switches: not measured (remote engine)"),
        "{text}"
    );
    assert!(
        text.contains("engine RSS: not measured (remote engine)"),
        "{text}"
    );
    // The engine's own counters still came over HTTP.
    assert_eq!(report.protocol.calls_active_after, Some(0));
}

#[actix_rt::test]
async fn a_remote_engine_relays_ai_calls_to_the_fake_openai_the_generator_serves_at_a_given_address(
) {
    let fake_addr = free_loopback_address();
    let key = "sk-remote-test";
    let engine = Engine::start(|settings| {
        settings.openai.realtime_url = format!("ws://{fake_addr}/v1/realtime")
            .parse()
            .expect("a URL");
        settings.openai.api_key = Some(SecretString::from(key));
        settings.summary.provider = switchboard::config::SummaryProvider::Off;
    })
    .await;
    let report = short_run(&[
        "--scenario",
        "ai",
        "--engine-url",
        &engine.url,
        "--admin-token",
        ADMIN_TOKEN,
        "--twilio-token",
        TWILIO_TOKEN,
        "--fake-openai-listen",
        &fake_addr.to_string(),
        "--fake-openai-key",
        key,
    ])
    .await;

    assert_eq!(report.engine.mode, "external");
    assert_eq!(report.engine.measured, NOT_MEASURED);
    let (c2a, a2c) = (&report.caller_to_agent, &report.agent_to_caller);
    assert!(c2a.sent > 0, "{c2a:?}");
    assert_eq!(
        (c2a.received, a2c.received),
        (c2a.sent, c2a.sent),
        "{c2a:?} {a2c:?}"
    );
    let ai = report.ai.as_ref().expect("the AI part");
    assert_eq!(ai.fake_openai.sessions_ready, 3);
    assert_eq!(ai.fake_openai.bearer_refused, 0);
    assert_eq!(ai.ai_failures, Some(0));
    assert!(ai.engine_us_per_round_trip.is_none());
}

/// A loopback address free a moment ago: where a fixed `--fake-openai-listen` goes
/// when its user (the engine, the relay) must be told it before the run.
fn free_loopback_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// What the test's relay saw.
#[derive(Default)]
struct RelayCounts {
    streams: Cell<u64>,
    starts: Cell<u64>,
    appends: Cell<u64>,
    deltas: Cell<u64>,
    marks_echoed: Cell<u64>,
    stops: Cell<u64>,
}

/// A tiny AI relay in the shape of Twilio's Node sample
/// (twilio-samples/speech-assistant-openai-realtime-api-node, `index.js`): it
/// serves Twilio Media Streams (https://www.twilio.com/docs/voice/media-streams/websocket-messages)
/// at `/media-stream`, opens an OpenAI Realtime socket per stream
/// (https://platform.openai.com/docs/api-reference/realtime-client-events) with a
/// bearer key, sends `session.update` (pcmu both ways), forwards every `media`
/// payload as `input_audio_buffer.append`, and every `response.output_audio.delta`
/// back as a `media` followed by a `mark`.
async fn tiny_relay(openai_url: String, key: String) -> (String, Rc<RelayCounts>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let url = format!(
        "ws://{}/media-stream",
        listener.local_addr().expect("an address")
    );
    let counts = Rc::new(RelayCounts::default());
    let shared = Rc::clone(&counts);
    actix_rt::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counts = Rc::clone(&shared);
            let (openai_url, key) = (openai_url.clone(), key.clone());
            actix_rt::spawn(async move {
                let Ok((head, read)) = read_upgrade_head(&mut stream).await else {
                    return;
                };
                let Some(request) = super::ai::parse_upgrade(&head) else {
                    return;
                };
                assert_eq!(request.path, "/media-stream");
                let Some(ws_key) = request.key else { return };
                let Ok(twilio) = switch_protocols(stream, read, ws_key).await else {
                    return;
                };
                counts.streams.set(counts.streams.get() + 1);
                relay_stream(twilio, &openai_url, &key, &counts).await;
            });
        }
    });
    (url, counts)
}

async fn relay_stream(mut twilio: WsClient, openai_url: &str, key: &str, counts: &RelayCounts) {
    let bearer = format!("Bearer {key}");
    let mut openai = WsClient::connect(
        &format!("{openai_url}?model=gpt-realtime"),
        &[("Authorization", &bearer)],
    )
    .await
    .expect("the fake OpenAI accepts the relay");
    let update = serde_json::json!({
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {
                "input": { "format": { "type": "audio/pcmu" } },
                "output": { "format": { "type": "audio/pcmu" }, "voice": "alloy" },
            },
        },
    });
    openai
        .send(Message::Text(&update.to_string()))
        .await
        .expect("session.update");
    let mut stream_sid = String::new();
    loop {
        tokio::select! {
            frame = twilio.next() => {
                let text = match frame {
                    Some(Ok(Frame::Text(text))) => text,
                    Some(Ok(Frame::Close(_))) => {
                        let _ = twilio.send(Message::Close).await;
                        let _ = openai.send(Message::Close).await;
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                };
                let message: serde_json::Value = serde_json::from_slice(&text).expect("JSON from Twilio");
                match message["event"].as_str() {
                    Some("media") => {
                        let payload = message["media"]["payload"].as_str().expect("a payload");
                        let append = serde_json::json!({ "type": "input_audio_buffer.append", "audio": payload });
                        counts.appends.set(counts.appends.get() + 1);
                        let _ = openai.send(Message::Text(&append.to_string())).await;
                    }
                    Some("start") => {
                        assert!(message["start"]["callSid"].as_str().is_some_and(|s| s.starts_with("CA")));
                        stream_sid = message["start"]["streamSid"].as_str().expect("a streamSid").to_owned();
                        counts.starts.set(counts.starts.get() + 1);
                    }
                    Some("mark") => {
                        assert_eq!(message["mark"]["name"], "responsePart");
                        counts.marks_echoed.set(counts.marks_echoed.get() + 1);
                    }
                    Some("stop") => counts.stops.set(counts.stops.get() + 1),
                    _ => {}
                }
            }
            frame = openai.next() => {
                let text = match frame {
                    Some(Ok(Frame::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                };
                if find(&text, br#""type":"response.output_audio.delta""#).is_none() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_slice(&text).expect("JSON from OpenAI");
                let delta = value["delta"].as_str().expect("a delta");
                let media = serde_json::json!({ "event": "media", "streamSid": stream_sid, "media": { "payload": delta } });
                let mark = serde_json::json!({ "event": "mark", "streamSid": stream_sid, "mark": { "name": "responsePart" } });
                counts.deltas.set(counts.deltas.get() + 1);
                let _ = twilio.send(Message::Text(&media.to_string())).await;
                let _ = twilio.send(Message::Text(&mark.to_string())).await;
            }
        }
    }
}

#[actix_rt::test]
async fn the_peer_mode_speaks_plain_media_streams_to_a_relay_and_measures_its_round_trips() {
    let fake_addr = free_loopback_address();
    let key = "sk-peer-test";
    let (peer_url, counts) = tiny_relay(format!("ws://{fake_addr}/v1/realtime"), key.into()).await;
    let report = short_run(&[
        "--scenario",
        "ai",
        "--peer-url",
        &peer_url,
        "--fake-openai-listen",
        &fake_addr.to_string(),
        "--fake-openai-key",
        key,
    ])
    .await;

    assert_eq!(report.engine.mode, "peer");
    assert_eq!(report.calls_bridged, 3);
    assert_eq!((counts.streams.get(), counts.starts.get()), (3, 3));
    let (c2a, a2c) = (&report.caller_to_agent, &report.agent_to_caller);
    assert!(
        c2a.sent >= 3 * 40,
        "a second of 20 ms frames per call: {c2a:?}"
    );
    assert_eq!(
        (c2a.received, a2c.received),
        (c2a.sent, c2a.sent),
        "{c2a:?} {a2c:?}"
    );
    assert_eq!((c2a.lost, a2c.lost, a2c.misrouted), (0, 0, 0));
    assert_eq!(counts.appends.get(), c2a.sent);
    // Every delta became a media and a mark, and every mark came back as Twilio
    // echoes it once the audio before it has played.
    assert_eq!(counts.deltas.get(), a2c.received);
    assert_eq!(counts.marks_echoed.get(), counts.deltas.get());
    assert_eq!(counts.stops.get(), 3);
    let ai = report.ai.as_ref().expect("the AI part");
    assert_eq!(ai.round_trips, c2a.sent);
    assert_eq!(ai.fake_openai.sessions_ready, 3);
    assert_eq!(ai.fake_openai.sessions_dropped, 0);
    assert!(report.engine_cpu.is_none());
    assert!(render_text(&report).contains("not measured (remote relay"));
}

#[test]
fn bad_urls_cpus_and_combinations_are_refused_with_the_option_named() {
    let parse_err = |list: &[&str]| {
        let mut all = vec!["switchboard-loadtest"];
        all.extend_from_slice(list);
        LoadtestArgs::try_parse_from(all)
            .expect_err("refused")
            .to_string()
    };
    assert!(parse_err(&["--engine-url", "https://engine:443"]).contains("only http://"));
    assert!(parse_err(&["--engine-url", "engine"]).contains("--engine-url"));
    assert!(parse_err(&["--peer-url", "http://relay:5050/media-stream"]).contains("only ws://"));
    assert!(parse_err(&["--engine-cpu", "zero"]).contains("not a CPU number"));
    assert!(parse_err(&["--engine-cpu", "0,1"]).contains("not a CPU number"));
    let refused = |list: &[&str]| check_args(&args(list)).expect_err("refused").to_string();
    assert!(refused(&["--engine-cpu", "4096"])
        .contains("--engine-cpu 4096: this process may run on CPUs"));
    assert!(refused(&["--generator-cpu", "4096"]).contains("--generator-cpu 4096"));
    let cpu = super::options::usable_cpus()[0].to_string();
    assert!(refused(&["--engine-cpu", &cpu, "--generator-cpu", &cpu]).contains("different CPUs"));
    assert!(
        refused(&["--engine-url", "http://10.0.0.7:8080", "--engine-cpu", &cpu])
            .contains("taskset")
    );
    assert!(refused(&["--engine-pid", "1"]).contains("--engine-url"));
    assert!(refused(&[
        "--engine-url",
        "http://10.0.0.7:8080",
        "--engine-pid",
        &u32::MAX.to_string()
    ])
    .contains("no such process"));
    assert!(refused(&["--peer-url", "ws://127.0.0.1:5050/media-stream"]).contains("--scenario ai"));
    assert!(refused(&[
        "--scenario",
        "ai",
        "--peer-url",
        "ws://127.0.0.1:5050/media-stream"
    ])
    .contains("--fake-openai-listen"));
    assert!(
        refused(&["--scenario", "ai", "--engine-url", "http://10.0.0.7:8080"])
            .contains("--fake-openai-listen")
    );
    assert!(refused(&["--fake-openai-key", "k"]).contains("--scenario ai"));
    assert!(refused(&["--find-capacity", "--scenario", "parking"]).contains("bridge and ai"));
    assert!(refused(&[
        "--find-capacity",
        "--calls",
        "500",
        "--capacity-max-calls",
        "100"
    ])
    .contains("--capacity-max-calls"));
    // A peer relay and a running engine are exclusive.
    assert!(parse_err(&[
        "--engine-url",
        "http://127.0.0.1:8080",
        "--peer-url",
        "ws://127.0.0.1:5050/media-stream"
    ])
    .contains("cannot be used with"));
}

#[actix_rt::test]
async fn softphones_go_to_the_agent_url_and_the_other_nodes_cpu_is_summed_with_the_engines() {
    let engine = Engine::start(|_| {}).await;
    // One engine plays both nodes: the softphones reach it by `--agent-url`, and
    // this test process stands in for "another node" whose CPU is summed.
    let me = std::process::id().to_string();
    let report = short_run(&[
        "--engine-url",
        &engine.url,
        "--agent-url",
        &engine.url,
        "--engine-pid",
        &me,
        "--node-pid",
        &me,
        "--admin-token",
        ADMIN_TOKEN,
        "--twilio-token",
        TWILIO_TOKEN,
    ])
    .await;
    assert_eq!(report.calls_bridged, 3);
    let (c2a, a2c) = (&report.caller_to_agent, &report.agent_to_caller);
    assert_eq!((c2a.lost, a2c.lost), (0, 0), "{c2a:?} {a2c:?}");
    let cpu = report.engine_cpu.as_ref().expect("measured");
    let cluster = cpu.cluster.as_ref().expect("a cluster figure");
    assert_eq!(cluster.nodes.len(), 2);
    assert_eq!(cluster.frames_received, c2a.received + a2c.received);
    assert!(cluster.seconds >= cpu.seconds, "{cluster:?}");
    assert!(render_text(&report).contains("cluster CPU:"));
    // `--agent-url` is for a running engine only, and only for bridged calls.
    for (bad, says) in [
        (vec!["--agent-url", "http://127.0.0.1:1"], "--engine-url"),
        (
            vec![
                "--engine-url",
                "http://127.0.0.1:1",
                "--admin-token",
                "a",
                "--twilio-token",
                "t",
                "--agent-url",
                "http://127.0.0.1:2",
                "--scenario",
                "parking",
            ],
            "--scenario bridge or claim",
        ),
    ] {
        let refused = match LoadtestArgs::try_parse_from(
            std::iter::once("switchboard-loadtest").chain(bad.iter().copied()),
        ) {
            Err(err) => err.to_string(),
            Ok(parsed) => check_args(&parsed).expect_err("refused").to_string(),
        };
        assert!(refused.contains(says), "{bad:?}: {refused}");
    }
}

#[actix_rt::test]
async fn the_claim_scenario_times_the_answer_to_the_last_ring_cancel_on_every_seat() {
    let engine = Engine::start(|_| {}).await;
    let options = args(&[
        "--scenario",
        "claim",
        "--seats",
        "6",
        "--rounds",
        "4",
        "--engine-url",
        &engine.url,
        "--agent-url",
        &engine.url,
        "--admin-token",
        ADMIN_TOKEN,
        "--twilio-token",
        TWILIO_TOKEN,
    ]);
    check_args(&options).expect("valid options");
    let report = super::claim::run(&options)
        .await
        .expect("the run completes");
    assert_eq!(report.seats_per_node, vec![3, 3]);
    assert_eq!((report.rounds_measured, report.rounds_failed), (4, 0));
    assert_eq!(report.double_claims, 0);
    assert_eq!(report.answer_to_last_ring_cancel.count, 4);
    assert!(report.answer_to_last_ring_cancel.p99_ms > 0.0);
    let text = super::claim::render_text(&report);
    assert!(text.contains("answer → last ring_cancel"), "{text}");
}
