//! Batches (`POST /api/calls/outbound/batch`): one objective template, one
//! purpose and attestation, a calling window, and up to
//! `outbound.batch_max_targets` targets, each placed as a single request would
//! be (the handler, `api::outbound_batch`, runs every gate per target).
//!
//! - The body is JSON ([`BatchRequest::parse`]): `purpose`, `objective` (the
//!   template), `attestation`, `callback_url`?, `assistant_id`?,
//!   `window_start`?/`window_end`? (`"HH:MM"` in each callee's local time; left
//!   out: calling hours), `max_concurrency`? (1 to
//!   `outbound.batch_max_concurrency`, its default), `targets`
//!   (`[{"to","contact_name"?,"contact_company"?,"variables"?:{name: text}}]`).
//! - Or CSV ([`json_from_csv`]): a header row naming `to` and optionally
//!   `contact_name`, `contact_company` and any other column (a template
//!   variable), a row per target; the other fields come from the query string
//!   (`?purpose=…&objective=…&legitimate_purpose=true&…&signature_full_name=…`).
//!   It becomes the same JSON, and the same rules apply.
//! - The template's placeholders are `{name}` (`{{` and `}}` are literal
//!   braces): `contact_name`, `contact_company`, and any key of the target's
//!   variables; one a target has no value for is a `400` naming the target
//!   ([`render`]).
//! - The window is intersected with calling hours: a call rings only when both
//!   are open in every zone of its callee, and a call not dialed by the end of
//!   that stretch (`window_end_at`) ends `not_dialed_window_closed` (the
//!   dispatcher's part).

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Time;
use serde_json::{json, Map, Value};

use super::hours::CallingHours;
use crate::domain::field::FieldError;

/// The top-level fields of a batch body.
const FIELDS: [&str; 9] = [
    "purpose",
    "objective",
    "attestation",
    "callback_url",
    "assistant_id",
    "window_start",
    "window_end",
    "max_concurrency",
    "targets",
];
const TARGET_FIELDS: [&str; 4] = ["to", "contact_name", "contact_company", "variables"];
/// The attestation's boxes, as CSV query parameters.
const BOXES: [&str; 5] = [
    "legitimate_purpose",
    "not_dnc",
    "reasonable_basis",
    "understands_recording",
    "accepts_responsibility",
];
const SIGNATURE: [&str; 3] = [
    "signature_full_name",
    "signature_organization",
    "wording_version",
];

/// One target, as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub to: Value,
    pub contact_name: Option<String>,
    pub contact_company: Option<String>,
    pub variables: BTreeMap<String, String>,
}

/// A batch body, read: its shared fields (checked by
/// `request::check_shared`), its window and its targets.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// `purpose`, `attestation`, `callback_url`?, `assistant_id`?.
    pub shared: Map<String, Value>,
    pub objective: String,
    pub window_start: Time,
    pub window_end: Time,
    /// The batch's window intersected with calling hours.
    pub hours: CallingHours,
    pub max_concurrency: u32,
    pub targets: Vec<Target>,
}

fn hh_mm(raw: &Value, field: &str) -> Result<Time, FieldError> {
    let text = raw
        .as_str()
        .ok_or_else(|| FieldError::new(field, "must be a time \"HH:MM\""))?;
    let bad = || FieldError::new(field, format!("must be a time \"HH:MM\", not {text:?}"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn text(value: &Value, field: &str) -> Result<Option<String>, FieldError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(FieldError::new(field, "must be a string")),
    }
}

impl BatchRequest {
    /// Reads a batch body; a refusal names the field (`targets[3].to`…).
    /// `calling_hours` is the engine's; `max_targets` and `max_concurrency` the
    /// `[outbound]` caps.
    pub fn parse(
        body: &Value,
        calling_hours: &CallingHours,
        max_targets: usize,
        max_concurrency: u32,
    ) -> Result<BatchRequest, FieldError> {
        let body = body
            .as_object()
            .ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        if let Some(key) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(key.clone(), "is not a field of a batch"));
        }
        let objective = text(body.get("objective").unwrap_or(&Value::Null), "objective")?
            .ok_or_else(|| FieldError::new("objective", "is required"))?;

        let window_start = match body.get("window_start") {
            None | Some(Value::Null) => calling_hours.start(),
            Some(raw) => hh_mm(raw, "window_start")?,
        };
        let window_end = match body.get("window_end") {
            None | Some(Value::Null) => calling_hours.end(),
            Some(raw) => hh_mm(raw, "window_end")?,
        };
        if window_start >= window_end {
            return Err(FieldError::new(
                "window_end",
                "must be later than window_start (a window does not cross midnight)",
            ));
        }
        let hours = CallingHours::new(
            window_start.max(calling_hours.start()),
            window_end.min(calling_hours.end()),
        )
        .map_err(|_| {
            FieldError::new(
                "window_start",
                format!("the window {window_start}–{window_end} is outside calling hours {calling_hours}"),
            )
        })?;

        let max_concurrency = match body.get("max_concurrency") {
            None | Some(Value::Null) => max_concurrency,
            Some(raw) => raw
                .as_u64()
                .filter(|n| (1..=u64::from(max_concurrency)).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    FieldError::new(
                        "max_concurrency",
                        format!("must be a whole number from 1 to {max_concurrency}"),
                    )
                })?,
        };

        let targets = body
            .get("targets")
            .and_then(Value::as_array)
            .ok_or_else(|| FieldError::new("targets", "must be an array of targets"))?;
        if targets.is_empty() {
            return Err(FieldError::new("targets", "must name at least one target"));
        }
        if targets.len() > max_targets {
            return Err(FieldError::new(
                "targets",
                format!(
                    "{} targets: a batch has at most {max_targets}",
                    targets.len()
                ),
            ));
        }
        let targets = targets
            .iter()
            .enumerate()
            .map(|(i, t)| target(t, &format!("targets[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;

        let mut shared = Map::new();
        for key in ["purpose", "attestation", "callback_url", "assistant_id"] {
            if let Some(value) = body.get(key) {
                shared.insert(key.to_owned(), value.clone());
            }
        }
        Ok(BatchRequest {
            shared,
            objective,
            window_start,
            window_end,
            hours,
            max_concurrency,
            targets,
        })
    }

    /// The body of a single request for target `index` (the objective
    /// rendered), for `request::OutboundRequest::parse`.
    pub fn target_body(&self, index: usize) -> Result<Value, FieldError> {
        let target = &self.targets[index];
        let objective = render(&self.objective, target)
            .map_err(|why| FieldError::new(format!("targets[{index}].objective"), why))?;
        let mut body = self.shared.clone();
        body.insert("to".into(), target.to.clone());
        if let Some(name) = &target.contact_name {
            body.insert("contact_name".into(), name.clone().into());
        }
        if let Some(company) = &target.contact_company {
            body.insert("contact_company".into(), company.clone().into());
        }
        body.insert("objective".into(), objective.into());
        Ok(Value::Object(body))
    }
}

fn target(raw: &Value, at: &str) -> Result<Target, FieldError> {
    let object = raw
        .as_object()
        .ok_or_else(|| FieldError::new(at, "must be an object with \"to\""))?;
    if let Some(key) = object.keys().find(|k| !TARGET_FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(
            format!("{at}.{key}"),
            "is not a field of a target",
        ));
    }
    let to = object
        .get("to")
        .filter(|v| !v.is_null())
        .cloned()
        .ok_or_else(|| FieldError::new(format!("{at}.to"), "is required"))?;
    let mut variables = BTreeMap::new();
    match object.get("variables") {
        None | Some(Value::Null) => {}
        Some(Value::Object(vars)) => {
            for (name, value) in vars {
                let value = text(value, &format!("{at}.variables.{name}"))?.unwrap_or_default();
                variables.insert(name.clone(), value);
            }
        }
        Some(_) => {
            return Err(FieldError::new(
                format!("{at}.variables"),
                "must be an object of texts",
            ))
        }
    }
    Ok(Target {
        to,
        contact_name: text(
            object.get("contact_name").unwrap_or(&Value::Null),
            &format!("{at}.contact_name"),
        )?,
        contact_company: text(
            object.get("contact_company").unwrap_or(&Value::Null),
            &format!("{at}.contact_company"),
        )?,
        variables,
    })
}

/// The template with each `{name}` replaced by the target's value
/// (`contact_name`, `contact_company`, or a variable); `{{` and `}}` are
/// literal braces. A placeholder the target has no value for, or an unclosed
/// one, is refused with the reason.
pub fn render(template: &str, target: &Target) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let brace = &rest[i..];
        if let Some(after) = brace
            .strip_prefix("{{")
            .or_else(|| brace.strip_prefix("}}"))
        {
            out.push_str(&brace[..1]);
            rest = after;
            continue;
        }
        if brace.starts_with('}') {
            return Err("a lone \"}\" (write \"}}\" for a brace)".into());
        }
        let end = brace
            .find('}')
            .ok_or("an unclosed \"{\" (write \"{{\" for a brace)")?;
        let name = &brace[1..end];
        let value = match name {
            "contact_name" => target.contact_name.as_deref(),
            "contact_company" => target.contact_company.as_deref(),
            other => target.variables.get(other).map(String::as_str),
        };
        match value {
            Some(value) if !value.trim().is_empty() => out.push_str(value.trim()),
            _ => {
                return Err(format!(
                    "unknown placeholder {{{name}}}: the target has no value for it"
                ))
            }
        }
        rest = &brace[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A CSV batch as the JSON body [`BatchRequest::parse`] reads: the rows are the
/// targets (header `to`, `contact_name`?, `contact_company`?, other columns are
/// variables; an empty cell is no value), the query parameters the other
/// fields (`purpose`, `objective`, `callback_url`, `assistant_id`,
/// `window_start`, `window_end`, `max_concurrency`, the attestation's boxes —
/// `true` is the literal true — and `signature_full_name`,
/// `signature_organization`, `wording_version`). A refusal names the CSV line.
pub fn json_from_csv(csv_text: &str, query: &HashMap<String, String>) -> Result<Value, FieldError> {
    let mut body = Map::new();
    let mut attestation = Map::new();
    for (key, value) in query {
        if BOXES.contains(&key.as_str()) {
            let literal = if value == "true" {
                Value::Bool(true)
            } else {
                Value::String(value.clone())
            };
            attestation.insert(key.clone(), literal);
        } else if SIGNATURE.contains(&key.as_str()) {
            attestation.insert(key.clone(), value.clone().into());
        } else if key == "max_concurrency" {
            let n = value
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| value.clone().into());
            body.insert(key.clone(), n);
        } else if FIELDS.contains(&key.as_str()) && key != "targets" && key != "attestation" {
            body.insert(key.clone(), value.clone().into());
        } else {
            return Err(FieldError::new(
                key.clone(),
                "is not a query parameter of a CSV batch",
            ));
        }
    }
    if !attestation.is_empty() {
        body.insert("attestation".into(), Value::Object(attestation));
    }

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| FieldError::new("csv", format!("line 1: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    if !header.iter().any(|h| h == "to") {
        return Err(FieldError::new(
            "csv",
            "line 1: the header row must name the columns, \"to\" among them \
             (to,contact_name,contact_company,…)",
        ));
    }
    if let Some(blank) = header.iter().position(String::is_empty) {
        return Err(FieldError::new(
            "csv",
            format!("line 1: column {} has no name", blank + 1),
        ));
    }
    let mut targets = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            let why = match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => {
                    format!("{len} fields where the header has {expected_len}")
                }
                _ => e.to_string(),
            };
            FieldError::new("csv", format!("line {line}: {why}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let mut target = Map::new();
        let mut variables = Map::new();
        for (name, cell) in header.iter().zip(record.iter()) {
            if cell.is_empty() {
                continue;
            }
            match name.as_str() {
                "to" | "contact_name" | "contact_company" => {
                    target.insert(name.clone(), cell.into());
                }
                _ => {
                    variables.insert(name.clone(), cell.into());
                }
            }
        }
        if !target.contains_key("to") {
            return Err(FieldError::new("csv", format!("line {line}: no \"to\"")));
        }
        if !variables.is_empty() {
            target.insert("variables".into(), Value::Object(variables));
        }
        targets.push(Value::Object(target));
    }
    body.insert("targets".into(), json!(targets));
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_with(name: Option<&str>, vars: &[(&str, &str)]) -> Target {
        Target {
            to: json!("+14155550123"),
            contact_name: name.map(str::to_owned),
            contact_company: Some("Acme".into()),
            variables: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn placeholders_take_the_targets_values_and_braces_can_be_escaped() {
        let t = target_with(Some("Sam"), &[("day", "Tuesday")]);
        assert_eq!(
            render(
                "Ask {contact_name} at {contact_company} for {day} {{sic}}",
                &t
            )
            .as_deref(),
            Ok("Ask Sam at Acme for Tuesday {sic}")
        );
        let missing = render("Ask {contact_name} about {budget}", &t).expect_err("unknown");
        assert!(missing.contains("{budget}"), "{missing}");
        let nameless = target_with(None, &[]);
        assert!(render("Ask {contact_name}", &nameless).is_err());
        assert!(render("Ask {contact_name", &t).is_err());
        assert!(render("Ask }", &t).is_err());
    }

    #[test]
    fn a_csv_becomes_the_json_body_and_a_bad_one_names_its_line() {
        let query: HashMap<String, String> = [
            ("purpose", "existing_client"),
            ("objective", "Book {contact_name} for {day}."),
            ("not_dnc", "true"),
            ("max_concurrency", "5"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let body = json_from_csv(
            "to,contact_name,contact_company,day\n+14155550123,Sam,Acme,Tuesday\n+14155550124,,,\n",
            &query,
        )
        .expect("a body");
        assert_eq!(
            body["targets"],
            json!([
                {"to": "+14155550123", "contact_name": "Sam", "contact_company": "Acme",
                 "variables": {"day": "Tuesday"}},
                {"to": "+14155550124"},
            ])
        );
        assert_eq!(body["attestation"]["not_dnc"], json!(true));
        assert_eq!(body["max_concurrency"], json!(5));

        let headless = json_from_csv("+14155550123,Sam,Acme\n", &query).expect_err("no header");
        assert!(headless.message.starts_with("line 1:"), "{headless:?}");
        let ragged = json_from_csv(
            "to,contact_name\n+14155550123,Sam\n+14155550124,Al,extra\n",
            &query,
        )
        .expect_err("a ragged row");
        assert!(ragged.message.starts_with("line 3:"), "{ragged:?}");
    }

    #[test]
    fn the_window_is_read_as_hh_mm_and_intersected_with_calling_hours() {
        let hours = CallingHours::new(Time::constant(8, 0, 0, 0), Time::constant(21, 0, 0, 0))
            .expect("hours");
        let body = json!({"purpose": "existing_client", "objective": "x",
            "window_start": "07:00", "window_end": "12:30", "targets": [{"to": "+14155550123"}]});
        let batch = BatchRequest::parse(&body, &hours, 1000, 100).expect("a batch");
        assert_eq!(batch.hours.start(), Time::constant(8, 0, 0, 0));
        assert_eq!(batch.hours.end(), Time::constant(12, 30, 0, 0));
        assert_eq!(batch.max_concurrency, 100);
        for (start, end) in [("12:00", "09:00"), ("9:00", "10:00"), ("22:00", "23:00")] {
            let body = json!({"objective": "x", "window_start": start, "window_end": end,
                "targets": [{"to": "+14155550123"}]});
            assert!(
                BatchRequest::parse(&body, &hours, 1000, 100).is_err(),
                "{start}-{end}"
            );
        }
    }
}
