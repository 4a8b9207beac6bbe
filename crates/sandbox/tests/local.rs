//! The local (bubblewrap) sandbox provider against real bubblewrap.
//!
//! Every limit is small here so the suite stays fast; the fork-bomb test first proves with
//! a bounded probe that the process limit holds before it runs the bomb.

use ironhand_core::ids::SessionId;
use ironhand_core::ports::sandbox::{
    Sandbox, SandboxError, SandboxProvider, ShellOutcome, WriteOptions,
};
use ironhand_sandbox::{LocalSandboxConfig, LocalSandboxProvider};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

// Fields drop in order: the provider (unmounting workspaces) before the directory.
struct Env {
    provider: LocalSandboxProvider,
    base: PathBuf,
    _dir: tempfile::TempDir,
}

fn test_config(root: &Path) -> LocalSandboxConfig {
    LocalSandboxConfig {
        root_dir: root.to_path_buf(),
        foreground_wait: Duration::from_secs(5),
        max_wait: Duration::from_secs(20),
        command_timeout: Duration::from_secs(30),
        cpu_seconds: 20,
        memory_bytes: 1024 * 1024 * 1024,
        max_processes: 64,
        output_cap_bytes: 8 * 1024,
        idle_timeout: Duration::from_secs(3600),
        ..LocalSandboxConfig::default()
    }
}

fn setup(adjust: impl FnOnce(&mut LocalSandboxConfig)) -> Env {
    let dir = tempfile::Builder::new()
        .prefix("ironhand-sandbox-test")
        .tempdir()
        .expect("tempdir");
    // bubblewrap may run as another user (server is root): it must reach root_dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let base = dir.path().to_path_buf();
    let mut config = test_config(&base.join("root"));
    adjust(&mut config);
    let provider = LocalSandboxProvider::new(config).expect("provider");
    Env {
        _dir: dir,
        base,
        provider,
    }
}

impl Env {
    async fn sandbox(&self, session: SessionId) -> Arc<dyn Sandbox> {
        self.provider.sandbox(session).await.expect("sandbox")
    }
}

async fn run(sb: &Arc<dyn Sandbox>, id: &str, cmd: &str) -> ShellOutcome {
    let out = sb.shell_exec(id, "", cmd).await.expect("shell_exec");
    if out.running {
        sb.shell_wait(id, Some(20)).await.expect("shell_wait")
    } else {
        out
    }
}

async fn wait_until(
    sb: &Arc<dyn Sandbox>,
    id: &str,
    secs: u64,
    done: impl Fn(&ShellOutcome) -> bool,
) -> ShellOutcome {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let out = sb.shell_view(id).await.expect("shell_view");
        if done(&out) || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn invalid_message(r: Result<impl std::fmt::Debug, SandboxError>) -> String {
    match r {
        Err(SandboxError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Host processes whose command line contains `needle`.
fn host_processes_with(needle: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_kind() {
    let env = setup(|_| {});
    assert_eq!(env.provider.kind(), "local");
    env.provider.check().await.expect("check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bubblewrap_is_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LocalSandboxConfig {
        root_dir: dir.path().join("root"),
        bwrap_path: Some(dir.path().join("no-bwrap")),
        ..LocalSandboxConfig::default()
    };
    let err = LocalSandboxProvider::new(config).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("install-sandbox-deps.sh"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_explains_a_broken_bubblewrap() {
    let env = setup(|_| {});
    let fake = env.base.join("fake-bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n",
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let provider = LocalSandboxProvider::new(LocalSandboxConfig {
        bwrap_path: Some(fake),
        ..test_config(&env.base.join("root2"))
    })
    .expect("provider");
    let err = provider.check().await.expect_err("check must fail");
    let msg = err.to_string();
    assert!(matches!(err, SandboxError::Unavailable(_)));
    assert!(
        msg.contains("No permissions to create new namespace"),
        "{msg}"
    );
    assert!(msg.contains("install-sandbox-deps.sh"), "{msg}");
    let sb = provider.sandbox(SessionId::new()).await.expect("sandbox");
    let err = sb.shell_exec("x", "", "true").await;
    assert!(matches!(err, Err(SandboxError::Unavailable(_))), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_program_written_then_run() {
    let env = setup(|_| {});
    let sb = env.sandbox(SessionId::new()).await;
    sb.file_write(
        "project/hello.py",
        "import sys\nprint('hello from', sys.argv[1])",
        &WriteOptions {
            trailing_newline: true,
            ..WriteOptions::default()
        },
    )
    .await
    .expect("write");
    let out = sb
        .shell_exec("main", "/home/ubuntu/project", "python3 hello.py sandbox")
        .await
        .expect("exec");
    assert!(!out.running);
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.output, "hello from sandbox\n");
    assert_eq!(out.console.len(), 1);
    assert_eq!(out.console[0].ps1, "ubuntu@sandbox:~/project $");
    assert_eq!(out.console[0].command, "python3 hello.py sandbox");
    assert_eq!(out.limit_hit, None);

    let out = run(&sb, "main", "whoami; hostname; id -u; echo $HOME; pwd").await;
    assert_eq!(
        out.output,
        "ubuntu\nsandbox\n1000\n/home/ubuntu\n/home/ubuntu/project\n"
    );
    let out = run(&sb, "main", "exit 3").await;
    assert_eq!(out.exit_code, Some(3));
    // The shell id stays usable (a new shell, same directory).
    let out = run(&sb, "main", "pwd").await;
    assert_eq!(out.output, "/home/ubuntu/project\n");
    assert_eq!(out.console.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shells_keep_their_own_directory_and_environment() {
    let env = setup(|c| c.foreground_wait = Duration::from_secs(1));
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(
        &sb,
        "a",
        "mkdir -p work/deep && cd work/deep && export FOO=bar && X=local",
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{}", out.output);
    let out = run(&sb, "a", "pwd; echo \"$FOO $X\"").await;
    assert_eq!(out.output, "/home/ubuntu/work/deep\nbar local\n");
    assert_eq!(out.console[1].ps1, "ubuntu@sandbox:~/work/deep $");
    let out = run(&sb, "b", "pwd; echo \"${FOO:-unset}\"").await;
    assert_eq!(out.output, "/home/ubuntu\nunset\n");
    // exec_dir changes the directory before the command.
    let out = sb.shell_exec("b", "/tmp", "pwd").await.expect("exec");
    assert_eq!(out.output, "/tmp\n");
    let out = sb
        .shell_exec("b", "/nonexistent", "echo never")
        .await
        .expect("exec");
    assert_eq!(out.exit_code, Some(1));
    assert!(out.output.contains("No such file"), "{}", out.output);
    // Quotes, backslashes, multi-line commands and non-ASCII survive the trip.
    let out = run(
        &sb,
        "b",
        "printf '%s\\n' \"it's\" 'a\\b' \"ü €\"\nif true; then\n  echo multi\nfi",
    )
    .await;
    assert_eq!(out.output, "it's\na\\b\nü €\nmulti\n");
    // A command printing a fake end marker does not end early.
    let out = run(
        &sb,
        "b",
        "printf '\\n\\x1eIHdeadbeef 0 /\\x1e\\n'; sleep 0.2; echo after",
    )
    .await;
    assert!(out.output.ends_with("after\n"), "{:?}", out.output);
    // A killed shell comes back with its directory and exported variables.
    let out = sb.shell_exec("a", "", "sleep 100").await;
    assert!(out.is_ok());
    let killed = sb.shell_kill("a").await.expect("kill");
    assert!(!killed.running);
    let out = run(&sb, "a", "pwd; echo $FOO").await;
    assert_eq!(out.output, "/home/ubuntu/work/deep\nbar\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_commands_wait_write_and_kill() {
    let env = setup(|c| c.foreground_wait = Duration::from_millis(300));
    let sb = env.sandbox(SessionId::new()).await;
    let out = sb
        .shell_exec("s", "", "echo start; sleep 1.5; echo done")
        .await
        .expect("exec");
    assert!(out.running);
    assert_eq!(out.exit_code, None);
    assert_eq!(out.output, "start\n");
    let again = sb.shell_exec("s", "", "echo other").await;
    let msg = invalid_message(again);
    assert!(
        msg.contains("still running") && msg.contains("shell_wait"),
        "{msg}"
    );
    let out = sb.shell_wait("s", Some(10)).await.expect("wait");
    assert!(!out.running);
    assert_eq!(out.output, "start\ndone\n");
    assert_eq!(out.exit_code, Some(0));

    // Input to a command that reads stdin.
    let out = sb
        .shell_exec(
            "s",
            "",
            "read -r name; echo \"hello $name\"; read -r x; echo \"x=$x\"",
        )
        .await
        .expect("exec");
    assert!(out.running);
    let out = sb.shell_write("s", "world", true).await.expect("write");
    assert!(out.running, "{out:?}");
    let out = wait_until(&sb, "s", 10, |o| o.output.contains("hello world")).await;
    assert_eq!(out.output, "hello world\n");
    sb.shell_write("s", "4", true).await.expect("write");
    let out = sb.shell_wait("s", Some(5)).await.expect("wait");
    assert_eq!(out.output, "hello world\nx=4\n");
    // Writing when nothing runs is refused; unread input never becomes a command.
    invalid_message(sb.shell_write("s", "rm -rf ~", true).await);
    let out = sb
        .shell_exec("s", "", "echo $(head -c 3 </dev/stdin)")
        .await
        .expect("exec");
    assert!(out.running);
    sb.shell_write("s", "abcdef", true).await.expect("write");
    let out = sb.shell_wait("s", Some(5)).await.expect("wait");
    assert_eq!(out.output, "abc\n");
    let out = run(&sb, "s", "timeout 0.5 cat; echo rc=$?").await;
    assert_eq!(out.output, "rc=124\n", "the left-over input must be gone");

    // shell_kill stops the command and its children.
    let out = sb
        .shell_exec("k", "", "bash -c 'sleep 987651 & sleep 987652'")
        .await
        .expect("exec");
    assert!(out.running);
    let deadline = Instant::now() + Duration::from_secs(5);
    while host_processes_with("987651") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(host_processes_with("987651") >= 1);
    let out = sb.shell_kill("k").await.expect("kill");
    assert!(!out.running);
    assert_eq!(out.exit_code, None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (host_processes_with("987651") + host_processes_with("987652")) > 0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        host_processes_with("987651") + host_processes_with("987652"),
        0
    );
    let out = run(&sb, "k", "echo alive").await;
    assert_eq!(out.output, "alive\n");
    invalid_message(sb.shell_view("never-used").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shells_survive_odd_commands() {
    let env = setup(|c| c.foreground_wait = Duration::from_millis(500));
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(&sb, "o", "printf 'no newline'").await;
    assert_eq!(out.output, "no newline");
    // Closing stdout/stderr breaks only that command.
    let out = run(&sb, "o", "echo before; exec >&- 2>&-; echo gone").await;
    assert_eq!((out.output.as_str(), out.exit_code), ("before\n", Some(1)));
    let out = run(&sb, "o", "echo back").await;
    assert_eq!(out.output, "back\n");
    // `set -e` then a failure ends the shell like in a terminal; the id stays usable.
    let out = run(&sb, "o", "set -e; false; echo not reached").await;
    assert_eq!((out.output.as_str(), out.exit_code), ("", Some(1)));
    let out = run(&sb, "o", "echo fresh; [[ $- == *e* ]] || echo no-errexit").await;
    assert_eq!(out.output, "fresh\nno-errexit\n");
    // `exec` of another program: it gets the input, and can be killed.
    let out = sb.shell_exec("o", "", "exec cat").await.expect("exec");
    assert!(out.running);
    sb.shell_write("o", "to cat", true).await.expect("write");
    let out = wait_until(&sb, "o", 10, |o| o.output == "to cat\n").await;
    assert_eq!(out.output, "to cat\n");
    let out = sb.shell_kill("o").await.expect("kill");
    assert_eq!(out.output, "to cat\n[killed]\n");
    // Progress bars collapse to what a terminal shows; colors are stripped.
    let out = run(
        &sb,
        "o",
        "for i in 1 2 3; do printf '%d%%\\r' $((i*33)); done; printf '\\033[32mok\\033[0m\\n'",
    )
    .await;
    assert_eq!(out.output, "ok\n");
    // A server started in the background of one shell answers another (shared network).
    let out = run(
        &sb,
        "srv",
        "python3 -m http.server 18765 --bind 127.0.0.1 >/dev/null 2>&1 & sleep 0.7; echo started",
    )
    .await;
    assert_eq!(out.output, "started\n");
    let out = run(
        &sb,
        "cli",
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:18765/').status)\"",
    )
    .await;
    assert_eq!(out.output, "200\n");
    sb.shell_kill("srv").await.expect("kill");
    // Commands of different shells run in parallel.
    let started = Instant::now();
    let (a, b) = tokio::join!(
        run(&sb, "p1", "sleep 2; echo p1"),
        run(&sb, "p2", "sleep 2; echo p2")
    );
    assert_eq!(a.output, "p1\n");
    assert_eq!(b.output, "p2\n");
    assert!(started.elapsed() < Duration::from_millis(3800));
    // Output that merely quotes a fork failure does not count as the process limit.
    let out = run(
        &sb,
        "q",
        "KEEPV=still; echo 'bash: fork: retry: Resource temporarily unavailable'",
    )
    .await;
    assert_eq!(out.limit_hit, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = run(&sb, "q", "echo $KEEPV").await;
    assert_eq!(out.output, "still\n", "the shell was not restarted");
    // A long command line.
    let out = run(&sb, "o", &format!("echo {} | wc -c", "x".repeat(200_000))).await;
    assert_eq!(out.output, "200001\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_cannot_see_host_secrets_or_other_sessions() {
    let env = setup(|c| c.hidden_paths = vec![PathBuf::from("/etc/debian_version")]);
    // A "secret" of the server outside root_dir, and one inside root_dir's parent.
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_dir.path().join("server-secret.txt");
    std::fs::write(&secret, "TOP-SECRET-SERVER").expect("write");
    std::fs::set_permissions(secret_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let data_secret = env.base.join("server-data.txt");
    std::fs::write(&data_secret, "TOP-SECRET-DATA").expect("write");

    let other = env.sandbox(SessionId::new()).await;
    other
        .file_write(
            "private.txt",
            "OTHER-SESSION-DATA",
            &WriteOptions::default(),
        )
        .await
        .expect("write");
    let other_home = env.provider.workspace_dir(SessionId::new());
    let other_home = other_home
        .parent()
        .and_then(Path::parent)
        .expect("root")
        .to_path_buf();

    let sb = env.sandbox(SessionId::new()).await;
    let cmd = format!(
        "cat /etc/shadow; cat {secret}; cat {data}; ls {root}; cat {root}/*/home/private.txt; ls /root; \
         grep -rs TOP-SECRET / --exclude-dir=proc --exclude-dir=usr | head -3; echo end",
        secret = secret.display(),
        data = data_secret.display(),
        root = other_home.display(),
    );
    let out = run(&sb, "x", &cmd).await;
    assert!(
        out.output.contains("/etc/shadow: Permission denied"),
        "{}",
        out.output
    );
    assert!(!out.output.contains("TOP-SECRET"), "{}", out.output);
    assert!(!out.output.contains("OTHER-SESSION-DATA"), "{}", out.output);
    assert!(out.output.ends_with("end\n"));
    let out = run(
        &sb,
        "x",
        "cat /etc/debian_version; unshare --user true; echo unshare=$?",
    )
    .await;
    if Path::new("/etc/debian_version").exists() {
        assert!(
            out.output
                .contains("/etc/debian_version: Permission denied"),
            "{}",
            out.output
        );
    }
    assert!(
        out.output.ends_with("unshare=1\n"),
        "nested user namespaces: {}",
        out.output
    );
    let out = run(
        &sb,
        "x",
        "touch /usr/x /etc/x 2>&1; echo $?; ls /proc | grep -c '^[0-9]'",
    )
    .await;
    assert!(
        out.output.contains("Read-only file system"),
        "{}",
        out.output
    );
    let procs: usize = out
        .output
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(999);
    assert!(
        procs < 10,
        "the sandbox sees host processes: {}",
        out.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_tools_stay_inside() {
    let env = setup(|_| {});
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(
        &sb,
        "x",
        "ln -s /etc/passwd pw; ln -s ../../.. up; mkdir -p d; echo inside > d/f; ln -s /home/ubuntu/d ok; \
         ln -s d/f rel; ln -s /tmp/t tmplink; echo temp > /tmp/t; echo done",
    )
    .await;
    assert_eq!(out.output, "done\n");
    for bad in [
        "pw",
        "up/etc/passwd",
        "../x",
        "/etc/passwd",
        "/home/ubuntu/../../etc/passwd",
        "/root/x",
    ] {
        let msg = invalid_message(sb.file_read(bad, None, None).await);
        assert!(
            msg.contains("outside") || msg.contains(".."),
            "{bad}: {msg}"
        );
    }
    invalid_message(sb.file_write("pw", "pwned", &WriteOptions::default()).await);
    invalid_message(
        sb.file_write("up/tmp/escape", "x", &WriteOptions::default())
            .await,
    );
    invalid_message(sb.put_file("up/escape", b"x").await);
    invalid_message(sb.file_find_by_name("up", "*").await);
    let passwd = std::fs::read_to_string("/etc/passwd").expect("passwd");
    assert!(!passwd.contains("pwned"));
    // Links that stay inside work.
    let text = sb.file_read("ok/f", None, None).await.expect("read");
    assert_eq!(text.content, "inside\n");
    assert_eq!(text.path, "/home/ubuntu/d/f");
    assert_eq!(
        sb.file_read("rel", None, None).await.expect("read").content,
        "inside\n"
    );
    assert_eq!(
        sb.file_read("tmplink", None, None)
            .await
            .expect("read")
            .content,
        "temp\n"
    );
    sb.file_write("ok/new.txt", "via link", &WriteOptions::default())
        .await
        .expect("write through an inside link");
    let out = run(&sb, "x", "cat d/new.txt; echo; ls -l pw | cut -c1").await;
    assert_eq!(out.output, "via link\nl\n", "the link itself stays a link");
    // The link `pw` still points at the sandbox's /etc/passwd, not replaced by a file.
    let msg = invalid_message(sb.file_read("/home/ubuntu/d/missing", None, None).await);
    assert!(msg.contains("no such file"), "{msg}");
    invalid_message(sb.file_read("d", None, None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_operations() {
    let env = setup(|c| c.file_read_cap_bytes = 64);
    let sb = env.sandbox(SessionId::new()).await;
    let body: String = (0..10).map(|i| format!("line {i}\n")).collect();
    sb.file_write("notes/a.txt", &body, &WriteOptions::default())
        .await
        .expect("write");
    let t = sb
        .file_read("notes/a.txt", Some(2), Some(4))
        .await
        .expect("read");
    assert_eq!(t.content, "line 2\nline 3\n");
    assert_eq!(t.total_lines, 10);
    assert!(!t.truncated);
    let t = sb
        .file_read("/home/ubuntu/notes/a.txt", Some(-2), None)
        .await
        .expect("read");
    assert_eq!(t.content, "line 8\nline 9\n");
    let t = sb.file_read("notes/a.txt", None, None).await.expect("read");
    assert!(t.truncated);
    assert_eq!(t.content.len(), 64);
    // Append, leading and trailing newline.
    sb.file_write(
        "notes/a.txt",
        "tail",
        &WriteOptions {
            append: true,
            leading_newline: true,
            trailing_newline: true,
        },
    )
    .await
    .expect("append");
    let t = sb
        .file_read("notes/a.txt", Some(-2), None)
        .await
        .expect("read");
    assert_eq!(t.content, "\ntail\n");
    // Replace on the whole file.
    let n = sb
        .file_str_replace("notes/a.txt", "line", "row")
        .await
        .expect("replace");
    assert_eq!(n, 10);
    let msg = invalid_message(sb.file_str_replace("notes/a.txt", "line", "row").await);
    assert!(msg.contains("old_str not found"), "{msg}");
    // Search.
    let m = sb
        .file_find_in_content("notes/a.txt", r"row [3-4]$")
        .await
        .expect("find");
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].line, 4);
    assert_eq!(m[0].text, "row 3");
    invalid_message(sb.file_find_in_content("notes/a.txt", "(").await);
    sb.file_write("src/x/main.py", "print(1)", &WriteOptions::default())
        .await
        .expect("write");
    sb.file_write("src/readme.md", "# hi", &WriteOptions::default())
        .await
        .expect("write");
    let found = sb
        .file_find_by_name("/home/ubuntu", "*.py")
        .await
        .expect("find");
    assert_eq!(found, vec!["/home/ubuntu/src/x/main.py".to_string()]);
    let found = sb.file_find_by_name("src", "**/*.md").await.expect("find");
    assert_eq!(found, vec!["/home/ubuntu/src/readme.md".to_string()]);
    // Bytes in and out.
    let bytes: Vec<u8> = (0..=255u8).collect();
    sb.put_file("/tmp/blob.bin", &bytes).await.expect("put");
    assert_eq!(
        sb.get_file("/tmp/blob.bin", 1000).await.expect("get"),
        bytes
    );
    invalid_message(sb.get_file("/tmp/blob.bin", 10).await);
    // Files written by the host are the sandbox user's and vice versa.
    let out = run(
        &sb,
        "x",
        "echo more >> notes/a.txt && stat -c %U notes/a.txt && echo made > mine.txt",
    )
    .await;
    assert_eq!(out.output, "ubuntu\n", "{}", out.output);
    let t = sb.file_read("mine.txt", None, None).await.expect("read");
    assert_eq!(t.content, "made\n");
    sb.file_str_replace("mine.txt", "made", "changed")
        .await
        .expect("replace");
    let out = run(&sb, "x", "cat mine.txt; stat -c '%U %a' mine.txt").await;
    assert_eq!(out.output, "changed\nubuntu 644\n");
    let host_file = env.provider.workspace_dir(SessionId::new());
    assert!(host_file.parent().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_bomb_is_contained() {
    let env = setup(|c| {
        c.max_processes = 48;
        c.command_timeout = Duration::from_secs(20);
    });
    let sb = env.sandbox(SessionId::new()).await;
    // Every process of the sandbox has the limit (no helper process without it that a
    // sandbox process could take over with ptrace).
    let out = run(
        &sb,
        "probe",
        "sleep 5 & for p in /proc/[0-9]*; do grep -h 'Max processes' $p/limits; done | sort -u; \
         ps -o comm= -p 1; kill %1",
    )
    .await;
    let limits: Vec<&str> = out.output.lines().collect();
    assert_eq!(limits.len(), 2, "{}", out.output);
    assert!(
        limits[0].split_whitespace().filter(|w| *w == "48").count() == 2,
        "{}",
        out.output
    );
    assert_eq!(limits[1], "bash");
    // Bounded probe first: at most 200 processes are ever attempted.
    let probe = "python3 - <<'EOF'\nimport subprocess\nps = []\nfor i in range(200):\n    try:\n        ps.append(subprocess.Popen(['sleep', '30']))\n    except OSError as e:\n        print('refused', e.errno)\n        break\nprint('started', len(ps))\nfor p in ps:\n    p.kill()\nEOF";
    let out = run(&sb, "probe", probe).await;
    assert!(out.output.contains("refused 11"), "{}", out.output);
    let started: usize = out
        .output
        .lines()
        .find_map(|l| l.strip_prefix("started "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(999);
    assert!(
        started < 48,
        "the process limit did not hold: {}",
        out.output
    );
    // The limit holds, so the real thing is safe.
    let out = sb
        .shell_exec("bomb", "", "bomb() { bomb | bomb & }; bomb; wait")
        .await
        .expect("exec");
    let out = if out.limit_hit.is_some() && !out.running {
        out
    } else {
        wait_until(&sb, "bomb", 30, |o| o.limit_hit.is_some() && !o.running).await
    };
    assert!(
        out.limit_hit
            .as_deref()
            .is_some_and(|l| l.contains("process limit")),
        "{out:?}"
    );
    assert!(!out.running);
    // The host is fine, and so is the sandbox.
    let status = std::process::Command::new("true")
        .status()
        .expect("spawn on host");
    assert!(status.success());
    let out = run(&sb, "bomb", "echo recovered").await;
    assert_eq!(out.output, "recovered\n");
    let out = run(&sb, "probe", "echo other shell fine").await;
    assert_eq!(out.output, "other shell fine\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_time_cpu_and_memory_limits() {
    let env = setup(|c| {
        c.command_timeout = Duration::from_secs(2);
        c.foreground_wait = Duration::from_secs(1);
    });
    let sb = env.sandbox(SessionId::new()).await;
    let started = Instant::now();
    let out = sb
        .shell_exec("w", "", "echo looping; while true; do :; done")
        .await
        .expect("exec");
    assert!(out.running);
    let out = sb.shell_wait("w", Some(10)).await.expect("wait");
    assert!(!out.running);
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(
        out.limit_hit.as_deref(),
        Some("wall time limit of 2 s reached")
    );
    assert_eq!(out.exit_code, None);
    assert_eq!(out.output, "looping\n[killed]\n");
    let out = run(&sb, "w", "sleep 5 & sleep 6; echo never").await;
    assert_eq!(
        out.limit_hit.as_deref(),
        Some("wall time limit of 2 s reached")
    );

    let env = setup(|c| {
        c.cpu_seconds = 1;
        c.memory_bytes = 512 * 1024 * 1024;
    });
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(&sb, "c", "python3 -c 'while True: pass'").await;
    assert_eq!(out.exit_code, Some(152), "{out:?}");
    assert_eq!(
        out.limit_hit.as_deref(),
        Some("CPU time limit of 1 s reached")
    );

    // Memory: the whole sandbox's (cgroup) or, without cgroups, each process's.
    let env = setup(|c| c.memory_bytes = 512 * 1024 * 1024);
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(
        &sb,
        "m",
        "python3 -c 'b = bytearray(1024 * 1024 * 1024); b[::4096] = b\"x\" * len(b[::4096])'",
    )
    .await;
    assert_ne!(out.exit_code, Some(0));
    assert!(
        out.limit_hit
            .as_deref()
            .is_some_and(|l| l.contains("memory limit")),
        "{out:?}"
    );
    let out = run(&sb, "m", "ulimit -n; ulimit -u").await;
    assert_eq!(out.output, "1024\n64\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_capped_and_utf8_intact() {
    let env = setup(|c| {
        c.output_cap_bytes = 4096;
        c.output_stop_bytes = 80 * 1024 * 1024;
    });
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(&sb, "o", "yes | head -c 50M; echo; echo END").await;
    assert_eq!(out.exit_code, Some(0));
    assert!(out.output.starts_with("y\ny\ny\n"), "{}", &out.output[..20]);
    assert!(out.output.contains("elided"), "{}", out.output.len());
    assert!(out.output.ends_with("END\n"));
    assert!(out.output.len() < 4096 + 300, "{}", out.output.len());

    // Multi-byte characters written one byte at a time, flushed each time.
    let script = "import sys, time\ns = ('é😀中' * 300).encode()\nfor i, b in enumerate(s):\n    sys.stdout.buffer.write(bytes([b]))\n    sys.stdout.buffer.flush()\n    if i % 97 == 0:\n        time.sleep(0.001)\n";
    sb.file_write("utf.py", script, &WriteOptions::default())
        .await
        .expect("write");
    let out = run(&sb, "u", "python3 utf.py").await;
    let expected = "é😀中".repeat(300);
    assert_eq!(out.output.len(), expected.len().min(4096), "{}", out.output);
    assert!(!out.output.contains('\u{fffd}'));
    let out = run(&sb, "u", "python3 -c \"import sys; sys.stdout.buffer.write(b'ok\\xff\\n')\"; printf '\\033[1;31mred\\033[0m\\n'").await;
    assert_eq!(out.output, "ok\u{fffd}\nred\n");
    // Endless output is stopped.
    let env = setup(|c| c.output_stop_bytes = 4 * 1024 * 1024);
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(&sb, "y", "yes").await;
    assert!(
        out.limit_hit
            .as_deref()
            .is_some_and(|l| l.contains("output limit")),
        "{out:?}"
    );
}

/// A Python probe run in the sandbox: `tcp HOST PORT`, `unix NAME` (abstract socket) or
/// `dns SERVER` (a raw query for a `.invalid` name: any answer shows the server works).
const PROBE: &str = r#"import socket, sys
kind = sys.argv[1]
try:
    if kind == 'tcp':
        host, port = sys.argv[2], int(sys.argv[3])
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect((host, port))
    elif kind == 'unix':
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(b'\0' + sys.argv[2].encode())
    elif kind == 'dns':
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[2], 53))
        if s.recv(4096)[:2] != bytes.fromhex(sys.argv[3])[:2]:
            raise OSError('unexpected answer')
    print('connected')
except OSError as e:
    print('failed', e)
"#;

async fn probe(sb: &Arc<dyn Sandbox>, args: &str) -> String {
    sb.file_write("/tmp/probe.py", PROBE, &WriteOptions::default())
        .await
        .expect("write probe");
    run(sb, "probe", &format!("python3 /tmp/probe.py {args}"))
        .await
        .output
}

/// The host's IPv4 address on a non-loopback interface (where services bound to all
/// interfaces listen, as an outside machine would reach them), if it has one.
fn host_outside_ipv4() -> Option<std::net::Ipv4Addr> {
    // `connect` on a UDP socket sends nothing: it only picks the source address of the
    // route to the target.
    let routed = std::net::UdpSocket::bind("0.0.0.0:0").ok().and_then(|s| {
        s.connect("192.0.2.254:9")
            .or_else(|_| s.connect("10.255.255.254:9"))
            .ok()?;
        match s.local_addr().ok()?.ip() {
            std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
            _ => None,
        }
    });
    // Otherwise any local address of the host's routing table.
    routed.or_else(|| {
        let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
        let mut last = None;
        for line in trie.lines() {
            if let Some(addr) = line.trim().strip_prefix("|-- ") {
                last = addr.parse::<std::net::Ipv4Addr>().ok();
            } else if line.contains("/32 host LOCAL")
                && let Some(ip) = last
                && !ip.is_loopback()
            {
                return Some(ip);
            }
        }
        None
    })
}

/// A DNS query (id 0x4948) for `ironhand-probe.invalid`, type A, as hex.
const DNS_QUERY: &str =
    "4948010000010000000000000e69726f6e68616e642d70726f626507696e76616c69640000010001";

/// Whether the host's own resolver answers [`DNS_QUERY`].
fn host_dns_answers() -> bool {
    let Ok(conf) = std::fs::read_to_string("/etc/resolv.conf") else {
        return false;
    };
    let Some(server) = conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next())
            .flatten()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
    }) else {
        return false;
    };
    let query: Vec<u8> = (0..DNS_QUERY.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&DNS_QUERY[i..i + 2], 16).ok())
        .collect();
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let Ok(sock) = std::net::UdpSocket::bind(bind) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    sock.send_to(&query, (server, 53)).is_ok()
        && sock
            .recv(&mut buf)
            .is_ok_and(|n| n >= 2 && buf[..2] == query[..2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_off_reaches_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let off = setup(|c| c.network = false);
    let sb = off.sandbox(SessionId::new()).await;
    let out = probe(&sb, &format!("tcp 127.0.0.1 {port}")).await;
    assert!(out.starts_with("failed"), "{out}");
    if let Some(ip) = host_outside_ipv4() {
        let outside = std::net::TcpListener::bind((ip, 0)).expect("listen");
        let port = outside.local_addr().expect("addr").port();
        let out = probe(&sb, &format!("tcp {ip} {port}")).await;
        assert!(out.starts_with("failed"), "{out}");
    }
    let out = run(
        &sb,
        "n",
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
    )
    .await;
    assert_eq!(out.output, "lo\n");
    drop(listener);
}

/// The hole this closes: with the network on, a sandbox must not reach what the host
/// serves on its loopback (databases, the server's own API) nor its abstract unix sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_on_reaches_out_but_not_the_host_loopback() {
    // The host's own outside address is refused by the egress filter (see
    // sandboxes_cannot_reach_private_…); allowed here, with a sandbox user of this test's
    // own, to show what the filter lets through is reached.
    let outside_ip = host_outside_ipv4();
    let env = setup(|c| {
        c.network = true;
        c.run_as_uid = 60000 + (std::process::id() % 500) + 1100;
        c.egress_allow = outside_ip.iter().map(|ip| ip.to_string()).collect();
    });
    let sb = env.sandbox(SessionId::new()).await;

    let lo = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let lo_port = lo.local_addr().expect("addr").port();
    std::net::TcpStream::connect(("127.0.0.1", lo_port)).expect("the host reaches it");
    for target in [
        format!("127.0.0.1 {lo_port}"),
        // slirp4netns's gateway would be the host's 127.0.0.1 without --disable-host-loopback.
        format!("10.0.2.2 {lo_port}"),
        format!("0.0.0.0 {lo_port}"),
    ] {
        let out = probe(&sb, &format!("tcp {target}")).await;
        assert!(out.starts_with("failed"), "{target}: {out}");
    }
    if let Ok(lo6) = std::net::TcpListener::bind("[::1]:0") {
        let port = lo6.local_addr().expect("addr").port();
        let out = probe(&sb, &format!("tcp ::1 {port}")).await;
        assert!(out.starts_with("failed"), "::1: {out}");
    }

    use std::os::linux::net::SocketAddrExt;
    let name = format!("ironhand-test-{}", uuid::Uuid::new_v4().simple());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
    let abstract_listener = std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind");
    std::os::unix::net::UnixStream::connect_addr(&addr).expect("the host reaches it");
    let out = probe(&sb, &format!("unix {name}")).await;
    assert!(out.starts_with("failed"), "abstract socket: {out}");
    drop(abstract_listener);

    // What an outside machine could reach, the sandbox reaches: outbound connectivity.
    match outside_ip {
        Some(ip) => {
            let outside = std::net::TcpListener::bind((ip, 0)).expect("listen");
            let port = outside.local_addr().expect("addr").port();
            let out = probe(&sb, &format!("tcp {ip} {port}")).await;
            assert_eq!(out, "connected\n", "outside address {ip}:{port}");
            // The same port on the host's loopback only is still out of reach.
            let out = probe(&sb, &format!("tcp {ip} {lo_port}")).await;
            assert!(out.starts_with("failed"), "{out}");
        }
        None => eprintln!(
            "SKIPPED the outbound part: this host has no non-loopback IPv4 address to listen on"
        ),
    }

    // No capabilities and no namespace descriptors inside.
    let out = run(
        &sb,
        "x",
        "grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status | awk '{print $2}' | sort -u; \
         ls -l /proc/1/fd/ /proc/self/fd/ | grep -c -E 'user:|net:'",
    )
    .await;
    assert_eq!(out.output, "0000000000000000\n0\n");
    drop(lo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_on_is_one_network_per_session() {
    let env = setup(|c| c.network = true);
    let sb = env.sandbox(SessionId::new()).await;
    // A port the host uses on its loopback is free in the sandbox's own.
    let host_lo = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = host_lo.local_addr().expect("addr").port();
    let out = sb
        .shell_exec(
            "server",
            "",
            &format!("exec python3 -m http.server {port} --bind 127.0.0.1"),
        )
        .await
        .expect("exec");
    assert!(out.running, "{out:?}");
    let out = probe(&sb, "tcp 127.0.0.1 1").await;
    assert!(out.starts_with("failed"), "{out}");
    let wait = format!(
        "for i in $(seq 50); do python3 /tmp/probe.py tcp 127.0.0.1 {port} | grep -q connected && break; sleep 0.1; done"
    );
    run(&sb, "client", &wait).await;
    // Another shell of the same session reaches it on the shared loopback …
    let out = probe(&sb, &format!("tcp 127.0.0.1 {port}")).await;
    assert_eq!(out, "connected\n");
    // … another session does not.
    let other = env.sandbox(SessionId::new()).await;
    let out = probe(&other, &format!("tcp 127.0.0.1 {port}")).await;
    assert!(out.starts_with("failed"), "{out}");
    let out = sb.shell_kill("server").await.expect("kill");
    assert!(!out.running);
    drop(host_lo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_on_resolves_names() {
    let env = setup(|c| c.network = true);
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(&sb, "d", "cat /etc/resolv.conf; getent hosts localhost").await;
    let mut lines = out.output.lines();
    assert_eq!(lines.next(), Some("nameserver 10.0.2.3"), "{}", out.output);
    assert!(
        lines
            .next()
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("localhost")),
        "{}",
        out.output
    );
    // slirp4netns forwards 10.0.2.3 to the host's resolver: whenever that answers the host,
    // it answers the sandbox (a `.invalid` name: no internet needed).
    if host_dns_answers() {
        let out = probe(&sb, &format!("dns 10.0.2.3 {DNS_QUERY}")).await;
        assert_eq!(out, "connected\n", "DNS through slirp4netns");
    } else {
        eprintln!("SKIPPED the DNS query: the host's own resolver does not answer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_on_without_slirp4netns_fails_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = setup(|c| c.slirp4netns_path = Some(dir.path().join("no-slirp4netns")));
    let err = missing.provider.check().await.expect_err("check must fail");
    let msg = err.to_string();
    assert!(matches!(err, SandboxError::Unavailable(_)), "{msg}");
    assert!(msg.contains("slirp4netns"), "{msg}");
    assert!(msg.contains("install-sandbox-deps.sh"), "{msg}");
    let err = missing.provider.sandbox(SessionId::new()).await.err();
    assert!(matches!(err, Some(SandboxError::Unavailable(_))), "{err:?}");
    // Not needed with the network off.
    let off = setup(|c| {
        c.network = false;
        c.slirp4netns_path = Some(dir.path().join("no-slirp4netns"));
    });
    off.provider.check().await.expect("check");

    // A slirp4netns that cannot attach: nothing runs (no fallback to the host's network).
    let fake = missing.base.join("fake-slirp4netns");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'open(\"/dev/net/tun\"): Permission denied' >&2\nexit 1\n",
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let broken = setup(|c| c.slirp4netns_path = Some(fake));
    let err = broken.provider.check().await.expect_err("check must fail");
    let msg = err.to_string();
    assert!(matches!(err, SandboxError::Unavailable(_)), "{msg}");
    assert!(msg.contains("/dev/net/tun"), "{msg}");
    assert!(msg.contains("chmod 0666 /dev/net/tun"), "{msg}");
    let sb = broken.sandbox(SessionId::new()).await;
    let err = sb.shell_exec("x", "", "echo ran").await;
    assert!(matches!(err, Err(SandboxError::Unavailable(_))), "{err:?}");
}

/// slirp4netns processes that are children of this process (zombies included).
fn own_slirp_helpers() -> Vec<u32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid …
            let Some((comm, rest)) = stat.split_once(") ") else {
                return false;
            };
            comm.ends_with("(slirp4netns") && rest.split_whitespace().nth(1) == Some(me.as_str())
        })
        .collect()
}

fn process_exists(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.contains("(slirp4netns)") && !s.contains(") Z "))
}

/// slirp4netns lives exactly as long as its sandbox: stopped by destroy and by reaping,
/// and gone when the server dies without stopping it. Runs in child processes so that
/// other tests' helpers are not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_helper_ends_with_the_sandbox() {
    let exe = std::env::current_exe().expect("exe");
    let out = tokio::process::Command::new(&exe)
        .args([
            "--exact",
            "helper_probe_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("IRONHAND_HELPER_PROBE", "lifecycle")
        .output()
        .await
        .expect("child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The server dies (SIGKILL): slirp4netns notices and exits, the shells die too.
    let mut child = tokio::process::Command::new(&exe)
        .args([
            "--exact",
            "helper_probe_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("IRONHAND_HELPER_PROBE", "crash")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("child test");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let pid = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(pid) = line.strip_prefix("SLIRP ") {
                return pid.trim().parse::<u32>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("the child reports its slirp4netns");
    assert!(process_exists(pid));
    assert_eq!(host_processes_with("987659"), 1);
    child.kill().await.expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (process_exists(pid) || host_processes_with("987659") > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !process_exists(pid),
        "slirp4netns {pid} outlived the server"
    );
    assert_eq!(
        host_processes_with("987659"),
        0,
        "a sandbox process outlived the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by network_helper_ends_with_the_sandbox in a child process"]
async fn helper_probe_child() {
    let mode = std::env::var("IRONHAND_HELPER_PROBE").unwrap_or_default();
    let env = setup(|c| {
        c.network = true;
        c.idle_timeout = Duration::from_millis(300);
        // Killed mid-way on purpose: no mounts to leave behind.
        c.workspace_max_bytes = 0;
    });
    env.provider.check().await.expect("check");
    assert_eq!(own_slirp_helpers(), Vec::<u32>::new(), "after check");
    let session = SessionId::new();
    let sb = env.sandbox(session).await;
    if mode == "crash" {
        let out = sb.shell_exec("bg", "", "sleep 987659").await.expect("exec");
        assert!(out.running);
        let helpers = own_slirp_helpers();
        assert_eq!(helpers.len(), 1);
        println!("SLIRP {}", helpers[0]);
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    assert_eq!(run(&sb, "a", "echo one").await.output, "one\n");
    assert_eq!(run(&sb, "b", "echo two").await.output, "two\n");
    assert_eq!(own_slirp_helpers().len(), 1, "one helper per session");
    env.provider.destroy(session, false).await.expect("destroy");
    assert_eq!(own_slirp_helpers(), Vec::<u32>::new(), "after destroy");

    let sb = env.sandbox(session).await;
    assert_eq!(run(&sb, "a", "echo again").await.output, "again\n");
    assert_eq!(own_slirp_helpers().len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.provider.reap_idle().await, 1);
    assert_eq!(own_slirp_helpers(), Vec::<u32>::new(), "after reaping");
    // Used again after reaping: a new network.
    let out = run(&sb, "a", "grep -c tap0 /proc/net/dev").await;
    assert_eq!(out.output, "1\n");
    assert_eq!(own_slirp_helpers().len(), 1);
    env.provider.destroy(session, true).await.expect("destroy");
    assert_eq!(own_slirp_helpers(), Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_and_reap() {
    // A plain workspace directory, visible on the host while the sandbox is stopped (a
    // size-limited one is unmounted then: see a_full_workspace_stops_writes_…).
    let env = setup(|c| {
        c.idle_timeout = Duration::from_millis(400);
        c.workspace_max_bytes = 0;
    });
    let session = SessionId::new();
    let sb = env.sandbox(session).await;
    let same = env.sandbox(session).await;
    assert!(Arc::ptr_eq(&sb, &same));
    drop(same);
    let out = run(
        &sb,
        "r",
        "echo keep > kept.txt; echo temp > /tmp/t.txt; cd /tmp",
    )
    .await;
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(env.provider.reap_idle().await, 0, "not idle yet");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(env.provider.reap_idle().await, 1);
    assert_eq!(env.provider.reap_idle().await, 0);
    // The workspace stays; /tmp and the shells are new.
    let out = run(&sb, "r", "cat kept.txt; pwd; ls /tmp").await;
    assert_eq!(out.output, "keep\n/home/ubuntu\n");
    assert_eq!(out.console.len(), 1);
    let again = env.sandbox(session).await;
    assert!(
        Arc::ptr_eq(&sb, &again),
        "a held sandbox stays the session's"
    );
    drop(again);

    let workspace = env.provider.workspace_dir(session);
    assert!(workspace.join("kept.txt").exists());
    env.provider.destroy(session, false).await.expect("destroy");
    assert!(workspace.join("kept.txt").exists());
    let err = sb.shell_exec("r", "", "echo x").await;
    assert!(matches!(err, Err(SandboxError::Unavailable(_))), "{err:?}");
    let sb = env.sandbox(session).await;
    let out = run(&sb, "r", "cat kept.txt").await;
    assert_eq!(out.output, "keep\n");
    env.provider.destroy(session, true).await.expect("destroy");
    assert!(!workspace.exists());
    let owner = std::fs::metadata(env.base.join("root"))
        .expect("root")
        .uid();
    assert_eq!(owner, own_uid());
}

fn own_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// The server's environment (here a fake API key) never reaches the sandbox. Runs itself
/// in a child process so the variable can be set without touching this process's
/// environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_environment_is_not_visible() {
    let exe = std::env::current_exe().expect("exe");
    let out = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "env_probe_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("LLM_API_KEY", "sk-fake-9f8e7d6c5b4a")
        .env("IRONHAND_ENV_PROBE", "1")
        .output()
        .await
        .expect("child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by server_environment_is_not_visible in a child process"]
async fn env_probe_child() {
    assert_eq!(
        std::env::var("LLM_API_KEY").ok().as_deref(),
        Some("sk-fake-9f8e7d6c5b4a")
    );
    let env = setup(|_| {});
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(
        &sb,
        "e",
        "env; cat /proc/self/environ /proc/1/environ 2>/dev/null | tr '\\0' '\\n'; echo end",
    )
    .await;
    assert!(out.output.ends_with("end\n"));
    assert!(!out.output.contains("sk-fake"), "{}", out.output);
    assert!(!out.output.contains("LLM_API_KEY"), "{}", out.output);
    assert!(!out.output.contains("IRONHAND_ENV_PROBE"), "{}", out.output);
    assert!(out.output.contains("HOME=/home/ubuntu"), "{}", out.output);
    assert!(out.output.contains("USER=ubuntu"), "{}", out.output);
}

/// The host path of `name` in a session's workspace, created by the test process (as a
/// program in the sandbox could, without the sandbox's file-size limit) and given to the
/// sandbox's user like the provider's own files.
fn host_file(env: &Env, session: SessionId, name: &str) -> std::fs::File {
    let path = env.provider.workspace_dir(session).join(name);
    let file = std::fs::File::create(&path).expect("create");
    if own_uid() == 0 {
        let cfg = env.provider.config();
        std::os::unix::fs::chown(&path, Some(cfg.run_as_uid), Some(cfg.run_as_gid)).expect("chown");
    }
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_files_stay_bounded() {
    let env = setup(|c| {
        c.file_read_cap_bytes = 4096;
        c.max_scan_bytes = 8 * 1024 * 1024;
        c.max_edit_bytes = 1024 * 1024;
        c.max_file_bytes = 4 * 1024 * 1024;
    });
    let session = SessionId::new();
    let sb = env.sandbox(session).await;
    // The sandbox cannot make big (or big sparse) files any more.
    let out = run(
        &sb,
        "f",
        "truncate -s 1T sparse; echo rc=$?; head -c 5M /dev/zero > five; echo rc=$?; \
         stat -c %s sparse five",
    )
    .await;
    assert!(
        out.output.contains("File size limit exceeded"),
        "{}",
        out.output
    );
    assert_eq!(out.output.matches("rc=153\n").count(), 2, "{}", out.output);
    assert!(out.output.ends_with("\n0\n4194304\n"), "{}", out.output);
    let out = run(&sb, "f", "head -c 5M /dev/zero > five").await;
    assert_eq!(out.exit_code, Some(153));
    assert_eq!(
        out.limit_hit.as_deref(),
        Some("file size limit of 4.0 MiB (4194304 bytes) reached")
    );
    let out = run(&sb, "f", "ulimit -f").await;
    assert_eq!(out.output, "4096\n");

    // A sparse 1 TiB file (one line of NUL bytes) made on the host.
    host_file(&env, session, "big")
        .set_len(1 << 40)
        .expect("set_len");
    let started = Instant::now();
    let t = sb.file_read("big", None, None).await.expect("read");
    assert!(t.truncated);
    assert!(t.content.len() <= 4096, "{}", t.content.len());
    assert_eq!(t.total_lines, 1);
    let t = sb.file_read("big", Some(0), Some(1)).await.expect("read");
    assert!(t.truncated && t.content.len() <= 4096);
    let msg = invalid_message(sb.file_read("big", Some(-5), None).await);
    assert!(msg.contains("too large to count its lines"), "{msg}");
    let msg = invalid_message(sb.file_str_replace("big", "a", "b").await);
    assert!(
        msg.contains("larger than the 1.0 MiB (1048576 bytes) file_str_replace can handle"),
        "{msg}"
    );
    let append = WriteOptions {
        append: true,
        ..WriteOptions::default()
    };
    let msg = invalid_message(sb.file_write("big", "more", &append).await);
    assert!(msg.contains("file_write with append"), "{msg}");
    assert!(
        sb.file_find_in_content("big", "x")
            .await
            .expect("find")
            .is_empty()
    );
    invalid_message(sb.get_file("big", 1024 * 1024).await);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // One 100 MiB line between short ones: the read is cut, the search sees the line's
    // beginning and the lines after it (within the scan budget).
    let env = setup(|c| {
        c.file_read_cap_bytes = 4096;
        c.max_scan_bytes = 256 * 1024 * 1024;
    });
    let session = SessionId::new();
    let sb = env.sandbox(session).await;
    sb.file_write("keep.txt", "x", &WriteOptions::default())
        .await
        .expect("write");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(host_file(&env, session, "long.txt"));
        f.write_all(b"first\nneedle").expect("write");
        let block = vec![b'a'; 1024 * 1024];
        for _ in 0..100 {
            f.write_all(&block).expect("write");
        }
        f.write_all(b"\nlast needle\n").expect("write");
        f.flush().expect("flush");
    }
    let t = sb.file_read("long.txt", None, None).await.expect("read");
    assert!(t.truncated);
    assert_eq!(t.content.len(), 4096);
    assert_eq!(t.total_lines, 3);
    let t = sb
        .file_read("long.txt", Some(-1), None)
        .await
        .expect("read");
    assert_eq!(t.content, "last needle\n");
    let m = sb
        .file_find_in_content("long.txt", "needle")
        .await
        .expect("find");
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0].line, 2);
    assert!(m[0].text.starts_with("needleaaa") && m[0].text.chars().count() == 501);
    assert_eq!(m[1].line, 3);
    assert_eq!(m[1].text, "last needle");
    // Text after the first 64 KiB of a line is not searched.
    assert!(
        sb.file_find_in_content("long.txt", "a{70000}")
            .await
            .expect("find")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_end_markers_do_not_end_commands() {
    let env = setup(|c| {
        c.output_stop_bytes = 4 * 1024 * 1024;
        c.command_timeout = Duration::from_secs(15);
    });
    let sb = env.sandbox(SessionId::new()).await;
    // No variable of the shell holds the token.
    let out = run(
        &sb,
        "m",
        "set | grep -cE '[0-9a-f]{32}'; echo ${__ih_t:-none}",
    )
    .await;
    assert_eq!(out.output, "0\nnone\n");
    // A marker with a guessed or empty token is output, not the end of the command.
    let started = Instant::now();
    let out = run(
        &sb,
        "m",
        "printf '\\n\\x1eIH%s 0 /\\x1e\\n' \"$__ih_t\"; \
         printf '\\n\\x1eIH%s 0 /\\x1e\\n' 0123456789abcdef0123456789abcdef; sleep 1; echo real; exit 3",
    )
    .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(out.exit_code, Some(3), "{out:?}");
    assert!(out.output.ends_with("real\n"), "{}", out.output);
    // The start of a marker followed by endless output does not grow without bound: the
    // output limit stops it, and the sandbox goes on.
    let started = Instant::now();
    let out = run(
        &sb,
        "m",
        "printf '\\n\\x1eIH%s ' \"$__ih_t\"; cat /dev/zero",
    )
    .await;
    assert!(
        out.limit_hit
            .as_deref()
            .is_some_and(|l| l.contains("output limit")),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Even with the real token (taken from the shell by a DEBUG trap: a command that takes
    // over the shell can see it), an endless "marker" is bounded.
    let started = Instant::now();
    let out = run(
        &sb,
        "m",
        "trap 'if [[ $BASH_COMMAND == *IH* ]]; then t=${BASH_COMMAND#*IH}; t=${t%% *}; \
         printf \"\\n\\x1eIH%s \" \"$t\"; exec cat /dev/zero; fi' DEBUG; echo armed",
    )
    .await;
    assert!(
        out.limit_hit
            .as_deref()
            .is_some_and(|l| l.contains("output limit")),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // A token learnt from an earlier command does not end a later one.
    let out = run(
        &sb,
        "m",
        "trap 'if [[ $BASH_COMMAND == *IH* ]]; then t=${BASH_COMMAND#*IH}; echo ${t%% *} > /tmp/old; \
         trap - DEBUG; fi' DEBUG; echo saved",
    )
    .await;
    assert_eq!(out.output, "saved\n");
    let out = run(
        &sb,
        "m",
        "test -s /tmp/old && printf '\\n\\x1eIH%s 0 /\\x1e\\n' \"$(cat /tmp/old)\"; sleep 1; echo real",
    )
    .await;
    assert_eq!(out.exit_code, Some(0));
    assert!(out.output.ends_with("real\n"), "{}", out.output);
    assert!(
        out.output.contains("IH"),
        "the old marker is output: {}",
        out.output
    );
    let out = run(&sb, "m", "echo fine").await;
    assert_eq!(out.output, "fine\n");
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The name search holds O(depth) descriptors, however many directories it meets. Runs
/// itself in a child process with a low descriptor limit, so that the count is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_by_name_holds_few_descriptors() {
    let exe = std::env::current_exe().expect("exe");
    let out = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "fd_probe_child",
            "--include-ignored",
            "--nocapture",
        ])
        .output()
        .await
        .expect("child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by find_by_name_holds_few_descriptors in a child process"]
async fn fd_probe_child() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = setup(|_| {});
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(
        &sb,
        "d",
        "mkdir w w/d{1..3000} && touch w/d{1..3000}/x && echo made",
    )
    .await;
    assert_eq!(out.output, "made\n");
    // Far fewer descriptors than directories.
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(512),
            maximum: limit.maximum,
        },
    )
    .expect("setrlimit");
    let baseline = open_fds();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut max = 0;
            while !stop.load(Ordering::SeqCst) {
                max = max.max(open_fds());
                std::thread::sleep(Duration::from_micros(100));
            }
            max
        })
    };
    let found = sb.file_find_by_name("w", "x").await;
    stop.store(true, Ordering::SeqCst);
    let max = sampler.join().expect("sampler");
    let found = found.expect("find");
    assert_eq!(
        found.len(),
        1000,
        "every directory was searched (up to the cap)"
    );
    assert!(
        max < baseline + 100,
        "{max} descriptors open, {baseline} before"
    );
    let found = sb.file_find_by_name("w", "d2999").await.expect("find");
    assert_eq!(found, vec!["/home/ubuntu/w/d2999".to_string()]);
    // Still usable: nothing leaked.
    assert!(open_fds() < baseline + 10);
    let out = run(&sb, "d", "echo ok").await;
    assert_eq!(out.output, "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_check_leaves_nothing_behind() {
    let env = setup(|_| {});
    let root = env.base.join("root");
    let leftovers = || {
        std::fs::read_dir(&root)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(".check-"))
                    .count()
            })
            .unwrap_or(0)
    };
    for ms in [1, 10, 20, 30, 40, 60, 100, 200] {
        let r = tokio::time::timeout(Duration::from_millis(ms), env.provider.check()).await;
        if let Ok(r) = r {
            r.expect("check");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while leftovers() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(leftovers(), 0, "after a check dropped at {ms} ms");
    }
}

// --- Whole-sandbox containment: memory (cgroup), workspace size, egress -----------------

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[tokio::test]
async fn memory_is_limited_for_the_whole_sandbox_and_oom_kills_are_reported() {
    let env = setup(|c| c.memory_bytes = 256 * 1024 * 1024);
    let containment = env.provider.containment();
    if !is_root() {
        assert!(
            containment.contains("per-process limits only"),
            "{containment}"
        );
        return;
    }
    assert!(containment.contains("cgroup"), "{containment}");
    let sb = env.sandbox(SessionId::new()).await;
    // Four processes of 100 MiB each: each is far under any per-process limit, together
    // they are over the sandbox's 256 MiB.
    let hold = "python3 -c 'import time; b = bytearray(100 * 1024 * 1024); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(8)'";
    let out = run(
        &sb,
        "mem",
        &format!("for i in 1 2 3 4; do {hold} & done; wait; echo finished"),
    )
    .await;
    assert!(out.output.contains("finished"), "{out:?}");
    let limit = out.limit_hit.clone().unwrap_or_default();
    assert!(
        limit.contains("memory limit of the sandbox"),
        "the OOM kill is reported: {out:?}"
    );
    // The sandbox itself goes on.
    let after = run(&sb, "mem", "echo still-here").await;
    assert_eq!(after.output.trim(), "still-here");
    assert_eq!(after.limit_hit, None, "reported once");
}

#[tokio::test]
async fn a_full_workspace_stops_writes_with_a_clear_error() {
    let env = setup(|c| {
        c.workspace_max_bytes = 64 * 1024 * 1024;
        c.tmp_max_bytes = 16 * 1024 * 1024;
    });
    let session = SessionId::new();
    let sb = env.sandbox(session).await;
    if !is_root() {
        let containment = env.provider.containment();
        assert!(
            containment.contains("checked periodically"),
            "{containment}"
        );
        return;
    }
    let out = run(
        &sb,
        "disk",
        "echo kept > keep.txt && fallocate -l 100M big; echo rc=$?",
    )
    .await;
    assert!(out.output.contains("rc=1"), "{out:?}");
    assert_eq!(
        out.limit_hit.as_deref(),
        Some("No space left: the workspace limit is 64 MiB"),
        "{out:?}"
    );
    // dd into the workspace stops at the limit too, and the host's disk holds no more
    // than the limit.
    let out = run(
        &sb,
        "disk",
        "rm -f big; dd if=/dev/zero of=big bs=1M count=200 2>&1 | grep -m1 'No space'",
    )
    .await;
    assert!(out.output.contains("No space left"), "{out:?}");
    let image = env
        .base
        .join("root")
        .join(session.to_string())
        .join("workspace.img");
    let on_disk = std::fs::metadata(&image).expect("image").blocks() * 512;
    assert!(on_disk <= 64 * 1024 * 1024, "{on_disk}");
    // The file tools say the same.
    let err = sb
        .file_write(
            "more.txt",
            &"x".repeat(8 * 1024 * 1024),
            &WriteOptions::default(),
        )
        .await
        .expect_err("full");
    assert!(
        err.to_string().contains("workspace limit is 64 MiB"),
        "{err}"
    );
    // /tmp has its own small limit.
    let out = run(&sb, "disk", "fallocate -l 32M /tmp/big; echo rc=$?").await;
    assert!(out.output.contains("rc=1"), "{out:?}");
    // Deleting makes room again, and the workspace survives the sandbox's stop.
    let out = run(&sb, "disk", "rm -f big && fallocate -l 8M small && echo ok").await;
    assert!(out.output.contains("ok"), "{out:?}");
    drop(sb);
    env.provider.destroy(session, false).await.expect("stop");
    let home = env.provider.workspace_dir(session);
    assert!(!home.join("keep.txt").exists(), "unmounted after the stop");
    let sb = env.sandbox(session).await;
    let out = run(&sb, "disk", "cat keep.txt; ls").await;
    assert!(out.output.contains("kept"), "{out:?}");
    assert!(!out.output.contains("lost+found"), "{out:?}");
}

/// A private network the test makes itself: a network namespace behind a veth pair, with
/// a TCP listener inside. Removed on drop.
struct PrivateNet {
    name: String,
    host_ip: String,
    peer_ip: String,
    listener: std::process::Child,
}

impl PrivateNet {
    fn new(port: u16) -> PrivateNet {
        let n: u8 = (std::process::id() % 200) as u8 + 20;
        let name = format!("ih-egress-{}", std::process::id());
        let (host_ip, peer_ip) = (format!("10.213.{n}.1"), format!("10.213.{n}.2"));
        let (veth_host, veth_peer) = (format!("ihh{n}"), format!("ihp{n}"));
        let sh = |cmd: String| {
            let status = std::process::Command::new("sh")
                .args(["-c", &cmd])
                .status()
                .expect("sh");
            assert!(status.success(), "{cmd}");
        };
        sh(format!("ip netns add {name}"));
        sh(format!(
            "ip link add {veth_host} type veth peer name {veth_peer}"
        ));
        sh(format!("ip link set {veth_peer} netns {name}"));
        sh(format!(
            "ip addr add {host_ip}/30 dev {veth_host} && ip link set {veth_host} up"
        ));
        sh(format!(
            "ip netns exec {name} sh -c 'ip addr add {peer_ip}/30 dev {veth_peer} && ip link set {veth_peer} up && ip link set lo up'"
        ));
        let listener = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "python3",
                "-m",
                "http.server",
                "--bind",
            ])
            .arg(&peer_ip)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("listener");
        // Reachable from the host (so a refusal below is the filter's).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((peer_ip.as_str(), port)).is_err() {
            assert!(Instant::now() < deadline, "the test listener did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        PrivateNet {
            name,
            host_ip,
            peer_ip,
            listener,
        }
    }
}

impl Drop for PrivateNet {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn connect_probe(ip: &str, port: u16) -> String {
    format!(
        "python3 -c \"import socket,time\nt=time.time()\ntry:\n  socket.create_connection(('{ip}', {port}), timeout=8).close(); print('CONNECTED')\nexcept Exception as e:\n  print('REFUSED', type(e).__name__, round(time.time()-t, 1))\""
    )
}

#[tokio::test]
async fn sandboxes_cannot_reach_private_or_host_addresses_unless_allowed() {
    if !is_root() {
        let env = setup(|_| {});
        assert!(env.provider.containment().contains("not filtered"));
        return;
    }
    let port = 18000 + (std::process::id() % 1000) as u16;
    let net = PrivateNet::new(port);
    // Its own sandbox user, so its chain is not another test's.
    let env = setup(|c| c.run_as_uid = 60000 + (std::process::id() % 500) + 100);
    let containment = env.provider.containment();
    assert!(containment.contains("egress: filtered"), "{containment}");
    let sb = env.sandbox(SessionId::new()).await;
    for (ip, what) in [
        (net.peer_ip.as_str(), "a private network"),
        (net.host_ip.as_str(), "the host's own address"),
        ("169.254.169.254", "the metadata address"),
    ] {
        let out = run(&sb, "net", &connect_probe(ip, port)).await;
        assert!(out.output.contains("REFUSED"), "{what}: {out:?}");
        assert!(
            out.output.contains("ConnectionRefusedError"),
            "{what} is refused at once, not timed out: {out:?}"
        );
    }
    drop(sb);
    drop(env);

    // egress_allow opens exactly what it names.
    let uid = 60000 + (std::process::id() % 500) + 600;
    let env = setup(|c| {
        c.run_as_uid = uid;
        c.run_as_gid = uid;
        c.egress_allow = vec![format!("{}:{port}", net.peer_ip)];
    });
    let sb = env.sandbox(SessionId::new()).await;
    let out = run(&sb, "net", &connect_probe(&net.peer_ip, port)).await;
    assert!(out.output.contains("CONNECTED"), "{out:?}");
    let out = run(&sb, "net", &connect_probe(&net.host_ip, port)).await;
    assert!(out.output.contains("REFUSED"), "{out:?}");
}

// --- The browser inside the sandbox ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_runs_inside_the_sandbox_and_sees_what_its_shell_serves() {
    browser_story(true).await;
}

/// Without a network the session still has one loopback, shared by its shells and its
/// browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_network_the_browser_still_reaches_what_the_shell_serves() {
    browser_story(false).await;
}

async fn browser_story(network: bool) {
    let env = setup(|c| {
        c.network = network;
        c.memory_bytes = 2048 * 1024 * 1024;
        c.max_processes = 256;
    });
    if let Err(why) = env.provider.browser_support() {
        panic!("the sandbox browser is unavailable ({why}): run scripts/install-sandbox-deps.sh");
    }
    let session = SessionId::new();
    let sb = env.sandbox(session).await;
    assert!(
        env.provider.running_browser(session).is_none(),
        "started lazily"
    );
    // A page served inside the sandbox, on the sandbox's own loopback.
    let page = "<html><head><title>Inside</title></head><body><h1>marker-4711</h1>\
        <button onclick=\"document.getElementById('out').textContent='clicked-ok'\">Press</button>\
        <p id=out>not yet</p></body></html>";
    sb.file_write("site/index.html", page, &WriteOptions::default())
        .await
        .expect("write");
    let out = sb
        .shell_exec(
            "web",
            "/home/ubuntu/site",
            "python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 &",
        )
        .await
        .expect("serve");
    assert!(!out.running, "{out:?}");
    let browser = sb.browser().await.expect("browser");
    let mut outcome = browser
        .call(
            "browser_navigate",
            &serde_json::json!({"url": "http://127.0.0.1:8765/"}),
        )
        .await;
    for _ in 0..20 {
        if outcome.success {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        outcome = browser
            .call(
                "browser_navigate",
                &serde_json::json!({"url": "http://127.0.0.1:8765/"}),
            )
            .await;
    }
    assert!(outcome.success, "{outcome:?}");
    let text = outcome.data.to_string();
    assert!(text.contains("marker-4711"), "{text}");
    let shot = outcome.screenshot.clone().expect("screenshot");
    assert_eq!(&shot[..2], &[0xFF, 0xD8], "a JPEG");
    assert!(env.provider.running_browser(session).is_some());

    // The numbered button, clicked; the result read back.
    let index = find_index(&outcome.data, "Press").expect("the button is listed");
    let clicked = browser
        .call("browser_click", &serde_json::json!({"index": index}))
        .await;
    assert!(clicked.success, "{clicked:?}");
    assert!(
        clicked.data.to_string().contains("clicked-ok"),
        "{clicked:?}"
    );

    // The host's loopback is not the sandbox's.
    let host = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = host.local_addr().expect("addr").port();
    let refused = browser
        .call(
            "browser_navigate",
            &serde_json::json!({"url": format!("http://127.0.0.1:{port}/")}),
        )
        .await;
    assert!(!refused.success, "{refused:?}");

    // The live view: plain RFB from the display's socket.
    let mut vnc = browser.connect_vnc().await.expect("vnc");
    let mut hello = [0u8; 12];
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_exact(&mut vnc, &mut hello),
    )
    .await
    .expect("in time")
    .expect("read");
    assert!(hello.starts_with(b"RFB 003.00"), "{hello:?}");

    // The profile lives in the workspace; a restart keeps it and works.
    let restarted = browser
        .call(
            "browser_restart",
            &serde_json::json!({"url": "http://127.0.0.1:8765/"}),
        )
        .await;
    assert!(restarted.success, "{restarted:?}");
    let out = run(
        &sb,
        "ls",
        "test -d ~/.config/ironhand-browser && echo profile",
    )
    .await;
    assert_eq!(out.output.trim(), "profile");

    // Stopping the sandbox stops the browser.
    drop(vnc);
    drop(browser);
    drop(sb);
    env.provider.destroy(session, false).await.expect("stop");
    assert!(env.provider.running_browser(session).is_none());
}

/// The index of the first listed element whose line mentions `label`.
fn find_index(data: &serde_json::Value, label: &str) -> Option<u64> {
    data["elements"]
        .as_str()?
        .lines()
        .find(|line| line.contains(label))
        .and_then(|line| {
            let start = line.find('[')? + 1;
            let end = line[start..].find(']')? + start;
            line[start..end].trim().parse().ok()
        })
}

/// Processes a run leaves behind (a dev server, or a fork bomb in the background) live
/// while their sandbox does; the caps on live sandboxes bound how many such sandboxes
/// exist: a new one stops the longest-idle, never a busy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sandboxes_are_capped_per_user_and_per_instance() {
    use ironhand_core::ids::UserId;
    let env = setup(|c| {
        c.max_live_sandboxes_per_user = 2;
        c.max_live_sandboxes = 3;
        c.foreground_wait = Duration::from_secs(1);
    });
    let (alice, bob) = (UserId::new(), UserId::new());
    let tag = std::process::id();
    let sessions: Vec<SessionId> = (0..5).map(|_| SessionId::new()).collect();
    let mut held = Vec::new();
    for (i, session) in sessions.iter().take(2).enumerate() {
        let sb = env
            .provider
            .sandbox_for(*session, alice)
            .await
            .expect("sandbox");
        let out = run(
            &sb,
            "bg",
            &format!("sleep 98{tag}{i} >/dev/null 2>&1 & echo started"),
        )
        .await;
        assert_eq!(out.output.trim(), "started");
        held.push(sb);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(host_processes_with(&format!("98{tag}0")), 1);
    // A third of Alice's: her longest-idle sandbox stops (its background process with it).
    let third = env
        .provider
        .sandbox_for(sessions[2], alice)
        .await
        .expect("room made");
    let out = run(&third, "fg", "echo third").await;
    assert_eq!(out.output.trim(), "third");
    assert_eq!(
        host_processes_with(&format!("98{tag}0")),
        0,
        "the oldest idle one stopped"
    );
    assert_eq!(
        host_processes_with(&format!("98{tag}1")),
        1,
        "the other one lives"
    );
    // Both of her live sandboxes busy: a fourth is refused, nothing busy is stopped.
    let busy1 = held[1]
        .shell_exec("fg", "", "sleep 20")
        .await
        .expect("exec");
    let busy2 = third.shell_exec("fg", "", "sleep 20").await.expect("exec");
    assert!(busy1.running && busy2.running);
    let refused = env.provider.sandbox_for(sessions[3], alice).await;
    match refused {
        Err(SandboxError::Unavailable(why)) => assert!(why.contains("per user"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert_eq!(host_processes_with(&format!("98{tag}1")), 1);
    // Per instance: Bob's first fits (2 live of 3); his second finds all three busy or his.
    let bob1 = env
        .provider
        .sandbox_for(sessions[3], bob)
        .await
        .expect("fits");
    let busy3 = bob1.shell_exec("fg", "", "sleep 20").await.expect("exec");
    assert!(busy3.running);
    let refused = env.provider.sandbox_for(sessions[4], bob).await;
    match refused {
        Err(SandboxError::Unavailable(why)) => assert!(why.contains("this server"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // A busy one finishing makes room again.
    held[1].shell_kill("fg").await.expect("kill");
    let bob2 = env.provider.sandbox_for(sessions[4], bob).await;
    assert!(bob2.is_ok(), "room once one is idle");
}

/// A connector's program: its own stdin/stdout, exactly the environment it was given (and
/// the sandbox's basics), the sandbox's workspace and read-only mounts, gone with the
/// sandbox or when its handle is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_programs_talk_over_stdio_and_stop_with_the_sandbox() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let shared = tempfile::Builder::new()
        .prefix("ironhand-ro-mount")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(shared.path().join("tool.txt"), "installed once").expect("write");
    std::fs::set_permissions(
        shared.path().join("tool.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let mount_dir = shared.path().to_path_buf();
    let env = setup(move |c| {
        c.read_only_mounts = vec![ironhand_sandbox::ReadOnlyMount {
            host: mount_dir,
            path: "/opt/connectors".into(),
        }];
    });
    let session = SessionId::new();
    let sb = env.sandbox(session).await;
    run(&sb, "main", "echo from-the-shell > note.txt").await;

    // A line-echoing "server": answers each line with what it knows.
    let script = r#"while read -r line; do
  printf '%s|%s|%s|%s|%s\n' "$line" "${CONNECTOR_TOKEN:-unset}" "${DATABASE_URL:-unset}" "$(cat note.txt)" "$(cat /opt/connectors/tool.txt)"
done"#;
    let process = sb
        .spawn_process(
            "/bin/sh",
            &["-c".into(), script.into()],
            &[("CONNECTOR_TOKEN".into(), "t0k3n".into())],
        )
        .await
        .expect("spawn");
    let mut stdin = process.stdin;
    let mut lines = BufReader::new(process.stdout).lines();
    stdin.write_all(b"ping\n").await.expect("write");
    stdin.flush().await.expect("flush");
    let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("answers in time")
        .expect("read")
        .expect("a line");
    assert_eq!(answer, "ping|t0k3n|unset|from-the-shell|installed once");
    assert!(process.handle.is_running());

    // The shells cannot see the program (each has its own PID namespace), so its
    // environment stays its own.
    let out = run(
        &sb,
        "main",
        "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c t0k3n; true",
    )
    .await;
    assert_eq!(out.output.trim(), "0", "{}", out.output);

    // Writing to the read-only mount fails.
    let out = run(&sb, "main", "touch /opt/connectors/x 2>&1; echo $?").await;
    assert!(
        !out.output.trim().ends_with("\n0") && out.output.contains("Read-only"),
        "{}",
        out.output
    );

    // Stopping the sandbox stops the program.
    env.provider.destroy(session, false).await.expect("destroy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while process.handle.is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !process.handle.is_running(),
        "the program ended with its sandbox"
    );

    // A program whose handle is dropped ends too; its stderr is kept for messages.
    let sb = env.sandbox(SessionId::new()).await;
    let process = sb
        .spawn_process(
            "/bin/sh",
            &[
                "-c".into(),
                "echo 'cannot find module' >&2; exec sleep 600".into(),
            ],
            &[],
        )
        .await
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while process.handle.stderr_tail().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(process.handle.stderr_tail(), "cannot find module");
    let marker = "sleep 600";
    assert!(host_processes_with(marker) >= 1);
    drop(process);
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_processes_with(marker) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        host_processes_with(marker),
        0,
        "dropping the handle killed it"
    );

    // Bad programs are refused before anything starts.
    assert!(sb.spawn_process("", &[], &[]).await.is_err());
    assert!(
        sb.spawn_process("/bin/sh", &["a\0b".into()], &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn read_only_mounts_must_be_directories_under_opt() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (host, path) in [
        (dir.path().to_path_buf(), "/usr/local/x"),
        (dir.path().to_path_buf(), "/opt/../etc"),
        (dir.path().to_path_buf(), "/opt/"),
        (dir.path().join("missing"), "/opt/x"),
    ] {
        let mut config = test_config(&dir.path().join("root"));
        config.read_only_mounts = vec![ironhand_sandbox::ReadOnlyMount {
            host,
            path: path.into(),
        }];
        assert!(
            LocalSandboxProvider::new(config).is_err(),
            "{path} must be refused"
        );
    }
}
