//! A fake Twilio that follows TwiML as Twilio does, for the failover tests
//! (issue 16, items 5 and 6):
//!
//! - a call starts with the voice webhook, POSTed (signed) to the public URL —
//!   the test's load balancer
//!   (<https://www.twilio.com/docs/usage/webhooks/voice-webhooks>);
//! - `<Connect><Stream url>` opens a Media Stream on that URL, the upgrade signed
//!   over it, with the `<Parameter>`s as `customParameters` in `start`
//!   (<https://www.twilio.com/docs/voice/twiml/stream>,
//!   <https://www.twilio.com/docs/voice/media-streams/websocket-messages>);
//!   the call stays on that verb while the socket is open, and when the socket
//!   closes Twilio goes on with the next verb of the document ("when the
//!   WebSocket connection is closed, Twilio continues with the next TwiML
//!   instruction");
//! - `<Redirect method="POST">URL</Redirect>` fetches new TwiML from the URL with
//!   the call's usual parameters (signed) and runs it instead of the rest
//!   (<https://www.twilio.com/docs/voice/twiml/redirect>);
//! - `<Hangup/>`, or the end of the document, ends the call
//!   (<https://www.twilio.com/docs/voice/twiml/hangup>).
//!
//! The test holds each stream while it plays the caller; [`PlayedCall::after_close`]
//! waits for the socket to close and carries on with the TwiML, as Twilio would.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::Value;
use switchboard::twilio::signature::sign;

use crate::helpers::{new_call_sid, TwilioStream, PATIENCE, TWILIO_TOKEN};

/// One TwiML verb the fake plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Connect><Stream url>` with its parameters.
    Stream {
        url: String,
        parameters: Vec<(String, String)>,
    },
    Redirect {
        url: String,
    },
    Hangup,
    /// Anything else (`<Say>`…): played, with nothing to do here.
    Other(String),
}

/// What the call does after the fake ran the TwiML it has.
pub enum Next {
    /// A media stream is open: the call is on it.
    Stream(TwilioStream),
    /// The call is over.
    HungUp,
}

impl Next {
    pub fn stream(self) -> TwilioStream {
        match self {
            Next::Stream(stream) => stream,
            Next::HungUp => panic!("the call hung up instead of streaming"),
        }
    }
}

/// A call the fake Twilio places and plays.
pub struct PlayedCall {
    pub call_sid: String,
    pub from: String,
    pub to: String,
    /// The engine's call id, from the first stream's `call_id` parameter.
    pub call_id: String,
    /// Where webhooks and redirects go (the balancer).
    public_url: String,
    /// The verbs after the stream in progress.
    rest: Vec<Verb>,
    /// Every stream URL opened, in order.
    pub streams: Vec<String>,
    /// Every URL redirected to, in order, with the TwiML it answered.
    pub redirects: Vec<(String, String)>,
    /// When each redirect's TwiML arrived, in the same order.
    pub redirected_at: Vec<std::time::Instant>,
}

impl PlayedCall {
    /// A call from `from` to `to` arrives: the voice webhook on `public_url`, and
    /// its TwiML run up to the first stream (or the end).
    pub async fn dial(public_url: &str, from: &str, to: &str) -> (PlayedCall, Next) {
        let mut call = PlayedCall {
            call_sid: new_call_sid(),
            from: from.to_owned(),
            to: to.to_owned(),
            call_id: String::new(),
            public_url: public_url.to_owned(),
            rest: Vec::new(),
            streams: Vec::new(),
            redirects: Vec::new(),
            redirected_at: Vec::new(),
        };
        let url = format!("{public_url}/twilio/voice");
        let twiml = call.post(&url, "ringing").await;
        let next = call.run(parse(&twiml)).await;
        (call, next)
    }

    /// Waits for `stream`'s socket to close (the engine hung up, drained, or its
    /// node died), then goes on with the TwiML as Twilio does.
    pub async fn after_close(&mut self, mut stream: TwilioStream) -> Next {
        stream.closed().await;
        let rest = std::mem::take(&mut self.rest);
        self.run(rest).await
    }

    /// The stream's socket drops without `stop` (the network between Twilio and
    /// the node broke; the node lives): Twilio goes on with the TwiML.
    pub async fn after_drop(&mut self, stream: TwilioStream) -> Next {
        drop(stream);
        let rest = std::mem::take(&mut self.rest);
        self.run(rest).await
    }

    /// Runs `verbs` until a stream opens or the call ends.
    async fn run(&mut self, mut verbs: Vec<Verb>) -> Next {
        // Twilio caps redirects; so does the fake, so a loop fails the test.
        for _ in 0..20 {
            let mut followed = None;
            let mut queue = verbs.into_iter();
            while let Some(verb) = queue.next() {
                match verb {
                    Verb::Stream { url, parameters } => {
                        self.rest = queue.collect();
                        self.streams.push(url.clone());
                        if let Some((_, id)) = parameters.iter().find(|(n, _)| n == "call_id") {
                            self.call_id.clone_from(id);
                        }
                        let custom: serde_json::Map<String, Value> = parameters
                            .into_iter()
                            .map(|(name, value)| (name, Value::String(value)))
                            .collect();
                        return match TwilioStream::open(
                            &url,
                            TWILIO_TOKEN,
                            &self.call_sid,
                            Value::Object(custom),
                        )
                        .await
                        {
                            Ok(stream) => Next::Stream(stream),
                            // The socket did not open: Twilio goes on with the
                            // next verb, as after a close.
                            Err(_) => {
                                let rest = std::mem::take(&mut self.rest);
                                Box::pin(self.run(rest)).await
                            }
                        };
                    }
                    Verb::Redirect { url } => {
                        let twiml = self.post(&url, "in-progress").await;
                        self.redirected_at.push(std::time::Instant::now());
                        self.redirects.push((url, twiml.clone()));
                        followed = Some(parse(&twiml));
                        break;
                    }
                    Verb::Hangup => return Next::HungUp,
                    Verb::Other(_) => {}
                }
            }
            match followed {
                Some(next) => verbs = next,
                // The end of the document: Twilio hangs up.
                None => return Next::HungUp,
            }
        }
        panic!("more than 20 redirects: {:?}", self.redirects);
    }

    /// The call's parameters, as Twilio sends them with every request of the
    /// call (<https://www.twilio.com/docs/voice/twiml#request-parameters>).
    fn parameters(&self, status: &str) -> Vec<(String, String)> {
        [
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", self.call_sid.as_str()),
            ("CallStatus", status),
            ("Called", self.to.as_str()),
            ("Caller", self.from.as_str()),
            ("Direction", "inbound"),
            ("From", self.from.as_str()),
            ("To", self.to.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// A signed form POST to `url` (a new connection each time, so the balancer
    /// picks a node per request); answers the TwiML.
    async fn post(&self, url: &str, status: &str) -> String {
        let params = self.parameters(status);
        let signature = sign(TWILIO_TOKEN, url, &params);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(PATIENCE * 2)
            .build()
            .expect("a client");
        let res = client
            .post(url)
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url} through {}: {e}", self.public_url));
        let status = res.status();
        let body = res.text().await.expect("a body");
        assert!(status.is_success(), "POST {url}: {status} {body}");
        body
    }

    /// The resume URL the TwiML in progress continues with, if any.
    pub fn pending_redirect(&self) -> Option<&str> {
        self.rest.iter().find_map(|verb| match verb {
            Verb::Redirect { url } => Some(url.as_str()),
            _ => None,
        })
    }
}

/// The verbs of a TwiML document, in order (`<Connect><Stream>` as one).
pub fn parse(twiml: &str) -> Vec<Verb> {
    let mut reader = Reader::from_str(twiml);
    let mut verbs = Vec::new();
    let mut stream: Option<(String, Vec<(String, String)>)> = None;
    let mut redirect: Option<String> = None;
    let attr = |e: &quick_xml::events::BytesStart<'_>, name: &str| -> String {
        e.try_get_attribute(name)
            .expect("an attribute")
            .map(|a| a.unescape_value().expect("an attribute value").into_owned())
            .unwrap_or_default()
    };
    loop {
        match reader.read_event().expect("TwiML is XML") {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"Stream" => {
                stream = Some((attr(&e, "url"), Vec::new()));
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"Parameter" => {
                if let Some((_, parameters)) = &mut stream {
                    parameters.push((attr(&e, "name"), attr(&e, "value")));
                }
            }
            Event::Start(e) if e.name().as_ref() == b"Redirect" => redirect = Some(String::new()),
            Event::Text(text) => {
                if let Some(url) = &mut redirect {
                    url.push_str(&text.unescape().expect("text"));
                }
            }
            Event::End(e) if e.name().as_ref() == b"Connect" => {
                if let Some((url, parameters)) = stream.take() {
                    verbs.push(Verb::Stream { url, parameters });
                }
            }
            Event::End(e) if e.name().as_ref() == b"Redirect" => {
                let url = redirect.take().unwrap_or_default().trim().to_owned();
                verbs.push(Verb::Redirect { url });
            }
            Event::Empty(e) if e.name().as_ref() == b"Hangup" => verbs.push(Verb::Hangup),
            Event::Start(e) | Event::Empty(e)
                if !matches!(e.name().as_ref(), b"Response" | b"Connect") =>
            {
                verbs.push(Verb::Other(
                    String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                ));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    verbs
}

#[test]
fn the_cluster_twiml_is_a_stream_then_a_redirect() {
    let verbs = parse(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="ws://n/twilio/stream"><Parameter name="call_id" value="c1"/></Stream></Connect><Redirect method="POST">http://lb/twilio/resume?call=c1&amp;x=1</Redirect></Response>"#,
    );
    assert_eq!(
        verbs,
        vec![
            Verb::Stream {
                url: "ws://n/twilio/stream".into(),
                parameters: vec![("call_id".into(), "c1".into())],
            },
            Verb::Redirect {
                url: "http://lb/twilio/resume?call=c1&x=1".into()
            },
        ]
    );
    assert_eq!(
        parse(r#"<Response><Hangup/></Response>"#),
        vec![Verb::Hangup]
    );
}
