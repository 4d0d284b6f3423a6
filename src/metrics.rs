//! `GET /metrics`: the engine's counters in Prometheus text format.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use switchboard_actors::stats::EngineStats;

use crate::alerts::AlertBoard;
use crate::cluster::Member;
use crate::engine::Engine;

/// A scrape waits this long for the cluster's membership, then shows Redis down.
const CLUSTER_READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the engine's atomics at scrape time; nothing is copied on the hot paths.
#[derive(Debug)]
struct EngineCollector {
    stats: Arc<EngineStats>,
    journal_backlog: i64,
    journal_fenced: u64,
    alerts: AlertBoard,
    /// In cluster mode, the members as Redis listed them for this scrape (`None`
    /// when Redis did not answer); a single node has no cluster gauges.
    cluster: Option<Option<Vec<Member>>>,
    /// In cluster mode, this node's links: up now, audio frames dropped, and
    /// handshakes refused.
    links: Option<(usize, u64, u64)>,
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let e = &mut encoder;
        counter(
            e,
            "switchboard_calls_started",
            "Calls the engine took.",
            load(&s.calls_started),
        )?;
        gauge(
            e,
            "switchboard_calls_active",
            "Calls in progress.",
            s.calls_active.load(Ordering::Relaxed),
        )?;
        for (outcome, value) in [
            ("answered", &s.outcome_answered),
            ("voicemail", &s.outcome_voicemail),
            ("abandoned", &s.outcome_abandoned),
            ("failed", &s.outcome_failed),
            ("interrupted", &s.outcome_interrupted),
        ] {
            counter(
                e,
                &format!("switchboard_calls_{outcome}"),
                &format!("Calls that ended with outcome {outcome}."),
                load(value),
            )?;
        }
        counter(
            e,
            "switchboard_claims_won",
            "Answers that won their call.",
            load(&s.claims_won),
        )?;
        counter(
            e,
            "switchboard_claims_lost",
            "Answers that lost the race.",
            load(&s.claims_lost),
        )?;
        gauge(
            e,
            "switchboard_seats_connected",
            "Softphones connected.",
            s.seats_connected.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "switchboard_audio_frames_relayed",
            "Audio frames moved between call legs.",
            load(&s.audio_frames_relayed),
        )?;
        counter(
            e,
            "switchboard_audio_frames_dropped",
            "Audio frames dropped because a peer was slow.",
            load(&s.audio_frames_dropped),
        )?;
        counter(
            e,
            "switchboard_socket_writes",
            "Writes to sockets: each the messages queued for one socket when it ran (4 KiB at most).",
            load(&s.socket_writes),
        )?;
        counter(
            e,
            "switchboard_socket_messages",
            "Messages written to sockets (audio frames, JSON messages, pings).",
            load(&s.socket_messages),
        )?;
        counter(
            e,
            "switchboard_slow_peers_closed",
            "Sockets closed for not reading control messages.",
            load(&s.slow_peers_closed),
        )?;
        counter(
            e,
            "switchboard_ring_deliveries_failed",
            "Rings that could not reach a seat.",
            load(&s.ring_deliveries_failed),
        )?;
        for (name, help, value) in [
            (
                "switchboard_ai_sessions",
                "Assistant sessions the realtime model accepted.",
                &s.ai_sessions,
            ),
            (
                "switchboard_ai_failures",
                "Assistant sessions that failed to start or dropped; the caller was handed on.",
                &s.ai_failures,
            ),
            (
                "switchboard_ai_barge_ins",
                "Times a caller spoke over the assistant and its audio was cut.",
                &s.ai_barge_ins,
            ),
            (
                "switchboard_ai_late_deltas_dropped",
                "Audio of cancelled responses that arrived late and was dropped.",
                &s.ai_late_deltas_dropped,
            ),
            (
                "switchboard_ai_start_failures",
                "Assistant sessions that failed before the model accepted them.",
                &s.ai_start_failures,
            ),
            (
                "switchboard_provider_errors",
                "Requests to a provider's API that failed (Twilio's Calls: refused, unanswered, not reached).",
                &s.provider_errors,
            ),
            (
                "switchboard_ai_events_ignored",
                "Realtime events that were malformed, unknown or errors.",
                &s.ai_events_ignored,
            ),
        ] {
            counter(e, name, help, load(value))?;
        }
        gauge(
            e,
            "switchboard_ai_connections_open",
            "Realtime model connections open now (at most openai.max_connections).",
            load(&s.ai_connections_open) as i64,
        )?;
        gauge(
            e,
            "switchboard_journal_backlog",
            "Call records waiting to be written.",
            self.journal_backlog,
        )?;
        counter(
            e,
            "switchboard_journal_fenced",
            "Call records left out because another node held the call by then \
             (it adopted or ended it while this node was cut off).",
            self.journal_fenced,
        )?;
        if let Some(members) = &self.cluster {
            cluster(e, members.as_deref())?;
        }
        if let Some((up, dropped, refused)) = self.links {
            gauge(
                e,
                "switchboard_cluster_links",
                "Node links of this node that are up (one per other live node).",
                up as i64,
            )?;
            counter(
                e,
                "switchboard_cluster_link_frames_dropped",
                "Audio frames a node link dropped (oldest first) for a peer that could not keep up.",
                dropped,
            )?;
            counter(
                e,
                "switchboard_cluster_links_refused",
                "Node link handshakes refused (a wrong secret, a stale or replayed request).",
                refused,
            )?;
        }
        alerts(e, &self.alerts)
    }
}

/// Cluster mode's gauges: whether Redis answered the scrape, the nodes alive, and
/// each live node's calls and seats (labelled by node id).
fn cluster(
    e: &mut DescriptorEncoder<'_>,
    members: Option<&[Member]>,
) -> Result<(), std::fmt::Error> {
    gauge(
        e,
        "switchboard_cluster_redis_up",
        "1 when Redis answered this scrape's membership read, else 0.",
        i64::from(members.is_some()),
    )?;
    let alive: Vec<&Member> = members
        .unwrap_or_default()
        .iter()
        .filter(|m| m.alive)
        .collect();
    gauge(
        e,
        "switchboard_cluster_nodes_alive",
        "Nodes of the cluster whose membership key is alive.",
        alive.len() as i64,
    )?;
    for (name, help, value) in [
        (
            "switchboard_cluster_node_calls",
            "Calls in progress on each live node, as its last heartbeat said.",
            (|m: &Member| m.record.calls) as fn(&Member) -> i64,
        ),
        (
            "switchboard_cluster_node_seats",
            "Softphones connected to each live node, as its last heartbeat said.",
            |m: &Member| m.record.seats,
        ),
    ] {
        let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for member in &alive {
            let labels = [("node", member.record.id.as_str())];
            ConstGauge::new(value(member)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// `switchboard_alert_firing{alert}` and `switchboard_alert_value{alert}` for
/// every enabled rule, and what became of the alerts' notifications.
fn alerts(e: &mut DescriptorEncoder<'_>, board: &AlertBoard) -> Result<(), std::fmt::Error> {
    let mut firing = e.encode_descriptor(
        "switchboard_alert_firing",
        "1 while the alert fires, else 0.",
        None,
        MetricType::Gauge,
    )?;
    for gauge in board.gauges() {
        let labels = [("alert", gauge.rule.name())];
        ConstGauge::new(i64::from(gauge.firing())).encode(firing.encode_family(&labels)?)?;
    }
    let mut value = e.encode_descriptor(
        "switchboard_alert_value",
        "The value the alert's rule last judged.",
        None,
        MetricType::Gauge,
    )?;
    for gauge in board.gauges() {
        let labels = [("alert", gauge.rule.name())];
        ConstGauge::new(gauge.value()).encode(value.encode_family(&labels)?)?;
    }
    let counts = board.counts();
    for (name, help, count) in [
        (
            "switchboard_alert_notifications_delivered",
            "Alert events a webhook or the mail server took.",
            &counts.delivered,
        ),
        (
            "switchboard_alert_notifications_given_up",
            "Alert events given up after every attempt failed (logged at error level).",
            &counts.given_up,
        ),
        (
            "switchboard_alert_notifications_dropped",
            "Alert events dropped because a receiver's queue was full.",
            &counts.dropped,
        ),
    ] {
        counter(e, name, help, count.load(Ordering::Relaxed))?;
    }
    Ok(())
}

/// Prometheus metrics
///
/// The engine's counters and every alert's state, in the OpenMetrics text format.
/// No token.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "The metrics",
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 500, description = "The metrics could not be encoded (empty body)"),
    ))]
pub async fn metrics(engine: web::Data<Engine>) -> HttpResponse {
    let cluster = match &engine.cluster {
        Some(cluster) => Some(
            match tokio::time::timeout(CLUSTER_READ_DEADLINE, cluster.members()).await {
                Ok(Ok(members)) => Some(members),
                _ => None,
            },
        ),
        None => None,
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector {
        stats: Arc::clone(&engine.stats),
        journal_backlog: engine.journal.backlog(),
        journal_fenced: engine.store.fenced_entries(),
        alerts: engine.alerts.clone(),
        cluster,
        links: engine.links.as_ref().map(|links| links.gauges()),
    }));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(body),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
