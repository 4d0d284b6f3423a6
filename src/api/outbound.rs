//! `POST /api/calls/outbound` (a user's API key): an outbound call request,
//! parsed and gated, stored in the durable queue; `GET /api/calls/outbound`,
//! `GET /api/calls/outbound/{id}` (a user their own, the admin all) and
//! `DELETE /api/calls/outbound/{id}` (cancel while queued or scheduled).
//!
//! The gates at submit, in order (each answers before the next runs):
//! the burst limiter (429), the body (400 naming the field), the account's
//! status (403 `account-suspended`), the objective's screening (422
//! `objective-refused` for a critical category, which also pauses the user; a
//! lesser one is flagged on the stored call), the do-not-call lists (409 `do-not-call`),
//! calling hours (a call outside them is scheduled for the next allowed
//! instant, `"deferred":"calling_hours"`), then in the transaction that stores
//! the call: the monthly budget (402 `budget-exceeded`) and the hourly and
//! daily quotas (429 `rate-limited`). Once stored, the velocity rules count the
//! user's recent requests and flag the new call (it still goes through).
//! "Now" is `Engine::clock`, nothing else.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::caller::Caller;
use super::calls::rfc3339;
use crate::domain::user::UserStatus;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody};
use crate::outbound::clock::{from_offset_date_time, to_offset_date_time};
use crate::outbound::consent;
use crate::outbound::hours::CallingHours;
use crate::outbound::request::OutboundRequest;
use crate::outbound::submit::{estimate_usd, month_start};
use crate::safety::{predial, velocity};
use crate::store::flags::NewFlag;
use crate::store::outbound::{
    Canceled, OutboundCall, OutboundId, OutboundProgress, OutboundStatus, SubmitLimits, Submitted,
};
use crate::store::users::UserRecord;
use crate::users::effective_limits;

/// `GET /api/calls/outbound` answers at most this many calls a page.
pub const MAX_PAGE: u32 = 200;
/// …and this many when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// Why a call waits past the time asked for.
const DEFERRED_CALLING_HOURS: &str = "calling_hours";

/// An outbound call request (the body of `POST /api/calls/outbound`). Parsed
/// field by field by `outbound::request`, so that every refusal names its field
/// (`400 bad-field`); unknown fields are refused, `null` is the same as absent.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described only: the parser reads the JSON itself
pub struct OutboundRequestBody {
    /// International form, valid; not an emergency, premium-rate or
    /// disallowed-region number.
    to: String,
    /// 1–200 characters.
    contact_name: Option<String>,
    /// 1–200 characters.
    contact_company: Option<String>,
    /// `existing_client`, `warm_lead`, `referral`, `vendor_inquiry`,
    /// `partnership` or `other_business`.
    purpose: String,
    /// 10–500 characters.
    objective: String,
    attestation: AttestationBody,
    /// RFC 3339 with an offset; not in the past, at most 30 days ahead.
    schedule_at: Option<String>,
    /// `http://` or `https://`, at most 2048 characters.
    callback_url: Option<String>,
    /// Absent: the workspace's built-in outbound assistant.
    assistant_id: Option<String>,
}

/// The signed attestation: each box literally `true`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described only: the parser reads the JSON itself
pub struct AttestationBody {
    legitimate_purpose: bool,
    not_dnc: bool,
    reasonable_basis: bool,
    understands_recording: bool,
    accepts_responsibility: bool,
    /// 3–200 characters.
    signature_full_name: String,
    /// 1–200 characters.
    signature_organization: Option<String>,
    /// The wording's version the signer accepts; it must be the current one.
    wording_version: Option<String>,
}

/// An outbound call as stored (list, read, cancel).
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboundCallJson {
    id: String,
    user_id: String,
    workspace: String,
    to: String,
    contact_name: Option<String>,
    contact_company: Option<String>,
    purpose: String,
    objective: String,
    assistant_id: Option<String>,
    callback_url: Option<String>,
    consent_id: String,
    /// The disposition: `queued`, `scheduled`, `dialing`, … `canceled`.
    status: &'static str,
    /// `calling_hours` or `numbers_resting`, or `null`.
    deferred: Option<String>,
    /// RFC 3339.
    scheduled_for: String,
    /// USD.
    estimated_cost: f64,
    created_at: String,
    updated_at: String,
}

fn call_json(call: &OutboundCall) -> OutboundCallJson {
    OutboundCallJson {
        id: call.id.as_str().to_owned(),
        user_id: call.user_id.as_str().to_owned(),
        workspace: call.workspace.as_str().to_owned(),
        to: call.to.as_str().to_owned(),
        contact_name: call.contact_name.clone(),
        contact_company: call.contact_company.clone(),
        purpose: call.purpose.clone(),
        objective: call.objective.clone(),
        assistant_id: call.assistant_id.clone(),
        callback_url: call.callback_url.clone(),
        consent_id: call.consent_id.as_str().to_owned(),
        status: call.status.as_str(),
        deferred: call.deferred.clone(),
        scheduled_for: rfc3339(call.run_at),
        estimated_cost: call.estimated_cost_usd,
        created_at: rfc3339(call.created_at),
        updated_at: rfc3339(call.updated_at),
    }
}

/// `429 rate-limited`: the error, and when to try again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RateLimited {
    #[serde(flatten)]
    error: ErrorBody,
    /// RFC 3339 (also in `Retry-After`, in whole seconds).
    retry_after: String,
}

/// `409 attestation-outdated`: the error, and the wording to sign.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttestationOutdated {
    #[serde(flatten)]
    error: ErrorBody,
    current_version: String,
    wording: String,
    wording_sha256: String,
}

/// `POST /api/calls/outbound`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SubmitAnswer {
    id: String,
    /// `queued` (due now) or `scheduled`.
    status: &'static str,
    /// RFC 3339.
    scheduled_for: String,
    /// USD.
    estimated_cost: f64,
    /// `calling_hours` when calling hours moved the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    deferred: Option<String>,
}

/// `GET /api/calls/outbound`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboundPage {
    calls: Vec<OutboundCallJson>,
    total: u64,
    has_more: bool,
}

/// `429 rate-limited` with `retry_after` (RFC 3339) and `Retry-After` (whole
/// seconds from now, at least 1).
pub(super) fn rate_limited(now_ms: i64, retry_at_ms: i64, why: &str) -> HttpResponse {
    let secs = ((retry_at_ms - now_ms).max(0) + 999) / 1000;
    let secs = secs.max(1);
    HttpResponse::TooManyRequests()
        .insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()))
        .json(RateLimited {
            error: ErrorBody {
                code: "rate-limited".to_owned(),
                message: why.to_owned(),
                field: None,
            },
            retry_after: rfc3339(retry_at_ms),
        })
}

/// The user a request is placed for: outbound calls are made on a user's
/// behalf, so the admin token is refused (403).
pub(super) fn requesting_user(caller: &Caller) -> Result<&UserRecord, ApiError> {
    caller.user().ok_or_else(|| {
        ApiError::forbidden("outbound calls are placed on a user's behalf: use that user's API key")
    })
}

/// Where a request came from, as its consent record notes it.
pub(super) struct Origin {
    pub ip: std::net::IpAddr,
    pub user_agent: Option<String>,
}

impl Origin {
    /// The client's address (`X-Forwarded-For` believed only from
    /// `outbound.trusted_proxies`) and user agent.
    pub fn of(engine: &Engine, req: &HttpRequest) -> Origin {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        let peer = req
            .peer_addr()
            .map(|addr| addr.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        Origin {
            ip: consent::client_ip(peer, &forwarded, &engine.settings.outbound.trusted_proxies),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// A batch's call: the batch it belongs to and the window it may ring in (the
/// batch's window intersected with calling hours).
pub(super) struct BatchSlot<'a> {
    pub batch_id: &'a str,
    pub hours: &'a CallingHours,
}

/// What placing one parsed request came to, short of a refusal.
pub(super) enum Placed {
    Created(Box<OutboundCall>),
    /// A quota is used up until then (ms).
    RateLimited {
        retry_at_ms: i64,
    },
}

/// Every gate after the body's parse, in order — the account's status (403),
/// the do-not-call lists (409), calling hours (deferral), then the budget
/// (402) and the quotas in the transaction that stores the call — for a single
/// request and for each target of a batch alike.
pub(super) async fn place(
    engine: &Engine,
    user: &UserRecord,
    request: OutboundRequest,
    origin: &Origin,
    now: jiff::Timestamp,
    batch: Option<BatchSlot<'_>>,
) -> Result<Placed, ApiError> {
    let now_ms = now.as_millisecond();
    let settings = &engine.settings;
    if matches!(user.status, UserStatus::Paused | UserStatus::Suspended) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account-suspended",
            format!(
                "the account is {}: it places no calls",
                user.status.as_str()
            ),
        ));
    }
    let objective_flags = match predial::check_objective(
        &engine.screener,
        engine.objective_classifier.as_deref(),
        &request.objective,
    )
    .await
    {
        predial::Verdict::Allowed(flags) => flags,
        predial::Verdict::Refused(refusal) => {
            let raised = engine
                .store
                .raise_flags(&user.id, None, &refusal.flags, now_ms)
                .await?;
            tracing::warn!(
                user_id = %user.id,
                category = %refusal.category,
                paused = raised.paused,
                "objective refused at submit"
            );
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                predial::OBJECTIVE_REFUSED,
                refusal.message,
            ));
        }
    };
    if engine.store.is_do_not_call(&user.id, &request.to).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "do-not-call",
            format!("{} is on a do-not-call list", request.to),
        ));
    }

    let asked = request
        .schedule_at
        .map(|at| from_offset_date_time(at).map_err(|e| ApiError::bad_field("schedule_at", e)))
        .transpose()?
        .unwrap_or(now);
    let hours = batch.as_ref().map_or(&engine.calling_hours, |b| b.hours);
    let verdict = hours
        .check(&request.to, asked)
        .map_err(|e| ApiError::bad_field("to", e))?;
    let run_at = verdict.deferred_until().unwrap_or(asked).as_millisecond();
    let deferred = verdict
        .deferred_until()
        .map(|_| DEFERRED_CALLING_HOURS.to_owned());

    let limits = effective_limits(&settings.plans, user).map_err(|e| {
        tracing::error!(user_id = %user.id, err = %e, "a user's plan is not configured");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the engine's log",
        )
    })?;
    let estimate = estimate_usd(&settings.pricing, &limits, &request.to);
    let record = consent::record(
        user.id.as_str(),
        &request.attestation,
        &settings.safety.consent,
        origin.ip,
        origin.user_agent.as_deref(),
        now_ms,
    );

    let mut progress = OutboundProgress::default();
    if let Some(batch) = &batch {
        progress.batch_id = Some(batch.batch_id.to_owned());
        progress.window_end_at = Some(verdict.closes().as_millisecond());
    }
    let call = OutboundCall {
        id: OutboundId::new(),
        user_id: user.id.clone(),
        workspace: user.workspace.clone(),
        to: request.to,
        contact_name: request.contact_name,
        contact_company: request.contact_company,
        purpose: request.purpose.as_str().to_owned(),
        objective: request.objective,
        assistant_id: request.assistant_id.map(|id| id.to_string()),
        callback_url: request.callback_url.map(|url| url.to_string()),
        consent_id: record.id.clone(),
        status: if run_at > now_ms {
            OutboundStatus::Scheduled
        } else {
            OutboundStatus::Queued
        },
        deferred,
        run_at,
        estimated_cost_usd: estimate,
        actual_cost_usd: None,
        attempt_id: None,
        created_at: now_ms,
        updated_at: now_ms,
        progress,
    };
    let limits = SubmitLimits {
        calls_per_hour: limits.calls_per_hour,
        calls_per_day: limits.calls_per_day,
        monthly_budget_usd: limits.monthly_budget_usd,
        month_start_ms: month_start(now).as_millisecond(),
    };
    match engine
        .store
        .submit_outbound(&call, &record, &limits)
        .await?
    {
        Submitted::Created(call) => {
            flag_submitted(engine, &call, objective_flags, now_ms).await;
            engine.outbound_dispatch.wake();
            tracing::info!(
                outbound_id = %call.id,
                user_id = %call.user_id,
                status = call.status.as_str(),
                batch_id = call.progress.batch_id.as_deref(),
                "outbound call submitted"
            );
            Ok(Placed::Created(call))
        }
        Submitted::OverBudget { remaining_usd } => Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "budget-exceeded",
            format!(
                "the call may cost up to USD {estimate:.2}; USD {remaining_usd:.2} of this \
                 month's budget is left"
            ),
        )),
        Submitted::RateLimited { retry_at_ms } => Ok(Placed::RateLimited { retry_at_ms }),
    }
}

/// Raises the objective's flags and the velocity rules' on a stored call. The
/// call is stored already: a failure here is logged, not answered.
async fn flag_submitted(
    engine: &Engine,
    call: &OutboundCall,
    mut flags: Vec<NewFlag>,
    now_ms: i64,
) {
    let rules = &engine.settings.safety.velocity;
    let since = now_ms.saturating_sub(velocity::lookback_ms(rules));
    match engine.store.recent_outbound(&call.user_id, since).await {
        Ok(recent) => flags.extend(velocity::evaluate(rules, call.to.as_str(), &recent, now_ms)),
        Err(error) => {
            tracing::error!(outbound_id = %call.id, %error, "velocity rules not counted");
        }
    }
    if flags.is_empty() {
        return;
    }
    match engine
        .store
        .raise_flags(&call.user_id, Some(call.id.as_str()), &flags, now_ms)
        .await
    {
        Ok(raised) => tracing::info!(
            outbound_id = %call.id,
            flags = raised.flags.len(),
            paused = raised.paused,
            "flags raised at submit"
        ),
        Err(error) => tracing::error!(outbound_id = %call.id, %error, "flags not raised"),
    }
}

/// `409 attestation-outdated` when the request's attestation is not for the
/// current wording (`safety.consent`): it names another version, or names none
/// and the user has not signed the current version before. The answer carries
/// the current version, its wording and hash, so the client can show it and
/// send `attestation.wording_version` with the next request.
pub(super) async fn outdated_attestation(
    engine: &Engine,
    user: &UserRecord,
    attestation: &crate::outbound::request::Attestation,
) -> Result<Option<HttpResponse>, ApiError> {
    let current = &engine.settings.safety.consent;
    let hash = consent::wording_hash(&current.wording);
    let message = match attestation.wording_version() {
        Some(version) if version == current.version => return Ok(None),
        Some(version) => format!(
            "attestation.wording_version: {version:?} is not the current wording's version \
             {:?}; read the wording in this answer and accept it",
            current.version
        ),
        None => {
            // Signed this wording before, or never signed any: the attestation
            // is for the current wording, as the consent record will say. Only
            // a user who signed an older wording must name the new one.
            let store = &engine.store;
            if store
                .has_accepted_wording(user.id.as_str(), &current.version, &hash)
                .await?
                || !store.has_any_consent(user.id.as_str()).await?
            {
                return Ok(None);
            }
            format!(
                "attestation.wording_version: required: the attestation's wording is at version \
                 {:?}, which this user has not accepted yet; read the wording in this answer \
                 and send its version",
                current.version
            )
        }
    };
    Ok(Some(HttpResponse::Conflict().json(AttestationOutdated {
        error: ErrorBody {
            code: "attestation-outdated".to_owned(),
            message,
            field: Some("attestation.wording_version".to_owned()),
        },
        current_version: current.version.clone(),
        wording: current.wording.clone(),
        wording_sha256: hash,
    })))
}

/// The quota refusal's message.
pub(super) const QUOTA_USED_UP: &str = "the account's hourly or daily call quota is used up";

/// Places an outbound call
///
/// `202 {"id","status","scheduled_for","estimated_cost"}` (and `"deferred"`
/// when calling hours moved the call). The gates, in order: the burst limiter,
/// the body, the account, the objective's screening, the do-not-call lists,
/// calling hours, then the budget and the quotas (docs/protocol.md §4a).
#[utoipa::path(post, path = "/api/calls/outbound", tag = "outbound",
    security(("user_api_key" = [])),
    request_body = OutboundRequestBody,
    responses(
        (status = 202, description = "Queued or scheduled", body = SubmitAnswer),
        (status = 400, description = "`bad-field` naming the field; nothing stored", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 402, description = "`budget-exceeded`", body = ErrorBody),
        (status = 403, description = "The admin token (`forbidden`), or `account-suspended`", body = ErrorBody),
        (status = 409, description = "`do-not-call` (an ErrorBody), or `attestation-outdated` with the wording", body = AttestationOutdated),
        (status = 422, description = "`objective-refused`", body = ErrorBody),
        (status = 429, description = "`rate-limited`: the burst limiter or the quotas", body = RateLimited),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn submit(
    caller: Caller,
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let user = requesting_user(&caller)?;
    let now = engine.clock.now();
    let now_ms = now.as_millisecond();
    if let Err(wait) = engine.outbound_burst.check(user.id.as_str()).await {
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        return Ok(rate_limited(
            now_ms,
            now_ms.saturating_add(wait_ms),
            "too many requests at once; slow down",
        ));
    }
    let request = OutboundRequest::parse(
        &body,
        &engine.settings.outbound.allowed_regions,
        to_offset_date_time(now),
    )?;
    if let Some(outdated) = outdated_attestation(&engine, user, &request.attestation).await? {
        return Ok(outdated);
    }
    let origin = Origin::of(&engine, &req);
    match place(&engine, user, request, &origin, now, None).await? {
        Placed::Created(call) => Ok(HttpResponse::Accepted().json(SubmitAnswer {
            id: call.id.as_str().to_owned(),
            status: call.status.as_str(),
            scheduled_for: rfc3339(call.run_at),
            estimated_cost: call.estimated_cost_usd,
            deferred: call.deferred.clone(),
        })),
        Placed::RateLimited { retry_at_ms } => Ok(rate_limited(now_ms, retry_at_ms, QUOTA_USED_UP)),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A disposition: `queued`, `scheduled`, `dialing`, … `not_dialed_window_closed`.
    #[serde(default)]
    status: Option<String>,
    /// 1–200, default 50.
    #[serde(default)]
    limit: Option<String>,
    /// Default 0.
    #[serde(default)]
    offset: Option<String>,
}

fn number_param<T: std::str::FromStr>(
    raw: Option<&str>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    raw.map(|raw| {
        raw.parse().map_err(|_| {
            ApiError::bad_request("bad-field", format!("{name}: must be a whole number ≥ 0"))
        })
    })
    .transpose()
}

/// Lists outbound calls
///
/// `{"calls","total","has_more"}`, newest first: a user their own, the admin all.
#[utoipa::path(get, path = "/api/calls/outbound", tag = "outbound",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of calls", body = OutboundPage),
        (status = 400, description = "`bad-field` (status, limit, offset)", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn list(
    caller: Caller,
    engine: web::Data<Engine>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let status = query
        .status
        .as_deref()
        .map(|raw| {
            OutboundStatus::parse(raw).ok_or_else(|| {
                let known: Vec<_> = OutboundStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(
                    "bad-field",
                    format!("status: must be one of {}", known.join(", ")),
                )
            })
        })
        .transpose()?;
    let limit: u32 = number_param(query.limit.as_deref(), "limit")?.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad-field",
            format!("limit: must be 1 to {MAX_PAGE}"),
        ));
    }
    let offset: u64 = number_param(query.offset.as_deref(), "offset")?.unwrap_or(0);
    let page = engine
        .store
        .list_outbound(caller.user().map(|u| &u.id), status, limit, offset)
        .await?;
    let has_more = offset.saturating_add(page.calls.len() as u64) < page.total;
    Ok(HttpResponse::Ok().json(OutboundPage {
        calls: page.calls.iter().map(call_json).collect(),
        total: page.total,
        has_more,
    }))
}

/// The call, if the caller may see it: another user's is a 404.
async fn visible(engine: &Engine, caller: &Caller, raw: &str) -> Result<OutboundCall, ApiError> {
    let missing = || ApiError::not_found(format!("no outbound call {raw}"));
    let id = OutboundId::parse(raw).ok_or_else(missing)?;
    match engine.store.get_outbound(&id).await? {
        Some(call) if caller.may_see(&call.user_id) => Ok(call),
        _ => Err(missing()),
    }
}

/// Reads an outbound call
///
/// The call as stored: a user their own (another's is a 404), the admin any.
#[utoipa::path(get, path = "/api/calls/outbound/{id}", tag = "outbound",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(("id" = String, Path, description = "The outbound call's id")),
    responses(
        (status = 200, description = "The call", body = OutboundCallJson),
        (status = 404, description = "No such call, or another user's", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn get(
    caller: Caller,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let call = visible(&engine, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(call_json(&call)))
}

/// Cancels an outbound call
///
/// `200` with the canceled call; `409 not-cancelable` once it is past queued or
/// scheduled; `404` for another user's.
#[utoipa::path(delete, path = "/api/calls/outbound/{id}", tag = "outbound",
    security(("admin_token" = []), ("user_api_key" = [])),
    params(("id" = String, Path, description = "The outbound call's id")),
    responses(
        (status = 200, description = "The call, now `canceled`", body = OutboundCallJson),
        (status = 404, description = "No such call, or another user's", body = ErrorBody),
        (status = 409, description = "`not-cancelable`", body = ErrorBody),
        (status = 401, description = "No token or a wrong one", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`Retry-After: 5`)", body = ErrorBody),
    ))]
pub async fn cancel(
    caller: Caller,
    engine: web::Data<Engine>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let call = visible(&engine, &caller, &path).await?;
    let now_ms = engine.clock.now().as_millisecond();
    match engine.store.cancel_outbound(&call.id, now_ms).await? {
        Canceled::Canceled(call) => {
            tracing::info!(outbound_id = %call.id, "outbound call canceled");
            Ok(HttpResponse::Ok().json(call_json(&call)))
        }
        Canceled::TooLate(call) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-cancelable",
            format!(
                "outbound call {} is {}: only a queued or scheduled call can be canceled",
                call.id,
                call.status.as_str()
            ),
        )),
        Canceled::Missing => Err(ApiError::not_found(format!("no outbound call {}", call.id))),
    }
}
