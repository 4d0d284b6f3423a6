//! Identifiers that cross actor boundaries: parsed once at the edge, trusted inside.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} may only contain lowercase letters, digits, '-' and '_'")]
    BadCharacter { kind: &'static str },
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        /// Read from JSON through [`Self::parse`], like every other input.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl $name {
            /// A fresh random identifier.
            pub fn new() -> Self {
                Self(uuid::Uuid::new_v4().simple().to_string())
            }

            /// Parses an identifier received from outside: 1 to 64 characters of
            /// `[a-z0-9_-]`.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                parse_token(raw, $kind, 64).map(|s| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Maps keyed by the id can be read with a `&str` (hashes and compares as
        /// the string it wraps), so a lookup need not build an id first.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

opaque_id!(
    /// One call through the engine, from the webhook to its final record.
    CallId,
    "call id"
);
opaque_id!(
    /// One agent (a human with a softphone). A seat is an agent's live connection.
    AgentId,
    "agent id"
);
opaque_id!(
    /// One AI assistant: what a number's `ai` route names.
    AssistantId,
    "assistant id"
);
opaque_id!(
    /// One user: a person who asks switchboard to place calls on their behalf,
    /// authenticated by their own API key.
    UserId,
    "user id"
);

/// A tenant boundary: agents only ever ring for numbers of their own workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Workspace(String);

impl Workspace {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        parse_token(raw, "workspace", 64).map(|s| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Workspace {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Workspace> for String {
    fn from(value: Workspace) -> Self {
        value.0
    }
}

impl fmt::Display for Workspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_token<'a>(raw: &'a str, kind: &'static str, max: usize) -> Result<&'a str, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if raw.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(IdError::BadCharacter { kind });
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_parse_back() {
        let id = CallId::new();
        assert_eq!(CallId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn ids_read_from_json_are_parsed_too() {
        let ok: AgentId = serde_json::from_str(r#""agent_1-a""#).expect("a valid id");
        assert_eq!(ok.as_str(), "agent_1-a");
        assert_eq!(serde_json::to_string(&ok).expect("json"), r#""agent_1-a""#);
        for bad in [r#""""#, r#""Robert'); DROP""#, r#""a\u0000b""#] {
            assert!(serde_json::from_str::<AgentId>(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<CallId>(bad).is_err(), "{bad}");
        }
        let long = format!("\"{}\"", "a".repeat(65));
        assert!(serde_json::from_str::<CallId>(&long).is_err());
    }

    #[test]
    fn ids_refuse_empty_long_and_odd_input() {
        assert!(matches!(AgentId::parse(""), Err(IdError::Empty { .. })));
        assert!(matches!(
            AgentId::parse(&"a".repeat(65)),
            Err(IdError::TooLong { .. })
        ));
        assert!(matches!(
            AgentId::parse("Robert'); DROP"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(AssistantId::parse(AssistantId::new().as_str()).is_ok());
        assert!(matches!(
            AssistantId::parse("Nope!"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(serde_json::from_str::<AssistantId>(r#""""#).is_err());
        assert!(Workspace::parse("production").is_ok());
        assert!(Workspace::parse("Prod").is_err());
    }
}
