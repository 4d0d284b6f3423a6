//! Engine-wide counters, shared by every actor and read by the metrics endpoint.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Plain atomics so the hot paths pay one relaxed increment; the HTTP side turns them
/// into Prometheus metrics.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Frames moved from one side of a call to the other (both directions).
    pub audio_frames_relayed: AtomicU64,
    /// Frames dropped because a peer's audio queue was full (drop-oldest).
    pub audio_frames_dropped: AtomicU64,
    /// Socket writes: one per run of queued messages a socket's body hands its
    /// connection between two waits (they go out in one `send`), and one more
    /// per 4 KiB of a long run, where the connection flushes.
    pub socket_writes: AtomicU64,
    /// Messages (frames, JSON messages, pings) those writes carried.
    pub socket_messages: AtomicU64,
    /// Peers closed because they could not keep up with control messages.
    pub slow_peers_closed: AtomicU64,
    /// Ring messages that could not be delivered to a seat's mailbox.
    pub ring_deliveries_failed: AtomicU64,
    pub calls_started: AtomicU64,
    pub calls_active: AtomicI64,
    pub claims_won: AtomicU64,
    pub claims_lost: AtomicU64,
    pub seats_connected: AtomicI64,
    pub outcome_answered: AtomicU64,
    pub outcome_voicemail: AtomicU64,
    pub outcome_abandoned: AtomicU64,
    pub outcome_failed: AtomicU64,
    pub outcome_interrupted: AtomicU64,
    /// Assistant sessions the model accepted.
    pub ai_sessions: AtomicU64,
    /// Assistant sessions that could not start or dropped (the caller was handed on).
    pub ai_failures: AtomicU64,
    /// Of `ai_failures`, those that never started (the model was not reached or
    /// refused the session): sessions attempted = `ai_sessions` + this.
    pub ai_start_failures: AtomicU64,
    /// Requests to a provider's API that failed (Twilio's Calls: refused,
    /// unanswered, not reached).
    pub provider_errors: AtomicU64,
    /// Times a caller spoke over the assistant and its audio was cut.
    pub ai_barge_ins: AtomicU64,
    /// Audio deltas of a cancelled response that arrived late and were dropped.
    pub ai_late_deltas_dropped: AtomicU64,
    /// Realtime events that were malformed, unknown or errors (logged and ignored).
    pub ai_events_ignored: AtomicU64,
    /// Realtime model connections open now: one per AI call from its handshake until
    /// its relay stops, at most `openai.max_connections`.
    pub ai_connections_open: AtomicU64,
}

impl EngineStats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
