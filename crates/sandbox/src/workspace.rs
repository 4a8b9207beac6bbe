//! The local provider's side of workspace snapshots: packing a session's workspace into an
//! archive file, restoring one, and the marker beside the workspace that says which snapshot
//! version it holds (`<root_dir>/<session>/snapshot`, out of the sandbox's sight: the
//! sandbox sees only `home`, `tmp` and `run`).
//!
//! The marker holds the version and the workspace's state when that version was made (see
//! [`crate::snapshot::workspace_state`]): a workspace still in that state has nothing new
//! to save.

use crate::host::SessionDirs;
use crate::snapshot::{self, UnpackLimits};
use ironhand_core::ports::sandbox::{PackedWorkspace, RestoredWorkspace};
use std::io::{self, BufReader, BufWriter};
use std::path::Path;

const MARKER: &str = "snapshot";

/// The snapshot version and state a workspace was marked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) version: i64,
    pub(crate) state: String,
}

pub(crate) fn read_marker(dirs: &SessionDirs) -> Option<Marker> {
    let text = std::fs::read_to_string(dirs.base.join(MARKER)).ok()?;
    let (version, state) = text.trim_end().split_once('\n')?;
    Some(Marker {
        version: version.trim().parse().ok()?,
        state: state.to_string(),
    })
}

pub(crate) fn write_marker(dirs: &SessionDirs, version: i64, state: &str) -> io::Result<()> {
    let path = dirs.base.join(MARKER);
    let partial = dirs.base.join(format!(".{MARKER}.partial"));
    std::fs::write(&partial, format!("{version}\n{state}\n"))?;
    std::fs::rename(&partial, path)
}

fn remove_marker(dirs: &SessionDirs) -> io::Result<()> {
    match std::fs::remove_file(dirs.base.join(MARKER)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The version this instance's copy of a workspace holds: `None` without a workspace here,
/// 0 for one no snapshot ever touched.
pub(crate) fn version(dirs: &SessionDirs) -> Option<i64> {
    match read_marker(dirs) {
        Some(marker) => Some(marker.version),
        None => dirs.home.is_dir().then_some(0),
    }
}

/// Packs `dirs.home` into `archive` unless it is still as marked.
pub(crate) fn pack(
    dirs: &SessionDirs,
    archive: &Path,
    max_bytes: u64,
) -> io::Result<Option<PackedWorkspace>> {
    let marked = read_marker(dirs).map(|m| m.state);
    let report = snapshot::pack_if_changed(
        &dirs.home,
        marked.as_deref(),
        || std::fs::File::create(archive).map(|f| BufWriter::with_capacity(256 * 1024, f)),
        max_bytes,
    )?;
    Ok(report.map(|r| PackedWorkspace {
        files: r.files,
        bytes: r.bytes,
        left_out_files: r.left_out_files,
        left_out_bytes: r.left_out_bytes,
        left_out: r.left_out,
        state: r.state,
    }))
}

/// Replaces what `dirs.home` holds with the snapshot in `archive` and marks it `version`.
/// No sandbox process may run (the caller stopped them).
pub(crate) fn restore(
    dirs: &SessionDirs,
    archive: &Path,
    version: i64,
    limits: UnpackLimits,
) -> io::Result<RestoredWorkspace> {
    // Unmarked while half restored: a failure leaves a workspace that is restored again.
    remove_marker(dirs)?;
    snapshot::clear(&dirs.home)?;
    let input = BufReader::with_capacity(256 * 1024, std::fs::File::open(archive)?);
    let report = snapshot::unpack(&dirs.home, input, limits)?;
    if report.refused > 0 {
        tracing::warn!(
            workspace = %dirs.home.display(),
            refused = report.refused,
            first = ?report.refusals,
            "a workspace snapshot held entries that were not restored"
        );
    }
    write_marker(dirs, version, &snapshot::quiet_workspace_state(&dirs.home)?)?;
    Ok(RestoredWorkspace {
        files: report.files,
        bytes: report.bytes,
        refused: report.refused,
    })
}
