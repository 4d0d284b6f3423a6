//! Twilio's Message resource, for sending a text
//! (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource;
//! twilio/twilio-python `twilio/rest/api/v2010/account/message/__init__.py`), on
//! the same [`TwilioClient`] as the numbers and the calls (base URL
//! `TWILIO_API_BASE` / `twilio.api_base`, Basic auth with the account SID and
//! auth token):
//!
//! - [`TwilioClient::create_message`]: `POST /2010-04-01/Accounts/{AC}/Messages.json`,
//!   form-encoded `To`, `From`, `Body`, `StatusCallback`; answered `201` with the
//!   Message (`SM…`, `status` `queued`). Twilio then POSTs the message's status
//!   (`MessageSid`, `MessageStatus`: `queued`, `sent`, `delivered`,
//!   `undelivered`, `failed`, with `ErrorCode` on a failure) to `StatusCallback`
//!   (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status).
//!
//! A failure is a [`DialError`], classified as for a call: `Refused` is a 4xx with
//! Twilio's error (20003 bad credentials, 21211 an invalid `To`, 21610 a
//! recipient who replied STOP: https://www.twilio.com/docs/api/errors/21610):
//! nothing was sent and trying again cannot help. `Unknown` (a 5xx, no answer in
//! time) and `Transport` (no connection) may be tried again; after `Unknown` the
//! message may exist, so a retry can, rarely, send a second text — the caller
//! sees it twice rather than never.

use secrecy::SecretString;
use serde::Deserialize;

use super::calls::DialError;
use super::TwilioClient;
use crate::providers::{http_client, Http};

/// What [`TwilioClient::create_message`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateMessage {
    /// E.164.
    pub to: String,
    /// A number of the account, E.164.
    pub from: String,
    /// At most 1,600 characters.
    pub body: String,
    /// Where Twilio POSTs the message's status changes.
    pub status_callback: String,
}

impl CreateMessage {
    /// The form, in twilio-python's order.
    pub fn form(&self) -> [(&'static str, &str); 4] {
        [
            ("To", self.to.as_str()),
            ("StatusCallback", self.status_callback.as_str()),
            ("From", self.from.as_str()),
            ("Body", self.body.as_str()),
        ]
    }
}

/// A Message as Twilio answers its create (the fields switchboard reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// `SM…`.
    pub sid: String,
    /// `queued` (or `accepted` through a Messaging Service).
    pub status: String,
    #[serde(default)]
    pub num_segments: Option<String>,
}

impl TwilioClient {
    /// The client of the `[twilio]` account for texts: every request gives up
    /// after `timeout`, redirects are not followed. `None` without credentials.
    pub fn for_messages(
        settings: &crate::config::Settings,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Option<TwilioClient>> {
        use anyhow::Context as _;
        let twilio = &settings.twilio;
        let (false, Some(token)) = (twilio.account_sid.is_empty(), &twilio.auth_token) else {
            return Ok(None);
        };
        let client = http_client(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the Twilio messages HTTP client")?;
        let http = Http {
            client,
            account: "twilio messages".to_owned(),
            base: twilio.api_base.as_str().trim_end_matches('/').to_owned(),
            timeout,
            page_size: 1,
        };
        Ok(Some(TwilioClient::new(
            http,
            twilio.account_sid.clone(),
            SecretString::clone(token),
        )))
    }

    /// Sends a text. Answers the Message Twilio created; see the module doc for
    /// what each failure means.
    pub async fn create_message(&self, message: &CreateMessage) -> Result<Message, DialError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.http.base, self.account_sid
        );
        self.send_calls(
            self.request(reqwest::Method::POST, &url)
                .form(&message.form()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilios_message_answer_is_read() {
        let message: Message = serde_json::from_str(
            r#"{"sid":"SM1","status":"queued","num_segments":"1","body":"hi","to":"+1","from":"+2",
                "error_code":null,"price":null}"#,
        )
        .expect("a message");
        assert_eq!(message.sid, "SM1");
        assert_eq!(message.status, "queued");
    }
}
