//! GAP-AUTH-003: reset codes mailed through a real SMTP listener, hashed, expiring, single
//! use, burned after five wrong tries; a reset kills every old token.

use crate::support::{Backend, TestApp, Tokens};
use ironhand_fakes::smtp::{FakeSmtp, ReceivedMail, Security};
use secrecy::SecretString;
use serde_json::json;
use std::time::Duration;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    reset_by_mailed_code_kills_old_tokens_and_the_code_works_once,
    five_wrong_codes_burn_the_code,
    an_expired_code_is_refused,
    unknown_emails_get_the_same_answer_and_no_mail,
);

const PW: &str = "original password";

async fn app_with_smtp(
    backend: Backend,
    tweak: impl FnOnce(&mut ironhand_server::Settings),
) -> (TestApp, FakeSmtp) {
    let smtp = FakeSmtp::start().await.expect("fake smtp");
    let url = smtp.url();
    let app = TestApp::start_with(backend, |s| {
        s.mail.smtp_url = Some(SecretString::from(url));
        s.mail.from = "Ironhand <no-reply@ironhand.test>".into();
        tweak(s);
    })
    .await;
    (app, smtp)
}

fn code_in(mail: &ReceivedMail) -> String {
    let text = &mail.data;
    let at = text.find("code is ").expect("the mail states the code") + "code is ".len();
    let code: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 6, "a 6-digit code in: {text}");
    code
}

async fn request_code(app: &TestApp, smtp: &FakeSmtp, email: &str, seen: usize) -> String {
    app.post(
        "/api/v1/auth/send-verification-code",
        None,
        json!({"email": email}),
    )
    .await
    .assert_ok();
    let mail = smtp
        .inbox
        .wait_for(email, seen, Duration::from_secs(10))
        .await
        .expect("the reset mail arrives");
    assert_eq!(mail.from, "no-reply@ironhand.test");
    assert!(
        mail.data
            .contains("Subject: Your Ironhand password reset code"),
        "{}",
        mail.data
    );
    code_in(&mail)
}

fn reset(email: &str, code: &str, password: &str) -> serde_json::Value {
    json!({"email": email, "verification_code": code, "new_password": password})
}

fn wrong(code: &str) -> String {
    format!(
        "{:06}",
        (code.parse::<u32>().expect("digits") + 1) % 1_000_000
    )
}

async fn reset_by_mailed_code_kills_old_tokens_and_the_code_works_once(backend: Backend) {
    let (app, smtp) = app_with_smtp(backend, |_| {}).await;
    let old = app.signed_up("rita@example.com", PW).await;
    let refreshed = app.refreshed(&old.refresh).await;
    let code = request_code(&app, &smtp, "rita@example.com", 0).await;

    app.post(
        "/api/v1/auth/reset-password",
        None,
        reset("rita@example.com", &code, "brand new password"),
    )
    .await
    .assert_ok();
    // Every token from before the reset is dead, those issued before a refresh too.
    for t in [&old, &refreshed] {
        app.get("/api/v1/auth/me", Some(&t.access))
            .await
            .assert_error(401);
        app.refresh(&t.refresh).await.assert_error(401);
    }
    // The code worked once.
    app.post(
        "/api/v1/auth/reset-password",
        None,
        reset("rita@example.com", &code, "yet another password"),
    )
    .await
    .assert_error(400);
    app.login("rita@example.com", PW).await.assert_error(401);
    let fresh = Tokens::from(&app.login("rita@example.com", "brand new password").await);
    app.get("/api/v1/auth/me", Some(&fresh.access))
        .await
        .assert_ok();

    // Validation is enveloped and names the field.
    let bad = app
        .post(
            "/api/v1/auth/reset-password",
            None,
            reset("rita@example.com", "12ab", "brand new password"),
        )
        .await;
    bad.assert_error(422);
    assert_eq!(bad.data()[0]["field"], "verification_code");
    app.stop().await;
}

async fn five_wrong_codes_burn_the_code(backend: Backend) {
    let (app, smtp) = app_with_smtp(backend, |_| {}).await;
    app.signed_up("bert@example.com", PW).await;
    let code = request_code(&app, &smtp, "bert@example.com", 0).await;
    let bad = wrong(&code);
    let unknown = app
        .post(
            "/api/v1/auth/reset-password",
            None,
            reset("nobody@example.com", &bad, "new password 1"),
        )
        .await;
    for _ in 1..=5 {
        let r = app
            .post(
                "/api/v1/auth/reset-password",
                None,
                reset("bert@example.com", &bad, "new password 1"),
            )
            .await;
        r.assert_error(400);
        // The same answer as for an account that does not exist: nothing to enumerate.
        assert_eq!(r.body, unknown.body);
    }
    // The right code is now refused too, and the password is unchanged.
    app.post(
        "/api/v1/auth/reset-password",
        None,
        reset("bert@example.com", &code, "new password 1"),
    )
    .await
    .assert_error(400);
    app.login("bert@example.com", PW).await.assert_ok();

    // A new code replaces the burned one and works.
    let second = request_code(&app, &smtp, "bert@example.com", 1).await;
    app.post(
        "/api/v1/auth/reset-password",
        None,
        reset("bert@example.com", &second, "new password 2"),
    )
    .await
    .assert_ok();
    app.login("bert@example.com", "new password 2")
        .await
        .assert_ok();
    app.stop().await;
}

async fn an_expired_code_is_refused(backend: Backend) {
    let (app, smtp) = app_with_smtp(backend, |s| s.auth.verification_code_ttl_secs = 1).await;
    app.signed_up("exp@example.com", PW).await;
    let code = request_code(&app, &smtp, "exp@example.com", 0).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    app.post(
        "/api/v1/auth/reset-password",
        None,
        reset("exp@example.com", &code, "new password 1"),
    )
    .await
    .assert_error(400);
    app.login("exp@example.com", PW).await.assert_ok();
    app.stop().await;
}

async fn unknown_emails_get_the_same_answer_and_no_mail(backend: Backend) {
    let (app, smtp) = app_with_smtp(backend, |_| {}).await;
    app.signed_up("known@example.com", PW).await;
    let known = app
        .post(
            "/api/v1/auth/send-verification-code",
            None,
            json!({"email": "known@example.com"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/send-verification-code",
            None,
            json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body);
    known.assert_ok();
    assert!(
        smtp.inbox
            .wait_for("known@example.com", 0, Duration::from_secs(10))
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        smtp.inbox
            .all()
            .iter()
            .all(|m| !m.to.contains(&"ghost@example.com".to_string()))
    );
    // Resetting an unknown account answers like a wrong code.
    app.post(
        "/api/v1/auth/reset-password",
        None,
        reset("ghost@example.com", "123456", "new password 1"),
    )
    .await
    .assert_error(400);
    app.stop().await;
}

/// An app whose mailer talks to `smtp` with credentials, trusting its CA when `trust` is set.
async fn app_with_secure_smtp(smtp: &FakeSmtp, trust: bool, dir: &std::path::Path) -> TestApp {
    let ca = dir.join("smtp-ca.pem");
    std::fs::write(&ca, smtp.ca_pem()).expect("write CA");
    let url = smtp
        .url()
        .replace("smtp://", "smtp://mailer%40example.com:s3cret%2Bpass@");
    TestApp::start_with(Backend::Sqlite, |s| {
        s.mail.smtp_url = Some(SecretString::from(url));
        s.mail.timeout_secs = 5;
        s.mail.from = "Ironhand <no-reply@ironhand.test>".into();
        s.mail.tls_ca_file = trust.then_some(ca);
    })
    .await
}

#[tokio::test]
async fn reset_mail_goes_over_starttls_and_implicit_tls_with_credentials() {
    use base64::Engine as _;
    for security in [Security::StartTls, Security::Implicit] {
        let smtp = FakeSmtp::start_with(security).await.expect("fake smtp");
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app_with_secure_smtp(&smtp, true, dir.path()).await;
        app.signed_up("tls@example.com", PW).await;
        let code = request_code(&app, &smtp, "tls@example.com", 0).await;
        app.post(
            "/api/v1/auth/reset-password",
            None,
            reset("tls@example.com", &code, "new password 1"),
        )
        .await
        .assert_ok();
        let auth = smtp.inbox.auth_lines();
        let plain = auth
            .iter()
            .find_map(|l| l.strip_prefix("PLAIN "))
            .expect("AUTH PLAIN was used");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(plain.trim())
            .expect("base64");
        assert_eq!(
            decoded, b"\0mailer@example.com\0s3cret+pass",
            "{security:?}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn an_smtp_server_with_an_untrusted_certificate_gets_no_mail() {
    let smtp = FakeSmtp::start_with(Security::StartTls)
        .await
        .expect("fake smtp");
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app_with_secure_smtp(&smtp, false, dir.path()).await;
    app.signed_up("untrusted@example.com", PW).await;
    // The answer is the same (it never depends on delivery)…
    app.post(
        "/api/v1/auth/send-verification-code",
        None,
        json!({"email": "untrusted@example.com"}),
    )
    .await
    .assert_ok();
    // …but the code never goes out over a connection that failed verification.
    assert!(
        smtp.inbox
            .wait_for("untrusted@example.com", 0, Duration::from_secs(2))
            .await
            .is_none()
    );
    assert!(
        smtp.inbox.auth_lines().is_empty(),
        "no credentials sent to an unverified server"
    );
    app.stop().await;
}
