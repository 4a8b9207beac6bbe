//! The client against the fake Stripe API: what goes on the wire, what comes back, and how
//! failures surface.
#![allow(clippy::unwrap_used)]

use ironhand_fakes::stripe::{ApiShape, FakeStripe, PRICE_BASIC, PRICE_PRO, SECRET_KEY};
use ironhand_stripe::{
    CheckoutParams, SecretString, StripeClient, StripeConfig, StripeError, SubscriptionStatus,
};
use std::time::Duration;

fn config(base: &str, key: &str) -> StripeConfig {
    let mut c = StripeConfig::new(SecretString::from(key.to_string()))
        .with_api_base(base)
        .with_timeout(Duration::from_secs(5));
    c.retry_backoff = Duration::from_millis(10);
    c
}

fn client(fake: &FakeStripe) -> StripeClient {
    StripeClient::new(config(&fake.base_url(), SECRET_KEY)).unwrap()
}

fn checkout_params(customer: &str, price: &str) -> CheckoutParams {
    CheckoutParams {
        customer: customer.to_string(),
        price: price.to_string(),
        success_url: "https://app.example.com/billing?status=success".to_string(),
        cancel_url: "https://app.example.com/billing?status=cancel".to_string(),
        client_reference_id: "user-42".to_string(),
        metadata: vec![
            ("user_id".to_string(), "user-42".to_string()),
            ("plan".to_string(), "pro".to_string()),
        ],
        idempotency_key: Some("checkout-user-42-1".to_string()),
    }
}

#[tokio::test]
async fn customer_creation_sends_fields_and_is_idempotent() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);

    let first = stripe
        .create_customer(
            "ada@example.com",
            Some("Ada"),
            "user-42",
            "customer-user-42",
        )
        .await
        .unwrap();
    let again = stripe
        .create_customer(
            "ada@example.com",
            Some("Ada"),
            "user-42",
            "customer-user-42",
        )
        .await
        .unwrap();
    assert!(first.id.starts_with("cus_"), "{}", first.id);
    assert_eq!(first, again, "same key, same customer");
    assert_eq!(fake.customers().len(), 1);

    let stored = fake.customer(&first.id).unwrap();
    assert_eq!(stored["email"], "ada@example.com");
    assert_eq!(stored["name"], "Ada");
    assert_eq!(stored["metadata"]["user_id"], "user-42");

    let reqs = fake.requests_to("/v1/customers");
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.idempotency_key.as_deref(), Some("customer-user-42"));
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {SECRET_KEY}").as_str())
        );
        assert!(
            r.content_type
                .as_deref()
                .unwrap()
                .starts_with("application/x-www-form-urlencoded")
        );
        assert_eq!(r.field("email"), Some("ada@example.com"));
        assert_eq!(r.field("name"), Some("Ada"));
        assert_eq!(r.field("metadata[user_id]"), Some("user-42"));
    }

    let other = stripe
        .create_customer("bob@example.com", None, "user-43", "customer-user-43")
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
    assert_eq!(fake.requests_to("/v1/customers")[2].field("name"), None);

    // Stripe refuses a key reused with other parameters.
    let err = stripe
        .create_customer("changed@example.com", None, "user-42", "customer-user-42")
        .await
        .unwrap_err();
    match err {
        StripeError::Api { status, kind, .. } => {
            assert_eq!(status, 400);
            assert_eq!(kind, "idempotency_error");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn checkout_session_sends_every_field_and_completes_into_a_subscription() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let customer = stripe
        .create_customer("ada@example.com", None, "user-42", "customer-user-42")
        .await
        .unwrap();

    let session = stripe
        .create_checkout_session(&checkout_params(&customer.id, PRICE_PRO))
        .await
        .unwrap();
    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert_eq!(
        session.url,
        format!("{}/checkout/{}", fake.base_url(), session.id)
    );

    let reqs = fake.requests_to("/v1/checkout/sessions");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.idempotency_key.as_deref(), Some("checkout-user-42-1"));
    for (field, value) in [
        ("mode", "subscription"),
        ("customer", customer.id.as_str()),
        ("line_items[0][price]", PRICE_PRO),
        ("line_items[0][quantity]", "1"),
        (
            "success_url",
            "https://app.example.com/billing?status=success",
        ),
        (
            "cancel_url",
            "https://app.example.com/billing?status=cancel",
        ),
        ("client_reference_id", "user-42"),
        ("metadata[user_id]", "user-42"),
        ("metadata[plan]", "pro"),
        ("subscription_data[metadata][user_id]", "user-42"),
        ("subscription_data[metadata][plan]", "pro"),
    ] {
        assert_eq!(r.field(field), Some(value), "field {field}");
    }

    // The hosted page exists, without the secret key.
    let page = reqwest_get(&session.url).await;
    assert!(page.contains(&session.id));

    let (event, sub) = fake.complete_checkout(&session.id).unwrap();
    assert_eq!(event["type"], "checkout.session.completed");
    assert_eq!(event["data"]["object"]["subscription"], sub["id"]);

    let retrieved = stripe
        .retrieve_subscription(sub["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(retrieved.customer.as_deref(), Some(customer.id.as_str()));
    assert_eq!(retrieved.status, Some(SubscriptionStatus::Active));
    assert_eq!(retrieved.price_id.as_deref(), Some(PRICE_PRO));
    assert_eq!(
        retrieved.metadata.get("user_id").map(String::as_str),
        Some("user-42")
    );
    let (start, end) = (
        retrieved.current_period_start.unwrap(),
        retrieved.current_period_end.unwrap(),
    );
    assert!(end - start >= 28 * 86_400 && end - start <= 31 * 86_400);
    assert!(!retrieved.cancel_at_period_end);

    // Completing twice is refused: the session is no longer open.
    assert!(fake.complete_checkout(&session.id).is_none());
}

async fn reqwest_get(url: &str) -> String {
    let resp = reqwest::get(url).await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.text().await.unwrap()
}

#[tokio::test]
async fn legacy_subscription_shape_reads_the_same() {
    let fake = FakeStripe::start().await;
    fake.set_api_shape(ApiShape::Legacy);
    let sub = fake.create_subscription("cus_legacy", PRICE_BASIC, &[("user_id", "u7")]);
    assert!(sub.get("current_period_end").is_some());
    let got = client(&fake)
        .retrieve_subscription(sub["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(got.price_id.as_deref(), Some(PRICE_BASIC));
    assert_eq!(got.current_period_end, sub["current_period_end"].as_i64());
    assert_eq!(got.metadata.get("user_id").map(String::as_str), Some("u7"));
}

#[tokio::test]
async fn api_errors_carry_stripe_type_code_param_and_message() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let customer = stripe
        .create_customer("a@example.com", None, "u1", "customer-u1")
        .await
        .unwrap();

    let err = stripe
        .create_checkout_session(&checkout_params(&customer.id, "price_unknown"))
        .await
        .unwrap_err();
    match &err {
        StripeError::Api {
            status,
            kind,
            code,
            param,
            message,
            request_id,
        } => {
            assert_eq!(*status, 400);
            assert_eq!(kind, "invalid_request_error");
            assert_eq!(code.as_deref(), Some("resource_missing"));
            assert_eq!(param.as_deref(), Some("line_items[0][price]"));
            assert!(
                message.contains("No such price: 'price_unknown'"),
                "{message}"
            );
            assert!(request_id.as_deref().unwrap().starts_with("req_"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(err.to_string().contains("No such price"));

    let mut no_customer = checkout_params("cus_nobody", PRICE_BASIC);
    no_customer.idempotency_key = None;
    let err = stripe
        .create_checkout_session(&no_customer)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StripeError::Api { status: 400, param: Some(p), .. } if p == "customer"),
        "{err:?}"
    );

    let err = stripe
        .retrieve_subscription("sub_missing")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StripeError::Api { status: 404, code: Some(c), .. } if c == "resource_missing"),
        "{err:?}"
    );

    // An id that could escape the path is refused before anything is sent.
    let before = fake.requests().len();
    let err = stripe
        .retrieve_subscription("sub_1/../../v1/customers")
        .await
        .unwrap_err();
    assert!(matches!(err, StripeError::InvalidInput(_)), "{err:?}");
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn portal_session_returns_the_url() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let customer = stripe
        .create_customer("a@example.com", None, "u1", "customer-u1")
        .await
        .unwrap();
    let portal = stripe
        .create_portal_session(&customer.id, "https://app.example.com/billing")
        .await
        .unwrap();
    assert!(
        portal
            .url
            .starts_with(&format!("{}/portal/", fake.base_url())),
        "{}",
        portal.url
    );
    assert!(portal.id.unwrap().starts_with("bps_"));
    let r = &fake.requests_to("/v1/billing_portal/sessions")[0];
    assert_eq!(r.field("customer"), Some(customer.id.as_str()));
    assert_eq!(
        r.field("return_url"),
        Some("https://app.example.com/billing")
    );
    assert_eq!(fake.portal_sessions().len(), 1);
    assert!(reqwest_get(&portal.url).await.contains(&customer.id));
    let unknown = reqwest::get(format!("{}/checkout/cs_test_nope", fake.base_url()))
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let unrouted = reqwest::Client::new()
        .get(format!("{}/v1/charges", fake.base_url()))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(unrouted.status().as_u16(), 404);
    let body: serde_json::Value = unrouted.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let err = stripe
        .create_portal_session("cus_nobody", "https://app.example.com/billing")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_never_shows_the_key() {
    let fake = FakeStripe::start().await;
    let wrong = "sk_test_wrongKey0123456789abcdef";
    let stripe = StripeClient::new(config(&fake.base_url(), wrong)).unwrap();
    let err = stripe
        .create_customer("a@example.com", None, "u1", "customer-u1")
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert_eq!(err.status(), Some(401));
    for text in [err.to_string(), format!("{err:?}"), format!("{stripe:?}")] {
        assert!(!text.contains(wrong), "key leaked: {text}");
        assert!(!text.contains("wrongKey"), "key leaked: {text}");
    }
    assert_eq!(fake.customers().len(), 0);

    // Even when something echoes the whole key back, it is scrubbed.
    let mut c = config(&fake.base_url(), wrong);
    c.max_retries = 0;
    let stripe = StripeClient::new(c).unwrap();
    fake.fail_next_raw(502, "text/plain", format!("upstream rejected key {wrong}"));
    let err = stripe.retrieve_subscription("sub_1").await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(wrong), "key leaked: {text}");
    assert!(text.contains("[REDACTED]"), "{text}");
    fake.fail_next_raw(
        500,
        "application/json",
        format!(r#"{{"error":{{"type":"api_error","message":"bad key {wrong}"}}}}"#),
    );
    let err = stripe.retrieve_subscription("sub_1").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(wrong));
}

#[tokio::test]
async fn server_errors_are_retried_once_when_the_request_is_repeatable() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);

    // One 500, then success: the keyed POST is retried with the same key.
    fake.fail_next(1, 500);
    let customer = stripe
        .create_customer("a@example.com", None, "u1", "customer-u1")
        .await
        .unwrap();
    let reqs = fake.requests_to("/v1/customers");
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter()
            .all(|r| r.idempotency_key.as_deref() == Some("customer-u1"))
    );
    assert_eq!(fake.customers().len(), 1);

    // Two 500s: the retry fails too and the error says so.
    fake.fail_next(2, 500);
    let err = stripe.retrieve_subscription("sub_x").await.unwrap_err();
    match &err {
        StripeError::Api { status, kind, .. } => {
            assert_eq!(*status, 500);
            assert_eq!(kind, "api_error");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(fake.requests_to("/v1/subscriptions/sub_x").len(), 2);

    // Unkeyed POSTs are not repeated.
    fake.fail_next(1, 503);
    let err = stripe
        .create_portal_session(&customer.id, "https://app.example.com/billing")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(fake.requests_to("/v1/billing_portal/sessions").len(), 1);

    let mut unkeyed = checkout_params(&customer.id, PRICE_BASIC);
    unkeyed.idempotency_key = None;
    fake.fail_next(1, 500);
    assert!(stripe.create_checkout_session(&unkeyed).await.is_err());
    assert_eq!(fake.requests_to("/v1/checkout/sessions").len(), 1);
    assert_eq!(
        fake.requests_to("/v1/checkout/sessions")[0].idempotency_key,
        None
    );

    // A proxy's HTML error page is an invalid response, not a crash.
    let mut c = config(&fake.base_url(), SECRET_KEY);
    c.max_retries = 0;
    let no_retry = StripeClient::new(c).unwrap();
    fake.fail_next_raw(502, "text/html", "<html><body>Bad Gateway</body></html>");
    let err = no_retry.retrieve_subscription("sub_x").await.unwrap_err();
    assert!(
        matches!(&err, StripeError::InvalidResponse { status: 502, detail } if detail.contains("Bad Gateway")),
        "{err:?}"
    );
    assert!(err.is_transient());

    // A 200 that is not JSON.
    fake.fail_next_raw(200, "text/plain", "ok");
    let err = no_retry.retrieve_subscription("sub_x").await.unwrap_err();
    assert!(
        matches!(err, StripeError::InvalidResponse { status: 200, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn timeouts_and_unreachable_hosts() {
    let fake = FakeStripe::start().await;
    let mut c = config(&fake.base_url(), SECRET_KEY);
    c.timeout = Duration::from_millis(200);
    let stripe = StripeClient::new(c).unwrap();
    fake.set_delay(Duration::from_secs(3));
    let err = stripe.retrieve_subscription("sub_x").await.unwrap_err();
    assert_eq!(err, StripeError::Timeout);
    assert!(err.is_transient());
    fake.reset_faults();

    // A port nobody listens on: a network error, after one retry.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let stripe = StripeClient::new(config(&format!("http://{closed}"), SECRET_KEY)).unwrap();
    let err = stripe.retrieve_subscription("sub_x").await.unwrap_err();
    assert!(matches!(err, StripeError::Network(_)), "{err:?}");
    assert!(!err.to_string().contains(SECRET_KEY));
}

#[tokio::test]
async fn stripe_version_is_sent_when_configured() {
    let fake = FakeStripe::start().await;
    let sub = fake.create_subscription("cus_1", PRICE_BASIC, &[]);
    let mut c = config(&fake.base_url(), SECRET_KEY);
    c.stripe_version = Some("2025-03-31.basil".to_string());
    StripeClient::new(c)
        .unwrap()
        .retrieve_subscription(sub["id"].as_str().unwrap())
        .await
        .unwrap();
    client(&fake)
        .retrieve_subscription(sub["id"].as_str().unwrap())
        .await
        .unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs[0].stripe_version.as_deref(), Some("2025-03-31.basil"));
    assert_eq!(reqs[1].stripe_version, None);
}
