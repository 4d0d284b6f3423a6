//! The directory's JSON, shared by the engine (which serves it) and the command
//! line (which reads it).

use serde::{Deserialize, Serialize};

use crate::store::pool::{DirectoryRow, SipTrunk, TwilioVoice};

/// One number of one provider account in one workspace. Absent fields are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DirectoryEntry {
    pub id: String,
    pub e164: String,
    /// `local`, `toll-free`, `mobile`…
    #[serde(rename = "type")]
    pub number_type: String,
    pub workspace: String,
    pub provider: String,
    pub provider_id: String,
    /// `AVAILABLE`, `ASSIGNED` or `RELEASED`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The AI assistant holding the number, when an assistant (not an agent) does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant_id: Option<String>,
    /// `None` when there is no agent, or it no longer exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// The agent's own workspace (`None` when it no longer exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_workspace: Option<String>,
    /// The agent or assistant the provider itself has on the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_url: Option<String>,
    /// Masked: never a password, user names shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_trunk: Option<MaskedTrunk>,
    /// `unparseable`: the provider lists it in a form that is not E.164 (then
    /// `e164` holds the provider's text); it is never assigned or routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Twilio's routing besides the voice URL (method, application, status callback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio: Option<TwilioVoice>,
    /// The live route in this workspace, when the number is live here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub route: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<i64>,
}

/// A SIP trunk as the directory shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaskedTrunk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

pub const MASK: &str = "********";

impl MaskedTrunk {
    pub fn of(trunk: &SipTrunk) -> Self {
        Self {
            trunk_sid: trunk.trunk_sid.clone(),
            termination_uri: trunk.termination_uri.as_deref().map(mask_userinfo),
            auth_username: trunk.auth_username.as_deref().map(mask_name),
            auth_password: trunk.has_password.then(|| MASK.to_owned()),
            credential_id: trunk.credential_id.as_deref().map(mask_name),
            sip_uri: trunk.sip_uri.as_deref().map(mask_userinfo),
            transport: trunk.transport.clone(),
        }
    }
}

/// `sip:user:secret@host` → `sip:********@host`.
pub fn mask_userinfo(uri: &str) -> String {
    match uri.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before
                .split_once("://")
                .map(|(s, _)| format!("{s}://"))
                .or_else(|| before.split_once(':').map(|(s, _)| format!("{s}:")))
                .unwrap_or_default();
            format!("{scheme}{MASK}@{host}")
        }
        None => uri.to_owned(),
    }
}

/// The first two characters, then the mask.
pub fn mask_name(name: &str) -> String {
    let head: String = name.chars().take(2).collect();
    format!("{head}{MASK}")
}

impl From<DirectoryRow> for DirectoryEntry {
    fn from(row: DirectoryRow) -> Self {
        let n = row.number;
        Self {
            id: n.id,
            e164: n.e164,
            number_type: n.number_type,
            workspace: n.workspace.to_string(),
            provider: n.provider,
            provider_id: n.provider_id,
            status: n.status.as_str().to_owned(),
            nickname: n.nickname,
            agent_name: row.agent_name,
            agent_workspace: row.agent_workspace,
            agent_id: n.agent_id,
            assistant_id: n.assistant_id,
            provider_agent: n.provider_agent,
            voice_url: n.voice_url,
            sip_trunk: n.sip_trunk.as_ref().map(MaskedTrunk::of),
            note: n.note,
            twilio: n.twilio,
            route: row
                .live_route
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            created_at: n.created_at,
            updated_at: n.updated_at,
            released_at: n.released_at,
        }
    }
}

/// A live number (the `numbers` table) as validation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveNumber {
    pub e164: String,
    pub workspace: String,
    #[schema(value_type = Object)]
    pub route: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub e164: String,
    pub workspace: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Validation {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

/// `GET /api/directory/diff?a=…&b=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Diff {
    pub a: String,
    pub b: String,
    /// Numbers only in `a`, with a short description.
    pub only_a: Vec<DiffSide>,
    pub only_b: Vec<DiffSide>,
    pub differ: Vec<DiffChange>,
    pub same: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffSide {
    pub e164: String,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffChange {
    pub e164: String,
    pub field: String,
    pub a: String,
    pub b: String,
}

/// An AVAILABLE local number with nothing assigned, for tests.
#[cfg(test)]
pub(crate) fn test_entry(e164: &str, workspace: &str, provider: &str, id: &str) -> DirectoryEntry {
    DirectoryEntry {
        id: format!("{provider}-{id}-{workspace}"),
        e164: e164.into(),
        number_type: "local".into(),
        workspace: workspace.into(),
        provider: provider.into(),
        provider_id: id.into(),
        status: "AVAILABLE".into(),
        nickname: None,
        agent_id: None,
        assistant_id: None,
        agent_name: None,
        agent_workspace: None,
        provider_agent: None,
        voice_url: None,
        sip_trunk: None,
        note: None,
        twilio: None,
        route: None,
        created_at: 0,
        updated_at: 0,
        released_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_secrets_are_masked() {
        let trunk = SipTrunk {
            termination_uri: Some("sip:user:pw@sip.example.com".into()),
            auth_username: Some("trunkuser".into()),
            has_password: true,
            ..SipTrunk::default()
        };
        let masked = MaskedTrunk::of(&trunk);
        assert_eq!(
            masked.termination_uri.as_deref(),
            Some("sip:********@sip.example.com")
        );
        assert_eq!(masked.auth_username.as_deref(), Some("tr********"));
        assert_eq!(masked.auth_password.as_deref(), Some(MASK));
        assert_eq!(mask_userinfo("sip.example.com"), "sip.example.com");
        assert_eq!(mask_userinfo("sips://a:b@h:5061"), "sips://********@h:5061");
    }
}
