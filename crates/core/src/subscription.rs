//! A user's plan and usage. Registration creates the free one; billing fills in the rest.

use crate::ids::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

/// Runs a free account may start per month unless the plan config says otherwise.
pub const FREE_PLAN_MONTHLY_RUNS: i64 = 10;

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: Uuid,
    pub user_id: UserId,
    pub plan: String,
    pub status: String,
    pub monthly_agent_runs: i64,
    /// -1 means unlimited.
    pub monthly_agent_runs_limit: i64,
    pub current_period_start: OffsetDateTime,
    pub current_period_end: OffsetDateTime,
    pub cancel_at_period_end: bool,
    pub is_trial: bool,
    pub trial_end: Option<OffsetDateTime>,
    pub trial_used: bool,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    /// Moves on with every new period; a run metered against an older one is refused.
    pub period_version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Subscription {
    /// The free subscription every account starts with; its period runs from signup.
    pub fn free(user_id: UserId, monthly_limit: i64, now: OffsetDateTime) -> Self {
        Self {
            id: Uuid::now_v7(),
            user_id,
            plan: "free".into(),
            status: "active".into(),
            monthly_agent_runs: 0,
            monthly_agent_runs_limit: monthly_limit,
            current_period_start: now,
            current_period_end: add_one_month(now),
            cancel_at_period_end: false,
            is_trial: false,
            trial_end: None,
            trial_used: false,
            stripe_customer_id: None,
            stripe_subscription_id: None,
            period_version: 0,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The same day next month, clamped to that month's last day (Jan 31 → Feb 28/29).
pub fn add_one_month(t: OffsetDateTime) -> OffsetDateTime {
    add_months(t, 1)
}

/// The same day `months` months later, clamped to that month's last day. Counting from
/// one anchor keeps the day: Jan 31 + 2 months is Mar 31, not Mar 28.
pub fn add_months(t: OffsetDateTime, months: i32) -> OffsetDateTime {
    let index = t.year() * 12 + i32::from(u8::from(t.month())) - 1 + months;
    let year = index.div_euclid(12);
    let month = u8::try_from(index.rem_euclid(12) + 1)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .unwrap_or(time::Month::January);
    let day = t.day().min(month.length(year));
    match time::Date::from_calendar_date(year, month, day) {
        Ok(date) => t.replace_date(date),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn month_end_is_clamped() {
        assert_eq!(
            add_one_month(datetime!(2026-01-31 10:00 UTC)),
            datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            add_one_month(datetime!(2026-12-15 00:00 UTC)),
            datetime!(2027-01-15 00:00 UTC)
        );
        assert_eq!(
            add_months(datetime!(2026-01-31 10:00 UTC), 2),
            datetime!(2026-03-31 10:00 UTC)
        );
        assert_eq!(
            add_months(datetime!(2026-11-30 10:00 UTC), 15),
            datetime!(2028-02-29 10:00 UTC)
        );
    }
}
