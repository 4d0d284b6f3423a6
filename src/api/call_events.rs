//! `GET /api/calls/{id}/events` (a user's API key for their own outbound call, or
//! the admin): the call as `GET /api/calls/{id}` shows it, as server-sent events —
//! `event: call` with the whole view each time it changes, from the request until
//! its result is in (over, summarised when it was answered, and priced when it
//! was dialed — or two minutes after it ended, whichever comes first), then the
//! stream ends. A user's page reads it with `fetch` (which can send the key;
//! `EventSource` cannot) and shows the call live.
//!
//! The view is read from the store once a second per open stream (a comment line
//! keeps a quiet stream alive every 5 s, which is also when a client that left is
//! noticed); a stream lasts at most an hour — the
//! client reconnects if it still cares. At most `calls.max_event_streams` are
//! open at once in an engine: past that, `503 too-many-streams` (the page then
//! polls).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use serde_json::Value;

use super::caller::Caller;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::outbound::view::outbound_view;
use crate::store::outbound::{OutboundId, OutboundStatus};

/// How often an open stream reads the call.
const POLL: Duration = Duration::from_secs(1);
/// A comment line this often when nothing changed: proxies close idle streams,
/// and a write is how a client that left is noticed (its slot given back).
const KEEP_ALIVE_POLLS: u32 = 5;
/// The longest a stream stays open.
const MAX_POLLS: u32 = 3_600;
/// How long an ended call's stream waits for its summary and price.
const AFTER_END_POLLS: u32 = 120;
/// One open stream, counted in the engine's `event_streams` while it lives.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (now < max).then_some(now + 1)
        })
        .ok()
        .map(|_| Slot(Arc::clone(open)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A call's changes as server-sent events
///
/// `text/event-stream`: `event: call` with `data:` the whole view (as
/// `GET /api/calls/{id}` answers for an outbound call) at once and after each
/// change, `: keep-alive` after 5 s without one; it ends once the call changes no
/// more, two minutes after it ended, or after an hour. Another user's call, an
/// inbound call or no such call is a 404.
#[utoipa::path(get, path = "/api/calls/{id}/events", tag = "calls",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(("id" = String, Path, description = "The outbound call's id")),
    responses(
        (status = 200, description = "The stream; each event's `data` is an `OutboundCallView`",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 404, description = "No such outbound call, or another user's", body = ErrorBody),
        (status = 503, description = "`too-many-streams` (`Retry-After: 5`), or the database is unavailable", body = ErrorBody),
    ))]
pub async fn events(
    caller: Caller,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let missing = || ApiError::not_found(format!("no call {raw}"));
    let id = OutboundId::parse(&raw).ok_or_else(missing)?;
    let call = engine.store.get_outbound(&id).await?.ok_or_else(missing)?;
    if !caller.may_see(&call.user_id) {
        return Err(missing());
    }
    let slot = Slot::take(
        &engine.event_streams,
        engine.settings.calls.max_event_streams,
    )
    .ok_or_else(|| {
        ApiError::unavailable(
            "too-many-streams",
            "too many call event streams are open; read GET /api/calls/{id} instead",
            5,
        )
    })?;
    let stream = futures_util::stream::unfold(
        Some(Poll {
            engine,
            id,
            last: None,
            polls: 0,
            quiet: 0,
            over_polls: 0,
            _slot: slot,
        }),
        |state| async move {
            let mut state = state?;
            loop {
                if state.polls > 0 {
                    tokio::time::sleep(POLL).await;
                }
                state.polls += 1;
                if state.polls > MAX_POLLS {
                    return None;
                }
                let Some((view, over, complete)) = state.read().await else {
                    // The store is away: try again next poll, the stream stays.
                    continue;
                };
                state.over_polls = if over { state.over_polls + 1 } else { 0 };
                let settled = over && (complete || state.over_polls > AFTER_END_POLLS);
                let text = view.to_string();
                if state.last.as_deref() != Some(text.as_str()) {
                    state.last = Some(text.clone());
                    state.quiet = 0;
                    let chunk = Bytes::from(format!("event: call\ndata: {text}\n\n"));
                    let next = if settled { None } else { Some(state) };
                    return Some((Ok::<_, actix_web::Error>(chunk), next));
                }
                if settled {
                    return None;
                }
                state.quiet += 1;
                if state.quiet >= KEEP_ALIVE_POLLS {
                    state.quiet = 0;
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(state)));
                }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

struct Poll {
    engine: web::Data<Engine>,
    id: OutboundId,
    last: Option<String>,
    polls: u32,
    quiet: u32,
    /// Polls since the call was first seen over.
    over_polls: u32,
    /// Given back when the stream ends or its client goes.
    _slot: Slot,
}

impl Poll {
    /// The view now, whether the call is over, and whether its result is in too
    /// (its after-call work done when it was answered, its cost reconciled when
    /// it was dialed).
    async fn read(&self) -> Option<(Value, bool, bool)> {
        let engine = &self.engine;
        let call = engine.store.get_outbound(&self.id).await.ok()??;
        let view = outbound_view(
            &engine.store,
            &engine.settings.pricing,
            &engine.public_url,
            &call,
        )
        .await
        .ok()?;
        let over = OutboundStatus::parse(view["disposition"].as_str().unwrap_or_default())
            .is_some_and(OutboundStatus::is_terminal);
        let analyzed = view["answered_at"].is_null() || view["analyzed_at"].is_string();
        let priced = view["dialed_at"].is_null() || view["reconciled_at"].is_string();
        Some((view, over, analyzed && priced))
    }
}
