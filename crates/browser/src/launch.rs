//! Chromium's command line for a browser inside a session's sandbox.

use std::path::{Path, PathBuf};

/// How the sandbox starts Chromium.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The profile (`--user-data-dir`): a writable directory of the sandbox user.
    pub profile_dir: PathBuf,
    /// Headless (tests, no display) or a window on `$DISPLAY` (the live view).
    pub headless: bool,
    /// The window, and so the page viewport, in CSS pixels: the display's size when headed.
    pub window_size: (u32, u32),
    /// UI language and `Accept-Language`.
    pub lang: String,
    /// The page the first tab opens.
    pub start_url: String,
}

impl LaunchOptions {
    pub fn new(profile_dir: impl Into<PathBuf>) -> Self {
        LaunchOptions {
            profile_dir: profile_dir.into(),
            headless: false,
            window_size: (1280, 800),
            lang: "en-US".to_owned(),
            start_url: "about:blank".to_owned(),
        }
    }
}

/// Features switched off: each either talks to Google in the background, shows UI nobody in
/// the sandbox can answer, or keeps memory the sandbox does not have.
const DISABLED_FEATURES: &[&str] = &[
    "Translate",              // the "translate this page?" bubble
    "MediaRouter",            // Cast discovery (mDNS/SSDP on the network)
    "DialMediaRouteProvider", // same
    "OptimizationHints",      // downloads hint models from Google
    "OptimizationGuideModelDownloading",
    "AutofillServerCommunication",
    "CertificateTransparencyComponentUpdater",
    "InterestFeedContentSuggestions",
    "PrivacySandboxSettings4", // a consent dialog on first run
    "BackForwardCache",        // keeps whole previous pages (and their memory) alive
    "HeavyAdPrivacyMitigations",
    "LensOverlay",
    "GlobalMediaControls",
    "SpareRendererForSitePerProcess", // a renderer kept warm for the next site (~20 MiB)
    "WebUIOmniboxPopup",              // the address bar's popups, preloaded as web pages in
    "WebUIOmniboxAimPopup",           // a renderer of their own (~30 MiB) even when headless
];

/// The command-line flags and, last, the start URL (not the program): each with one line
/// on why it is there. [`launch_args`] is the first column.
pub fn launch_flags_explained(opts: &LaunchOptions) -> Vec<(String, &'static str)> {
    let (width, height) = opts.window_size;
    let mut flags: Vec<(String, &'static str)> = vec![
        (
            "--remote-debugging-pipe".into(),
            "DevTools on fds 3 (commands in) and 4 (out), NUL-separated JSON: no TCP port another process could reach",
        ),
        (
            "--no-sandbox".into(),
            "Chromium's own sandbox needs a setuid helper or nested user namespaces; the bubblewrap sandbox is the boundary",
        ),
        (
            "--test-type".into(),
            "no \"unsupported command-line flag: --no-sandbox\" infobar over the page in the live view",
        ),
        (
            format!("--user-data-dir={}", opts.profile_dir.display()),
            "the profile lives in the sandbox user's own directory",
        ),
        (
            "--no-first-run".into(),
            "no welcome page or first-run dialogs",
        ),
        (
            "--no-default-browser-check".into(),
            "no \"make Chromium your default browser\" infobar",
        ),
        (
            "--disable-search-engine-choice-screen".into(),
            "no search engine choice dialog on first run",
        ),
        (
            "--disable-background-networking".into(),
            "no background requests to Google services",
        ),
        (
            "--disable-component-update".into(),
            "no component downloads (CRLSets, Widevine…)",
        ),
        ("--disable-sync".into(), "no account sync"),
        (
            "--disable-extensions".into(),
            "no extensions (Debian's wrapper script would load some; start /usr/lib/chromium/chromium)",
        ),
        (
            "--disable-component-extensions-with-background-pages".into(),
            "no built-in extension background pages (memory)",
        ),
        (
            "--disable-default-apps".into(),
            "no default apps installed into the profile",
        ),
        (
            "--disable-client-side-phishing-detection".into(),
            "no phishing classifier model",
        ),
        (
            "--disable-domain-reliability".into(),
            "no network error reports to Google",
        ),
        ("--no-pings".into(), "no hyperlink auditing pings"),
        (
            "--metrics-recording-only".into(),
            "metrics are never uploaded",
        ),
        ("--disable-breakpad".into(), "no crash reporter process"),
        (
            "--disable-dev-shm-usage".into(),
            "shared memory files in /tmp: /dev/shm is small or absent inside the sandbox",
        ),
        (
            "--disable-gpu".into(),
            "software rendering: no GPU device inside the sandbox (and none on the server)",
        ),
        (
            "--in-process-gpu".into(),
            "the (software) compositor runs as a thread of the browser process: one process fewer",
        ),
        (
            "--password-store=basic".into(),
            "no keyring daemon to ask for (and no prompt for one)",
        ),
        (
            "--renderer-process-limit=4".into(),
            "caps renderer processes when tabs pile up (memory); site isolation still applies",
        ),
        (
            "--enable-features=NetworkServiceInProcess2".into(),
            "the network stack runs in the browser process: one process (~15 MiB) fewer; it is not sandboxed anyway",
        ),
        (
            format!("--disable-features={}", DISABLED_FEATURES.join(",")),
            "see DISABLED_FEATURES: background traffic, unanswerable UI, memory",
        ),
        (
            format!("--lang={}", opts.lang),
            "UI language and Accept-Language",
        ),
        (
            "--force-device-scale-factor=1".into(),
            "screenshot pixels are CSS pixels, so the model's coordinates mean the same in both",
        ),
        (
            "--disable-smooth-scrolling".into(),
            "a scroll is complete when its input event returns, so the next view shows where it ended",
        ),
        ("--mute-audio".into(), "no sound device in the sandbox"),
        (
            "--deny-permission-prompts".into(),
            "notification/location/camera prompts are denied instead of waiting for a click",
        ),
        (
            "--disable-hang-monitor".into(),
            "no \"page unresponsive\" dialog; calls have their own timeouts",
        ),
        (
            "--disable-prompt-on-repost".into(),
            "reloading a POST result does not ask",
        ),
        ("--noerrdialogs".into(), "no error dialogs"),
        (
            "--hide-crash-restore-bubble".into(),
            "no \"restore pages?\" bubble after a restart",
        ),
        (
            "--disable-background-timer-throttling".into(),
            "pages keep running timers when not in front (the agent reads them without a visible window)",
        ),
        (
            "--disable-renderer-backgrounding".into(),
            "same, for renderer priority",
        ),
        (
            "--disable-backgrounding-occluded-windows".into(),
            "a window Chromium thinks is covered still paints (VNC has no compositor to tell it)",
        ),
        (
            "--disk-cache-size=52428800".into(),
            "HTTP cache at most 50 MB of the sandbox's disk",
        ),
        (
            format!("--window-size={width},{height}"),
            "the viewport the model sees (and, headed, the display's size)",
        ),
    ];
    if opts.headless {
        flags.push((
            "--headless".into(),
            "no display (tests); same engine as the headed browser",
        ));
    } else {
        flags.extend([
            (
                "--ozone-platform=x11".into(),
                "draw on the X display in $DISPLAY (Xvnc), never look for Wayland",
            ),
            (
                "--window-position=0,0".into(),
                "the window covers the display from its corner",
            ),
            ("--start-maximized".into(), "and fills it"),
        ]);
    }
    flags.push((opts.start_url.clone(), "the first tab's page"));
    flags
}

/// The flags to start Chromium with (the start URL last), for a Chromium inside an
/// unprivileged namespace sandbox, as a non-root user, with its DevTools on fds 3/4.
pub fn launch_args(opts: &LaunchOptions) -> Vec<String> {
    launch_flags_explained(opts)
        .into_iter()
        .map(|(flag, _)| flag)
        .collect()
}

/// Where Chromium is: `$IRONHAND_CHROMIUM`, else Debian's binary (`/usr/lib/chromium/chromium`,
/// which skips the `/usr/bin/chromium` wrapper script and the flags it adds), else
/// `/usr/bin/chromium`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("IRONHAND_CHROMIUM") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headless_and_headed_flags_differ_only_in_the_display_part() {
        let mut opts = LaunchOptions::new("/home/ubuntu/.config/chromium");
        let headed = launch_args(&opts);
        assert!(headed.contains(&"--remote-debugging-pipe".to_owned()));
        assert!(headed.contains(&"--no-sandbox".to_owned()));
        assert!(headed.contains(&"--user-data-dir=/home/ubuntu/.config/chromium".to_owned()));
        assert!(headed.contains(&"--window-size=1280,800".to_owned()));
        assert!(headed.contains(&"--ozone-platform=x11".to_owned()));
        assert!(!headed.contains(&"--headless".to_owned()));
        assert_eq!(headed.last().map(String::as_str), Some("about:blank"));
        opts.headless = true;
        let headless = launch_args(&opts);
        assert!(headless.contains(&"--headless".to_owned()));
        assert!(!headless.iter().any(|f| f.starts_with("--ozone-platform")));
        assert!(!headless.iter().any(|f| f.contains("remote-debugging-port")));
    }
}
