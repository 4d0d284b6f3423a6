//! The callee's time zones, from the number: libphonenumber's prefix → time-zone
//! map (`assets/phone_timezones.txt`, its `resources/timezones/map_data.txt`
//! shipped as data; the header says which release), parsed once into a
//! longest-prefix lookup, and resolved to zones of jiff's bundled tz database (so
//! nothing depends on `/usr/share/zoneinfo`).
//!
//! Which prefix is looked up follows libphonenumber's `PhoneNumberToTimeZonesMapper`:
//! a geographic number (fixed line, fixed line or mobile, and mobile in the
//! countries whose mobile numbers are geographic) by its country code and national
//! number, longest prefix first; any other number (toll-free, mobile elsewhere,
//! VoIP…) by its country code alone, the country-level list. Where libphonenumber
//! would answer `Etc/Unknown` (an unknown number type, no entry) the country-level
//! list is used, and where there is none either, [`ZoneSource::Default`]: UTC.

use std::collections::HashMap;
use std::sync::LazyLock;

use jiff::tz::TimeZone;

use crate::domain::phone::PhoneNumber;

/// libphonenumber's map, embedded.
const MAP_DATA: &str = include_str!("../../assets/phone_timezones.txt");

/// Country codes whose mobile numbers libphonenumber takes as geographic
/// (`PhoneNumberUtil.GEO_MOBILE_COUNTRIES`): Mexico, Argentina, Brazil, Indonesia,
/// China.
const GEO_MOBILE_COUNTRIES: [u16; 5] = [52, 54, 55, 62, 86];

/// The map, parsed on first use.
static PREFIXES: LazyLock<PrefixZones> = LazyLock::new(|| PrefixZones::parse(MAP_DATA));

/// Digits (country code + the start of the national number) → IANA zone names.
#[derive(Debug)]
struct PrefixZones {
    by_prefix: HashMap<&'static str, Box<[&'static str]>>,
    /// The longest prefix in the map: where a lookup starts.
    longest: usize,
}

impl PrefixZones {
    /// `prefix|zone&zone…` lines; `#` comments and blank lines are skipped, and so
    /// is a malformed line (the shipped file has none: a test checks).
    fn parse(text: &'static str) -> Self {
        let by_prefix: HashMap<_, _> = text
            .lines()
            .filter_map(|line| {
                let (prefix, zones) = line.split_once('|')?;
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let zones: Box<[&str]> = zones.split('&').filter(|z| !z.is_empty()).collect();
                (!zones.is_empty()).then_some((prefix, zones))
            })
            .collect();
        let longest = by_prefix.keys().map(|p| p.len()).max().unwrap_or(0);
        Self { by_prefix, longest }
    }

    /// The longest prefix of `digits` in the map, and its zones.
    fn longest_match(&self, digits: &str) -> Option<(&'static str, &[&'static str])> {
        (1..=digits.len().min(self.longest))
            .rev()
            .find_map(|len| self.by_prefix.get_key_value(&digits[..len]))
            .map(|(prefix, zones)| (*prefix, &zones[..]))
    }

    fn exact(&self, prefix: &str) -> Option<(&'static str, &[&'static str])> {
        self.by_prefix
            .get_key_value(prefix)
            .map(|(prefix, zones)| (*prefix, &zones[..]))
    }
}

/// Where a number's zones came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneSource {
    /// The longest prefix of a geographic number found in the map (possibly just
    /// its country code).
    Prefix(&'static str),
    /// The country-level list: a non-geographic number (toll-free, most mobile
    /// outside the Americas…), or one the map has no longer prefix for.
    Country(&'static str),
    /// No data for the number's country: UTC.
    Default,
}

/// The time zones a callee may be in: at least one.
#[derive(Debug, Clone)]
pub struct CalleeZones {
    /// Never empty.
    zones: Vec<TimeZone>,
    source: ZoneSource,
}

impl CalleeZones {
    /// The zones of `number` (see the module's comment for which prefix is used).
    pub fn of(number: &PhoneNumber) -> Self {
        let digits = number.as_str().trim_start_matches('+');
        let parsed = phonenumber::parse(None, number.as_str()).ok();
        let country = parsed.as_ref().map(|n| n.code().value());
        let geographic = parsed.as_ref().is_some_and(is_geographic);
        let map = &*PREFIXES;
        let country_level = || {
            country
                .and_then(|code| map.exact(&code.to_string()))
                .and_then(|(prefix, names)| Some((ZoneSource::Country(prefix), resolve(names)?)))
        };
        let by_prefix = || {
            map.longest_match(digits)
                .and_then(|(prefix, names)| Some((ZoneSource::Prefix(prefix), resolve(names)?)))
        };
        let found = if geographic {
            by_prefix().or_else(country_level)
        } else {
            country_level()
        };
        match found {
            Some((source, zones)) => Self { zones, source },
            None => Self {
                zones: vec![TimeZone::UTC],
                source: ZoneSource::Default,
            },
        }
    }

    /// Zones by name, for tests of zone sets no prefix has.
    #[cfg(test)]
    pub(crate) fn from_names(names: &[&str]) -> Self {
        Self {
            zones: resolve(names).expect("known zone names"),
            source: ZoneSource::Default,
        }
    }

    /// The zones, at least one.
    pub fn zones(&self) -> &[TimeZone] {
        &self.zones
    }

    /// Their IANA names (`UTC` for the default).
    pub fn names(&self) -> Vec<&str> {
        self.zones
            .iter()
            .map(|tz| tz.iana_name().unwrap_or("UTC"))
            .collect()
    }

    pub fn source(&self) -> ZoneSource {
        self.source
    }
}

/// libphonenumber's `isNumberGeographical`.
fn is_geographic(number: &phonenumber::PhoneNumber) -> bool {
    use phonenumber::Type;
    match number.number_type(&phonenumber::metadata::DATABASE) {
        Type::FixedLine | Type::FixedLineOrMobile => true,
        Type::Mobile => GEO_MOBILE_COUNTRIES.contains(&number.code().value()),
        _ => false,
    }
}

/// The zones of jiff's bundled database by name; a name it does not know is left
/// out (and logged). `None` when none is left.
fn resolve(names: &[&str]) -> Option<Vec<TimeZone>> {
    let zones: Vec<TimeZone> = names
        .iter()
        .filter_map(|name| match jiff::tz::db().get(name) {
            Ok(tz) => Some(tz),
            Err(err) => {
                tracing::warn!(zone = %name, %err, "time zone from libphonenumber's map unknown to the tz database");
                None
            }
        })
        .collect();
    (!zones.is_empty()).then_some(zones)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(raw: &str) -> CalleeZones {
        CalleeZones::of(&PhoneNumber::parse(raw).expect("a valid number"))
    }

    #[test]
    fn the_shipped_map_parses_whole_and_every_zone_is_in_the_tz_database() {
        let map = &*PREFIXES;
        let data_lines = MAP_DATA
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .count();
        assert_eq!(map.by_prefix.len(), data_lines, "no line was skipped");
        assert!(map.by_prefix.len() > 3_000, "{}", map.by_prefix.len());
        assert_eq!(map.longest, 9);
        for (prefix, names) in &map.by_prefix {
            for name in names.iter() {
                assert!(
                    jiff::tz::db().get(name).is_ok(),
                    "{prefix}: {name} is not in jiff's bundled tz database"
                );
            }
        }
    }

    #[test]
    fn a_new_york_and_a_los_angeles_number_each_have_one_zone() {
        let nyc = zones("+1 212 736 5000");
        assert_eq!(nyc.names(), ["America/New_York"]);
        assert_eq!(nyc.source(), ZoneSource::Prefix("1212"));
        let la = zones("+1 213 555 0100");
        assert_eq!(la.names(), ["America/Los_Angeles"]);
    }

    #[test]
    fn the_longest_prefix_wins() {
        // Idaho: 1208 2… is split between two zones, 1208 201… is Mountain only.
        assert_eq!(
            zones("+1 208 201 5555").names(),
            ["America/Denver"],
            "1208201"
        );
        assert_eq!(
            zones("+1 208 215 5555").names(),
            ["America/Los_Angeles"],
            "1208215"
        );
        let split = zones("+1 208 299 5555");
        assert_eq!(split.source(), ZoneSource::Prefix("12082"));
        assert_eq!(split.names(), ["America/Boise", "America/Los_Angeles"]);
    }

    #[test]
    fn an_area_code_across_two_zones_lists_both() {
        let south_dakota = zones("+1 605 222 4567");
        assert_eq!(south_dakota.source(), ZoneSource::Prefix("1605"));
        assert_eq!(
            south_dakota.names(),
            ["America/Denver", "America/North_Dakota/Center"]
        );
        // Pierre's exchange has its own line: Central only.
        let pierre = zones("+1 605 773 3011");
        assert_eq!(pierre.source(), ZoneSource::Prefix("1605773"));
        assert_eq!(pierre.names(), ["America/Chicago"]);
    }

    #[test]
    fn a_toll_free_number_takes_its_country_level_zones() {
        let toll_free = zones("+1 800 723 3456");
        assert_eq!(toll_free.source(), ZoneSource::Country("1"));
        let names = toll_free.names();
        assert!(
            names.contains(&"America/New_York")
                && names.contains(&"Pacific/Honolulu")
                && names.contains(&"America/St_Johns"),
            "{names:?}"
        );
    }

    #[test]
    fn a_non_geographic_mobile_takes_its_country_level_zones() {
        // A UK mobile is not geographic: the country-level list (the Crown
        // dependencies keep London's clock).
        let mobile = zones("+44 7911 123456");
        assert_eq!(mobile.source(), ZoneSource::Country("44"));
        assert_eq!(
            mobile.names(),
            [
                "Europe/Guernsey",
                "Europe/Isle_of_Man",
                "Europe/Jersey",
                "Europe/London"
            ]
        );
        // Russia's country-level list spans eleven hours.
        let russia = zones("+7 912 345 6789");
        assert_eq!(russia.source(), ZoneSource::Country("7"));
        assert!(russia.zones().len() > 5, "{:?}", russia.names());
    }

    #[test]
    fn a_number_without_data_falls_back_to_its_country_then_to_utc() {
        let map =
            PrefixZones::parse("# only Canada's country level\n1|America/Toronto\n44|Not/A_Zone\n");
        assert_eq!(
            map.longest_match("12125550100"),
            Some(("1", &["America/Toronto"][..]))
        );
        assert_eq!(map.longest_match("33142685300"), None);
        assert_eq!(resolve(&["Not/A_Zone"]).map(|z| z.len()), None);
        assert_eq!(
            resolve(&["Not/A_Zone", "Europe/Paris"]).map(|z| z.len()),
            Some(1),
            "an unknown name is left out, the others kept"
        );
        // International freephone (+800) has no entry in the map at all.
        let freephone = zones("+800 1234 5678");
        assert_eq!(freephone.source(), ZoneSource::Default);
        assert_eq!(freephone.names(), ["UTC"]);
        let by_digits = PrefixZones::parse("bad line\n|Europe/Paris\n12|\n");
        assert!(by_digits.by_prefix.is_empty(), "{by_digits:?}");
        assert_eq!(
            by_digits.longest_match("1234"),
            None,
            "an empty map never panics"
        );
    }
}
