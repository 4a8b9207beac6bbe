//! One storage story, run against SQLite and PostgreSQL: both backends must answer alike.

use ironhand_core::StoreError;
use ironhand_core::ids::UserId;
use ironhand_core::ports::Store;
use ironhand_core::ports::store::{RefreshTokenRecord, VerificationCode};
use ironhand_core::subscription::Subscription;
use ironhand_core::user::{Email, NewUser, Role};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

mod billing;
mod files;
mod mcp;
mod sessions;
use billing::*;
use files::*;
use mcp::*;
use sessions::*;

struct Db {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ironhand_db::connect(&ironhand_db::testing::fresh_sqlite_url(dir.path()), true)
        .await
        .expect("sqlite");
    Db {
        store,
        _dir: Some(dir),
    }
}

async fn postgres() -> Db {
    let url =
        ironhand_db::testing::fresh_postgres_database(&ironhand_db::testing::test_database_url())
            .await
            .expect("postgres test database");
    let store = ironhand_db::connect(&url, true).await.expect("postgres");
    Db { store, _dir: None }
}

// Each story once per backend, as `sqlite_backend::<story>` and `postgres_backend::<story>`.
ironhand_db::on_both_backends!(
    worker_threads = 4,
    sqlite_backend => sqlite().await,
    postgres_backend => postgres().await;
    first_user_is_admin_and_gets_a_free_subscription,
    concurrent_first_accounts_make_exactly_one_admin,
    duplicate_email_is_a_conflict_and_stores_nothing,
    users_are_listed_newest_first_and_searched,
    profile_password_and_activation_updates,
    refresh_tokens_rotate_once_and_families_revoke,
    concurrent_rotations_and_revocations_never_leave_a_live_token,
    verification_codes_count_attempts_and_reset_once,
    pruning_removes_only_records_that_can_no_longer_matter,
    a_family_behind_the_users_token_version_cannot_rotate,
    plain_accounts_do_not_take_the_first_admin_slot,
    sessions_are_listed_paged_and_updated,
    events_are_numbered_and_update_the_session,
    the_latest_event_of_one_kind_is_found_per_session,
    concurrent_appends_get_gap_free_numbers,
    start_run_is_idempotent_and_refuses_a_busy_session,
    concurrent_start_runs_start_exactly_one,
    workers_claim_each_run_exactly_once,
    leases_expire_renew_cancel_and_hand_back,
    memory_is_saved_replaced_and_deleted_with_the_session,
    idle_sessions_are_found_oldest_first,
    job_locks_exclude_until_expiry,
    concurrent_starts_never_pass_the_run_limit,
    a_new_period_resets_usage_and_refuses_stale_meters,
    runs_in_progress_are_capped_per_user,
    the_trial_starts_once_and_customers_are_found,
    a_payment_event_applies_once_under_concurrent_delivery,
    files_stay_within_the_quota_even_when_stored_concurrently,
    agent_files_replace_their_copy_and_deleted_bytes_are_collected,
    unreachable_files_are_swept,
    screenshots_are_session_files_left_out_of_the_list,
    connectors_are_kept_per_user_and_replaced_by_name,
    workspace_snapshots_replace_the_latest_and_go_with_the_session,
    runs_wait_briefly_for_the_instance_holding_their_sandbox,
);

fn now() -> OffsetDateTime {
    // Whole microseconds: what both backends keep.
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .expect("valid")
}

fn new_user(email: &str, role: Option<Role>) -> (NewUser, Subscription) {
    let t = now();
    let user = NewUser {
        id: UserId::new(),
        fullname: format!("User {email}"),
        email: Email::parse(email).expect("email"),
        password_hash: Some("$argon2id$fake".into()),
        role,
        now: t,
    };
    let sub = Subscription::free(user.id, 10, t);
    (user, sub)
}

async fn first_user_is_admin_and_gets_a_free_subscription(db: Db) {
    db.store.ping().await.expect("ping");
    let (a, sa) = new_user("first@example.com", None);
    let first = db.store.create_user(&a, &sa).await.expect("create");
    assert_eq!(first.role, Role::Admin);
    assert!(first.is_active);
    assert_eq!(first.token_version, 0);
    assert_eq!(first.created_at, a.now);
    let (b, sb) = new_user("second@example.com", None);
    assert_eq!(
        db.store.create_user(&b, &sb).await.expect("create").role,
        Role::User
    );

    let sub = db
        .store
        .subscription_for_user(first.id)
        .await
        .expect("sub")
        .expect("exists");
    assert_eq!(sub.plan, "free");
    assert_eq!(sub.status, "active");
    assert_eq!(sub.monthly_agent_runs, 0);
    assert_eq!(sub.monthly_agent_runs_limit, 10);
    assert!(sub.current_period_end > sub.current_period_start);

    let by_email = db
        .store
        .user_by_email(&Email::parse("FIRST@example.com").expect("e"))
        .await
        .expect("q");
    assert_eq!(by_email.map(|u| u.id), Some(first.id));
    assert!(
        db.store
            .user_by_id(UserId::new())
            .await
            .expect("q")
            .is_none()
    );
}

async fn concurrent_first_accounts_make_exactly_one_admin(db: Db) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let (u, s) = new_user(&format!("racer{i}@example.com"), None);
            store.create_user(&u, &s).await.expect("create").role
        }));
    }
    let mut admins = 0;
    for t in tasks {
        if t.await.expect("join") == Role::Admin {
            admins += 1;
        }
    }
    assert_eq!(admins, 1);
    // An explicit role is kept, and later accounts are plain users.
    let (u, s) = new_user("second-admin@example.com", Some(Role::Admin));
    assert_eq!(
        db.store.create_user(&u, &s).await.expect("create").role,
        Role::Admin
    );
    let (u, s) = new_user("late@example.com", None);
    assert_eq!(
        db.store.create_user(&u, &s).await.expect("create").role,
        Role::User
    );
}

async fn duplicate_email_is_a_conflict_and_stores_nothing(db: Db) {
    let (a, sa) = new_user("dup@example.com", None);
    db.store.create_user(&a, &sa).await.expect("create");
    let (b, sb) = new_user("dup@example.com", None);
    let err = db.store.create_user(&b, &sb).await.expect_err("duplicate");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(db.store.user_by_id(b.id).await.expect("q").is_none());
    assert!(
        db.store
            .subscription_for_user(b.id)
            .await
            .expect("q")
            .is_none()
    );
}

async fn users_are_listed_newest_first_and_searched(db: Db) {
    for i in 0..5 {
        let (u, s) = new_user(&format!("person{i}@example.com"), None);
        db.store.create_user(&u, &s).await.expect("create");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let (u, s) = new_user("under_score@example.org", None);
    db.store.create_user(&u, &s).await.expect("create");
    let page = db.store.list_users(0, 3, None).await.expect("list");
    assert_eq!(page.total, 6);
    assert_eq!(page.users.len(), 3);
    assert_eq!(page.users[0].email, "under_score@example.org");
    let page2 = db.store.list_users(3, 3, None).await.expect("list");
    assert_eq!(
        page2.users.last().map(|u| u.email.as_str()),
        Some("person0@example.com")
    );

    let found = db
        .store
        .list_users(0, 10, Some("PERSON3"))
        .await
        .expect("search");
    assert_eq!(found.total, 1);
    // `_` and `%` are literal characters, not wildcards.
    assert_eq!(
        db.store
            .list_users(0, 10, Some("_"))
            .await
            .expect("search")
            .total,
        1
    );
    assert_eq!(
        db.store
            .list_users(0, 10, Some("%"))
            .await
            .expect("search")
            .total,
        0
    );
}

async fn profile_password_and_activation_updates(db: Db) {
    let (u, s) = new_user("upd@example.com", Some(Role::User));
    let user = db.store.create_user(&u, &s).await.expect("create");
    let t = now();
    let renamed = db
        .store
        .update_fullname(user.id, "New Name", t)
        .await
        .expect("rename")
        .expect("exists");
    assert_eq!(renamed.fullname, "New Name");
    assert_eq!(renamed.updated_at, t);
    assert!(
        db.store
            .update_fullname(UserId::new(), "x", t)
            .await
            .expect("rename")
            .is_none()
    );

    db.store
        .update_password(user.id, "$argon2id$new", None, t)
        .await
        .expect("pw");
    let after = db
        .store
        .user_by_id(user.id)
        .await
        .expect("q")
        .expect("exists");
    assert_eq!(after.password_hash.as_deref(), Some("$argon2id$new"));
    assert_eq!(after.token_version, 1);

    // A cost upgrade swaps the hash only if it is still the one read, and keeps sessions.
    db.store
        .replace_password_hash(user.id, "$argon2id$new", "$argon2id$upgraded")
        .await
        .expect("upgrade");
    db.store
        .replace_password_hash(user.id, "$argon2id$stale", "$argon2id$lost")
        .await
        .expect("no-op");
    let upgraded = db.store.user_by_id(user.id).await.expect("q").expect("e");
    assert_eq!(
        upgraded.password_hash.as_deref(),
        Some("$argon2id$upgraded")
    );
    assert_eq!(upgraded.token_version, 1);
    db.store
        .end_all_sessions(user.id, t)
        .await
        .expect("end sessions");
    assert!(
        db.store
            .set_active(user.id, false, t)
            .await
            .expect("deactivate")
    );
    let off = db
        .store
        .user_by_id(user.id)
        .await
        .expect("q")
        .expect("exists");
    assert!(!off.is_active);
    assert_eq!(off.token_version, 3);
    assert!(
        db.store
            .set_active(user.id, true, t)
            .await
            .expect("activate")
    );
    assert_eq!(
        db.store
            .user_by_id(user.id)
            .await
            .expect("q")
            .expect("e")
            .token_version,
        3
    );
    assert!(
        !db.store
            .set_active(UserId::new(), true, t)
            .await
            .expect("missing")
    );

    db.store
        .set_role(user.id, Role::Admin, t)
        .await
        .expect("role");
    db.store.record_login(user.id, t).await.expect("login");
    let last = db.store.user_by_id(user.id).await.expect("q").expect("e");
    assert_eq!(last.role, Role::Admin);
    assert_eq!(last.last_login_at, Some(t));
}

fn token(user: UserId, family: Uuid, hash: &str) -> RefreshTokenRecord {
    let t = now();
    RefreshTokenRecord {
        id: Uuid::now_v7(),
        user_id: user,
        family_id: family,
        token_hash: hash.into(),
        created_at: t,
        expires_at: t + time::Duration::days(30),
        rotated_at: None,
        revoked_at: None,
    }
}

async fn refresh_tokens_rotate_once_and_families_revoke(db: Db) {
    let (u, s) = new_user("tok@example.com", None);
    let user = db.store.create_user(&u, &s).await.expect("create");
    let (fam_a, fam_b) = (Uuid::now_v7(), Uuid::now_v7());
    let a1 = token(user.id, fam_a, "hash-a1");
    db.store
        .start_refresh_family(&a1, 0)
        .await
        .expect("start a");
    db.store
        .start_refresh_family(&token(user.id, fam_b, "hash-b1"), 0)
        .await
        .expect("start b");

    let found = db
        .store
        .refresh_token_by_hash("hash-a1")
        .await
        .expect("q")
        .expect("exists");
    assert_eq!(found.family_id, fam_a);
    assert_eq!(found.expires_at, a1.expires_at);
    assert!(found.revoked_at.is_none() && found.rotated_at.is_none());
    assert!(
        db.store
            .refresh_token_by_hash("nope")
            .await
            .expect("q")
            .is_none()
    );

    // A token rotates once; the second attempt stores nothing.
    let t = now();
    let a2 = token(user.id, fam_a, "hash-a2");
    assert!(
        db.store
            .rotate_refresh_token(a1.id, &a2, t)
            .await
            .expect("rotate")
    );
    let a2_again = token(user.id, fam_a, "hash-a2-again");
    assert!(
        !db.store
            .rotate_refresh_token(a1.id, &a2_again, t)
            .await
            .expect("rotate twice")
    );
    assert!(
        db.store
            .refresh_token_by_hash("hash-a2-again")
            .await
            .expect("q")
            .is_none()
    );
    assert_eq!(
        db.store
            .refresh_token_by_hash("hash-a1")
            .await
            .expect("q")
            .expect("e")
            .rotated_at,
        Some(t)
    );

    // Revoking the family revokes every token in it, and nothing rotates out of it after.
    assert_eq!(
        db.store
            .revoke_refresh_family(fam_a, t)
            .await
            .expect("revoke"),
        1
    );
    assert_eq!(
        db.store
            .revoke_refresh_family(fam_a, t)
            .await
            .expect("revoke again"),
        0
    );
    assert_eq!(
        db.store
            .refresh_token_by_hash("hash-a2")
            .await
            .expect("q")
            .expect("e")
            .revoked_at,
        Some(t)
    );
    let a3 = token(user.id, fam_a, "hash-a3");
    assert!(
        !db.store
            .rotate_refresh_token(a2.id, &a3, t)
            .await
            .expect("rotate revoked")
    );
    assert!(
        db.store
            .refresh_token_by_hash("hash-a3")
            .await
            .expect("q")
            .is_none()
    );
    assert!(
        db.store
            .refresh_token_by_hash("hash-b1")
            .await
            .expect("q")
            .expect("e")
            .revoked_at
            .is_none()
    );

    // Keeping family B revokes nothing more; without it, B goes too.
    assert_eq!(
        db.store
            .revoke_user_refresh_tokens(user.id, Some(fam_b), t)
            .await
            .expect("revoke"),
        0
    );
    assert_eq!(
        db.store
            .revoke_user_refresh_tokens(user.id, None, t)
            .await
            .expect("revoke"),
        1
    );
    let dup = db
        .store
        .start_refresh_family(&token(user.id, Uuid::now_v7(), "hash-b1"), 0)
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
}

async fn concurrent_rotations_and_revocations_never_leave_a_live_token(db: Db) {
    let (u, s) = new_user("race@example.com", None);
    let user = db.store.create_user(&u, &s).await.expect("create");
    for round in 0..10 {
        let family = Uuid::now_v7();
        let first = token(user.id, family, &format!("race-{round}-0"));
        db.store
            .start_refresh_family(&first, 0)
            .await
            .expect("start");
        // Two rotations of the same token and a revocation, all at once.
        let mut tasks = Vec::new();
        for i in 1..=2 {
            let store = db.store.clone();
            let next = token(user.id, family, &format!("race-{round}-{i}"));
            let old = first.id;
            tasks.push(tokio::spawn(async move {
                store
                    .rotate_refresh_token(old, &next, now())
                    .await
                    .expect("rotate")
            }));
        }
        let store = db.store.clone();
        let revoke = tokio::spawn(async move {
            store
                .revoke_refresh_family(family, now())
                .await
                .expect("revoke")
        });
        let wins: usize = futures_count(tasks).await;
        revoke.await.expect("join");
        assert!(wins <= 1, "one rotation at most");
        for i in 0..=2 {
            if let Some(t) = db
                .store
                .refresh_token_by_hash(&format!("race-{round}-{i}"))
                .await
                .expect("q")
            {
                assert!(
                    t.revoked_at.is_some(),
                    "every token of a revoked family is dead"
                );
            }
        }
    }
}

async fn futures_count(tasks: Vec<tokio::task::JoinHandle<bool>>) -> usize {
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("join") {
            wins += 1;
        }
    }
    wins
}

async fn verification_codes_count_attempts_and_reset_once(db: Db) {
    let (u, s) = new_user("code@example.com", None);
    let user = db.store.create_user(&u, &s).await.expect("create");
    db.store
        .start_refresh_family(&token(user.id, Uuid::now_v7(), "live"), 0)
        .await
        .expect("insert");
    let t = now();
    let code = |hash: &str| VerificationCode {
        id: Uuid::now_v7(),
        user_id: user.id,
        purpose: "reset_password".into(),
        code_hash: hash.into(),
        created_at: t,
        expires_at: t + time::Duration::minutes(10),
        attempts: 0,
        consumed_at: None,
    };
    let first = code("first");
    db.store
        .replace_verification_code(&first)
        .await
        .expect("store");
    let second = code("second");
    db.store
        .replace_verification_code(&second)
        .await
        .expect("replace");
    let active = db
        .store
        .active_verification_code(user.id, "reset_password")
        .await
        .expect("q")
        .expect("e");
    assert_eq!(active.code_hash, "second");
    assert!(
        db.store
            .active_verification_code(user.id, "other")
            .await
            .expect("q")
            .is_none()
    );

    assert_eq!(
        db.store
            .record_failed_code_attempt(second.id, 2)
            .await
            .expect("fail"),
        Some(1)
    );
    assert_eq!(
        db.store
            .record_failed_code_attempt(second.id, 2)
            .await
            .expect("fail"),
        Some(2)
    );
    assert_eq!(
        db.store
            .record_failed_code_attempt(second.id, 2)
            .await
            .expect("fail"),
        None
    );
    // Burned: a correct guess no longer resets anything.
    assert!(
        !db.store
            .reset_password_with_code(second.id, 2, user.id, "$new", t)
            .await
            .expect("reset")
    );

    let third = code("third");
    db.store
        .replace_verification_code(&third)
        .await
        .expect("replace");
    assert!(
        db.store
            .reset_password_with_code(third.id, 5, user.id, "$new", t)
            .await
            .expect("reset")
    );
    assert!(
        !db.store
            .reset_password_with_code(third.id, 5, user.id, "$newer", t)
            .await
            .expect("reuse")
    );
    let after = db.store.user_by_id(user.id).await.expect("q").expect("e");
    assert_eq!(after.password_hash.as_deref(), Some("$new"));
    assert_eq!(after.token_version, 1);
    assert!(
        db.store
            .refresh_token_by_hash("live")
            .await
            .expect("q")
            .expect("e")
            .revoked_at
            .is_some()
    );
    assert!(
        db.store
            .active_verification_code(user.id, "reset_password")
            .await
            .expect("q")
            .is_none()
    );
}

async fn pruning_removes_only_records_that_can_no_longer_matter(db: Db) {
    let (u, s) = new_user("prune@example.com", None);
    let user = db.store.create_user(&u, &s).await.expect("create");
    let t = now();
    let expired = |family: Uuid, hash: &str| RefreshTokenRecord {
        expires_at: t - time::Duration::hours(1),
        ..token(user.id, family, hash)
    };
    // A: a live family whose first token was rotated and has since expired.
    let fam_a = Uuid::now_v7();
    let a1 = expired(fam_a, "a1");
    db.store.start_refresh_family(&a1, 0).await.expect("start");
    assert!(
        db.store
            .rotate_refresh_token(a1.id, &token(user.id, fam_a, "a2"), t)
            .await
            .expect("rotate")
    );
    // B: a family whose only token expired.
    let fam_b = Uuid::now_v7();
    db.store
        .start_refresh_family(&expired(fam_b, "b1"), 0)
        .await
        .expect("start");
    // C: revoked long ago; D: revoked just now; E: live with a rotated, unexpired token.
    let (fam_c, fam_d, fam_e) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    db.store
        .start_refresh_family(&token(user.id, fam_c, "c1"), 0)
        .await
        .expect("start");
    db.store
        .revoke_refresh_family(fam_c, t - time::Duration::days(3))
        .await
        .expect("revoke");
    db.store
        .start_refresh_family(&token(user.id, fam_d, "d1"), 0)
        .await
        .expect("start");
    db.store
        .revoke_refresh_family(fam_d, t)
        .await
        .expect("revoke");
    let e1 = token(user.id, fam_e, "e1");
    db.store.start_refresh_family(&e1, 0).await.expect("start");
    assert!(
        db.store
            .rotate_refresh_token(e1.id, &token(user.id, fam_e, "e2"), t)
            .await
            .expect("rotate")
    );

    let code = |hash: &str, expires_at| VerificationCode {
        id: Uuid::now_v7(),
        user_id: user.id,
        purpose: format!("purpose-{hash}"),
        code_hash: hash.into(),
        created_at: t,
        expires_at,
        attempts: 0,
        consumed_at: None,
    };
    db.store
        .replace_verification_code(&code("old", t - time::Duration::days(2)))
        .await
        .expect("code");
    db.store
        .replace_verification_code(&code("live", t + time::Duration::minutes(10)))
        .await
        .expect("code");

    let report = db
        .store
        .prune_auth_records(t, t - time::Duration::days(1), t - time::Duration::days(1))
        .await
        .expect("prune");
    assert_eq!(
        report.refresh_tokens, 1,
        "a1 expired (b1 and c1 went with their families)"
    );
    assert_eq!(
        report.refresh_families, 2,
        "B (empty) and C (revoked long ago)"
    );
    assert_eq!(report.verification_codes, 1);

    let exists = |h: &'static str| {
        let store = db.store.clone();
        async move { store.refresh_token_by_hash(h).await.expect("q").is_some() }
    };
    assert!(!exists("a1").await && exists("a2").await);
    assert!(!exists("b1").await && !exists("c1").await);
    assert!(exists("d1").await, "recently revoked families stay a while");
    assert!(
        exists("e1").await,
        "rotated tokens stay until they expire: reuse detection needs them"
    );
    assert!(
        db.store
            .active_verification_code(user.id, "purpose-live")
            .await
            .expect("q")
            .is_some()
    );
    assert!(
        db.store
            .active_verification_code(user.id, "purpose-old")
            .await
            .expect("q")
            .is_none()
    );
    // Nothing left to do the second time.
    let again = db
        .store
        .prune_auth_records(t, t - time::Duration::days(1), t - time::Duration::days(1))
        .await
        .expect("prune");
    assert_eq!(again, Default::default());
}

async fn a_family_behind_the_users_token_version_cannot_rotate(db: Db) {
    let (u, s) = new_user("ver@example.com", None);
    let user = db.store.create_user(&u, &s).await.expect("create");
    let t = now();
    let (here, there, late) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let here1 = token(user.id, here, "here1");
    let there1 = token(user.id, there, "there1");
    db.store
        .start_refresh_family(&here1, 0)
        .await
        .expect("start");
    db.store
        .start_refresh_family(&there1, 0)
        .await
        .expect("start");
    // A password change keeps `here` (carried to the new version) and ends `there`.
    db.store
        .update_password(user.id, "$argon2id$changed", Some(here), t)
        .await
        .expect("change");
    assert!(
        db.store
            .rotate_refresh_token(here1.id, &token(user.id, here, "here2"), t)
            .await
            .expect("rotate")
    );
    assert!(
        !db.store
            .rotate_refresh_token(there1.id, &token(user.id, there, "there2"), t)
            .await
            .expect("rotate")
    );
    // A login checked before the change but stored after it carries the old version: dead.
    let late1 = token(user.id, late, "late1");
    db.store
        .start_refresh_family(&late1, 0)
        .await
        .expect("start");
    assert!(
        !db.store
            .rotate_refresh_token(late1.id, &token(user.id, late, "late2"), t)
            .await
            .expect("rotate")
    );
    // Ending all sessions, or deactivating, stops even the kept family.
    let here2 = db
        .store
        .refresh_token_by_hash("here2")
        .await
        .expect("q")
        .expect("e");
    db.store.end_all_sessions(user.id, t).await.expect("end");
    assert!(
        !db.store
            .rotate_refresh_token(here2.id, &token(user.id, here, "here3"), t)
            .await
            .expect("rotate")
    );
    let fresh = Uuid::now_v7();
    let fresh1 = token(user.id, fresh, "fresh1");
    db.store
        .start_refresh_family(&fresh1, 2)
        .await
        .expect("start");
    assert!(
        db.store
            .set_active(user.id, false, t)
            .await
            .expect("deactivate")
    );
    assert!(
        !db.store
            .rotate_refresh_token(fresh1.id, &token(user.id, fresh, "fresh2"), t)
            .await
            .expect("rotate")
    );
}

async fn plain_accounts_do_not_take_the_first_admin_slot(db: Db) {
    let (anon, s) = new_user("anonymous@ironhand.local", Some(Role::User));
    assert_eq!(
        db.store.create_user(&anon, &s).await.expect("create").role,
        Role::User
    );
    let (first, s) = new_user("first-real@example.com", None);
    assert_eq!(
        db.store.create_user(&first, &s).await.expect("create").role,
        Role::Admin
    );
}
