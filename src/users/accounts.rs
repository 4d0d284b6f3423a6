//! Creating and changing users. A new user gets an API key (shown once, stored
//! as its hash, like an agent's token) and a webhook secret (stored: it signs the
//! user's callbacks).

use secrecy::SecretString;
use switchboard_actors::UserId;

use crate::auth::{new_token, token_hash};
use crate::config::Plans;
use crate::domain::user::PlanName;
use crate::store::users::{NewUser, UserChanges, UserFields, UserRecord};
use crate::store::{Store, StoreError};

/// The prefix of users' API keys (agents' tokens are `sbt_`).
const API_KEY_PREFIX: &str = "sbu_";
/// The prefix of webhook secrets.
const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// A user just made, with the two secrets only this answer shows.
pub struct CreatedUser {
    pub user: UserRecord,
    pub api_key: SecretString,
    pub webhook_secret: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The plan is not a key of the config's `[plans.*]`; the known ones are
    /// listed.
    #[error("plan {plan:?} is not configured (known: {known})")]
    UnknownPlan { plan: PlanName, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn check_plan(plans: &Plans, plan: &PlanName) -> Result<(), UserError> {
    if plans.get(plan).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = plans.names().map(PlanName::as_str).collect();
    Err(UserError::UnknownPlan {
        plan: plan.clone(),
        known: known.join(", "),
    })
}

/// Stores a new, active user; [`StoreError::Duplicate`] when the e-mail is taken.
pub async fn create_user(
    store: &Store,
    plans: &Plans,
    fields: UserFields,
) -> Result<CreatedUser, UserError> {
    check_plan(plans, &fields.plan)?;
    let api_key = new_token(API_KEY_PREFIX);
    let webhook_secret = SecretString::from(new_token(WEBHOOK_SECRET_PREFIX));
    let user = store
        .create_user(&NewUser {
            id: UserId::new(),
            fields,
            api_key_hash: token_hash(&api_key),
            webhook_secret: webhook_secret.clone(),
        })
        .await?;
    tracing::info!(user_id = %user.id, plan = %user.plan, "user created");
    Ok(CreatedUser {
        user,
        api_key: SecretString::from(api_key),
        webhook_secret,
    })
}

/// Applies `changes` (a new plan must be configured); `None` when there is no
/// such user.
pub async fn update_user(
    store: &Store,
    plans: &Plans,
    id: &UserId,
    changes: &UserChanges,
) -> Result<Option<UserRecord>, UserError> {
    if let Some(plan) = &changes.plan {
        check_plan(plans, plan)?;
    }
    let user = store.update_user(id, changes).await?;
    if let Some(user) = &user {
        tracing::info!(user_id = %user.id, status = user.status.as_str(), plan = %user.plan, "user updated");
    }
    Ok(user)
}
