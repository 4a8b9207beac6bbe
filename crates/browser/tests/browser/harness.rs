//! A real headless Chromium on a pipe, the way the sandbox starts it (minus bubblewrap).

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use ironhand_browser::{
    Browser, BrowserOptions, BrowserOutcome, LaunchOptions, find_chromium, launch_args,
};
use serde_json::{Value, json};
use tokio::net::unix::pipe;
use tokio::process::Child;

pub struct Chromium {
    pub browser: Browser,
    pub child: Child,
    _profile: tempfile::TempDir,
}

/// Starts Chromium headless with a fresh profile and connects a [`Browser`] to it.
pub async fn launch(opts: BrowserOptions) -> Chromium {
    let Some(binary) = find_chromium() else {
        if let Some(set) = std::env::var_os("IRONHAND_CHROMIUM") {
            panic!(
                "IRONHAND_CHROMIUM={} is not a file (relative paths start in crates/browser); \
                 unset it to use Debian's chromium, installed by scripts/install-sandbox-deps.sh",
                set.to_string_lossy()
            );
        }
        panic!(
            "Chromium is not installed (looked for /usr/lib/chromium/chromium and /usr/bin/chromium): \
             run scripts/install-sandbox-deps.sh (it installs Debian's chromium), or set \
             IRONHAND_CHROMIUM to a Chromium binary"
        );
    };
    let profile = tempfile::tempdir().expect("profile dir");
    let mut launch = LaunchOptions::new(profile.path());
    // IRONHAND_TEST_DISPLAY=:99 runs the stories headed on that X display (e.g. an Xvnc)
    let display = std::env::var("IRONHAND_TEST_DISPLAY").ok();
    launch.headless = display.is_none();
    let (commands_r, commands_w) = std::io::pipe().expect("pipe");
    let (answers_r, answers_w) = std::io::pipe().expect("pipe");
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.args(launch_args(&launch))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("IRONHAND_CHROMIUM_STDERR").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    if let Some(display) = display {
        cmd.env("DISPLAY", display);
    }
    cmd.fd_mappings(vec![
        FdMapping {
            parent_fd: OwnedFd::from(commands_r),
            child_fd: 3,
        },
        FdMapping {
            parent_fd: OwnedFd::from(answers_w),
            child_fd: 4,
        },
    ])
    .expect("fd mappings");
    let child = cmd.spawn().expect("start chromium");
    drop(cmd); // our copies of Chromium's ends: the pipe closes when Chromium exits
    let writer = pipe::Sender::from_owned_fd(OwnedFd::from(commands_w)).expect("sender");
    let reader = pipe::Receiver::from_owned_fd(OwnedFd::from(answers_r)).expect("receiver");
    let browser = tokio::time::timeout(
        Duration::from_secs(20),
        Browser::connect(reader, writer, opts),
    )
    .await
    .expect("Chromium started within 20 s")
    .expect("connect to Chromium");
    Chromium {
        browser,
        child,
        _profile: profile,
    }
}

impl Chromium {
    pub async fn call(&self, function: &str, args: Value) -> BrowserOutcome {
        let started = Instant::now();
        let outcome = self.browser.call(function, &args).await;
        eprintln!(
            "{function}({args}) -> {} in {:.2} s: {}",
            outcome.success,
            started.elapsed().as_secs_f64(),
            outcome.message
        );
        outcome
    }

    /// A call that must succeed.
    pub async fn ok(&self, function: &str, args: Value) -> BrowserOutcome {
        let outcome = self.call(function, args).await;
        assert!(
            outcome.success,
            "{function} failed: {}\n{}",
            outcome.message, outcome.data
        );
        outcome
    }

    pub async fn open(&self, url: &str) -> BrowserOutcome {
        self.ok("browser_navigate", json!({ "url": url })).await
    }

    /// Sums over Chromium's processes (KiB): resident set, proportional set, and the
    /// proportional anonymous + shared memory (what is not the binary's file pages).
    pub fn memory_kib(&self) -> (u64, u64, u64) {
        let Some(root) = self.child.id() else {
            return (0, 0, 0);
        };
        let mut family = vec![root];
        let mut i = 0;
        while i < family.len() {
            let pid = family[i];
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat =
                    std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
                // "pid (comm) state ppid …": comm may contain spaces, so split after ')'
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(pid) && !family.contains(&child) {
                    family.push(child);
                }
            }
            i += 1;
        }
        let field = |pid: u32, file: &str, name: &str| -> u64 {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .unwrap_or_default()
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let rss = family.iter().map(|p| field(*p, "status", "VmRSS:")).sum();
        let pss = family
            .iter()
            .map(|p| field(*p, "smaps_rollup", "Pss:"))
            .sum();
        let private = family
            .iter()
            .map(|p| {
                field(*p, "smaps_rollup", "Pss_Anon:") + field(*p, "smaps_rollup", "Pss_Shmem:")
            })
            .sum();
        for pid in &family {
            let cmdline =
                std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let kind = cmdline
                .split(['\0', ' '])
                .filter(|a| a.starts_with("--type=") || a.starts_with("--utility-sub-type="))
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!(
                "  pid {pid}: RSS {} MiB, PSS {} MiB, anonymous {} MiB {}",
                field(*pid, "status", "VmRSS:") / 1024,
                field(*pid, "smaps_rollup", "Pss:") / 1024,
                (field(*pid, "smaps_rollup", "Pss_Anon:")
                    + field(*pid, "smaps_rollup", "Pss_Shmem:"))
                    / 1024,
                if kind.is_empty() { "browser" } else { &kind }
            );
        }
        eprintln!("chromium processes: {}", family.len());
        (rss, pss, private)
    }
}

/// The text the model reads.
pub fn text(outcome: &BrowserOutcome) -> String {
    format!("{}\n{}", outcome.message, outcome.data)
}

pub fn content(outcome: &BrowserOutcome) -> String {
    outcome.data["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn elements(outcome: &BrowserOutcome) -> String {
    outcome.data["elements"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The index of the element whose line contains `needle`.
pub fn index_of(outcome: &BrowserOutcome, needle: &str) -> u32 {
    let list = elements(outcome);
    list.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.strip_prefix('['))
        .and_then(|l| l.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no element with {needle:?} in:\n{list}"))
}
