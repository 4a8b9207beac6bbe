//! The browser tools against a real Chromium on a pipe, browsing a local test site (no
//! outside network). Each story starts its own headless Chromium (under a second); the test
//! harness runs two at a time on two cores. Chromium missing is a failure that says how to
//! install it, never a skip.
//!
//! Environment: `IRONHAND_CHROMIUM` (another binary, or `tests/chromium-in-bwrap.sh` to run
//! every story inside a bubblewrap sandbox), `IRONHAND_TEST_DISPLAY=:99` (headed, on that X
//! display), `IRONHAND_CHROMIUM_STDERR=1` (show Chromium's log).

mod harness;
mod site;

use std::time::{Duration, Instant};

use harness::{content, elements, index_of, launch, text};
use ironhand_browser::{BrowserOptions, RESULT_CAP};
use serde_json::json;

fn result_len(outcome: &ironhand_browser::BrowserOutcome) -> usize {
    outcome.message.chars().count() + outcome.data.to_string().chars().count()
}

#[tokio::test]
async fn navigate_then_view_shows_the_marker_the_numbered_elements_and_a_jpeg() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    let opened = chromium.open(&site.url("/")).await;
    assert!(
        content(&opened).contains("# Marker: purple-elephant-42"),
        "{}",
        text(&opened)
    );
    let view = chromium.ok("browser_view", json!({})).await;
    eprintln!(
        "what the model reads:\n{}\n{}",
        view.message,
        serde_json::to_string_pretty(&view.data).unwrap_or_default()
    );
    assert_eq!(view.data["title"], "Ironhand test page");
    assert!(
        view.data["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&site.base))
    );
    let list = elements(&view);
    assert!(list.contains("<button> Press me"), "{list}");
    assert!(
        list.contains("<input placeholder=\"Search terms\">"),
        "{list}"
    );
    assert!(
        list.contains("<a href=\"/second\"> Go to the second page"),
        "{list}"
    );
    assert!(
        list.contains("<select selected=\"Red\"> options 0:\"Red\" 1:\"Green\" 2:\"Blue\""),
        "{list}"
    );
    assert!(
        content(&view).contains("- first item"),
        "{}",
        content(&view)
    );
    assert!(content(&view).contains("[Go to the second page](/second)"));
    let jpeg = view.screenshot.expect("a screenshot");
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    assert!(jpeg.len() > 1000);
}

#[tokio::test]
async fn clicks_hover_and_dialogs_act_on_the_page_and_an_unknown_index_fails_clearly() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    let page = chromium.open(&site.url("/")).await;

    let press = index_of(&page, "Press me");
    let clicked = chromium
        .ok("browser_click", json!({ "index": press }))
        .await;
    assert!(clicked.message.contains("Clicked [") && clicked.message.contains("Press me"));
    assert!(
        content(&clicked).contains("The button was pressed"),
        "{}",
        content(&clicked)
    );

    // an alert is accepted at once and reported; the page goes on running
    let alerter = index_of(&clicked, "Alert me");
    let alerted = chromium
        .ok("browser_click", json!({ "index": alerter.to_string() }))
        .await;
    assert!(
        alerted
            .message
            .contains("alert dialog appeared and was accepted: \"Hello from the alert\""),
        "{}",
        alerted.message
    );
    assert!(content(&alerted).contains("after the alert"));

    // coordinates: where the hover box is
    let place = chromium
        .ok(
            "browser_console_exec",
            json!({"javascript": "const r = document.getElementById('hover').getBoundingClientRect(); [r.x + r.width / 2, r.y + r.height / 2]"}),
        )
        .await;
    let point: Vec<f64> =
        serde_json::from_str(place.data["result"].as_str().expect("result")).expect("coordinates");
    let hovered = chromium
        .ok(
            "browser_move_mouse",
            json!({"coordinate_x": point[0], "coordinate_y": format!("{}", point[1])}),
        )
        .await;
    assert!(
        content(&hovered).contains("The mouse is over me"),
        "{}",
        content(&hovered)
    );
    let outside = chromium
        .call(
            "browser_click",
            json!({"coordinate_x": 5000, "coordinate_y": 10}),
        )
        .await;
    assert!(!outside.success && outside.message.contains("outside the viewport"));

    let stale = chromium
        .call("browser_click", json!({ "index": 999 }))
        .await;
    assert!(!stale.success);
    assert!(
        stale.message.contains("no element [999]") && stale.message.contains("numbered [0] to ["),
        "{}",
        stale.message
    );
    assert!(stale.screenshot.is_some(), "a failure still shows the page");

    // a link click navigates, and the result shows the new page
    let fresh = chromium.ok("browser_view", json!({})).await;
    let link = index_of(&fresh, "Go to the second page");
    let followed = chromium.ok("browser_click", json!({ "index": link })).await;
    assert!(
        content(&followed).contains("second-page-marker"),
        "{}",
        text(&followed)
    );
}

#[tokio::test]
async fn shadow_dom_custom_checkboxes_overlays_and_every_kind_of_dialog_are_handled() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    let page = chromium.open(&site.url("/widgets")).await;
    let list = elements(&page);
    assert!(list.contains("<button> Shadow button"), "{list}");
    assert!(list.contains("<label> I agree to the terms"), "{list}");
    assert!(list.contains("<button> Overlay button"), "{list}");
    assert!(
        !list.contains("Hidden behind the overlay"),
        "a covered button is not offered: {list}"
    );
    assert!(
        content(&page).contains("shadow text untouched"),
        "{}",
        content(&page)
    );

    let shadow = chromium
        .ok(
            "browser_click",
            json!({"index": index_of(&page, "Shadow button")}),
        )
        .await;
    assert!(
        content(&shadow).contains("shadow button clicked"),
        "{}",
        content(&shadow)
    );
    let agreed = chromium
        .ok(
            "browser_click",
            json!({"index": index_of(&shadow, "I agree")}),
        )
        .await;
    assert!(
        content(&agreed).contains("agreed now"),
        "{}",
        content(&agreed)
    );
    let confirmed = chromium
        .ok(
            "browser_click",
            json!({"index": index_of(&agreed, "Confirm something")}),
        )
        .await;
    assert!(
        confirmed
            .message
            .contains("confirm dialog appeared and was accepted: \"Sure?\""),
        "{}",
        confirmed.message
    );
    assert!(content(&confirmed).contains("confirmed"));
    let prompted = chromium
        .ok(
            "browser_click",
            json!({"index": index_of(&confirmed, "Prompt me")}),
        )
        .await;
    assert!(
        prompted
            .message
            .contains("prompt dialog appeared and was dismissed"),
        "{}",
        prompted.message
    );
    assert!(
        content(&prompted).contains("prompt gave null"),
        "{}",
        content(&prompted)
    );
}

#[tokio::test]
async fn typing_with_enter_submits_a_form_keys_edit_text_and_options_are_chosen() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    let page = chromium.open(&site.url("/")).await;

    let colour = index_of(&page, "<select");
    let chosen = chromium
        .ok(
            "browser_select_option",
            json!({"index": colour, "option": 2}),
        )
        .await;
    assert!(chosen.message.contains("\"Blue\""), "{}", chosen.message);
    assert!(content(&chosen).contains("Chosen colour: blue"));
    let colour = index_of(&chosen, "<select");
    let by_text = chromium
        .ok(
            "browser_select_option",
            json!({"index": colour, "option": "Green"}),
        )
        .await;
    assert!(content(&by_text).contains("Chosen colour: green"));
    let missing = chromium
        .call(
            "browser_select_option",
            json!({"index": colour, "option": 7}),
        )
        .await;
    assert!(
        !missing.success && missing.message.contains("0:\"Red\""),
        "{}",
        missing.message
    );
    let button = index_of(&by_text, "Press me");
    let not_a_select = chromium
        .call(
            "browser_select_option",
            json!({"index": button, "option": 0}),
        )
        .await;
    assert!(!not_a_select.success && not_a_select.message.contains("not a <select>"));

    // keys: type, take one character back, then select all and delete
    let search = index_of(&by_text, "Search terms");
    let typed = chromium
        .ok(
            "browser_input",
            json!({"index": search, "text": "abc", "press_enter": false}),
        )
        .await;
    assert!(typed.message.contains("value=\"abc\""), "{}", typed.message);
    chromium
        .ok("browser_press_key", json!({"key": "Backspace"}))
        .await;
    let value = "document.querySelector('input[name=q]').value";
    let read = chromium
        .ok("browser_console_exec", json!({ "javascript": value }))
        .await;
    assert_eq!(read.data["result"], "ab");
    chromium
        .ok("browser_press_key", json!({"key": "Control+a"}))
        .await;
    chromium
        .ok("browser_press_key", json!({"key": "Delete"}))
        .await;
    let read = chromium
        .ok("browser_console_exec", json!({ "javascript": value }))
        .await;
    assert_eq!(read.data["result"], "");
    let bad_key = chromium
        .call("browser_press_key", json!({"key": "Banana"}))
        .await;
    assert!(!bad_key.success && bad_key.message.contains("unknown key"));

    // typing replaces what is there, and Enter submits the form
    let search = index_of(&read, "Search terms");
    chromium
        .ok(
            "browser_input",
            json!({"index": search, "text": "old words", "press_enter": false}),
        )
        .await;
    let submitted = chromium
        .ok(
            "browser_input",
            json!({"index": search, "text": "rust crates", "press_enter": true}),
        )
        .await;
    assert!(
        content(&submitted).contains("Results for: rust crates"),
        "{}",
        text(&submitted)
    );
    assert!(
        submitted.data["url"]
            .as_str()
            .is_some_and(|u| u.contains("/search?q=rust+crates"))
    );

    let nothing_to_type_into = chromium
        .call("browser_input", json!({"text": "x", "press_enter": false}))
        .await;
    assert!(!nothing_to_type_into.success);
    assert!(nothing_to_type_into.message.contains("no text field"));
}

#[tokio::test]
async fn scrolling_moves_what_is_in_the_viewport() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    let top = chromium.open(&site.url("/long")).await;
    assert!(elements(&top).contains("Button 0"));
    assert!(!elements(&top).contains("Button 5"));
    assert!(
        content(&top).contains("## Section 29"),
        "a short page's text is whole"
    );

    let down = chromium.ok("browser_scroll_down", json!({})).await;
    assert!(
        down.message.starts_with("Scrolled down from 0 px to "),
        "{}",
        down.message
    );
    assert!(!elements(&down).contains("Button 0"), "{}", elements(&down));

    let bottom = chromium
        .ok("browser_scroll_down", json!({"to_bottom": true}))
        .await;
    assert!(
        elements(&bottom).contains("Button 29"),
        "{}",
        elements(&bottom)
    );
    assert!(
        bottom.data["viewport"]
            .as_str()
            .is_some_and(|v| v.ends_with("0 px below)"))
    );
    let again = chromium.ok("browser_scroll_down", json!({})).await;
    assert!(
        again.message.contains("already at the bottom"),
        "{}",
        again.message
    );

    let up = chromium.ok("browser_scroll_up", json!({})).await;
    assert!(up.message.starts_with("Scrolled up"), "{}", up.message);
    let top_again = chromium
        .ok("browser_scroll_up", json!({"to_top": "true"}))
        .await;
    assert!(elements(&top_again).contains("Button 0"));
}

#[tokio::test]
async fn console_exec_returns_values_and_console_view_shows_the_log() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    chromium.open(&site.url("/")).await;

    let sum = chromium
        .ok("browser_console_exec", json!({"javascript": "1 + 41"}))
        .await;
    assert_eq!(sum.data["result"], "42");
    let awaited = chromium
        .ok(
            "browser_console_exec",
            json!({"javascript": "console.log('hello from exec'); await new Promise(r => setTimeout(r, 50)); ({title: document.title, n: [1, 2]})"}),
        )
        .await;
    let value: serde_json::Value =
        serde_json::from_str(awaited.data["result"].as_str().expect("result")).expect("json");
    assert_eq!(value, json!({"title": "Ironhand test page", "n": [1, 2]}));
    assert!(
        awaited.data["console"]
            .as_str()
            .is_some_and(|c| c.contains("[log] hello from exec"))
    );
    let node = chromium
        .ok(
            "browser_console_exec",
            json!({"javascript": "document.body"}),
        )
        .await;
    let markup = node.data["result"].as_str().expect("result");
    assert!(
        markup.starts_with("<body>") && markup.contains("purple-elephant-42"),
        "{markup}"
    );
    let thrown = chromium
        .call(
            "browser_console_exec",
            json!({"javascript": "throw new Error('boom')"}),
        )
        .await;
    assert!(
        !thrown.success && thrown.message.contains("boom"),
        "{}",
        thrown.message
    );
    chromium
        .ok(
            "browser_console_exec",
            json!({"javascript": "setTimeout(() => { throw new Error('uncaught later') }, 0); 'scheduled'"}),
        )
        .await;

    let log = chromium
        .ok("browser_console_view", json!({"max_lines": "50"}))
        .await;
    let lines = log.data["console"].as_str().expect("console");
    assert!(lines.contains("[log] page loaded 42"), "{lines}");
    assert!(lines.contains("[error] an error line"), "{lines}");
    assert!(lines.contains("[log] hello from exec"), "{lines}");
    assert!(
        lines.contains("[uncaught] Error: uncaught later"),
        "{lines}"
    );
    let last = chromium
        .ok("browser_console_view", json!({"max_lines": 1}))
        .await;
    let last = last.data["console"].as_str().expect("console");
    assert!(
        last.contains("uncaught later") && !last.contains("page loaded"),
        "{last}"
    );
}

#[tokio::test]
async fn a_link_that_opens_a_new_tab_moves_the_agent_there() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    let page = chromium.open(&site.url("/")).await;
    let link = index_of(&page, "Open in a new tab");
    let opened = chromium.ok("browser_click", json!({ "index": link })).await;
    assert!(opened.message.contains("new tab"), "{}", opened.message);
    assert!(
        content(&opened).contains("second-page-marker"),
        "{}",
        text(&opened)
    );
    assert!(
        opened.data["tabs"]
            .as_str()
            .is_some_and(|t| t.starts_with("2 tabs"))
    );
    // closing it brings the agent back to the first tab
    chromium
        .ok(
            "browser_console_exec",
            json!({"javascript": "window.close()"}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = chromium.ok("browser_view", json!({})).await;
    assert!(
        content(&back).contains("purple-elephant-42"),
        "{}",
        text(&back)
    );
}

#[tokio::test]
async fn refused_urls_and_unreachable_servers_fail_fast_with_the_reason() {
    let chromium = launch(BrowserOptions::default()).await;
    for (url, why) in [
        ("javascript:alert(1)", "javascript: URLs are not allowed"),
        ("ftp://example.com/file", "ftp: URLs are not allowed"),
        ("data:text/html,<h1>x</h1>", "data: URLs are not allowed"),
        ("chrome://settings", "chrome: URLs are not allowed"),
        ("not a url at all", "not a valid URL"),
        ("file:///etc/passwd", "only files under /home/ubuntu"),
        (
            "file:///home/ubuntu/../../etc/passwd",
            "only files under /home/ubuntu",
        ),
    ] {
        let refused = chromium
            .call("browser_navigate", json!({ "url": url }))
            .await;
        assert!(!refused.success, "{url} was opened");
        assert!(refused.message.contains(why), "{url}: {}", refused.message);
    }
    // a port nobody listens on
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let started = Instant::now();
    let refused = chromium
        .call(
            "browser_navigate",
            json!({ "url": format!("http://127.0.0.1:{port}/") }),
        )
        .await;
    assert!(!refused.success);
    assert!(
        refused.message.contains("net::ERR_CONNECTION_REFUSED"),
        "{}",
        refused.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_page_that_never_finishes_loading_hits_the_load_timeout_and_shows_what_is_there() {
    let site = site::serve().await;
    let opts = BrowserOptions {
        load_timeout: Duration::from_secs(2),
        ..BrowserOptions::default()
    };
    let chromium = launch(opts).await;
    let started = Instant::now();
    let slow = chromium
        .call("browser_navigate", json!({ "url": site.url("/hang") }))
        .await;
    assert!(!slow.success);
    assert!(
        slow.message.contains("did not finish loading within 2 s"),
        "{}",
        slow.message
    );
    assert!(content(&slow).contains("partial-marker"), "{}", text(&slow));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    // the browser is still usable
    chromium.open(&site.url("/second")).await;
}

#[tokio::test]
async fn a_huge_page_stays_within_the_result_cap_and_says_where_it_cut() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    let huge = chromium.open(&site.url("/huge")).await;
    assert!(
        result_len(&huge) <= RESULT_CAP,
        "{} characters",
        result_len(&huge)
    );
    assert!(content(&huge).contains("Paragraph 0 with \"quotes\""));
    assert!(
        content(&huge).contains("scroll down to read more"),
        "{}",
        content(&huge)
    );
    assert!(huge.screenshot.is_some());
    let bottom = chromium
        .ok("browser_scroll_down", json!({"to_bottom": true}))
        .await;
    assert!(result_len(&bottom) <= RESULT_CAP);
    assert!(
        content(&bottom).contains("Paragraph 19999"),
        "the text follows the viewport"
    );
    assert!(content(&bottom).contains("scroll up to read them"));
}

#[tokio::test]
async fn a_page_stuck_in_a_loop_costs_a_timeout_not_a_hang() {
    let site = site::serve().await;
    let opts = BrowserOptions {
        call_timeout: Duration::from_secs(2),
        ..BrowserOptions::default()
    };
    let chromium = launch(opts).await;
    chromium.open(&site.url("/")).await;
    let started = Instant::now();
    let stuck = chromium
        .call(
            "browser_console_exec",
            json!({"javascript": "while (true) {}"}),
        )
        .await;
    assert!(
        !stuck.success && stuck.message.contains("ran too long"),
        "{}",
        stuck.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    // the loop was stopped: the page answers again
    let after = chromium.ok("browser_view", json!({})).await;
    assert!(content(&after).contains("purple-elephant-42"));
}

#[tokio::test]
async fn killing_chromium_makes_the_next_call_fail_at_once() {
    let site = site::serve().await;
    let mut chromium = launch(BrowserOptions::default()).await;
    chromium.open(&site.url("/")).await;
    chromium.child.kill().await.expect("kill chromium");
    let started = Instant::now();
    let dead = chromium.call("browser_view", json!({})).await;
    assert!(!dead.success);
    assert!(
        dead.message.contains("The browser is not running"),
        "{}",
        dead.message
    );
    assert!(dead.message.contains("browser_restart"));
    assert!(dead.screenshot.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(chromium.browser.is_closed());
    let again = chromium
        .call("browser_navigate", json!({ "url": site.url("/") }))
        .await;
    assert!(!again.success && again.message.contains("not running"));
}

#[tokio::test]
async fn a_simple_page_keeps_chromium_small() {
    let site = site::serve().await;
    let chromium = launch(BrowserOptions::default()).await;
    chromium.open(&site.url("/")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss, pss, private) = chromium.memory_kib();
    eprintln!(
        "Chromium after a simple page: RSS sum {} MiB, PSS sum {} MiB, of which anonymous/shared memory {} MiB",
        rss / 1024,
        pss / 1024,
        private / 1024
    );
    assert!(rss > 0, "no Chromium processes found");
    // the binary's pages are shared with every other Chromium on the host; this is not
    assert!(
        private < 200 * 1024,
        "{} MiB of anonymous memory",
        private / 1024
    );
}
