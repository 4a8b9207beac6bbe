//! Stories of workspace snapshots and sandbox affinity: the latest snapshot replaces the
//! previous one (whose bytes become garbage), only the instance holding the session's
//! sandbox records one, and runs wait a moment for that instance before anyone else claims.

use super::{now_ms, run, session, started, user};
use crate::Db;
use ironhand_core::SessionId;
use ironhand_core::ports::sessions::Claimant;
use ironhand_core::workspace::WorkspaceSnapshot;
use time::{Duration, OffsetDateTime};

fn snapshot(
    session: SessionId,
    key: &str,
    instance: &str,
    at: OffsetDateTime,
) -> WorkspaceSnapshot {
    WorkspaceSnapshot {
        session_id: session,
        version: 0,
        storage_key: key.into(),
        size: 1234,
        sha256: "ab".repeat(32),
        files: 3,
        bytes: 5000,
        left_out_files: 1,
        left_out_bytes: 700,
        instance: instance.into(),
        created_at: at,
    }
}

async fn garbage(db: &Db) -> Vec<String> {
    let mut keys = db.store.blob_garbage(100).await.expect("garbage");
    keys.sort();
    keys
}

pub async fn workspace_snapshots_replace_the_latest_and_go_with_the_session(db: Db) {
    let u = user(&db, "snapshots@example.com").await;
    let t = now_ms();
    let s = session(&db, u, t).await;
    let store = &db.store;
    assert!(store.latest_snapshot(s.id).await.expect("latest").is_none());
    // Nobody holds the sandbox yet: nothing is recorded.
    assert!(
        store
            .record_snapshot(&snapshot(s.id, "w/1", "A", t))
            .await
            .expect("record")
            .is_none()
    );

    store.hold_sandbox(s.id, "A").await.expect("hold");
    assert_eq!(
        store.sandbox_holder(s.id).await.expect("holder").as_deref(),
        Some("A")
    );
    // Another instance's copy is refused while A holds the sandbox.
    assert!(
        store
            .record_snapshot(&snapshot(s.id, "w/b", "B", t))
            .await
            .expect("record")
            .is_none()
    );
    let first = store
        .record_snapshot(&snapshot(s.id, "w/1", "A", t))
        .await
        .expect("record")
        .expect("stored");
    assert_eq!(
        first,
        WorkspaceSnapshot {
            version: 1,
            ..snapshot(s.id, "w/1", "A", t)
        }
    );
    let later = t + Duration::seconds(5);
    let second = store
        .record_snapshot(&snapshot(s.id, "w/2", "A", later))
        .await
        .expect("record")
        .expect("stored");
    assert_eq!((second.version, second.storage_key.as_str()), (2, "w/2"));
    assert_eq!(
        store.latest_snapshot(s.id).await.expect("latest"),
        Some(second.clone())
    );
    // The replaced snapshot's bytes are garbage now.
    assert_eq!(garbage(&db).await, ["w/1"]);
    store
        .forget_blob_garbage(&["w/1".to_string()])
        .await
        .expect("forget");

    // Releasing is only the holder's; releasing everything of an instance frees its sessions.
    assert_eq!(
        store
            .release_sandbox(Some(s.id), "B")
            .await
            .expect("release"),
        0
    );
    assert_eq!(
        store
            .release_sandbox(Some(s.id), "A")
            .await
            .expect("release"),
        1
    );
    assert_eq!(store.sandbox_holder(s.id).await.expect("holder"), None);
    assert!(
        store
            .record_snapshot(&snapshot(s.id, "w/x", "A", later))
            .await
            .expect("record")
            .is_none()
    );
    let other = session(&db, u, t).await;
    store.hold_sandbox(s.id, "A").await.expect("hold");
    store.hold_sandbox(other.id, "A").await.expect("hold");
    assert_eq!(
        store.release_sandbox(None, "A").await.expect("release all"),
        2
    );

    // Deleting the session queues its snapshot's bytes and drops the record.
    store.hold_sandbox(s.id, "A").await.expect("hold");
    assert!(store.delete_session(s.id).await.expect("delete"));
    assert_eq!(garbage(&db).await, ["w/2"]);
    assert!(store.latest_snapshot(s.id).await.expect("latest").is_none());
    // A snapshot finished after the deletion finds no session and stores nothing.
    assert!(
        store
            .record_snapshot(&snapshot(s.id, "w/3", "A", later))
            .await
            .expect("record")
            .is_none()
    );
    assert_eq!(store.sandbox_holder(s.id).await.expect("holder"), None);
}

pub async fn runs_wait_briefly_for_the_instance_holding_their_sandbox(db: Db) {
    let u = user(&db, "affinity@example.com").await;
    let t = now_ms();
    let wait = std::time::Duration::from_secs(2);
    let lease = |now: OffsetDateTime| now + Duration::seconds(30);
    // s1 (oldest run) is held by A; s2 by nobody; s3 by A, created later.
    let s1 = session(&db, u, t).await;
    let s2 = session(&db, u, t).await;
    let s3 = session(&db, u, t).await;
    let r1 = started(&db, &run(&s1, None, t)).await;
    let r2 = started(&db, &run(&s2, None, t + Duration::milliseconds(1))).await;
    let r3 = started(&db, &run(&s3, None, t + Duration::seconds(1))).await;
    db.store.hold_sandbox(s1.id, "A").await.expect("hold");
    db.store.hold_sandbox(s3.id, "A").await.expect("hold");

    // B passes over A's runs and takes the free one; then finds nothing it may take.
    let now = t + Duration::milliseconds(500);
    let b = db
        .store
        .claim_run("B/1", Claimant::new("B", now, wait), now, lease(now))
        .await
        .expect("claim");
    assert_eq!(b.map(|r| r.id), Some(r2.id));
    let none = db
        .store
        .claim_run("B/2", Claimant::new("B", now, wait), now, lease(now))
        .await
        .expect("claim");
    assert!(none.is_none());
    // A takes its own at once, oldest first.
    let a = db
        .store
        .claim_run("A/1", Claimant::new("A", now, wait), now, lease(now))
        .await
        .expect("claim");
    assert_eq!(a.map(|r| r.id), Some(r1.id));

    // After the wait, A's run is anyone's (A may be gone).
    let early = t + Duration::milliseconds(2500);
    let b = db
        .store
        .claim_run("B/3", Claimant::new("B", early, wait), early, lease(early))
        .await
        .expect("claim");
    assert!(b.is_none(), "r3 has waited 1.5 s only");
    let late = t + Duration::seconds(3);
    let b = db
        .store
        .claim_run("B/4", Claimant::new("B", late, wait), late, lease(late))
        .await
        .expect("claim");
    assert_eq!(b.map(|r| r.id), Some(r3.id));
}
