//! Failover and drain (issue 16, items 5 and 6).
//!
//! In cluster mode the TwiML of every call continues after `</Connect>` with
//! `<Redirect method="POST">{PUBLIC_URL}/twilio/resume?call={id}</Redirect>`:
//! Twilio runs the next verb when a `<Connect><Stream>` socket closes
//! (<https://www.twilio.com/docs/voice/twiml/stream>), so a call whose node dies,
//! or lets it go while draining, comes back through the load balancer to a live
//! node as `POST /twilio/resume` (<https://www.twilio.com/docs/voice/twiml/redirect>).
//!
//! - [`resume`]: the route. A call this engine ended gets `<Hangup/>`; a call
//!   still live here gets its stream again (its actor waits for it after a
//!   transient close), one live on another node a stream to that node; a call of a dead or draining node is
//!   adopted by a compare-and-set on its row (exactly one node wins), restarted
//!   under the same id ([`CallActor::adopt`]) and answered with `<Connect><Stream>`
//!   to this node (with the same continuation); what cannot be adopted is ended
//!   `interrupted`, once.
//! - [`spawn_sweeper`]: survivors end as `interrupted` the calls of dead nodes
//!   that no resume brought back within `cluster.resume_wait_secs`.
//! - [`drain`]: SIGTERM in cluster mode — readiness fails, each call is let go
//!   (`Release`, its trail flushed, the row marked released, its stream closed so
//!   Twilio follows the redirect), and the node waits for them to be adopted.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use switchboard_actors::assistant::Transcript;
use switchboard_actors::call::{Adoption, CallActor, CallSetup};
use switchboard_actors::number::Route;
use switchboard_actors::{AgentId, AssistantId, CallId, Workspace};
use tokio::time::Instant;

use super::twiml;
use super::webhook::{signed_form, stream_twiml, twiml as twiml_response, WebhookGate};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::store::ownership::CallOwner;

/// How often a resume looks again at a call whose owner still looks alive (its
/// membership key may not have expired yet after it died).
const OWNER_POLL: Duration = Duration::from_millis(100);

/// Past the membership key's time to live, how much longer a resume waits for a
/// live-looking owner before answering `<Hangup/>`.
const OWNER_GRACE: Duration = Duration::from_secs(1);

/// The URL Twilio is redirected to when a call's stream closes: on the public
/// URL (the load balancer), with the call's id.
pub fn resume_url(engine: &Engine, call_id: &CallId) -> String {
    format!(
        "{}/twilio/resume?call={}",
        engine.public_url,
        call_id.as_str()
    )
}

/// The query of `POST /twilio/resume`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct ResumeQuery {
    /// The engine's id of the call whose stream closed.
    pub call: String,
}

/// The form Twilio posts when it follows a `<Redirect>` (the call's fields).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct ResumeForm {
    /// `CA` + 32 hex digits; must be the call's.
    pub call_sid: String,
}

/// A call's stream closed: resume it (cluster mode)
///
/// Twilio follows the `<Redirect>` that follows `<Connect><Stream>` in cluster
/// mode. Answers TwiML: `<Hangup/>` for a call the engine ended (or could not
/// keep), `<Connect><Stream>` to this node (with the same continuation) for a
/// call live here or adopted from a dead or draining node, `<Connect><Stream>` to
/// the node that holds the call when that node is alive, `<Redirect>` back to
/// the public URL when this node drains. Signed like every webhook.
#[utoipa::path(post, path = "/twilio/resume", tag = "twilio",
    security(("twilio_signature" = [])),
    params(ResumeQuery),
    request_body(content = ResumeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML", content_type = "text/xml", body = String),
        (status = 400, description = "A signed request without a valid `call` or `CallSid`, or whose CallSid is not the call's; `bad-field`", body = ErrorBody),
        (status = 403, description = "A missing, malformed or wrong `X-Twilio-Signature` (nothing changed)", body = ErrorBody),
        (status = 408, description = "`body-timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body-too-large`", body = ErrorBody),
        (status = 503, description = "`busy`, or the database is unavailable", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(call_id))]
pub async fn resume(
    engine: web::Data<Engine>,
    gate: web::Data<WebhookGate>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form = signed_form(&engine, &gate, &req, payload).await?;
    let call_sid = form.call_sid()?.to_owned();
    let query = web::Query::<ResumeQuery>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request("bad-field", "the query has no call"))?;
    let call_id = CallId::parse(&query.call)
        .map_err(|_| ApiError::bad_request("bad-field", "call is not a call id"))?;
    tracing::Span::current().record("call_id", call_id.as_str());
    let answer = decide(&engine, &call_id, &call_sid).await?;
    Ok(twiml_response(answer))
}

/// Why a call moved, as its `node_failure` event says.
fn cause(owner: &CallOwner) -> &'static str {
    if owner.released {
        "node_draining"
    } else {
        "node_dead"
    }
}

async fn decide(engine: &Engine, call_id: &CallId, call_sid: &str) -> Result<String, ApiError> {
    if let Some(call) = engine.registry.lookup(call_id.clone()).await? {
        // Its stream closed but the actor lives here: the same call, streamed again.
        tracing::info!("resume of a call live on this node: its stream again");
        return Ok(stream_twiml(engine, call.id()));
    }
    let Some(cluster) = &engine.cluster else {
        return Ok(twiml::hang_up());
    };
    let draining = || engine.draining.load(Ordering::Relaxed);
    let deadline = Instant::now() + cluster.node_ttl() + OWNER_GRACE;
    loop {
        let Some(owner) = engine.store.call_owner(call_id).await? else {
            tracing::warn!("resume of an unknown call: hang up");
            return Ok(twiml::hang_up());
        };
        if owner.call_sid.as_deref().is_some_and(|sid| sid != call_sid) {
            return Err(ApiError::bad_request(
                "bad-field",
                "CallSid is not the call's",
            ));
        }
        if owner.ended {
            tracing::info!("resume of a call that ended: hang up");
            return Ok(twiml::hang_up());
        }
        let mine = owner.node_id == engine.store.node_id();
        if draining() && (!mine || owner.released) {
            // This node adopts nothing while it drains: back through the balancer,
            // which no longer sends anything here.
            return Ok(twiml::redirect(&resume_url(engine, call_id)));
        }
        if mine && !owner.released {
            // Not live here, not ended in the store yet: this node ended it and the
            // record is on its way through the journal.
            tracing::info!("resume of a call this node ended: hang up");
            return Ok(twiml::hang_up());
        }
        let alive = if mine || owner.released {
            Some(false)
        } else {
            match cluster.node_alive(&owner.node_id).await {
                Ok(alive) => Some(alive),
                Err(err) => {
                    tracing::warn!(%err, "resume: cannot tell whether the call's node is alive");
                    None
                }
            }
        };
        if alive == Some(false) || (alive == Some(true) && dead_before_expiry(engine, &owner).await)
        {
            return adopt(engine, call_id, owner).await;
        }
        if let (Some(true), Some(links)) = (alive, &engine.links) {
            // A transient close that came back through another node: the node
            // holding the call says so over its link, so the stream goes
            // straight to it (not after the wait a dead node's key would need).
            if links.holds(&owner.node_id, call_id).await {
                if let Ok(Some(url)) = cluster.alive_node_url(&owner.node_id).await {
                    tracing::info!(owner = %owner.node_id, "resume of a call its live node says it holds: streamed to it at once");
                    return Ok(stream_to(engine, &url, call_id));
                }
            }
        }
        if Instant::now() >= deadline {
            if alive.is_none() {
                // Nobody can say who holds it: it cannot be adopted safely.
                engine
                    .store
                    .interrupt_unheld_call(
                        call_id,
                        &owner.node_id,
                        owner.owner_epoch,
                        "not_resumed",
                    )
                    .await?;
            }
            // A live node holds the call and has not ended it: its stream closed
            // while the node lives (a transient close), and the call waits there
            // for a new one (`calls.resume_grace`). The stream goes straight to it.
            if alive == Some(true) {
                if let Ok(Some(url)) = cluster.alive_node_url(&owner.node_id).await {
                    tracing::info!(owner = %owner.node_id, "resume of a call a live node holds: streamed to it");
                    return Ok(stream_to(engine, &url, call_id));
                }
            }
            tracing::info!(owner = %owner.node_id, "resume of a call no node can hold: hang up");
            return Ok(twiml::hang_up());
        }
        tokio::time::sleep(OWNER_POLL).await;
    }
}

/// `<Connect><Stream>` of `call_id` to the node at `url`, with the same
/// continuation.
fn stream_to(engine: &Engine, url: &str, call_id: &CallId) -> String {
    twiml::connect_stream_then(
        &crate::engine::stream_url_of(url),
        &[("call_id", call_id.as_str())],
        Some(&resume_url(engine, call_id)),
    )
}

/// Two signs that the call's node died, seen before its membership key expires
/// (which takes up to `node_ttl`): its link to this node is down — a killed
/// process's sockets are closed by its kernel at once — and its key missed a
/// beat. Neither alone is enough: a live node can lose its link to this one (a
/// fault between the two) or be late to beat (Redis slow, or cut off from it),
/// and adopting a call from a live holder leaves its actor and its agent's audio
/// beside the adopter's until it gives the call up. Twilio has closed the call's
/// stream by the time it resumes, so the old holder has no caller either way.
async fn dead_before_expiry(engine: &Engine, owner: &CallOwner) -> bool {
    let (Some(cluster), Some(links)) = (&engine.cluster, &engine.links) else {
        return false;
    };
    if links.connected(&owner.node_id).is_some() {
        return false;
    }
    match cluster.beat_missed(&owner.node_id).await {
        Ok(missed) => {
            if missed {
                tracing::warn!(owner = %owner.node_id, "resume: the call's node is unlinked and missed a beat: taken for dead before its key expires");
            }
            missed
        }
        Err(err) => {
            tracing::debug!(%err, "resume: the call's node's beat cannot be read");
            false
        }
    }
}

/// The assistant an adopted call goes back to: the one its record names, if
/// it had neither handed the call over nor failed and no agent had it. A node
/// killed moments after the assistant answered may not have written that yet
/// (its journal writes in batches), so an inbound call no agent had, to a number
/// routed to an assistant now, goes to that assistant too.
async fn adopted_assistant(engine: &Engine, owner: &CallOwner) -> Option<AssistantId> {
    if owner.assistant_let_go || owner.agent_id.is_some() {
        return None;
    }
    if let Some(id) = owner.assistant_id.as_deref() {
        return AssistantId::parse(id).ok();
    }
    if owner.direction != "inbound" {
        return None;
    }
    match engine.store.get_number(&owner.to).await {
        Ok(Some(number)) => match number.route {
            Route::Ai { assistant_id } => Some(assistant_id),
            _ => None,
        },
        Ok(None) => None,
        Err(err) => {
            tracing::warn!(%err, "the adopted call's number could not be read");
            None
        }
    }
}

/// Takes the call over if this node wins the compare-and-set; the loser (or a
/// call whose record cannot be read back) ends it `interrupted` — a no-op when
/// another node won, since the owner it saw has changed.
async fn adopt(engine: &Engine, call_id: &CallId, owner: CallOwner) -> Result<String, ApiError> {
    let store = &engine.store;
    if !store
        .adopt_call(call_id, &owner.node_id, owner.owner_epoch)
        .await?
    {
        store
            .interrupt_unheld_call(call_id, &owner.node_id, owner.owner_epoch, "not_resumed")
            .await?;
        tracing::info!(from = %owner.node_id, "another node adopted the call: hang up");
        return Ok(twiml::hang_up());
    }
    let epoch = owner.owner_epoch + 1;
    // Read again now that the row is this node's: what the old holder wrote
    // before the compare-and-set is in it, and nothing it writes later will be.
    // The call is this node's now whatever that read says: a failed read goes
    // on with the row as read before the compare-and-set.
    let record = match store.call_owner(call_id).await {
        Ok(Some(record)) => record,
        Ok(None) => owner.clone(),
        Err(err) => {
            tracing::warn!(%err, "the adopted call's row could not be read again");
            owner.clone()
        }
    };
    let workspace = owner.workspace.as_deref().map(Workspace::parse);
    let Some(Ok(workspace)) = workspace else {
        store
            .interrupt_unheld_call(call_id, store.node_id(), epoch, "not_resumed")
            .await?;
        tracing::warn!("an adopted call has no workspace: ended");
        return Ok(twiml::hang_up());
    };
    let direction = if owner.direction == "outbound" {
        "outbound"
    } else {
        "inbound"
    };
    let mut assistant = adopted_assistant(engine, &record).await;
    let mut transcript = Transcript::default();
    if assistant.is_some() {
        // The new session starts from the conversation so far, and this node's
        // turns are numbered after it. Without it they would be numbered from 1
        // and the store would keep the old turns of those numbers instead: such a
        // call goes to the agents.
        match store.turns(call_id).await {
            Ok(turns) => {
                transcript.last_seq = turns.iter().map(|t| t.seq).max().unwrap_or(0);
                transcript.turns = turns.into_iter().map(|t| (t.role, t.text)).collect();
            }
            Err(err) => {
                tracing::warn!(%err, "the adopted AI call's transcript could not be read: re-offered to the agents");
                assistant = None;
            }
        }
    }
    let route = match &assistant {
        Some(assistant_id) => Route::Ai {
            assistant_id: assistant_id.clone(),
        },
        None => Route::everyone(),
    };
    let setup = CallSetup {
        id: call_id.clone(),
        call_sid: owner.call_sid.clone(),
        from: owner.from.clone(),
        to: owner.to.clone(),
        workspace,
        route,
        raw: None,
        direction,
    };
    let adoption = Adoption {
        last_seq: record.last_seq,
        agent: record
            .agent_id
            .as_deref()
            .and_then(|a| AgentId::parse(a).ok()),
        answered: record.answered,
        from_node: owner.node_id.clone(),
        cause: cause(&owner),
        started_at: owner.started_at,
        assistant,
        transcript,
    };
    let call = CallActor::adopt(setup, engine.call_deps.clone(), adoption);
    tracing::warn!(from = %owner.node_id, cause = cause(&owner), "adopted a call");
    Ok(stream_twiml(engine, call.id()))
}

/// Survivors' sweep: every `cluster.reap_interval_ms`, the open calls of nodes
/// whose membership key is gone, whose node link to this node is down and whose
/// beat count in the database has stopped; each not adopted within
/// `cluster.resume_wait_secs` of its node being seen gone is ended `interrupted`
/// (reason `node_failure`) — a compare-and-set, so exactly one survivor does it.
/// The same loop counts this node's own beat in the database.
pub fn spawn_sweeper(engine: Engine) -> Option<tokio::task::JoinHandle<()>> {
    let cluster = engine.cluster.clone()?;
    let settings = &engine.settings.cluster;
    let (every, wait) = (settings.reap_interval, settings.resume_wait);
    // A node whose count has not moved for this long has stopped beating.
    let silent_after = cluster.node_ttl().max(every * 3);
    Some(actix_rt::spawn(async move {
        // When this node first saw each dead node gone.
        let mut gone_since: HashMap<String, Instant> = HashMap::new();
        // Each node's beat count in the database, and when this node saw it move.
        let mut beats_seen: HashMap<String, (i64, Instant)> = HashMap::new();
        loop {
            tokio::time::sleep(every).await;
            if let Err(err) = engine.store.node_beat().await {
                tracing::debug!(%err, "sweep: this node's beat was not counted");
            }
            if engine.draining.load(Ordering::Relaxed) {
                continue;
            }
            let open = match engine.store.open_calls_elsewhere(1000).await {
                Ok(open) => open,
                Err(err) => {
                    tracing::debug!(%err, "sweep: open calls cannot be read");
                    continue;
                }
            };
            let mut nodes: Vec<String> = open.iter().map(|c| c.node_id.clone()).collect();
            nodes.sort();
            nodes.dedup();
            let alive = match cluster.alive_among(&nodes).await {
                Ok(alive) => alive,
                Err(err) => {
                    tracing::debug!(%err, "sweep: cannot tell which nodes are alive");
                    continue;
                }
            };
            let beats = match engine.store.node_beats(&nodes).await {
                Ok(beats) => beats,
                Err(err) => {
                    tracing::debug!(%err, "sweep: the nodes' beats cannot be read");
                    continue;
                }
            };
            let now = Instant::now();
            beats_seen.retain(|node, _| nodes.contains(node));
            for (node, count) in beats {
                match beats_seen.get(&node) {
                    Some((seen, _)) if *seen == count => {}
                    _ => {
                        beats_seen.insert(node, (count, now));
                    }
                }
            }
            // A node whose key is gone but whose link to this node is up, or
            // whose count in the database still moves, is not dead: it cannot
            // reach Redis (or its beats are late), or it is cut off from Redis
            // and from this node but not from the database — and it still
            // streams and records its calls. Only a node silent in all three is
            // gone.
            let linked = |node: &str| {
                engine
                    .links
                    .as_ref()
                    .is_some_and(|links| links.connected(node).is_some())
            };
            let beating = |node: &str| {
                beats_seen
                    .get(node)
                    .is_some_and(|(_, moved)| now.duration_since(*moved) < silent_after)
            };
            let gone = |node: &str| !alive.contains(node) && !linked(node) && !beating(node);
            gone_since.retain(|node, _| nodes.contains(node) && gone(node));
            for node in nodes.iter().filter(|n| gone(n)) {
                gone_since.entry(node.clone()).or_insert(now);
            }
            for call in &open {
                let Some(since) = gone_since.get(&call.node_id) else {
                    continue;
                };
                if now.duration_since(*since) < wait {
                    continue;
                }
                if let Err(err) = engine
                    .store
                    .interrupt_unheld_call(
                        &call.call_id,
                        &call.node_id,
                        call.owner_epoch,
                        "node_failure",
                    )
                    .await
                {
                    tracing::warn!(%err, call_id = %call.call_id, "sweep: could not end a dead node's call");
                }
            }
        }
    }))
}

/// Pause between two calls let go, so their resumes spread over the others.
const DRAIN_STEP: Duration = Duration::from_millis(50);

/// Drains this node (SIGTERM in cluster mode): readiness fails at once; each
/// live call is let go — its actor stops without ending the call, its trail is
/// flushed to the store (the adopter numbers its events after it), its row is
/// marked released, and its Twilio stream is closed, so Twilio follows the
/// `<Redirect>` through the load balancer to another node, which adopts it. Waits
/// at most `cluster.drain_timeout_secs` for every released call to be adopted;
/// what is left then is ended `interrupted` (`drain_timeout`).
pub async fn drain(engine: &Engine) {
    engine.draining.store(true, Ordering::Relaxed);
    let timeout = engine.settings.cluster.drain_timeout;
    let deadline = Instant::now() + timeout;
    let mut moved = 0_usize;
    tracing::warn!(
        timeout_ms = timeout.as_millis() as u64,
        "draining: readiness fails, calls move to the other nodes"
    );
    loop {
        let live = engine.registry.live().await.unwrap_or_default();
        for call in &live {
            match call.release("node_draining").await {
                Ok(leg) => {
                    engine.journal.flush().await;
                    match engine.store.release_call(call.id()).await {
                        Ok(true) => moved += 1,
                        Ok(false) => {
                            tracing::warn!(call_id = %call.id(), "draining: the call is not open here")
                        }
                        Err(err) => {
                            tracing::error!(call_id = %call.id(), %err, "draining: could not release the call")
                        }
                    }
                    if let Some(leg) = leg {
                        leg.hang_up("moved to another node");
                    }
                }
                Err(err) => tracing::debug!(call_id = %call.id(), %err, "draining: call gone"),
            }
            tokio::time::sleep(DRAIN_STEP).await;
        }
        let left = engine.store.released_calls_here().await;
        let waiting = left.as_ref().map_or(1, Vec::len);
        if live.is_empty() && waiting == 0 {
            tracing::info!(moved, "drained: every call moved to another node");
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = engine.store.released_calls_here().await.unwrap_or_default();
    tracing::warn!(
        left = left.len(),
        "drain timed out: calls not adopted end as interrupted"
    );
    for call in left {
        if let Err(err) = engine
            .store
            .interrupt_unheld_call(
                &call.call_id,
                &call.node_id,
                call.owner_epoch,
                "drain_timeout",
            )
            .await
        {
            tracing::error!(call_id = %call.call_id, %err, "drain: could not end a call");
        }
    }
}
