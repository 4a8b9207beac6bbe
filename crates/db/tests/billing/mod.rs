//! Stories of the billing and file ports: metered run starts, period versions, the trial,
//! payment events applied once, file quotas and the blob garbage list. Run on both
//! backends by `on_both_backends!` in `conformance.rs`.

use super::Db;
use super::sessions::{run_for, session_for, user_for};
use ironhand_core::billing::{RunMeter, SubscriptionUpdate};
use ironhand_core::files::{FileSource, QuotaCheck, StoredFile};
use ironhand_core::ids::{FileId, UserId};
use ironhand_core::session::StartRun;
use std::collections::HashSet;
use time::OffsetDateTime;

fn meter(version: i64, max_active: i64) -> RunMeter {
    RunMeter {
        count: true,
        enforce_limit: true,
        period_version: version,
        max_active_runs: max_active,
    }
}

async fn set_limit(db: &Db, user: UserId, limit: i64) {
    let update = SubscriptionUpdate {
        monthly_agent_runs_limit: Some(limit),
        ..Default::default()
    };
    db.store
        .update_subscription(user, None, &update, OffsetDateTime::now_utc())
        .await
        .expect("update")
        .expect("has a subscription");
}

async fn used(db: &Db, user: UserId) -> (i64, i64) {
    let sub = db
        .store
        .subscription_for_user(user)
        .await
        .expect("q")
        .expect("sub");
    (sub.monthly_agent_runs, sub.period_version)
}

pub async fn concurrent_starts_never_pass_the_run_limit(db: Db) {
    let u = user_for(&db, "meter@example.com").await;
    set_limit(&db, u, 3).await;
    let t = OffsetDateTime::now_utc();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = session_for(&db, u, t).await;
        let store = db.store.clone();
        let r = run_for(&s, None, t);
        tasks.push(tokio::spawn(async move {
            store
                .start_run(&r, Some(&meter(0, 100)))
                .await
                .expect("start")
        }));
    }
    let (mut started, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("join") {
            StartRun::Started(_) => started += 1,
            StartRun::LimitReached => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((started, refused), (3, 17));
    assert_eq!(used(&db, u).await, (3, 0));
    // A refused start stored no run: its session is still free.
    let s = session_for(&db, u, t).await;
    assert_eq!(
        db.store
            .start_run(&run_for(&s, None, t), Some(&meter(0, 100)))
            .await
            .expect("start"),
        StartRun::LimitReached
    );
    assert!(db.store.active_run(s.id).await.expect("q").is_none());

    // Not enforced: counted, never refused. A reply is never counted.
    let unenforced = RunMeter {
        enforce_limit: false,
        ..meter(0, 100)
    };
    assert!(matches!(
        db.store
            .start_run(&run_for(&s, None, t), Some(&unenforced))
            .await
            .expect("start"),
        StartRun::Started(_)
    ));
    assert_eq!(used(&db, u).await, (4, 0));
    let reply = RunMeter {
        count: false,
        ..meter(0, 100)
    };
    let s2 = session_for(&db, u, t).await;
    assert!(matches!(
        db.store
            .start_run(&run_for(&s2, None, t), Some(&reply))
            .await
            .expect("start"),
        StartRun::Started(_)
    ));
    assert_eq!(used(&db, u).await, (4, 0));
}

pub async fn a_new_period_resets_usage_and_refuses_stale_meters(db: Db) {
    let u = user_for(&db, "period@example.com").await;
    let t = OffsetDateTime::now_utc();
    let s = session_for(&db, u, t).await;
    assert!(matches!(
        db.store
            .start_run(&run_for(&s, None, t), Some(&meter(0, 100)))
            .await
            .expect("start"),
        StartRun::Started(_)
    ));
    let roll = SubscriptionUpdate {
        period: Some((t, t + time::Duration::days(30))),
        reset_usage: true,
        ..Default::default()
    };
    let rolled = db
        .store
        .update_subscription(u, Some(0), &roll, t)
        .await
        .expect("roll")
        .expect("rolled");
    assert_eq!((rolled.monthly_agent_runs, rolled.period_version), (0, 1));
    // A second roll from the same version does nothing.
    assert!(
        db.store
            .update_subscription(u, Some(0), &roll, t)
            .await
            .expect("roll")
            .is_none()
    );
    // The same period again (a second event announcing one renewal) resets nothing; a
    // period with another start does.
    let s3 = session_for(&db, u, t).await;
    assert!(matches!(
        db.store
            .start_run(&run_for(&s3, None, t), Some(&meter(1, 100)))
            .await
            .expect("start"),
        StartRun::Started(_)
    ));
    let same = SubscriptionUpdate {
        period: Some((t, t + time::Duration::days(30))),
        ..Default::default()
    };
    let kept = db
        .store
        .update_subscription(u, None, &same, t)
        .await
        .expect("same")
        .expect("row");
    assert_eq!((kept.monthly_agent_runs, kept.period_version), (1, 1));
    let next = SubscriptionUpdate {
        period: Some((t + time::Duration::days(30), t + time::Duration::days(60))),
        ..Default::default()
    };
    let moved = db
        .store
        .update_subscription(u, None, &next, t)
        .await
        .expect("next")
        .expect("row");
    assert_eq!((moved.monthly_agent_runs, moved.period_version), (0, 2));
    // A meter of the old period is refused and stores nothing.
    let s2 = session_for(&db, u, t).await;
    assert_eq!(
        db.store
            .start_run(&run_for(&s2, None, t), Some(&meter(0, 100)))
            .await
            .expect("start"),
        StartRun::LimitReached
    );
    assert_eq!(used(&db, u).await, (0, 2));
}

pub async fn runs_in_progress_are_capped_per_user(db: Db) {
    let u = user_for(&db, "cap@example.com").await;
    let t = OffsetDateTime::now_utc();
    for expected_ok in [true, true, false] {
        let s = session_for(&db, u, t).await;
        let outcome = db
            .store
            .start_run(&run_for(&s, None, t), Some(&meter(0, 2)))
            .await
            .expect("start");
        assert_eq!(
            matches!(outcome, StartRun::Started(_)),
            expected_ok,
            "{outcome:?}"
        );
        if !expected_ok {
            assert_eq!(outcome, StartRun::TooManyActive);
        }
    }
    // The refused one was not counted.
    assert_eq!(used(&db, u).await, (2, 0));
}

pub async fn the_trial_starts_once_and_customers_are_found(db: Db) {
    let u = user_for(&db, "trial@example.com").await;
    let t = OffsetDateTime::now_utc();
    let trial = SubscriptionUpdate {
        plan: Some("basic".into()),
        status: Some("trialing".into()),
        monthly_agent_runs_limit: Some(50),
        is_trial: Some(true),
        trial_end: Some(Some(t + time::Duration::days(14))),
        trial_used: Some(true),
        reset_usage: true,
        ..Default::default()
    };
    let sub = db
        .store
        .start_trial(u, &trial, t)
        .await
        .expect("trial")
        .expect("started");
    assert!(
        sub.is_trial && sub.trial_used && sub.plan == "basic" && sub.monthly_agent_runs_limit == 50
    );
    assert!(sub.trial_end.is_some());
    assert!(
        db.store
            .start_trial(u, &trial, t)
            .await
            .expect("trial")
            .is_none(),
        "only once"
    );

    let link = SubscriptionUpdate {
        stripe_customer_id: Some("cus_123".into()),
        stripe_subscription_id: Some(Some("sub_9".into())),
        trial_end: Some(None),
        ..Default::default()
    };
    db.store
        .update_subscription(u, None, &link, t)
        .await
        .expect("link");
    let by_customer = db
        .store
        .subscription_by_customer("cus_123")
        .await
        .expect("q")
        .expect("found");
    assert_eq!(by_customer.user_id, u);
    assert!(by_customer.trial_end.is_none(), "cleared");
    assert_eq!(
        db.store
            .subscription_by_provider_id("sub_9")
            .await
            .expect("q")
            .expect("found")
            .user_id,
        u
    );
    let unlink = SubscriptionUpdate {
        stripe_subscription_id: Some(None),
        ..Default::default()
    };
    db.store
        .update_subscription(u, None, &unlink, t)
        .await
        .expect("unlink");
    assert!(
        db.store
            .subscription_by_provider_id("sub_9")
            .await
            .expect("q")
            .is_none()
    );
    assert!(
        db.store
            .subscription_by_customer("nobody")
            .await
            .expect("q")
            .is_none()
    );
}

pub async fn a_payment_event_applies_once_under_concurrent_delivery(db: Db) {
    let u = user_for(&db, "events@example.com").await;
    let t = OffsetDateTime::now_utc();
    let update = SubscriptionUpdate {
        plan: Some("pro".into()),
        monthly_agent_runs_limit: Some(5000),
        reset_usage: true,
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = db.store.clone();
        let update = update.clone();
        tasks.push(tokio::spawn(async move {
            store
                .apply_payment_event("evt_1", "invoice.paid", Some((u, &update)), t)
                .await
                .expect("apply")
        }));
    }
    let mut applied = 0;
    for task in tasks {
        if task.await.expect("join") {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    let sub = db
        .store
        .subscription_for_user(u)
        .await
        .expect("q")
        .expect("sub");
    assert_eq!(
        (sub.plan.as_str(), sub.period_version),
        ("pro", 1),
        "one effect"
    );
    // An event without a change is recorded too.
    assert!(
        db.store
            .apply_payment_event("evt_2", "ping", None, t)
            .await
            .expect("apply")
    );
    assert!(
        !db.store
            .apply_payment_event("evt_2", "ping", None, t)
            .await
            .expect("apply")
    );
}

fn file(
    user: UserId,
    size: i64,
    path: Option<&str>,
    session: Option<ironhand_core::SessionId>,
) -> StoredFile {
    StoredFile {
        id: FileId::new(),
        user_id: user,
        session_id: session,
        filename: "a.txt".into(),
        content_type: "text/plain".into(),
        size,
        sha256: "00".into(),
        storage_key: format!("k/{}", uuid::Uuid::now_v7().simple()),
        source: if path.is_some() {
            FileSource::Agent
        } else {
            FileSource::Upload
        },
        sandbox_path: path.map(str::to_owned),
        created_at: super::sessions::now_ms(),
    }
}

pub async fn files_stay_within_the_quota_even_when_stored_concurrently(db: Db) {
    let u = user_for(&db, "quota@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = db.store.clone();
        let f = file(u, 100, None, None);
        tasks.push(tokio::spawn(async move {
            store.insert_file(&f, 500).await.expect("insert")
        }));
    }
    let mut stored = 0;
    for task in tasks {
        match task.await.expect("join") {
            QuotaCheck::Stored(_) => stored += 1,
            QuotaCheck::OverQuota { used } => assert!(used > 500 - 100, "used {used}"),
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(db.store.storage_used(u).await.expect("q"), 500);
    // Another user's quota is their own.
    let other = user_for(&db, "quota2@example.com").await;
    assert!(matches!(
        db.store
            .insert_file(&file(other, 500, None, None), 500)
            .await
            .expect("i"),
        QuotaCheck::Stored(_)
    ));
}

pub async fn agent_files_replace_their_copy_and_deleted_bytes_are_collected(db: Db) {
    let u = user_for(&db, "agentfiles@example.com").await;
    let t = OffsetDateTime::now_utc();
    let s = session_for(&db, u, t).await;
    let first = file(u, 10, Some("/home/ubuntu/out.md"), Some(s.id));
    let QuotaCheck::Stored(a) = db.store.insert_file(&first, 1_000).await.expect("insert") else {
        panic!("stored")
    };
    let second = StoredFile {
        size: 20,
        ..file(u, 20, Some("/home/ubuntu/out.md"), Some(s.id))
    };
    let QuotaCheck::Stored(b) = db.store.insert_file(&second, 1_000).await.expect("insert") else {
        panic!("stored")
    };
    assert_eq!(a.id, b.id, "same record, new content");
    let files = db.store.session_files(s.id).await.expect("q");
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].size, files[0].storage_key.as_str()),
        (20, second.storage_key.as_str())
    );
    assert_eq!(
        db.store.blob_garbage(10).await.expect("q"),
        vec![first.storage_key.clone()]
    );
    // Replacing counts only the difference against the quota.
    let third = file(u, 990, Some("/home/ubuntu/out.md"), Some(s.id));
    assert!(matches!(
        db.store.insert_file(&third, 1_000).await.expect("i"),
        QuotaCheck::Stored(_)
    ));

    // An upload attached to the session, then the session deleted: both records go, both
    // keys wait in the garbage list.
    let upload = file(u, 5, None, None);
    db.store.insert_file(&upload, 10_000).await.expect("insert");
    db.store.attach_file(upload.id, s.id).await.expect("attach");
    let other_session = session_for(&db, u, t).await;
    db.store
        .attach_file(upload.id, other_session.id)
        .await
        .expect("attach again is a no-op");
    assert_eq!(
        db.store
            .file_by_id(upload.id)
            .await
            .expect("q")
            .expect("f")
            .session_id,
        Some(s.id)
    );
    assert!(db.store.delete_session(s.id).await.expect("delete"));
    assert!(db.store.file_by_id(upload.id).await.expect("q").is_none());
    let garbage: HashSet<String> = db
        .store
        .blob_garbage(10)
        .await
        .expect("q")
        .into_iter()
        .collect();
    assert!(
        garbage.contains(&upload.storage_key)
            && garbage.contains(&third.storage_key)
            && garbage.contains(&second.storage_key)
    );
    db.store
        .forget_blob_garbage(&garbage.iter().cloned().collect::<Vec<_>>())
        .await
        .expect("forget");
    assert!(db.store.blob_garbage(10).await.expect("q").is_empty());

    // Deleting one file.
    let lone = file(u, 1, None, None);
    db.store.insert_file(&lone, 10_000).await.expect("insert");
    assert!(db.store.delete_file(lone.id, t).await.expect("delete"));
    assert!(!db.store.delete_file(lone.id, t).await.expect("delete"));
    assert_eq!(
        db.store.blob_garbage(10).await.expect("q"),
        vec![lone.storage_key]
    );
    assert_eq!(db.store.storage_used(u).await.expect("q"), 0);
}

pub async fn unreachable_files_are_swept(db: Db) {
    let u = user_for(&db, "sweep@example.com").await;
    let t = OffsetDateTime::now_utc();
    let live_session = session_for(&db, u, t).await;
    let live = file(u, 1, Some("/home/ubuntu/live.txt"), Some(live_session.id));
    let orphan = file(
        u,
        1,
        Some("/home/ubuntu/gone.txt"),
        Some(ironhand_core::SessionId::new()),
    );
    let old_unsent = StoredFile {
        created_at: super::sessions::now_ms() - time::Duration::days(100),
        ..file(u, 1, None, None)
    };
    let fresh_unsent = file(u, 1, None, None);
    for f in [&live, &orphan, &old_unsent, &fresh_unsent] {
        db.store.insert_file(f, 1_000).await.expect("insert");
    }
    // Without an age for unsent uploads only the orphan goes.
    assert_eq!(db.store.sweep_files(None, t).await.expect("sweep"), 1);
    assert!(db.store.file_by_id(orphan.id).await.expect("q").is_none());
    assert_eq!(
        db.store
            .sweep_files(Some(t - time::Duration::days(90)), t)
            .await
            .expect("sweep"),
        1
    );
    assert!(
        db.store
            .file_by_id(old_unsent.id)
            .await
            .expect("q")
            .is_none()
    );
    assert!(
        db.store
            .file_by_id(fresh_unsent.id)
            .await
            .expect("q")
            .is_some()
    );
    assert!(db.store.file_by_id(live.id).await.expect("q").is_some());
    let garbage: HashSet<String> = db
        .store
        .blob_garbage(10)
        .await
        .expect("q")
        .into_iter()
        .collect();
    assert_eq!(
        garbage,
        HashSet::from([orphan.storage_key.clone(), old_unsent.storage_key.clone()])
    );
}
