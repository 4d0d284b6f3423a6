//! Callbacks to the user: every event a user's `callback_url` should hear of (a
//! call's status change, its final result) is enqueued as a row of the outbox
//! (`store::deliveries`, [`enqueue`] / [`enqueue_in`] in the caller's
//! transaction), and the [`DeliveryWorker`] posts it until the endpoint
//! acknowledges it (2xx), then never again.
//!
//! - The body is JSON with an `event_id` (stable across retries) and is stored as
//!   the exact bytes that are signed: `X-Switchboard-Signature: sha256=<hex
//!   HMAC-SHA256 of the body under the user's webhook secret>` ([`sign`]), with
//!   `X-Switchboard-Event-Id` and `Content-Type: application/json`.
//! - Anything but a 2xx (a timeout, a refused connection, a 500, a redirect —
//!   redirects are not followed) is tried again after an exponential, jittered
//!   wait ([`retry_delay`]), up to `outbound.callback_max_attempts`; then the
//!   event is given up and the reason kept.
//! - The worker claims due rows under a lease (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL, the write lock on SQLite), so several engines on one database
//!   never post one event at once; at most `outbound.callback_concurrency` posts
//!   are in flight per engine, each bounded by `outbound.callback_timeout_secs`,
//!   so a slow endpoint costs a slot, never the calls.
//! - A URL resolving to a loopback, private, link-local or otherwise non-public
//!   address is refused at delivery unless `outbound.callback_allow_private`
//!   ([`is_public`]): a user must not make the engine POST into its own network
//!   (SSRF). The check runs in the client's resolver, so the address checked is
//!   the address connected to.
//! - "Now" (when an event is due, when to try again) comes from the injected
//!   [`ClockHandle`]; the worker's polling sleeps on tokio's clock.
//!
//! - Events about one call (the same `data.id`) reach the endpoint in the order
//!   they happened: the worker claims only the oldest undelivered event of a
//!   call while it is due or in flight, so they are posted one after the other.
//!   An event waiting to be retried steps aside (later ones go on rather than
//!   wait out its backoff): order holds while the endpoint acknowledges, and
//!   every event still carries `previous` and `at`.
//!
//! Delivery is at least once: an acknowledgement the database could not record
//! (or an engine killed mid-post) means the event is posted again when its lease
//! runs out; the receiver deduplicates on `event_id`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use secrecy::ExposeSecret as _;
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use sqlx::AnyConnection;
use switchboard_actors::UserId;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::OutboundSettings;
use crate::outbound::clock::ClockHandle;
use crate::store::deliveries::{self, ClaimedDelivery, DeliveryOutcome, NewDelivery};
use crate::store::{Store, StoreError};

/// The signature header: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Switchboard-Signature";
/// The event's id, also in the body.
pub const EVENT_ID_HEADER: &str = "X-Switchboard-Event-Id";

/// A claim outlives the post's timeout by this much, so a claim is never taken
/// over while its post may still be running.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// Something a user's endpoint should hear of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened, e.g. `call.status`, `call.result`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's own fields.
    pub data: Value,
}

/// The body as posted (field order is the JSON's).
#[derive(Serialize)]
struct Body<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: String,
    data: &'a Value,
}

/// The outbox row for `event`, to `url`, at the clock's now: a fresh event id
/// and the body that will be signed and sent on every attempt.
///
/// The id is a UUIDv7 (time-ordered, and ordered by creation within the
/// process), and an event about a call (its `data.id`) carries the call's id
/// as its ordering key: events of one call are posted one at a time, in the
/// order they were enqueued (`Store::claim_due_deliveries`).
pub fn delivery(clock: &ClockHandle, user: &UserId, url: &str, event: &Event) -> NewDelivery {
    let event_id = uuid::Uuid::now_v7().simple().to_string();
    let now = clock.now();
    let body = serde_json::to_string(&Body {
        event_id: &event_id,
        kind: &event.kind,
        created_at: now.to_string(),
        data: &event.data,
    })
    .unwrap_or_else(|_| unreachable!("a JSON value and strings always serialize"));
    NewDelivery {
        event_id,
        user_id: user.clone(),
        url: url.to_owned(),
        body,
        created_at: now.as_millisecond(),
        ordering_key: event
            .data
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// Enqueues `event` for `user`'s `url`, due at once; returns its event id.
pub async fn enqueue(
    store: &Store,
    clock: &ClockHandle,
    user: &UserId,
    url: &str,
    event: &Event,
) -> Result<String, StoreError> {
    let mut conn = store.pool().acquire().await?;
    enqueue_in(&mut conn, clock, user, url, event).await
}

/// [`enqueue`] on `conn` — a transaction's connection (`&mut *tx`), so the event
/// is recorded with what it reports, or not at all.
pub async fn enqueue_in(
    conn: &mut AnyConnection,
    clock: &ClockHandle,
    user: &UserId,
    url: &str,
    event: &Event,
) -> Result<String, StoreError> {
    let row = delivery(clock, user, url, event);
    deliveries::enqueue_delivery(conn, &row).await?;
    Ok(row.event_id)
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`, the signature header's value.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait after `failed` failed attempts (≥ 1): `base × 2^(failed−1)`, at most
/// `max`, then scaled by `0.5 + 0.5 × jitter` (`jitter` in `0..=1`), so engines
/// and users that failed together do not all come back at one instant.
pub fn retry_delay(failed: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(2u32.saturating_pow(failed.saturating_sub(1)));
    doubled.min(max).mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A uniform number in `0..=1` from the OS (the jitter of [`retry_delay`]).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    }
}

/// Whether a callback may go to `ip`: not loopback, private (RFC 1918, unique
/// local), link-local, shared (CGNAT), unspecified, broadcast, multicast,
/// documentation, benchmarking, reserved, or NAT64 (which could reach any of
/// those); an IPv4-mapped IPv6 address is judged as its IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0064 && s[1] == 0xff9b))
}

/// The client's resolver when private addresses are refused: a name with any
/// non-public address fails to resolve, with the reason.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|addr| !is_public(addr.ip())) {
                return Err(non_public(&host, bad.ip()).into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn non_public(host: &str, ip: IpAddr) -> String {
    format!("{host} is {ip}, not a public address (outbound.callback_allow_private is off)")
}

/// The delivery worker's settings (from `[outbound]`).
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    pub timeout: Duration,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub poll: Duration,
    pub allow_private: bool,
}

impl From<&OutboundSettings> for CallbackConfig {
    fn from(s: &OutboundSettings) -> Self {
        Self {
            timeout: s.callback_timeout,
            concurrency: s.callback_concurrency.max(1),
            max_attempts: s.callback_max_attempts.max(1),
            retry_base: s.callback_retry_base,
            retry_max: s.callback_retry_max,
            poll: s.callback_poll,
            allow_private: s.callback_allow_private,
        }
    }
}

/// Why an attempt failed; a permanent failure is given up at once.
enum Failure {
    Retry(String),
    Permanent(String),
}

/// The background task that posts due deliveries; [`DeliveryWorker::stop`] ends it.
pub struct DeliveryWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DeliveryWorker {
    /// Starts the worker on `store`. Fails only when the HTTP client cannot be
    /// built (no TLS roots).
    pub fn spawn(
        store: Store,
        config: CallbackConfig,
        clock: ClockHandle,
    ) -> anyhow::Result<DeliveryWorker> {
        let mut client = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        let poster = Arc::new(Poster {
            client: client.build()?,
            store,
            config,
            clock,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(poster.run(stopped));
        Ok(DeliveryWorker { stop, task })
    }

    /// Stops claiming, waits for the posts in flight (each bounded by the
    /// timeout) and ends.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the callback delivery worker failed");
        }
    }
}

/// What each attempt needs, shared by the worker and its posts.
struct Poster {
    client: reqwest::Client,
    store: Store,
    config: CallbackConfig,
    clock: ClockHandle,
}

impl Poster {
    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut in_flight = JoinSet::new();
        loop {
            while in_flight.try_join_next().is_some() {}
            let free = self.config.concurrency.saturating_sub(in_flight.len());
            if free > 0 {
                match self.claim(free).await {
                    Ok((claim, batch)) => {
                        for delivery in batch {
                            in_flight.spawn(Arc::clone(&self).attempt(delivery, claim.clone()));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot claim callback deliveries; trying later");
                    }
                }
            }
            // Claim again after the poll interval, or as soon as a post ends (more
            // may be due when every slot was taken).
            tokio::select! {
                _ = stopped.changed() => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    async fn claim(&self, limit: usize) -> Result<(String, Vec<ClaimedDelivery>), StoreError> {
        let now = self.clock.now();
        let lease = self.config.timeout.saturating_add(LEASE_MARGIN);
        let lease_until = now.saturating_add(lease).unwrap_or(Timestamp::MAX);
        let claim = uuid::Uuid::new_v4().simple().to_string();
        let batch = self
            .store
            .claim_due_deliveries(
                now.as_millisecond(),
                lease_until.as_millisecond(),
                &claim,
                limit,
            )
            .await?;
        Ok((claim, batch))
    }

    #[tracing::instrument(skip_all, fields(event_id = %delivery.event_id, attempt = delivery.attempts))]
    async fn attempt(self: Arc<Self>, delivery: ClaimedDelivery, claim: String) {
        let result = self.post(&delivery).await;
        let now = self.clock.now();
        let outcome = match result {
            Ok(()) => DeliveryOutcome::Delivered,
            Err(Failure::Permanent(error)) => DeliveryOutcome::GiveUp { error },
            Err(Failure::Retry(error)) if delivery.attempts >= self.config.max_attempts => {
                DeliveryOutcome::GiveUp { error }
            }
            Err(Failure::Retry(error)) => {
                let wait = retry_delay(
                    delivery.attempts,
                    self.config.retry_base,
                    self.config.retry_max,
                    jitter(),
                );
                let next = now.saturating_add(wait).unwrap_or(Timestamp::MAX);
                DeliveryOutcome::Retry {
                    error,
                    next_attempt_at: next.as_millisecond(),
                }
            }
        };
        match &outcome {
            DeliveryOutcome::Delivered => tracing::info!("callback delivered"),
            DeliveryOutcome::Retry { error, .. } => {
                tracing::warn!(%error, "callback failed; it will be tried again");
            }
            DeliveryOutcome::GiveUp { error } => {
                tracing::warn!(%error, "callback failed for the last time; given up");
            }
        }
        match self
            .store
            .finish_delivery(&delivery.event_id, &claim, now.as_millisecond(), &outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("the callback's claim ran out before its outcome was recorded")
            }
            Err(error) => tracing::warn!(
                %error,
                "cannot record the callback's outcome; it is tried again when its claim runs out"
            ),
        }
    }

    async fn post(&self, delivery: &ClaimedDelivery) -> Result<(), Failure> {
        let url = reqwest::Url::parse(&delivery.url)
            .map_err(|e| Failure::Permanent(format!("callback_url is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::Permanent(format!(
                "callback_url must be http or https, not {}",
                url.scheme()
            )));
        }
        if !self.config.allow_private {
            // A literal address never reaches the resolver.
            let literal = url
                .host_str()
                .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|host| host.parse::<IpAddr>().ok());
            if let Some(ip) = literal.filter(|ip| !is_public(*ip)) {
                return Err(Failure::Retry(non_public(&ip.to_string(), ip)));
            }
        }
        let secret = self
            .store
            .user_webhook_secret(&delivery.user_id)
            .await
            .map_err(|e| Failure::Retry(format!("reading the user's webhook secret: {e}")))?
            .ok_or_else(|| Failure::Permanent("the user no longer exists".to_owned()))?;
        let signature = sign(secret.expose_secret().as_bytes(), delivery.body.as_bytes());
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_ID_HEADER, delivery.event_id.as_str())
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| Failure::Retry(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Retry(format!(
                "the endpoint answered HTTP {status}"
            )))
        }
    }
}

/// A request error with its causes (the resolver's refusal is a cause).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        format!("timed out: {error}")
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::clock::ManualClock;

    #[test]
    fn the_signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_wait_doubles_up_to_the_cap_and_is_jittered_down_to_half() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(8 * 3600);
        assert_eq!(retry_delay(1, base, max, 1.0), base);
        assert_eq!(retry_delay(1, base, max, 0.0), base / 2);
        assert_eq!(retry_delay(4, base, max, 1.0), Duration::from_secs(480));
        assert_eq!(retry_delay(11, base, max, 1.0), max);
        assert_eq!(retry_delay(u32::MAX, base, max, 1.0), max);
        let total: Duration = (1..12).map(|n| retry_delay(n, base, max, 1.0)).sum();
        assert!(
            (Duration::from_secs(20 * 3600)..Duration::from_secs(28 * 3600)).contains(&total),
            "12 attempts span about a day: {total:?}"
        );
    }

    #[test]
    fn only_public_addresses_are_callback_targets() {
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().expect("an address");
            assert!(is_public(ip), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            let ip: IpAddr = private.parse().expect("an address");
            assert!(!is_public(ip), "{private}");
        }
    }

    #[test]
    fn the_body_carries_the_event_id_type_time_and_data() {
        let clock = ManualClock::new("2026-03-01T12:00:00Z".parse().expect("an instant"));
        let user = UserId::parse("u1").expect("an id");
        let event = Event {
            kind: "call.status".into(),
            data: serde_json::json!({ "status": "ringing" }),
        };
        let row = delivery(&clock.handle(), &user, "https://example.com/hook", &event);
        let body: Value = serde_json::from_str(&row.body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({
                "event_id": row.event_id,
                "type": "call.status",
                "created_at": "2026-03-01T12:00:00Z",
                "data": { "status": "ringing" },
            })
        );
        assert_eq!(row.created_at, 1_772_366_400_000);
        assert_ne!(
            delivery(&clock.handle(), &user, "https://example.com/hook", &event).event_id,
            row.event_id
        );
    }
}
