//! Cookie mode (GAP-AUTH-004, GAP-SEC-002 server side): the refresh token in an HttpOnly,
//! SameSite=Strict cookie; using it needs proof the request came from our own origin.

use crate::support::{Backend, Reply, TestApp};
use serde_json::json;

const ORIGIN: &str = "https://agents.example.com";

fn cookie(r: &Reply, name: &str) -> Option<(String, String)> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| {
            let value = c
                .split(';')
                .next()
                .unwrap_or("")
                .trim_start_matches(&format!("{name}="))
                .to_string();
            (value, c.to_string())
        })
}

async fn refresh_with(app: &TestApp, refresh: &str, csrf: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = app.client.post(app.url("/api/v1/auth/refresh")).header(
        "cookie",
        format!("ironhand_refresh={refresh}; ironhand_csrf={csrf}"),
    );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.send(req).await
}

#[tokio::test]
async fn the_refresh_cookie_is_httponly_strict_and_csrf_checked() {
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.auth.refresh_cookie = true;
        s.server.public_url = ORIGIN.into();
    })
    .await;
    let r = app
        .register("Cookie Monster", "cookie@example.com", "long enough pw")
        .await;
    r.assert_ok();
    let (refresh, attrs) = cookie(&r, "ironhand_refresh").expect("refresh cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/v1/auth"] {
        assert!(attrs.contains(attr), "{attr} in {attrs}");
    }
    let (csrf, csrf_attrs) = cookie(&r, "ironhand_csrf").expect("csrf cookie");
    assert!(
        !csrf_attrs.contains("HttpOnly"),
        "the page must be able to read the CSRF token"
    );

    // Cross-origin, or no signal at all: refused, and the token is not spent.
    refresh_with(&app, &refresh, &csrf, &[("origin", "https://evil.example")])
        .await
        .assert_error(403);
    refresh_with(&app, &refresh, &csrf, &[("sec-fetch-site", "cross-site")])
        .await
        .assert_error(403);
    refresh_with(&app, &refresh, &csrf, &[])
        .await
        .assert_error(403);
    refresh_with(&app, &refresh, &csrf, &[("x-csrf-token", "forged")])
        .await
        .assert_error(403);

    // Same origin: rotates, and the cookie carries the new token.
    let ok = refresh_with(&app, &refresh, &csrf, &[("origin", ORIGIN)]).await;
    ok.assert_ok();
    let (rotated, _) = cookie(&ok, "ironhand_refresh").expect("rotated cookie");
    assert_ne!(rotated, refresh);
    let (csrf2, _) = cookie(&ok, "ironhand_csrf").expect("csrf");
    // The double-submit token also works (e.g. no Origin header).
    let ok2 = refresh_with(&app, &rotated, &csrf2, &[("x-csrf-token", csrf2.as_str())]).await;
    ok2.assert_ok();
    let access = ok2.data()["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let (latest, _) = cookie(&ok2, "ironhand_refresh").expect("cookie");

    // Logout clears the cookies and revokes the family.
    let out = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .bearer_auth(&access)
                .header("cookie", format!("ironhand_refresh={latest}")),
        )
        .await;
    out.assert_ok();
    assert!(
        cookie(&out, "ironhand_refresh")
            .is_some_and(|(v, a)| v.is_empty() && a.contains("Max-Age=0"))
    );
    refresh_with(&app, &latest, &csrf2, &[("origin", ORIGIN)])
        .await
        .assert_error(401);
    app.stop().await;
}

#[tokio::test]
async fn without_cookie_mode_the_cookie_is_ignored() {
    let app = TestApp::start_with(Backend::Sqlite, |s| s.auth.refresh_cookie = false).await;
    let status = app.get("/api/v1/auth/status", None).await;
    assert_eq!(status.data()["refresh_cookie"], false);
    let r = app
        .register("No Cookies", "nocookie@example.com", "long enough pw")
        .await;
    assert!(cookie(&r, "ironhand_refresh").is_none());
    let refresh = r.data()["refresh_token"].as_str().expect("refresh");
    let attempt = refresh_with(&app, refresh, "x", &[("origin", "http://localhost:8000")]).await;
    attempt.assert_error(401);
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await
    .assert_ok();
    app.stop().await;
}
