//! The assistant of an outbound call (issue 11, item 6). An outbound call's
//! assistant is addressed as `outbound-<outbound id>`; [`load`] builds it from the
//! outbound row, the user's profile and the consent they signed: the built-in
//! assistant (model and voice from `[outbound]`), or the user's own assistant when
//! the request named one, with the call's brief added to its instructions. The
//! brief ([`OutboundBrief`]) rides on the [`AssistantConfig`] and switches the
//! relay's outbound behaviour on (`relay::outbound_tools`): the disclosure after
//! the callee's greeting, `consult`, `opt_out`, `send_digits`, the machine verdict
//! and the hard limits.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_actors::number::Route;
use switchboard_actors::{AssistantId, UserId};

use super::relay::AssistantConfig;
use crate::config::{OnMachine, OutboundSettings, RecordingSettings};
use crate::domain::assistant::ToolSpec;
use crate::domain::phone::PhoneNumber;
use crate::domain::recording::RecordingPlan;
use crate::store::outbound::{OutboundCall, OutboundId};
use crate::store::Store;

/// The prefix of an outbound call's assistant id.
pub const PREFIX: &str = "outbound-";

/// The tools every outbound assistant has besides `end_call`.
pub const TOOLS: &[&str] = &["consult", "opt_out", "send_digits"];

/// The outbound part of an assistant: what the relay needs for the call.
#[derive(Debug, Clone)]
pub struct OutboundBrief {
    pub outbound_id: OutboundId,
    pub user_id: UserId,
    /// The number called (it joins the do-not-call lists on `opt_out`).
    pub callee: PhoneNumber,
    /// What the call is for, as the user wrote it (sent to `consult`).
    pub objective: String,
    /// Said first: an AI assistant, on whose behalf, and why — and that the
    /// call is recorded, when it is.
    pub disclosure: String,
    /// Whether and when the call is recorded (`[safety.recording]`).
    pub recording: RecordingPlan,
    /// Left on an answering machine (`on_machine = leave_message`).
    pub voicemail: String,
    pub on_machine: OnMachine,
    /// Waits this long for the callee's greeting before the disclosure.
    pub greeting_wait: Duration,
    /// Nobody speaks for this long: the call ends.
    pub silence_timeout: Duration,
    /// No turn from the callee for this long: the call ends.
    pub max_hold: Duration,
}

/// The outbound call an assistant id names, if it names one.
pub fn outbound_id_of(id: &AssistantId) -> Option<OutboundId> {
    id.as_str().strip_prefix(PREFIX).and_then(OutboundId::parse)
}

/// The assistant id of an outbound call.
pub fn assistant_id_for(id: &OutboundId) -> Option<AssistantId> {
    AssistantId::parse(&format!("{PREFIX}{id}")).ok()
}

/// Who the call is made for, from the user's profile and the signed consent.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub organization: Option<String>,
}

/// Builds the assistant of outbound call `outbound_id`.
pub async fn load(
    store: &Store,
    settings: &OutboundSettings,
    recording: &RecordingSettings,
    id: AssistantId,
    outbound_id: OutboundId,
) -> Result<AssistantConfig, String> {
    let call = store
        .get_outbound(&outbound_id)
        .await
        .map_err(|e| format!("outbound call {outbound_id} could not be read: {e}"))?
        .ok_or_else(|| format!("outbound call {outbound_id} does not exist"))?;
    let user = store
        .get_user(&call.user_id)
        .await
        .map_err(|e| format!("user {} could not be read: {e}", call.user_id))?
        .ok_or_else(|| format!("user {} does not exist", call.user_id))?;
    let consent = store
        .get_consent(&call.consent_id)
        .await
        .map_err(|e| format!("consent {} could not be read: {e}", call.consent_id))?;
    let principal = Principal {
        name: user.name.clone(),
        organization: consent
            .and_then(|c| c.signature_organization)
            .filter(|o| !o.trim().is_empty()),
    };
    let plan = recording.plan(call.workspace.as_str(), call.to.as_str());
    let brief = brief(&call, &principal, settings, plan);
    let outbound_instructions = instructions(&call, &principal, &brief.disclosure);
    let own = match call.assistant_id.as_deref() {
        Some(raw) => {
            let own_id = AssistantId::parse(raw)
                .map_err(|e| format!("the call's assistant_id {raw:?} is not an id: {e}"))?;
            let record = store
                .get_assistant(&own_id)
                .await
                .map_err(|e| format!("assistant {own_id} could not be read: {e}"))?
                .ok_or_else(|| format!("assistant {own_id} does not exist"))?;
            if record.workspace != call.workspace {
                return Err(format!(
                    "assistant {own_id} is not of the call's workspace {}",
                    call.workspace
                ));
            }
            Some(record)
        }
        None => None,
    };
    let (model, voice, instructions, mut tools) = match own {
        Some(a) => (
            a.model,
            a.voice,
            format!("{}\n\n{outbound_instructions}", a.instructions),
            a.tools
                .into_iter()
                .filter(|t| !matches!(t, ToolSpec::TransferToHuman))
                .collect::<Vec<_>>(),
        ),
        None => (
            settings.assistant_model.clone(),
            settings.assistant_voice.clone(),
            outbound_instructions,
            Vec::new(),
        ),
    };
    if !tools.contains(&ToolSpec::EndCall) {
        tools.push(ToolSpec::EndCall);
    }
    Ok(AssistantConfig {
        id,
        model,
        voice,
        instructions,
        greeting: None,
        tools,
        on_failure: Route::everyone(),
        outbound: Some(Arc::new(brief)),
    })
}

/// What the call is about, in a few words, by its `purpose`.
pub fn purpose_phrase(purpose: &str) -> &'static str {
    match purpose {
        "existing_client" => "a matter with an existing client",
        "warm_lead" => "a follow-up on earlier interest",
        "referral" => "a referral",
        "vendor_inquiry" => "a vendor inquiry",
        "partnership" => "a possible partnership",
        _ => "a business matter",
    }
}

/// `Ada Lovelace of Analytical Engines Ltd` or `Ada Lovelace`.
fn on_behalf_of(principal: &Principal) -> String {
    match &principal.organization {
        Some(org) => format!("{} of {org}", principal.name),
        None => principal.name.clone(),
    }
}

/// The disclosure said first: that it is an AI assistant, for whom, and why;
/// the recording notice ends it when the call is recorded (and only then).
pub fn disclosure(call: &OutboundCall, principal: &Principal, recording: RecordingPlan) -> String {
    let notice = if recording.records() {
        " This call is recorded."
    } else {
        ""
    };
    format!(
        "Hello, this is an AI assistant calling on behalf of {}, about {}: {}{notice}",
        on_behalf_of(principal),
        purpose_phrase(&call.purpose),
        sentence(&call.objective),
    )
}

/// The objective as a sentence (a final period added when it has none).
fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.ends_with(['.', '!', '?']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// `outbound.voicemail_message` with `{user_name}`, `{organization}` (` of Org`,
/// or nothing) and `{objective}` filled in.
pub fn voicemail(template: &str, call: &OutboundCall, principal: &Principal) -> String {
    let organization = principal
        .organization
        .as_ref()
        .map(|o| format!(" of {o}"))
        .unwrap_or_default();
    template
        .replace("{user_name}", &principal.name)
        .replace("{organization}", &organization)
        .replace("{objective}", call.objective.trim().trim_end_matches('.'))
}

fn brief(
    call: &OutboundCall,
    principal: &Principal,
    settings: &OutboundSettings,
    recording: RecordingPlan,
) -> OutboundBrief {
    OutboundBrief {
        outbound_id: call.id.clone(),
        user_id: call.user_id.clone(),
        callee: call.to.clone(),
        objective: call.objective.clone(),
        disclosure: disclosure(call, principal, recording),
        recording,
        voicemail: voicemail(&settings.voicemail_message, call, principal),
        on_machine: settings.on_machine,
        greeting_wait: settings.greeting_wait,
        silence_timeout: settings.silence_timeout,
        max_hold: settings.max_hold,
    }
}

/// The instructions of the outbound assistant, built from the call and the user.
pub fn instructions(call: &OutboundCall, principal: &Principal, disclosure: &str) -> String {
    let whom = match (&call.contact_name, &call.contact_company) {
        (Some(name), Some(company)) => format!("{name} at {company}"),
        (Some(name), None) => name.clone(),
        (None, Some(company)) => company.clone(),
        (None, None) => "the person who answers".to_owned(),
    };
    let behalf = on_behalf_of(principal);
    format!(
        "You are an AI assistant making a phone call on behalf of {behalf}. You are \
         calling {whom} about {purpose}.\n\
         Objective: {objective}\n\n\
         How to behave:\n\
         - You open the call with this disclosure, after the other side has greeted \
         you: \"{disclosure}\" Never claim or imply that you are a human.\n\
         - If a receptionist or a call screener asks who is calling and why, answer \
         plainly: you are an AI assistant calling on behalf of {behalf}, about \
         {purpose}: {objective}\n\
         - Keep to the objective; be brief, polite and concrete. Confirm any detail \
         you agree on (dates, times, names, numbers) by repeating it.\n\
         - If you reach a phone menu, use send_digits with the keys to press, then \
         stay silent and listen.\n\
         - When you need to decide something the objective does not settle, or are \
         unsure how to answer, call consult and follow its advice.\n\
         - If the person asks not to be called again, apologise briefly, say \
         goodbye, and call opt_out.\n\
         - Once the objective is met or cannot be met, thank them, say goodbye and \
         call end_call.",
        purpose = purpose_phrase(&call.purpose),
        objective = sentence(&call.objective),
    )
}

/// The realtime function definitions of [`TOOLS`].
pub fn tool_definitions() -> Vec<Value> {
    vec![
        json!({
            "type": "function",
            "name": "consult",
            "description": "Ask a planner for advice when you need to decide something \
                            the objective does not settle, or do not know how to answer. \
                            It knows the objective and the conversation so far; say a \
                            short filler (\"one moment\") before you call it.",
            "parameters": {
                "type": "object",
                "properties": {
                    "question": {
                        "type": "string",
                        "description": "What you need to decide or answer, in a sentence."
                    }
                },
                "required": ["question"],
                "additionalProperties": false
            }
        }),
        json!({
            "type": "function",
            "name": "opt_out",
            "description": "The person asked not to be called again: their number is put \
                            on the do-not-call list and the call ends. Apologise and say \
                            goodbye before you call it.",
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {
                        "type": "string",
                        "description": "What the person said, in a few words."
                    }
                },
                "additionalProperties": false
            }
        }),
        json!({
            "type": "function",
            "name": "send_digits",
            "description": "Press keys on the phone keypad (a phone menu, an extension): \
                            the tones are played into the call. Then stay silent and \
                            listen to what follows.",
            "parameters": {
                "type": "object",
                "properties": {
                    "digits": {
                        "type": "string",
                        "description": "The keys, from 0-9, * and #; w waits half a \
                                        second, W a second."
                    }
                },
                "required": ["digits"],
                "additionalProperties": false
            }
        }),
    ]
}

/// The keys `send_digits` may press, as the tones module reads them: `0-9 * #`,
/// `w` (half a second) and `W` (a second, two `w`). At most 32 keys.
pub fn keypad(digits: &str) -> Result<String, String> {
    let digits = digits.trim();
    if digits.is_empty() {
        return Err("no digits to send".to_owned());
    }
    if digits.chars().count() > 32 {
        return Err("at most 32 keys at once".to_owned());
    }
    let mut keys = String::with_capacity(digits.len() + 4);
    for (i, c) in digits.chars().enumerate() {
        match c {
            '0'..='9' | '*' | '#' | 'w' => keys.push(c),
            'W' => keys.push_str("ww"),
            other => {
                return Err(format!(
                    "{other:?} (at position {i}) is not a key: use 0-9, *, #, w or W"
                ))
            }
        }
    }
    Ok(keys)
}

/// The planner's prompt: the objective and the transcript so far.
pub fn consult_prompt(objective: &str, question: &str, transcript: &[(String, String)]) -> String {
    let mut text = format!(
        "Objective of the call: {objective}\n\nThe assistant asks: {question}\n\n\
         Transcript so far:\n"
    );
    if transcript.is_empty() {
        text.push_str("(nothing said yet)\n");
    }
    let skipped = transcript.len().saturating_sub(CONSULT_MAX_TURNS);
    if skipped > 0 {
        text.push_str(&format!("({skipped} earlier turns left out)\n"));
    }
    for (role, said) in &transcript[skipped..] {
        let who = if role == "caller" { "callee" } else { role };
        text.push_str(&format!("{who}: {said}\n"));
    }
    text
}

/// The last this many turns go to the planner.
pub const CONSULT_MAX_TURNS: usize = 60;

/// The planner's system prompt.
pub const CONSULT_SYSTEM: &str = "You advise an AI voice assistant that is on a phone \
    call on a user's behalf. Given the call's objective, the conversation so far and the \
    assistant's question, answer in at most three short sentences with what the assistant \
    should say or do next. Never advise it to claim to be human.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypad_takes_digits_star_hash_and_pauses_only() {
        assert_eq!(keypad("1w2W#*").as_deref(), Ok("1w2ww#*"));
        assert!(keypad("").is_err());
        assert!(keypad("12a").is_err_and(|e| e.contains("position 2")));
        assert!(keypad("A").is_err(), "A-D are not on a phone's keypad");
        assert!(keypad(&"1".repeat(33)).is_err());
    }

    #[test]
    fn outbound_assistant_ids_name_their_call() {
        let id = OutboundId::new();
        let assistant = assistant_id_for(&id).expect("a valid assistant id");
        assert_eq!(outbound_id_of(&assistant), Some(id));
        let other = AssistantId::parse("asst_1").expect("an id");
        assert_eq!(outbound_id_of(&other), None);
    }

    #[test]
    fn the_consult_prompt_carries_the_objective_and_the_turns() {
        let turns = vec![
            ("caller".to_owned(), "Acme Plumbing.".to_owned()),
            ("assistant".to_owned(), "Hello".to_owned()),
        ];
        let prompt = consult_prompt("Book a visit.", "Is Wednesday fine?", &turns);
        assert!(prompt.contains("Objective of the call: Book a visit."));
        assert!(prompt.contains("callee: Acme Plumbing.\nassistant: Hello\n"));
        assert!(prompt.contains("Is Wednesday fine?"));
    }
}
