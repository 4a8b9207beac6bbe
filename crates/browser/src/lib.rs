//! The agent's browser: one Chromium per session sandbox, driven over the Chrome DevTools
//! Protocol, and the `browser_*` tools of the API's tool table on top of it.
//!
//! # Transport: a pipe, never a port
//!
//! Chromium is started with `--remote-debugging-pipe` ([`launch_args`]): it reads DevTools
//! commands on its fd 3 and writes answers and events on its fd 4, each message one JSON
//! object followed by a NUL byte. The sandbox passes the two pipe ends when it spawns
//! Chromium and hands ours to [`Browser::connect`] (any `AsyncRead`/`AsyncWrite` pair).
//! A `--remote-debugging-port` would let any process that can reach the port (other code in
//! the sandbox, or anything on the host's loopback) drive the browser with the user's cookies;
//! a pipe belongs only to whoever holds its fds, and it closes when Chromium dies, which is
//! how a dead browser is noticed at once.
//!
//! [`cdp::CdpClient`] is a small client of our own: request ids, answers routed to their
//! callers, events broadcast, flat sessions (`Target.attachToTarget {flatten: true}`), a
//! timeout on every call, an error for every waiter when the pipe closes, and a bound on the
//! size of one message (64 MiB by default) so a runaway answer is an error, not an OOM.
//!
//! # What the model sees
//!
//! [`Browser::call`] runs one tool and returns a [`BrowserOutcome`]: `success`, a `message`
//! saying what happened (and any JavaScript dialog that was answered on the way), `data` with
//! the page state, and a JPEG screenshot of the viewport for the user. The page state is
//! text: URL, title, where the viewport is on the page, a numbered list of the interactive
//! elements *in the viewport* (links, buttons, inputs, selects, textareas, ARIA widgets,
//! `[onclick]`, contenteditable…, each labelled with its tag, type and text), and the page's
//! rendered text as compact markdown (headings, links, lists, tables).
//!
//! **Indices.** The injected script (`page.js`, evaluated fresh on every use so the page
//! cannot replace it) numbers the elements and marks each with a `data-ih-index` attribute,
//! renumbering on every view. `index` in a later call finds the element by that attribute,
//! so it means what the model saw; an index that is no longer on the page fails and says
//! which indices exist. Clicks and typing are real input events (`Input.dispatchMouseEvent`,
//! `Input.insertText`, `Input.dispatchKeyEvent`) at a point where the element is not covered,
//! after scrolling it into view, so someone watching the live view sees the agent work.
//!
//! **Caps.** The element list is capped at 5,000 characters, the text at 8,000 (when the text
//! is longer, the part from the viewport down is kept and as much as fits of what is just
//! above); each cap is stated in the text where it cuts. The whole result, `message` plus
//! `data` serialised, is at most [`RESULT_CAP`] (16,000) characters.
//!
//! # Timeouts
//!
//! Every DevTools call has a timeout ([`BrowserOptions::call_timeout`], 10 s). A navigation
//! waits for the page's load event up to [`BrowserOptions::load_timeout`] (30 s) and then
//! reports what has loaded, as a failure that says so; `Page.navigate`'s own errors
//! (`net::ERR_CONNECTION_REFUSED`, `net::ERR_NAME_NOT_RESOLVED`…) fail at once. After a
//! click or key press the page gets up to [`BrowserOptions::settle_timeout`] (1.5 s) for its
//! network to go idle and its DOM to stop changing; when the input started a navigation, that
//! navigation's load is awaited (up to the load timeout); when it opened a tab, that tab
//! becomes the active one. JavaScript dialogs are answered as they open (alerts and confirms
//! accepted, prompts dismissed) and reported in the next result. No call outlives its
//! timeouts, and after Chromium exits every call fails at once with a sentence saying so.
//!
//! # Launching
//!
//! [`launch_args`] gives the command line ([`launch_flags_explained`] says why each flag is
//! there): no Chromium sandbox (bubblewrap is the boundary), no GPU, shared memory in `/tmp`,
//! nothing talking to Google in the background, no first-run UI, infobar or prompt that nobody
//! could answer, and fewer processes (network service in the browser process, no spare
//! renderer, no preloaded address-bar popups). Start `/usr/lib/chromium/chromium` rather than
//! Debian's `/usr/bin/chromium` wrapper script, which adds extension flags of its own
//! ([`find_chromium`]). Headed on an X display for the live view, headless in tests.
//!
//! # What is not here
//!
//! Starting Chromium (inside the sandbox, with the pipe on fds 3/4) and `browser_restart`
//! belong to the sandbox: restart Chromium, drop the old [`Browser`], [`Browser::connect`] a
//! new one, and navigate. Navigation is checked ([`BrowserOptions::file_root`] for
//! `file://`), but a page's own links are not: the sandbox is what limits what Chromium can
//! read. Cross-origin iframes are not indexed.

mod actions;
mod browser;
pub mod cdp;
mod console;
mod keys;
mod launch;
mod page;
mod report;
mod settle;
mod tools;
mod url_policy;

pub use browser::{Browser, BrowserError, BrowserOptions, BrowserOutcome};
pub use launch::{LaunchOptions, find_chromium, launch_args, launch_flags_explained};
pub use report::RESULT_CAP;
pub use tools::{RESTART_TOOL, ToolSpec, tool_specs};
