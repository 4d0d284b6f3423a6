//! What an assistant is made of, as stored and as the API reads and writes it: its
//! tools. Their checks against the realtime API (names, webhook URLs, timeouts) and
//! the function definitions they become live in `ai::assistant`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A webhook waits this long for an answer unless the assistant says otherwise
/// (at most `ai::assistant::MAX_WEBHOOK_TIMEOUT_MS`).
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 5_000;

/// A tool the model may call during the conversation. Reads and writes
/// `{"type": "transfer_to_human"}`, `{"type": "end_call"}`, `{"type": "log_event"}`
/// and `{"type": "webhook", "name", "description", "parameters", "url",
/// "timeout_ms"}`; any other field is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", from = "ToolJson")]
#[schema(as = Tool)]
pub enum ToolSpec {
    /// Hand the caller over to the human agents.
    TransferToHuman,
    /// Hang up once the goodbye has played.
    EndCall,
    /// Put an event in the call's trail.
    LogEvent,
    /// Call an HTTP endpoint with the model's arguments and give it the answer.
    Webhook {
        name: String,
        description: String,
        /// A JSON-schema object describing the arguments.
        #[schema(value_type = Object)]
        parameters: Value,
        url: String,
        /// Default 5000, at most 30000.
        timeout_ms: u64,
    },
}

/// The wire form of [`ToolSpec`]: struct variants, so that serde refuses unknown
/// fields on the built-ins too (it ignores them on unit variants).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ToolJson {
    TransferToHuman {},
    EndCall {},
    LogEvent {},
    Webhook {
        name: String,
        description: String,
        parameters: Value,
        url: String,
        #[serde(default = "default_webhook_timeout_ms")]
        timeout_ms: u64,
    },
}

impl From<ToolJson> for ToolSpec {
    fn from(json: ToolJson) -> Self {
        match json {
            ToolJson::TransferToHuman {} => ToolSpec::TransferToHuman,
            ToolJson::EndCall {} => ToolSpec::EndCall,
            ToolJson::LogEvent {} => ToolSpec::LogEvent,
            ToolJson::Webhook {
                name,
                description,
                parameters,
                url,
                timeout_ms,
            } => ToolSpec::Webhook {
                name,
                description,
                parameters,
                url,
                timeout_ms,
            },
        }
    }
}

fn default_webhook_timeout_ms() -> u64 {
    DEFAULT_WEBHOOK_TIMEOUT_MS
}

impl ToolSpec {
    /// The function name the model calls it by.
    pub fn name(&self) -> &str {
        match self {
            ToolSpec::TransferToHuman => "transfer_to_human",
            ToolSpec::EndCall => "end_call",
            ToolSpec::LogEvent => "log_event",
            ToolSpec::Webhook { name, .. } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_tool_types_and_fields_are_refused() {
        for bad in [
            json!({ "type": "launch_rockets" }),
            json!({ "type": "end_call", "when": "now" }),
            json!({ "type": "webhook", "name": "x", "description": "d",
                    "parameters": { "type": "object" }, "url": "https://e.com", "verb": "PUT" }),
            json!({ "name": "no_type" }),
        ] {
            assert!(
                serde_json::from_value::<ToolSpec>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
