//! The pool brought in line with the providers: every configured account's list
//! fetched and applied (one account failing changes nothing of its own numbers and
//! stops no other), and a number imported into Retell over a SIP trunk.

use serde::Serialize;
use switchboard_actors::Workspace;

use super::model::DirectoryEntry;
use super::{NumberService, NumbersError};
use crate::domain::provider::ProviderKind;
use crate::providers::retell::Import;
use crate::providers::ProviderAccount;
use crate::store::pool::{PoolFilter, SyncCounts};

/// What a sync did: the totals, each account that synced, each that failed.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    #[serde(flatten)]
    pub total: SyncCounts,
    pub accounts: Vec<AccountResult>,
    pub failed: Vec<AccountFailure>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountResult {
    pub provider: &'static str,
    pub workspace: String,
    #[serde(flatten)]
    pub counts: SyncCounts,
    pub pages: usize,
    /// Time spent fetching and parsing the provider's pages, and applying them.
    pub fetch_ms: u64,
    pub store_ms: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountFailure {
    pub provider: &'static str,
    pub workspace: String,
    pub error: String,
}

impl NumberService<'_> {
    /// Syncs every configured account (or those of one provider / workspace). A
    /// provider that fails changes nothing of its own numbers; the others still
    /// sync, and the report lists it under `failed`.
    pub async fn sync(
        &self,
        provider: Option<ProviderKind>,
        workspace: Option<&Workspace>,
    ) -> Result<SyncReport, NumbersError> {
        let accounts: Vec<&ProviderAccount> = self
            .accounts
            .iter()
            .filter(|a| provider.is_none_or(|p| a.kind == p))
            .filter(|a| workspace.is_none_or(|w| &a.workspace == w))
            .collect();
        if accounts.is_empty() {
            return Err(NumbersError::refused(
                "no-provider-account",
                format!(
                    "no provider account is configured{}{}",
                    provider.map(|p| format!(" for {p}")).unwrap_or_default(),
                    workspace
                        .map(|w| format!(" in workspace {w}"))
                        .unwrap_or_default()
                ),
            ));
        }
        let mut report = SyncReport::default();
        for account in accounts {
            let mut pages = 0usize;
            let started = std::time::Instant::now();
            let listed = account.list_numbers(&mut |_| pages += 1).await;
            let fetched = started.elapsed();
            let result = match listed {
                Ok(numbers) => self
                    .store
                    .sync_pool(account.kind.as_str(), &account.workspace, &numbers)
                    .await
                    .map_err(|e| {
                        tracing::error!(err = %e, account = %account.label(), "storing a sync failed");
                        format!("{}: the pool could not be updated", account.label())
                    }),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(counts) => {
                    tracing::info!(
                        account = %account.label(),
                        pages,
                        ?counts,
                        fetch_ms = fetched.as_millis() as u64,
                        store_ms = (started.elapsed() - fetched).as_millis() as u64,
                        "numbers synced"
                    );
                    report.total.added += counts.added;
                    report.total.updated += counts.updated;
                    report.total.released += counts.released;
                    report.accounts.push(AccountResult {
                        provider: account.kind.as_str(),
                        workspace: account.workspace.to_string(),
                        counts,
                        pages,
                        fetch_ms: fetched.as_millis() as u64,
                        store_ms: (started.elapsed() - fetched).as_millis() as u64,
                    });
                }
                Err(error) => {
                    tracing::warn!(account = %account.label(), %error, "sync failed");
                    report.failed.push(AccountFailure {
                        provider: account.kind.as_str(),
                        workspace: account.workspace.to_string(),
                        error,
                    });
                }
            }
        }
        Ok(report)
    }

    /// Imports a number into the provider (Retell, over a SIP trunk) and adds it to
    /// the pool; the directory's entry of it, as it is now.
    pub async fn import(
        &self,
        provider: ProviderKind,
        workspace: &Workspace,
        import: &Import,
    ) -> Result<Option<DirectoryEntry>, NumbersError> {
        let account = self.account(provider.as_str(), workspace).ok_or_else(|| {
            NumbersError::refused(
                "no-provider-account",
                format!("no {provider} account is configured in workspace {workspace}"),
            )
        })?;
        let imported = account
            .import(import)
            .await
            .map_err(|e| NumbersError::ProviderFailed(e.to_string()))?;
        let number = self
            .store
            .add_to_pool(provider.as_str(), workspace, &imported)
            .await?;
        let entries = self
            .entries(&PoolFilter {
                e164: Some(number.e164.clone()),
                workspace: Some(workspace.to_string()),
                ..PoolFilter::default()
            })
            .await?;
        Ok(entries.into_iter().find(|e| e.id == number.id))
    }
}
