//! A user's effective limits: the plan's, each replaced by the user's override
//! when there is one.

use crate::config::{PlanLimits, Plans};
use crate::domain::user::PlanName;
use crate::store::users::{LimitOverrides, UserRecord};

/// The user's plan is not (or no longer) in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plan {0:?} is not configured")]
pub struct UnknownPlan(pub PlanName);

/// What `user` may do: quotas, monthly budget, longest call. Every gate reads
/// its limits here.
pub fn effective_limits(plans: &Plans, user: &UserRecord) -> Result<PlanLimits, UnknownPlan> {
    let plan = plans
        .get(&user.plan)
        .ok_or_else(|| UnknownPlan(user.plan.clone()))?;
    Ok(merge(plan, &user.overrides))
}

fn merge(plan: &PlanLimits, overrides: &LimitOverrides) -> PlanLimits {
    PlanLimits {
        calls_per_hour: overrides.calls_per_hour.unwrap_or(plan.calls_per_hour),
        calls_per_day: overrides.calls_per_day.unwrap_or(plan.calls_per_day),
        monthly_budget_usd: overrides
            .monthly_budget_usd
            .unwrap_or(plan.monthly_budget_usd),
        max_call_minutes: overrides.max_call_minutes.unwrap_or(plan.max_call_minutes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::user::{EmailAddress, UserStatus};
    use switchboard_actors::{UserId, Workspace};

    fn user(plan: &str, overrides: LimitOverrides) -> UserRecord {
        UserRecord {
            id: UserId::new(),
            email: EmailAddress::parse("ada@example.com").expect("an address"),
            name: "Ada".into(),
            workspace: Workspace::parse("production").expect("a workspace"),
            timezone: None,
            plan: PlanName::parse(plan).expect("a plan name"),
            status: UserStatus::Active,
            overrides,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_user_without_overrides_has_the_plan_s_limits() {
        let plans = Settings::defaults().plans;
        let limits = effective_limits(&plans, &user("pro", LimitOverrides::default()));
        assert_eq!(
            limits,
            Ok(PlanLimits {
                calls_per_hour: 10,
                calls_per_day: 50,
                monthly_budget_usd: 200.0,
                max_call_minutes: 15,
            })
        );
    }

    #[test]
    fn each_override_replaces_only_its_own_limit() {
        let plans = Settings::defaults().plans;
        let overrides = LimitOverrides {
            calls_per_day: Some(3),
            monthly_budget_usd: Some(0.0),
            ..LimitOverrides::default()
        };
        let limits = effective_limits(&plans, &user("free", overrides));
        assert_eq!(
            limits,
            Ok(PlanLimits {
                calls_per_hour: 5,
                calls_per_day: 3,
                monthly_budget_usd: 0.0,
                max_call_minutes: 5,
            })
        );
    }

    #[test]
    fn a_plan_gone_from_the_configuration_is_named() {
        let plans = Settings::defaults().plans;
        let limits = effective_limits(&plans, &user("gold", LimitOverrides::default()));
        assert_eq!(
            limits,
            Err(UnknownPlan(PlanName::parse("gold").expect("a plan name")))
        );
    }
}
