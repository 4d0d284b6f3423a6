//! Phone numbers, parsed and validated by libphonenumber's metadata (the
//! `phonenumber` crate), stored and compared in E.164.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is empty")]
    Empty,
    #[error("must be in international form, starting with + and the country code")]
    NotInternational,
    #[error("is not a phone number: {0}")]
    Unparseable(String),
    #[error("is not a valid number for its country")]
    Invalid,
}

impl PhoneNumber {
    /// Accepts a number in international form (`+14155551234`, `+1 415 555 1234`) and
    /// keeps its E.164 form.
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PhoneError::Empty);
        }
        if !raw.starts_with('+') {
            return Err(PhoneError::NotInternational);
        }
        let number =
            phonenumber::parse(None, raw).map_err(|e| PhoneError::Unparseable(e.to_string()))?;
        if !number.is_valid() {
            return Err(PhoneError::Invalid);
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether libphonenumber's metadata says the number is toll-free (calls to it
    /// are billed at the toll-free rate).
    pub fn is_toll_free(&self) -> bool {
        phonenumber::parse(None, &self.0).is_ok_and(|number| {
            number.number_type(&phonenumber::metadata::DATABASE) == phonenumber::Type::TollFree
        })
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_numbers_normalise_to_e164() {
        assert_eq!(
            PhoneNumber::parse("+1 415 555 1234").map(PhoneNumber::into_string),
            Ok("+14155551234".to_owned())
        );
        assert_eq!(
            PhoneNumber::parse("+442071838750").map(PhoneNumber::into_string),
            Ok("+442071838750".to_owned())
        );
    }

    #[test]
    fn toll_free_numbers_are_told_apart() {
        let number = |raw: &str| PhoneNumber::parse(raw).expect("valid number");
        assert!(number("+1 800 723 3456").is_toll_free());
        assert!(number("+18885550123").is_toll_free());
        assert!(!number("+14155550100").is_toll_free());
        assert!(!number("+442071838750").is_toll_free());
    }

    #[test]
    fn bad_numbers_are_refused() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse("555-1234"),
            Err(PhoneError::NotInternational)
        );
        assert!(PhoneNumber::parse("+1 415 555 123").is_err());
        assert!(PhoneNumber::parse("+1 ABC DEF GHIJ").is_err());
    }
}
