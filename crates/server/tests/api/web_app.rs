//! The web app served by the binary: `index.html` for every page path outside `/api` (the
//! SPA fallback), files of the build with their type and cache policy, conditional
//! requests, and nothing of it under `/api`. Works on the real build (`make test` builds
//! `web/dist` first) and on the placeholder page of a backend-only build.

use crate::support::{Backend, TestApp};
use reqwest::Method;

#[tokio::test]
async fn pages_get_the_app_and_files_get_their_bytes() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (status, headers, index) = app.get_bytes("/", None, None).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    let index = String::from_utf8(index).expect("UTF-8 page");
    assert!(index.contains("<title>"), "{index}");
    // no inline script: the CSP (script-src 'self') would block it
    for tag in index.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap_or_default();
        assert!(
            open.contains("src="),
            "inline script in index.html: <script{open}>"
        );
    }
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
        "{csp}"
    );

    // the app's own routes, deep links included, get the same page
    for path in [
        "/chat/0190c3a2-7d7e-7c2b-a3b4-1b2c3d4e5f60",
        "/share/abc",
        "/settings",
        "/billing?checkout=success",
    ] {
        let (status, _, body) = app.get_bytes(path, None, None).await;
        assert_eq!(status.as_u16(), 200, "{path}");
        assert_eq!(String::from_utf8_lossy(&body), index, "{path}");
    }

    // a conditional request for an unchanged page
    let etag = headers["etag"].to_str().expect("etag").to_string();
    let again = app
        .client
        .get(app.url("/login"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status().as_u16(), 304);
    // …also when a proxy weakened the tag
    let weak = app
        .client
        .get(app.url("/login"))
        .header("if-none-match", format!("\"other\", W/{etag}"))
        .send()
        .await
        .expect("request");
    assert_eq!(weak.status().as_u16(), 304);
    assert_eq!(headers["vary"], "accept-encoding");
    // HEAD: the headers of the GET without its body
    let head = raw(&app, "HEAD / HTTP/1.1").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length = format!("content-length: {}", index.len());
    assert!(
        head.to_ascii_lowercase().contains(&length),
        "{length} in {head}"
    );
    assert!(
        head.ends_with("\r\n\r\n"),
        "a HEAD answer has no body: {head:?}"
    );

    // files of the build; hashed assets are cached for good
    let assets: Vec<String> = index
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_string)
        .collect();
    if ironhand_server::web_app::is_built() {
        assert!(
            !assets.is_empty(),
            "the built page names its assets: {index}"
        );
    }
    for asset in &assets {
        let (status, headers, body) = app.get_bytes(asset, None, None).await;
        assert_eq!(status.as_u16(), 200, "{asset}");
        assert!(!body.is_empty(), "{asset}");
        assert_eq!(
            headers["cache-control"], "public, max-age=31536000, immutable",
            "{asset}"
        );
        let ct = headers["content-type"].to_str().expect("type");
        if asset.ends_with(".js") {
            assert_eq!(ct, "text/javascript; charset=utf-8", "{asset}");
        } else if asset.ends_with(".css") {
            assert_eq!(ct, "text/css; charset=utf-8", "{asset}");
        }
    }
    // compressed when the browser asks for it
    if let Some(js) = assets.iter().find(|a| a.ends_with(".js")) {
        let r = app
            .client
            .get(app.url(js))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("request");
        assert_eq!(r.headers()["content-encoding"], "gzip");
    }

    // missing files are 404s, never the app
    for path in ["/assets/nope.js", "/favicon-missing.ico"] {
        let (status, _, _) = app.get_bytes(path, None, None).await;
        assert_eq!(status.as_u16(), 404, "{path}");
    }
    // paths that climb out, sent as written (an HTTP client would clean them up first):
    // never a file from elsewhere, never a 500
    for path in [
        "/assets/../../../Cargo.toml",
        "/../crates/server/build.rs",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
        "/..%2f..%2fCargo.toml",
        "/assets/..\\..\\Cargo.toml",
    ] {
        let answer = raw(&app, &format!("GET {path} HTTP/1.1")).await;
        assert!(
            !answer.contains("[package]") && !answer.contains("fn main"),
            "{path} served a file from outside the build: {answer}"
        );
        let status = answer.get(9..12).unwrap_or_default();
        assert!(matches!(status, "404" | "400" | "200"), "{path}: {answer}");
        if status == "200" {
            // a page path: the app itself, nothing else
            assert!(answer.contains("<title>"), "{path}: {answer}");
        }
    }
    app.stop().await;
}

/// Sends `request_line` as is over a new connection and returns the whole answer.
async fn raw(app: &TestApp, request_line: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(
        format!("{request_line}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await
    .expect("an answer in time")
    .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_api_never_falls_back_to_the_app() {
    let app = TestApp::start(Backend::Sqlite).await;
    for path in ["/api", "/api/", "/api/v1/nothing", "/api/v2/sessions"] {
        let r = app.get(path, None).await;
        r.assert_error(404);
    }
    // other methods on page paths are not pages
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let r = app.call(method.clone(), "/chat/x", None, None).await;
        assert_eq!(r.status.as_u16(), 404, "{method} /chat/x");
    }
    app.stop().await;
}
