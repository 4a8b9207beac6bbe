//! The sandboxes section: what a sandbox costs to start, with bubblewrap on this host and
//! as a container on the Docker Engine (`crates/sandboxd`), and what a workspace snapshot
//! of 100 MiB costs to pack and to restore. Providers are driven in the bench process
//! itself: no server, no model. `--only sandboxes` runs this section alone.

use crate::agent::pct;
use crate::agent::report::ms;
use ironhand_core::ids::SessionId;
use ironhand_core::ports::sandbox::{SandboxProvider, WriteOptions};
use ironhand_sandbox::{LocalSandboxConfig, LocalSandboxProvider};
use ironhand_sandboxd::docker::Reach;
use ironhand_sandboxd::wire::DaemonLimits;
use ironhand_sandboxd::{DockerConfig, DockerSandboxProvider};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The section's heading; `--only sandboxes` replaces the report from it to the next `## `.
pub const HEADING: &str = "## Sandboxes: bubblewrap and containers";
/// The light image the provider's tests use (`scripts/build-images.sh sandbox-test`): the
/// daemon is the bench's own `ironhand` binary, mounted.
const TEST_IMAGE: &str = "ironhand-sandbox-test:1";
/// The workspace of the snapshot rows: this many files of 1 MiB, half text, half random.
const SNAPSHOT_FILES: usize = 100;

/// One provider's start figures.
struct Starts {
    label: String,
    samples: Vec<Duration>,
    errors: usize,
}

/// Pack and restore of one provider.
struct Snapshot {
    label: String,
    pack: Result<(Duration, u64, u64), String>,
    restore: Result<Duration, String>,
}

pub struct Report {
    starts: Vec<Starts>,
    snapshots: Vec<Snapshot>,
    docker_note: Option<String>,
    load: String,
}

fn local_provider(dir: &Path) -> anyhow::Result<LocalSandboxProvider> {
    // bubblewrap may run as another user (the bench is root): it must reach root_dir.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    Ok(LocalSandboxProvider::new(LocalSandboxConfig {
        root_dir: dir.join("root"),
        network: true,
        browser: false,
        ..LocalSandboxConfig::default()
    })?)
}

fn docker_provider(binary: &Path) -> anyhow::Result<DockerSandboxProvider> {
    let defaults = LocalSandboxConfig::default();
    let mut limits = DaemonLimits::from_config(&defaults);
    limits.browser = false;
    Ok(DockerSandboxProvider::new(DockerConfig {
        host: None,
        tls: None,
        image: TEST_IMAGE.into(),
        command: vec!["ironhand".into(), "sandboxd".into()],
        binary: Some(binary.to_path_buf()),
        network: "bridge".into(),
        reach: Reach::ContainerIp,
        memory_bytes: defaults.memory_bytes,
        cpus: 1.0,
        pids_limit: defaults.max_processes as i64,
        tmp_bytes: defaults.tmp_max_bytes,
        init: true,
        instance: "bench".into(),
        deployment: format!("bench-{}", uuid::Uuid::new_v4().simple()),
        limits,
        idle_timeout: Duration::from_secs(600),
        start_timeout: Duration::from_secs(60),
        max_live_sandboxes: 64,
        max_live_sandboxes_per_user: 64,
    })?)
}

/// Times `n` fresh sessions from the request of their sandbox to the answer of their first
/// command (`echo hi`), each destroyed with its workspace afterwards.
async fn starts(label: &str, provider: &dyn SandboxProvider, n: usize) -> Starts {
    let mut samples = Vec::new();
    let mut errors = 0;
    for _ in 0..n {
        let session = SessionId::new();
        let start = Instant::now();
        let result = async {
            let sandbox = provider.sandbox(session).await?;
            sandbox.shell_exec("main", "", "echo hi").await
        }
        .await;
        match result {
            Ok(out) if out.output.trim() == "hi" => samples.push(start.elapsed()),
            _ => errors += 1,
        }
        let _ = provider.destroy(session, true).await;
    }
    samples.sort();
    Starts {
        label: label.into(),
        samples,
        errors,
    }
}

/// Fills a session's workspace with [`SNAPSHOT_FILES`] files of 1 MiB, packs it, then
/// restores the archive into a fresh session.
async fn snapshot(label: &str, provider: &dyn SandboxProvider, scratch: &Path) -> Snapshot {
    let session = SessionId::new();
    let other = SessionId::new();
    let archive = scratch.join(format!("{session}.tar.zst"));
    let pack = async {
        let sandbox = provider.sandbox(session).await.map_err(|e| e.to_string())?;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for i in 0..SNAPSHOT_FILES {
            let bytes: Vec<u8> = if i % 2 == 0 {
                // Text: compresses well.
                let line = format!("line {i} of a generated text file in the workspace\n");
                line.repeat((1 << 20) / line.len() + 1)
                    .into_bytes()
                    .into_iter()
                    .take(1 << 20)
                    .collect()
            } else {
                // Random: does not compress.
                (0..(1 << 20))
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect()
            };
            sandbox
                .put_file(&format!("data/file-{i:03}.bin"), &bytes)
                .await
                .map_err(|e| e.to_string())?;
        }
        sandbox
            .file_write("README.md", "# bench\n", &WriteOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        let packed = provider
            .pack_workspace(session, &archive)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("nothing was packed")?;
        let took = start.elapsed();
        let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
        Ok::<_, String>((took, packed.bytes, size))
    }
    .await;
    let restore = match &pack {
        Ok(_) => {
            let start = Instant::now();
            match provider.restore_workspace(other, &archive, 1).await {
                Ok(r) if r.files as usize == SNAPSHOT_FILES + 1 => Ok(start.elapsed()),
                Ok(r) => Err(format!("restored {} files", r.files)),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(_) => Err("not packed".into()),
    };
    let _ = provider.destroy(session, true).await;
    let _ = provider.destroy(other, true).await;
    let _ = std::fs::remove_file(&archive);
    Snapshot {
        label: label.into(),
        pack,
        restore,
    }
}

/// Whether the engine answers and the test image is there (built when missing).
fn docker_ready() -> Result<(), String> {
    let ok = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ok(&["info"]) {
        return Err("no Docker Engine answers (scripts/install-docker.sh starts one)".into());
    }
    if !ok(&["image", "inspect", TEST_IMAGE]) {
        let built = std::process::Command::new("scripts/build-images.sh")
            .arg("sandbox-test")
            .env("QUIET", "1")
            .status()
            .is_ok_and(|s| s.success());
        if !built {
            return Err(format!("could not build {TEST_IMAGE}"));
        }
    }
    Ok(())
}

/// Measures the section. `binary` is the `ironhand` binary the containers run.
pub async fn run(binary: &Path, n: usize) -> anyhow::Result<Report> {
    let load = crate::load_average();
    let dir = tempfile::tempdir()?;
    let local = Arc::new(local_provider(dir.path())?);
    local.check().await?;
    let mut report = Report {
        starts: Vec::new(),
        snapshots: Vec::new(),
        docker_note: None,
        load,
    };
    report
        .starts
        .push(starts("bubblewrap (`local`), network on", local.as_ref(), n).await);
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;
    report
        .snapshots
        .push(snapshot("bubblewrap (`local`)", local.as_ref(), &scratch).await);
    match docker_ready() {
        Ok(()) => {
            let docker = docker_provider(binary)?;
            docker.check().await?;
            report
                .starts
                .push(starts("container (`docker`), bridge network", &docker, n).await);
            report
                .snapshots
                .push(snapshot("container (`docker`)", &docker, &scratch).await);
        }
        Err(why) => report.docker_note = Some(why),
    }
    Ok(report)
}

impl Report {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.starts {
            if s.errors > 0 {
                out.push(format!(
                    "sandboxes: {} of {} starts failed",
                    s.errors, s.label
                ));
            }
        }
        for s in &self.snapshots {
            if let Err(e) = &s.pack {
                out.push(format!("sandboxes: packing with {} failed: {e}", s.label));
            }
            if let Err(e) = &s.restore {
                out.push(format!("sandboxes: restoring with {} failed: {e}", s.label));
            }
        }
        out
    }

    pub fn write(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "{HEADING}\n")?;
        writeln!(
            out,
            "`bench/src/containers.rs`; `ironhand-bench --only sandboxes` runs this section alone. Both providers are driven in the bench process (no server, no model), with their default limits. *Start* is from asking the provider for a fresh session's sandbox to the answer of its first command (`echo hi`): for bubblewrap the session's namespaces, slirp4netns and the first shell; for a container, creating its volumes and the container, starting it and its `ironhand sandboxd` (the release binary, mounted into `{TEST_IMAGE}`, the tests' light image), waiting until it answers, then the first shell inside. Each session is destroyed with its workspace after its sample. Load average when the section started: {}.\n",
            self.load
        )?;
        writeln!(
            out,
            "| provider | samples | errors | start p50 | p95 | max | vs bubblewrap (p50) |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
        let base = self
            .starts
            .first()
            .map(|s| pct(&s.samples, 0.5))
            .filter(|d| !d.is_zero());
        for s in &self.starts {
            let p50 = pct(&s.samples, 0.5);
            let ratio = match base {
                Some(b) => format!("{:.1}×", p50.as_secs_f64() / b.as_secs_f64()),
                None => "—".into(),
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {ratio} |",
                s.label,
                s.samples.len(),
                s.errors,
                ms(p50),
                ms(pct(&s.samples, 0.95)),
                ms(s.samples.last().copied().unwrap_or_default()),
            )?;
        }
        if let Some(note) = &self.docker_note {
            writeln!(out, "\nContainers not measured: {note}.")?;
        }
        writeln!(
            out,
            "\n### Workspace snapshot of {SNAPSHOT_FILES} MiB ({SNAPSHOT_FILES} files of 1 MiB: half text, half random bytes)\n"
        )?;
        writeln!(
            out,
            "*Pack* is `pack_workspace` (tar + zstd into a local file; for a container, packed inside it and streamed out); *restore* is `restore_workspace` of that archive into a fresh session (for a container, including starting it).\n"
        )?;
        writeln!(
            out,
            "| provider | pack | file content | archive | restore |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|")?;
        for s in &self.snapshots {
            let (pack, content, archive) = match &s.pack {
                Ok((d, content, archive)) => (
                    ms(*d),
                    format!("{:.1} MiB", *content as f64 / 1048576.0),
                    format!("{:.1} MiB", *archive as f64 / 1048576.0),
                ),
                Err(e) => (format!("failed: {e}"), "—".into(), "—".into()),
            };
            let restore = match &s.restore {
                Ok(d) => ms(*d),
                Err(e) => format!("failed: {e}"),
            };
            writeln!(
                out,
                "| {} | {pack} | {content} | {archive} | {restore} |",
                s.label
            )?;
        }
        writeln!(out)
    }
}

/// The report with this section in place of its earlier version (or appended).
pub fn splice(report: &str, section: &str) -> String {
    crate::browser::splice_under(HEADING, report, section)
}

/// The `ironhand` binary of the bench's `--server` argument, as an absolute path (the
/// engine mounts it into the containers).
pub fn daemon_binary(server: &Path) -> PathBuf {
    std::fs::canonicalize(server).unwrap_or_else(|_| server.to_path_buf())
}
