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
//! - [`TwilioClient::messages_between`]: `GET /2010-04-01/Accounts/{AC}/Messages.json`
//!   with the `To` and `From` filters, every page (`PageSize`, `next_page_uri`
//!   relative to the API base), as "Read multiple Message resources" describes
//!   (https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources).
//!
//! A failure is a [`DialError`], classified as for a call: `Refused` is a 4xx with
//! Twilio's error (20003 bad credentials, 21211 an invalid `To`, 21610 a
//! recipient who replied STOP: https://www.twilio.com/docs/api/errors/21610):
//! nothing was sent and trying again cannot help. `Transport` (no connection):
//! nothing was sent. `Unknown` (a 5xx, no answer in time): the message may exist,
//! so whoever tries again reads the list first ([`TwilioClient::messages_between`])
//! rather than text a caller twice.

use secrecy::SecretString;
use serde::Deserialize;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use super::calls::DialError;
use super::{TwilioClient, MAX_PAGE_SIZE};
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
    /// What was sent (in a list; a create answers it too).
    #[serde(default)]
    pub body: Option<String>,
    /// RFC 2822, e.g. `Thu, 03 Dec 2026 10:00:00 +0000`.
    #[serde(default)]
    pub date_created: Option<String>,
}

impl Message {
    /// When Twilio created it; `None` when Twilio did not say (or not in RFC 2822).
    pub fn created_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(self.date_created.as_deref()?, &Rfc2822).ok()
    }
}

/// One page of Twilio's Message list.
#[derive(Deserialize)]
struct MessagePage {
    messages: Vec<Message>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

/// Pages read at most: a list longer than this between one number and one
/// caller is not a missed-call text's to settle.
const MAX_PAGES: usize = 10;

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
            // Twilio's default page; a caller's texts from one number are few.
            page_size: 50,
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

    /// Every Message from `from` to `to` that Twilio created at or after `since`
    /// (or whose creation time it does not give), all pages. It filters by `To`
    /// and `From` only: Twilio's `DateSent` filter would miss a message still
    /// `queued`, whose `date_sent` is null.
    pub async fn messages_between(
        &self,
        from: &str,
        to: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<Message>, DialError> {
        let page_size = self.http.page_size.clamp(1, MAX_PAGE_SIZE).to_string();
        let query = serde_urlencoded::to_string([
            ("To", to),
            ("From", from),
            ("PageSize", page_size.as_str()),
        ])
        .unwrap_or_default();
        let mut url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json?{query}",
            self.http.base, self.account_sid
        );
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: MessagePage = self
                .send_calls(self.request(reqwest::Method::GET, &url))
                .await?;
            found.extend(
                page.messages
                    .into_iter()
                    .filter(|m| m.created_at().is_none_or(|at| at >= since)),
            );
            match self.next_page(page.next_page_uri) {
                Ok(Some(next)) => url = next,
                Ok(None) => return Ok(found),
                Err(detail) => return Err(DialError::Unknown { detail }),
            }
        }
        Err(DialError::Unknown {
            detail: format!("twilio messages: more than {MAX_PAGES} pages between {from} and {to}"),
        })
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
        assert_eq!(message.body.as_deref(), Some("hi"));
    }

    #[test]
    fn a_listed_messages_creation_time_is_read_from_rfc_2822() {
        let message: Message = serde_json::from_str(
            r#"{"sid":"SM1","status":"sent","date_created":"Thu, 03 Dec 2026 10:00:00 +0000"}"#,
        )
        .expect("a message");
        let at = message.created_at().expect("a time");
        assert_eq!(at.unix_timestamp(), 1_796_292_000);
        let odd: Message =
            serde_json::from_str(r#"{"sid":"SM2","status":"sent","date_created":"yesterday"}"#)
                .expect("a message");
        assert_eq!(odd.created_at(), None);
    }
}
