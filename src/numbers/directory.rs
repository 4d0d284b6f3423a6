//! The directory: what `GET /api/directory…` answers about the numbers across
//! workspaces — the pool's entries with their agents and live routes, one number,
//! an agent's numbers — and validation and diffs over all of it ([`super::checks`]).

use std::collections::HashMap;

use switchboard_actors::number::Route;
use switchboard_actors::{AgentId, Workspace};

use super::model::{Diff, DirectoryEntry, LiveNumber, Validation};
use super::{checks, NumberService, NumbersError};
use crate::domain::phone::PhoneNumber;
use crate::store::agents::AgentRecord;
use crate::store::numbers::NumberRecord;
use crate::store::pool::{PoolFilter, PoolStatus};

/// One number: every pool entry of it (per workspace and provider) and its live
/// route, if it is live.
#[derive(Debug)]
pub struct NumberView {
    pub entries: Vec<DirectoryEntry>,
    pub live: Option<NumberRecord>,
}

/// An agent's numbers in every workspace.
#[derive(Debug)]
pub struct AgentNumbers {
    /// `None` when the agent no longer exists (its numbers may still name it).
    pub agent: Option<AgentRecord>,
    /// The pool numbers assigned to it.
    pub numbers: Vec<DirectoryEntry>,
    /// The live numbers whose route rings it.
    pub routes: Vec<NumberRecord>,
}

impl NumberService<'_> {
    /// One number; `NotFound` when neither the pool nor the live numbers hold it.
    pub async fn number(&self, e164: &PhoneNumber) -> Result<NumberView, NumbersError> {
        let entries = self
            .entries(&PoolFilter {
                e164: Some(e164.to_string()),
                ..PoolFilter::default()
            })
            .await?;
        let live = self.store.get_number(e164.as_str()).await?;
        if entries.is_empty() && live.is_none() {
            return Err(NumbersError::NotFound(format!("no number {e164}")));
        }
        Ok(NumberView { entries, live })
    }

    /// An agent's numbers: those assigned to it, and the live numbers whose route
    /// rings it. `NotFound` when there is no such agent and nothing names it.
    pub async fn agent_numbers(&self, id: &AgentId) -> Result<AgentNumbers, NumbersError> {
        let agent = self.store.get_agent(id).await?;
        let numbers: Vec<DirectoryEntry> = self
            .entries(&PoolFilter {
                agent_id: Some(id.to_string()),
                ..PoolFilter::default()
            })
            .await?
            .into_iter()
            .filter(|e| e.status == PoolStatus::Assigned.as_str())
            .collect();
        let routes: Vec<NumberRecord> = self
            .store
            .list_numbers()
            .await?
            .into_iter()
            .filter(|n| matches!(&n.route, Route::Agents { agent_ids } if agent_ids.contains(id)))
            .collect();
        if agent.is_none() && numbers.is_empty() && routes.is_empty() {
            return Err(NumbersError::NotFound(format!("no agent {id}")));
        }
        Ok(AgentNumbers {
            agent,
            numbers,
            routes,
        })
    }

    /// Every finding of [`checks::validate`] over the pool, the live numbers and
    /// the agents.
    pub async fn validate(&self) -> Result<Validation, NumbersError> {
        let entries = self.entries(&PoolFilter::default()).await?;
        let live: Vec<LiveNumber> = self
            .store
            .list_numbers()
            .await?
            .into_iter()
            .map(|n| LiveNumber {
                route: serde_json::to_value(&n.route).unwrap_or_default(),
                e164: n.e164,
                workspace: n.workspace.to_string(),
            })
            .collect();
        let agents: HashMap<String, String> = self
            .store
            .list_agents()
            .await?
            .into_iter()
            .map(|a| (a.id.to_string(), a.workspace.to_string()))
            .collect();
        Ok(checks::validate(&entries, &live, &agents))
    }

    /// The numbers of workspaces `a` and `b` compared.
    pub async fn diff(&self, a: &Workspace, b: &Workspace) -> Result<Diff, NumbersError> {
        let entries = self.entries(&PoolFilter::default()).await?;
        Ok(checks::diff(&entries, a.as_str(), b.as_str()))
    }
}
