//! The phone-number feature: the pool of numbers the provider accounts hold, the
//! live numbers and their routes, and the directory across workspaces. The admin
//! API's handlers (`src/api/numbers.rs`, `src/api/directory.rs`) parse a request,
//! call a [`NumberService`] function and map its answer; the workflows live here.
//!
//! # Layout
//!
//! - this module: [`NumberService`] (what the workflows reach: the store, the
//!   provider accounts, the [`NumberBookHandle`], the public URL) and
//!   [`NumbersError`].
//! - [`model`]: the JSON the engine serves and the command line reads
//!   ([`model::DirectoryEntry`], validation findings, diffs).
//! - [`checks`]: validation (numbers without provider ids, assignments to agents
//!   that no longer exist, duplicates across providers, unparseable numbers,
//!   staging numbers missing from production) and the diff of two workspaces;
//!   pure functions.
//! - [`directory`]: what `/api/directory` answers: the listing, one number, an
//!   agent's numbers, validation and diff over everything the engine holds.
//! - [`route`]: a live number's route: checked against the agents and
//!   assistants, recorded, handed to the number's actor; re-routing one number.
//! - [`sync`]: the pool brought in line with the providers; a Retell import.
//! - [`assign`]: a number handed to an agent (claim, provider, record — each
//!   failed step undoes the ones before it) and taken back when the agent goes.
//! - [`migrate`]: the cut-over of a share of a workspace's numbers to a route,
//!   re-pointing Twilio at switchboard, and its exact rollback; the dry run of
//!   each (what would move, nothing changed).
//!
//! The provider clients are [`crate::providers`]; the SQL is
//! [`crate::store::pool`] and [`crate::store::numbers`].

pub mod assign;
pub mod checks;
pub mod directory;
pub mod migrate;
pub mod model;
pub mod route;
pub mod sync;

use switchboard_actors::number::NumberBookHandle;
use switchboard_actors::{EngineError, Workspace};

use crate::providers::ProviderAccount;
use crate::store::pool::{PoolFilter, PoolNumber};
use crate::store::{Store, StoreError};
use model::DirectoryEntry;

/// What the numbers workflows work with, borrowed from the engine for one request.
#[derive(Clone, Copy)]
pub struct NumberService<'a> {
    pub store: &'a Store,
    /// The provider accounts (Twilio, Vapi, Retell), by workspace.
    pub accounts: &'a [ProviderAccount],
    /// E.164 → the number's actor: a recorded route reaches the next call here.
    pub book: &'a NumberBookHandle,
    /// `http(s)://host[:port]` Twilio reaches us at: where our numbers point.
    pub public_url: &'a str,
}

/// Why a numbers workflow refused or failed; the admin API shows each as a status
/// and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum NumbersError {
    /// The request names something that does not fit (400 with this code).
    #[error("{code}: {message}")]
    Refused { code: &'static str, message: String },
    /// No such number, agent or migration (404).
    #[error("{0}")]
    NotFound(String),
    /// The request came too late or clashes with the numbers' state (409).
    #[error("{code}: {message}")]
    Conflict { code: &'static str, message: String },
    /// A provider refused or failed, or none is configured for the step (502).
    #[error("{0}")]
    ProviderFailed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl NumbersError {
    pub(crate) fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl<'a> NumberService<'a> {
    /// The configured account of `provider` in `workspace`.
    pub(crate) fn account(
        &self,
        provider: &str,
        workspace: &Workspace,
    ) -> Option<&'a ProviderAccount> {
        self.accounts
            .iter()
            .find(|a| a.kind.as_str() == provider && &a.workspace == workspace)
    }

    /// The voice webhook switchboard's numbers point at.
    pub fn voice_url(&self) -> String {
        format!("{}/twilio/voice", self.public_url)
    }

    /// Where switchboard wants Twilio's call status callbacks.
    pub fn status_callback_url(&self) -> String {
        format!("{}/twilio/status", self.public_url)
    }

    /// The directory's entries that `filter` selects.
    pub async fn entries(&self, filter: &PoolFilter) -> Result<Vec<DirectoryEntry>, NumbersError> {
        Ok(self
            .store
            .directory(filter)
            .await?
            .into_iter()
            .map(DirectoryEntry::from)
            .collect())
    }

    /// The pool rows that `filter` selects.
    async fn pool_rows(&self, filter: &PoolFilter) -> Result<Vec<PoolNumber>, NumbersError> {
        Ok(self
            .store
            .directory(filter)
            .await?
            .into_iter()
            .map(|r| r.number)
            .collect())
    }
}
