//! `sandbox.provider = "docker"`: a user's task runs its shell and file tools in the
//! session's container on the real Docker Engine (started by `scripts/install-docker.sh`,
//! which `make test` runs first), and deleting the session removes the container and its
//! workspace. The provider's limits and restarts are proven in `crates/sandboxd/tests`.
//!
//! Without an engine the story fails, unless `IRONHAND_SKIP_DOCKER=1` says to skip it.

use super::{AgentApp, call, complete, one_step, tool_results};
use crate::support::Backend;
use reqwest::Method;
use serde_json::json;
use std::process::Command;

const TEST_IMAGE: &str = "ironhand-sandbox-test:1";

fn docker(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Removes what an instance left, even when the story fails half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=io.ironhand.deployment={}", self.0);
        let list = |what: &[&str]| -> Vec<String> {
            Command::new("docker")
                .args(what)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        for id in list(&["ps", "-aq", "--filter", &label]) {
            docker(&["rm", "-f", &id]);
        }
        for name in list(&["volume", "ls", "-q", "--filter", &label]) {
            docker(&["volume", "rm", "-f", &name]);
        }
    }
}

fn engine_ready() -> bool {
    if !docker(&["info"]) {
        if std::env::var("IRONHAND_SKIP_DOCKER").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: no Docker Engine answers (IRONHAND_SKIP_DOCKER=1)");
            return false;
        }
        panic!(
            "no Docker Engine answers: run scripts/install-docker.sh (as root), or set IRONHAND_SKIP_DOCKER=1 to skip"
        );
    }
    if !docker(&["image", "inspect", TEST_IMAGE]) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let built = Command::new(root.join("scripts/build-images.sh"))
            .arg("sandbox-test")
            .env("QUIET", "1")
            .current_dir(&root)
            .status()
            .is_ok_and(|s| s.success());
        assert!(built, "could not build {TEST_IMAGE}");
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_its_tools_in_the_sessions_container_and_deleting_the_session_removes_it() {
    if !engine_ready() {
        return;
    }
    let instance = format!("api-test-{}", uuid::Uuid::new_v4().simple());
    let _cleanup = Cleanup(instance.clone());
    let a = AgentApp::start_with(Backend::Sqlite, |s| {
        s.sandbox.provider = "docker".into();
        s.sandbox.docker.image = TEST_IMAGE.into();
        s.sandbox.docker.binary = Some(env!("CARGO_BIN_EXE_ironhand").into());
        s.sandbox.docker.instance = Some(instance.clone());
        s.sandbox.docker.deployment = instance.clone();
        s.sandbox.browser = false;
        s.sandbox.memory_mb = 256;
        s.sandbox.max_processes = 128;
    })
    .await;
    let ready = a.app.get("/api/v1/ready", None).await;
    assert_eq!(
        ready.status, 200,
        "ready with the engine and the image: {}",
        ready.body
    );

    let session = a.session().await;
    let task = a.script(
        one_step(
            vec![
                call(
                    "file_write",
                    json!({"file": "/home/ubuntu/report.md", "content": "# Findings\n"}),
                ),
                call(
                    "shell_exec",
                    json!({"id": "main", "exec_dir": "/home/ubuntu",
                           "command": "echo \"$(id -u)@$(hostname)\"; cat report.md; ls /var/lib/docker 2>&1 | head -1"}),
                ),
                complete("done"),
            ],
            "All done.",
        ),
        "Write a report in a container.",
    );
    let events = a.run(&session, &task).await;
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("done"));
    let results = tool_results(&a, &task);
    let shell = results
        .iter()
        .find(|r| r["data"]["output"].is_string())
        .unwrap_or_else(|| panic!("a shell result in {results:?}"));
    let output = shell["data"]["output"].as_str().expect("text output");
    assert!(
        output.starts_with("1000@sandbox\n# Findings\n"),
        "the shell ran in the container and saw the written file: {output}"
    );
    assert!(
        output.contains("No such file"),
        "nothing of the host is visible: {output}"
    );
    let container = || {
        let filter = format!("label=io.ironhand.session={session}");
        Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    };
    assert!(container(), "the session's container runs");

    a.app
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{session}"),
            Some(&a.user.access),
            None,
        )
        .await
        .assert_ok();
    let volume = format!("ironhand-workspace-{session}");
    let mut gone = false;
    for _ in 0..100 {
        if !container() && !docker(&["volume", "inspect", &volume]) {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the container and the workspace went with the session"
    );
}
