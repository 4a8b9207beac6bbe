//! The envelope of a webhook delivery, read leniently from the raw (already verified) body.
//!
//! Only `id` and `type` are required: Stripe adds event types and fields over time, and an
//! event we do not handle must still be acknowledged, so nothing else may make parsing fail.
//! The payload object stays a [`serde_json::Value`]; the typed views in [`crate::objects`]
//! read it.

use crate::objects::{CheckoutSessionObject, InvoiceObject, SubscriptionObject};
use serde_json::Value;

/// Why a body is not a Stripe event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("webhook body is not JSON")]
    NotJson,
    #[error("webhook body is not a JSON object")]
    NotAnObject,
    #[error("webhook event has no string `{0}`")]
    MissingField(&'static str),
}

/// A Stripe event (`"object": "event"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_...`: the key for processing each event once.
    pub id: String,
    /// e.g. `checkout.session.completed`.
    pub type_: String,
    pub created: Option<i64>,
    /// `data.object` (`Value::Null` when absent).
    pub data_object: Value,
    /// `data.previous_attributes` on `*.updated` events.
    pub previous_attributes: Option<Value>,
    /// `false` when absent.
    pub livemode: bool,
    pub api_version: Option<String>,
}

/// The event types Ironhand acts on; everything else is [`EventKind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    CheckoutSessionCompleted,
    SubscriptionCreated,
    SubscriptionUpdated,
    SubscriptionDeleted,
    /// `invoice.paid` or `invoice.payment_succeeded` (Stripe sends both for one payment).
    InvoicePaid,
    InvoicePaymentFailed,
    Other,
}

impl EventKind {
    pub fn of(type_: &str) -> Self {
        match type_ {
            "checkout.session.completed" => Self::CheckoutSessionCompleted,
            "customer.subscription.created" => Self::SubscriptionCreated,
            "customer.subscription.updated" => Self::SubscriptionUpdated,
            "customer.subscription.deleted" => Self::SubscriptionDeleted,
            "invoice.paid" | "invoice.payment_succeeded" => Self::InvoicePaid,
            "invoice.payment_failed" => Self::InvoicePaymentFailed,
            _ => Self::Other,
        }
    }
}

impl Event {
    /// Parses the raw webhook body.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let v: Value = serde_json::from_slice(body).map_err(|_| EventError::NotJson)?;
        Self::from_value(v)
    }

    pub fn from_value(mut v: Value) -> Result<Self, EventError> {
        let o = v.as_object_mut().ok_or(EventError::NotAnObject)?;
        let string = |o: &serde_json::Map<String, Value>, k: &str| {
            o.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let id = string(o, "id").ok_or(EventError::MissingField("id"))?;
        let type_ = string(o, "type").ok_or(EventError::MissingField("type"))?;
        let api_version = string(o, "api_version");
        let created = o.get("created").and_then(Value::as_i64);
        let livemode = o.get("livemode").and_then(Value::as_bool).unwrap_or(false);
        let (data_object, previous_attributes) = match o.remove("data") {
            Some(Value::Object(mut data)) => (
                data.remove("object").unwrap_or(Value::Null),
                data.remove("previous_attributes").filter(|p| !p.is_null()),
            ),
            _ => (Value::Null, None),
        };
        Ok(Self {
            id,
            type_,
            created,
            data_object,
            previous_attributes,
            livemode,
            api_version,
        })
    }

    pub fn kind(&self) -> EventKind {
        EventKind::of(&self.type_)
    }

    /// `data.object` as a subscription, if it is one.
    pub fn subscription(&self) -> Option<SubscriptionObject> {
        SubscriptionObject::from_value(&self.data_object)
    }

    /// `data.object` as a Checkout Session, if it is one.
    pub fn checkout_session(&self) -> Option<CheckoutSessionObject> {
        CheckoutSessionObject::from_value(&self.data_object)
    }

    /// `data.object` as an invoice, if it is one.
    pub fn invoice(&self) -> Option<InvoiceObject> {
        InvoiceObject::from_value(&self.data_object)
    }
}
