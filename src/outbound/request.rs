//! The body of `POST /api/calls/outbound`, parsed once into an
//! [`OutboundRequest`]: every field typed and checked, or a [`FieldError`] naming
//! the first field refused (the API answers `400 bad-field`). Unknown fields are
//! refused, at the top and in `attestation`; `null` is the same as leaving an
//! optional field out.
//!
//! Nothing here reads the wall clock: `schedule_at` is checked against the `now`
//! the caller passes in (the gates' injected clock).

use std::fmt;
use std::ops::RangeInclusive;

use serde_json::{Map, Value};
use switchboard_actors::AssistantId;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::consent::Affirmation;
use crate::domain::emergency::emergency_region;
use crate::domain::field::FieldError;
use crate::domain::phone::{PhoneNumber, Region};

/// `contact_name`, `contact_company`, `signature_organization`: at most this many
/// characters.
pub const MAX_NAME_CHARS: usize = 200;
/// `objective`, trimmed, counted in characters.
pub const OBJECTIVE_CHARS: RangeInclusive<usize> = 10..=500;
/// `attestation.signature_full_name`, trimmed, counted in characters.
pub const SIGNATURE_CHARS: RangeInclusive<usize> = 3..=200;
/// `schedule_at` may be at most this far ahead of now.
pub const MAX_SCHEDULE_AHEAD: time::Duration = time::Duration::days(30);
/// `callback_url`: at most this many characters.
pub const MAX_CALLBACK_URL_CHARS: usize = 2048;

/// The fields of the body, in the order they are checked.
const FIELDS: [&str; 9] = [
    "to",
    "contact_name",
    "contact_company",
    "purpose",
    "objective",
    "attestation",
    "schedule_at",
    "callback_url",
    "assistant_id",
];

/// An outbound call request, every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// E.164, valid, neither premium-rate nor an emergency number, in an allowed
    /// region.
    pub to: PhoneNumber,
    /// Whom to ask for; trimmed, 1 to [`MAX_NAME_CHARS`], no control characters.
    pub contact_name: Option<String>,
    /// The business called; as `contact_name`.
    pub contact_company: Option<String>,
    pub purpose: Purpose,
    /// What the call is to achieve, trimmed, [`OBJECTIVE_CHARS`] characters.
    pub objective: String,
    pub attestation: Attestation,
    /// When to call; `None`: as soon as the gates allow. Not before now, at most
    /// [`MAX_SCHEDULE_AHEAD`] after it.
    pub schedule_at: Option<OffsetDateTime>,
    /// Where each status change and the result are posted (http or https).
    pub callback_url: Option<reqwest::Url>,
    /// `None`: the workspace's built-in outbound assistant.
    pub assistant_id: Option<AssistantId>,
}

/// Why the user calls: a business reason the callee will recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    ExistingClient,
    WarmLead,
    Referral,
    VendorInquiry,
    Partnership,
    OtherBusiness,
}

impl Purpose {
    pub const ALL: [Purpose; 6] = [
        Purpose::ExistingClient,
        Purpose::WarmLead,
        Purpose::Referral,
        Purpose::VendorInquiry,
        Purpose::Partnership,
        Purpose::OtherBusiness,
    ];

    /// The word the API reads and writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ExistingClient => "existing_client",
            Purpose::WarmLead => "warm_lead",
            Purpose::Referral => "referral",
            Purpose::VendorInquiry => "vendor_inquiry",
            Purpose::Partnership => "partnership",
            Purpose::OtherBusiness => "other_business",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed attestation: every box of [`Affirmation::ALL`] was literally `true`
/// (there is no other way to make one), and who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    signature_full_name: String,
    signature_organization: Option<String>,
    /// The wording's version the signer accepts (`safety.consent.version`);
    /// `None` when the request does not say.
    wording_version: Option<String>,
}

impl Attestation {
    /// Trimmed, [`SIGNATURE_CHARS`] characters.
    pub fn signature_full_name(&self) -> &str {
        &self.signature_full_name
    }

    pub fn signature_organization(&self) -> Option<&str> {
        self.signature_organization.as_deref()
    }

    pub fn wording_version(&self) -> Option<&str> {
        self.wording_version.as_deref()
    }
}

impl OutboundRequest {
    /// Parses a request body. `allowed_regions` is `outbound.allowed_regions`;
    /// `now` is the instant `schedule_at` is checked against.
    pub fn parse(
        body: &Value,
        allowed_regions: &[Region],
        now: OffsetDateTime,
    ) -> Result<OutboundRequest, FieldError> {
        let body = body
            .as_object()
            .ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        refuse_unknown(body, "", &FIELDS)?;
        Ok(OutboundRequest {
            to: parse_to(required_str(body, "", "to")?, allowed_regions)?,
            contact_name: name(body, "", "contact_name")?,
            contact_company: name(body, "", "contact_company")?,
            purpose: parse_purpose(required_str(body, "", "purpose")?)?,
            objective: parse_objective(required_str(body, "", "objective")?)?,
            attestation: parse_attestation(body.get("attestation"))?,
            schedule_at: optional_str(body, "", "schedule_at")?
                .map(|raw| parse_schedule_at(raw, now))
                .transpose()?,
            callback_url: optional_str(body, "", "callback_url")?
                .map(parse_callback_url)
                .transpose()?,
            assistant_id: optional_str(body, "", "assistant_id")?
                .map(|raw| {
                    AssistantId::parse(raw)
                        .map_err(|e| FieldError::new("assistant_id", e.to_string()))
                })
                .transpose()?,
        })
    }
}

/// The fields the targets of a batch share, checked once before any target:
/// `purpose`, `attestation`, `callback_url`?, `assistant_id`? of `body` (other
/// keys are the batch's to check). A refusal names the field.
pub fn check_shared(body: &Map<String, Value>) -> Result<(), FieldError> {
    parse_purpose(required_str(body, "", "purpose")?)?;
    parse_attestation(body.get("attestation"))?;
    if let Some(raw) = optional_str(body, "", "callback_url")? {
        parse_callback_url(raw)?;
    }
    if let Some(raw) = optional_str(body, "", "assistant_id")? {
        AssistantId::parse(raw).map_err(|e| FieldError::new("assistant_id", e.to_string()))?;
    }
    Ok(())
}

/// `prefix` + `field`: `attestation.not_dnc`.
fn path(prefix: &str, field: &str) -> String {
    format!("{prefix}{field}")
}

fn refuse_unknown(
    object: &Map<String, Value>,
    prefix: &str,
    known: &[&str],
) -> Result<(), FieldError> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(FieldError::new(
            path(prefix, &key.escape_debug().to_string()),
            format!(
                "is not a field of this request (expected {})",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// A string field that may be left out (or `null`).
fn optional_str<'a>(
    object: &'a Map<String, Value>,
    prefix: &str,
    field: &str,
) -> Result<Option<&'a str>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(FieldError::new(path(prefix, field), "must be a string")),
    }
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    prefix: &str,
    field: &str,
) -> Result<&'a str, FieldError> {
    optional_str(object, prefix, field)?
        .ok_or_else(|| FieldError::new(path(prefix, field), "is required"))
}

/// An optional name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters (not even a line break).
fn name(
    object: &Map<String, Value>,
    prefix: &str,
    field: &str,
) -> Result<Option<String>, FieldError> {
    optional_str(object, prefix, field)?
        .map(|raw| {
            bounded_text(raw, 1..=MAX_NAME_CHARS, false)
                .map_err(|m| FieldError::new(path(prefix, field), m))
        })
        .transpose()
}

/// `raw` trimmed, `chars` characters long, without control characters (line
/// breaks and tabs allowed when `multiline`).
fn bounded_text(
    raw: &str,
    chars: RangeInclusive<usize>,
    multiline: bool,
) -> Result<String, String> {
    let text = raw.trim();
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err("must not contain control characters".to_owned());
    }
    if !chars.contains(&text.chars().count()) {
        return Err(format!(
            "must be {} to {} characters",
            chars.start(),
            chars.end()
        ));
    }
    Ok(text.to_owned())
}

/// E.164 through libphonenumber: not an emergency number, valid, not
/// premium-rate, in one of `allowed`.
pub fn parse_to(raw: &str, allowed: &[Region]) -> Result<PhoneNumber, FieldError> {
    let refuse = |message: String| FieldError::new("to", message);
    if let Some(region) = emergency_region(raw) {
        return Err(refuse(format!(
            "is an emergency number ({region}); switchboard never calls emergency services"
        )));
    }
    let (number, info) = PhoneNumber::parse_with_info(raw).map_err(|e| refuse(e.to_string()))?;
    if info.number_type == "premium-rate" {
        return Err(refuse(format!("{number} is a premium-rate number")));
    }
    let allowed_list = || {
        allowed
            .iter()
            .map(Region::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match info.region.as_deref() {
        Some(region) if allowed.iter().any(|r| r.as_str() == region) => Ok(number),
        Some(region) => Err(refuse(format!(
            "{number} is in {region}; outbound calls may only reach {}",
            allowed_list()
        ))),
        None => Err(refuse(format!(
            "{number} belongs to no region; outbound calls may only reach {}",
            allowed_list()
        ))),
    }
}

fn parse_purpose(raw: &str) -> Result<Purpose, FieldError> {
    Purpose::ALL
        .into_iter()
        .find(|purpose| purpose.as_str() == raw)
        .ok_or_else(|| {
            let words: Vec<&str> = Purpose::ALL.iter().map(|p| p.as_str()).collect();
            FieldError::new(
                "purpose",
                format!("{raw:?} is not one of {}", words.join(", ")),
            )
        })
}

fn parse_objective(raw: &str) -> Result<String, FieldError> {
    bounded_text(raw, OBJECTIVE_CHARS, true).map_err(|m| FieldError::new("objective", m))
}

/// `{"legitimate_purpose": true, …, "signature_full_name", "signature_organization"?}`.
fn parse_attestation(value: Option<&Value>) -> Result<Attestation, FieldError> {
    const PREFIX: &str = "attestation.";
    let object = match value {
        None | Some(Value::Null) => return Err(FieldError::new("attestation", "is required")),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(FieldError::new("attestation", "must be an object")),
    };
    let known: Vec<&str> = Affirmation::ALL
        .iter()
        .map(|a| a.field())
        .chain([
            "signature_full_name",
            "signature_organization",
            "wording_version",
        ])
        .collect();
    refuse_unknown(object, PREFIX, &known)?;
    for affirmation in Affirmation::ALL {
        let field = affirmation.field();
        match object.get(field) {
            Some(Value::Bool(true)) => {}
            None | Some(Value::Null) => {
                return Err(FieldError::new(path(PREFIX, field), "is required (true)"))
            }
            Some(Value::Bool(false)) => {
                return Err(FieldError::new(
                    path(PREFIX, field),
                    "must be true: the call is placed only when every box is affirmed",
                ))
            }
            Some(_) => {
                return Err(FieldError::new(
                    path(PREFIX, field),
                    "must be the JSON value true",
                ))
            }
        }
    }
    let signature_full_name = bounded_text(
        required_str(object, PREFIX, "signature_full_name")?,
        SIGNATURE_CHARS,
        false,
    )
    .map_err(|m| FieldError::new(path(PREFIX, "signature_full_name"), m))?;
    Ok(Attestation {
        signature_full_name,
        signature_organization: name(object, PREFIX, "signature_organization")?,
        wording_version: name(object, PREFIX, "wording_version")?,
    })
}

/// RFC 3339, not before `now`, at most [`MAX_SCHEDULE_AHEAD`] after it.
pub fn parse_schedule_at(raw: &str, now: OffsetDateTime) -> Result<OffsetDateTime, FieldError> {
    let refuse = |message: String| FieldError::new("schedule_at", message);
    let at = OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|e| refuse(format!("{raw:?} is not an RFC 3339 time: {e}")))?;
    if at < now {
        return Err(refuse(format!("{raw} is in the past")));
    }
    if at - now > MAX_SCHEDULE_AHEAD {
        return Err(refuse(format!(
            "{raw} is more than {} days ahead",
            MAX_SCHEDULE_AHEAD.whole_days()
        )));
    }
    Ok(at)
}

/// An `http://` or `https://` URL with a host, checked by the `url` parser.
fn parse_callback_url(raw: &str) -> Result<reqwest::Url, FieldError> {
    let refuse = |message: String| FieldError::new("callback_url", message);
    if raw.chars().count() > MAX_CALLBACK_URL_CHARS {
        return Err(refuse(format!(
            "must be at most {MAX_CALLBACK_URL_CHARS} characters"
        )));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| refuse(format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("must start with http:// or https://".to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("has no host".to_owned()));
    }
    Ok(url)
}

/// A request every rule accepts, for this module's tests and its neighbours'.
#[cfg(test)]
pub(crate) fn example_body() -> Value {
    serde_json::json!({
        "to": "+1 415 555 0100",
        "contact_name": "Dana Reyes",
        "contact_company": "Acme Plumbing",
        "purpose": "existing_client",
        "objective": "Book a visit for Tuesday morning to fix the kitchen sink.",
        "attestation": {
            "legitimate_purpose": true,
            "not_dnc": true,
            "reasonable_basis": true,
            "understands_recording": true,
            "accepts_responsibility": true,
            "signature_full_name": "Ada Lovelace",
            "signature_organization": "Analytical Engines Ltd"
        },
        "schedule_at": "2026-12-03T15:00:00Z",
        "callback_url": "https://hooks.example.com/calls?tag=1",
        "assistant_id": "booking-bot"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-12-02T10:00:00Z", &Rfc3339).expect("a time")
    }

    fn regions() -> Vec<Region> {
        ["US", "CA"]
            .iter()
            .map(|r| r.parse().expect("a region"))
            .collect()
    }

    fn parse(body: &Value) -> Result<OutboundRequest, FieldError> {
        OutboundRequest::parse(body, &regions(), now())
    }

    /// The example with `field` (a JSON pointer, `/attestation/not_dnc`) set to
    /// `value`, or removed when `value` is `None`.
    fn with(field: &str, value: Option<Value>) -> Value {
        let mut body = example_body();
        let (parent, key) = field.rsplit_once('/').expect("a pointer");
        let object = body
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .expect("an object");
        match value {
            Some(value) => object.insert(key.to_owned(), value),
            None => object.remove(key),
        };
        body
    }

    /// The field refused when `field` is set to `value` (`None`: removed).
    #[track_caller]
    fn refused(field: &str, value: Option<Value>) -> FieldError {
        let body = with(field, value.clone());
        match parse(&body) {
            Err(err) => err,
            Ok(ok) => panic!("{field} = {value:?} was accepted: {ok:?}"),
        }
    }

    #[track_caller]
    fn assert_refused(field: &str, value: Option<Value>, named: &str, says: &str) {
        let err = refused(field, value.clone());
        assert_eq!(err.field, named, "{field} = {value:?}: {err}");
        assert!(
            err.message.contains(says),
            "{field} = {value:?}: {err} does not say {says:?}"
        );
    }

    #[test]
    fn a_complete_request_parses_into_typed_fields() {
        let request = parse(&example_body()).expect("valid");
        assert_eq!(request.to.as_str(), "+14155550100");
        assert_eq!(request.contact_name.as_deref(), Some("Dana Reyes"));
        assert_eq!(request.contact_company.as_deref(), Some("Acme Plumbing"));
        assert_eq!(request.purpose, Purpose::ExistingClient);
        assert!(request.objective.starts_with("Book a visit"));
        assert_eq!(request.attestation.signature_full_name(), "Ada Lovelace");
        assert_eq!(
            request.attestation.signature_organization(),
            Some("Analytical Engines Ltd")
        );
        assert_eq!(
            request.schedule_at,
            Some(OffsetDateTime::parse("2026-12-03T15:00:00Z", &Rfc3339).expect("a time"))
        );
        assert_eq!(
            request.callback_url.as_ref().map(reqwest::Url::as_str),
            Some("https://hooks.example.com/calls?tag=1")
        );
        assert_eq!(
            request.assistant_id.as_ref().map(AssistantId::as_str),
            Some("booking-bot")
        );
    }

    #[test]
    fn optional_fields_may_be_left_out_or_null() {
        let mut body = example_body();
        let object = body.as_object_mut().expect("an object");
        for field in [
            "contact_name",
            "contact_company",
            "schedule_at",
            "callback_url",
            "assistant_id",
        ] {
            object.remove(field);
        }
        object["attestation"]
            .as_object_mut()
            .expect("an object")
            .remove("signature_organization");
        let request = parse(&body).expect("valid");
        assert_eq!(
            (
                request.contact_name,
                request.contact_company,
                request.schedule_at,
                request.callback_url,
                request.assistant_id,
                request.attestation.signature_organization
            ),
            (None, None, None, None, None, None)
        );
        for field in [
            "/contact_name",
            "/schedule_at",
            "/callback_url",
            "/assistant_id",
            "/attestation/signature_organization",
        ] {
            assert!(parse(&with(field, Some(Value::Null))).is_ok(), "{field}");
        }
    }

    #[test]
    fn every_required_field_missing_is_named() {
        for (field, named) in [
            ("/to", "to"),
            ("/purpose", "purpose"),
            ("/objective", "objective"),
            ("/attestation", "attestation"),
            (
                "/attestation/signature_full_name",
                "attestation.signature_full_name",
            ),
        ] {
            assert_refused(field, None, named, "is required");
            assert_refused(field, Some(Value::Null), named, "is required");
        }
    }

    #[test]
    fn every_field_of_the_wrong_type_is_named() {
        for (field, value, named, says) in [
            ("/to", json!(14155550100_u64), "to", "must be a string"),
            (
                "/contact_name",
                json!(["Dana"]),
                "contact_name",
                "must be a string",
            ),
            (
                "/contact_company",
                json!(7),
                "contact_company",
                "must be a string",
            ),
            ("/purpose", json!({}), "purpose", "must be a string"),
            ("/objective", json!(true), "objective", "must be a string"),
            (
                "/attestation",
                json!("signed"),
                "attestation",
                "must be an object",
            ),
            (
                "/attestation",
                json!([true]),
                "attestation",
                "must be an object",
            ),
            (
                "/schedule_at",
                json!(1_796_000_000),
                "schedule_at",
                "must be a string",
            ),
            (
                "/callback_url",
                json!({}),
                "callback_url",
                "must be a string",
            ),
            (
                "/assistant_id",
                json!(5),
                "assistant_id",
                "must be a string",
            ),
            (
                "/attestation/signature_full_name",
                json!(42),
                "attestation.signature_full_name",
                "must be a string",
            ),
            (
                "/attestation/signature_organization",
                json!(false),
                "attestation.signature_organization",
                "must be a string",
            ),
        ] {
            assert_refused(field, Some(value), named, says);
        }
        let err = parse(&json!(["not", "an", "object"])).expect_err("an array");
        assert_eq!(err.field, "body");
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        assert_refused("/priority", Some(json!("high")), "priority", "not a field");
        assert_refused(
            "/attestation/pinky_swear",
            Some(json!(true)),
            "attestation.pinky_swear",
            "not a field",
        );
        assert_refused("/To", Some(json!("+14155550100")), "To", "not a field");
    }

    #[test]
    fn each_attestation_box_must_be_literally_true() {
        for affirmation in Affirmation::ALL {
            let field = format!("/attestation/{}", affirmation.field());
            let named = format!("attestation.{}", affirmation.field());
            assert_refused(&field, Some(json!(false)), &named, "must be true");
            assert_refused(&field, None, &named, "is required");
            assert_refused(&field, Some(Value::Null), &named, "is required");
            for truthy in [
                json!("true"),
                json!(1),
                json!([true]),
                json!({ "value": true }),
            ] {
                assert_refused(&field, Some(truthy), &named, "the JSON value true");
            }
        }
    }

    #[test]
    fn the_signature_needs_a_full_name() {
        let named = "attestation.signature_full_name";
        for short in ["", "Al", "  Al  ", "   "] {
            assert_refused(
                "/attestation/signature_full_name",
                Some(json!(short)),
                named,
                "3 to 200 characters",
            );
        }
        let name = |raw: &str| {
            parse(&with("/attestation/signature_full_name", Some(json!(raw))))
                .map(|r| r.attestation.signature_full_name().to_owned())
        };
        assert_eq!(name("  Ada  ").as_deref(), Ok("Ada"));
        assert_eq!(name("Zoë").as_deref(), Ok("Zoë"), "characters, not bytes");
        assert!(name(&"x".repeat(201)).is_err());
        assert_refused(
            "/attestation/signature_full_name",
            Some(json!("Ada\nLovelace")),
            named,
            "control characters",
        );
        assert_refused(
            "/attestation/signature_organization",
            Some(json!("x".repeat(201))),
            "attestation.signature_organization",
            "1 to 200 characters",
        );
    }

    #[test]
    fn contact_names_are_bounded_and_plain() {
        for field in ["contact_name", "contact_company"] {
            let pointer = format!("/{field}");
            assert_refused(&pointer, Some(json!("")), field, "1 to 200 characters");
            assert_refused(&pointer, Some(json!("   ")), field, "1 to 200 characters");
            assert_refused(&pointer, Some(json!("é".repeat(201))), field, "1 to 200");
            for bad in ["Dana\u{0}", "Dana\nReyes", "Dana\tReyes", "\u{1b}[31mDana"] {
                assert_refused(&pointer, Some(json!(bad)), field, "control characters");
            }
            let body = with(&pointer, Some(json!(format!("  {}  ", "é".repeat(200)))));
            assert!(parse(&body).is_ok(), "{field}: 200 characters, trimmed");
        }
    }

    #[test]
    fn the_purpose_is_one_of_six_words() {
        for purpose in Purpose::ALL {
            let body = with("/purpose", Some(json!(purpose.as_str())));
            assert_eq!(parse(&body).map(|r| r.purpose), Ok(purpose));
        }
        for bad in ["", "cold_call", "Existing_Client", "existing client"] {
            assert_refused("/purpose", Some(json!(bad)), "purpose", "is not one of");
        }
    }

    #[test]
    fn the_objective_is_ten_to_five_hundred_characters_trimmed() {
        let objective =
            |raw: String| parse(&with("/objective", Some(json!(raw)))).map(|r| r.objective);
        assert_eq!(
            objective("  0123456789  ".into()).as_deref(),
            Ok("0123456789")
        );
        assert!(
            objective("ü".repeat(500)).is_ok(),
            "500 characters, 1000 bytes"
        );
        assert!(
            objective("line one\nline two".into()).is_ok(),
            "line breaks allowed"
        );
        for bad in [
            "".to_owned(),
            "too short".to_owned(),
            format!("  {}  ", "x".repeat(9)),
            "x".repeat(501),
        ] {
            assert_refused(
                "/objective",
                Some(json!(bad)),
                "objective",
                "10 to 500 characters",
            );
        }
        assert_refused(
            "/objective",
            Some(json!("Call them\u{7} and book a visit")),
            "objective",
            "control characters",
        );
    }

    #[test]
    fn the_number_must_be_a_valid_international_number() {
        let to = |raw: &str| parse(&with("/to", Some(json!(raw)))).map(|r| r.to.into_string());
        assert_eq!(
            to("+1 (604) 555-0100").as_deref(),
            Ok("+16045550100"),
            "Canada"
        );
        assert_eq!(
            to("+1 800 555 0100").as_deref(),
            Ok("+18005550100"),
            "toll-free"
        );
        for (bad, says) in [
            ("", "is empty"),
            ("415 555 0100", "international form"),
            ("+1 415 555 010", "not a valid number"),
            ("+1 ABC DEF GHIJ", ""),
            ("not a number", ""),
        ] {
            assert_refused("/to", Some(json!(bad)), "to", says);
        }
    }

    #[test]
    fn premium_rate_and_emergency_numbers_are_refused() {
        assert_refused("/to", Some(json!("+1 900 555 0100")), "to", "premium-rate");
        for emergency in ["911", "+1 911", "+1911", "112", "+1 112", "+44 999"] {
            assert_refused("/to", Some(json!(emergency)), "to", "emergency number");
        }
    }

    #[test]
    fn numbers_outside_the_allowed_regions_are_refused() {
        for (abroad, region) in [
            ("+44 20 7183 8750", "GB"),
            ("+1 876 555 0100", "JM"),
            ("+33 1 42 68 53 00", "FR"),
        ] {
            assert_refused(
                "/to",
                Some(json!(abroad)),
                "to",
                &format!("is in {region}; outbound calls may only reach US, CA"),
            );
        }
        let body = with("/to", Some(json!("+44 20 7183 8750")));
        let gb: Region = "GB".parse().expect("a region");
        assert!(OutboundRequest::parse(&body, &[gb], now()).is_ok());
        assert_refused("/to", Some(json!("+800 1234 5678")), "to", "no region");
    }

    #[test]
    fn schedule_at_is_rfc3339_within_the_next_thirty_days() {
        let at = |raw: &str| parse(&with("/schedule_at", Some(json!(raw)))).map(|r| r.schedule_at);
        assert!(at("2026-12-02T10:00:00Z").is_ok(), "now itself");
        assert!(at("2027-01-01T10:00:00Z").is_ok(), "exactly 30 days ahead");
        assert_eq!(
            at("2026-12-02T05:00:00-05:00"),
            Ok(Some(now())),
            "an offset is the same instant"
        );
        for (past, says) in [
            ("2026-12-02T09:59:59Z", "in the past"),
            ("2025-01-01T00:00:00Z", "in the past"),
            ("2027-01-01T10:00:01Z", "more than 30 days ahead"),
            ("2027-06-01T00:00:00Z", "more than 30 days ahead"),
        ] {
            assert_refused("/schedule_at", Some(json!(past)), "schedule_at", says);
        }
        for bad in [
            "tomorrow",
            "2026-12-03",
            "2026-12-03 15:00:00",
            "2026-12-03T15:00:00",
        ] {
            assert_refused("/schedule_at", Some(json!(bad)), "schedule_at", "RFC 3339");
        }
    }

    #[test]
    fn the_callback_url_is_http_or_https_with_a_host() {
        assert!(parse(&with(
            "/callback_url",
            Some(json!("http://10.0.0.5:8080/hook"))
        ))
        .is_ok());
        for (bad, says) in [
            ("hooks.example.com/calls", "is not a URL"),
            ("ftp://hooks.example.com/calls", "http:// or https://"),
            ("javascript:alert(1)", "http:// or https://"),
            ("https://", "is not a URL"),
            ("", "is not a URL"),
        ] {
            assert_refused("/callback_url", Some(json!(bad)), "callback_url", says);
        }
        let long = format!(
            "https://hooks.example.com/{}",
            "a".repeat(MAX_CALLBACK_URL_CHARS)
        );
        assert_refused(
            "/callback_url",
            Some(json!(long)),
            "callback_url",
            "at most 2048",
        );
    }

    #[test]
    fn the_assistant_id_is_parsed_like_every_id() {
        for bad in ["", "Booking Bot", &"a".repeat(65)] {
            assert_refused(
                "/assistant_id",
                Some(json!(bad)),
                "assistant_id",
                "assistant id",
            );
        }
    }

    #[test]
    fn a_refusal_is_a_bad_field_answer() {
        let err = refused("/attestation/not_dnc", Some(json!(false)));
        let api = crate::error::ApiError::from(err);
        assert_eq!((api.status.as_u16(), api.code), (400, "bad-field"));
        assert!(
            api.message.starts_with("attestation.not_dnc: must be true"),
            "{}",
            api.message
        );
    }
}
