//! Voicemail: the prompt and beep, the mark that says they have played, and the
//! recording, journaled in chunks as the caller's audio arrives.

use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use serde_json::json;

use crate::audio::{self, BEEP};
use crate::ids::CallId;
use crate::journal::{now_ms, JournalEntry};
use crate::leg::{LegControl, LegRoute};
use crate::machine::{CancelReason, Phase, VoicemailReason};

use super::CallActor;

/// The mark that tells us Twilio has finished playing the voicemail prompt.
pub const PROMPT_MARK: &str = "voicemail-prompt";

/// Caller audio routed to the call itself (voicemail recording).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerAudio {
    pub frame: Bytes,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerMark {
    pub name: String,
}

/// A voicemail being recorded. The audio goes to the journal in chunks of
/// [`RECORDING_CHUNK_BYTES`] as it arrives; only the chunk being filled is held here.
pub(super) struct Voicemail {
    /// Audio not yet journaled: less than one chunk.
    pending: BytesMut,
    /// Bytes recorded so far (journaled or pending).
    pub(super) recorded: usize,
    /// Chunks journaled so far: the next chunk's `seq` is this + 1.
    chunks: i64,
    recording_started: bool,
    limit: usize,
}

/// One second of 8 kHz mu-law: a crash mid-voicemail loses at most this much.
pub const RECORDING_CHUNK_BYTES: usize = 8_000;

impl Voicemail {
    /// The pending audio as the next chunk, if there is any.
    pub(super) fn take_chunk(&mut self, call_id: &CallId) -> Option<JournalEntry> {
        if self.pending.is_empty() {
            return None;
        }
        self.chunks += 1;
        Some(JournalEntry::RecordingChunk {
            call_id: call_id.clone(),
            seq: self.chunks,
            at: now_ms(),
            audio: self.pending.split().freeze(),
        })
    }
}

impl CallActor {
    pub(super) fn go_to_voicemail(&mut self, reason: VoicemailReason, ctx: &mut Context<Self>) {
        if self.machine.phase() != Phase::Voicemail {
            match self.machine.voicemail() {
                Ok(cancel) => self.cancel_rings(&cancel, CancelReason::Timeout),
                Err(_) => return,
            }
        }
        self.leave_parking(None, ctx);
        self.cancel_ring_timer(ctx);
        self.stop_background(ctx);
        self.event("voicemail", None, json!({ "reason": reason.as_str() }));
        self.status(None);
        let limit = (self.deps.config.voicemail_max.as_millis() as usize) * 8;
        self.voicemail = Some(Voicemail {
            pending: BytesMut::new(),
            recorded: 0,
            chunks: 0,
            recording_started: false,
            limit,
        });
        let prompt = self.deps.config.voicemail_prompt.clone();
        let prompt_ms = audio::duration_ms(prompt.len() + BEEP.len());
        if let Some(leg) = &self.leg {
            leg.clear();
            for chunk in prompt.chunks(8_000) {
                leg.outbox.send_audio(prompt.slice_ref(chunk));
            }
            leg.outbox.send_audio(BEEP.clone());
            leg.outbox
                .send_after_audio(LegControl::Mark(PROMPT_MARK.into()));
            leg.route(LegRoute::Nowhere);
        }
        // If Twilio never echoes the mark, start recording once the prompt must be over.
        ctx.run_later(Duration::from_millis(prompt_ms + 2_000), |act, ctx| {
            act.start_recording(ctx)
        });
    }

    fn start_recording(&mut self, ctx: &mut Context<Self>) {
        let Some(voicemail) = &mut self.voicemail else {
            return;
        };
        if voicemail.recording_started || self.machine.is_ended() {
            return;
        }
        voicemail.recording_started = true;
        if let Some(leg) = &self.leg {
            leg.route(LegRoute::Call(ctx.address().recipient()));
        }
        let max = self.deps.config.voicemail_max;
        self.event(
            "recording_started",
            None,
            json!({ "max_ms": max.as_millis() as u64 }),
        );
        ctx.run_later(max + Duration::from_millis(500), |act, ctx| {
            if let Some(ending) = act.machine.voicemail_full() {
                act.finish(ending, "recording_limit", ctx);
            }
        });
    }
}

impl Handler<CallerAudio> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallerAudio, ctx: &mut Self::Context) {
        let Some(voicemail) = &mut self.voicemail else {
            return;
        };
        if !voicemail.recording_started {
            return;
        }
        let room = voicemail.limit.saturating_sub(voicemail.recorded);
        let take = msg.frame.len().min(room);
        voicemail.pending.extend_from_slice(&msg.frame[..take]);
        voicemail.recorded += take;
        let full = voicemail.recorded >= voicemail.limit;
        if voicemail.pending.len() >= RECORDING_CHUNK_BYTES {
            if let Some(chunk) = voicemail.take_chunk(&self.setup.id) {
                self.deps.journal.append(chunk);
            }
        }
        self.machine.recorded(take);
        if full {
            if let Some(ending) = self.machine.voicemail_full() {
                self.finish(ending, "recording_limit", ctx);
            }
        }
    }
}

impl Handler<CallerMark> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallerMark, ctx: &mut Self::Context) {
        if msg.name == PROMPT_MARK {
            self.start_recording(ctx);
        }
    }
}
