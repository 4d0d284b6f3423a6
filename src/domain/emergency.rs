//! Emergency numbers, from libphonenumber's short-number metadata.
//!
//! The `phonenumber` crate compiles in only the full-number metadata
//! (`PhoneNumberMetadata.xml`), which describes no emergency numbers: its
//! `Type::Emergency` is never returned, and its XML loader refuses the
//! short-number file. So `assets/ShortNumberMetadata.xml` (libphonenumber's file
//! of the same release as the crate, 9.0.33, as the crate ships it, unchanged) is
//! read on first use and each territory's `<emergency>` pattern is kept. That is
//! libphonenumber's `ShortNumberInfo.isEmergencyNumber`: the digits must be one of
//! the region's emergency numbers exactly (911 and 112 in the US and Canada, 999
//! and 112 in the United Kingdom…). Emergency numbers are short, so in
//! international form (`+1 911`) they are never valid numbers either; this check
//! lets a refusal say why. What the metadata does not list as emergency (crisis
//! lines such as 988) is not caught here, but is still not a valid full number.

use std::collections::HashMap;
use std::sync::LazyLock;

use quick_xml::events::Event;
use quick_xml::Reader;
use regex::Regex;

/// libphonenumber's short-number metadata, as the `phonenumber` crate ships it.
const SHORT_NUMBER_METADATA: &str = include_str!("../../assets/ShortNumberMetadata.xml");

/// Each region's emergency numbers (ISO 3166 code → a pattern of the whole
/// number).
static EMERGENCY: LazyLock<HashMap<String, Regex>> = LazyLock::new(|| {
    emergency_patterns(SHORT_NUMBER_METADATA)
        .expect("the shipped short-number metadata reads")
        .into_iter()
        .map(|(region, pattern)| {
            let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .ignore_whitespace(true)
                .build()
                .expect("the shipped emergency patterns compile");
            (region, regex)
        })
        .collect()
});

/// `(territory id, the nationalNumberPattern of its <emergency>)` of each
/// territory that has one.
fn emergency_patterns(xml: &str) -> Result<Vec<(String, String)>, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut found = Vec::new();
    let mut territory: Option<String> = None;
    let mut in_emergency = false;
    let mut in_pattern = false;
    loop {
        match reader.read_event()? {
            Event::Start(tag) => match tag.name().as_ref() {
                b"territory" => {
                    territory = tag
                        .try_get_attribute("id")?
                        .map(|id| id.unescape_value().map(|v| v.into_owned()))
                        .transpose()?;
                }
                b"emergency" => in_emergency = true,
                b"nationalNumberPattern" => in_pattern = in_emergency,
                _ => {}
            },
            Event::Text(text) if in_pattern => {
                if let Some(id) = &territory {
                    found.push((id.clone(), text.unescape()?.into_owned()));
                }
            }
            Event::End(tag) => match tag.name().as_ref() {
                b"territory" => territory = None,
                b"emergency" => in_emergency = false,
                b"nationalNumberPattern" => in_pattern = false,
                _ => {}
            },
            Event::Eof => return Ok(found),
            _ => {}
        }
    }
}

/// The region whose emergency number `raw` is, if any. `raw` in international
/// form (`+1 911`, `+44 999`) is checked against the regions of its country
/// code; otherwise (`911`, `112`) against every region. Spaces and punctuation
/// are ignored.
pub fn emergency_region(raw: &str) -> Option<String> {
    let international = raw.trim_start().starts_with('+');
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    if !international {
        return EMERGENCY
            .iter()
            .find(|(_, pattern)| pattern.is_match(&digits))
            .map(|(region, _)| region.clone());
    }
    // A country code is one to three digits; the metadata knows which exist.
    (1..=3.min(digits.len() - 1)).find_map(|split| {
        let (code, national) = digits.split_at(split);
        let code: u16 = code.parse().ok()?;
        let regions = phonenumber::metadata::DATABASE.region(&code)?;
        regions.into_iter().find_map(|region| {
            EMERGENCY
                .get(region)
                .filter(|pattern| pattern.is_match(national))
                .map(|_| region.to_owned())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emergency_numbers_are_known_by_region() {
        for (raw, region) in [
            ("+1 911", "US"),
            ("+1112", "US"),
            ("+44 999", "GB"),
            ("+44 112", "GB"),
            ("+33 112", "FR"),
        ] {
            assert_eq!(emergency_region(raw).as_deref(), Some(region), "{raw}");
        }
        for raw in ["911", "112", "999"] {
            assert!(emergency_region(raw).is_some(), "{raw}");
        }
        assert!(EMERGENCY.contains_key("CA"));
        assert!(
            EMERGENCY.len() > 200,
            "every territory has its emergency numbers: {}",
            EMERGENCY.len()
        );
    }

    #[test]
    fn ordinary_numbers_are_not_emergency_numbers() {
        for raw in [
            "+1 415 555 0100",
            "+1 212 911 0000",
            "+1 9110",
            "+44 20 7183 8750",
            "+1 988",
            "",
            "+",
            "4155550100",
        ] {
            assert_eq!(emergency_region(raw), None, "{raw}");
        }
    }
}
