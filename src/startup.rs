//! Builds the engine: store, journal, actors, HTTP server. `Application::build` binds
//! the listener first, so tests can ask for port 0 and read the port back.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use secrecy::SecretString;
use switchboard_actors::call::CallDeps;
use switchboard_actors::coordinator::CoordinatorHandle;
use switchboard_actors::number::NumberBookHandle;
use switchboard_actors::parking::ParkingHandle;
use switchboard_actors::registry::RegistryHandle;
use switchboard_actors::stats::EngineStats;

use crate::alerts::{AlertBoard, AlertDeps, Alerts};
use crate::cluster::link::Links;
use crate::cluster::{self, Cluster, Heartbeat};
use crate::config::Settings;
use crate::engine::Engine;
use crate::outbound::clock::ClockHandle;
use crate::outbound::dispatch::{DispatchDeps, DispatchWaker, OutboundDispatcher};
use crate::outbound::hours::CallingHours;
use crate::outbound::notify::{CallbackConfig, DeliveryWorker};
use crate::outbound::reconcile_cost::{CostReconciler, ReconcileDeps};
use crate::outbound::submit::{BurstCheck, BurstLimiter, SharedBursts};
use crate::safety::review::{ReviewDeps, ReviewWorker};
use crate::store::journal::{JournalConfig, JournalWriter};
use crate::store::Store;
use crate::{api, health, metrics, openapi, twilio, ws};

/// Where an HTTP/1 connection's write buffer is flushed (see `build`).
const H1_WRITE_BUFFER_BYTES: usize = crate::net::socket::WRITE_BYTES;

pub struct Application {
    port: u16,
    server: Server,
    engine: Engine,
    /// Posts callbacks to users' `callback_url`s; stopped after the server.
    deliveries: DeliveryWorker,
    /// Settles ended outbound calls (price, actual cost, `call.result`).
    reconciler: CostReconciler,
    /// Reviews ended outbound calls (transcript, telephony pattern, number
    /// health).
    reviewer: ReviewWorker,
    /// Judges the alert rules and notifies their receivers.
    alerts: Alerts,
    /// This node's membership heartbeat, in cluster mode; stopped (the node
    /// leaves) as soon as the server stops.
    heartbeat: Option<Heartbeat>,
    /// In cluster mode, the sweep that ends dead nodes' calls no resume brought
    /// back (`twilio::resume::spawn_sweeper`); aborted at shutdown.
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, ClockHandle::system()).await
    }

    /// [`Application::build`] with the clock the outbound gates read (tests pass
    /// a `ManualClock`'s handle).
    pub async fn build_with_clock(
        settings: Settings,
        clock: ClockHandle,
    ) -> anyhow::Result<Application> {
        raise_open_files_limit();
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let engine = build_engine(settings, &listener, clock).await?;
        OutboundDispatcher::start(
            DispatchDeps {
                store: engine.store.clone(),
                clock: engine.clock.clone(),
                settings: Arc::clone(&engine.settings),
                calling_hours: engine.calling_hours,
                twilio: crate::providers::twilio::TwilioClient::for_calls(&engine.settings)
                    .context("building the Twilio calls client")?,
                stats: Arc::clone(&engine.stats),
                public_url: Arc::clone(&engine.public_url),
                screener: Arc::clone(&engine.screener),
            },
            &engine.outbound_dispatch,
        );
        let deliveries = DeliveryWorker::spawn(
            engine.store.clone(),
            CallbackConfig::from(&engine.settings.outbound),
            engine.clock.clone(),
        )
        .context("starting the callback delivery worker")?;
        let reconciler = CostReconciler::spawn(
            ReconcileDeps::from_settings(
                &engine.settings,
                engine.store.clone(),
                engine.clock.clone(),
                Arc::clone(&engine.public_url),
            )
            .context("starting the outbound cost reconciler")?,
            engine.settings.outbound.result_poll,
        );
        let review_clock = engine.clock.clone();
        let reviewer = ReviewWorker::spawn(ReviewDeps::new(
            Arc::clone(&engine.settings),
            engine.store.clone(),
            Arc::new(move || review_clock.now().as_millisecond()),
        ));
        let alerts = Alerts::start(AlertDeps {
            settings: Arc::clone(&engine.settings),
            store: engine.store.clone(),
            journal: engine.journal.clone(),
            stats: Arc::clone(&engine.stats),
            clock: engine.clock.clone(),
            board: engine.alerts.clone(),
        })
        .context("starting the alerts")?;
        let heartbeat = engine
            .cluster
            .as_ref()
            .map(|cluster| cluster.start_heartbeat(Arc::clone(&engine.stats)));
        if let Some(cluster) = &engine.cluster {
            cluster
                .start_presence(engine.coordinator.clone())
                .await
                .context("publishing seat presence to the cluster")?;
        }
        let sweeper = crate::twilio::resume::spawn_sweeper(engine.clone());
        if let Some(links) = &engine.links {
            links.start(engine.settings.cluster.heartbeat_interval);
        }
        if let Some(cluster) = &engine.cluster {
            let slots = cluster::slots::ClusterSlots::new(cluster.clone());
            engine.parking.share_slots(Arc::new(slots));
        }
        let links = engine.links.clone().map(web::Data::new);
        let workers = match engine.settings.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let data = web::Data::new(engine.clone());
        // One gate for the whole engine: the bound on webhook bodies read at once
        // holds across workers.
        let gate = web::Data::new(twilio::webhook::WebhookGate::new(&engine.settings.twilio));
        let mut server = HttpServer::new(move || {
            let app = App::new().app_data(data.clone()).app_data(gate.clone());
            let app = match &links {
                Some(links) => {
                    // The factory runs on each worker: the links this node dials
                    // run on one (not the main thread), with the sockets they carry.
                    links.worker_started();
                    app.app_data(links.clone())
                }
                None => app,
            };
            app.wrap(actix_web::middleware::from_fn(log_request))
                .configure(routes)
        })
        .workers(workers)
        // Audio is many small frames: never hold one back waiting to coalesce.
        .tcp_nodelay(true)
        // Flush a connection's write buffer at 4 KiB, not actix-web's 32 KiB: a
        // WebSocket whose peer fell behind for a moment otherwise grows that
        // buffer past the 8 KiB it starts with and keeps it for the
        // connection's life (actix-http releases only past 128 KiB): ~20 KiB
        // per media socket in a heap profile at 250 calls with 32 KiB, ~8 KiB
        // at 500 calls with 8 KiB. With the sockets' fragments (`net::socket`)
        // it never grows. Pages and downloads take a few more writes.
        .h1_write_buffer_size(H1_WRITE_BUFFER_BYTES);
        if engine.cluster.is_some() {
            // A cluster node drains on SIGTERM before the server stops
            // (`run_until_stopped`), so it handles the signals itself.
            server = server.disable_signals();
        }
        let server = server.listen(listener)?.run();
        Ok(Application {
            port,
            server,
            engine,
            deliveries,
            reconciler,
            reviewer,
            alerts,
            heartbeat,
            sweeper,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (and so, the engine) from outside: tests, embedders.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until the server stops (Ctrl-C / SIGTERM); then ends the calls still
    /// open as `interrupted` and writes out the journal, so every call has its final
    /// record before the process exits. The database gets `journal.shutdown_timeout_secs`
    /// to take the journal; what it has not taken by then goes to the spill file,
    /// written on the next start, and the log says how many entries that was.
    ///
    /// In cluster mode SIGTERM (or SIGINT) first drains the node
    /// (`twilio::resume::drain`: readiness fails, every call moves to another
    /// node, bounded by `cluster.drain_timeout_secs`), then stops the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = if self.engine.cluster.is_some() {
            let handle = self.server.handle();
            let mut server = self.server;
            tokio::select! {
                result = &mut server => result,
                () = stop_signal() => {
                    crate::twilio::resume::drain(&self.engine).await;
                    // Its calls have moved: the node links go (the server's
                    // graceful stop waits for open connections, and the peers
                    // stop dialing a node that has left).
                    if let Some(links) = &self.engine.links {
                        links.close_all();
                    }
                    // The server carries out the stop while it is polled.
                    let ((), result) = tokio::join!(handle.stop(true), server);
                    result
                }
            }
        } else {
            self.server.await
        };
        if let Some(sweeper) = self.sweeper {
            sweeper.abort();
        }
        // The others see this node gone at once, not when its key expires.
        if let Some(heartbeat) = self.heartbeat {
            heartbeat.stop().await;
        }
        let live = self.engine.registry.live().await.unwrap_or_default();
        if !live.is_empty() {
            tracing::warn!(calls = live.len(), "shutting down with calls in progress");
        }
        for call in live {
            call.interrupt("engine_shutdown").await;
        }
        // Alert events already queued get alerts.shutdown_grace_secs to go out.
        // Callbacks in flight finish (each within outbound.callback_timeout_secs);
        // what is still due is delivered by the next start.
        let grace = self.engine.settings.alerts.shutdown_grace;
        self.alerts.stop(grace).await;
        self.reconciler.stop().await;
        self.reviewer.stop().await;
        self.deliveries.stop().await;
        let journal = &self.engine.journal;
        let limit = self.engine.settings.journal.shutdown_timeout;
        if tokio::time::timeout(limit, journal.flush()).await.is_err() {
            let left = journal.backlog();
            match journal.spill_all().await {
                Ok(spilled) => tracing::warn!(
                    left,
                    spilled,
                    path = %journal.spill_path().display(),
                    waited_ms = limit.as_millis() as u64,
                    "the database did not take the journal in time; the entries left are \
                     in the spill file and are written on the next start"
                ),
                Err(error) => tracing::error!(
                    left,
                    %error,
                    path = %journal.spill_path().display(),
                    "the database did not take the journal in time and the spill file \
                     cannot be written: these journal entries are lost"
                ),
            }
        }
        result
    }
}

/// SIGTERM or SIGINT; never, if the handlers cannot be installed.
async fn stop_signal() {
    use actix_rt::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: draining"),
                _ = int.recv() => tracing::info!("SIGINT: draining"),
            }
        }
        _ => {
            tracing::error!("cannot listen for SIGTERM: this node will not drain on it");
            std::future::pending::<()>().await
        }
    }
}

/// Every call holds file descriptors (its Twilio socket, a softphone's or the
/// model's), and the usual soft limit of 1,024 would cap a node near 500 calls: the
/// soft limit is raised to the hard one, which the operator sets (`ulimit -Hn`,
/// systemd's `LimitNOFILE`).
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 4096 => tracing::warn!(
            limit,
            "open files are limited to {limit}: about two per call; raise the hard limit"
        ),
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(err) => tracing::warn!(%err, "could not raise the open files limit"),
    }
}

/// One structured log line per HTTP request (WebSocket upgrades included).
async fn log_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    // Tokens travel in the query of the sockets (`/ws/agent?token=…`): the query is
    // logged only with their values redacted.
    let query = crate::auth::redact_query(req.query_string());
    let response = next.call(req).await?;
    tracing::info!(
        target: "switchboard::http",
        %method,
        %path,
        query = query.as_str(),
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(response)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        // Before the `/api` scope, which would take it for itself.
        .route("/api/openapi.json", web::get().to(openapi::serve))
        .route("/twilio/voice", web::post().to(twilio::webhook::voice))
        .route("/twilio/status", web::post().to(twilio::webhook::status))
        .route("/twilio/resume", web::post().to(twilio::resume::resume))
        .route(
            "/twilio/outbound/status",
            web::post().to(twilio::outbound_status::status),
        )
        .route(
            "/twilio/missed-call-text/status",
            web::post().to(crate::missed_call::status::status),
        )
        .route("/twilio/stream", web::get().to(twilio::stream::stream))
        .route(
            "/twilio/outbound/answer",
            web::post().to(twilio::outbound::answer),
        )
        .route(
            "/twilio/outbound/amd",
            web::post().to(twilio::outbound::amd),
        )
        .route("/ws/agent", web::get().to(ws::agent::agent_socket))
        .route("/cluster/link", web::get().to(cluster::link::link_socket))
        .route(
            "/ws/supervisor",
            web::get().to(ws::supervisor::supervisor_socket),
        )
        .configure(api::routes)
        .configure(crate::web::routes);
}

/// The missed-call texter when `[missed_call_text]` is on; on without the
/// Twilio account's credentials, the engine does not start.
fn missed_call_texter(
    settings: &Settings,
    store: &Store,
    journal: &JournalWriter,
    public_url: &Arc<str>,
    clock: &ClockHandle,
) -> anyhow::Result<Option<crate::missed_call::Texter>> {
    let texts = &settings.missed_call_text;
    if !texts.enabled {
        return Ok(None);
    }
    let twilio =
        crate::providers::twilio::TwilioClient::for_messages(settings, texts.send_timeout)?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "missed_call_text.enabled needs the Twilio account: TWILIO_ACCOUNT_SID and \
                 TWILIO_AUTH_TOKEN"
                )
            })?;
    let clock = clock.clone();
    Ok(Some(crate::missed_call::Texter::start(
        texts.clone(),
        store.clone(),
        Arc::new(journal.clone()),
        twilio,
        Arc::clone(public_url),
        Arc::new(move || clock.now().as_millisecond()),
    )))
}

/// The one place the generated admin token is shown: a plain line on standard
/// error, never through `tracing`.
#[allow(clippy::print_stderr)]
fn print_generated_admin_token(token: &str) {
    eprintln!("switchboard: generated admin token for this run: {token}");
}

/// Checks the attestation's wording (`safety.consent`) and pins its version to
/// it in the database; a wording changed under a pinned version is refused.
async fn pin_consent_wording(
    settings: &Settings,
    store: &Store,
    clock: &ClockHandle,
) -> anyhow::Result<()> {
    let consent = &settings.safety.consent;
    crate::outbound::consent::check_wording(consent).map_err(anyhow::Error::msg)?;
    let hash = crate::outbound::consent::wording_hash(&consent.wording);
    match store
        .pin_consent_wording(
            &consent.version,
            &hash,
            &consent.wording,
            clock.now().as_millisecond(),
        )
        .await?
    {
        crate::store::consent::WordingPin::Pinned => Ok(()),
        crate::store::consent::WordingPin::Changed { stored_hash } => anyhow::bail!(
            "safety.consent.wording changed but safety.consent.version is still {:?} \
             (its wording was pinned with SHA-256 {stored_hash}, the configured one is {hash}): \
             a new wording needs a new version",
            consent.version
        ),
    }
}

async fn build_engine(
    settings: Settings,
    listener: &TcpListener,
    clock: ClockHandle,
) -> anyhow::Result<Engine> {
    // Joined first: a node that may not join (wrong secret, a live node's id)
    // must not touch the shared database — recovery below closes the calls left
    // open under this node's id.
    let cluster = if settings.is_cluster() {
        Some(Cluster::join(&settings).await?)
    } else {
        None
    };
    let store = Store::connect(&settings.database_url, &settings.node_id).await?;
    store.migrate().await?;
    let journal = JournalWriter::spawn_with(
        store.clone(),
        JournalConfig {
            memory_limit_bytes: settings.journal.memory_limit_bytes,
            spill_path: settings.journal.spill_path(&settings.node_id),
            reject_after_attempts: settings.journal.reject_after_attempts,
        },
    );
    // What a previous run left in the spill file is written before recovery looks
    // for calls left open, or those calls would be closed without their last events.
    journal.flush().await;
    let interrupted = store.close_interrupted_calls().await?;
    if interrupted > 0 {
        tracing::warn!(interrupted, "closed calls left open by a previous run");
    }
    let tokens = crate::auth::TokenCache::load(&store).await?;
    pin_consent_wording(&settings, &store, &clock).await?;

    let public_url: Arc<str> = match &settings.public_url {
        Some(url) => url.as_str().into(),
        None => format!("http://{}", listener.local_addr()?).into(),
    };
    let admin_token = match &settings.admin_token {
        Some(token) => token.clone(),
        None => {
            let token = crate::auth::new_token("sba_");
            tracing::warn!(
                "SWITCHBOARD_ADMIN_TOKEN is not set; generated an admin token for this run \
                 (printed once on standard error, not logged)"
            );
            // Outside tracing on purpose: log shippers read the structured log, and a
            // secret must never reach it. The operator sees this line once.
            print_generated_admin_token(&token);
            SecretString::from(token)
        }
    };
    if settings.twilio.auth_token.is_none() {
        tracing::warn!("TWILIO_AUTH_TOKEN is not set: every Twilio request will be refused (403)");
    }

    let call_config = Arc::new(settings.call_config()?);
    let stats = Arc::new(EngineStats::default());
    let coordinator = CoordinatorHandle::start();
    let registry = RegistryHandle::start();
    let parking = ParkingHandle::start();
    let start_recording = crate::providers::twilio::TwilioClient::for_calls(&settings)?
        .map(|twilio| crate::outbound::recording::starter(twilio, store.clone()));
    let hooks = crate::ai::hooks::build(
        &settings,
        store.clone(),
        start_recording,
        Arc::new(journal.clone()),
        Arc::clone(&stats),
        {
            let clock = clock.clone();
            Arc::new(move || clock.now().as_millisecond())
        },
    )?;
    let texter = missed_call_texter(&settings, &store, &journal, &public_url, &clock)?;
    let call_deps = CallDeps {
        coordinator: coordinator.clone(),
        registry: registry.clone(),
        parking: parking.clone(),
        journal: Arc::new(journal.clone()),
        config: Arc::clone(&call_config),
        stats: Arc::clone(&stats),
        hooks: Some(Arc::new(crate::missed_call::TextingHooks {
            inner: Arc::new(hooks),
            texter,
        })),
    };
    let numbers = NumberBookHandle::start(call_deps.clone());
    for number in store.list_numbers().await? {
        numbers
            .upsert(number.e164, number.workspace, number.route)
            .await?;
    }
    let seat_config = settings.seat_config();
    let outbox_limits = settings.outbox_limits();
    let providers: Arc<[crate::providers::ProviderAccount]> =
        crate::providers::accounts_from(&settings)?.into();
    let calling_hours = CallingHours::from_settings(&settings.outbound)?;
    let outbound_burst = Arc::new(match &cluster {
        Some(cluster) => BurstLimiter::shared(
            &settings.outbound,
            clock.clone(),
            Arc::new(ClusterBursts(cluster.clone())),
        ),
        None => BurstLimiter::new(&settings.outbound, clock.clone()),
    });
    let objective_classifier =
        crate::safety::predial::Classifier::from_settings(&settings).map(Arc::new);
    let screener = Arc::new(crate::safety::screen::Screener::new(
        &settings.safety.categories,
    ));
    let alerts = AlertBoard::new(&settings);
    let links = match (&cluster, &settings.cluster.secret) {
        (Some(cluster), Some(secret)) => Some(Links::new(
            cluster.clone(),
            secret.clone(),
            coordinator.clone(),
            registry.clone(),
            Arc::clone(&stats),
            settings.cluster.link_audio_frames,
            settings.cluster.link_request_timeout,
        )),
        _ => None,
    };
    tracing::info!(
        public_url = %public_url,
        database = ?store.backend(),
        "engine ready"
    );
    Ok(Engine {
        settings: Arc::new(settings),
        public_url,
        admin_token: Arc::new(admin_token),
        store,
        journal,
        coordinator,
        registry,
        parking,
        numbers,
        stats,
        call_config,
        seat_config,
        outbox_limits,
        providers,
        tokens,
        clock,
        calling_hours,
        outbound_burst,
        call_deps,
        outbound_dispatch: DispatchWaker::default(),
        screener,
        objective_classifier,
        alerts,
        event_streams: Arc::default(),
        cluster,
        draining: Arc::default(),
        links,
    })
}

/// The cluster's burst count (Redis), for the outbound gates' limiter.
struct ClusterBursts(Cluster);

impl SharedBursts for ClusterBursts {
    fn check(&self, user: &str, now_us: u64, per_second: u32, burst: u32) -> BurstCheck<'_> {
        let user = user.to_owned();
        Box::pin(async move {
            self.0
                .burst_check(&user, now_us, per_second, burst)
                .await
                .map_err(|err| err.to_string())
        })
    }
}
