//! The call audio module (`assets/web/js/audio/`) in Chromium, on a live call:
//! the fake microphone plays a WAV the test writes, the fake Twilio hears it, and
//! what the fake Twilio sends is played by the page. The page is the softphone
//! (`/agent?debug=1`), on a call answered with its Answer button.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::time::Instant;

use super::audio::{goertzel, mulaw_decode, mulaw_tone, tone_wav};
use super::{scratch_dir, Browser, Page, PageOptions};
use crate::helpers::{spawn_app, InboundCall, TestApp, TwilioStream, CALLER, NUMBER, PATIENCE};

/// Waits until the softphone page's socket is up (its presence switch enables).
async fn wait_socket_up(page: &Page) {
    let enabled = page
        .wait_until(|p| async move {
            p.testid("presence")
                .await
                .is_enabled()
                .await
                .unwrap_or(false)
        })
        .await;
    assert!(
        enabled,
        "the presence switch never came up: {}",
        page.text("notice").await
    );
}

/// The softphone page (`/agent?debug=1`) with `wav` as its microphone, signed in
/// as an available agent, on a call answered with its Answer button; the fake
/// Twilio's stream of that call.
pub(super) async fn call_in_the_page(
    app: &TestApp,
    browser: &Browser,
    wav: std::path::PathBuf,
) -> (Page, InboundCall, TwilioStream) {
    let agent = app.create_agent("Ada", "production").await;
    app.number_for_everyone().await;
    let mut page = browser
        .page_with(PageOptions {
            mic: Some(wav),
            ..PageOptions::default()
        })
        .await;
    page.sign_in(app, &agent.token).await;
    page.open(app, "/agent?debug=1").await;
    wait_socket_up(&page).await;
    page.testid("presence")
        .await
        .select_by_value("available")
        .await
        .expect("pick available");
    page.wait_attr("presence-status", "data-status", "available")
        .await;
    let call = app.ring_in(CALLER, NUMBER).await;
    let twilio = app.open_stream(&call).await;
    let answer = format!(
        "[data-testid=\"ring-card\"][data-call-id=\"{}\"] [data-testid=\"answer\"]",
        call.call_id
    );
    page.find(&answer)
        .await
        .click()
        .await
        .expect("click Answer");
    page.wait_attr("call-state", "data-state", "connected")
        .await;
    (page, call, twilio)
}

async fn next_media(twilio: &mut TwilioStream) -> Vec<u8> {
    tokio::time::timeout(PATIENCE, twilio.next_media())
        .await
        .expect("the engine sends the page's audio to Twilio")
        .to_vec()
}

fn dominant(samples: &[f64]) -> f64 {
    let candidates = [
        300.0, 500.0, 700.0, 1000.0, 1300.0, 1600.0, 2000.0, 2500.0, 3000.0,
    ];
    candidates
        .into_iter()
        .max_by(|a, b| goertzel(samples, 8000.0, *a).total_cmp(&goertzel(samples, 8000.0, *b)))
        .unwrap_or_default()
}

fn rms(samples: &[f64]) -> f64 {
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

#[actix_web::test]
async fn a_1_khz_tone_in_the_microphone_reaches_twilio_as_mulaw_frames_every_20_ms() {
    let app = spawn_app().await;
    let wav = tone_wav(
        &scratch_dir("tone").join("tone.wav"),
        48_000,
        1000.0,
        0.5,
        0.0,
        5.0,
    );
    let browser = Browser::start().await;
    let (page, _call, mut twilio) = call_in_the_page(&app, &browser, wav).await;
    // Skip what came before the tone (silence while the microphone opened).
    let mut skipped = 0;
    loop {
        let frame = next_media(&mut twilio).await;
        let samples: Vec<f64> = frame
            .iter()
            .map(|&b| f64::from(mulaw_decode(b)) / 32768.0)
            .collect();
        if rms(&samples) > 0.05 {
            break;
        }
        skipped += 1;
        assert!(skipped < 500, "no tone reached Twilio in 10 s of frames");
    }
    // Chromium's gain control settles on the tone's first frames.
    for _ in 0..10 {
        next_media(&mut twilio).await;
    }
    // The pacing is read on the page's audio clock (frames made per second of
    // audio), not on this test's wall clock: a busy machine delays when frames are
    // read here, never how many the page makes per second of audio.
    let before = debug_stats(&page).await;
    let mut audio = Vec::new();
    let mut sizes = Vec::new();
    let frames = 100; // 2 s
    for _ in 0..frames {
        let frame = next_media(&mut twilio).await;
        sizes.push(frame.len());
        audio.extend(frame.iter().map(|&b| f64::from(mulaw_decode(b)) / 32768.0));
    }
    let after = debug_stats(&page).await;
    page.screenshot("agent-mic-tone").await;
    assert!(
        sizes.iter().all(|&size| size == 160),
        "160-byte frames: {sizes:?}"
    );
    for block in audio.chunks(800) {
        assert_eq!(
            dominant(block),
            1000.0,
            "the dominant frequency of a 100 ms block"
        );
        // Chromium's noise suppression and gain control shape a steady tone: it
        // arrives quieter than the file (about 0.1 RMS of 0.35), but clearly there.
        assert!(rms(block) > 0.02, "the tone is loud enough: {}", rms(block));
    }
    let number = |stats: &Value, key: &str| {
        stats[key]
            .as_f64()
            .unwrap_or_else(|| panic!("audioStats().{key} in {stats}"))
    };
    let made = number(&after, "framesSent") - number(&before, "framesSent");
    let audio_seconds = number(&after, "audioClock") - number(&before, "audioClock");
    // One frame per 20 ms of audio; the page hands frames over as the worklet
    // posts them, so a frame or two may still be on their way at either reading.
    let per_frame_ms = audio_seconds * 1000.0 / made;
    assert!(
        made >= 50.0 && (18.0..22.0).contains(&per_frame_ms),
        "{made} frames in {audio_seconds:.3} s of audio: {per_frame_ms:.2} ms each ({before} → {after})"
    );
    // Mute: the frames keep coming, 160 bytes every 20 ms, as silence.
    page.click("mute").await;
    let mut silent = false;
    for _ in 0..100 {
        let frame = next_media(&mut twilio).await;
        assert_eq!(frame.len(), 160, "a muted frame keeps its size");
        let samples: Vec<f64> = frame
            .iter()
            .map(|&b| f64::from(mulaw_decode(b)) / 32768.0)
            .collect();
        if rms(&samples) < 0.001 {
            silent = true;
            break;
        }
    }
    assert!(silent, "muted, the page sends silence within 2 s of frames");
    browser.close().await;
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// Sends `count` frames of a 1 kHz tone (or silence) from the fake Twilio, one
/// every 20 ms on the clock (no drift), starting at sample `start`.
async fn send_paced(twilio: &mut TwilioStream, tone: bool, start: usize, count: usize) {
    let began = Instant::now();
    for i in 0..count {
        let frame = if tone {
            mulaw_tone(1000.0, 0.5, start + i * 160, 160)
        } else {
            vec![0xFF; 160]
        };
        twilio.send_media(&frame);
        tokio::time::sleep_until(began + Duration::from_millis(20 * (i as u64 + 1))).await;
    }
}

async fn debug_stats(page: &Page) -> Value {
    page.eval("return window.switchboardDebug.audioStats();", vec![])
        .await
}

#[actix_web::test]
async fn a_tone_twilio_sends_is_played_by_the_page_within_300_ms() {
    let app = spawn_app().await;
    let wav = tone_wav(
        &scratch_dir("quiet").join("quiet.wav"),
        48_000,
        0.0,
        0.0,
        0.0,
        1.0,
    );
    let browser = Browser::start().await;
    let (page, _call, mut twilio) = call_in_the_page(&app, &browser, wav).await;
    assert_eq!(
        page.eval(
            "return typeof window.switchboardDebug.playbackLevel();",
            vec![]
        )
        .await,
        json!("number")
    );
    // Silence first (the jitter buffer settles), then the tone.
    send_paced(&mut twilio, false, 0, 25).await;
    let quiet = page
        .eval("return window.switchboardDebug.playbackLevel();", vec![])
        .await;
    assert!(
        quiet.as_f64().unwrap_or(1.0) < 0.01,
        "silence plays as silence: {quiet}"
    );
    let sent_at = wall_ms();
    let sending = async { send_paced(&mut twilio, true, 0, 50).await };
    let watching = async {
        let heard = page
            .wait_until(|page| async move {
                page.eval("return window.switchboardDebug.playbackLevel();", vec![])
                    .await
                    .as_f64()
                    .unwrap_or_default()
                    > 0.1
            })
            .await;
        assert!(heard, "the page never played the tone");
        // Once the 100 ms window is full of tone: a sine of amplitude 0.5 has an
        // RMS of 0.35.
        tokio::time::sleep(Duration::from_millis(150)).await;
        page.eval("return window.switchboardDebug.playbackLevel();", vec![])
            .await
    };
    let ((), level) = tokio::join!(sending, watching);
    let stats = debug_stats(&page).await;
    page.screenshot("agent-playback").await;
    // The tone's first onset heard: a frame late under load makes the jitter
    // buffer run dry mid-tone, and the tone's return after it is a later onset
    // (`playbackOnsetWallMs` is the last one), not when the tone was first heard.
    let onset = stats["playOnsets"]
        .as_array()
        .expect("the page keeps its onsets with debug=1")
        .iter()
        .filter_map(|onset| onset["heardWall"].as_f64())
        .find(|&heard| heard >= sent_at)
        .expect("an onset was played");
    let latency = onset - sent_at;
    assert!(
        latency < 300.0,
        "the tone reached the speakers {latency:.0} ms after Twilio sent it: {stats}"
    );
    assert!(
        (0.25..0.45).contains(&level.as_f64().unwrap_or_default()),
        "{level}"
    );
    browser.close().await;
}

#[actix_web::test]
async fn the_debug_hook_exists_only_with_debug_1() {
    let app = spawn_app().await;
    let agent = app.create_agent("Ada", "production").await;
    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.sign_in(&app, &agent.token).await;
    page.open(&app, "/agent").await;
    wait_socket_up(&page).await;
    assert_eq!(
        page.eval("return typeof window.switchboardDebug;", vec![])
            .await,
        json!("undefined")
    );
    page.open(&app, "/agent?debug=1").await;
    wait_socket_up(&page).await;
    assert_eq!(
        page.eval(
            "return typeof window.switchboardDebug.playbackLevel;",
            vec![]
        )
        .await,
        json!("function")
    );
    browser.close().await;
}

/// Writes a WAV of `seconds` where each second is 500 ms of silence, 200 ms of a
/// 1 kHz tone and 300 ms of silence: onsets at k s + 500 ms.
fn burst_wav(path: &std::path::Path, seconds: usize) -> std::path::PathBuf {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create the WAV");
    for n in 0..seconds * 48_000 {
        let within = n % 48_000;
        let sample = if (24_000..33_600).contains(&within) {
            0.5 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 48_000.0).sin()
        } else {
            0.0
        };
        writer
            .write_sample((sample * f64::from(i16::MAX)) as i16)
            .expect("write a sample");
    }
    writer.finalize().expect("finish the WAV");
    path.to_path_buf()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank]
}

/// The stamps (wall ms) of `list` in the page's `audioStats()`.
fn stamps(stats: &Value, list: &str, field: Option<&str>) -> Vec<f64> {
    stats[list]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| match field {
                    Some(field) => entry[field].as_f64(),
                    None => entry.as_f64(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// For each of `laters`, its latency from the last of `earliers` at or before
/// it (within a second: a burst every second).
fn latencies(earliers: &[f64], laters: &[f64]) -> Vec<f64> {
    laters
        .iter()
        .filter_map(|&later| {
            earliers
                .iter()
                // Date.now() is whole milliseconds: a stamp may read up to 1 ms early.
                .filter(|&&earlier| earlier <= later + 1.0)
                .map(|&earlier| (later - earlier).max(0.0))
                .fold(None, |best: Option<f64>, latency| {
                    Some(best.map_or(latency, |best| best.min(latency)))
                })
        })
        .filter(|latency| *latency < 1000.0)
        .collect()
}

fn summary(mut values: Vec<f64>) -> Value {
    let max = values.iter().copied().fold(f64::NAN, f64::max);
    json!({
        "n": values.len(),
        "p50": percentile(&mut values, 50.0),
        "p99": percentile(&mut values, 99.0),
        "max": max,
    })
}

/// The benchmark of docs/BENCHMARKS.md: a 60 s call between the page and the fake
/// Twilio, both directions at once, each direction split into what the page adds
/// and what the engine and the sockets add, from stamps on one wall clock (the
/// page's `Date.now()`, this test's `SystemTime`: one machine):
/// - mouth → wire: an onset's sample reaches the capture worklet (`onsetWall`) →
///   the page hands its frame to the socket (`sentWall`) → the first frame carrying
///   it reaches the fake Twilio;
/// - wire → ear: the fake Twilio starts a burst (20 ms pacing, silence between) →
///   the page's socket hands over its first frame (`arrivalOnsets`) → the playback
///   worklet renders it (`playOnsets.renderWall`: handed to the output device) →
///   the device plays it (`heardWall`: the audio clock mapped to wall time by
///   `getOutputTimestamp()`).
///
/// Run: `cargo nextest run --run-ignored only -E 'test(page_audio_latency)' --no-capture`.
#[actix_web::test]
#[ignore = "a 60 s benchmark; run explicitly"]
async fn page_audio_latency_over_a_60_s_call() {
    const SECONDS: usize = 60;
    let app = spawn_app().await;
    let wav = burst_wav(&scratch_dir("bursts").join("bursts.wav"), SECONDS + 30);
    let browser = Browser::start().await;
    let (page, _call, mut twilio) = call_in_the_page(&app, &browser, wav).await;
    let before = debug_stats(&page).await;
    let began = Instant::now();
    let began_wall = wall_ms();
    let mut tick = began;
    let mut sent = 0usize;
    let mut burst_sends = Vec::new();
    let mut arrivals = Vec::new(); // wall ms of a frame whose audio rose from silence
    let mut quiet = true;
    let mut late_sends = Vec::new(); // (ms into the run, ms behind the 20 ms schedule)
    while began.elapsed() < Duration::from_secs(SECONDS as u64) {
        tokio::select! {
            _ = tokio::time::sleep_until(tick) => {
                let within = sent % 50; // 50 frames a second: a 200 ms burst at 25..35
                let tone = (25..35).contains(&within);
                if within == 25 {
                    burst_sends.push(wall_ms());
                }
                let frame = if tone { mulaw_tone(1000.0, 0.5, sent * 160, 160) } else { vec![0xFF; 160] };
                twilio.send_media(&frame);
                let behind = tick.elapsed();
                if behind > Duration::from_millis(20) {
                    late_sends.push(((tick - began).as_millis(), behind.as_millis()));
                }
                sent += 1;
                tick = began + Duration::from_millis(20 * sent as u64);
            }
            message = twilio.next() => {
                let at = wall_ms();
                let Some(message) = message else { break };
                if message["event"] == "media" {
                    let payload = message["media"]["payload"].as_str().unwrap_or_default();
                    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payload).unwrap_or_default();
                    let samples: Vec<f64> = bytes.iter().map(|&b| f64::from(mulaw_decode(b)) / 32768.0).collect();
                    let level = rms(&samples);
                    if quiet && level > 0.05 {
                        quiet = false;
                        arrivals.push(at);
                    } else if !quiet && level < 0.01 {
                        quiet = true;
                    }
                }
            }
        }
    }
    let after = debug_stats(&page).await;
    let in_run = |stamps: Vec<f64>| -> Vec<f64> {
        stamps
            .into_iter()
            .filter(|&stamp| stamp >= began_wall)
            .collect()
    };
    let onset_walls = in_run(stamps(&after, "captureOnsets", Some("onsetWall")));
    let sent_walls = in_run(stamps(&after, "captureOnsets", Some("sentWall")));
    let captures: Vec<(f64, f64, f64)> = after["captureOnsets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry["onsetWall"].as_f64()?,
                entry["postWall"].as_f64()?,
                entry["sentWall"].as_f64()?,
            ))
        })
        .filter(|(onset, _, _)| *onset >= began_wall)
        .collect();
    let page_arrivals = in_run(stamps(&after, "arrivalOnsets", None));
    let renders = in_run(stamps(&after, "playOnsets", Some("renderWall")));
    let heard = in_run(stamps(&after, "playOnsets", Some("heardWall")));
    let report_mouth = json!({
        "page_worklet_to_socket_ms": summary(captures.iter().map(|(onset, _, sent)| sent - onset).collect()),
        "of_which_worklet_to_main_thread_ms": summary(captures.iter().map(|(_, post, sent)| sent - post).collect()),
        "socket_to_twilio_ms": summary(latencies(&sent_walls, &arrivals)),
        "worklet_to_twilio_ms": summary(latencies(&onset_walls, &arrivals)),
        "chromium_input_track": after["inputTrack"],
    });
    let report_ear = json!({
        "twilio_to_page_socket_ms": summary(latencies(&burst_sends, &page_arrivals)),
        "page_socket_to_rendered_ms": summary(latencies(&page_arrivals, &renders)),
        "page_socket_to_heard_ms": summary(latencies(&page_arrivals, &heard)),
        "twilio_to_heard_ms": summary(latencies(&burst_sends, &heard)),
        "output_latency_reported_ms": after["outputLatencyMs"],
    });
    let underruns = after["underruns"].as_f64().unwrap_or_default()
        - before["underruns"].as_f64().unwrap_or_default();
    let report = json!({
        "seconds": SECONDS,
        "started_wall_ms": began_wall,
        "mouth_to_wire": report_mouth,
        "wire_to_ear": report_ear,
        "underruns": underruns,
        "underruns_at_ms_into_the_run": in_run(stamps(&after, "underrunWalls", None)).iter().map(|at| (at - began_wall).round()).collect::<Vec<_>>(),
        // The sending side's own hiccups (this test and the engine share the cores).
        "fake_twilio_sends_over_20_ms_late": late_sends,
        "page_arrival_gaps_over_50_ms": after["arrivalGaps"].as_array().into_iter().flatten().filter_map(|gap| Some(json!({"at_ms_into_the_run": (gap["at"].as_f64()? - began_wall).round(), "gap_ms": gap["gapMs"]}))).collect::<Vec<_>>(),
        "jitter_target_ms": after["targetMs"],
        "buffered_ms": after["bufferedMs"],
        "capture_worklet_cpu": after["captureCpu"],
        "playback_worklet_cpu": after["playbackCpu"],
        "frames_sent": after["framesSent"],
        "frames_received": after["framesReceived"],
        "context_rate": after["sampleRate"],
    });
    println!(
        "page audio benchmark: {}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    browser.close().await;
}
