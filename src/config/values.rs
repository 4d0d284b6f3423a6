//! The typed values settings hold, read from TOML (and the environment) once at
//! load: durations from `*_secs` and `*_ms` numbers, HTTP and WebSocket URLs
//! checked with the `url` parser, networks as `IpNet`s, and `""` as "unset" where
//! a setting may be left to its default.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::Error as _;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::domain::phone::PhoneNumber;
use crate::domain::text_template::TextTemplate;

/// The longest duration a setting may hold: one day.
const MAX_SECS: f64 = 86_400.0;

/// A `*_secs` setting: a number of seconds (fractions allowed) from 0 to a day.
pub fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(deserializer)?;
    if !(secs.is_finite() && (0.0..=MAX_SECS).contains(&secs)) {
        return Err(de::Error::custom(format!(
            "must be a number of seconds from 0 to {MAX_SECS}, not {secs}"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A `*_ms` setting: a whole number of milliseconds, at most a day.
pub fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let ms = u64::deserialize(deserializer)?;
    if ms as f64 > MAX_SECS * 1_000.0 {
        return Err(de::Error::custom(format!(
            "must be a number of milliseconds from 0 to {}, not {ms}",
            MAX_SECS * 1_000.0
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// A setting where `""` means "unset" (the default applies) and anything else
/// must parse as `T`.
pub fn optional<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let raw = String::deserialize(deserializer)?;
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(de::Error::custom)
}

/// A time-of-day setting, `"HH:MM"` on a 24-hour clock (`"08:00"`, `"21:00"`).
pub fn time_of_day<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<jiff::civil::Time, D::Error> {
    let raw = String::deserialize(deserializer)?;
    parse_time_of_day(&raw).ok_or_else(|| {
        de::Error::custom(format!(
            "must be a time of day as \"HH:MM\" (00:00 to 23:59), not {raw:?}"
        ))
    })
}

fn parse_time_of_day(raw: &str) -> Option<jiff::civil::Time> {
    let (hour, minute) = raw.split_once(':')?;
    let two_digits = |part: &str| {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<i8>().ok())
            .flatten()
    };
    jiff::civil::Time::new(two_digits(hour)?, two_digits(minute)?, 0, 0).ok()
}

/// A list of networks (`10.0.0.0/8`, `2001:db8::/32`) or single addresses
/// (`10.1.2.3`, taken as a /32 or /128).
pub fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|raw| network(raw).map_err(de::Error::custom))
        .collect()
}

fn network(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{raw:?} is neither an IP address nor a network (CIDR)"))
}

/// Why a URL setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} is not a URL: {1}")]
    Unparseable(String, String),
    #[error("{0:?} must start with {1}")]
    Scheme(String, &'static str),
    #[error("{0:?} has no host")]
    NoHost(String),
}

/// Checks `raw` with the `url` parser: one of `schemes` (`expected` says which to
/// a person), and a host.
fn check_url(raw: &str, schemes: [&str; 2], expected: &'static str) -> Result<(), UrlError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| UrlError::Unparseable(raw.to_owned(), e.to_string()))?;
    if !schemes.contains(&url.scheme()) {
        return Err(UrlError::Scheme(raw.to_owned(), expected));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost(raw.to_owned()));
    }
    Ok(())
}

macro_rules! checked_url {
    ($(#[$doc:meta])* $name:ident, $schemes:expr, $expected:literal, $keep:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = UrlError;
            fn from_str(raw: &str) -> Result<Self, UrlError> {
                check_url(raw, $schemes, $expected)?;
                let keep: fn(&str) -> &str = $keep;
                Ok($name(keep(raw).to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = UrlError;
            fn try_from(raw: String) -> Result<Self, UrlError> {
                raw.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_url!(
    /// An `http://` or `https://` base URL: checked by the `url` parser, kept as
    /// written less any trailing `/` (so a path is appended with one `/`, and a URL
    /// Twilio signs is not respelled).
    HttpUrl,
    ["http", "https"],
    "http:// or https://",
    |raw| raw.trim_end_matches('/')
);

checked_url!(
    /// A `ws://` or `wss://` URL, checked by the `url` parser and kept as written.
    WsUrl,
    ["ws", "wss"],
    "ws:// or wss://",
    |raw| raw
);

/// `""` is unset; anything else must be a valid [`TextTemplate`].
pub fn optional_template<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<TextTemplate>, D::Error> {
    let raw = String::deserialize(deserializer)?;
    if raw.is_empty() {
        return Ok(None);
    }
    TextTemplate::parse(&raw)
        .map(Some)
        .map_err(|e| D::Error::custom(format!("the template {e}")))
}

/// `[missed_call_text.numbers."+1…"] template = "…"`: each key a phone number
/// (kept in E.164), each template valid.
pub fn number_templates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, TextTemplate>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NumberText {
        template: String,
    }
    let raw = BTreeMap::<String, NumberText>::deserialize(deserializer)?;
    let mut numbers = BTreeMap::new();
    for (key, text) in raw {
        let number = PhoneNumber::parse(&key)
            .map_err(|e| D::Error::custom(format!("numbers.\"{key}\": the number {e}")))?;
        let template = TextTemplate::parse(&text.template).map_err(|e| {
            D::Error::custom(format!("numbers.\"{key}\".template: the template {e}"))
        })?;
        if numbers.insert(number.into_string(), template).is_some() {
            return Err(D::Error::custom(format!(
                "numbers.\"{key}\": that number is listed twice"
            )));
        }
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "seconds")]
        wait_secs: Duration,
        #[serde(deserialize_with = "millis")]
        chunk_ms: Duration,
        #[serde(deserialize_with = "optional")]
        base_url: Option<HttpUrl>,
    }

    #[test]
    fn times_of_day_are_hours_and_minutes() {
        let time = |h, m| jiff::civil::Time::new(h, m, 0, 0).ok();
        assert_eq!(parse_time_of_day("08:00"), time(8, 0));
        assert_eq!(parse_time_of_day("21:30"), time(21, 30));
        assert_eq!(parse_time_of_day("00:00"), time(0, 0));
        assert_eq!(parse_time_of_day("23:59"), time(23, 59));
        for bad in [
            "8:00", "24:00", "12:60", "12", "12:00:00", "noon", "", "-1:00", "+8:00",
        ] {
            assert_eq!(parse_time_of_day(bad), None, "{bad:?}");
        }
    }

    fn sample(toml: &str) -> Result<Sample, String> {
        toml::from_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_come_from_seconds_and_milliseconds() {
        let s = sample("wait_secs = 1.5\nchunk_ms = 200\nbase_url = \"\"").expect("valid");
        assert_eq!(s.wait_secs, Duration::from_millis(1_500));
        assert_eq!(s.chunk_ms, Duration::from_millis(200));
        assert_eq!(s.base_url, None);
        let whole = sample("wait_secs = 30\nchunk_ms = 0\nbase_url = \"\"").expect("an integer");
        assert_eq!(whole.wait_secs, Duration::from_secs(30));
        for bad in ["-1.0", "1e9", "nan", "\"ten\""] {
            let err = sample(&format!("wait_secs = {bad}\nchunk_ms = 1\nbase_url = \"\""))
                .expect_err(bad);
            assert!(
                err.contains("wait_secs") || err.contains("seconds"),
                "{err}"
            );
        }
        assert!(sample("wait_secs = 1\nchunk_ms = -5\nbase_url = \"\"").is_err());
    }

    #[test]
    fn networks_are_addresses_or_cidr_blocks() {
        let net = |raw: &str| network(raw);
        assert_eq!(net("10.0.0.0/8"), Ok("10.0.0.0/8".parse().expect("a net")));
        assert_eq!(net(" 10.1.2.3 "), Ok("10.1.2.3/32".parse().expect("a net")));
        assert_eq!(net("10.1.2.3/8"), Ok("10.0.0.0/8".parse().expect("a net")));
        assert_eq!(net("::1"), Ok("::1/128".parse().expect("a net")));
        for bad in ["10.0.0.300", "10.0.0.0/33", "proxy.internal", ""] {
            let err = net(bad).expect_err(bad);
            assert!(err.contains("CIDR"), "{err}");
        }
    }

    #[test]
    fn urls_are_parsed_and_kept_as_written() {
        let url: HttpUrl = "https://Example.com:443/api/".parse().expect("valid");
        assert_eq!(url.as_str(), "https://Example.com:443/api");
        let s = sample("wait_secs = 1\nchunk_ms = 1\nbase_url = \"http://127.0.0.1:9/\"")
            .expect("valid");
        assert_eq!(
            s.base_url.map(|u| u.to_string()).as_deref(),
            Some("http://127.0.0.1:9")
        );
        for bad in [
            "ftp://example.com",
            "example.com",
            "http://",
            "wss://example.com",
        ] {
            assert!(bad.parse::<HttpUrl>().is_err(), "{bad}");
        }
        let ws: WsUrl = "wss://api.openai.com/v1/realtime".parse().expect("valid");
        assert_eq!(ws.as_str(), "wss://api.openai.com/v1/realtime");
        let err = "https://api.openai.com/v1/realtime"
            .parse::<WsUrl>()
            .expect_err("not a socket");
        assert_eq!(
            err.to_string(),
            "\"https://api.openai.com/v1/realtime\" must start with ws:// or wss://"
        );
    }
}
