//! Size-limited workspaces. With `workspace_max_bytes` set and the server running as root,
//! a session's `/home/ubuntu` is its own ext4 filesystem in a sparse image file
//! (`<root_dir>/<session>/workspace.img`, loop-mounted `nosuid,nodev` on the workspace
//! directory): a write past the limit fails with `ENOSPC` in the sandbox, whatever writes it,
//! and the disk holds only what the workspace really uses (the image is sparse and mounted
//! with `discard`, so deleted files give their blocks back). `/tmp` becomes a `tmpfs` of at
//! most `tmp_max_bytes`; its pages count against the sandbox's memory cgroup.
//!
//! The image is created on the session's first use (`mkfs.ext4` takes ~20 ms; the
//! filesystem's own metadata takes a few MiB of the limit) and mounted while the sandbox
//! is in use; stopping the sandbox unmounts it. A workspace created before the limit was
//! turned on stays a plain directory.
//!
//! Where loop devices cannot be used (not root, no `mkfs.ext4`, a kernel without loop
//! support) the limit is enforced by a periodic check instead: the cleanup job measures
//! each live sandbox's workspace and stops a sandbox over its limit, with a warning in the
//! log. That check is late by up to one cleanup interval and is said so at start.

use crate::host::SessionDirs;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How size limits are enforced, found once per provider.
#[derive(Debug, Clone)]
pub(crate) enum Volumes {
    /// No limit (`workspace_max_bytes = 0`).
    Off,
    /// Loop-mounted images.
    Loop {
        max_bytes: u64,
        tmp_max_bytes: u64,
        mkfs: PathBuf,
        mount: PathBuf,
        umount: PathBuf,
    },
    /// Periodic measurement only (why the image cannot be used).
    Checked { max_bytes: u64, why: String },
}

const IMAGE: &str = "workspace.img";

impl Volumes {
    pub(crate) fn discover(max_bytes: u64, tmp_max_bytes: u64, is_root: bool) -> Self {
        if max_bytes == 0 {
            return Self::Off;
        }
        let checked = |why: &str| {
            tracing::warn!(
                why,
                "workspace size limit enforced by a periodic check only (a workspace may \
                 exceed it until the next cleanup tick, then its sandbox is stopped)"
            );
            Self::Checked {
                max_bytes,
                why: why.to_string(),
            }
        };
        if !is_root {
            return checked("the server does not run as root (loop mounts need root)");
        }
        if !Path::new("/dev/loop-control").exists() {
            return checked("no /dev/loop-control (the kernel has no loop devices)");
        }
        match (
            crate::host::find_program("mkfs.ext4"),
            crate::host::find_program("mount"),
            crate::host::find_program("umount"),
        ) {
            (Some(mkfs), Some(mount), Some(umount)) => Self::Loop {
                max_bytes,
                tmp_max_bytes,
                mkfs,
                mount,
                umount,
            },
            _ => checked("mkfs.ext4 (e2fsprogs) or mount (util-linux) is missing"),
        }
    }

    /// In words, for the log and readiness.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Off => "no workspace limit".into(),
            Self::Loop { max_bytes, .. } => format!(
                "workspace limit {} (own filesystem)",
                crate::output::limit_bytes(*max_bytes)
            ),
            Self::Checked { max_bytes, why } => format!(
                "workspace limit {} checked periodically: {why}",
                crate::output::limit_bytes(*max_bytes)
            ),
        }
    }

    pub(crate) fn max_bytes(&self) -> Option<u64> {
        match self {
            Self::Off => None,
            Self::Loop { max_bytes, .. } | Self::Checked { max_bytes, .. } => Some(*max_bytes),
        }
    }

    /// Whether writes past the limit fail in the sandbox itself.
    pub(crate) fn enforced_by_filesystem(&self) -> bool {
        matches!(self, Self::Loop { .. })
    }

    /// Mounts the session's workspace image (created on first use) and its `/tmp`. Safe to
    /// call again: what is mounted stays. `owner` is the host uid/gid of the sandbox user.
    pub(crate) fn prepare(&self, dirs: &SessionDirs, owner: (u32, u32)) -> Result<(), VolumeError> {
        let Self::Loop {
            max_bytes,
            tmp_max_bytes,
            mkfs,
            mount,
            ..
        } = self
        else {
            return Ok(());
        };
        if !is_mount_point(&dirs.home) {
            let image = dirs.base.join(IMAGE);
            if !image.exists() {
                if dir_has_entries(&dirs.home) {
                    tracing::info!(
                        workspace = %dirs.home.display(),
                        "this workspace predates the size limit: it stays a plain directory"
                    );
                    return self.prepare_tmp(dirs, *tmp_max_bytes, mount, owner);
                }
                create_image(&image, *max_bytes, mkfs, owner)?;
            }
            run(Command::new(mount)
                .args(["-t", "ext4", "-o", "loop,nosuid,nodev,noatime,discard"])
                .arg(&image)
                .arg(&dirs.home))
            .map_err(|source| VolumeError::Mount {
                what: "the workspace image",
                source,
            })?;
            // mkfs leaves lost+found in the root: the agent's home does not need it.
            let _ = fs::remove_dir(dirs.home.join("lost+found"));
        }
        self.prepare_tmp(dirs, *tmp_max_bytes, mount, owner)
    }

    fn prepare_tmp(
        &self,
        dirs: &SessionDirs,
        tmp_max_bytes: u64,
        mount: &Path,
        (uid, gid): (u32, u32),
    ) -> Result<(), VolumeError> {
        if tmp_max_bytes == 0 || is_mount_point(&dirs.tmp) {
            return Ok(());
        }
        run(Command::new(mount)
            .args(["-t", "tmpfs", "-o"])
            .arg(format!(
                "size={tmp_max_bytes},mode=0700,uid={uid},gid={gid},nosuid,nodev"
            ))
            .arg("ih-sandbox-tmp")
            .arg(&dirs.tmp))
        .map_err(|source| VolumeError::Mount {
            what: "the sandbox's /tmp",
            source,
        })
    }

    /// Unmounts `/tmp` (its content goes) and the workspace image (its content stays in
    /// the image). Processes of the sandbox must be gone; a busy mount is detached lazily.
    pub(crate) fn release(&self, dirs: &SessionDirs) {
        let Self::Loop { umount, .. } = self else {
            return;
        };
        for dir in [&dirs.tmp, &dirs.home] {
            if !is_mount_point(dir) {
                continue;
            }
            if run(Command::new(umount).arg(dir)).is_err()
                && let Err(e) = run(Command::new(umount).arg("-l").arg(dir))
            {
                tracing::warn!(dir = %dir.display(), error = %e, "could not unmount a sandbox directory");
            }
        }
    }

    /// Unmounts what a server that died without stopping its sandboxes left mounted under
    /// `root` (their processes died with it). Called once at start.
    pub(crate) fn release_stale(&self, root: &Path) {
        let Self::Loop { umount, .. } = self else {
            return;
        };
        let Ok(root) = fs::canonicalize(root) else {
            return;
        };
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut stale: Vec<PathBuf> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape_mount_path)
            .filter(|p| p.starts_with(&root) && p != &root)
            .collect();
        // Deepest first.
        stale.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for dir in stale {
            tracing::info!(dir = %dir.display(), "unmounting a workspace left by an earlier server");
            if let Err(e) = run(Command::new(umount).arg("-l").arg(&dir)) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not unmount");
            }
        }
    }

    /// For the periodic check: the workspace's size when it is over the limit.
    pub(crate) fn over_limit(&self, dirs: &SessionDirs) -> Option<u64> {
        let Self::Checked { max_bytes, .. } = self else {
            return None;
        };
        let used = disk_usage(&dirs.home, *max_bytes);
        (used > *max_bytes).then_some(used)
    }
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        if bytes[i] == b'\\'
            && let Some(v) = octal
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// A mount tool (`mount`, `umount`, `mkfs.ext4`) that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error(transparent)]
    Spawn(#[from] std::io::Error),
    /// It failed; what it wrote on stderr.
    #[error("{0}")]
    Failed(String),
}

/// Why a session's workspace image or `/tmp` could not be made or mounted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VolumeError {
    /// `what`: "the workspace image", "the sandbox's /tmp".
    #[error("cannot mount {what}: {source}")]
    Mount {
        what: &'static str,
        #[source]
        source: CommandError,
    },
    #[error("cannot create {}: {source}", .path.display())]
    CreateImage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot size the workspace image: {0}")]
    SizeImage(#[source] std::io::Error),
    #[error("mkfs.ext4 failed: {0}")]
    Mkfs(#[source] CommandError),
    #[error("cannot place the workspace image: {0}")]
    PlaceImage(#[source] std::io::Error),
}

fn run(cmd: &mut Command) -> Result<(), CommandError> {
    let out = cmd
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CommandError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

fn create_image(
    image: &Path,
    max_bytes: u64,
    mkfs: &Path,
    (uid, gid): (u32, u32),
) -> Result<(), VolumeError> {
    let partial = image.with_extension("img.partial");
    let file = fs::File::create(&partial).map_err(|source| VolumeError::CreateImage {
        path: partial.clone(),
        source,
    })?;
    // Sparse: the disk holds only what the filesystem writes.
    file.set_len(max_bytes).map_err(VolumeError::SizeImage)?;
    drop(file);
    let result = run(Command::new(mkfs)
        .args(["-q", "-F", "-m", "0", "-J", "size=4", "-E"])
        .arg(format!(
            "root_owner={uid}:{gid},lazy_itable_init=1,lazy_journal_init=1,nodiscard"
        ))
        .arg(&partial));
    if let Err(e) = result {
        let _ = fs::remove_file(&partial);
        return Err(VolumeError::Mkfs(e));
    }
    fs::rename(&partial, image).map_err(VolumeError::PlaceImage)
}

/// Whether `dir` is the root of a mount (another device than its parent).
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (
        fs::symlink_metadata(dir),
        dir.parent().map(fs::symlink_metadata),
    ) else {
        return false;
    };
    me.dev() != parent.dev()
}

fn dir_has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Bytes the files under `dir` take on disk, counting no further than just past `stop_at`
/// (symbolic links are not followed; one descriptor per level).
fn disk_usage(dir: &Path, stop_at: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            total = total.saturating_add(m.blocks() * 512);
            if total > stop_at {
                return total;
            }
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b/c"), PathBuf::from("/a b/c"));
        assert_eq!(unescape_mount_path("/plain\\"), PathBuf::from("/plain\\"));
    }

    #[test]
    fn usage_counts_blocks_and_stops_early() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("a")).expect("mkdir");
        fs::write(dir.path().join("a/f"), vec![1u8; 64 * 1024]).expect("write");
        let used = disk_usage(dir.path(), u64::MAX);
        assert!(used >= 64 * 1024, "{used}");
        assert!(disk_usage(dir.path(), 1) > 1);
    }
}
