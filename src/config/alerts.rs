//! `[alerts]`: the rules the alert evaluator judges (`src/alerts`), where their
//! events go (webhooks, e-mail) and the bounds of that delivery.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::values;
use super::HttpUrl;

/// The environment variables of the SMTP account's credentials.
pub const SMTP_USERNAME_ENV: &str = "SWITCHBOARD_ALERTS_SMTP_USERNAME";
pub const SMTP_PASSWORD_ENV: &str = "SWITCHBOARD_ALERTS_SMTP_PASSWORD";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// How often every rule is judged.
    #[serde(rename = "evaluate_interval_ms", deserialize_with = "values::millis")]
    pub evaluate_interval: Duration,
    /// Events waiting for one webhook (or for the mailer); a full queue drops
    /// the new event (logged) rather than hold the evaluator.
    pub queue_size: usize,
    /// One POST (connecting included) gives up after this long.
    #[serde(rename = "webhook_timeout_secs", deserialize_with = "values::seconds")]
    pub webhook_timeout: Duration,
    /// Tries of one event (the first included), then it is given up.
    pub webhook_max_attempts: u32,
    #[serde(
        rename = "webhook_retry_base_secs",
        deserialize_with = "values::seconds"
    )]
    pub webhook_retry_base: Duration,
    #[serde(
        rename = "webhook_retry_max_secs",
        deserialize_with = "values::seconds"
    )]
    pub webhook_retry_max: Duration,
    /// At shutdown, events already queued (or between retries) are still
    /// delivered for up to this long; what is left then is dropped and logged.
    #[serde(rename = "shutdown_grace_secs", deserialize_with = "values::seconds")]
    pub shutdown_grace: Duration,
    pub webhooks: Vec<AlertWebhook>,
    pub rules: AlertRules,
    pub smtp: SmtpSettings,
}

impl AlertSettings {
    /// Whether events go anywhere: a webhook, or an SMTP host with recipients.
    pub fn notifies(&self) -> bool {
        !self.webhooks.is_empty() || self.smtp.is_on()
    }

    /// What the types cannot say; the message names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.evaluate_interval >= Duration::from_millis(10),
            "alerts.evaluate_interval_ms must be at least 10"
        );
        anyhow::ensure!(self.queue_size >= 1, "alerts.queue_size must be at least 1");
        anyhow::ensure!(
            !self.webhook_timeout.is_zero() && self.webhook_max_attempts >= 1,
            "alerts.webhook_timeout_secs must be positive and webhook_max_attempts at least 1"
        );
        for (i, hook) in self.webhooks.iter().enumerate() {
            anyhow::ensure!(
                hook.secret.is_some(),
                "alerts.webhooks[{i}] ({}) has no secret: set secret, or secret_env to a \
                 variable that is set",
                hook.url
            );
        }
        for (name, rule) in self.rules.all() {
            anyhow::ensure!(
                rule.threshold.is_finite() && rule.threshold >= 0.0,
                "alerts.rules.{name}.threshold must be a number ≥ 0, not {}",
                rule.threshold
            );
        }
        for (name, rule) in [
            ("ai_failure_rate", &self.rules.ai_failure_rate),
            ("recordings_disk", &self.rules.recordings_disk),
        ] {
            anyhow::ensure!(
                rule.threshold <= 100.0,
                "alerts.rules.{name}.threshold is a percentage: at most 100, not {}",
                rule.threshold
            );
        }
        for (name, rule) in [
            ("ai_failure_rate", &self.rules.ai_failure_rate),
            ("provider_errors", &self.rules.provider_errors),
        ] {
            anyhow::ensure!(
                !rule.window.is_zero(),
                "alerts.rules.{name}.window_secs must be positive"
            );
        }
        anyhow::ensure!(
            !self.rules.recordings_disk.path.trim().is_empty(),
            "alerts.rules.recordings_disk.path must name a directory"
        );
        let smtp = &self.smtp;
        if !smtp.host.is_empty() {
            anyhow::ensure!(smtp.port >= 1, "alerts.smtp.port must be a port number");
            anyhow::ensure!(
                !smtp.to.is_empty(),
                "alerts.smtp.to must name at least one recipient when alerts.smtp.host is set"
            );
            anyhow::ensure!(
                !smtp.timeout.is_zero(),
                "alerts.smtp.timeout_secs must be positive"
            );
            smtp.from
                .parse::<lettre::message::Mailbox>()
                .map_err(|e| anyhow::anyhow!("alerts.smtp.from {:?}: {e}", smtp.from))?;
            for to in &smtp.to {
                to.parse::<lettre::message::Mailbox>()
                    .map_err(|e| anyhow::anyhow!("alerts.smtp.to {to:?}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// One receiver of alert events.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertWebhook {
    pub url: HttpUrl,
    /// The HMAC key of `X-Switchboard-Signature`: given here, or read at load
    /// from the variable `secret_env` names.
    #[serde(default)]
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub secret_env: String,
}

impl fmt::Debug for AlertWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertWebhook")
            .field("url", &self.url)
            .field("secret_env", &self.secret_env)
            .finish_non_exhaustive()
    }
}

/// Every rule, by name; a name not listed here is refused at load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRules {
    pub ai_failure_rate: RuleSettings,
    pub provider_errors: RuleSettings,
    pub journal_backlog: RuleSettings,
    pub number_rested: RuleSettings,
    pub database_unreachable: RuleSettings,
    pub recordings_disk: RuleSettings,
}

impl AlertRules {
    /// Every rule with its name, in a fixed order.
    pub fn all(&self) -> [(&'static str, &RuleSettings); 6] {
        [
            ("ai_failure_rate", &self.ai_failure_rate),
            ("provider_errors", &self.provider_errors),
            ("journal_backlog", &self.journal_backlog),
            ("number_rested", &self.number_rested),
            ("database_unreachable", &self.database_unreachable),
            ("recordings_disk", &self.recordings_disk),
        ]
    }
}

/// One rule's settings; which of them a rule reads is in `config/default.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    pub enabled: bool,
    pub severity: AlertSeverity,
    #[serde(default)]
    pub threshold: f64,
    /// The condition must hold this long before the alert fires.
    #[serde(rename = "for_secs", deserialize_with = "values::seconds")]
    pub for_: Duration,
    /// A firing alert resolves once its condition has been clear this long.
    #[serde(rename = "clear_secs", deserialize_with = "values::seconds")]
    pub clear: Duration,
    /// Counted over this rolling window (windowed rules).
    #[serde(default, rename = "window_secs", deserialize_with = "values::seconds")]
    pub window: Duration,
    /// Fewer attempts in the window: the rate is not judged (`ai_failure_rate`).
    #[serde(default)]
    pub min_sessions: u64,
    /// The directory whose file system is measured (`recordings_disk`).
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    Warning,
    Critical,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Warning => "warning",
            AlertSeverity::Critical => "critical",
        }
    }
}

/// `[alerts.smtp]`: e-mail, off while `host` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    #[serde(rename = "timeout_secs", deserialize_with = "values::seconds")]
    pub timeout: Duration,
    /// From `SWITCHBOARD_ALERTS_SMTP_USERNAME` (none: no AUTH).
    #[serde(skip)]
    pub username: Option<String>,
    /// From `SWITCHBOARD_ALERTS_SMTP_PASSWORD`.
    #[serde(skip)]
    pub password: Option<SecretString>,
}

impl SmtpSettings {
    pub fn is_on(&self) -> bool {
        !self.host.is_empty()
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain, then `STARTTLS` (required).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// Plain all along: a relay on the same host or network.
    None,
}
