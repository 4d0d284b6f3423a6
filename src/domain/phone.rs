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
        parse_valid(raw)
            .map(|number| Self(number.format().mode(phonenumber::Mode::E164).to_string()))
    }

    /// [`PhoneNumber::parse`] and the number's type (`local`, `toll-free`…): the
    /// cheaper half of [`PhoneNumber::parse_with_info`], for bulk work.
    pub fn parse_with_type(raw: &str) -> Result<(Self, &'static str), PhoneError> {
        let number = parse_valid(raw)?;
        Ok((
            Self(number.format().mode(phonenumber::Mode::E164).to_string()),
            type_name(&number),
        ))
    }

    /// [`PhoneNumber::parse`], and what the metadata says of the number.
    pub fn parse_with_info(raw: &str) -> Result<(Self, NumberInfo), PhoneError> {
        let number = parse_valid(raw)?;
        let info = NumberInfo::of(&number);
        Ok((
            Self(number.format().mode(phonenumber::Mode::E164).to_string()),
            info,
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

fn parse_valid(raw: &str) -> Result<phonenumber::PhoneNumber, PhoneError> {
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
    Ok(number)
}

/// What libphonenumber's metadata says of a valid number: its kind, its printed
/// forms and, for geographic numbers, the area code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberInfo {
    /// `local`, `toll-free`, `mobile`, `voip`, `premium-rate`, `shared-cost`,
    /// `personal`, `pager`, `uan`, `voicemail` or `unknown`.
    pub number_type: &'static str,
    /// `+1 415-555-0100`
    pub international: String,
    /// `(415) 555-0100`
    pub national: String,
    pub area_code: Option<String>,
    /// ISO 3166 region, e.g. `US`.
    pub region: Option<String>,
}

/// The metadata's type of a valid number, in the directory's words.
fn type_name(number: &phonenumber::PhoneNumber) -> &'static str {
    use phonenumber::Type;
    match number.number_type(&phonenumber::metadata::DATABASE) {
        Type::FixedLine | Type::FixedLineOrMobile => "local",
        Type::Mobile => "mobile",
        Type::TollFree => "toll-free",
        Type::PremiumRate => "premium-rate",
        Type::SharedCost => "shared-cost",
        Type::PersonalNumber => "personal",
        Type::Voip => "voip",
        Type::Pager => "pager",
        Type::Uan => "uan",
        Type::Voicemail => "voicemail",
        _ => "unknown",
    }
}

impl NumberInfo {
    fn of(number: &phonenumber::PhoneNumber) -> Self {
        let number_type = type_name(number);
        let national = number
            .format()
            .mode(phonenumber::Mode::National)
            .to_string();
        let area_code = if number.code().value() == 1 {
            // NANP: the first three digits of the ten are the area (or toll-free) code.
            Some(number.national().to_string().chars().take(3).collect())
        } else if number_type == "local" {
            // Elsewhere the national form groups the area code first, after the
            // trunk prefix: "020 7183 8750" → 20.
            national
                .split([' ', '-', ')'])
                .map(|group| group.trim_matches(|c: char| !c.is_ascii_digit()))
                .find(|group| !group.is_empty())
                .map(|group| group.trim_start_matches('0').to_owned())
                .filter(|group| !group.is_empty())
        } else {
            None
        };
        Self {
            number_type,
            international: number
                .format()
                .mode(phonenumber::Mode::International)
                .to_string(),
            national,
            area_code,
            region: number.country().id().map(|id| format!("{id:?}")),
        }
    }
}

/// A region of libphonenumber's metadata: its ISO 3166 alpha-2 code (`US`, `CA`).
/// A number's region is the one the metadata assigns it (`+1 876…` is `JM`, not
/// `US`); non-geographic numbers (`+800…`) have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Region(phonenumber::country::Id);

/// A region code libphonenumber does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a region code of libphonenumber's metadata (ISO 3166 alpha-2, e.g. US)")]
pub struct RegionError(String);

impl Region {
    /// The region libphonenumber's metadata gives the number, if any.
    pub fn of(number: &phonenumber::PhoneNumber) -> Option<Region> {
        number.country().id().map(Region)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

impl std::str::FromStr for Region {
    type Err = RegionError;
    fn from_str(raw: &str) -> Result<Self, RegionError> {
        raw.parse()
            .map(Region)
            .map_err(|_| RegionError(raw.to_owned()))
    }
}

impl TryFrom<String> for Region {
    type Error = RegionError;
    fn try_from(raw: String) -> Result<Self, RegionError> {
        raw.parse()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    fn numbers_are_described_by_the_metadata() {
        let info = |raw: &str| PhoneNumber::parse_with_info(raw).map(|(_, info)| info);
        let sf = info("+14155550100").expect("valid");
        assert_eq!(sf.number_type, "local");
        assert_eq!(sf.area_code.as_deref(), Some("415"));
        assert_eq!(sf.national, "(415) 555-0100");
        assert_eq!(sf.region.as_deref(), Some("US"));
        let free = info("+18005550100").expect("valid");
        assert_eq!(free.number_type, "toll-free");
        let london = info("+442071838750").expect("valid");
        assert_eq!(
            (london.number_type, london.area_code.as_deref()),
            ("local", Some("20"))
        );
        let mobile = info("+447911123456").expect("valid");
        assert_eq!((mobile.number_type, mobile.area_code), ("mobile", None));
    }

    #[test]
    fn regions_are_libphonenumbers_codes() {
        let us: Region = "US".parse().expect("a region");
        assert_eq!(us.to_string(), "US");
        let number = phonenumber::parse(None, "+18765550100").expect("a number");
        assert_eq!(
            Region::of(&number).map(|r| r.to_string()),
            Some("JM".into())
        );
        for bad in ["us", "XX", "", "USA"] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
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
