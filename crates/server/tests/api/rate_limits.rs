//! Rate limits of api.md with their default budgets: 429, `Retry-After` and the wait in the
//! envelope (GAP-AUTH-001 server side); IP from the socket unless proxies are trusted.

use crate::on_both_backends;
use crate::support::{Backend, TestApp};
use ironhand_server::config::RateLimitSettings;
use serde_json::json;

on_both_backends!(
    login_past_five_a_minute_from_one_ip_is_429_with_retry_after,
    register_past_three_a_minute_is_429,
    forwarded_for_counts_only_behind_trusted_proxies,
    verification_codes_have_a_cooldown_that_is_the_same_for_unknown_emails,
    guessing_the_current_password_is_limited_per_account,
    a_client_over_its_budget_cannot_spend_a_victims,
);

async fn a_client_over_its_budget_cannot_spend_a_victims(backend: Backend) {
    // Behind one trusted proxy, so the test can speak as two clients.
    let app = TestApp::start_with(backend, |s| {
        s.rate_limits = RateLimitSettings::default();
        s.server.trusted_proxies = 1;
    })
    .await;
    let as_client = |ip: &'static str, path: &'static str, body: serde_json::Value| {
        app.send(
            app.request(reqwest::Method::POST, path, None, Some(body))
                .header("x-forwarded-for", ip),
        )
    };
    let login = |ip: &'static str, email: &'static str| {
        as_client(
            ip,
            "/api/v1/auth/login",
            json!({"email": email, "password": "guess"}),
        )
    };
    // The attacker spends its own five logins on other accounts…
    for i in 0..5 {
        login(
            "6.6.6.6",
            ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io"][i],
        )
        .await
        .assert_error(401);
    }
    // …then hammers the victim: refused at its own budget, the victim's is untouched.
    for _ in 0..10 {
        login("6.6.6.6", "victim@example.com")
            .await
            .assert_error(429);
    }
    login("1.2.3.4", "victim@example.com")
        .await
        .assert_error(401);
    // The same for reset codes: an attacker over budget cannot start the victim's cooldown.
    let send = |ip: &'static str| {
        as_client(
            ip,
            "/api/v1/auth/send-verification-code",
            json!({"email": "victim@example.com"}),
        )
    };
    for email in ["p@x.io", "q@x.io", "r@x.io"] {
        as_client(
            "6.6.6.6",
            "/api/v1/auth/send-verification-code",
            json!({"email": email}),
        )
        .await
        .assert_ok();
    }
    send("6.6.6.6").await.assert_error(429);
    send("1.2.3.4").await.assert_ok();
    app.stop().await;
}

async fn guessing_the_current_password_is_limited_per_account(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.rate_limits = RateLimitSettings::default()).await;
    let t = app.signed_up("guess@example.com", "long enough pw").await;
    let body = json!({"old_password": "a wrong guess", "new_password": "new password 1"});
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/change-password",
            Some(&t.access),
            body.clone(),
        )
        .await
        .assert_error(400);
    }
    app.post("/api/v1/auth/change-password", Some(&t.access), body)
        .await
        .assert_error(429);
    app.stop().await;
}

async fn login_past_five_a_minute_from_one_ip_is_429_with_retry_after(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.rate_limits = RateLimitSettings::default()).await;
    for i in 0..5 {
        // Different emails: the per-IP budget is what runs out.
        app.login(&format!("someone{i}@example.com"), "whatever pw")
            .await
            .assert_error(401);
    }
    let limited = app.login("someone9@example.com", "whatever pw").await;
    limited.assert_error(429);
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "retry after {retry}");
    assert_eq!(limited.data()["retry_after"], json!(retry));
    assert!(
        limited.msg().contains(&format!("{retry} s")),
        "{}",
        limited.msg()
    );
    app.stop().await;
}

async fn register_past_three_a_minute_is_429(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.rate_limits = RateLimitSettings::default()).await;
    for i in 0..3 {
        app.register("Some One", &format!("r{i}@example.com"), "long enough pw")
            .await
            .assert_ok();
    }
    app.register("Some One", "r4@example.com", "long enough pw")
        .await
        .assert_error(429);
    app.stop().await;
}

async fn forwarded_for_counts_only_behind_trusted_proxies(backend: Backend) {
    // Not trusted: a spoofed X-Forwarded-For does not buy a fresh budget.
    let app = TestApp::start_with(backend, |s| s.rate_limits.login = "2/minute".into()).await;
    let login = |ip: &'static str, email: &'static str| {
        app.send(
            app.request(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": "x"})),
            )
            .header("x-forwarded-for", ip),
        )
    };
    login("1.1.1.1", "a@example.com").await.assert_error(401);
    login("2.2.2.2", "b@example.com").await.assert_error(401);
    login("3.3.3.3", "c@example.com").await.assert_error(429);
    app.stop().await;

    // One trusted proxy: each forwarded client has its own budget.
    let app = TestApp::start_with(backend, |s| {
        s.rate_limits.login = "2/minute".into();
        s.server.trusted_proxies = 1;
    })
    .await;
    let login = |ip: &'static str, email: &'static str| {
        app.send(
            app.request(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": "x"})),
            )
            .header("x-forwarded-for", ip),
        )
    };
    login("1.1.1.1", "a@example.com").await.assert_error(401);
    login("1.1.1.1", "b@example.com").await.assert_error(401);
    login("1.1.1.1", "c@example.com").await.assert_error(429);
    login("2.2.2.2", "d@example.com").await.assert_error(401);
    // The per-email budget holds whatever the address.
    login("3.3.3.3", "a@example.com").await.assert_error(401);
    login("4.4.4.4", "a@example.com").await.assert_error(429);
    app.stop().await;
}

async fn verification_codes_have_a_cooldown_that_is_the_same_for_unknown_emails(backend: Backend) {
    // Default cooldown; an hourly budget large enough that only the cooldown answers here.
    let app = TestApp::start_with(backend, |s| {
        s.rate_limits = RateLimitSettings {
            send_verification_code: "10/hour".into(),
            ..RateLimitSettings::default()
        }
    })
    .await;
    app.signed_up("cool@example.com", "long enough pw").await;
    for email in ["cool@example.com", "nobody@example.com"] {
        app.post(
            "/api/v1/auth/send-verification-code",
            None,
            json!({"email": email}),
        )
        .await
        .assert_ok();
        let again = app
            .post(
                "/api/v1/auth/send-verification-code",
                None,
                json!({"email": email}),
            )
            .await;
        again.assert_error(429);
        let wait: u64 = again
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("secs");
        assert!((1..=60).contains(&wait));
    }
    app.stop().await;
}
