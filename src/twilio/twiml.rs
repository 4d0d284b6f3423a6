//! The TwiML documents the engine answers Twilio with.

use quick_xml::escape::escape;

const PROLOGUE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// Answers a call by streaming its audio to the engine: `<Connect><Stream>` (which
/// holds the call until the engine closes the stream) with per-call parameters.
pub fn connect_stream(stream_url: &str, parameters: &[(&str, &str)]) -> String {
    connect_stream_then(stream_url, parameters, None)
}

/// [`connect_stream`], followed in cluster mode by a `<Redirect method="POST">` to
/// `resume_url`: Twilio runs the next verb when the stream's socket closes
/// (<https://www.twilio.com/docs/voice/twiml/stream>), and `<Redirect>` fetches
/// new TwiML from the URL (<https://www.twilio.com/docs/voice/twiml/redirect>),
/// which is how a call whose node died or drains comes back to a live node.
pub fn connect_stream_then(
    stream_url: &str,
    parameters: &[(&str, &str)],
    resume_url: Option<&str>,
) -> String {
    let mut xml = format!(
        r#"{PROLOGUE}<Response><Connect><Stream url="{}">"#,
        escape(stream_url)
    );
    for (name, value) in parameters {
        xml.push_str(&format!(
            r#"<Parameter name="{}" value="{}"/>"#,
            escape(*name),
            escape(*value)
        ));
    }
    xml.push_str("</Stream></Connect>");
    if let Some(url) = resume_url {
        xml.push_str(&format!(
            r#"<Redirect method="POST">{}</Redirect>"#,
            escape(url)
        ));
    }
    xml.push_str("</Response>");
    xml
}

/// Sends Twilio to fetch the call's TwiML again from `url` (a node that cannot
/// take the call sends it back through the load balancer).
pub fn redirect(url: &str) -> String {
    format!(
        r#"{PROLOGUE}<Response><Redirect method="POST">{}</Redirect></Response>"#,
        escape(url)
    )
}

/// Says `text` and hangs up.
pub fn say_and_hang_up(text: &str) -> String {
    format!(
        "{PROLOGUE}<Response><Say>{}</Say><Hangup/></Response>",
        escape(text)
    )
}

/// Ends the call at once (a retried webhook for a call that is over).
pub fn hang_up() -> String {
    format!("{PROLOGUE}<Response><Hangup/></Response>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_stream_carries_the_url_and_parameters() {
        let xml = connect_stream("wss://sb.example/twilio/stream", &[("call_id", "abc")]);
        assert_eq!(
            xml,
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://sb.example/twilio/stream"><Parameter name="call_id" value="abc"/></Stream></Connect></Response>"#
        );
    }

    #[test]
    fn the_cluster_answer_continues_with_a_redirect_to_the_resume_url() {
        let xml = connect_stream_then(
            "ws://node-a/twilio/stream",
            &[("call_id", "abc")],
            Some("https://lb/twilio/resume?call=abc"),
        );
        assert!(xml.ends_with(
            r#"</Stream></Connect><Redirect method="POST">https://lb/twilio/resume?call=abc</Redirect></Response>"#
        ));
    }

    #[test]
    fn values_are_xml_escaped() {
        let xml = connect_stream("wss://h/s?a=1&b=2", &[("n", r#"<"x">"#)]);
        assert!(xml.contains(r#"url="wss://h/s?a=1&amp;b=2""#));
        assert!(xml.contains(r#"value="&lt;&quot;x&quot;&gt;""#));
        assert_eq!(
            say_and_hang_up("Tom & Jerry"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Tom &amp; Jerry</Say><Hangup/></Response>"#
        );
    }
}
