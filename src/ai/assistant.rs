//! What an AI assistant may be, checked at the edge: its tools ([`ToolSpec`], from
//! [`crate::domain::assistant`], and the function definitions they become in the
//! realtime session), its voice and model. The admin API checks an assistant with
//! these before it is stored.

use serde_json::{json, Value};

use crate::domain::assistant::ToolSpec;
use crate::domain::field::FieldError;

/// The voices of the GA realtime API.
pub const VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
];

/// Names the built-in tools take; a webhook tool may not reuse them.
pub const BUILTIN_TOOLS: &[&str] = &["transfer_to_human", "end_call", "log_event"];

/// A webhook tool waits at most this long for an answer (the default is
/// [`crate::domain::assistant::DEFAULT_WEBHOOK_TIMEOUT_MS`]): the caller is waiting in silence meanwhile.
pub const MAX_WEBHOOK_TIMEOUT_MS: u64 = 30_000;

/// Longest assistant name, instructions and greeting (in characters).
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_INSTRUCTIONS_CHARS: usize = 20_000;
pub const MAX_GREETING_CHARS: usize = 1_000;
/// Longest webhook description (in characters).
pub const MAX_DESCRIPTION_CHARS: usize = 1_024;

impl ToolSpec {
    /// The GA function definition sent in `session.update`'s `tools`:
    /// `{"type":"function","name","description","parameters"}`.
    pub fn realtime_definition(&self) -> Value {
        let (description, parameters) = match self {
            ToolSpec::TransferToHuman => (
                "Hand the call over to a human agent. Use it when the caller asks for a \
                 person, or when you cannot help them. Tell the caller you are connecting \
                 them before you call it.",
                json!({
                    "type": "object",
                    "properties": {
                        "reason": {
                            "type": "string",
                            "description": "Why the caller needs a human, in a few words."
                        },
                        "summary": {
                            "type": "string",
                            "description": "What the human agent should know before \
                                            answering: who the caller is, what they want and \
                                            what you already did, in two or three sentences. \
                                            The agent sees it when the call rings."
                        }
                    },
                    "required": ["reason", "summary"],
                    "additionalProperties": false
                }),
            ),
            ToolSpec::EndCall => (
                "End the call. Use it once the conversation is complete and you have said \
                 goodbye, or when the caller asks to hang up.",
                json!({
                    "type": "object",
                    "properties": {
                        "reason": {
                            "type": "string",
                            "description": "Why the call ends, in a few words."
                        }
                    },
                    "additionalProperties": false
                }),
            ),
            ToolSpec::LogEvent => (
                "Record a notable event in the call's log (for example an appointment \
                 booked, a complaint, a callback promised). The caller does not hear it.",
                json!({
                    "type": "object",
                    "properties": {
                        "name": {
                            "type": "string",
                            "description": "A short snake_case name for the event, e.g. \
                                            appointment_booked."
                        },
                        "detail": {
                            "anyOf": [{ "type": "object" }, { "type": "string" }],
                            "description": "Details of the event: an object of facts or a \
                                            sentence."
                        }
                    },
                    "required": ["name"],
                    "additionalProperties": false
                }),
            ),
            ToolSpec::Webhook {
                name,
                description,
                parameters,
                ..
            } => {
                return json!({
                    "type": "function",
                    "name": name,
                    "description": description,
                    "parameters": parameters,
                })
            }
        };
        json!({
            "type": "function",
            "name": self.name(),
            "description": description,
            "parameters": parameters,
        })
    }
}

/// A voice of the GA realtime API.
pub fn check_voice(voice: &str) -> Result<(), FieldError> {
    if VOICES.contains(&voice) {
        Ok(())
    } else {
        Err(FieldError::new(
            "voice",
            format!("{voice:?} is not one of {}", VOICES.join(", ")),
        ))
    }
}

/// A model name: 1 to 100 characters of `[A-Za-z0-9._-]`.
pub fn check_model(model: &str) -> Result<(), FieldError> {
    if model.is_empty() || model.len() > 100 {
        return Err(FieldError::new("model", "must be 1 to 100 characters"));
    }
    if !model
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(FieldError::new(
            "model",
            "may only contain letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// The tools of one assistant: unique names, and every webhook well formed.
pub fn check_tools(tools: &[ToolSpec]) -> Result<(), FieldError> {
    let mut seen: Vec<&str> = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let field = |part: &str| format!("tools[{i}]{part}");
        if let ToolSpec::Webhook {
            name,
            description,
            parameters,
            url,
            timeout_ms,
        } = tool
        {
            if !is_function_name(name) {
                return Err(FieldError::new(
                    field(".name"),
                    "must be 1 to 64 characters of letters, digits, '_' and '-'",
                ));
            }
            if BUILTIN_TOOLS.contains(&name.as_str()) {
                return Err(FieldError::new(
                    field(".name"),
                    format!("{name:?} is the name of a built-in tool"),
                ));
            }
            let chars = description.trim().chars().count();
            if chars == 0 || chars > MAX_DESCRIPTION_CHARS {
                return Err(FieldError::new(
                    field(".description"),
                    format!("must be 1 to {MAX_DESCRIPTION_CHARS} characters"),
                ));
            }
            if parameters.get("type").and_then(Value::as_str) != Some("object") {
                return Err(FieldError::new(
                    field(".parameters"),
                    "must be a JSON-schema object with \"type\": \"object\"",
                ));
            }
            check_url(url).map_err(|message| FieldError::new(field(".url"), message))?;
            if !(1..=MAX_WEBHOOK_TIMEOUT_MS).contains(timeout_ms) {
                return Err(FieldError::new(
                    field(".timeout_ms"),
                    format!("must be 1 to {MAX_WEBHOOK_TIMEOUT_MS}"),
                ));
            }
        }
        if seen.contains(&tool.name()) {
            return Err(FieldError::new(
                field(""),
                format!("a tool named {:?} is listed twice", tool.name()),
            ));
        }
        seen.push(tool.name());
    }
    Ok(())
}

fn is_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".to_owned());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(name: &str) -> ToolSpec {
        ToolSpec::Webhook {
            name: name.to_owned(),
            description: "Looks up an order".to_owned(),
            parameters: json!({ "type": "object", "properties": {} }),
            url: "https://example.com/hook".to_owned(),
            timeout_ms: crate::domain::assistant::DEFAULT_WEBHOOK_TIMEOUT_MS,
        }
    }

    /// The webhook `a` with some fields changed.
    fn hook(changes: Value) -> ToolSpec {
        let mut tool = serde_json::to_value(webhook("a")).expect("json");
        if let (Some(tool), Some(changes)) = (tool.as_object_mut(), changes.as_object()) {
            tool.extend(changes.clone());
        }
        serde_json::from_value(tool).expect("a webhook")
    }

    #[test]
    fn tools_read_and_write_the_documented_json() {
        let tools: Vec<ToolSpec> = serde_json::from_value(json!([
            { "type": "transfer_to_human" },
            { "type": "end_call" },
            { "type": "log_event" },
            { "type": "webhook", "name": "lookup", "description": "Looks up an order",
              "parameters": { "type": "object", "properties": {} },
              "url": "https://example.com/hook" },
        ]))
        .expect("tools parse");
        assert_eq!(
            tools,
            [
                ToolSpec::TransferToHuman,
                ToolSpec::EndCall,
                ToolSpec::LogEvent,
                webhook("lookup")
            ]
        );
        assert_eq!(
            serde_json::to_value(&tools[1]).expect("json"),
            json!({ "type": "end_call" })
        );
        assert!(check_tools(&tools).is_ok());
    }

    #[test]
    fn built_in_tools_become_realtime_functions_with_schemas() {
        let transfer = ToolSpec::TransferToHuman.realtime_definition();
        assert_eq!(transfer["type"], "function");
        assert_eq!(transfer["name"], "transfer_to_human");
        assert_eq!(
            transfer["parameters"]["required"],
            json!(["reason", "summary"])
        );
        let end = ToolSpec::EndCall.realtime_definition();
        assert_eq!(end["parameters"]["properties"]["reason"]["type"], "string");
        assert!(
            end["parameters"].get("required").is_none(),
            "reason is optional"
        );
        let log = ToolSpec::LogEvent.realtime_definition();
        assert_eq!(log["parameters"]["required"], json!(["name"]));
        assert!(log["description"].as_str().is_some_and(|d| d.len() > 20));
        let hook = webhook("lookup").realtime_definition();
        assert_eq!(
            hook,
            json!({ "type": "function", "name": "lookup", "description": "Looks up an order",
                    "parameters": { "type": "object", "properties": {} } })
        );
    }

    #[test]
    fn bad_tools_are_refused_with_the_field_named() {
        let cases: Vec<(Vec<ToolSpec>, &str)> = vec![
            (vec![ToolSpec::EndCall, ToolSpec::EndCall], "tools[1]"),
            (vec![webhook("end_call")], "tools[0].name"),
            (vec![webhook("has space")], "tools[0].name"),
            (vec![webhook(&"x".repeat(65))], "tools[0].name"),
            (vec![webhook("a"), webhook("a")], "tools[1]"),
            (
                vec![hook(json!({ "url": "ftp://example.com" }))],
                "tools[0].url",
            ),
            (vec![hook(json!({ "url": "not a url" }))], "tools[0].url"),
            (
                vec![hook(json!({ "parameters": { "type": "string" } }))],
                "tools[0].parameters",
            ),
            (
                vec![hook(json!({ "parameters": [] }))],
                "tools[0].parameters",
            ),
            (
                vec![hook(json!({ "timeout_ms": 30_001 }))],
                "tools[0].timeout_ms",
            ),
            (
                vec![hook(json!({ "timeout_ms": 0 }))],
                "tools[0].timeout_ms",
            ),
            (
                vec![hook(json!({ "description": " " }))],
                "tools[0].description",
            ),
        ];
        for (tools, field) in cases {
            let err = check_tools(&tools).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn voices_and_models_are_checked() {
        assert!(check_voice("marin").is_ok());
        assert_eq!(
            check_voice("fable").map_err(|e| e.field),
            Err("voice".into())
        );
        assert!(check_model("gpt-realtime-2.1-mini").is_ok());
        assert!(check_model("").is_err());
        assert!(check_model("gpt realtime").is_err());
        assert!(check_model("gpt/realtime").is_err());
    }
}
