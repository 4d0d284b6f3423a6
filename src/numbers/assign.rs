//! A number handed to an agent or an AI assistant (its [`Holder`]), in three
//! steps — claim it in the database, assign it at the provider, record it (pool
//! row and live route) — where each failed step undoes the ones before it: a
//! provider's refusal gives the claim back, a record that fails undoes the
//! provider assignment, then the claim. And the way back: a holder's numbers
//! taken off it at their providers and returned to the pool.

use switchboard_actors::{AgentId, Workspace};

use super::{NumberService, NumbersError};
use crate::domain::phone::PhoneNumber;
use crate::domain::provider::ProviderKind;
use crate::providers::twilio::Hooks;
use crate::providers::ProviderAccount;
use crate::store::pool::{Claim, Holder, PoolFilter, PoolNumber, PoolStatus};
use crate::store::StoreError;

impl NumberService<'_> {
    /// Hands an AVAILABLE number of the holder's workspace to the holder (an agent
    /// or an assistant): claim it in the database, assign it at the provider,
    /// record it as the holder's live route. `Err` is the warning to show: no
    /// number, the provider refused (the claim is given back), or recording failed
    /// (the provider assignment is undone too).
    pub async fn assign_any(
        &self,
        holder: &Holder,
        workspace: &Workspace,
        provider_agent: &str,
    ) -> Result<PoolNumber, String> {
        let claimed = self
            .store
            .claim_available(workspace, holder)
            .await
            .map_err(|e| {
                tracing::error!(err = %e, "claiming a number failed");
                "no number was assigned: the pool could not be read".to_owned()
            })?;
        let number = match claimed {
            Claim::Taken(number) => number,
            Claim::NoneLeft => {
                return Err(format!(
                    "no number was assigned: workspace {workspace} has no AVAILABLE number"
                ))
            }
            Claim::HolderHasOne(held) => {
                return Err(format!("{holder} holds {} already", held.e164))
            }
        };
        self.assign_claimed(number, holder, provider_agent).await
    }

    /// Assigns one given AVAILABLE number of `workspace` (held by `provider`, if
    /// named) to an agent of the same workspace; `provider_agent` is the agent or
    /// assistant id at the provider.
    pub async fn assign_number(
        &self,
        e164: &PhoneNumber,
        workspace: &Workspace,
        provider: Option<ProviderKind>,
        agent_id: &AgentId,
        provider_agent: &str,
    ) -> Result<PoolNumber, NumbersError> {
        let agent = self.store.get_agent(agent_id).await?.ok_or_else(|| {
            NumbersError::refused("unknown-agent", format!("agent_id: no agent {agent_id}"))
        })?;
        if &agent.workspace != workspace {
            return Err(NumbersError::refused(
                "wrong-workspace",
                format!(
                    "agent {agent_id} belongs to workspace {}; {e164} is a number of workspace {workspace}",
                    agent.workspace
                ),
            ));
        }
        let candidate = self
            .pool_rows(&PoolFilter {
                e164: Some(e164.to_string()),
                workspace: Some(workspace.to_string()),
                status: Some(PoolStatus::Available),
                ..PoolFilter::default()
            })
            .await?
            .into_iter()
            .find(|n| provider.is_none_or(|p| n.provider == p.as_str()))
            .ok_or_else(|| {
                NumbersError::conflict(
                    "not-available",
                    format!("{e164} is not an AVAILABLE number of workspace {workspace}"),
                )
            })?;
        let holder = Holder::Agent(agent_id.clone());
        let claimed = self
            .store
            .claim_number(&candidate.id, &holder)
            .await?
            .ok_or_else(|| {
                NumbersError::conflict("not-available", format!("{e164} was taken meanwhile"))
            })?;
        self.assign_claimed(claimed, &holder, provider_agent)
            .await
            .map_err(NumbersError::ProviderFailed)
    }

    /// The provider and record steps of an assignment, for a number already claimed.
    async fn assign_claimed(
        &self,
        number: PoolNumber,
        holder: &Holder,
        provider_agent: &str,
    ) -> Result<PoolNumber, String> {
        let (claim_id, claim_e164) = (number.id.clone(), number.e164.clone());
        let give_back = |why: String| {
            let (claim_id, claim_e164) = (claim_id.clone(), claim_e164.clone());
            async move {
                if let Err(e) = self.store.release_claim(&claim_id, holder).await {
                    tracing::error!(err = %e, e164 = %claim_e164, "giving a claimed number back failed");
                }
                why
            }
        };
        let Some(account) = self.account(&number.provider, &number.workspace) else {
            return Err(give_back(format!(
                "no number was assigned: {} is held by {} ({}), which is not configured",
                number.e164, number.provider, number.workspace
            ))
            .await);
        };
        if number.note.is_some() {
            return Err(give_back(format!(
                "no number was assigned: {} is not an E.164 number ({})",
                number.e164,
                number.note.as_deref().unwrap_or_default()
            ))
            .await);
        }
        let (webhook, status) = (self.voice_url(), self.status_callback_url());
        let hooks = Hooks {
            voice_url: &webhook,
            status_callback: &status,
        };
        let repointed = match account.assign(&number, provider_agent, &hooks).await {
            Ok(repointed) => repointed,
            Err(e) => {
                return Err(give_back(format!(
                    "no number was assigned: {} refused {}: {e}",
                    account.label(),
                    number.e164
                ))
                .await)
            }
        };
        let route = holder.route();
        let (voice_url, held_by) = match &repointed {
            Some(r) => (r.now.voice_url.as_deref(), number.provider_agent.as_deref()),
            None => (number.voice_url.as_deref(), Some(provider_agent)),
        };
        let recorded = self
            .store
            .record_assignment(&number, holder, voice_url, held_by)
            .await;
        if let Err(e) = recorded {
            tracing::warn!(err = %e, e164 = %number.e164, "recording an assignment failed; undoing it at the provider");
            let replaced = repointed.as_ref().map(|r| &r.before);
            let undone = match account.restore(&number, replaced).await {
                Ok(()) => "the assignment at the provider was undone".to_owned(),
                Err(undo) => {
                    tracing::error!(err = %undo, e164 = %number.e164, "undoing a provider assignment failed");
                    format!("undoing it at the provider failed too ({undo})")
                }
            };
            let why = match e {
                StoreError::Conflict(what) => what,
                _ => "the database refused it".to_owned(),
            };
            return Err(give_back(format!(
                "no number was assigned: recording {} failed ({why}); {undone}",
                number.e164
            ))
            .await);
        }
        if let Some(r) = &repointed {
            // What Twilio has now (trunk or application cleared): the next sync finds
            // nothing changed.
            if let Err(e) = self.store.set_twilio_routing(&number.id, &r.now).await {
                tracing::warn!(err = %e, e164 = %number.e164, "remembering the Twilio routing failed");
            }
        }
        if let Err(e) = self
            .book
            .upsert(number.e164.clone(), number.workspace.clone(), route)
            .await
        {
            tracing::error!(err = %e, e164 = %number.e164, "the number's actor did not take its route");
        }
        tracing::info!(e164 = %number.e164, holder = %holder, "number assigned");
        let (agent_id, assistant_id) = match holder {
            Holder::Agent(id) => (Some(id.to_string()), None),
            Holder::Assistant(id) => (None, Some(id.to_string())),
        };
        Ok(PoolNumber {
            status: PoolStatus::Assigned,
            agent_id,
            assistant_id,
            ..number
        })
    }

    /// Takes every number of an agent or assistant off it at the provider and
    /// gives them back to the pool; their E.164 forms. A provider that refuses
    /// stops it: the numbers already taken off are assigned again at their
    /// provider, and nothing is recorded.
    pub async fn unassign_all(&self, holder: &Holder) -> Result<Vec<String>, NumbersError> {
        let numbers = self.store.numbers_of(holder).await?;
        let mut done: Vec<(&ProviderAccount, &PoolNumber)> = Vec::new();
        for number in &numbers {
            let Some(account) = self.account(&number.provider, &number.workspace) else {
                continue;
            };
            if let Err(e) = account.unassign(number).await {
                for (account, number) in done {
                    if let Err(redo) = account.restore(number, None).await {
                        tracing::error!(err = %redo, e164 = %number.e164, "re-assigning at the provider failed");
                    }
                }
                return Err(NumbersError::ProviderFailed(format!(
                    "{} could not be taken off {holder}: {e}",
                    number.e164
                )));
            }
            if account.kind != ProviderKind::Twilio {
                // Nothing changed at Twilio (the number keeps pointing at switchboard).
                done.push((account, number));
            }
        }
        let mut released = Vec::new();
        for number in &numbers {
            let clear_provider_agent = number.provider != ProviderKind::Twilio.as_str();
            if let Some(route) = self
                .store
                .unassign(number, holder, clear_provider_agent)
                .await?
            {
                self.book
                    .upsert(number.e164.clone(), number.workspace.clone(), route)
                    .await?;
            }
            released.push(number.e164.clone());
        }
        Ok(released)
    }
}
