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
