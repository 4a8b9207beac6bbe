//! The plans on offer. They come from config; these are the defaults (docs/api.md, Billing).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `free`, `basic`, `pro` or `enterprise`.
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    /// Runs a month; -1 = unlimited.
    pub monthly_agent_runs_limit: i64,
    /// Runs of one user that may be queued or running at once.
    pub max_concurrent_runs: i64,
    pub features: Vec<String>,
    /// The Stripe price that sells it (paid plans only).
    #[serde(default)]
    pub stripe_price_id: Option<String>,
}

pub const PLAN_IDS: [&str; 4] = ["free", "basic", "pro", "enterprise"];

fn plan(id: &str, name: &str, price: i64, runs: i64, concurrent: i64, features: &[&str]) -> Plan {
    Plan {
        id: id.into(),
        name: name.into(),
        price_cents: price,
        currency: "usd".into(),
        monthly_agent_runs_limit: runs,
        max_concurrent_runs: concurrent,
        features: features.iter().map(|f| f.to_string()).collect(),
        stripe_price_id: None,
    }
}

/// The default plans: free 10 runs a month, basic 1000 at $19, pro 5000 at $49, enterprise
/// unlimited. The features say what the limits do not (clients show the run and concurrency
/// limits from the numbers, so a configured limit is never contradicted by a feature line).
pub fn default_plans() -> Vec<Plan> {
    vec![
        plan(
            "free",
            "Free",
            0,
            10,
            2,
            &["Sandboxed shell, files and web search", "Public sharing"],
        ),
        plan("basic", "Basic", 1900, 1000, 5, &["Everything in Free"]),
        plan("pro", "Pro", 4900, 5000, 10, &["Everything in Basic"]),
        plan(
            "enterprise",
            "Enterprise",
            0,
            -1,
            25,
            &["Everything in Pro", "Contact us"],
        ),
    ]
}

/// What is wrong with a configured plan list; the text names the offending plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("billing.plans: unknown plan id `{0}` (use free, basic, pro or enterprise)")]
    UnknownId(String),
    #[error("billing.plans: plan `{0}` is listed twice")]
    ListedTwice(String),
    #[error(
        "billing.plans: plan `{0}` needs monthly_agent_runs_limit >= -1, max_concurrent_runs >= 1 and price_cents >= 0"
    )]
    BadLimits(String),
    #[error("billing.plans: the `free` plan is required")]
    NoFree,
}

#[derive(Debug, Clone)]
pub struct PlanCatalog {
    plans: Vec<Plan>,
}

impl PlanCatalog {
    /// Checks the list: every plan id known and present once, `free` among them, limits
    /// sensible. The error names the offending plan.
    pub fn new(plans: Vec<Plan>) -> Result<Self, PlanError> {
        for (i, p) in plans.iter().enumerate() {
            if !PLAN_IDS.contains(&p.id.as_str()) {
                return Err(PlanError::UnknownId(p.id.clone()));
            }
            if plans[..i].iter().any(|q| q.id == p.id) {
                return Err(PlanError::ListedTwice(p.id.clone()));
            }
            if p.monthly_agent_runs_limit < -1 || p.max_concurrent_runs < 1 || p.price_cents < 0 {
                return Err(PlanError::BadLimits(p.id.clone()));
            }
        }
        if !plans.iter().any(|p| p.id == "free") {
            return Err(PlanError::NoFree);
        }
        Ok(Self { plans })
    }

    pub fn all(&self) -> &[Plan] {
        &self.plans
    }

    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    pub fn free(&self) -> &Plan {
        // `new` guarantees it; the fallback keeps this total.
        self.get("free").unwrap_or(&self.plans[0])
    }

    /// The plan a Stripe price sells.
    pub fn by_price(&self, price_id: &str) -> Option<&Plan> {
        self.plans
            .iter()
            .find(|p| p.stripe_price_id.as_deref() == Some(price_id))
    }
}

impl Default for PlanCatalog {
    fn default() -> Self {
        Self {
            plans: default_plans(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_plan_list_names_the_plan() {
        let mut plans = default_plans();
        plans.push(plans[1].clone());
        assert_eq!(
            PlanCatalog::new(plans).expect_err("twice").to_string(),
            "billing.plans: plan `basic` is listed twice"
        );
        let mut plans = default_plans();
        plans[2].max_concurrent_runs = 0;
        assert_eq!(
            PlanCatalog::new(plans).expect_err("limits").to_string(),
            "billing.plans: plan `pro` needs monthly_agent_runs_limit >= -1, max_concurrent_runs >= 1 and price_cents >= 0"
        );
        let mut plans = default_plans();
        plans[0].id = "gold".into();
        assert_eq!(
            PlanCatalog::new(plans).expect_err("unknown").to_string(),
            "billing.plans: unknown plan id `gold` (use free, basic, pro or enterprise)"
        );
        assert_eq!(
            PlanCatalog::new(default_plans()[1..].to_vec()).expect_err("no free"),
            PlanError::NoFree
        );
    }
}
