//! Rate limits of docs/api.md with their default budgets: 429, `Retry-After` and the wait in the
//! envelope (GAP-AUTH-001 server side); IP from the socket unless proxies are trusted.

use crate::support::{Backend, TestApp};
use ironhand_server::config::RateLimitSettings;
use serde_json::json;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    logins_from_one_ip_past_its_budget_are_429_with_retry_after,
    strangers_guessing_a_password_cannot_lock_its_owner_out,
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
    // The attacker spends its own budget for the victim's account (five guesses a minute)…
    for _ in 0..5 {
        login("6.6.6.6", "victim@example.com")
            .await
            .assert_error(401);
    }
    // …then hammers it: refused at its own budget, which spends nothing of the account's.
    for _ in 0..30 {
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

async fn logins_from_one_ip_past_its_budget_are_429_with_retry_after(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.rate_limits = RateLimitSettings::default()).await;
    for i in 0..20 {
        // Different emails: the per-IP budget (20 a minute) is what runs out.
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
    let app = TestApp::start_with(backend, |s| s.rate_limits.login_ip = "2/minute".into()).await;
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
        s.rate_limits.login_ip = "2/minute".into();
        s.rate_limits.login_email = "3/minute".into();
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
    // The account's ceiling holds whatever the address.
    login("3.3.3.3", "a@example.com").await.assert_error(401);
    login("4.4.4.4", "a@example.com").await.assert_error(401);
    login("5.5.5.5", "a@example.com").await.assert_error(429);
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

/// The `name` cookie set by `r`: (value, the whole Set-Cookie line).
fn set_cookie(r: &crate::support::Reply, name_prefix: &str) -> Option<(String, String, String)> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(name_prefix))
        .and_then(|c| {
            let (name, value) = c.split(';').next()?.split_once('=')?;
            Some((name.to_string(), value.to_string(), c.to_string()))
        })
}

async fn strangers_guessing_a_password_cannot_lock_its_owner_out(backend: Backend) {
    // Default budgets, except a slow refill of the account's ceiling so the story does not
    // depend on timing; behind one trusted proxy, so the test can speak as many clients.
    let app = TestApp::start_with(backend, |s| {
        s.rate_limits = RateLimitSettings {
            login_email: "20/hour".into(),
            ..RateLimitSettings::default()
        };
        s.server.trusted_proxies = 1;
    })
    .await;
    const PW: &str = "the owner's password";
    let signup = app.register("Owner", "owner@example.com", PW).await;
    signup.assert_ok();
    let login = |ip: String, password: &'static str, cookie: Option<String>| {
        let mut req = app
            .request(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": "owner@example.com", "password": password})),
            )
            .header("x-forwarded-for", ip);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        app.send(req)
    };

    // One stranger guessing from one address is stopped at its own budget…
    let mut answers = Vec::new();
    for _ in 0..30 {
        answers.push(
            login("6.6.6.6".into(), "a guess", None)
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(answers[..5], [401; 5]);
    assert!(answers[5..].iter().all(|s| *s == 429), "{answers:?}");
    // …and the owner signs in from a new device as usual.
    let fresh = login("1.2.3.4".into(), PW, None).await;
    fresh.assert_ok();
    // Signing up (and each sign-in) made that client a known device of the account.
    let (name, device, attrs) = set_cookie(&signup, "ironhand_device_").expect("a device cookie");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/api/v1/auth/login",
    ] {
        assert!(attrs.contains(attr), "{attr} in {attrs}");
    }
    let (_, renewed, _) = set_cookie(&fresh, &name).expect("a device cookie for the new device");

    // Many strangers together spend the account's ceiling: new devices must wait…
    for i in 10..20 {
        for _ in 0..5 {
            let status = login(format!("6.6.6.{i}"), "a guess", None).await.status;
            assert!(matches!(status.as_u16(), 401 | 429), "{status}");
        }
    }
    login("9.9.9.9".into(), PW, None).await.assert_error(429);
    // …the owner's known devices do not, from anywhere.
    let cookie = |value: &str| Some(format!("{name}={value}"));
    login("1.2.3.4".into(), PW, cookie(&device))
        .await
        .assert_ok();
    let again = login("8.8.8.8".into(), PW, cookie(&renewed)).await;
    again.assert_ok();
    let (_, unused, _) = set_cookie(&again, &name).expect("a new device cookie");
    // A device cookie of another account, or a forged one, is no known device.
    let other = app.register("Other", "other@example.com", PW).await;
    let (_, foreign, _) = set_cookie(&other, "ironhand_device_").expect("a device cookie");
    login("9.9.9.9".into(), PW, cookie(&foreign))
        .await
        .assert_error(429);
    login("9.9.9.9".into(), PW, cookie(&format!("{device}0")))
        .await
        .assert_error(429);
    // A stolen device cookie buys only that device's own budget.
    let mut answers = Vec::new();
    for _ in 0..8 {
        let r = login("7.7.7.7".into(), "a guess", cookie(&unused)).await;
        answers.push(r.status.as_u16());
    }
    assert_eq!(answers[..5], [401; 5]);
    assert!(answers[5..].iter().all(|s| *s == 429), "{answers:?}");
    app.stop().await;
}
