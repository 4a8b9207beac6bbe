//! The real providers against the real fake search server.

use ironhand_fakes::search::{FakeSearch, NO_RESULTS_QUERY, RecordedRequest};
use ironhand_search::{
    DateRange, MAX_SNIPPET_CHARS, MAX_TITLE_CHARS, SearchConfig, SearchError, SearchProvider,
    SearchResult, provider_from_config,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn searxng_cfg(url: &str) -> SearchConfig {
    SearchConfig {
        provider: Some("searxng".into()),
        url: Some(url.into()),
        ..Default::default()
    }
}

fn brave_cfg(url: &str, key: &str) -> SearchConfig {
    SearchConfig {
        provider: Some("brave".into()),
        url: Some(url.into()),
        api_key: Some(key.into()),
        ..Default::default()
    }
}

fn build(cfg: &SearchConfig) -> Result<Arc<dyn SearchProvider>, Box<dyn std::error::Error>> {
    provider_from_config(cfg)?.ok_or_else(|| "no provider".into())
}

fn last(fake: &FakeSearch) -> Result<RecordedRequest, Box<dyn std::error::Error>> {
    fake.requests()
        .pop()
        .ok_or_else(|| "no request recorded".into())
}

/// What both providers must make of the fake's canned list.
fn assert_sanitised(results: &[SearchResult], query: &str) {
    let slug = query.replace(' ', "-");
    let links: Vec<&str> = results.iter().map(|r| r.link.as_str()).collect();
    assert_eq!(
        links,
        [
            format!("https://example.com/{slug}"),
            format!("https://docs.example.org/{slug}?page=1&lang=en"),
            format!("http://news.example.net/{slug}"),
        ],
        "javascript:, relative, missing, non-string and duplicate links are dropped"
    );
    for r in results {
        assert!(r.title.contains(query), "title {:?}", r.title);
        assert!(r.title.chars().count() <= MAX_TITLE_CHARS);
        assert!(r.snippet.chars().count() <= MAX_SNIPPET_CHARS);
        for text in [&r.title, &r.snippet] {
            assert!(
                !text.contains('<') && !text.contains('>'),
                "markup in {text:?}"
            );
            assert!(
                !text.contains("&amp;") && !text.contains("alert("),
                "{text:?}"
            );
            assert!(!text.contains("  ") && !text.contains('\n') && !text.contains('\t'));
            assert!(!text.contains('\u{202E}') && !text.contains('\u{200B}'));
            assert_eq!(text.trim(), text.as_str());
        }
    }
    assert_eq!(results[0].title, format!("{query} — Official site"));
    assert_eq!(
        results[0].snippet,
        format!("Everything about {query} & friends.")
    );
    // The overlong title is cut, on a char boundary, with an ellipsis.
    assert_eq!(results[1].title.chars().count(), MAX_TITLE_CHARS);
    assert!(results[1].title.ends_with('…'));
    assert_eq!(results[1].snippet, format!("Learn {query} step by step"));
    assert_eq!(results[2].title, format!("{query} news & updates"));
    assert!(
        results[2]
            .snippet
            .starts_with(&format!("Latest on {query}. more more"))
    );
    assert_eq!(results[2].snippet.chars().count(), MAX_SNIPPET_CHARS);
    assert!(results[2].snippet.ends_with('…'));
}

#[tokio::test]
async fn searxng_results_are_parsed_and_sanitised() -> TestResult {
    let fake = FakeSearch::start().await;
    let provider = build(&searxng_cfg(&fake.url()))?;
    assert_eq!(provider.name(), "searxng");

    let results = provider.search("  rust async  ", DateRange::All).await?;
    assert_sanitised(&results, "rust async");

    let req = last(&fake)?;
    assert_eq!(req.path, "/search");
    assert_eq!(req.param("q"), Some("rust async"));
    assert_eq!(req.param("format"), Some("json"));
    assert_eq!(req.param("time_range"), None);
    assert_eq!(req.token, None);
    Ok(())
}

#[tokio::test]
async fn brave_results_are_parsed_and_sanitised() -> TestResult {
    let fake = FakeSearch::start().await;
    let provider = build(&brave_cfg(&fake.url(), fake.brave_key()))?;
    assert_eq!(provider.name(), "brave");

    let results = provider.search("tokio runtime", DateRange::All).await?;
    assert_sanitised(&results, "tokio runtime");

    let req = last(&fake)?;
    assert_eq!(req.path, "/res/v1/web/search");
    assert_eq!(req.param("q"), Some("tokio runtime"));
    assert_eq!(req.param("count"), Some("10"));
    assert_eq!(req.param("freshness"), None);
    assert_eq!(req.token.as_deref(), Some(fake.brave_key()));
    Ok(())
}

#[tokio::test]
async fn unicode_queries_and_a_path_prefixed_url_work() -> TestResult {
    let fake = FakeSearch::start().await;
    // A trailing slash on the base URL must not produce `//search`.
    let provider = build(&searxng_cfg(&format!("{}/", fake.url())))?;
    let results = provider.search("日本語 & <b>", DateRange::All).await?;
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.title.contains("日本語 &")));
    let req = last(&fake)?;
    assert_eq!(req.path, "/search");
    assert_eq!(req.param("q"), Some("日本語 & <b>"));
    Ok(())
}

#[tokio::test]
async fn searxng_date_ranges_map_to_time_range() -> TestResult {
    let fake = FakeSearch::start().await;
    let provider = build(&searxng_cfg(&fake.url()))?;
    for (range, expected) in [
        (DateRange::All, None),
        (DateRange::PastHour, Some("day")),
        (DateRange::PastDay, Some("day")),
        (DateRange::PastWeek, Some("week")),
        (DateRange::PastMonth, Some("month")),
        (DateRange::PastYear, Some("year")),
    ] {
        provider.search("q", range).await?;
        assert_eq!(last(&fake)?.param("time_range"), expected, "{range}");
    }
    Ok(())
}

#[tokio::test]
async fn brave_date_ranges_map_to_freshness() -> TestResult {
    let fake = FakeSearch::start().await;
    let provider = build(&brave_cfg(&fake.url(), fake.brave_key()))?;
    for (range, expected) in [
        (DateRange::All, None),
        (DateRange::PastHour, Some("pd")),
        (DateRange::PastDay, Some("pd")),
        (DateRange::PastWeek, Some("pw")),
        (DateRange::PastMonth, Some("pm")),
        (DateRange::PastYear, Some("py")),
    ] {
        provider.search("q", range).await?;
        assert_eq!(last(&fake)?.param("freshness"), expected, "{range}");
    }
    Ok(())
}

#[tokio::test]
async fn the_tool_strings_parse_to_date_ranges() {
    assert_eq!(DateRange::parse("past_hour"), Some(DateRange::PastHour));
    assert_eq!(DateRange::parse("all"), Some(DateRange::All));
    assert_eq!(DateRange::parse("last_decade"), None);
}

#[tokio::test]
async fn max_results_caps_the_list() -> TestResult {
    let fake = FakeSearch::start().await;
    for cfg in [
        searxng_cfg(&fake.url()),
        brave_cfg(&fake.url(), fake.brave_key()),
    ] {
        let cfg = SearchConfig {
            max_results: 2,
            ..cfg
        };
        let results = build(&cfg)?.search("cap", DateRange::All).await?;
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].link, "https://example.com/cap");
    }
    assert_eq!(last(&fake)?.param("count"), Some("2"));
    Ok(())
}

#[tokio::test]
async fn no_results_is_an_empty_list() -> TestResult {
    let fake = FakeSearch::start().await;
    for cfg in [
        searxng_cfg(&fake.url()),
        brave_cfg(&fake.url(), fake.brave_key()),
    ] {
        let results = build(&cfg)?
            .search(NO_RESULTS_QUERY, DateRange::All)
            .await?;
        assert!(results.is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn empty_query_is_refused_before_any_request() -> TestResult {
    let fake = FakeSearch::start().await;
    for cfg in [
        searxng_cfg(&fake.url()),
        brave_cfg(&fake.url(), fake.brave_key()),
    ] {
        let err = build(&cfg)?.search(" \n ", DateRange::All).await;
        assert!(matches!(err, Err(SearchError::Invalid(_))), "{err:?}");
        let err = build(&cfg)?.search(&"x".repeat(401), DateRange::All).await;
        assert!(matches!(err, Err(SearchError::Invalid(_))), "{err:?}");
    }
    assert!(fake.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn wrong_or_missing_brave_key_is_a_clear_401() -> TestResult {
    let fake = FakeSearch::start().await;
    let provider = build(&brave_cfg(&fake.url(), "wrong-key-123"))?;
    let err = provider.search("q", DateRange::All).await;
    let Err(err @ SearchError::Http { status: 401, .. }) = err else {
        return Err(format!("expected a 401, got {err:?}").into());
    };
    let text = err.to_string();
    assert!(
        text.contains("The provided subscription token is invalid."),
        "{text}"
    );
    assert!(text.contains("check the brave api_key"), "{text}");
    assert!(!text.contains("wrong-key-123"), "{text}");
    assert_eq!(last(&fake)?.token.as_deref(), Some("wrong-key-123"));
    Ok(())
}

#[tokio::test]
async fn the_api_key_never_appears_in_errors() -> TestResult {
    let fake = FakeSearch::start().await;
    let provider = build(&brave_cfg(&fake.url(), fake.brave_key()))?;
    let echo = format!(
        r#"{{"message":"token {} is over quota"}}"#,
        fake.brave_key()
    );
    for status in [429, 200] {
        fake.respond_raw(status, "application/json", echo.clone());
        let err = provider.search("q", DateRange::All).await;
        let text = match err {
            Err(e) => e.to_string(),
            Ok(r) => format!("{r:?}"),
        };
        assert!(!text.contains(fake.brave_key()), "{text}");
    }
    fake.respond_raw(500, "text/plain", format!("bad {}", fake.brave_key()));
    let err = provider.search("q", DateRange::All).await;
    let Err(SearchError::Http {
        status: 500,
        message,
    }) = err
    else {
        return Err(format!("expected a 500, got {err:?}").into());
    };
    assert_eq!(message, "bad <redacted>");
    Ok(())
}

#[tokio::test]
async fn provider_errors_become_http_errors_with_short_messages() -> TestResult {
    let fake = FakeSearch::start().await;
    let searxng = build(&searxng_cfg(&fake.url()))?;
    let brave = build(&brave_cfg(&fake.url(), fake.brave_key()))?;

    fake.fail_with(503);
    let err = searxng.search("q", DateRange::All).await;
    let Err(SearchError::Http {
        status: 503,
        message,
    }) = err
    else {
        return Err(format!("expected a 503, got {err:?}").into());
    };
    assert!(
        message.contains("SearXNG — something went wrong") && !message.contains('<'),
        "{message}"
    );
    assert!(!message.contains("color:red"), "{message}");

    fake.fail_with(403);
    let err = searxng.search("q", DateRange::All).await;
    let Err(SearchError::Http {
        status: 403,
        message,
    }) = err
    else {
        return Err(format!("expected a 403, got {err:?}").into());
    };
    assert!(message.contains("json format"), "{message}");

    fake.fail_with(500);
    let err = brave.search("q", DateRange::All).await;
    let Err(SearchError::Http {
        status: 500,
        message,
    }) = err
    else {
        return Err(format!("expected a 500, got {err:?}").into());
    };
    assert_eq!(message, "FAKE_FAILURE: The fake was told to fail.");

    fake.respond_raw(502, "text/plain", "y".repeat(100_000));
    for provider in [&searxng, &brave] {
        let err = provider.search("q", DateRange::All).await;
        let Err(SearchError::Http {
            status: 502,
            message,
        }) = err
        else {
            return Err(format!("expected a 502, got {err:?}").into());
        };
        assert!(message.chars().count() <= 300, "{}", message.len());
    }

    fake.respond_raw(302, "text/plain", "");
    let err = searxng.search("q", DateRange::All).await;
    assert!(
        matches!(&err, Err(SearchError::Http { status: 302, message }) if message.contains("redirect")),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_success_bodies_are_protocol_errors() -> TestResult {
    let fake = FakeSearch::start().await;
    let searxng = build(&searxng_cfg(&fake.url()))?;
    let brave = build(&brave_cfg(&fake.url(), fake.brave_key()))?;

    fake.respond_raw(
        200,
        "text/html",
        "<html><body>Not JSON at all</body></html>",
    );
    for provider in [&searxng, &brave] {
        let err = provider.search("q", DateRange::All).await;
        let Err(SearchError::Protocol(message)) = err else {
            return Err(format!("expected a protocol error, got {err:?}").into());
        };
        assert!(message.contains("not JSON"), "{message}");
        assert!(!message.contains('<'), "{message}");
    }

    fake.respond_raw(200, "application/json", r#"{"unexpected": true}"#);
    let err = searxng.search("q", DateRange::All).await;
    assert!(matches!(err, Err(SearchError::Protocol(_))), "{err:?}");

    for body in [r#"[1, 2]"#, r#"{"web": {"results": "nope"}}"#] {
        fake.respond_raw(200, "application/json", body);
        let err = brave.search("q", DateRange::All).await;
        assert!(
            matches!(err, Err(SearchError::Protocol(_))),
            "{body}: {err:?}"
        );
    }

    // Mistyped fields inside results are treated as missing, not as a failure.
    fake.respond_raw(
        200,
        "application/json",
        r#"{"results": [{"title": 7, "url": "https://ok.example/", "content": null}, "junk", {"url": ["x"]}]}"#,
    );
    let results = searxng.search("q", DateRange::All).await?;
    assert_eq!(
        results,
        [SearchResult {
            title: "https://ok.example/".into(),
            link: "https://ok.example/".into(),
            snippet: String::new(),
        }]
    );
    Ok(())
}

#[tokio::test]
async fn provider_down_is_a_connection_error() -> TestResult {
    // A port that was just free and is now closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let url = format!("http://127.0.0.1:{port}");
    for cfg in [searxng_cfg(&url), brave_cfg(&url, "k")] {
        let err = build(&cfg)?.search("q", DateRange::All).await;
        let Err(err @ SearchError::Connection(_)) = err else {
            return Err(format!("expected a connection error, got {err:?}").into());
        };
        assert!(!err.to_string().contains("q="), "{err}");
    }
    Ok(())
}

#[tokio::test]
async fn a_slow_provider_times_out() -> TestResult {
    let fake = FakeSearch::start().await;
    fake.set_delay(Duration::from_secs(5));
    for cfg in [
        searxng_cfg(&fake.url()),
        brave_cfg(&fake.url(), fake.brave_key()),
    ] {
        let cfg = SearchConfig {
            timeout: Duration::from_millis(300),
            ..cfg
        };
        let provider = build(&cfg)?;
        let started = Instant::now();
        let err = provider.search("q", DateRange::All).await;
        assert_eq!(err, Err(SearchError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    fake.reset();
    let provider = build(&searxng_cfg(&fake.url()))?;
    assert_eq!(provider.search("q", DateRange::All).await?.len(), 3);
    Ok(())
}

#[test]
fn config_validation() -> TestResult {
    let cfg = |provider: Option<&str>, url: Option<&str>, key: Option<&str>| SearchConfig {
        provider: provider.map(Into::into),
        url: url.map(Into::into),
        api_key: key.map(Into::into),
        ..Default::default()
    };
    let config_error = |c: &SearchConfig| match provider_from_config(c) {
        Err(SearchError::Config(m)) => m,
        other => format!(
            "not a config error: {:?}",
            other.map(|p| p.map(|p| p.name()))
        ),
    };

    // Unset or blank provider: web search is off.
    assert!(provider_from_config(&SearchConfig::default())?.is_none());
    assert!(provider_from_config(&cfg(Some("  "), None, None))?.is_none());

    let m = config_error(&cfg(Some("searxng"), None, None));
    assert!(m.contains("searxng") && m.contains("url"), "{m}");
    let m = config_error(&cfg(Some("searxng"), Some(" "), None));
    assert!(m.contains("url"), "{m}");
    let m = config_error(&cfg(Some("searxng"), Some("ftp://host"), None));
    assert!(m.contains("http"), "{m}");
    let m = config_error(&cfg(Some("searxng"), Some("not a url"), None));
    assert!(m.contains("not a valid URL"), "{m}");

    let m = config_error(&cfg(Some("brave"), None, None));
    assert!(m.contains("brave") && m.contains("api_key"), "{m}");
    let m = config_error(&cfg(Some("brave"), None, Some("  ")));
    assert!(m.contains("api_key"), "{m}");
    let m = config_error(&cfg(Some("brave"), None, Some("bad\nkey")));
    assert!(m.contains("api_key") && !m.contains("bad"), "{m}");

    let m = config_error(&cfg(Some("google"), None, None));
    assert!(m.contains("google") && m.contains("searxng"), "{m}");

    let m = config_error(&SearchConfig {
        timeout: Duration::ZERO,
        ..cfg(Some("searxng"), Some("http://h"), None)
    });
    assert!(m.contains("timeout"), "{m}");

    // Brave's url is optional; provider names are case-insensitive.
    let p = provider_from_config(&cfg(Some("Brave"), None, Some("k")))?;
    assert_eq!(p.map(|p| p.name()), Some("brave"));
    let p = provider_from_config(&cfg(
        Some(" SearXNG "),
        Some("https://s.example/searx"),
        None,
    ))?;
    assert_eq!(p.map(|p| p.name()), Some("searxng"));
    Ok(())
}

#[test]
fn errors_display_safely() {
    let e = SearchError::Http {
        status: 401,
        message: "nope".into(),
    };
    assert_eq!(e.to_string(), "search provider returned HTTP 401: nope");
    assert_eq!(
        SearchError::Timeout.to_string(),
        "search provider timed out"
    );
}
