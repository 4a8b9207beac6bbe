//! Webhook signature verification, with headers produced by the fake exactly as Stripe
//! produces them.
#![allow(clippy::unwrap_used)]

use ironhand_fakes::stripe::FakeStripe;
use ironhand_stripe::{
    DEFAULT_TOLERANCE_SECS, SecretString, SignatureError, WebhookSecrets, verify_signature,
};

const SECRET: &str = "whsec_test_current_0a1b2c3d4e5f";
const OLD_SECRET: &str = "whsec_test_previous_9f8e7d6c5b4a";
const NOW: i64 = 1_760_000_000;
const BODY: &str =
    r#"{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1"}}}"#;

fn secrets(list: &[&str]) -> Vec<SecretString> {
    list.iter()
        .map(|s| SecretString::from(s.to_string()))
        .collect()
}

fn verify(body: &str, header: &str, list: &[&str]) -> Result<(), SignatureError> {
    verify_signature(
        body.as_bytes(),
        header,
        &secrets(list),
        NOW,
        DEFAULT_TOLERANCE_SECS,
    )
}

/// The `v1=` value of a header made by the fake.
fn v1(body: &str, secret: &str, t: i64) -> String {
    let header = FakeStripe::sign_webhook(body, secret, t);
    header.split_once(",v1=").unwrap().1.to_string()
}

#[test]
fn a_stripe_signed_delivery_is_accepted() {
    let header = FakeStripe::sign_webhook(BODY, SECRET, NOW);
    assert!(header.starts_with(&format!("t={NOW},v1=")));
    assert_eq!(verify(BODY, &header, &[SECRET]), Ok(()));
}

#[test]
fn any_of_several_v1_may_match() {
    let good = v1(BODY, SECRET, NOW);
    let other = v1(BODY, "whsec_someone_else", NOW);
    let header = format!(
        "t={NOW},v1={other},v1={good},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    );
    assert_eq!(verify(BODY, &header, &[SECRET]), Ok(()));
    // Also when the matching one comes first, and with an unknown scheme around.
    let header = format!("t={NOW},v1={good},v1={other},v2=zzz");
    assert_eq!(verify(BODY, &header, &[SECRET]), Ok(()));
}

#[test]
fn during_rotation_either_secret_is_accepted() {
    let new = FakeStripe::sign_webhook(BODY, SECRET, NOW);
    let old = FakeStripe::sign_webhook(BODY, OLD_SECRET, NOW);
    assert_eq!(verify(BODY, &new, &[OLD_SECRET, SECRET]), Ok(()));
    assert_eq!(verify(BODY, &old, &[OLD_SECRET, SECRET]), Ok(()));
    // Stripe's own rotation header: both signatures in one header.
    let both = format!(
        "t={NOW},v1={},v1={}",
        v1(BODY, SECRET, NOW),
        v1(BODY, OLD_SECRET, NOW)
    );
    assert_eq!(verify(BODY, &both, &[OLD_SECRET]), Ok(()));
    // Via the comma-separated configuration helper.
    let configured = WebhookSecrets::parse(&format!(" {OLD_SECRET} ,, {SECRET} "));
    assert_eq!(configured.len(), 2);
    assert_eq!(
        configured.verify(BODY.as_bytes(), &new, NOW, DEFAULT_TOLERANCE_SECS),
        Ok(())
    );
}

#[test]
fn a_tampered_body_or_a_wrong_secret_does_not_match() {
    let header = FakeStripe::sign_webhook(BODY, SECRET, NOW);
    let tampered = BODY.replace("invoice.paid", "invoice.payment_failed");
    assert_eq!(
        verify(&tampered, &header, &[SECRET]),
        Err(SignatureError::NoMatch)
    );
    assert_eq!(
        verify(&format!("{BODY} "), &header, &[SECRET]),
        Err(SignatureError::NoMatch)
    );
    assert_eq!(
        verify(BODY, &header, &[OLD_SECRET]),
        Err(SignatureError::NoMatch)
    );
    // The secret without its `whsec_` prefix is a different key.
    let stripped = SECRET.trim_start_matches("whsec_");
    assert_eq!(
        verify(BODY, &header, &[stripped]),
        Err(SignatureError::NoMatch)
    );
    // No secret configured at all.
    assert_eq!(verify(BODY, &header, &[]), Err(SignatureError::NoMatch));
    // A signature for another timestamp, with the header's `t` changed.
    let moved = format!("t={},v1={}", NOW - 1, v1(BODY, SECRET, NOW));
    assert_eq!(
        verify(BODY, &moved, &[SECRET]),
        Err(SignatureError::NoMatch)
    );
    // Uppercase hex, truncated or non-hex signatures never match.
    let good = v1(BODY, SECRET, NOW);
    for sig in [good.to_uppercase(), good[..63].to_string(), "zz".repeat(32)] {
        assert_eq!(
            verify(BODY, &format!("t={NOW},v1={sig}"), &[SECRET]),
            Err(SignatureError::NoMatch)
        );
    }
}

#[test]
fn old_and_future_timestamps_are_refused_beyond_five_minutes() {
    let at = |t: i64| verify(BODY, &FakeStripe::sign_webhook(BODY, SECRET, t), &[SECRET]);
    assert_eq!(at(NOW - 300), Ok(()));
    assert_eq!(at(NOW - 301), Err(SignatureError::Stale));
    assert_eq!(at(NOW - 86_400), Err(SignatureError::Stale));
    assert_eq!(at(NOW + 300), Ok(()));
    assert_eq!(at(NOW + 301), Err(SignatureError::Stale));
    assert_eq!(at(0), Err(SignatureError::Stale));
    // A stale timestamp with a bad signature reports the bad signature, as Stripe does.
    let header = format!("t={},v1={}", NOW - 301, "ab".repeat(32));
    assert_eq!(
        verify(BODY, &header, &[SECRET]),
        Err(SignatureError::NoMatch)
    );
}

#[test]
fn malformed_headers_are_told_apart() {
    let good = v1(BODY, SECRET, NOW);
    assert_eq!(
        verify(BODY, "", &[SECRET]),
        Err(SignatureError::MissingHeader)
    );
    assert_eq!(
        verify(BODY, "  \t ", &[SECRET]),
        Err(SignatureError::MissingHeader)
    );
    for header in [
        format!("v1={good}"),
        format!("t=,v1={good}"),
        format!("t=12ab,v1={good}"),
        format!("t=99999999999999999999999,v1={good}"),
        format!("T={NOW},v1={good}"),
        format!("t={NOW}"),
        format!("t={NOW},v0={good}"),
        format!("t={NOW},v1"),
        "garbage".to_string(),
        ",,,".to_string(),
        format!("t={NOW};v1={good}"),
    ] {
        let got = verify(BODY, &header, &[SECRET]);
        assert!(
            matches!(got, Err(SignatureError::Malformed(_))),
            "{header:?} gave {got:?}"
        );
    }
}

#[test]
fn spaces_around_items_are_tolerated() {
    let good = v1(BODY, SECRET, NOW);
    for header in [
        format!("t={NOW}, v1={good}"),
        format!(" t={NOW} ,v1={good} "),
        format!("t = {NOW}, v1 = {good}"),
    ] {
        assert_eq!(verify(BODY, &header, &[SECRET]), Ok(()), "{header:?}");
    }
}

#[test]
fn error_messages_are_short_and_carry_nothing_secret() {
    let header = FakeStripe::sign_webhook(BODY, SECRET, NOW);
    let good = v1(BODY, SECRET, NOW);
    let errors = [
        verify(BODY, "", &[SECRET]),
        verify(BODY, "t=1", &[SECRET]),
        verify("x", &header, &[SECRET]),
        verify(BODY, &FakeStripe::sign_webhook(BODY, SECRET, 1), &[SECRET]),
    ];
    for e in errors {
        let e = e.unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.len() < 120, "{text}");
        assert!(!text.contains(SECRET) && !text.contains(&good), "{text}");
    }
}
