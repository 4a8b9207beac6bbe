//! Stories of the run queue: starting runs (idempotent, one active run per session),
//! claiming, leases, cancellation and hand-back.

use super::{anyone, get, now_ms, run, session, started, user};
use crate::Db;
use ironhand_core::ports::sessions::LeaseState;
use ironhand_core::session::{RunStatus, SessionStatus, StartRun};
use std::collections::HashSet;
use time::Duration;

pub async fn start_run_is_idempotent_and_refuses_a_busy_session(db: Db) {
    let u = user(&db, "runs@example.com").await;
    let t = now_ms();
    let s = session(&db, u, t).await;
    let first = run(&s, Some("m1"), t);
    let stored = started(&db, &first).await;
    assert_eq!(stored.id, first.id);
    assert_eq!(stored.status, RunStatus::Queued);
    assert_eq!(stored.attachments, first.attachments);
    assert_eq!(stored.created_at, t);
    assert_eq!((stored.attempts, stored.cancel_requested), (0, false));
    assert_eq!(get(&db, s.id).await.status, SessionStatus::Running);

    let busy = db
        .store
        .start_run(&run(&s, Some("m2"), t), None)
        .await
        .expect("busy");
    assert!(matches!(busy, StartRun::Busy), "{busy:?}");
    let dup = db
        .store
        .start_run(&run(&s, Some("m1"), t), None)
        .await
        .expect("dup");
    assert!(
        matches!(&dup, StartRun::Duplicate(r) if r.id == first.id),
        "{dup:?}"
    );
    assert_eq!(
        db.store.active_run(s.id).await.expect("a").map(|r| r.id),
        Some(first.id)
    );

    // Stopped before a worker took it.
    assert!(
        db.store
            .finish_run(
                first.id,
                None,
                RunStatus::Cancelled,
                SessionStatus::Completed,
                t
            )
            .await
            .expect("finish")
    );
    let done = db.store.run_by_id(first.id).await.expect("q").expect("e");
    assert_eq!(done.status, RunStatus::Cancelled);
    assert_eq!(done.finished_at, Some(t));
    assert_eq!(get(&db, s.id).await.status, SessionStatus::Completed);
    assert!(db.store.active_run(s.id).await.expect("a").is_none());

    // A retry of the finished message still finds it; a new message starts.
    let dup = db
        .store
        .start_run(&run(&s, Some("m1"), t), None)
        .await
        .expect("dup");
    assert!(
        matches!(&dup, StartRun::Duplicate(r) if r.id == first.id),
        "{dup:?}"
    );
    let second = started(&db, &run(&s, Some("m2"), t + Duration::seconds(1))).await;
    assert_eq!(
        db.store.latest_run(s.id).await.expect("l").map(|r| r.id),
        Some(second.id)
    );
    // Runs without a client id never collide on it.
    db.store
        .finish_run(
            second.id,
            None,
            RunStatus::Cancelled,
            SessionStatus::Completed,
            t,
        )
        .await
        .expect("finish");
    started(&db, &run(&s, None, t + Duration::seconds(2))).await;
}

pub async fn concurrent_start_runs_start_exactly_one(db: Db) {
    let u = user(&db, "startrace@example.com").await;
    let t = now_ms();
    let s = session(&db, u, t).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = db.store.clone();
        let r = run(&s, Some(&format!("m{i}")), t);
        tasks.push(tokio::spawn(async move {
            store.start_run(&r, None).await.expect("start")
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for task in tasks {
        match task.await.expect("join") {
            StartRun::Started(_) => ok += 1,
            StartRun::Busy => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, busy), (1, 19));

    // The same message sent concurrently is started once; the others get that run.
    let s2 = session(&db, u, t).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = db.store.clone();
        let r = run(&s2, Some("same"), t);
        tasks.push(tokio::spawn(async move {
            store.start_run(&r, None).await.expect("start")
        }));
    }
    let mut ids = HashSet::new();
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("join") {
            StartRun::Started(r) => {
                ok += 1;
                ids.insert(r.id);
            }
            StartRun::Duplicate(r) => {
                ids.insert(r.id);
            }
            other => panic!("a retry of the same message is not {other:?}"),
        }
    }
    assert_eq!((ok, ids.len()), (1, 1));
}

pub async fn workers_claim_each_run_exactly_once(db: Db) {
    let u = user(&db, "claims@example.com").await;
    let t = now_ms();
    let mut queued = HashSet::new();
    for i in 0..3 {
        let s = session(&db, u, t).await;
        queued.insert(
            started(&db, &run(&s, None, t + Duration::milliseconds(i)))
                .await
                .id,
        );
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_run(
                    &format!("worker-{w}"),
                    anyone(t),
                    t,
                    t + Duration::seconds(30),
                )
                .await
                .expect("claim")
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("join"));
    }
    assert_eq!(claimed.len(), 3);
    assert_eq!(claimed.iter().map(|r| r.id).collect::<HashSet<_>>(), queued);
    for r in &claimed {
        assert_eq!(r.status, RunStatus::Running);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.started_at, Some(t));
        assert_eq!(r.lease_expires_at, Some(t + Duration::seconds(30)));
        assert!(
            r.lease_owner
                .as_deref()
                .is_some_and(|w| w.starts_with("worker-"))
        );
    }
    assert!(
        db.store
            .claim_run("late", anyone(t), t, t + Duration::seconds(30))
            .await
            .expect("none")
            .is_none()
    );
}

pub async fn leases_expire_renew_cancel_and_hand_back(db: Db) {
    let u = user(&db, "lease@example.com").await;
    let t = now_ms();
    let s = session(&db, u, t).await;
    let older = session(&db, u, t).await;
    let r = started(&db, &run(&s, Some("m"), t)).await;
    let r_older = started(&db, &run(&older, None, t - Duration::seconds(5))).await;

    // Oldest first.
    let a = db
        .store
        .claim_run("A", anyone(t), t, t + Duration::seconds(10))
        .await
        .expect("claim")
        .expect("some");
    assert_eq!(a.id, r_older.id);
    assert!(
        db.store
            .finish_run(
                a.id,
                Some("A"),
                RunStatus::Completed,
                SessionStatus::Completed,
                t
            )
            .await
            .expect("finish")
    );
    let a = db
        .store
        .claim_run("A", anyone(t), t, t + Duration::seconds(10))
        .await
        .expect("claim")
        .expect("some");
    assert_eq!((a.id, a.attempts), (r.id, 1));
    // Not claimable while the lease runs.
    let mid = t + Duration::seconds(5);
    assert!(
        db.store
            .claim_run("B", anyone(mid), mid, mid + Duration::seconds(10))
            .await
            .expect("claim")
            .is_none()
    );
    assert_eq!(
        db.store
            .renew_lease(r.id, "A", t + Duration::seconds(20))
            .await
            .expect("renew"),
        LeaseState {
            held: true,
            cancel_requested: false
        }
    );
    // A dies: once its lease lapses B takes over, and A has lost it.
    let late = t + Duration::seconds(21);
    let b = db
        .store
        .claim_run("B", anyone(late), late, late + Duration::seconds(10))
        .await
        .expect("claim")
        .expect("reclaimed");
    assert_eq!((b.id, b.attempts), (r.id, 2));
    assert_eq!(b.lease_owner.as_deref(), Some("B"));
    assert_eq!(b.started_at, Some(t));
    assert!(
        !db.store
            .renew_lease(r.id, "A", late + Duration::seconds(30))
            .await
            .expect("renew")
            .held
    );
    assert!(
        !db.store
            .finish_run(
                r.id,
                Some("A"),
                RunStatus::Failed,
                SessionStatus::Failed,
                late
            )
            .await
            .expect("finish")
    );

    // Stop: the flag reaches the holder through its next renewal.
    let flagged = db
        .store
        .request_cancel(s.id)
        .await
        .expect("cancel")
        .expect("active");
    assert_eq!(flagged.id, r.id);
    assert!(flagged.cancel_requested);
    assert_eq!(
        db.store
            .renew_lease(r.id, "B", late + Duration::seconds(20))
            .await
            .expect("renew"),
        LeaseState {
            held: true,
            cancel_requested: true
        }
    );

    // Handing back (e.g. on shutdown) requeues it without finishing it.
    assert!(
        db.store
            .finish_run(
                r.id,
                Some("B"),
                RunStatus::Queued,
                SessionStatus::Running,
                late
            )
            .await
            .expect("hand back")
    );
    let back = db.store.run_by_id(r.id).await.expect("q").expect("e");
    assert_eq!(back.status, RunStatus::Queued);
    assert!(back.lease_owner.is_none() && back.lease_expires_at.is_none());
    assert!(back.finished_at.is_none());
    let c = db
        .store
        .claim_run("C", anyone(late), late, late + Duration::seconds(10))
        .await
        .expect("claim")
        .expect("again");
    assert_eq!((c.id, c.attempts), (r.id, 3));
    // Only a queued run ends without a worker.
    assert!(
        !db.store
            .finish_run(
                r.id,
                None,
                RunStatus::Cancelled,
                SessionStatus::Completed,
                late
            )
            .await
            .expect("finish")
    );
    assert!(
        db.store
            .finish_run(
                r.id,
                Some("C"),
                RunStatus::Cancelled,
                SessionStatus::Completed,
                late
            )
            .await
            .expect("finish")
    );
    let end = db.store.run_by_id(r.id).await.expect("q").expect("e");
    assert_eq!(end.status, RunStatus::Cancelled);
    assert_eq!(end.finished_at, Some(late));
    assert!(end.lease_owner.is_none());
    assert_eq!(get(&db, s.id).await.status, SessionStatus::Completed);
    assert!(db.store.request_cancel(s.id).await.expect("c").is_none());
}
