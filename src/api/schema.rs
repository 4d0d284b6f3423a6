//! Schemas of the OpenAPI description for types the API sends or takes but that
//! live where no HTTP belongs (`switchboard-actors`): described here once, next to
//! the handlers that use them, and referred to with `#[schema(value_type = …)]`.

use serde::Serialize;

/// Where a number's calls go (`switchboard_actors::number::Route` on the wire).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[schema(as = Route)]
pub enum RouteJson {
    /// Ring these agents at once; an empty list rings every available agent of
    /// the number's workspace.
    Agents {
        #[serde(default)]
        agent_ids: Vec<String>,
    },
    /// Straight to the voicemail prompt.
    Voicemail,
    /// An AI assistant takes the call.
    Ai { assistant_id: String },
}
