//! Lenient, typed views of the Stripe objects Ironhand reads: subscriptions, Checkout
//! Sessions and invoices, whether they come from an API answer or a webhook event.
//!
//! Stripe's shapes change between API versions (an account's webhooks are rendered with the
//! account's default version, not ours), so every view reads only what it needs, accepts the
//! old and the new place of a field, and turns anything odd into `None` instead of failing:
//!
//! - since `2025-03-31.basil` a subscription's `current_period_start/end` live on its items
//!   (`items.data[0]`), before they were top-level;
//! - since the same version an invoice names its subscription in
//!   `parent.subscription_details.subscription`, before in a top-level `subscription`;
//! - references such as `customer` are ids, or whole objects when expanded.
//!
//! Only the `id` is required; a view is refused (`None`) when the value is not an object,
//! has no string `id`, or says it is another kind of object (`"object": "invoice"` given
//! to the subscription view).

use serde_json::Value;
use std::collections::BTreeMap;

/// Metadata as Stripe keeps it: string keys to string values.
pub type Metadata = BTreeMap<String, String>;

/// An id from a reference that is either the id itself or the expanded object.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => match o.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

/// A Unix timestamp; integers, whole floats and digit strings are accepted.
fn int_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn bool_of(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// String values are kept as they are, other scalars are rendered, nested values dropped.
fn metadata_of(v: Option<&Value>) -> Metadata {
    let Some(Value::Object(o)) = v else {
        return Metadata::new();
    };
    o.iter()
        .filter_map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), s))
        })
        .collect()
}

/// The object's `id` when `v` is an object of kind `kind` (or of no stated kind).
fn object_id(v: &Value, kind: &str) -> Option<String> {
    let o = v.as_object()?;
    if let Some(stated) = o.get("object").and_then(Value::as_str)
        && stated != kind
    {
        return None;
    }
    match o.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The first element of a Stripe list (`{"object": "list", "data": [...]}`) under `key`;
/// a bare array is accepted too.
fn first_of_list<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v.get(key)? {
        Value::Object(list) => list.get("data")?.as_array()?.first(),
        Value::Array(a) => a.first(),
        _ => None,
    }
}

/// A subscription's status. Stripe may add statuses; those land in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    Active,
    Trialing,
    PastDue,
    Canceled,
    Unpaid,
    Incomplete,
    IncompleteExpired,
    Paused,
    Other(String),
}

impl SubscriptionStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "trialing" => Self::Trialing,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "unpaid" => Self::Unpaid,
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "paused" => Self::Paused,
            other => Self::Other(other.to_string()),
        }
    }

    /// Stripe's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Trialing => "trialing",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Paused => "paused",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Stripe subscription (`"object": "subscription"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionObject {
    pub id: String,
    pub customer: Option<String>,
    pub status: Option<SubscriptionStatus>,
    /// The first item's price (`items.data[0].price.id`), falling back to the legacy `plan`.
    pub price_id: Option<String>,
    /// Top-level (API before 2025-03-31) or the first item's (since).
    pub current_period_start: Option<i64>,
    /// Top-level (API before 2025-03-31) or the first item's (since).
    pub current_period_end: Option<i64>,
    /// `false` when absent.
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub metadata: Metadata,
}

impl SubscriptionObject {
    pub fn from_value(v: &Value) -> Option<Self> {
        let id = object_id(v, "subscription")?;
        let item = first_of_list(v, "items");
        let item_field = |k: &str| item.and_then(|i| i.get(k));
        let price_id = id_of(item_field("price"))
            .or_else(|| id_of(item_field("plan")))
            .or_else(|| id_of(v.get("plan")));
        let current_period_start = int_of(v.get("current_period_start"))
            .or_else(|| int_of(item_field("current_period_start")));
        let current_period_end = int_of(v.get("current_period_end"))
            .or_else(|| int_of(item_field("current_period_end")));
        Some(Self {
            id,
            customer: id_of(v.get("customer")),
            status: v
                .get("status")
                .and_then(Value::as_str)
                .map(SubscriptionStatus::parse),
            price_id,
            current_period_start,
            current_period_end,
            cancel_at_period_end: bool_of(v.get("cancel_at_period_end")).unwrap_or(false),
            cancel_at: int_of(v.get("cancel_at")),
            canceled_at: int_of(v.get("canceled_at")),
            ended_at: int_of(v.get("ended_at")),
            trial_start: int_of(v.get("trial_start")),
            trial_end: int_of(v.get("trial_end")),
            metadata: metadata_of(v.get("metadata")),
        })
    }

    /// Parses an API answer's raw body.
    pub fn from_slice(body: &[u8]) -> Option<Self> {
        Self::from_value(&serde_json::from_slice(body).ok()?)
    }
}

/// A Checkout Session (`"object": "checkout.session"`), as in `checkout.session.*` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSessionObject {
    pub id: String,
    pub customer: Option<String>,
    /// Set once a subscription-mode session completes.
    pub subscription: Option<String>,
    /// What we put there: the Ironhand user id.
    pub client_reference_id: Option<String>,
    pub metadata: Metadata,
    /// `subscription`, `payment` or `setup`.
    pub mode: Option<String>,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: Option<String>,
    /// `open`, `complete` or `expired`.
    pub status: Option<String>,
}

impl CheckoutSessionObject {
    pub fn from_value(v: &Value) -> Option<Self> {
        Some(Self {
            id: object_id(v, "checkout.session")?,
            customer: id_of(v.get("customer")),
            subscription: id_of(v.get("subscription")),
            client_reference_id: str_of(v.get("client_reference_id")).filter(|s| !s.is_empty()),
            metadata: metadata_of(v.get("metadata")),
            mode: str_of(v.get("mode")),
            payment_status: str_of(v.get("payment_status")),
            status: str_of(v.get("status")),
        })
    }
}

/// An invoice (`"object": "invoice"`), as in `invoice.*` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceObject {
    pub id: String,
    pub customer: Option<String>,
    /// Top-level `subscription` (API before 2025-03-31), else
    /// `parent.subscription_details.subscription`, else the first line's.
    pub subscription: Option<String>,
    /// The invoice's own period. For subscription invoices this is *not* the new service
    /// period (it is the previous period, or a zero-length one on the first invoice); see
    /// [`InvoiceObject::service_period`].
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    /// The first line's `period`: the service period the invoice pays for.
    pub line_period_start: Option<i64>,
    pub line_period_end: Option<i64>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: Option<String>,
    /// e.g. `subscription_create`, `subscription_cycle`, `subscription_update`.
    pub billing_reason: Option<String>,
}

impl InvoiceObject {
    pub fn from_value(v: &Value) -> Option<Self> {
        let id = object_id(v, "invoice")?;
        let line = first_of_list(v, "lines");
        let line_period = line.and_then(|l| l.get("period"));
        let subscription = id_of(v.get("subscription"))
            .or_else(|| id_of(v.pointer("/parent/subscription_details/subscription")))
            .or_else(|| line.and_then(|l| id_of(l.get("subscription"))))
            .or_else(|| {
                line.and_then(|l| {
                    id_of(l.pointer("/parent/subscription_item_details/subscription"))
                })
            });
        Some(Self {
            id,
            customer: id_of(v.get("customer")),
            subscription,
            period_start: int_of(v.get("period_start")),
            period_end: int_of(v.get("period_end")),
            line_period_start: int_of(line_period.and_then(|p| p.get("start"))),
            line_period_end: int_of(line_period.and_then(|p| p.get("end"))),
            status: str_of(v.get("status")),
            billing_reason: str_of(v.get("billing_reason")),
        })
    }

    /// The period the invoice pays for: the first line's period when present (that is the
    /// subscription's new period), else the invoice's own `period_start/end`.
    pub fn service_period(&self) -> Option<(i64, i64)> {
        match (self.line_period_start, self.line_period_end) {
            (Some(s), Some(e)) => Some((s, e)),
            _ => match (self.period_start, self.period_end) {
                (Some(s), Some(e)) => Some((s, e)),
                _ => None,
            },
        }
    }
}

/// A customer as created by [`crate::StripeClient::create_customer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
}

/// A Checkout Session as created by [`crate::StripeClient::create_checkout_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    /// Where to send the user's browser.
    pub url: String,
}

/// A Customer Portal session as created by [`crate::StripeClient::create_portal_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    pub id: Option<String>,
    /// Where to send the user's browser.
    pub url: String,
}

/// Reads the id of a created object from an API answer.
pub(crate) fn answer_id(v: &Value) -> Option<String> {
    match v.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn answer_str(v: &Value, key: &str) -> Option<String> {
    str_of(v.get(key)).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn odd_scalars_are_tolerated() {
        assert_eq!(int_of(Some(&json!(12))), Some(12));
        assert_eq!(int_of(Some(&json!(12.0))), Some(12));
        assert_eq!(int_of(Some(&json!(12.5))), None);
        assert_eq!(int_of(Some(&json!("12"))), Some(12));
        assert_eq!(int_of(Some(&json!(null))), None);
        assert_eq!(int_of(Some(&json!([1]))), None);
        assert_eq!(
            id_of(Some(&json!({"id": "cus_1", "deleted": true}))),
            Some("cus_1".into())
        );
        assert_eq!(id_of(Some(&json!(""))), None);
        assert_eq!(id_of(Some(&json!(7))), None);
        let m = metadata_of(Some(
            &json!({"a": "x", "b": 1, "c": true, "d": {"e": 1}, "f": null}),
        ));
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("b").map(String::as_str), Some("1"));
    }

    #[test]
    fn refuses_other_objects_and_missing_ids() {
        assert!(
            SubscriptionObject::from_value(&json!({"id": "in_1", "object": "invoice"})).is_none()
        );
        assert!(SubscriptionObject::from_value(&json!({"object": "subscription"})).is_none());
        assert!(SubscriptionObject::from_value(&json!({"id": 5})).is_none());
        assert!(SubscriptionObject::from_value(&json!("sub_1")).is_none());
        assert!(InvoiceObject::from_value(&json!(null)).is_none());
        assert!(CheckoutSessionObject::from_value(&json!([])).is_none());
        let bare = SubscriptionObject::from_value(&json!({"id": "sub_1"})).expect("bare");
        assert_eq!(bare.status, None);
        assert!(!bare.cancel_at_period_end);
        assert!(bare.metadata.is_empty());
    }
}
