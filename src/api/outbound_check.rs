//! `GET /api/calls/outbound/check?to=&schedule_at=` (a user's API key): what the
//! new-call form shows before it submits, by the engine's own rules — the number
//! checked exactly as `POST /api/calls/outbound` checks it, the callee's time
//! zones and local time, whether that time is inside calling hours (and when they
//! open), the cost estimate for the user's plan, whether the number is on a
//! do-not-call list the user's calls obey, and the attestation's current wording
//! with its five boxes. A bad `to` or `schedule_at` is `400 bad-field` naming it.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::calls::rfc3339;
use super::outbound::requesting_user;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::outbound::clock::{from_offset_date_time, to_offset_date_time};
use crate::outbound::consent::Affirmation;
use crate::outbound::hours::Verdict;
use crate::outbound::request::{parse_schedule_at, parse_to};
use crate::outbound::submit::estimate_usd;
use crate::outbound::zones::CalleeZones;
use crate::users::effective_limits;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// The number, checked exactly as a request's `to`.
    to: Option<String>,
    /// RFC 3339 with an offset, as a request's; absent: now.
    schedule_at: Option<String>,
}

/// The calling-hours window and, with `to`, whether the instant is inside it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckHours {
    /// `HH:MM`.
    start: String,
    /// `HH:MM`.
    end: String,
    /// With `to`: inside calling hours in every zone of the callee.
    #[serde(skip_serializing_if = "Option::is_none")]
    open: Option<bool>,
    /// With `to`, when open: RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    closes_at: Option<String>,
    /// With `to`, when closed: when the call would ring, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    opens_at: Option<String>,
    /// With `to`, when the hours cannot be judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One of the attestation's boxes and its line of the wording.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckBox {
    /// `legitimate_purpose`, `not_dnc`, `reasonable_basis`,
    /// `understands_recording`, `accepts_responsibility`.
    field: String,
    text: String,
}

/// The attestation's current wording.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckAttestation {
    version: String,
    wording: String,
    boxes: Vec<CheckBox>,
}

/// One of the callee's possible time zones.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CalleeTime {
    /// IANA.
    time_zone: String,
    /// RFC 3339 with the zone's offset, at `schedule_at` or now.
    local_time: String,
}

/// `GET /api/calls/outbound/check`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckAnswer {
    calling_hours: CheckHours,
    attestation: CheckAttestation,
    /// With `to`: E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callee: Option<Vec<CalleeTime>>,
    /// With `to`: USD for the user's plan (`null` without a configured plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    estimated_cost: Option<Option<f64>>,
    /// With `to`: on a do-not-call list the user's calls obey.
    #[serde(skip_serializing_if = "Option::is_none")]
    do_not_call: Option<bool>,
}

/// Checks a new call before it is submitted
///
/// What the new-call form shows, by the rules the submit applies: calling hours,
/// the attestation's wording and boxes, and with `to` the callee's zones and
/// local time, whether it is inside calling hours, the estimate and the
/// do-not-call lists. The admin token is `403`.
#[utoipa::path(get, path = "/api/calls/outbound/check", tag = "outbound",
    security(("user_api_key" = [])),
    params(CheckQuery),
    responses(
        (status = 200, description = "The check", body = CheckAnswer),
        (status = 400, description = "`bad-field` naming `to` or `schedule_at`; another parameter", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 403, description = "The admin token", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn check(
    caller: Caller,
    engine: web::Data<Engine>,
    query: web::Query<CheckQuery>,
) -> Result<HttpResponse, ApiError> {
    let user = requesting_user(&caller)?;
    let query = query.into_inner();
    let now = engine.clock.now();
    let at = match query
        .schedule_at
        .as_deref()
        .filter(|raw| !raw.trim().is_empty())
    {
        Some(raw) => {
            from_offset_date_time(parse_schedule_at(raw.trim(), to_offset_date_time(now))?)
                .unwrap_or(now)
        }
        None => now,
    };
    let consent = &engine.settings.safety.consent;
    let mut body = CheckAnswer {
        calling_hours: CheckHours {
            start: engine.calling_hours.start().strftime("%H:%M").to_string(),
            end: engine.calling_hours.end().strftime("%H:%M").to_string(),
            open: None,
            closes_at: None,
            opens_at: None,
            error: None,
        },
        attestation: CheckAttestation {
            version: consent.version.clone(),
            wording: consent.wording.clone(),
            boxes: boxes(&consent.wording),
        },
        to: None,
        callee: None,
        estimated_cost: None,
        do_not_call: None,
    };
    let Some(raw) = query.to.as_deref().filter(|raw| !raw.trim().is_empty()) else {
        return Ok(HttpResponse::Ok().json(body));
    };
    let to = parse_to(raw.trim(), &engine.settings.outbound.allowed_regions)?;
    let zones = CalleeZones::of(&to);
    let local = zones
        .zones()
        .iter()
        .map(|zone| CalleeTime {
            time_zone: zone.iana_name().unwrap_or("UTC").to_owned(),
            local_time: local_time(zone, at),
        })
        .collect();
    body.to = Some(to.as_str().to_owned());
    body.callee = Some(local);
    let hours = &mut body.calling_hours;
    match engine.calling_hours.check(&to, at) {
        Ok(Verdict::Open { closes }) => {
            hours.open = Some(true);
            hours.closes_at = Some(rfc3339(closes.as_millisecond()));
        }
        Ok(Verdict::Deferred { opens, .. }) => {
            hours.open = Some(false);
            hours.opens_at = Some(rfc3339(opens.as_millisecond()));
        }
        Err(error) => {
            hours.open = Some(false);
            hours.error = Some(error.to_string());
        }
    }
    body.estimated_cost = Some(
        effective_limits(&engine.settings.plans, user)
            .ok()
            .map(|limits| estimate_usd(&engine.settings.pricing, &limits, &to)),
    );
    body.do_not_call = Some(engine.store.is_do_not_call(&user.id, &to).await?);
    Ok(HttpResponse::Ok().json(body))
}

/// `at` on `zone`'s clock, RFC 3339 with its offset: `2026-12-02T10:43:00-08:00`.
fn local_time(zone: &jiff::tz::TimeZone, at: jiff::Timestamp) -> String {
    let seconds = zone.to_offset(at).seconds();
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!(
        "{}{sign}{:02}:{:02}",
        zone.to_datetime(at).strftime("%Y-%m-%dT%H:%M:%S"),
        minutes / 60,
        minutes % 60
    )
}

/// Each box's sentence, in the wording's order of the boxes: the wording's line that starts with the box's field name
/// (`not_dnc: to my knowledge …`), or the whole wording when no line does.
fn boxes(wording: &str) -> Vec<CheckBox> {
    Affirmation::ALL
        .iter()
        .map(|affirmation| {
            let field = affirmation.field();
            let text = wording
                .lines()
                .find_map(|line| line.trim().strip_prefix(&format!("{field}:")))
                .map_or_else(|| wording.trim().to_owned(), |text| text.trim().to_owned());
            CheckBox {
                field: field.to_owned(),
                text,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_carries_the_zones_offset() {
        let zone = jiff::tz::TimeZone::get("America/Los_Angeles").expect("a zone");
        let at: jiff::Timestamp = "2026-12-02T18:43:00Z".parse().expect("a time");
        assert_eq!(local_time(&zone, at), "2026-12-02T10:43:00-08:00");
        let zone = jiff::tz::TimeZone::get("Asia/Kolkata").expect("a zone");
        assert_eq!(local_time(&zone, at), "2026-12-03T00:13:00+05:30");
    }

    #[test]
    fn each_box_gets_its_line_of_the_wording() {
        let wording = "Preamble.\nlegitimate_purpose: A.\n  not_dnc: B.\nreasonable_basis: C.\n";
        let found = boxes(wording);
        assert_eq!(found[0].text, "A.");
        assert_eq!(found[1].text, "B.");
        assert_eq!(found[2].text, "C.");
        assert_eq!(found[3].text, wording.trim(), "no line: the whole wording");
    }
}
