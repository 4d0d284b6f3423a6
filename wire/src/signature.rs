//! `X-Twilio-Signature`: HMAC-SHA1 over the URL Twilio requested followed by the
//! sorted POST parameters, keyed with the account's auth token, base64-encoded.
//! Accepted with and without the default port, as Twilio's own libraries do.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// A signature header value: base64 of a 20-byte HMAC-SHA1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioSignature(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Twilio-Signature is missing")]
    Missing,
    #[error("X-Twilio-Signature is not a base64 HMAC-SHA1")]
    Malformed,
    #[error("X-Twilio-Signature does not match")]
    Mismatch,
    #[error("no Twilio auth token is configured, so no request can be verified")]
    NoToken,
}

impl TwilioSignature {
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let bytes = STANDARD
            .decode(header.trim())
            .map_err(|_| SignatureError::Malformed)?;
        if bytes.len() != 20 {
            return Err(SignatureError::Malformed);
        }
        Ok(Self(bytes))
    }
}

fn mac(token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = HmacSha1::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The signature Twilio sends for this URL and these POST parameters.
pub fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(token, url, params).finalize().into_bytes())
}

/// Constant-time check of `signature` against the URL as given, with the scheme's
/// default port added, and with any port removed.
pub fn verify(
    token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &TwilioSignature,
) -> Result<(), SignatureError> {
    let candidates = [
        Some(url.to_owned()),
        with_default_port(url),
        without_port(url),
    ];
    let matched = candidates.iter().flatten().any(|candidate| {
        mac(token, candidate, params)
            .verify_slice(&signature.0)
            .is_ok()
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Splits `scheme://authority/rest` into its parts.
fn split(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((scheme, &rest[..end], &rest[end..]))
}

fn host_and_port(authority: &str) -> (&str, Option<&str>) {
    // Keep IPv6 literals (`[::1]:80`) intact.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rfind(':') {
        Some(i) => (
            &authority[..host_end + i],
            Some(&authority[host_end + i + 1..]),
        ),
        None => (authority, None),
    }
}

fn with_default_port(url: &str) -> Option<String> {
    let (scheme, authority, rest) = split(url)?;
    let (host, port) = host_and_port(authority);
    if port.is_some() {
        return None;
    }
    let default = match scheme {
        "https" | "wss" => "443",
        "http" | "ws" => "80",
        _ => return None,
    };
    Some(format!("{scheme}://{host}:{default}{rest}"))
}

fn without_port(url: &str) -> Option<String> {
    let (scheme, authority, rest) = split(url)?;
    let (host, port) = host_and_port(authority);
    port?;
    Some(format!("{scheme}://{host}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn example() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    fn ok(url: &str, params: &[(String, String)], sig: &str) -> bool {
        verify(
            "12345",
            url,
            params,
            &TwilioSignature::parse(sig).expect("b64"),
        )
        .is_ok()
    }

    #[test]
    fn twilio_documented_vectors_sign_as_published() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            sign("12345", url, &example()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            sign(
                "12345",
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &example()
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            sign(
                "12345",
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                &example()
            ),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
    }

    #[test]
    fn the_docs_page_example_validates() {
        let p = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert!(ok(
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &p,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn signatures_validate_with_or_without_the_port() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(ok(url, &example(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(ok(url, &example(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
        assert!(ok(
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &example(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn repeated_parameters_are_sorted_by_value() {
        let p = params(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert!(ok(
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &p,
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        ));
    }

    #[test]
    fn the_media_stream_handshake_signs_the_wss_url_without_parameters() {
        assert_eq!(
            sign("12345", "wss://example.com/media-stream", &[]),
            "XFfwGS2Ev7f9qAP9MmRoMS7C724="
        );
    }

    #[test]
    fn a_changed_parameter_or_token_fails() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let mut p = example();
        p[2].1 = "9999".into();
        assert!(!ok(url, &p, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        let sig = TwilioSignature::parse("RSOYDt4T1cUTdK1PDd93/VVr8B8=").expect("b64");
        assert_eq!(
            verify("54321", url, &example(), &sig),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            TwilioSignature::parse("not base64!"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            TwilioSignature::parse("YWJj"),
            Err(SignatureError::Malformed)
        );
    }
}
