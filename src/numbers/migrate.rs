//! The cut-over of a share of a workspace's live numbers to a route, and its
//! rollback. A migration re-points each moved Twilio number whose webhook points
//! elsewhere at switchboard before anything is recorded (a failure midway restores
//! the ones already re-pointed), and records each number's previous route and
//! previous Twilio routing, so a rollback puts both back exactly.

use switchboard_actors::number::Route;
use switchboard_actors::Workspace;

use super::route::parse_route;
use super::{NumberService, NumbersError};
use crate::domain::provider::ProviderKind;
use crate::providers::twilio::Hooks;
use crate::providers::{ProviderAccount, Repointed};
use crate::store::numbers::NumberRecord;
use crate::store::pool::{
    MigrationEntry, PoolFilter, PoolNumber, PoolStatus, RouteMigration, VoiceRouting,
};

impl NumberService<'_> {
    /// Moves `percent` % (1 to 100) of a workspace's live numbers to `raw_route`
    /// (counting those already on it), re-pointing Twilio numbers whose webhook
    /// points elsewhere at switchboard, and records what each had so a rollback
    /// restores it exactly. `None`: that share is on the route already.
    pub async fn migrate(
        &self,
        workspace: &Workspace,
        raw_route: serde_json::Value,
        percent: i64,
    ) -> Result<Option<RouteMigration>, NumbersError> {
        let (target, moving) = self.migration_plan(workspace, raw_route, percent).await?;
        if moving.is_empty() {
            return Ok(None);
        }
        let pool: Vec<PoolNumber> = self
            .twilio_rows(workspace)
            .await?
            .into_iter()
            .filter(|n| n.status != PoolStatus::Released)
            .collect();
        let (webhook, status) = (self.voice_url(), self.status_callback_url());
        let hooks = Hooks {
            voice_url: &webhook,
            status_callback: &status,
        };
        let twilio = self.account(ProviderKind::Twilio.as_str(), workspace);
        let mut entries = Vec::new();
        let mut repointed: Vec<(&PoolNumber, Repointed)> = Vec::new();
        for number in &moving {
            let held = pool.iter().find(|p| p.e164 == number.e164);
            let mut entry = MigrationEntry {
                e164: number.e164.clone(),
                previous_route: number.route.clone(),
                twilio_sid: None,
                previous_voice_url: None,
                previous_twilio: None,
            };
            if let (Some(held), Some(twilio)) = (held, twilio) {
                // The pool row may be as old as the last sync: Twilio itself is read
                // (by `repoint`) before anything is changed.
                if !VoiceRouting::of(held).points_at(&hooks) {
                    match twilio.repoint(&held.provider_id, &hooks).await {
                        Err(e) => {
                            self.undo_repoints(twilio, &repointed).await;
                            return Err(NumbersError::ProviderFailed(format!(
                                "re-pointing {} at switchboard failed: {e}; nothing was moved",
                                held.e164
                            )));
                        }
                        Ok(r) if r.before.points_at(&hooks) => {}
                        Ok(r) => {
                            entry.twilio_sid = Some(held.provider_id.clone());
                            entry.previous_voice_url = r.before.voice_url.clone();
                            entry.previous_twilio = Some(r.before.clone());
                            repointed.push((held, r));
                        }
                    }
                }
            }
            entries.push(entry);
        }
        let migration = RouteMigration {
            id: uuid::Uuid::new_v4().simple().to_string(),
            workspace: workspace.clone(),
            target_route: target.clone(),
            percent,
            created_at: switchboard_actors::journal::now_ms(),
            rolled_back_at: None,
            entries,
        };
        if let Err(e) = self.store.save_route_migration(&migration).await {
            if let Some(twilio) = twilio {
                self.undo_repoints(twilio, &repointed).await;
            }
            return Err(e.into());
        }
        for (held, r) in &repointed {
            self.store.set_twilio_routing(&held.id, &r.now).await?;
        }
        for entry in &migration.entries {
            self.save_route(&entry.e164, workspace, &target).await?;
        }
        tracing::info!(id = %migration.id, moved = migration.entries.len(), "numbers migrated");
        Ok(Some(migration))
    }

    /// What [`Self::migrate`] would do, changing nothing: the route checked, and
    /// the live numbers it would move (in the order it moves them).
    pub async fn migration_plan(
        &self,
        workspace: &Workspace,
        raw_route: serde_json::Value,
        percent: i64,
    ) -> Result<(Route, Vec<NumberRecord>), NumbersError> {
        let target = parse_route(self.store, raw_route, workspace).await?;
        let live: Vec<_> = self
            .store
            .list_numbers()
            .await?
            .into_iter()
            .filter(|n| &n.workspace == workspace)
            .collect();
        let share = ((live.len() as i64 * percent + 99) / 100) as usize;
        let already = live.iter().filter(|n| n.route == target).count();
        let moving = live
            .into_iter()
            .filter(|n| n.route != target)
            .take(share.saturating_sub(already))
            .collect();
        Ok((target, moving))
    }

    /// Restores the numbers a failed migration had already re-pointed.
    async fn undo_repoints(
        &self,
        twilio: &ProviderAccount,
        repointed: &[(&PoolNumber, Repointed)],
    ) {
        for (held, r) in repointed {
            match twilio.restore_routing(&held.provider_id, &r.before).await {
                Ok(now) => {
                    if let Err(e) = self.store.set_twilio_routing(&held.id, &now).await {
                        tracing::warn!(err = %e, e164 = %held.e164, "remembering a restored routing failed");
                    }
                }
                Err(e) => {
                    tracing::error!(err = %e, e164 = %held.e164, "restoring a Twilio routing failed")
                }
            }
        }
    }

    /// The Twilio numbers of a workspace's pool: their sids and webhooks.
    async fn twilio_rows(&self, workspace: &Workspace) -> Result<Vec<PoolNumber>, NumbersError> {
        let rows = self
            .pool_rows(&PoolFilter {
                workspace: Some(workspace.to_string()),
                ..PoolFilter::default()
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter(|n| n.provider == ProviderKind::Twilio.as_str())
            .collect())
    }

    /// Puts every number of a migration (`id`, default the workspace's latest not
    /// rolled back yet) back on its previous route and its Twilio webhook back
    /// where it pointed; the migration rolled back.
    pub async fn rollback(
        &self,
        workspace: &Workspace,
        id: Option<&str>,
    ) -> Result<RouteMigration, NumbersError> {
        let migration = self.rollback_plan(workspace, id).await?;
        let pool = self.twilio_rows(workspace).await?;
        let twilio = self.account(ProviderKind::Twilio.as_str(), workspace);
        for entry in &migration.entries {
            let Some(sid) = &entry.twilio_sid else {
                continue;
            };
            let twilio = twilio.ok_or_else(|| {
                NumbersError::ProviderFailed(format!(
                    "no Twilio account of {workspace} to restore {}",
                    entry.e164
                ))
            })?;
            // Entries recorded before the whole routing was kept restore the voice
            // URL (POST), as they were made.
            let previous = entry
                .previous_twilio
                .clone()
                .unwrap_or_else(|| VoiceRouting {
                    voice_url: entry.previous_voice_url.clone(),
                    voice_method: Some("POST".to_owned()),
                    ..VoiceRouting::default()
                });
            let now = twilio.restore_routing(sid, &previous).await.map_err(|e| {
                NumbersError::ProviderFailed(format!(
                    "restoring the webhook of {}: {e}",
                    entry.e164
                ))
            })?;
            if let Some(held) = pool.iter().find(|p| &p.provider_id == sid) {
                self.store.set_twilio_routing(&held.id, &now).await?;
            }
        }
        for entry in &migration.entries {
            self.save_route(&entry.e164, workspace, &entry.previous_route)
                .await?;
        }
        self.store.mark_rolled_back(&migration.id).await?;
        tracing::info!(id = %migration.id, "migration rolled back");
        Ok(migration)
    }

    /// The migration [`Self::rollback`] would undo (with the same refusals),
    /// changing nothing.
    pub async fn rollback_plan(
        &self,
        workspace: &Workspace,
        id: Option<&str>,
    ) -> Result<RouteMigration, NumbersError> {
        let migration = self
            .store
            .route_migration(id, workspace)
            .await?
            .ok_or_else(|| {
                NumbersError::NotFound(format!(
                    "no migration to roll back in workspace {workspace}"
                ))
            })?;
        if migration.rolled_back_at.is_some() {
            return Err(NumbersError::conflict(
                "rolled-back",
                format!("migration {} was rolled back already", migration.id),
            ));
        }
        Ok(migration)
    }
}

/// What re-pointing a number cleared so that Twilio would use switchboard's
/// webhook: `TrunkSid TK…`, `VoiceApplicationSid AP…`.
pub fn cleared(previous: &VoiceRouting) -> Vec<String> {
    [
        ("TrunkSid", &previous.trunk_sid),
        ("VoiceApplicationSid", &previous.voice_application_sid),
    ]
    .iter()
    .filter_map(|(field, value)| value.as_ref().map(|v| format!("{field} {v}")))
    .collect()
}
