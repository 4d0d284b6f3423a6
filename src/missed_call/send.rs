//! The [`Texter`]: which ended calls get a text, and the worker that sends them.
//!
//! [`Texter::call_ended`] runs on the call's actor as it ends: it only decides
//! whether the call qualifies (an inbound call, `voicemail`, or `abandoned` by the
//! caller hanging up — not by a supervisor —, to a number with a template) and
//! queues it without waiting (`try_send`; a full queue drops the text and says so
//! in the trail). The worker takes each call under a semaphore of
//! `missed_call_text.concurrency` permits and, in its own task: skips a caller
//! that is not a phone number or is on the global do-not-call list, claims the
//! day's text (a second missed call the same UTC day finds it taken), then
//! creates the Message with `send_timeout` per request, trying again after a 5xx,
//! a timeout or a failed connection (backoff doubling from `retry_backoff`, at
//! most `max_attempts` in all) and never after a 4xx. A text is sent at most
//! once: after a 5xx or a timeout the Message may exist, so before trying again
//! the worker reads Twilio's list of texts from the number to the caller and
//! takes a Message with this body created since the first attempt as the one it
//! sent; when that list cannot be read either, it does not send again.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_actors::assistant::CallReport;
use switchboard_actors::journal::{Journal, JournalEntry};
use switchboard_actors::machine::Outcome;
use switchboard_actors::CallId;
use tokio::sync::{mpsc, Semaphore};

use crate::config::MissedCallTextSettings;
use crate::domain::phone::PhoneNumber;
use crate::providers::twilio::calls::DialError;
use crate::providers::twilio::messages::{CreateMessage, Message};
use crate::providers::twilio::TwilioClient;
use crate::store::Store;

/// The trail event of the text itself (once per qualifying call).
pub const TEXT_EVENT: &str = "missed_call_text";

/// "Now" in milliseconds since the epoch (the engine's clock).
pub type NowMs = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A missed call waiting for its text.
struct Missed {
    call_id: CallId,
    caller: String,
    number: String,
    body: String,
}

/// What the worker needs, shared by its tasks.
struct Worker {
    settings: MissedCallTextSettings,
    store: Store,
    journal: Arc<dyn Journal>,
    twilio: TwilioClient,
    /// `http(s)://host[:port]`, without a trailing slash.
    public_url: Arc<str>,
    now_ms: NowMs,
}

/// The queue of missed calls; cheap to clone.
#[derive(Clone)]
pub struct Texter {
    queue: mpsc::Sender<Missed>,
    settings: Arc<MissedCallTextSettings>,
    journal: Arc<dyn Journal>,
}

impl Texter {
    /// Starts the worker on the current runtime. It ends when every `Texter` is
    /// dropped.
    pub fn start(
        settings: MissedCallTextSettings,
        store: Store,
        journal: Arc<dyn Journal>,
        twilio: TwilioClient,
        public_url: Arc<str>,
        now_ms: NowMs,
    ) -> Texter {
        let (queue, rx) = mpsc::channel(settings.queue_size.max(1));
        let texter = Texter {
            queue,
            settings: Arc::new(settings.clone()),
            journal: Arc::clone(&journal),
        };
        let worker = Arc::new(Worker {
            settings,
            store,
            journal,
            twilio,
            public_url,
            now_ms,
        });
        tokio::spawn(run(worker, rx));
        texter
    }

    /// A call ended: queues its text if it qualifies (see the module doc).
    pub fn call_ended(&self, report: &CallReport) {
        let missed = report.direction == "inbound"
            && match report.outcome {
                Outcome::Voicemail => true,
                Outcome::Abandoned => report.reason != "supervisor_hangup",
                _ => false,
            };
        if !missed {
            return;
        }
        let Some(template) = self.settings.template_for(&report.to) else {
            return;
        };
        let missed = Missed {
            call_id: report.call_id.clone(),
            caller: report.from.clone(),
            number: report.to.clone(),
            body: template.render(&report.from, &report.to),
        };
        if let Err(mpsc::error::TrySendError::Full(missed)) = self.queue.try_send(missed) {
            tracing::warn!(call_id = %missed.call_id, "missed-call text queue full; text dropped");
            self.journal.append(JournalEntry::AfterEvent {
                call_id: missed.call_id,
                at: switchboard_actors::journal::now_ms(),
                kind: TEXT_EVENT,
                detail: json!({ "status": "dropped", "reason": "queue-full" }),
            });
        }
    }
}

async fn run(worker: Arc<Worker>, mut rx: mpsc::Receiver<Missed>) {
    let permits = Arc::new(Semaphore::new(worker.settings.concurrency.max(1)));
    while let Some(missed) = rx.recv().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let worker = Arc::clone(&worker);
        tokio::spawn(async move {
            worker.text(missed).await;
            drop(permit);
        });
    }
}

/// The UTC day of `ms`, `YYYY-MM-DD`.
fn utc_day(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let date = at.date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

impl Worker {
    fn trail(&self, call_id: &CallId, detail: serde_json::Value) {
        self.journal.append(JournalEntry::AfterEvent {
            call_id: call_id.clone(),
            at: (self.now_ms)(),
            kind: TEXT_EVENT,
            detail,
        });
    }

    fn skipped(&self, call_id: &CallId, reason: &str) {
        tracing::info!(call_id = %call_id, reason, "missed-call text skipped");
        self.trail(call_id, json!({ "status": "skipped", "reason": reason }));
    }

    #[tracing::instrument(skip_all, fields(call_id = %missed.call_id))]
    async fn text(&self, missed: Missed) {
        let id = &missed.call_id;
        let (Ok(caller), Ok(number)) = (
            PhoneNumber::parse(&missed.caller),
            PhoneNumber::parse(&missed.number),
        ) else {
            return self.skipped(id, "not-a-phone-number");
        };
        match self.store.is_globally_do_not_call(&caller).await {
            Ok(false) => {}
            Ok(true) => return self.skipped(id, "do-not-call"),
            Err(e) => {
                tracing::error!(error = %e, "the do-not-call list could not be read");
                return self.trail(
                    id,
                    json!({ "status": "failed", "error": { "message": "the do-not-call list could not be read" } }),
                );
            }
        }
        let day = utc_day((self.now_ms)());
        match self
            .store
            .claim_missed_call_text(&caller, &number, &day, id)
            .await
        {
            Ok(true) => {}
            Ok(false) => return self.skipped(id, "already-texted-today"),
            Err(e) => {
                tracing::error!(error = %e, "the missed-call text could not be claimed");
                return self.trail(
                    id,
                    json!({ "status": "failed", "error": { "message": "the text could not be claimed (database)" } }),
                );
            }
        }
        let message = CreateMessage {
            to: caller.as_str().to_owned(),
            from: number.as_str().to_owned(),
            body: missed.body,
            status_callback: format!(
                "{}/twilio/missed-call-text/status?call={}",
                self.public_url, id
            ),
        };
        let Sent {
            result,
            attempts,
            found_in_list,
        } = self.send(&message).await;
        let mut base = json!({
            "to": message.to,
            "from": message.from,
            "body": message.body,
            "attempts": attempts,
        });
        if found_in_list {
            base["found_in_list"] = true.into();
        }
        let (status, sid, error, detail) = match result {
            Ok(Message { sid, status, .. }) => {
                tracing::info!(message_sid = %sid, attempts, "missed-call text sent");
                let mut detail = base;
                detail["status"] = status.clone().into();
                detail["sid"] = sid.clone().into();
                (status, Some(sid), None, detail)
            }
            Err(e) => {
                tracing::warn!(error = %e, attempts, "missed-call text failed");
                let mut detail = base;
                detail["status"] = "failed".into();
                detail["error"] = match &e {
                    DialError::Refused {
                        status,
                        code,
                        message,
                    } => json!({ "http_status": status, "code": code, "message": message }),
                    DialError::Unknown { detail } | DialError::Transport { detail } => {
                        json!({ "message": detail })
                    }
                };
                ("failed".to_owned(), None, Some(e.to_string()), detail)
            }
        };
        if let Err(e) = self
            .store
            .record_missed_call_text(id, &status, sid.as_deref(), error.as_deref())
            .await
        {
            tracing::error!(error = %e, "the missed-call text's result could not be stored");
        }
        self.trail(id, detail);
    }

    /// Creates the Message, trying again as the module doc says.
    async fn send(&self, message: &CreateMessage) -> Sent {
        let max = self.settings.max_attempts.max(1);
        let mut backoff = self.settings.retry_backoff;
        // Twilio's clock, not the engine's: the list's times are Twilio's. The
        // slack covers clocks apart; the day's claim keeps older texts out.
        let since = time::OffsetDateTime::now_utc() - LIST_SLACK;
        let mut attempt = 1;
        loop {
            let result = self.twilio.create_message(message).await;
            let may_exist = match &result {
                Err(DialError::Unknown { .. }) => true,
                Err(DialError::Transport { .. }) => false,
                Ok(_) | Err(DialError::Refused { .. }) => {
                    return Sent::answered(result, attempt);
                }
            };
            if attempt >= max && !may_exist {
                return Sent::answered(result, attempt);
            }
            if let Err(e) = &result {
                tracing::info!(error = %e, attempt, "missed-call text: not answered");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
            // After the last attempt too: the trail then says what Twilio did.
            if may_exist {
                match self
                    .twilio
                    .messages_between(&message.from, &message.to, since)
                    .await
                {
                    Ok(listed) => {
                        let ours = listed
                            .into_iter()
                            .find(|m| m.body.as_deref() == Some(message.body.as_str()));
                        if let Some(sent) = ours {
                            tracing::info!(message_sid = %sent.sid, attempt, "missed-call text: Twilio had created it");
                            return Sent {
                                result: Ok(sent),
                                attempts: attempt,
                                found_in_list: true,
                            };
                        }
                    }
                    Err(listing) => {
                        let first = result.err().map(|e| e.to_string()).unwrap_or_default();
                        return Sent::answered(
                            Err(DialError::Unknown {
                                detail: format!(
                                    "{first}; and Twilio's list of texts could not be read \
                                     ({listing}), so it was not sent again (a caller is never \
                                     texted twice)"
                                ),
                            }),
                            attempt,
                        );
                    }
                }
            }
            if attempt >= max {
                return Sent::answered(result, attempt);
            }
            attempt += 1;
        }
    }
}

/// How far before the first attempt a listed text may have been created and
/// still be this one (Twilio's clock against this machine's).
const LIST_SLACK: Duration = Duration::from_secs(120);

/// What [`Worker::send`] ended with.
struct Sent {
    /// The last answer (or the Message found in Twilio's list).
    result: Result<Message, DialError>,
    /// Create requests made.
    attempts: u32,
    /// The Message came from Twilio's list after an answer was lost.
    found_in_list: bool,
}

impl Sent {
    fn answered(result: Result<Message, DialError>, attempts: u32) -> Sent {
        Sent {
            result,
            attempts,
            found_in_list: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_the_utc_date() {
        // 2026-12-02T23:59:59.999Z and a millisecond later.
        assert_eq!(utc_day(1_796_255_999_999), "2026-12-02");
        assert_eq!(utc_day(1_796_256_000_000), "2026-12-03");
    }
}
