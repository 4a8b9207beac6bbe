//! Lenient parsing of events and objects in the old and new Stripe API shapes.
#![allow(clippy::unwrap_used)]

use ironhand_fakes::stripe::{ApiShape, FakeStripe, PRICE_BASIC, PRICE_PRO};
use ironhand_stripe::{
    CheckoutSessionObject, Event, EventError, EventKind, InvoiceObject, SubscriptionObject,
    SubscriptionStatus, WebhookSecrets,
};
use serde_json::json;

fn parse(event: &serde_json::Value) -> Event {
    Event::parse(event.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn checkout_completed_from_the_fake_end_to_end() {
    let fake = FakeStripe::start().await;
    let stripe = ironhand_stripe::StripeClient::new(
        ironhand_stripe::StripeConfig::new(fake.secret_key().to_string().into())
            .with_api_base(fake.base_url()),
    )
    .unwrap();
    let customer = stripe
        .create_customer("a@example.com", None, "user-9", "customer-user-9")
        .await
        .unwrap();
    let session = stripe
        .create_checkout_session(&ironhand_stripe::CheckoutParams {
            customer: customer.id.clone(),
            price: PRICE_BASIC.to_string(),
            success_url: "https://app.example.com/ok".to_string(),
            cancel_url: "https://app.example.com/no".to_string(),
            client_reference_id: "user-9".to_string(),
            metadata: vec![("user_id".to_string(), "user-9".to_string())],
            idempotency_key: None,
        })
        .await
        .unwrap();
    let (event, sub) = fake.complete_checkout(&session.id).unwrap();

    // Signed and verified like a real delivery, then parsed.
    let (body, header) = fake.signed(&event);
    let secrets = WebhookSecrets::parse(fake.webhook_secret());
    let now = event["created"].as_i64().unwrap();
    secrets.verify(body.as_bytes(), &header, now, 300).unwrap();
    let parsed = Event::parse(body.as_bytes()).unwrap();
    assert!(parsed.id.starts_with("evt_"));
    assert_eq!(parsed.kind(), EventKind::CheckoutSessionCompleted);
    assert_eq!(parsed.api_version.as_deref(), Some("2025-03-31.basil"));
    assert!(!parsed.livemode);
    let cs = parsed.checkout_session().unwrap();
    assert_eq!(cs.id, session.id);
    assert_eq!(cs.customer.as_deref(), Some(customer.id.as_str()));
    assert_eq!(cs.subscription.as_deref(), sub["id"].as_str());
    assert_eq!(cs.client_reference_id.as_deref(), Some("user-9"));
    assert_eq!(
        cs.metadata.get("user_id").map(String::as_str),
        Some("user-9")
    );
    assert_eq!(cs.mode.as_deref(), Some("subscription"));
    assert_eq!(cs.payment_status.as_deref(), Some("paid"));
    assert_eq!(cs.status.as_deref(), Some("complete"));
    // The payload is not a subscription nor an invoice.
    assert!(parsed.subscription().is_none());
    assert!(parsed.invoice().is_none());
}

#[tokio::test]
async fn subscriptions_read_the_same_in_both_shapes() {
    let fake = FakeStripe::start().await;
    let mut seen = Vec::new();
    for shape in [ApiShape::Current, ApiShape::Legacy] {
        fake.set_api_shape(shape);
        let raw = fake.create_subscription("cus_1", PRICE_PRO, &[("user_id", "u1")]);
        match shape {
            ApiShape::Current => {
                assert!(raw.get("current_period_end").is_none());
                assert!(raw["items"]["data"][0].get("current_period_end").is_some());
            }
            ApiShape::Legacy => assert!(raw.get("current_period_end").is_some()),
        }
        let id = raw["id"].as_str().unwrap();
        let created = parse(&fake.subscription_created_event(id).unwrap());
        assert_eq!(created.kind(), EventKind::SubscriptionCreated);
        let sub = created.subscription().unwrap();
        assert_eq!(sub.id, id);
        assert_eq!(sub.customer.as_deref(), Some("cus_1"));
        assert_eq!(sub.status, Some(SubscriptionStatus::Active));
        assert_eq!(sub.price_id.as_deref(), Some(PRICE_PRO));
        assert!(sub.current_period_start.unwrap() < sub.current_period_end.unwrap());
        assert_eq!(sub.metadata.get("user_id").map(String::as_str), Some("u1"));
        seen.push(sub.current_period_end.unwrap() - sub.current_period_start.unwrap());

        // Renewal moves the period wherever the shape keeps it.
        let renewed = parse(&fake.renew_subscription(id).unwrap());
        assert_eq!(renewed.kind(), EventKind::SubscriptionUpdated);
        let after = renewed.subscription().unwrap();
        assert_eq!(after.current_period_start, sub.current_period_end);
        assert!(renewed.previous_attributes.is_some());

        // The renewal's invoice names the subscription and the new period.
        let paid = parse(&fake.invoice_paid_event(id).unwrap());
        assert_eq!(paid.kind(), EventKind::InvoicePaid);
        let invoice = paid.invoice().unwrap();
        assert_eq!(invoice.subscription.as_deref(), Some(id));
        assert_eq!(invoice.customer.as_deref(), Some("cus_1"));
        assert_eq!(invoice.status.as_deref(), Some("paid"));
        assert_eq!(
            invoice.service_period(),
            Some((
                after.current_period_start.unwrap(),
                after.current_period_end.unwrap()
            ))
        );
        // The invoice's own period is not the service period.
        assert_eq!(invoice.period_start, invoice.period_end);

        let failed = parse(&fake.invoice_payment_failed_event(id).unwrap());
        assert_eq!(failed.kind(), EventKind::InvoicePaymentFailed);
        assert_eq!(failed.invoice().unwrap().status.as_deref(), Some("open"));
        assert_eq!(failed.invoice().unwrap().subscription.as_deref(), Some(id));

        let past_due = parse(&fake.set_subscription_status(id, "past_due").unwrap());
        assert_eq!(
            past_due.subscription().unwrap().status,
            Some(SubscriptionStatus::PastDue)
        );
        assert_eq!(
            past_due.previous_attributes,
            Some(json!({"status": "active"}))
        );

        let cancelling = parse(&fake.set_cancel_at_period_end(id, true).unwrap());
        let s = cancelling.subscription().unwrap();
        assert!(s.cancel_at_period_end);
        assert_eq!(s.cancel_at, s.current_period_end);

        let switched = parse(&fake.change_price(id, PRICE_BASIC).unwrap());
        assert_eq!(
            switched.subscription().unwrap().price_id.as_deref(),
            Some(PRICE_BASIC)
        );

        let deleted = parse(&fake.delete_subscription(id).unwrap());
        assert_eq!(deleted.kind(), EventKind::SubscriptionDeleted);
        let s = deleted.subscription().unwrap();
        assert_eq!(s.status, Some(SubscriptionStatus::Canceled));
        assert!(s.ended_at.is_some());
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn a_stripe_2025_subscription_with_expanded_customer_and_trial() {
    // Trimmed from a real `customer.subscription.updated` payload (API 2025-03-31.basil).
    let raw = json!({
        "id": "sub_1RaBcD2eZvKYlo2C", "object": "subscription",
        "customer": {"id": "cus_SXyZ", "object": "customer", "email": "a@example.com"},
        "status": "trialing", "cancel_at_period_end": false, "trial_start": 1750000000,
        "trial_end": 1751209600, "metadata": {"user_id": "0197a1b2-c3d4"},
        "items": {"object": "list", "data": [{
            "id": "si_1", "object": "subscription_item",
            "current_period_start": 1750000000, "current_period_end": 1751209600,
            "price": {"id": "price_1Pro", "object": "price", "unit_amount": 4900},
            "plan": {"id": "price_1Pro", "object": "plan"}
        }], "has_more": false},
        "plan": null, "some_future_field": {"nested": [1, 2, 3]}
    });
    let sub = SubscriptionObject::from_value(&raw).unwrap();
    assert_eq!(sub.customer.as_deref(), Some("cus_SXyZ"));
    assert_eq!(sub.status, Some(SubscriptionStatus::Trialing));
    assert_eq!(sub.price_id.as_deref(), Some("price_1Pro"));
    assert_eq!(sub.current_period_start, Some(1_750_000_000));
    assert_eq!(sub.current_period_end, Some(1_751_209_600));
    assert_eq!(sub.trial_end, Some(1_751_209_600));
    assert_eq!(
        sub.metadata.get("user_id").map(String::as_str),
        Some("0197a1b2-c3d4")
    );
}

#[test]
fn a_legacy_subscription_with_only_a_plan() {
    let raw = json!({
        "id": "sub_old", "object": "subscription", "customer": "cus_old",
        "status": "past_due", "current_period_start": 1600000000,
        "current_period_end": 1602592000, "cancel_at_period_end": true,
        "plan": {"id": "plan_legacy", "object": "plan"},
        "items": {"object": "list", "data": []}, "metadata": {}
    });
    let sub = SubscriptionObject::from_value(&raw).unwrap();
    assert_eq!(sub.price_id.as_deref(), Some("plan_legacy"));
    assert_eq!(sub.status, Some(SubscriptionStatus::PastDue));
    assert_eq!(sub.current_period_end, Some(1_602_592_000));
    assert!(sub.cancel_at_period_end);
}

#[test]
fn odd_shapes_give_none_instead_of_failing() {
    let raw = json!({
        "id": "sub_odd", "customer": 12, "status": 3, "current_period_end": "soon",
        "cancel_at_period_end": "yes", "trial_end": null, "metadata": ["not", "a", "map"],
        "items": {"data": "nope"}
    });
    let sub = SubscriptionObject::from_value(&raw).unwrap();
    assert_eq!(sub.customer, None);
    assert_eq!(sub.status, None);
    assert_eq!(sub.current_period_end, None);
    assert!(!sub.cancel_at_period_end);
    assert_eq!(sub.trial_end, None);
    assert!(sub.metadata.is_empty());
    assert_eq!(sub.price_id, None);

    let new_status = SubscriptionObject::from_value(&json!({"id": "sub_x", "status": "frozen"}))
        .unwrap()
        .status
        .unwrap();
    assert_eq!(new_status, SubscriptionStatus::Other("frozen".to_string()));
    assert_eq!(new_status.as_str(), "frozen");

    let cs = CheckoutSessionObject::from_value(&json!({
        "id": "cs_1", "object": "checkout.session", "customer": null,
        "subscription": {"id": "sub_expanded"}, "client_reference_id": "", "metadata": null
    }))
    .unwrap();
    assert_eq!(cs.customer, None);
    assert_eq!(cs.subscription.as_deref(), Some("sub_expanded"));
    assert_eq!(cs.client_reference_id, None);
    assert!(cs.metadata.is_empty());

    let inv = InvoiceObject::from_value(&json!({
        "id": "in_1", "object": "invoice", "lines": {"data": [{"period": "x"}]},
        "parent": {"subscription_details": null}
    }))
    .unwrap();
    assert_eq!(inv.subscription, None);
    assert_eq!(inv.service_period(), None);
}

#[test]
fn invoices_find_their_subscription_in_every_known_place() {
    let cases = [
        json!({"id": "in_1", "object": "invoice", "subscription": "sub_A"}),
        json!({"id": "in_1", "object": "invoice", "subscription": {"id": "sub_A"}}),
        json!({"id": "in_1", "object": "invoice", "subscription": null,
               "parent": {"type": "subscription_details",
                          "subscription_details": {"subscription": "sub_A"}}}),
        json!({"id": "in_1", "object": "invoice",
               "lines": {"data": [{"subscription": "sub_A"}]}}),
        json!({"id": "in_1", "object": "invoice",
               "lines": {"data": [{"parent": {"subscription_item_details":
                                               {"subscription": "sub_A"}}}]}}),
    ];
    for c in cases {
        assert_eq!(
            InvoiceObject::from_value(&c)
                .unwrap()
                .subscription
                .as_deref(),
            Some("sub_A"),
            "{c}"
        );
    }
    // Without a line period the invoice's own period is used.
    let inv = InvoiceObject::from_value(&json!({
        "id": "in_2", "period_start": 10, "period_end": 20, "lines": {"data": []}
    }))
    .unwrap();
    assert_eq!(inv.service_period(), Some((10, 20)));
}

#[test]
fn unknown_event_types_and_minimal_events_parse() {
    let e = Event::parse(
        br#"{"id":"evt_9","object":"event","type":"radar.early_fraud_warning.created",
             "data":{"object":{"id":"issfr_1","object":"radar.early_fraud_warning"}},
             "created":1700000000,"livemode":true,"api_version":"2099-01-01.future"}"#,
    )
    .unwrap();
    assert_eq!(e.kind(), EventKind::Other);
    assert_eq!(e.type_, "radar.early_fraud_warning.created");
    assert_eq!(e.created, Some(1_700_000_000));
    assert!(e.livemode);
    assert_eq!(e.data_object["id"], "issfr_1");
    assert!(e.subscription().is_none());

    let minimal = Event::parse(br#"{"id":"evt_min","type":"invoice.payment_succeeded"}"#).unwrap();
    assert_eq!(minimal.kind(), EventKind::InvoicePaid);
    assert_eq!(minimal.created, None);
    assert!(!minimal.livemode);
    assert!(minimal.data_object.is_null());
    assert!(minimal.invoice().is_none());

    let odd = Event::parse(
        br#"{"id":"evt_o","type":"customer.subscription.updated","created":"yesterday",
             "livemode":"no","data":"nope"}"#,
    )
    .unwrap();
    assert_eq!(odd.created, None);
    assert!(odd.data_object.is_null());
}

#[test]
fn bodies_that_are_not_events_are_refused() {
    assert_eq!(Event::parse(b"not json").unwrap_err(), EventError::NotJson);
    assert_eq!(Event::parse(b"").unwrap_err(), EventError::NotJson);
    assert_eq!(Event::parse(b"[1,2]").unwrap_err(), EventError::NotAnObject);
    assert_eq!(
        Event::parse(br#"{"type":"invoice.paid"}"#).unwrap_err(),
        EventError::MissingField("id")
    );
    assert_eq!(
        Event::parse(br#"{"id":"evt_1","type":7}"#).unwrap_err(),
        EventError::MissingField("type")
    );
}
