//! Billing through the API: plans, the metered run limit (402) and the concurrency cap
//! (429), the trial, and Stripe end to end against a fake Stripe API, with webhooks signed
//! the way Stripe's libraries sign them and the subscription stream watching.

use crate::sse::SseStream;
use crate::support::{Backend, Reply, TestApp, Tokens};
use ironhand_core::billing::default_plans;
use ironhand_fakes::stripe::{FakeStripe, PRICE_BASIC, PRICE_PRO, SECRET_KEY, WEBHOOK_SECRET};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

/// Free plan limited to `limit` runs, enforced, with `concurrent` runs at once.
fn limited(s: &mut ironhand_server::Settings, limit: i64, concurrent: i64) {
    s.billing.enforce_limits = true;
    for plan in &mut s.billing.plans {
        if plan.id == "free" {
            plan.monthly_agent_runs_limit = limit;
            plan.max_concurrent_runs = concurrent;
        }
    }
}

async fn start_task(app: &TestApp, token: &str) -> Result<(), Reply> {
    let session = app.new_session(token).await;
    app.chat(token, &session, json!({"message": "count me"}))
        .await
        .map(|_| ())
}

async fn subscription(app: &TestApp, token: &str) -> Value {
    let r = app.get("/api/v1/billing/subscription", Some(token)).await;
    r.assert_ok();
    r.data().clone()
}

async fn plans_free_subscription_and_payments_off(backend: Backend) {
    let app = TestApp::start(backend).await;
    let plans = app.get("/api/v1/billing/plans", None).await;
    plans.assert_ok();
    let ids: Vec<&str> = plans
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["free", "basic", "pro", "enterprise"]);
    let basic = &plans.data()[1];
    assert_eq!(
        (
            basic["price_cents"].as_i64(),
            basic["monthly_agent_runs_limit"].as_i64()
        ),
        (Some(1900), Some(1000))
    );
    assert_eq!(plans.data()[3]["monthly_agent_runs_limit"], -1);
    assert_eq!(basic["purchasable"], false, "no Stripe here");

    let u = app.signed_up("free@example.com", "correct horse").await;
    let sub = subscription(&app, &u.access).await;
    assert_eq!(
        (sub["plan"].as_str(), sub["status"].as_str()),
        (Some("free"), Some("active"))
    );
    assert_eq!(
        (
            sub["monthly_agent_runs"].as_i64(),
            sub["monthly_agent_runs_limit"].as_i64()
        ),
        (Some(0), Some(10))
    );
    assert_eq!(sub["has_billing_account"], false);
    assert_eq!(
        (
            sub["trial_used"].as_bool(),
            sub["limits_enforced"].as_bool()
        ),
        (Some(false), Some(false))
    );
    assert_eq!(sub["user_id"], u.user_id.as_str());
    app.get("/api/v1/billing/subscription", None)
        .await
        .assert_error(401);

    // Payments off: checkout, portal and the webhook say so; the rest works.
    let r = app
        .post(
            "/api/v1/billing/create-checkout-session",
            Some(&u.access),
            json!({"plan": "basic"}),
        )
        .await;
    r.assert_error(503);
    assert!(r.msg().contains("not configured"), "{}", r.msg());
    app.post(
        "/api/v1/billing/create-portal-session",
        Some(&u.access),
        json!({}),
    )
    .await
    .assert_error(503);
    app.post("/api/v1/billing/webhook", None, json!({"id": "evt_1"}))
        .await
        .assert_error(503);
    // Not enforced: usage is still counted and shown.
    for _ in 0..2 {
        start_task(&app, &u.access).await.expect("starts");
    }
    assert_eq!(subscription(&app, &u.access).await["monthly_agent_runs"], 2);
}

async fn the_run_limit_refuses_the_next_run_with_402(backend: Backend) {
    let app = TestApp::start_with(backend, |s| limited(s, 3, 50)).await;
    let u = app.signed_up("limit@example.com", "correct horse").await;
    for _ in 0..2 {
        start_task(&app, &u.access).await.expect("within the limit");
    }
    // The last run, sent with an id, and retried after a lost connection: the retry
    // attaches to the run it started instead of being refused.
    let last = app.new_session(&u.access).await;
    let body = json!({"message": "the last one", "client_message_id": "last-1"});
    app.chat(&u.access, &last, body.clone())
        .await
        .expect("the third run");
    app.chat(&u.access, &last, body)
        .await
        .expect("a retry attaches");
    assert_eq!(subscription(&app, &u.access).await["monthly_agent_runs"], 3);
    // A message refused at the limit leaves its attachment untouched.
    let file = app.upload(&u.access, "notes.txt", b"notes").await;
    let file_id = file.data()["file_id"].as_str().expect("id").to_string();
    let refused_session = app.new_session(&u.access).await;
    app.chat(
        &u.access,
        &refused_session,
        json!({"message": "with a file", "attachments": [{"file_id": file_id}]}),
    )
    .await
    .err()
    .expect("402")
    .assert_error(402);
    let info = app
        .get(&format!("/api/v1/files/{file_id}/info"), Some(&u.access))
        .await;
    assert!(
        info.data()["metadata"]["session_id"].is_null(),
        "{}",
        info.body
    );
    let refused = start_task(&app, &u.access)
        .await
        .expect_err("the fourth is refused");
    refused.assert_error(402);
    let d = refused.data();
    assert_eq!(
        (d["reason"].as_str(), d["plan"].as_str()),
        (Some("run_limit_reached"), Some("free"))
    );
    assert_eq!(
        (d["used"].as_i64(), d["limit"].as_i64()),
        (Some(3), Some(3))
    );
    assert!(
        d["resets_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{d}"
    );
    assert!(refused.msg().contains("3 runs"), "{}", refused.msg());
    // Attaching to a session's stream is not a run and still works.
    let session = app.new_session(&u.access).await;
    app.chat(&u.access, &session, json!({}))
        .await
        .expect("attach without a message");
    assert_eq!(subscription(&app, &u.access).await["monthly_agent_runs"], 3);
}

async fn concurrent_starts_at_the_last_run_start_exactly_one(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        limited(s, 5, 50);
        s.server.max_streams_per_user = 100;
    })
    .await;
    let u = app.signed_up("race@example.com", "correct horse").await;
    for _ in 0..4 {
        start_task(&app, &u.access).await.expect("within the limit");
    }
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(app.new_session(&u.access).await);
    }
    let mut tasks = Vec::new();
    for session in sessions {
        let client = app.client.clone();
        let url = app.url(&format!("/api/v1/sessions/{session}/chat"));
        let token = u.access.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"message": "race"}))
                .send()
                .await
                .expect("send")
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("join").as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 402).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(subscription(&app, &u.access).await["monthly_agent_runs"], 5);
}

async fn runs_in_progress_are_capped_by_the_plan(backend: Backend) {
    // No worker here: started runs stay queued, so they are all "in progress".
    let app = TestApp::start_with(backend, |s| {
        limited(s, 100, 2);
        s.agent.embedded_worker = false;
    })
    .await;
    let u = app.signed_up("cap@example.com", "correct horse").await;
    start_task(&app, &u.access).await.expect("first");
    start_task(&app, &u.access).await.expect("second");
    let r = start_task(&app, &u.access)
        .await
        .expect_err("third at once");
    r.assert_error(429);
    assert!(r.msg().contains("2 task"), "{}", r.msg());
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        subscription(&app, &u.access).await["monthly_agent_runs"],
        2,
        "the refused one is not counted"
    );
}

async fn the_trial_is_given_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let u = app.signed_up("trial@example.com", "correct horse").await;
    let r = app
        .post("/api/v1/billing/activate-trial", Some(&u.access), json!({}))
        .await;
    r.assert_ok();
    let t = r.data();
    assert_eq!(
        (
            t["plan"].as_str(),
            t["status"].as_str(),
            t["is_trial"].as_bool()
        ),
        (Some("basic"), Some("trialing"), Some(true))
    );
    assert_eq!(
        (
            t["monthly_agent_runs_limit"].as_i64(),
            t["trial_used"].as_bool()
        ),
        (Some(50), Some(true))
    );
    let end = time::OffsetDateTime::parse(
        t["trial_end"].as_str().expect("trial_end"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("iso");
    let days = (end - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((13 * 24..=14 * 24).contains(&days), "{days} h");
    let again = app
        .post("/api/v1/billing/activate-trial", Some(&u.access), json!({}))
        .await;
    again.assert_error(400);
    assert!(again.msg().contains("already"), "{}", again.msg());
}

async fn stripe_app(backend: Backend, fake: &FakeStripe) -> TestApp {
    let base = fake.base_url();
    TestApp::start_with(backend, move |s| {
        s.stripe.secret_key = Some(SecretString::from(SECRET_KEY.to_string()));
        // Rotation: the old secret first, the current one second.
        s.stripe.webhook_secret = Some(SecretString::from(format!(
            "whsec_oldRotatedSecret42, {WEBHOOK_SECRET}"
        )));
        s.stripe.api_base = base;
        s.stripe.price_basic = Some(PRICE_BASIC.into());
        s.stripe.price_pro = Some(PRICE_PRO.into());
        s.billing.plans = default_plans();
    })
    .await
}

async fn deliver(app: &TestApp, body: &str, signature: &str) -> Reply {
    app.send(
        app.client
            .post(app.url("/api/v1/billing/webhook"))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

async fn signed_delivery(app: &TestApp, event: &Value) -> Reply {
    let body = event.to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    deliver(
        app,
        &body,
        &FakeStripe::sign_webhook(&body, WEBHOOK_SECRET, now),
    )
    .await
}

async fn open_stream(app: &TestApp, token: &str) -> SseStream {
    let res = app
        .client
        .get(app.url("/api/v1/billing/subscription/stream"))
        .bearer_auth(token)
        .send()
        .await
        .expect("stream");
    assert_eq!(res.status(), StatusCode::OK);
    SseStream::new(res)
}

/// The next `subscription` event whose `field` is `value`, within a few seconds.
async fn stream_sees(stream: &mut SseStream, field: &str, value: Value) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = stream
            .next_within(left)
            .await
            .unwrap_or_else(|| panic!("no subscription event with {field} = {value}"));
        if event.event == "subscription" && event.data[field] == value {
            return event.data;
        }
    }
}

async fn checkout_webhooks_and_the_live_subscription(backend: Backend) {
    let fake = FakeStripe::start().await;
    let app = stripe_app(backend, &fake).await;
    let u: Tokens = app.signed_up("payer@example.com", "correct horse").await;
    let plans = app.get("/api/v1/billing/plans", None).await;
    assert_eq!(plans.data()[1]["purchasable"], true);

    // Redirects stay on our origin; only basic and pro are sold.
    for body in [
        json!({"plan": "basic", "success_url": "https://evil.example/after"}),
        json!({"plan": "basic", "cancel_url": "http://localhost:8000.evil.example/x"}),
        json!({"plan": "enterprise"}),
        json!({"plan": "free"}),
        json!({}),
    ] {
        app.post(
            "/api/v1/billing/create-checkout-session",
            Some(&u.access),
            body,
        )
        .await
        .assert_error(422);
    }
    app.post(
        "/api/v1/billing/create-portal-session",
        Some(&u.access),
        json!({}),
    )
    .await
    .assert_error(400);

    let r = app
        .post(
            "/api/v1/billing/create-checkout-session",
            Some(&u.access),
            json!({"plan": "basic"}),
        )
        .await;
    r.assert_ok();
    let session_id = r.data()["checkout_session_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(
        r.data()["checkout_url"]
            .as_str()
            .is_some_and(|u| u.contains(&session_id))
    );
    let sent = fake.requests_to("/v1/checkout/sessions");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].field("mode"), Some("subscription"));
    assert_eq!(sent[0].field("line_items[0][price]"), Some(PRICE_BASIC));
    assert_eq!(
        sent[0].field("client_reference_id"),
        Some(u.user_id.as_str())
    );
    assert!(
        sent[0]
            .field("success_url")
            .is_some_and(|s| s.starts_with("http://localhost:8000/billing?checkout=success"))
    );
    let customers = fake.requests_to("/v1/customers");
    assert_eq!(customers.len(), 1, "customer created on demand");
    assert_eq!(customers[0].field("email"), Some("payer@example.com"));
    // A second checkout reuses the customer.
    app.post(
        "/api/v1/billing/create-checkout-session",
        Some(&u.access),
        json!({"plan": "pro"}),
    )
    .await
    .assert_ok();
    assert_eq!(fake.customers().len(), 1);

    let mut stream = open_stream(&app, &u.access).await;
    let first = stream_sees(&mut stream, "plan", json!("free")).await;
    assert_eq!(first["has_billing_account"], true);

    // Payment done at Stripe: the webhook moves the plan, and the open stream sees it.
    let (event, stripe_sub) = fake.complete_checkout(&session_id).expect("completes");
    signed_delivery(&app, &event).await.assert_ok();
    let now_basic = stream_sees(&mut stream, "plan", json!("basic")).await;
    assert_eq!(
        (
            now_basic["status"].as_str(),
            now_basic["monthly_agent_runs_limit"].as_i64()
        ),
        (Some("active"), Some(1000))
    );
    let sub_id = stripe_sub["id"].as_str().expect("sub id").to_string();

    // Refused deliveries change nothing: tampered body, wrong secret, stale, missing header.
    let upgrade = fake
        .change_price(&sub_id, PRICE_PRO)
        .expect("updated event");
    let body = upgrade.to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let tampered = body.replace(PRICE_PRO, PRICE_BASIC);
    deliver(
        &app,
        &tampered,
        &FakeStripe::sign_webhook(&body, WEBHOOK_SECRET, now),
    )
    .await
    .assert_error(400);
    deliver(
        &app,
        &body,
        &FakeStripe::sign_webhook(&body, "whsec_wrong", now),
    )
    .await
    .assert_error(400);
    deliver(
        &app,
        &body,
        &FakeStripe::sign_webhook(&body, WEBHOOK_SECRET, now - 301),
    )
    .await
    .assert_error(400);
    deliver(&app, &body, "").await.assert_error(400);
    assert_eq!(subscription(&app, &u.access).await["plan"], "basic");
    // The rotated-out secret is still accepted.
    deliver(
        &app,
        &body,
        &FakeStripe::sign_webhook(&body, "whsec_oldRotatedSecret42", now),
    )
    .await
    .assert_ok();
    stream_sees(&mut stream, "plan", json!("pro")).await;

    // Usage, then a renewal delivered 50 times at once: the period resets exactly once.
    start_task(&app, &u.access).await.expect("a run");
    start_task(&app, &u.access).await.expect("a run");
    stream_sees(&mut stream, "monthly_agent_runs", json!(2)).await;
    fake.renew_subscription(&sub_id).expect("renewed");
    let paid = fake.invoice_paid_event(&sub_id).expect("invoice");
    let body = paid.to_string();
    let header = FakeStripe::sign_webhook(&body, WEBHOOK_SECRET, now);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url, body, header) = (
            app.client.clone(),
            app.url("/api/v1/billing/webhook"),
            body.clone(),
            header.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("stripe-signature", header)
                .body(body)
                .send()
                .await
                .expect("send")
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), StatusCode::OK);
    }
    stream_sees(&mut stream, "monthly_agent_runs", json!(0)).await;
    start_task(&app, &u.access)
        .await
        .expect("a run in the new period");
    signed_delivery(&app, &paid).await.assert_ok();
    assert_eq!(
        subscription(&app, &u.access).await["monthly_agent_runs"],
        1,
        "a replay has no second effect"
    );

    // A failed payment makes the subscription past due: enforced, new runs are refused.
    let failed = fake.invoice_payment_failed_event(&sub_id).expect("failed");
    fake.set_subscription_status(&sub_id, "past_due");
    signed_delivery(&app, &failed).await.assert_ok();
    stream_sees(&mut stream, "status", json!("past_due")).await;
    let refused = start_task(&app, &u.access).await.expect_err("past due");
    refused.assert_error(402);
    assert_eq!(refused.data()["reason"], "subscription_inactive");

    // The portal, then cancellation: back to free.
    let portal = app
        .post(
            "/api/v1/billing/create-portal-session",
            Some(&u.access),
            json!({"return_url": "http://localhost:8000/settings"}),
        )
        .await;
    portal.assert_ok();
    assert!(portal.data()["portal_url"].as_str().is_some());
    app.post(
        "/api/v1/billing/create-portal-session?return_url=https://evil.example",
        Some(&u.access),
        json!({}),
    )
    .await
    .assert_error(422);
    let deleted = fake.delete_subscription(&sub_id).expect("deleted");
    signed_delivery(&app, &deleted).await.assert_ok();
    let free = stream_sees(&mut stream, "plan", json!("free")).await;
    assert_eq!(
        (
            free["status"].as_str(),
            free["monthly_agent_runs_limit"].as_i64()
        ),
        (Some("active"), Some(10))
    );
    // Unknown event types are acknowledged.
    let other = fake.event(
        "customer.created",
        json!({"id": "cus_x", "object": "customer"}),
        None,
    );
    let r = signed_delivery(&app, &other).await;
    r.assert_ok();
    assert_eq!(r.data()["received"], true);
    // Not JSON, though signed: 400.
    deliver(
        &app,
        "not json",
        &FakeStripe::sign_webhook("not json", WEBHOOK_SECRET, now),
    )
    .await
    .assert_error(400);
}

/// A payment that never completes: `incomplete` changes nothing, `incomplete_expired` (terminal)
/// leaves the user on free and able to run, and a late failure event cannot override the
/// state Stripe reports.
async fn an_unpaid_checkout_never_locks_the_user_out(backend: Backend) {
    let fake = FakeStripe::start().await;
    let app = stripe_app(backend, &fake).await;
    let u = app.signed_up("unpaid@example.com", "correct horse").await;
    let r = app
        .post(
            "/api/v1/billing/create-checkout-session",
            Some(&u.access),
            json!({"plan": "pro"}),
        )
        .await;
    let session_id = r.data()["checkout_session_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, sub) = fake.complete_checkout(&session_id).expect("completes");
    let sub_id = sub["id"].as_str().expect("id").to_string();
    let pending = fake
        .set_subscription_status(&sub_id, "incomplete")
        .expect("event");
    signed_delivery(&app, &pending).await.assert_ok();
    let now = subscription(&app, &u.access).await;
    assert_eq!(
        (now["plan"].as_str(), now["status"].as_str()),
        (Some("free"), Some("active")),
        "{now}"
    );
    let expired = fake
        .set_subscription_status(&sub_id, "incomplete_expired")
        .expect("event");
    signed_delivery(&app, &expired).await.assert_ok();
    let now = subscription(&app, &u.access).await;
    assert_eq!(
        (now["plan"].as_str(), now["status"].as_str()),
        (Some("free"), Some("active")),
        "{now}"
    );
    start_task(&app, &u.access)
        .await
        .expect("free runs still work");

    // Paid and active, then a stale failure event arrives: Stripe says active, so active.
    let r = app
        .post(
            "/api/v1/billing/create-checkout-session",
            Some(&u.access),
            json!({"plan": "basic"}),
        )
        .await;
    let session_id = r.data()["checkout_session_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (event, sub) = fake.complete_checkout(&session_id).expect("completes");
    signed_delivery(&app, &event).await.assert_ok();
    let sub_id = sub["id"].as_str().expect("id").to_string();
    let late = fake.invoice_payment_failed_event(&sub_id).expect("failed");
    signed_delivery(&app, &late).await.assert_ok();
    let now = subscription(&app, &u.access).await;
    assert_eq!(
        (now["plan"].as_str(), now["status"].as_str()),
        (Some("basic"), Some("active")),
        "{now}"
    );
}

/// Reading the subscription brings it up to date: an ended period starts a new one from
/// the signup anniversary with the count at 0, a changed plan limit applies, and an ended
/// trial goes back to free.
async fn periods_roll_over_and_trials_end_when_read(backend: Backend) {
    use ironhand_core::billing::SubscriptionUpdate;
    let app = TestApp::start(backend).await;
    let u = app.signed_up("periods@example.com", "correct horse").await;
    let user = ironhand_core::UserId::parse(&u.user_id).expect("user id");
    let now = time::OffsetDateTime::now_utc();
    let store = &app.state.store;
    // A run counted, then the period's end moved into the past (same start: no reset).
    start_task(&app, &u.access).await.expect("a run");
    let before = store
        .subscription_for_user(user)
        .await
        .expect("q")
        .expect("row");
    let ended_period = SubscriptionUpdate {
        period: Some((before.current_period_start, now - time::Duration::days(10))),
        ..Default::default()
    };
    let stale = store
        .update_subscription(user, None, &ended_period, now)
        .await
        .expect("update")
        .expect("row");
    assert_eq!(stale.monthly_agent_runs, 1);
    let sub = subscription(&app, &u.access).await;
    assert_eq!(sub["monthly_agent_runs"], 0, "{sub}");
    let end = time::OffsetDateTime::parse(
        sub["current_period_end"].as_str().expect("end"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("iso");
    assert!(end > now, "{sub}");
    // A limit that no longer matches the plan follows the plan.
    let odd = SubscriptionUpdate {
        monthly_agent_runs_limit: Some(99),
        ..Default::default()
    };
    store
        .update_subscription(user, None, &odd, now)
        .await
        .expect("update");
    assert_eq!(
        subscription(&app, &u.access).await["monthly_agent_runs_limit"],
        10
    );
    // A trial whose end has passed goes back to free, still used.
    app.post("/api/v1/billing/activate-trial", Some(&u.access), json!({}))
        .await
        .assert_ok();
    let ended = SubscriptionUpdate {
        trial_end: Some(Some(now - time::Duration::hours(1))),
        ..Default::default()
    };
    store
        .update_subscription(user, None, &ended, now)
        .await
        .expect("update");
    let sub = subscription(&app, &u.access).await;
    assert_eq!(
        (
            sub["plan"].as_str(),
            sub["status"].as_str(),
            sub["is_trial"].as_bool()
        ),
        (Some("free"), Some("active"), Some(false)),
        "{sub}"
    );
    assert_eq!(
        (
            sub["monthly_agent_runs_limit"].as_i64(),
            sub["trial_used"].as_bool()
        ),
        (Some(10), Some(true))
    );
}

/// Stripe delivers an event again and again (retries, a burst): the event id is checked
/// before Stripe is asked anything, so twenty deliveries cost one read and change things once.
async fn twenty_deliveries_of_one_event_read_stripe_once_and_apply_once(backend: Backend) {
    let fake = FakeStripe::start().await;
    let app = stripe_app(backend, &fake).await;
    let u: Tokens = app.signed_up("repeat@example.com", "correct horse").await;
    let r = app
        .post(
            "/api/v1/billing/create-checkout-session",
            Some(&u.access),
            json!({"plan": "basic"}),
        )
        .await;
    r.assert_ok();
    let checkout = r.data()["checkout_session_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (event, stripe_sub) = fake.complete_checkout(&checkout).expect("completes");
    signed_delivery(&app, &event).await.assert_ok();
    let sub_id = stripe_sub["id"].as_str().expect("sub id").to_string();
    let reads = || {
        fake.requests_to(&format!("/v1/subscriptions/{sub_id}"))
            .len()
    };
    start_task(&app, &u.access).await.expect("a run");
    assert_eq!(subscription(&app, &u.access).await["monthly_agent_runs"], 1);

    // A renewal, delivered twenty times at once.
    fake.renew_subscription(&sub_id).expect("renewed");
    let paid = fake.invoice_paid_event(&sub_id).expect("invoice");
    let before = reads();
    let body = paid.to_string();
    let header = FakeStripe::sign_webhook(
        &body,
        WEBHOOK_SECRET,
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    let deliveries = (0..20).map(|_| {
        let request = app
            .client
            .post(app.url("/api/v1/billing/webhook"))
            .header("stripe-signature", header.clone())
            .header("content-type", "application/json")
            .body(body.clone());
        tokio::spawn(async move { request.send().await.expect("send").status() })
    });
    for delivery in deliveries.collect::<Vec<_>>() {
        assert_eq!(delivery.await.expect("join"), StatusCode::OK);
    }
    assert_eq!(
        reads() - before,
        1,
        "one read of the subscription for 20 deliveries"
    );
    assert_eq!(
        subscription(&app, &u.access).await["monthly_agent_runs"],
        0,
        "the new period started"
    );
    // Applied once: a run in the new period stays counted through one more delivery.
    start_task(&app, &u.access).await.expect("a run");
    signed_delivery(&app, &paid).await.assert_ok();
    assert_eq!(subscription(&app, &u.access).await["monthly_agent_runs"], 1);
    assert_eq!(reads() - before, 1, "a later repeat reads nothing either");
}

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    twenty_deliveries_of_one_event_read_stripe_once_and_apply_once,
    periods_roll_over_and_trials_end_when_read,
    an_unpaid_checkout_never_locks_the_user_out,
    plans_free_subscription_and_payments_off,
    the_run_limit_refuses_the_next_run_with_402,
    concurrent_starts_at_the_last_run_start_exactly_one,
    runs_in_progress_are_capped_by_the_plan,
    the_trial_is_given_once,
    checkout_webhooks_and_the_live_subscription,
);
