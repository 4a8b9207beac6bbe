//! Workspace snapshots through the local provider, against real bubblewrap: a workspace
//! packed on one host is restored on another (two providers with their own roots), owned by
//! the sandbox user, and a restore replaces a live sandbox's stale workspace.

use ironhand_core::ids::SessionId;
use ironhand_core::ports::sandbox::{Sandbox, SandboxProvider, ShellOutcome, WriteOptions};
use ironhand_sandbox::{LocalSandboxConfig, LocalSandboxProvider};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

// Fields drop in order: the provider (unmounting workspaces) before the directory.
struct Host {
    provider: LocalSandboxProvider,
    base: PathBuf,
    _dir: tempfile::TempDir,
}

fn host() -> Host {
    host_with(Duration::from_secs(3600))
}

fn host_with(idle_timeout: Duration) -> Host {
    let dir = tempfile::Builder::new()
        .prefix("ironhand-workspace-test")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let base = dir.path().to_path_buf();
    let config = LocalSandboxConfig {
        root_dir: base.join("root"),
        foreground_wait: Duration::from_secs(5),
        command_timeout: Duration::from_secs(30),
        memory_bytes: 1024 * 1024 * 1024,
        max_processes: 64,
        // Size-limited (a loop-mounted image as root): packing reads through the mount.
        workspace_max_bytes: 64 * 1024 * 1024,
        idle_timeout,
        ..LocalSandboxConfig::default()
    };
    Host {
        provider: LocalSandboxProvider::new(config).expect("provider"),
        base,
        _dir: dir,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_packed_on_one_host_is_restored_on_another() {
    let (a, b) = (host(), host());
    let session = SessionId::new();
    assert_eq!(
        a.provider.workspace_version(session).await.expect("v"),
        None
    );
    let sb = a.provider.sandbox(session).await.expect("sandbox");
    sb.file_write("notes/plan.txt", "the plan", &WriteOptions::default())
        .await
        .expect("write");
    let out = run(
        &sb,
        "s",
        "mkdir -p src && echo 'print(1)' > src/main.py && ln -s notes/plan.txt link && mkfifo pipe",
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{}", out.output);
    // Something keeps running while the workspace is packed.
    assert!(
        sb.shell_exec("bg", "", "sleep 30")
            .await
            .expect("bg")
            .running
    );
    assert_eq!(
        a.provider.workspace_version(session).await.expect("v"),
        Some(0)
    );
    // Settled (file times are coarse: a workspace changed within the last second always
    // packs again).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let archive = a.base.join("snapshot.tar.zst");
    let packed = a
        .provider
        .pack_workspace(session, &archive)
        .await
        .expect("pack")
        .expect("packed");
    assert_eq!((packed.files, packed.left_out_files), (2, 0), "{packed:?}");
    a.provider
        .mark_workspace(session, 1, &packed.state)
        .await
        .expect("mark");
    assert_eq!(
        a.provider.workspace_version(session).await.expect("v"),
        Some(1)
    );
    assert!(
        a.provider
            .pack_workspace(session, &a.base.join("again"))
            .await
            .expect("pack")
            .is_none(),
        "unchanged since it was marked"
    );
    // No sandbox of a session here: nothing of it can have changed.
    assert!(
        a.provider
            .pack_workspace(SessionId::new(), &a.base.join("none"))
            .await
            .expect("pack")
            .is_none()
    );

    // Another host, which never ran the session.
    assert_eq!(
        b.provider.workspace_version(session).await.expect("v"),
        None
    );
    let restored = b
        .provider
        .restore_workspace(session, &archive, 1)
        .await
        .expect("restore");
    assert_eq!((restored.files, restored.refused), (2, 0));
    assert_eq!(
        b.provider.workspace_version(session).await.expect("v"),
        Some(1)
    );
    let there = b.provider.sandbox(session).await.expect("sandbox");
    let read = there
        .file_read("/home/ubuntu/notes/plan.txt", None, None)
        .await
        .expect("read");
    assert_eq!(read.content, "the plan");
    let out = run(
        &there,
        "s",
        "readlink link; cat src/main.py; stat -c %U notes/plan.txt; ls",
    )
    .await;
    assert_eq!(
        out.output, "notes/plan.txt\nprint(1)\nubuntu\nlink\nnotes\nsrc\n",
        "the link is a link, the sandbox user owns the files, the FIFO stayed behind"
    );

    // A restore over a live sandbox stops it first, then replaces its files.
    assert!(
        there
            .shell_exec("bg", "", "sleep 30")
            .await
            .expect("bg")
            .running
    );
    run(&there, "s", "echo stale > notes/plan.txt; touch extra").await;
    b.provider
        .restore_workspace(session, &archive, 2)
        .await
        .expect("restore again");
    assert!(there.shell_view("bg").await.is_err(), "its shells are gone");
    let out = run(&there, "s", "cat notes/plan.txt; ls").await;
    assert_eq!(out.output, "the planlink\nnotes\nsrc\n");
    a.provider.destroy(session, true).await.expect("destroy");
    b.provider.destroy(session, true).await.expect("destroy");
}

/// The reaper's next candidates are listed (so their workspaces are saved first) until
/// it stops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sandboxes_are_listed_until_the_reaper_stops_them() {
    let h = host_with(Duration::from_millis(300));
    let session = SessionId::new();
    let sb = h.provider.sandbox(session).await.expect("sandbox");
    run(&sb, "s", "echo hi > hi.txt").await;
    assert!(h.provider.idle_sandboxes().is_empty(), "just used");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.provider.idle_sandboxes(), [session]);
    // Packing does not count as use, and still reads the (mounted) workspace.
    let packed = h
        .provider
        .pack_workspace(session, &h.base.join("idle.tar.zst"))
        .await
        .expect("pack")
        .expect("packed");
    assert_eq!(packed.files, 1);
    assert_eq!(h.provider.idle_sandboxes(), [session]);
    assert_eq!(h.provider.reap_idle().await, 1);
    assert!(h.provider.idle_sandboxes().is_empty());
    drop(sb);
    h.provider.destroy(session, true).await.expect("destroy");
}
