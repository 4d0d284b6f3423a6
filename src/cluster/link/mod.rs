//! Node links (issue 16, items 2–4): one authenticated WebSocket between each
//! pair of nodes, multiplexing every call between them — the requests seats make
//! of calls another node owns (an answer is a `Claim` in the owner's mailbox),
//! the notices calls send to seats on other nodes, and both directions of their
//! audio.
//!
//! - **One link per pair.** The node whose id sorts first dials (`GET
//!   /cluster/link` on the other's `SWITCHBOARD_NODE_URL`), the other accepts;
//!   every alive member is dialed by the [`Links::start`] loop, and redialed with
//!   backoff (100 ms doubling to 5 s) while it stays alive. A newer link from the
//!   same node replaces the older one.
//! - **Trust.** The handshake ([`handshake`]) proves the cluster secret both
//!   ways; a request that fails it is answered 401 and logged, and not a frame of
//!   it is read.
//! - **Backpressure.** Each link writes through an [`Outbox`], as every socket of
//!   the engine does: control messages in order (a peer that falls
//!   [`CONTROL_LIMIT`] behind is cut off), audio bounded by
//!   `cluster.link_audio_frames` with the oldest frame dropped and counted.
//! - **Media never goes through Redis.** Redis only says who is alive and which
//!   seats are where ([`super::presence`]); a call in progress keeps its audio
//!   while Redis is away.

mod coverage;
pub mod handshake;
mod proxy;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_http::ws::Message;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use secrecy::SecretString;
use switchboard_actors::call::{CallHandle, CallReply, CallRequest, ClaimResult};
use switchboard_actors::coordinator::CoordinatorHandle;
use switchboard_actors::outbox::{AudioPort, Outbox, OutboxLimits, Outgoing};
use switchboard_actors::registry::RegistryHandle;
use switchboard_actors::seat::SeatLink;
use switchboard_actors::stats::EngineStats;
use switchboard_actors::EngineError;
use tokio::sync::{oneshot, Notify};

use self::handshake::{DialRequest, Nonces, Refusal};
use self::proxy::RemoteCall;
use self::wire::{Address, CallRef, Control, SeatRef, WireReply, WireRequest};
use super::membership::now_ms;
use super::Cluster;
use crate::net::socket::{self, PlainWire};

pub use self::proxy::RemoteFloorOverLinks;

/// The coordinator knows each link's floor feed by an id counted down from here
/// (consoles count up from 0; the presence publisher is `u64::MAX`).
static FEED_IDS: AtomicU64 = AtomicU64::new(u64::MAX - 1);

/// Control messages a link holds for a slow peer before it is cut off.
pub const CONTROL_LIMIT: usize = 65_536;
/// The largest frame a link reads (a `lot` of a large workspace is the biggest).
const MAX_FRAME_BYTES: usize = 4 << 20;
/// How long a dial may take, handshake included.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// The first wait before redialing a node, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Connections the dialer's client may hold: one per peer node. awc's default
/// (100) would cap a cluster silently; this caps it on purpose, far above any
/// cluster this engine is built for.
const MAX_PEERS: usize = 256;

/// This node's links to the others: cheap to clone.
#[derive(Clone)]
pub struct Links {
    inner: Arc<Inner>,
}

struct Inner {
    me: Arc<str>,
    cluster: Cluster,
    secret: SecretString,
    coordinator: CoordinatorHandle,
    registry: RegistryHandle,
    stats: Arc<EngineStats>,
    limits: OutboxLimits,
    request_timeout: Duration,
    peers: Mutex<HashMap<Arc<str>, Arc<Peer>>>,
    /// Woken whenever a link comes up.
    up: Notify,
    nonces: Nonces,
    dialing: Mutex<HashSet<Arc<str>>>,
    /// Audio frames dropped by links that are closed now (live ones count their own).
    dropped_closed: AtomicU64,
    refused: AtomicU64,
    /// Set once the node is stopping: no link is opened or accepted after it.
    stopping: std::sync::atomic::AtomicBool,
    /// Redis answered the last read of the members (or of the seats): while it
    /// does not, a ring reaches this node's seats without waiting for Redis.
    redis_answers: std::sync::atomic::AtomicBool,
    /// The HTTP worker the links this node dials run on ([`Links::worker_started`]).
    home: Mutex<Option<actix_rt::ArbiterHandle>>,
    /// The thread that made these links (the main one): not a worker.
    main_thread: std::thread::ThreadId,
}

/// One live link to a peer node.
pub struct Peer {
    node: Arc<str>,
    outbox: Outbox<String>,
    /// Audio destinations of this node the peer may send to, by port number.
    exports: Mutex<HashMap<u64, AudioPort>>,
    next_port: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<WireReply>>>,
    next_request: AtomicU64,
}

impl Peer {
    fn new(node: Arc<str>, limits: OutboxLimits, stats: Arc<EngineStats>) -> Peer {
        Peer {
            node,
            outbox: Outbox::with_overflow_reason(limits, stats, "node link too slow"),
            exports: Mutex::default(),
            next_port: AtomicU64::new(1),
            pending: Mutex::default(),
            next_request: AtomicU64::new(1),
        }
    }

    fn send(&self, control: &Control) -> bool {
        match serde_json::to_string(control) {
            Ok(text) => self.outbox.send(text),
            Err(e) => {
                tracing::error!(error = %e, "a node link message could not be written");
                false
            }
        }
    }

    /// Lets the peer send audio to `port`; its number on this link.
    fn export(&self, port: AudioPort) -> u64 {
        let id = self.next_port.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut exports) = self.exports.lock() {
            exports.insert(id, port);
        }
        id
    }

    fn audio(&self, address: &Address, payload: &[u8]) {
        self.outbox.send_audio(address.frame(payload));
    }

    fn is_up(&self) -> bool {
        !self.outbox.is_closed()
    }

    /// The link is gone: pending requests fail, exported ports are forgotten.
    fn closed(&self) {
        self.outbox.finish();
        if let Ok(mut pending) = self.pending.lock() {
            pending.clear();
        }
        if let Ok(mut exports) = self.exports.lock() {
            exports.clear();
        }
    }
}

/// A frame read from either end of a link.
enum Incoming {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Close,
    Ignored,
}

impl Links {
    /// This node's links; nothing is dialed before [`Links::start`].
    pub fn new(
        cluster: Cluster,
        secret: SecretString,
        coordinator: CoordinatorHandle,
        registry: RegistryHandle,
        stats: Arc<EngineStats>,
        audio_frames: usize,
        request_timeout: Duration,
    ) -> Links {
        Links {
            inner: Arc::new(Inner {
                me: Arc::from(cluster.node_id()),
                cluster,
                secret,
                coordinator,
                registry,
                stats,
                limits: OutboxLimits {
                    audio_frames,
                    control_messages: CONTROL_LIMIT,
                    wake_batch: Duration::ZERO,
                },
                request_timeout,
                peers: Mutex::default(),
                up: Notify::new(),
                nonces: Nonces::default(),
                dialing: Mutex::default(),
                dropped_closed: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                stopping: std::sync::atomic::AtomicBool::new(false),
                redis_answers: std::sync::atomic::AtomicBool::new(true),
                home: Mutex::default(),
                main_thread: std::thread::current().id(),
            }),
        }
    }

    pub fn me(&self) -> &str {
        &self.inner.me
    }

    /// Called on each HTTP worker as it starts (the app factory runs there): the
    /// links this node dials run on the first worker. A link accepted from a peer
    /// runs on the worker that accepted it, where the Twilio streams and
    /// softphones of that worker also live; a dialed link spawned from the dial
    /// loop would run on the main thread instead, and then every frame between a
    /// socket and the link would wake another thread (a measured ~10 µs and a
    /// context switch per frame, docs/BENCHMARKS.md "Cluster mode").
    pub fn worker_started(&self) {
        if std::thread::current().id() == self.inner.main_thread {
            return;
        }
        if let Ok(mut home) = self.inner.home.lock() {
            home.get_or_insert_with(actix_rt::Arbiter::current);
        }
    }

    /// Starts the loop that keeps a link to every alive member this node dials
    /// and tells the coordinator how much of the cluster it sees
    /// ([`coverage`]), and lets the coordinator ring the other nodes' seats
    /// through these links.
    pub fn start(&self, every: Duration) {
        self.inner
            .coordinator
            .set_remote_floor(Arc::new(RemoteFloorOverLinks::new(self.clone())));
        let links = self.clone();
        actix_rt::spawn(async move {
            let mut backoff: HashMap<String, (tokio::time::Instant, Duration)> = HashMap::new();
            let mut tick = tokio::time::interval(every.min(Duration::from_millis(500)));
            let mut watch = coverage::CoverageWatch::default();
            loop {
                tick.tick().await;
                if links.inner.stopping.load(Ordering::Relaxed) {
                    return;
                }
                let members = match links.inner.cluster.members().await {
                    Ok(members) => members,
                    Err(err) => {
                        tracing::debug!(error = %err, "the members cannot be read; links are dialed later");
                        links.redis_answered(false);
                        links
                            .inner
                            .coordinator
                            .set_coverage(watch.redis_unreachable());
                        continue;
                    }
                };
                links.redis_answered(true);
                let seen =
                    watch.observed(links.me(), &members, |node| links.connected(node).is_some());
                links.inner.coordinator.set_coverage(seen);
                let now = tokio::time::Instant::now();
                for member in members.iter().filter(|m| m.alive) {
                    let node = &member.record.id;
                    if !links.dials(node) || links.connected(node).is_some() {
                        backoff.remove(node);
                        continue;
                    }
                    let (due, wait) = backoff.get(node).copied().unwrap_or((now, FIRST_BACKOFF));
                    if due > now {
                        continue;
                    }
                    backoff.insert(node.clone(), (now + wait, (wait * 2).min(MAX_BACKOFF)));
                    tracing::debug!(peer = %node, "dialing a node link");
                    links.dial(Arc::from(node.as_str()), member.record.url.clone());
                }
            }
        });
    }

    /// Closes every link (the node is stopping).
    pub fn close_all(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        let peers: Vec<Arc<Peer>> = self
            .inner
            .peers
            .lock()
            .map(|mut peers| peers.drain().map(|(_, peer)| peer).collect())
            .unwrap_or_default();
        for peer in peers {
            peer.outbox.close(1001, "node stopping");
        }
    }

    /// Whether Redis answered the last read; logged when that changes.
    fn redis_answered(&self, answered: bool) {
        let before = self.inner.redis_answers.swap(answered, Ordering::Relaxed);
        match (before, answered) {
            (true, false) => tracing::warn!(
                "Redis does not answer: rings reach this node's seats only, and consoles are told the floor is partial"
            ),
            (false, true) => tracing::info!("Redis answers again: rings reach every node's seats"),
            _ => {}
        }
    }

    /// Whether Redis answered the last read (see [`Links::redis_answered`]).
    fn redis_answers(&self) -> bool {
        self.inner.redis_answers.load(Ordering::Relaxed)
    }

    /// This node dials `node` (the other accepts): the lower id dials.
    fn dials(&self, node: &str) -> bool {
        *self.inner.me < *node
    }

    /// The live link to `node`, if there is one.
    pub fn connected(&self, node: &str) -> Option<Arc<Peer>> {
        let peers = self.inner.peers.lock().ok()?;
        peers.get(node).filter(|peer| peer.is_up()).cloned()
    }

    /// The link to `node`, waiting (at most the request timeout) for it to come up.
    async fn peer(&self, node: &str) -> Result<Arc<Peer>, EngineError> {
        let deadline = tokio::time::Instant::now() + self.inner.request_timeout;
        loop {
            let notified = self.inner.up.notified();
            if let Some(peer) = self.connected(node) {
                return Ok(peer);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(EngineError::Unavailable(format!(
                    "node {node} cannot be reached over its link"
                )));
            }
        }
    }

    /// Links up now, and audio frames they dropped (all links, ever).
    pub fn gauges(&self) -> (usize, u64, u64) {
        let Ok(peers) = self.inner.peers.lock() else {
            return (0, 0, 0);
        };
        let live: Vec<&Arc<Peer>> = peers.values().filter(|p| p.is_up()).collect();
        let dropped = live.iter().map(|p| p.outbox.dropped()).sum::<u64>()
            + self.inner.dropped_closed.load(Ordering::Relaxed);
        (
            live.len(),
            dropped,
            self.inner.refused.load(Ordering::Relaxed),
        )
    }

    /// Makes `peer` the link to its node, replacing (and closing) an older one.
    fn install(&self, peer: Arc<Peer>) {
        let old = self
            .inner
            .peers
            .lock()
            .ok()
            .and_then(|mut peers| peers.insert(Arc::clone(&peer.node), Arc::clone(&peer)));
        if let Some(old) = old {
            self.retire(&old);
        }
        tracing::info!(peer = %peer.node, "node link up");
        self.inner.up.notify_waiters();
        // This node's floor goes to the peer: a snapshot, then every change.
        let feed = Arc::new(proxy::PeerFeed {
            peer: Arc::clone(&peer),
            known: Mutex::default(),
        });
        let id = FEED_IDS.fetch_sub(1, Ordering::Relaxed);
        let coordinator = self.inner.coordinator.clone();
        actix_rt::spawn(async move {
            let _ = coordinator.register_supervisor(id, feed).await;
        });
    }

    /// `peer` is gone: forgotten if it is still the node's link, with the floor
    /// it told.
    fn remove(&self, peer: &Arc<Peer>) {
        let current = self.inner.peers.lock().is_ok_and(|mut peers| {
            let current = peers.get(&peer.node).is_some_and(|p| Arc::ptr_eq(p, peer));
            if current {
                peers.remove(&peer.node);
            }
            current
        });
        if current {
            self.inner.coordinator.peer_gone(Arc::clone(&peer.node));
        }
        self.retire(peer);
    }

    fn retire(&self, peer: &Arc<Peer>) {
        if peer.is_up() {
            tracing::warn!(peer = %peer.node, "node link down");
        }
        self.inner
            .dropped_closed
            .fetch_add(peer.outbox.dropped(), Ordering::Relaxed);
        peer.closed();
    }

    fn dial(&self, node: Arc<str>, url: String) {
        {
            let Ok(mut dialing) = self.inner.dialing.lock() else {
                return;
            };
            if !dialing.insert(Arc::clone(&node)) {
                return;
            }
        }
        let links = self.clone();
        let dial = move || {
            actix_rt::spawn(async move {
                let result = links.connect(&node, &url).await;
                if let Ok(mut dialing) = links.inner.dialing.lock() {
                    dialing.remove(&node);
                }
                if let Err(reason) = result {
                    tracing::warn!(peer = %node, %url, %reason, "node link could not be opened");
                }
            });
        };
        // On the home worker (see `worker_started`), else here; a worker that is
        // gone (the server stopping) is forgotten and the dial made here.
        let home = self.inner.home.lock().ok().and_then(|home| home.clone());
        match home {
            Some(home) => {
                let dial = Arc::new(Mutex::new(Some(dial)));
                let there = Arc::clone(&dial);
                let sent = home.spawn_fn(move || {
                    if let Some(dial) = there.lock().ok().and_then(|mut d| d.take()) {
                        dial();
                    }
                });
                if !sent {
                    if let Ok(mut home) = self.inner.home.lock() {
                        *home = None;
                    }
                    if let Some(dial) = dial.lock().ok().and_then(|mut d| d.take()) {
                        dial();
                    }
                }
            }
            None => dial(),
        }
    }

    async fn connect(&self, node: &Arc<str>, url: &str) -> Result<(), String> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let time = now_ms();
        let signature =
            handshake::dial_signature(&self.inner.secret, self.me(), node, time, &nonce);
        let client = awc::Client::builder()
            .connector(
                awc::Connector::new()
                    .connector(crate::net::nodelay_tcp())
                    .limit(MAX_PEERS),
            )
            .disable_timeout()
            .finish();
        let request = client
            .ws(format!("{}/cluster/link", url.trim_end_matches('/')))
            .max_frame_size(MAX_FRAME_BYTES)
            .header(handshake::NODE_HEADER, self.me())
            .header(handshake::TARGET_HEADER, node.as_ref())
            .header(handshake::TIME_HEADER, time.to_string())
            .header(handshake::NONCE_HEADER, nonce.as_str())
            .header(handshake::SIGNATURE_HEADER, signature);
        let (_, framed) = tokio::time::timeout(DIAL_TIMEOUT, request.connect())
            .await
            .map_err(|_| "the handshake did not finish in time".to_owned())?
            .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = framed.split();
        // The acceptor's proof comes first; nothing is trusted before it.
        let proof = tokio::time::timeout(DIAL_TIMEOUT, stream.next())
            .await
            .map_err(|_| "the peer sent no proof of the secret".to_owned())?;
        let proven = match proof {
            Some(Ok(awc::ws::Frame::Text(text))) => std::str::from_utf8(&text)
                .ok()
                .and_then(|t| t.strip_prefix("accept:"))
                .is_some_and(|sig| {
                    handshake::accepted(&self.inner.secret, node, self.me(), &nonce, sig)
                }),
            _ => false,
        };
        if !proven {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            tracing::error!(peer = %node, "node link refused: the peer did not prove the cluster's secret");
            let _ = sink.close().await;
            return Err("the peer's proof does not verify".into());
        }
        let peer = Arc::new(Peer::new(
            Arc::clone(node),
            self.inner.limits,
            Arc::clone(&self.inner.stats),
        ));
        self.install(Arc::clone(&peer));
        let writer_peer = Arc::clone(&peer);
        actix_rt::spawn(async move {
            // A wake-up writes everything queued, then flushes once: one syscall
            // for all the frames (of every call) pushed while the writer slept, as
            // the engine's socket writers do (src/ws/writer.rs). `send` would
            // flush, i.e. write to the socket, once per frame.
            'link: while let Some(first) = writer_peer.outbox.next().await {
                let mut item = Some(first);
                while let Some(next) = item.take().or_else(|| writer_peer.outbox.try_next()) {
                    let message = match next {
                        Outgoing::Control(text) => awc::ws::Message::Text(text.into()),
                        Outgoing::Audio(frame) => awc::ws::Message::Binary(frame),
                        Outgoing::Ping => awc::ws::Message::Ping(Bytes::new()),
                        Outgoing::Pong(payload) => awc::ws::Message::Pong(payload),
                        Outgoing::Close(_) => break 'link,
                    };
                    if sink.feed(message).await.is_err() {
                        break 'link;
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
            writer_peer.closed();
        });
        let incoming = stream.map(|frame| match frame {
            Ok(awc::ws::Frame::Text(text)) => Incoming::Text(text),
            Ok(awc::ws::Frame::Binary(data)) => Incoming::Binary(data),
            Ok(awc::ws::Frame::Ping(data)) => Incoming::Ping(data),
            Ok(awc::ws::Frame::Close(_)) | Err(_) => Incoming::Close,
            Ok(_) => Incoming::Ignored,
        });
        self.read(peer, incoming).await;
        Ok(())
    }

    /// `GET /cluster/link`: a node's dial. Checked before anything is upgraded.
    pub async fn accept(
        &self,
        req: &HttpRequest,
        body: web::Payload,
    ) -> Result<HttpResponse, Refusal> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let dial = DialRequest {
            from: header(handshake::NODE_HEADER),
            to: header(handshake::TARGET_HEADER),
            time_ms: header(handshake::TIME_HEADER).parse().unwrap_or(0),
            nonce: header(handshake::NONCE_HEADER),
            signature: header(handshake::SIGNATURE_HEADER),
        };
        let checked = handshake::check(
            &self.inner.secret,
            self.me(),
            &dial,
            &self.inner.nonces,
            now_ms(),
        )
        .and_then(|()| {
            // A node id is checked like any input before it names a peer.
            if crate::config::is_node_id(dial.from) && dial.from != self.me() {
                Ok(())
            } else {
                Err(Refusal::BadNode(dial.from.to_owned()))
            }
        });
        if self.inner.stopping.load(Ordering::Relaxed) {
            return Err(Refusal::Stopping);
        }
        if let Err(refusal) = checked {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                from = %dial.from,
                peer_addr = ?req.peer_addr(),
                reason = %refusal,
                "refused a node link"
            );
            return Err(refusal);
        }
        let node: Arc<str> = Arc::from(dial.from);
        let proof = handshake::accept_signature(&self.inner.secret, self.me(), &node, dial.nonce);
        let peer = Arc::new(Peer::new(
            Arc::clone(&node),
            self.inner.limits,
            Arc::clone(&self.inner.stats),
        ));
        // The socket's body drains the peer's outbox (as the engine's other
        // sockets do, `net::socket`): the proof first, then everything queued
        // each time the connection runs, in one write. Whole messages: the
        // dialer may be an older engine that reads no fragments.
        peer.outbox.send(format!("accept:{proof}"));
        let (response, messages) = socket::accept(
            req,
            body,
            peer.outbox.clone(),
            PlainWire,
            socket::Frames::whole(MAX_FRAME_BYTES),
        )
        .map_err(|_| Refusal::NotWebSocket)?;
        let links = self.clone();
        actix_rt::spawn(async move {
            links.install(Arc::clone(&peer));
            let incoming = messages.map(|m| match m {
                Ok(Message::Text(text)) => Incoming::Text(text.into_bytes()),
                Ok(Message::Binary(data)) => Incoming::Binary(data),
                Ok(Message::Ping(data)) => Incoming::Ping(data),
                Ok(Message::Close(_)) | Err(_) => Incoming::Close,
                Ok(_) => Incoming::Ignored,
            });
            let closed = Arc::clone(&peer);
            links.read(peer, incoming).await;
            closed.closed();
        });
        Ok(response)
    }

    /// Reads `peer`'s frames until the link closes.
    async fn read(&self, peer: Arc<Peer>, incoming: impl futures_util::Stream<Item = Incoming>) {
        let mut incoming = std::pin::pin!(incoming);
        while let Some(frame) = incoming.next().await {
            match frame {
                Incoming::Binary(data) => self.audio_in(&peer, data),
                Incoming::Text(text) => match serde_json::from_slice::<Control>(&text) {
                    Ok(control) => self.control_in(&peer, control),
                    Err(e) => {
                        tracing::warn!(peer = %peer.node, error = %e, "unreadable node link message")
                    }
                },
                Incoming::Ping(data) => peer.outbox.pong(data),
                Incoming::Close => break,
                Incoming::Ignored => {}
            }
        }
        self.remove(&peer);
    }

    fn audio_in(&self, peer: &Peer, data: Bytes) {
        let Some((to, at)) = wire::To::read(&data) else {
            tracing::debug!(peer = %peer.node, "malformed audio frame on a node link");
            return;
        };
        // Per frame: the address is read in place and only the destination's
        // `Arc` is cloned (no id parsed, no seat cloned).
        let port = match to {
            wire::To::Port(port) => peer
                .exports
                .lock()
                .ok()
                .and_then(|exports| exports.get(&port).cloned()),
            wire::To::Seat(agent) => self.inner.coordinator.local_seat_audio(agent),
        };
        if let Some(port) = port {
            port.push_audio(data.slice(at..));
        }
    }

    fn control_in(&self, peer: &Arc<Peer>, control: Control) {
        match control {
            Control::Reply { id, reply } => {
                let waiting = peer.pending.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(waiting) = waiting {
                    let _ = waiting.send(reply);
                }
            }
            Control::Release { port } => {
                if let Ok(mut exports) = peer.exports.lock() {
                    exports.remove(&port);
                }
            }
            Control::Notice { agent, notice } => {
                let Some(seat) = self.inner.coordinator.local_seat(&agent) else {
                    return;
                };
                if let Some(notice) = proxy::notice_in(self, peer, notice) {
                    let _ = seat.notices.try_send(notice);
                }
            }
            floor @ (Control::FloorSnapshot { .. }
            | Control::Floor { .. }
            | Control::SeatOpened { .. }) => proxy::floor_in(self, peer, floor),
            Control::Request { id, call, request } => {
                let links = self.clone();
                let peer = Arc::clone(peer);
                actix_rt::spawn(async move {
                    let reply = links.serve(&peer, call, request).await;
                    if id != 0 {
                        peer.send(&Control::Reply { id, reply });
                    }
                });
            }
        }
    }

    /// A request from `peer` to a call this node owns.
    async fn serve(
        &self,
        peer: &Arc<Peer>,
        call_id: switchboard_actors::CallId,
        request: WireRequest,
    ) -> WireReply {
        let call = match self.inner.registry.lookup(call_id.clone()).await {
            Ok(Some(call)) if !call.is_remote() => call,
            _ => {
                return error_reply(&EngineError::Gone("call"));
            }
        };
        let request = match proxy::request_in(self, peer, request) {
            Ok(request) => request,
            Err(err) => return error_reply(&err),
        };
        match call.serve(request).await {
            Ok(CallReply::Done) => WireReply::Done,
            Ok(CallReply::Claim(ClaimResult::Lost)) => WireReply::Lost,
            Ok(CallReply::Claim(ClaimResult::Won { peer_audio })) => WireReply::Won {
                port: peer.export(peer_audio),
            },
            Err(err) => error_reply(&err),
        }
    }

    /// A seat as the wire names it, wherever it is connected.
    fn seat_ref(&self, seat: &SeatLink) -> SeatRef {
        SeatRef {
            agent_id: seat.agent_id.clone(),
            name: seat.name.to_string(),
            workspace: seat.workspace.clone(),
            node: seat.node.as_deref().unwrap_or(self.me()).to_owned(),
        }
    }

    /// A call as the wire names it, with the node that owns it.
    fn call_ref(&self, call: &CallHandle) -> CallRef {
        CallRef {
            id: call.id().clone(),
            from: call.from().to_owned(),
            to: call.to().to_owned(),
            node: call.remote_node().unwrap_or(self.me()).to_owned(),
        }
    }

    /// A call on `node`, reached through its link.
    fn remote_call(&self, call: CallRef) -> CallHandle {
        let remote = Arc::new(RemoteCall::new(self.clone(), Arc::from(call.node.as_str())));
        CallHandle::remote(call.id, call.from, call.to, remote)
    }

    /// Node `node`, over its live link, says it holds call `call_id` live
    /// (false without a live link, or on any other answer).
    pub async fn holds(&self, node: &str, call_id: &switchboard_actors::CallId) -> bool {
        if self.connected(node).is_none() {
            return false;
        }
        matches!(
            self.request(node, call_id, CallRequest::Holds).await,
            Ok(CallReply::Done)
        )
    }

    /// Sends `request` to the call on `node` and waits for its answer.
    async fn request(
        &self,
        node: &str,
        call_id: &switchboard_actors::CallId,
        request: CallRequest,
    ) -> Result<CallReply, EngineError> {
        let peer = self.peer(node).await?;
        let wire = proxy::request_out(self, &peer, request);
        let id = peer.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = peer.pending.lock() {
            pending.insert(id, tx);
        }
        let sent = peer.send(&Control::Request {
            id,
            call: call_id.clone(),
            request: wire,
        });
        if !sent {
            return Err(EngineError::Unavailable(format!(
                "the link to node {node} is closed"
            )));
        }
        let reply = match tokio::time::timeout(self.inner.request_timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(EngineError::Gone("call")),
            Err(_) => {
                if let Ok(mut pending) = peer.pending.lock() {
                    pending.remove(&id);
                }
                return Err(EngineError::Overloaded("call"));
            }
        };
        proxy::reply_in(self, &peer, reply)
    }

    /// Sends `request` to the call on `node` without waiting for an answer.
    fn tell(&self, node: &str, call_id: &switchboard_actors::CallId, request: CallRequest) {
        let Some(peer) = self.connected(node) else {
            tracing::debug!(%node, request = request.name(), "no link for a request; dropped");
            return;
        };
        let wire = proxy::request_out(self, &peer, request);
        peer.send(&Control::Request {
            id: 0,
            call: call_id.clone(),
            request: wire,
        });
    }

    fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }
}

fn error_reply(err: &EngineError) -> WireReply {
    WireReply::Error {
        code: err.code().to_owned(),
        message: err.to_string(),
    }
}

/// The error a peer reported, as this node's actors know it.
fn error_in(code: &str, message: String) -> EngineError {
    match code {
        "gone" => EngineError::Gone("call"),
        "overloaded" => EngineError::Overloaded("call"),
        "not-found" => EngineError::NotFound(message),
        "agent-unavailable" => EngineError::Unavailable(message),
        "agent-away" => EngineError::Away(message),
        "agent-busy" => EngineError::Busy(message),
        "wrong-workspace" => EngineError::WrongWorkspace(message),
        "not-on-call" => EngineError::NotOnCall(message),
        _ => EngineError::Refused(message),
    }
}

/// `GET /cluster/link`: another node's link (cluster mode only; `404` otherwise).
#[utoipa::path(
    get,
    path = "/cluster/link",
    tag = "cluster",
    operation_id = "cluster_link",
    summary = "A node link (cluster mode)",
    description = "Upgrades to the WebSocket that carries every call between two nodes of a \
                   cluster. The dialing node signs its request with the cluster secret \
                   (HMAC-SHA256 over its id, this node's id, the time and a nonce, in the \
                   `x-switchboard-*` headers); the first frame back is this node's proof. \
                   See docs/protocol.md, \"Node links\".",
    security(("cluster_link" = [])),
    responses(
        (status = 101, description = "Switching protocols: the link is open"),
        (status = 401, description = "`unauthorized`: the handshake does not verify (logged)"),
        (status = 404, description = "`not-cluster`: this engine is not in cluster mode"),
    )
)]
pub async fn link_socket(
    links: Option<web::Data<Links>>,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    // The bodies have the shape of every error of the API (`ErrorBody`).
    let Some(links) = links else {
        return HttpResponse::NotFound().json(serde_json::json!({
            "code": "not-cluster",
            "message": "this engine is not in cluster mode",
        }));
    };
    match links.accept(&req, body).await {
        Ok(response) => response,
        Err(_) => HttpResponse::Unauthorized().json(serde_json::json!({
            "code": "unauthorized",
            "message": "the node link's handshake does not verify",
        })),
    }
}
