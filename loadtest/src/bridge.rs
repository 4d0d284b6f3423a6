//! The bridge scenario: a softphone and a Twilio media stream per call, audio both
//! ways (or one, with `--audio`).

use std::rc::Rc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::controller::Phase;
use super::frame::{encode_frame, find, tick_offset, twilio_media, Stamp};
use super::peers::{
    closing, echo_mark, engine_error, engine_message, incoming, media_payload, no_close,
    own_call_ended, ring, send_stop, Incoming,
};
use super::worker::{next_tick, until, Worker};
use super::ws::{Message, WsClient};
use super::{AudioDirection, AGENT_TO_CALLER, CALLER_TO_AGENT, FRAME_INTERVAL, HANGUP_TIMEOUT};

/// Softphone `index`: answers its own call when rung, ignores other rings, receives
/// caller audio and (both ways) sends its own.
pub(super) async fn softphone(worker: Rc<Worker>, index: usize, mut ws: WsClient) {
    let slot = worker.slot(index);
    let mut phases = worker.phases.clone();
    let offset = tick_offset(index, worker.total_calls) + FRAME_INTERVAL / 2;
    let expected = Stamp {
        direction: CALLER_TO_AGENT,
        call: index as u32,
        seq: 0,
        sent_ns: 0,
    };
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut seq = 0;
    let mut next_seq = 0;
    let mut answered = false;
    let mut ended = false;
    let mut hangup: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let ending = || ended;
                let is_closing = || closing(hangup, &phases);
                let text = match incoming(&worker, "softphone", index, &mut ws, frame, ending, is_closing).await {
                    Incoming::Binary(audio) => {
                        worker.received(expected, &audio, &mut next_seq);
                        continue;
                    }
                    Incoming::Text(text) => text,
                    Incoming::Handled => continue,
                    Incoming::Done => break,
                };
                let Some(message) = engine_message(&worker, index, &text) else {
                    continue;
                };
                let own = {
                    let mine = slot.call_id.borrow();
                    mine.is_some() && mine.as_deref() == message.call_id.as_deref()
                };
                match message.kind.as_ref() {
                    "ring" => {
                        let call_id = message.call_id.as_deref();
                        ring(&worker, &mut ws, own, &mut answered, call_id, Some(slot)).await;
                    }
                    "connected" if own => {
                        slot.bridged.set(true);
                        slot.settle(Ok(()));
                    }
                    "claim_lost" => {
                        worker.stats.borrow_mut().claims_lost += 1;
                        if own {
                            slot.settle(Err("claim_lost".into()));
                        }
                    }
                    "ring_cancel" => {
                        worker.stats.borrow_mut().ring_cancels += 1;
                        if own && !slot.bridged.get() {
                            let reason = message.reason.as_deref().unwrap_or("?");
                            slot.settle(Err(format!("ring_cancel ({reason})")));
                        }
                    }
                    "call_ended" => {
                        worker.stats.borrow_mut().calls_ended += 1;
                        if own {
                            ended = true;
                            let closing = closing(hangup, &phases);
                            own_call_ended(&worker, index, &mut ws, &message, closing).await;
                        }
                    }
                    "error" => engine_error(&worker, index, &message),
                    _ => {}
                }
            }
            scheduled = next_tick(&mut ticker) => {
                seq += 1;
                let frame = encode_frame(Stamp {
                    direction: AGENT_TO_CALLER,
                    call: index as u32,
                    seq: seq - 1,
                    sent_ns: worker.clock.now_ns(),
                });
                let ok = ws.send(Message::Binary(&frame)).await.is_ok();
                worker.sent(AGENT_TO_CALLER, ok, scheduled);
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                match *phases.borrow_and_update() {
                    Phase::Stream { start } => {
                        if ticker.is_none() && worker.audio != AudioDirection::CallerToAgent && slot.bridged.get() {
                            let first = tokio::time::Instant::from_std(start + offset);
                            ticker = Some(tokio::time::interval_at(first, FRAME_INTERVAL));
                        }
                    }
                    Phase::Hangup => {
                        ticker = None;
                        hangup = Some(tokio::time::Instant::now() + HANGUP_TIMEOUT);
                        if ended || !slot.bridged.get() {
                            let _ = ws.send(Message::Close).await;
                        }
                    }
                    _ => ticker = None,
                }
            }
            _ = until(hangup) => {
                no_close(&worker, "softphone", index, "the hang-up");
                break;
            }
        }
    }
    slot.settle(Err("softphone closed".into()));
}

/// Twilio's media stream for call `index`: sends caller audio, receives the agent's.
pub(super) async fn twilio_stream(
    worker: Rc<Worker>,
    index: usize,
    stream_sid: String,
    mut ws: WsClient,
) {
    let slot = worker.slot(index);
    let mut phases = worker.phases.clone();
    let offset = tick_offset(index, worker.total_calls);
    let expected = Stamp {
        direction: AGENT_TO_CALLER,
        call: index as u32,
        seq: 0,
        sent_ns: 0,
    };
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut seq = 0;
    let mut next_seq = 0;
    let mut hangup: Option<tokio::time::Instant> = None;
    let mut audio = [0u8; 2048];
    loop {
        tokio::select! {
            frame = ws.next() => {
                let is_closing = || closing(hangup, &phases);
                let text = match incoming(&worker, "twilio stream", index, &mut ws, frame, is_closing, is_closing).await {
                    Incoming::Text(text) => text,
                    Incoming::Binary(_) | Incoming::Handled => continue,
                    Incoming::Done => break,
                };
                if let Some(payload) = media_payload(&text) {
                    match STANDARD.decode_slice(payload, &mut audio) {
                        Ok(len) => worker.received(expected, &audio[..len], &mut next_seq),
                        Err(_) => {
                            if worker.streaming.get() {
                                worker.stats.borrow_mut().foreign_audio += 1;
                            }
                        }
                    }
                } else if find(&text, br#""event":"clear""#).is_some() {
                    worker.stats.borrow_mut().clears += 1;
                } else if find(&text, br#""event":"mark""#).is_some() {
                    echo_mark(&mut ws, &stream_sid, &text).await;
                }
            }
            scheduled = next_tick(&mut ticker) => {
                seq += 1;
                let frame = encode_frame(Stamp {
                    direction: CALLER_TO_AGENT,
                    call: index as u32,
                    seq: seq - 1,
                    sent_ns: worker.clock.now_ns(),
                });
                let text = twilio_media(&stream_sid, seq - 1, &frame);
                let ok = ws.send(Message::Text(&text)).await.is_ok();
                worker.sent(CALLER_TO_AGENT, ok, scheduled);
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                match *phases.borrow_and_update() {
                    Phase::Stream { start } => {
                        if ticker.is_none() && worker.audio != AudioDirection::AgentToCaller && slot.bridged.get() {
                            let first = tokio::time::Instant::from_std(start + offset);
                            ticker = Some(tokio::time::interval_at(first, FRAME_INTERVAL));
                        }
                    }
                    Phase::Hangup => {
                        ticker = None;
                        hangup = Some(tokio::time::Instant::now() + HANGUP_TIMEOUT);
                        seq += 1;
                        send_stop(&mut ws, &stream_sid, seq).await;
                        if worker.target.peer.is_some() {
                            // Twilio closes the stream after `stop`; switchboard
                            // closes it first, a peer relay (Twilio's Node sample)
                            // waits for Twilio to.
                            let _ = ws.send(Message::Close).await;
                        }
                    }
                    _ => ticker = None,
                }
            }
            _ = until(hangup) => {
                no_close(&worker, "twilio stream", index, "stop");
                break;
            }
        }
    }
}
