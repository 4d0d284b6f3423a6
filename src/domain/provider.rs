//! The phone-number providers switchboard's pool is synced from: the one name the
//! configuration (`numbers.accounts[].provider`), the API and the provider clients
//! share.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A phone-number provider. Written in lowercase (`twilio`, `vapi`, `retell`);
/// read through [`ProviderKind::parse`], which also takes other cases and
/// surrounding spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ProviderKind {
    Twilio,
    Vapi,
    Retell,
}

/// A provider name that is none of [`ProviderKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?} (twilio, vapi or retell)")]
pub struct UnknownProvider(pub String);

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::Twilio,
        ProviderKind::Vapi,
        ProviderKind::Retell,
    ];

    pub fn parse(raw: &str) -> Option<ProviderKind> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "twilio" => Some(ProviderKind::Twilio),
            "vapi" => Some(ProviderKind::Vapi),
            "retell" => Some(ProviderKind::Retell),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Twilio => "twilio",
            ProviderKind::Vapi => "vapi",
            ProviderKind::Retell => "retell",
        }
    }
}

impl TryFrom<String> for ProviderKind {
    type Error = UnknownProvider;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        ProviderKind::parse(&raw).ok_or(UnknownProvider(raw))
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_read_and_write_their_lowercase_names() {
        for kind in ProviderKind::ALL {
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(
                serde_json::from_str::<ProviderKind>(&json).expect("parses"),
                kind
            );
        }
        assert_eq!(
            serde_json::from_str::<ProviderKind>("\" Twilio \"").expect("lenient"),
            ProviderKind::Twilio
        );
        let err = serde_json::from_str::<ProviderKind>("\"plivo\"").expect_err("unknown");
        assert!(
            err.to_string().contains("unknown provider \"plivo\""),
            "{err}"
        );
    }
}
