//! Background upkeep every `serve` process runs until shutdown. Each job is idempotent, so
//! several instances running it at once is harmless.

use ironhand_core::ports::Store;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// How often expired tokens and codes are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Revoked families and used or expired codes are kept this long (for investigation).
const KEEP_FOR: time::Duration = time::Duration::days(1);

/// Deletes refresh tokens, families and verification codes that can no longer matter, so
/// the tables do not grow with every refresh forever.
pub async fn prune_auth_records(store: Arc<dyn Store>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = OffsetDateTime::now_utc();
        match store
            .prune_auth_records(now, now - KEEP_FOR, now - KEEP_FOR)
            .await
        {
            Ok(report) if report != Default::default() => tracing::info!(
                refresh_tokens = report.refresh_tokens,
                refresh_families = report.refresh_families,
                verification_codes = report.verification_codes,
                "pruned expired auth records"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not prune expired auth records; will retry")
            }
        }
    }
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// False when another instance held the cleanup lock.
    pub ran: bool,
    pub sessions_deleted: u64,
}

const CLEANUP_LOCK: &str = "session-retention";
/// Sessions deleted per batch, so one pass never holds the database for long.
const CLEANUP_BATCH: i64 = 100;

/// One retention pass at time `now` (injected, so tests can travel in time): deletes the
/// sessions idle for longer than the retention, with their events, files and sandboxes.
/// Only one instance of a cluster runs it at a time (a lock in the database).
pub async fn cleanup_sessions_once(
    state: &crate::AppState,
    holder: &str,
    now: OffsetDateTime,
) -> Result<CleanupReport, ironhand_core::DomainError> {
    let days = state.settings.sessions.retention_days;
    if days == 0 {
        return Ok(CleanupReport::default());
    }
    let lease = time::Duration::minutes(10);
    if !state
        .store
        .try_lock(CLEANUP_LOCK, holder, now, now + lease)
        .await?
    {
        return Ok(CleanupReport::default());
    }
    let idle_before = now - time::Duration::days(days as i64);
    let mut report = CleanupReport {
        ran: true,
        sessions_deleted: 0,
    };
    let result = async {
        loop {
            let idle = state
                .store
                .idle_sessions(idle_before, CLEANUP_BATCH)
                .await?;
            let mut failed = 0;
            for (session_id, user_id) in &idle {
                match state.sessions.remove(*user_id, *session_id).await {
                    Ok(()) => report.sessions_deleted += 1,
                    Err(error) => {
                        // One session that cannot go must not stop the others.
                        tracing::warn!(%error, session_id = %session_id, "could not delete an idle session");
                        failed += 1;
                    }
                }
            }
            if (idle.len() as i64) < CLEANUP_BATCH || failed == idle.len() {
                return Ok::<_, ironhand_core::DomainError>(());
            }
        }
    }
    .await;
    if let Err(error) = state.store.unlock(CLEANUP_LOCK, holder).await {
        tracing::warn!(%error, "could not release the cleanup lock; it expires on its own");
    }
    result?;
    if report.sessions_deleted > 0 {
        tracing::info!(
            sessions = report.sessions_deleted,
            retention_days = days,
            "deleted idle sessions"
        );
    }
    Ok(report)
}

/// Runs the retention pass every `sessions.cleanup_interval_secs`, and stops idle sandboxes
/// every minute.
pub async fn session_upkeep(state: crate::AppState, holder: String, shutdown: CancellationToken) {
    let mut cleanup = tokio::time::interval(Duration::from_secs(
        state.settings.sessions.cleanup_interval_secs,
    ));
    cleanup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reap = tokio::time::interval(Duration::from_secs(60));
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = cleanup.tick() => {
                let now = OffsetDateTime::now_utc();
                if let Err(error) = cleanup_sessions_once(&state, &holder, now).await {
                    tracing::warn!(%error, "session retention pass failed; will retry");
                }
                sweep_files_once(&state, now).await;
            }
            _ = reap.tick() => {
                // What idle sandboxes changed since their last run is saved before they stop.
                let idle = state.workspaces.save_idle().await;
                let stopped = state.sandboxes.reap_idle().await;
                state.workspaces.stopped(&idle).await;
                if stopped > 0 {
                    tracing::info!(sandboxes = stopped, "stopped idle sandboxes");
                }
                // Bytes of deleted files whose removal failed or was cut short by a crash.
                let removed = state.files.collect_garbage().await;
                if removed > 0 {
                    tracing::info!(blobs = removed, "removed the bytes of deleted files");
                }
                remove_stale_uploads(&crate::services::staging_dir(&state.settings));
                remove_stale_uploads(&crate::agent_setup::workspace_scratch_dir(&state.settings));
            }
        }
    }
}

/// Removes staged uploads left behind by a crash (an upload in flight is younger than the
/// request timeout).
fn remove_stale_uploads(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Deletes file records nothing can reach: files of sessions that are gone, and (with
/// retention on) uploads never sent in a session and older than the retention period.
pub async fn sweep_files_once(state: &crate::AppState, now: OffsetDateTime) {
    let days = state.settings.sessions.retention_days;
    let unsent_before = (days > 0).then(|| now - time::Duration::days(days as i64));
    match state.files.sweep(unsent_before).await {
        Ok(0) => {}
        Ok(swept) => tracing::info!(files = swept, "removed unreachable files"),
        Err(error) => tracing::warn!(%error, "file sweep failed; will retry"),
    }
}
