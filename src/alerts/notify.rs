//! Where alert events go: every `[[alerts.webhooks]]` (a JSON POST signed as
//! users' callbacks are: `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of
//! the body under the webhook's secret>`, [`crate::outbound::notify::sign`])
//! and, when `[alerts.smtp]` has a host, an e-mail (lettre).
//!
//! Each receiver has its own worker and bounded queue (`alerts.queue_size`):
//! events reach it in order, one at a time; each attempt is bounded by the
//! receiver's timeout; a failed one is tried again after the callbacks'
//! backoff ([`crate::outbound::notify::retry_delay`]), up to
//! `alerts.webhook_max_attempts` in all, then the event is given up and logged
//! at error level. A receiver that hangs holds only its own queue: the
//! evaluator `try_send`s, and a full queue drops the new event (logged,
//! counted).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{AlertBoard, AlertEvent, NotifyCounts};
use crate::config::{AlertSettings, SmtpSettings, SmtpTls};
use crate::outbound::notify::{jitter, retry_delay, sign, EVENT_ID_HEADER, SIGNATURE_HEADER};

/// The evaluator's side of every receiver's queue.
pub struct Senders {
    queues: Vec<(String, mpsc::Sender<Arc<AlertEvent>>)>,
}

impl Senders {
    /// Queues `event` for every receiver without waiting: a full queue drops
    /// it for that receiver.
    pub fn send(&self, event: Arc<AlertEvent>, counts: &NotifyCounts) {
        for (receiver, queue) in &self.queues {
            if queue.try_send(Arc::clone(&event)).is_err() {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    alert = event.alert,
                    status = event.status,
                    receiver = receiver.as_str(),
                    "alert event dropped: the receiver's queue is full (it is not keeping up)"
                );
            }
        }
    }
}

/// How often and how long a receiver is tried.
#[derive(Debug, Clone, Copy)]
struct Retry {
    max_attempts: u32,
    base: Duration,
    max: Duration,
}

/// Starts one worker per receiver.
pub fn start(
    settings: &AlertSettings,
    board: &AlertBoard,
) -> anyhow::Result<(Senders, Vec<JoinHandle<()>>)> {
    let retry = Retry {
        max_attempts: settings.webhook_max_attempts.max(1),
        base: settings.webhook_retry_base,
        max: settings.webhook_retry_max,
    };
    let mut queues = Vec::new();
    let mut tasks = Vec::new();
    if !settings.webhooks.is_empty() {
        // Redirects are not followed (as for callbacks); the operator chose
        // these URLs, so private addresses are allowed.
        let client = reqwest::Client::builder()
            .connect_timeout(settings.webhook_timeout)
            .timeout(settings.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        for hook in &settings.webhooks {
            let Some(secret) = hook.secret.clone() else {
                anyhow::bail!("alerts.webhooks: {} has no secret", hook.url);
            };
            let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
            let receiver = Receiver::Webhook {
                client: client.clone(),
                url: hook.url.as_str().to_owned(),
                secret,
            };
            queues.push((hook.url.as_str().to_owned(), tx));
            tasks.push(tokio::spawn(work(receiver, rx, retry, board.clone())));
        }
    }
    if settings.smtp.is_on() {
        let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
        let receiver = Receiver::Mail(Box::new(Mailer::new(&settings.smtp)?));
        queues.push((format!("smtp://{}", settings.smtp.host), tx));
        tasks.push(tokio::spawn(work(receiver, rx, retry, board.clone())));
    }
    Ok((Senders { queues }, tasks))
}

enum Receiver {
    Webhook {
        client: reqwest::Client,
        url: String,
        secret: secrecy::SecretString,
    },
    Mail(Box<Mailer>),
}

impl Receiver {
    fn name(&self) -> String {
        match self {
            Receiver::Webhook { url, .. } => url.clone(),
            Receiver::Mail(mailer) => format!("smtp://{}", mailer.host),
        }
    }

    async fn attempt(&self, event: &AlertEvent, body: &str) -> Result<(), String> {
        match self {
            Receiver::Webhook {
                client,
                url,
                secret,
            } => {
                let signature = sign(secret.expose_secret().as_bytes(), body.as_bytes());
                let response = client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature)
                    .header(EVENT_ID_HEADER, event.event_id.as_str())
                    .body(body.to_owned())
                    .send()
                    .await
                    .map_err(|e| {
                        if e.is_timeout() {
                            format!("timed out: {e}")
                        } else {
                            e.to_string()
                        }
                    })?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("the endpoint answered HTTP {status}"))
                }
            }
            Receiver::Mail(mailer) => mailer.send(event).await,
        }
    }
}

/// One receiver's worker: its events in order, each tried until delivered or
/// given up.
async fn work(
    receiver: Receiver,
    mut queue: mpsc::Receiver<Arc<AlertEvent>>,
    retry: Retry,
    board: AlertBoard,
) {
    let name = receiver.name();
    while let Some(event) = queue.recv().await {
        let body = serde_json::to_string(&*event)
            .unwrap_or_else(|_| unreachable!("an alert event always serializes"));
        let mut attempt = 1;
        loop {
            match receiver.attempt(&event, &body).await {
                Ok(()) => {
                    board.counts().delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        alert = event.alert,
                        status = event.status,
                        receiver = name.as_str(),
                        attempt,
                        "alert event delivered"
                    );
                    break;
                }
                Err(error) if attempt >= retry.max_attempts => {
                    board.counts().given_up.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        alert = event.alert,
                        status = event.status,
                        receiver = name.as_str(),
                        attempts = attempt,
                        %error,
                        "alert event given up: every attempt failed"
                    );
                    break;
                }
                Err(error) => {
                    let wait = retry_delay(attempt, retry.base, retry.max, jitter());
                    tracing::warn!(
                        alert = event.alert,
                        status = event.status,
                        receiver = name.as_str(),
                        attempt,
                        %error,
                        wait_ms = wait.as_millis() as u64,
                        "alert event not delivered; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// The SMTP transport and the message's envelope.
struct Mailer {
    host: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl Mailer {
    fn new(smtp: &SmtpSettings) -> anyhow::Result<Mailer> {
        type Smtp = AsyncSmtpTransport<Tokio1Executor>;
        let builder = match smtp.tls {
            SmtpTls::Starttls => Smtp::starttls_relay(&smtp.host)?,
            SmtpTls::Tls => Smtp::relay(&smtp.host)?,
            SmtpTls::None => Smtp::builder_dangerous(&smtp.host),
        };
        let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Mailer {
            host: smtp.host.clone(),
            transport: builder.build(),
            from: smtp.from.parse()?,
            to: smtp
                .to
                .iter()
                .map(|to| to.parse())
                .collect::<Result<_, _>>()?,
            timeout: smtp.timeout,
        })
    }

    async fn send(&self, event: &AlertEvent) -> Result<(), String> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject(event))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message.body(text(event)).map_err(|e| e.to_string())?;
        // lettre bounds each network step by the timeout; the whole exchange is
        // bounded by it too.
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("timed out after {} s", self.timeout.as_secs_f64())),
        }
    }
}

/// `[switchboard] FIRING critical database_unreachable on node-a`.
fn subject(event: &AlertEvent) -> String {
    format!(
        "[switchboard] {} {} {} on {}",
        event.status.to_uppercase(),
        event.severity,
        event.alert,
        event.node
    )
}

fn text(event: &AlertEvent) -> String {
    let mut text = format!(
        "Alert: {}\nStatus: {}\nSeverity: {}\nSummary: {}\nValue: {}\nThreshold: {}\n\
         Started at: {}\n",
        event.alert,
        event.status,
        event.severity,
        event.summary,
        event.value,
        event.threshold,
        event.started_at
    );
    if let Some(resolved_at) = &event.resolved_at {
        text.push_str(&format!("Resolved at: {resolved_at}\n"));
    }
    text.push_str(&format!(
        "Node: {}\nEvent id: {}\n",
        event.node, event.event_id
    ));
    text
}
