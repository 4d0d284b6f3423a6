//! A user's parsed fields: e-mail address, IANA time zone, plan name and account
//! status. Parsed once where they enter (the API, a stored row, the config).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest e-mail address (RFC 5321 §4.5.3.1.3: a path holds at most 256
/// octets including the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_PART_CHARS: usize = 64;

/// An e-mail address, lowercased so `Ada@Example.com` and `ada@example.com` are
/// the same user. Checked for shape only (one `@`, a local part, a domain of
/// dot-separated labels with a dot in it); whether it receives mail is not ours
/// to know.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_EMAIL_CHARS} characters")]
    TooLong,
    #[error("must be one local part, '@' and a domain such as example.com")]
    Shape,
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(EmailError::Empty);
        }
        if raw.chars().count() > MAX_EMAIL_CHARS {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = raw.split_once('@').ok_or(EmailError::Shape)?;
        let local_ok = !local.is_empty()
            && local.chars().count() <= MAX_LOCAL_PART_CHARS
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.chars().count() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !(local_ok && domain_ok) {
            return Err(EmailError::Shape);
        }
        Ok(Self(raw.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone name (`America/New_York`), known to the time zone database
/// and kept in its canonical spelling (`america/new_york` is read as
/// `America/New_York`). The database is the system's `/usr/share/zoneinfo` when
/// there is one, else the copy compiled into the binary (jiff's bundled tzdb).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeZoneName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeZoneError {
    #[error("is empty")]
    Empty,
    #[error("{0:?} is not an IANA time zone name such as America/New_York")]
    Unknown(String),
}

impl TimeZoneName {
    pub fn parse(raw: &str) -> Result<Self, TimeZoneError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(TimeZoneError::Empty);
        }
        // Fixed offsets ("+05:00") and POSIX rules are not names: refused.
        let zone = jiff::tz::db()
            .get(raw)
            .map_err(|_| TimeZoneError::Unknown(raw.to_owned()))?;
        let name = zone
            .iana_name()
            .ok_or_else(|| TimeZoneError::Unknown(raw.to_owned()))?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a plan (`free`, `pro`): a key of the config's `[plans.*]`.
/// 1 to 32 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlanName(String);

/// The longest plan name.
const MAX_PLAN_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a plan name is 1 to {MAX_PLAN_CHARS} characters of a-z, 0-9, '-' and '_'")]
pub struct PlanNameError;

impl PlanName {
    pub fn parse(raw: &str) -> Result<Self, PlanNameError> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_PLAN_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        ok.then(|| Self(raw.to_owned())).ok_or(PlanNameError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlanName {
    type Error = PlanNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PlanName> for String {
    fn from(value: PlanName) -> Self {
        value.0
    }
}

impl fmt::Display for PlanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a user may place calls: `active`; `paused` (by the user's admin, for a
/// while) and `suspended` (for cause) both stop new calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Paused,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a status: active, paused or suspended")]
pub struct UserStatusError(pub String);

impl UserStatus {
    pub fn parse(raw: &str) -> Result<Self, UserStatusError> {
        match raw {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            "suspended" => Ok(Self::Suspended),
            other => Err(UserStatusError(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Suspended => "suspended",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_checked_for_shape_and_lowercased() {
        assert_eq!(
            EmailAddress::parse(" Ada.Lovelace+calls@Example.COM ").map(|e| e.0),
            Ok("ada.lovelace+calls@example.com".to_owned())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "ada@exa mple.com",
            "a da@example.com",
            ".ada@example.com",
            "ada..l@example.com",
            "ada@-example.com",
            "ada@example..com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert_eq!(EmailAddress::parse(&long), Err(EmailError::Shape));
        let longer = format!("a@{}.com", "b".repeat(260));
        assert_eq!(EmailAddress::parse(&longer), Err(EmailError::TooLong));
    }

    #[test]
    fn time_zones_are_iana_names_in_canonical_spelling() {
        assert_eq!(
            TimeZoneName::parse("america/new_york").map(|t| t.0),
            Ok("America/New_York".to_owned())
        );
        assert_eq!(
            TimeZoneName::parse("Europe/Zurich").map(|t| t.0),
            Ok("Europe/Zurich".to_owned())
        );
        assert_eq!(
            TimeZoneName::parse("UTC").map(|t| t.0),
            Ok("UTC".to_owned())
        );
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "+05:00",
            "EST5EDT,M3.2.0,M11.1.0",
            "../etc",
        ] {
            assert!(TimeZoneName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_bundled_database_knows_zones_without_the_system_one() {
        // The engine may run where /usr/share/zoneinfo is absent (a scratch
        // container): the copy compiled in must answer on its own.
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        let zone = bundled.get("america/chicago").expect("bundled tzdb");
        assert_eq!(zone.iana_name(), Some("America/Chicago"));
    }

    #[test]
    fn plan_names_and_statuses_parse() {
        assert!(PlanName::parse("pro").is_ok());
        assert!(PlanName::parse("Pro").is_err());
        assert!(PlanName::parse("").is_err());
        assert_eq!(UserStatus::parse("paused"), Ok(UserStatus::Paused));
        assert!(UserStatus::parse("deleted").is_err());
        for status in [
            UserStatus::Active,
            UserStatus::Paused,
            UserStatus::Suspended,
        ] {
            assert_eq!(UserStatus::parse(status.as_str()), Ok(status));
        }
    }
}
