//! The Docker provider against the real Docker Engine (started by `scripts/install-docker.sh`,
//! which `make test` runs first): a container per session running the daemon binary built
//! with this crate, with its memory and pids limits, its workspace volume, snapshots, and
//! the clean-up after deletion and after a restart.
//!
//! Without an engine the story fails, unless `IRONHAND_SKIP_DOCKER=1` says to skip it.

#![allow(clippy::unwrap_used)] // a story: a failed step is a failed test

use ironhand_core::ids::SessionId;
use ironhand_core::ports::sandbox::{SandboxProvider, WriteOptions};
use ironhand_sandboxd::docker::Reach;
use ironhand_sandboxd::wire::DaemonLimits;
use ironhand_sandboxd::{DockerConfig, DockerSandboxProvider};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const TEST_IMAGE: &str = "ironhand-sandbox-test:1";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker command runs")
}

/// The engine and the test image, or `None` to skip.
fn engine() -> Option<()> {
    let up = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        if std::env::var("IRONHAND_SKIP_DOCKER").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: no Docker Engine answers (IRONHAND_SKIP_DOCKER=1)");
            return None;
        }
        panic!(
            "no Docker Engine answers: run scripts/install-docker.sh (as root), or set IRONHAND_SKIP_DOCKER=1 to skip"
        );
    }
    // The tests' light image (deploy/sandbox/Dockerfile.test), built once.
    if !docker(&["image", "inspect", TEST_IMAGE]).status.success() {
        let built = Command::new(repo_root().join("scripts/build-images.sh"))
            .arg("sandbox-test")
            .env("QUIET", "1")
            .current_dir(repo_root())
            .status()
            .expect("build-images.sh runs");
        assert!(built.success(), "could not build {TEST_IMAGE}");
    }
    Some(())
}

/// Removes what an instance left, even when the story fails half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=io.ironhand.deployment={}", self.0);
        let list = |what: &[&str]| -> Vec<String> {
            String::from_utf8_lossy(&docker(what).stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        for id in list(&["ps", "-aq", "--filter", &label]) {
            docker(&["rm", "-f", &id]);
        }
        for name in list(&["volume", "ls", "-q", "--filter", &label]) {
            docker(&["volume", "rm", "-f", &name]);
        }
    }
}

fn config(instance: &str) -> DockerConfig {
    DockerConfig {
        host: None,
        tls: None,
        image: TEST_IMAGE.into(),
        command: vec!["ironhand".into(), "sandboxd".into()],
        binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_ironhand-sandboxd"))),
        network: "bridge".into(),
        reach: Reach::ContainerIp,
        memory_bytes: 256 * 1024 * 1024,
        cpus: 1.0,
        pids_limit: 128,
        tmp_bytes: 64 * 1024 * 1024,
        init: true,
        instance: instance.into(),
        // Each test a deployment of its own: its reaping never touches another test's.
        deployment: instance.trim_end_matches("-b").into(),
        limits: DaemonLimits {
            foreground_wait_secs: 5,
            command_timeout_secs: 60,
            cpu_seconds: 60,
            memory_bytes: 256 * 1024 * 1024,
            max_processes: 128,
            max_open_files: 1024,
            output_cap_bytes: 64 * 1024,
            workspace_max_bytes: 64 * 1024 * 1024,
            browser: false,
            browser_idle_timeout_secs: 300,
        },
        idle_timeout: Duration::from_secs(600),
        start_timeout: Duration::from_secs(30),
        max_live_sandboxes: 8,
        max_live_sandboxes_per_user: 4,
    }
}

/// Whether a container of the session exists (of any instance).
fn container_exists(session: SessionId) -> bool {
    let filter = format!("label=io.ironhand.session={session}");
    !docker(&["ps", "-aq", "--filter", &filter])
        .stdout
        .is_empty()
}

fn volume_exists(session: SessionId) -> bool {
    docker(&[
        "volume",
        "inspect",
        &format!("ironhand-workspace-{session}"),
    ])
    .status
    .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_runs_in_a_container_within_its_limits() {
    if engine().is_none() {
        return;
    }
    let instance = format!("test-{}", uuid::Uuid::new_v4().simple());
    let _cleanup = Cleanup(instance.clone());
    let provider = DockerSandboxProvider::new(config(&instance)).unwrap();
    provider.check().await.expect("engine and image are ready");
    assert_eq!(provider.kind(), "docker");

    let session = SessionId::new();
    let sandbox = provider.sandbox(session).await.expect("a container starts");
    assert!(container_exists(session));

    // The shell: the sandbox user, host name, home; state kept between commands.
    let out = sandbox
        .shell_exec("main", "", "id -u; hostname; pwd; cd /tmp && export X=kept")
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(out.output.trim(), "1000\nsandbox\n/home/ubuntu", "{out:?}");
    let out = sandbox
        .shell_exec("main", "", "echo \"$PWD $X\"")
        .await
        .unwrap();
    assert_eq!(out.output.trim(), "/tmp kept");

    // The file tools write where the shell reads, and the root is read-only.
    sandbox
        .file_write("notes/todo.txt", "buy milk", &WriteOptions::default())
        .await
        .unwrap();
    let out = sandbox
        .shell_exec(
            "main",
            "",
            "cat /home/ubuntu/notes/todo.txt; echo; touch /etc/x 2>&1 | grep -c 'Read-only'",
        )
        .await
        .unwrap();
    assert_eq!(out.output.trim(), "buy milk\n1", "{out:?}");
    let read = sandbox
        .file_read("notes/todo.txt", None, None)
        .await
        .unwrap();
    assert_eq!(read.content, "buy milk");
    assert_eq!(
        sandbox.file_find_by_name("notes", "*.txt").await.unwrap(),
        vec!["/home/ubuntu/notes/todo.txt".to_string()]
    );
    assert!(
        sandbox
            .file_read("../../etc/shadow", None, None)
            .await
            .is_err(),
        "paths stay inside the sandbox"
    );

    // A fork bomb stays inside the container's pids limit and is stopped.
    let out = sandbox
        .shell_exec("bomb", "", "bomb() { bomb | bomb & }; bomb; sleep 30")
        .await
        .unwrap();
    let out = if out.running {
        sandbox.shell_wait("bomb", Some(20)).await.unwrap()
    } else {
        out
    };
    assert!(
        out.limit_hit
            .as_deref()
            .is_some_and(|l| l.contains("process")),
        "the process limit is reported: {out:?}"
    );
    let _ = sandbox.shell_kill("bomb").await;
    let out = sandbox
        .shell_exec("after", "", "sleep 1; ls -d /proc/[0-9]* | wc -l")
        .await
        .unwrap();
    let left: u32 = out.output.trim().parse().unwrap_or(999);
    assert!(left < 20, "the bomb's processes are gone: {out:?}");

    // A memory hog is killed inside the container; the sandbox goes on.
    let out = sandbox
        .shell_exec("hog", "", "head -c 600m /dev/zero | tail; echo status=$?")
        .await
        .unwrap();
    let out = if out.running {
        sandbox.shell_wait("hog", Some(30)).await.unwrap()
    } else {
        out
    };
    assert!(
        out.limit_hit
            .as_deref()
            .is_some_and(|l| l.contains("memory limit of the sandbox")),
        "the memory limit is reported: {out:?}"
    );
    let out = sandbox.shell_exec("main", "", "echo alive").await.unwrap();
    assert_eq!(out.output.trim(), "alive");

    // A connector's program: its stdin and stdout carried over the daemon's WebSocket.
    let mut process = sandbox
        .spawn_process("/bin/cat", &[], &[("GREETING".into(), "hi".into())])
        .await
        .expect("a program starts in the container");
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        process.stdin.write_all(b"ping\n").await.unwrap();
        process.stdin.flush().await.unwrap();
        let mut buf = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), process.stdout.read_exact(&mut buf))
            .await
            .expect("the echo comes back in time")
            .unwrap();
        assert_eq!(&buf, b"ping\n");
    }
    assert!(process.handle.is_running());
    process.handle.kill();
    for _ in 0..50 {
        if !process.handle.is_running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!process.handle.is_running(), "killed");

    // Snapshots: pack here, restore into another session's container.
    let archive = tempfile::NamedTempFile::new().unwrap();
    let packed = provider
        .pack_workspace(session, archive.path())
        .await
        .unwrap()
        .expect("a changed workspace is packed");
    assert_eq!(packed.files, 1);
    provider
        .mark_workspace(session, 1, &packed.state)
        .await
        .unwrap();
    assert_eq!(provider.workspace_version(session).await.unwrap(), Some(1));
    assert!(
        provider
            .pack_workspace(session, archive.path())
            .await
            .unwrap()
            .is_none(),
        "nothing changed since the mark"
    );
    let other = SessionId::new();
    let restored = provider
        .restore_workspace(other, archive.path(), 1)
        .await
        .unwrap();
    assert_eq!(restored.files, 1);
    let copy = provider.sandbox(other).await.unwrap();
    let read = copy.file_read("notes/todo.txt", None, None).await.unwrap();
    assert_eq!(read.content, "buy milk");
    assert_eq!(provider.workspace_version(other).await.unwrap(), Some(1));

    // Deleting the session removes its container and its workspace.
    provider.destroy(other, true).await.unwrap();
    assert!(!container_exists(other));
    assert!(!volume_exists(other));

    // Another instance on the same engine uses the same container: the shell it sees is
    // the one the first instance left (the shell view works from any instance).
    let elsewhere = DockerSandboxProvider::new(config(&format!("{instance}-b"))).unwrap();
    let same = elsewhere.sandbox(session).await.unwrap();
    let view = same.shell_view("main").await.unwrap();
    assert_eq!(view.output.trim(), "alive", "{view:?}");
    drop(same);
    drop(elsewhere);

    // A restart (or a crash): the container stays while the workspace is in use, and the
    // next instance's check removes it once no one used it for the idle timeout; the
    // workspace stays in its volume and comes back with the next container.
    drop(copy);
    drop(sandbox);
    drop(provider);
    assert!(container_exists(session), "left behind, as after a crash");
    let mut restarted = config(&instance);
    restarted.idle_timeout = Duration::from_secs(1);
    let provider = DockerSandboxProvider::new(restarted).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(provider.reap_orphans().await.unwrap(), 1);
    assert!(!container_exists(session));
    assert!(volume_exists(session));
    let sandbox = provider.sandbox(session).await.unwrap();
    let out = sandbox
        .shell_exec("main", "", "cat notes/todo.txt")
        .await
        .unwrap();
    assert_eq!(out.output.trim(), "buy milk");
    provider.destroy(session, true).await.unwrap();
    assert!(!container_exists(session));
    assert!(!volume_exists(session));
}
