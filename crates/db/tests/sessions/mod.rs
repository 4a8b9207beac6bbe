//! Stories of the session ports: sessions, their event log, the run queue, the agent's
//! memory and job locks. Run on both backends by `on_both_backends!` in `conformance.rs`.

mod runs;
pub use runs::*;
mod workspaces;
pub use workspaces::*;

use super::{Db, new_user};
use ironhand_core::ids::{RunId, SessionId, UserId};
use ironhand_core::ports::sessions::{Claimant, ListCursor, NewEvent};
use ironhand_core::session::{Run, RunKind, RunStatus, Session, SessionStatus, StartRun};
use ironhand_core::user::Role;
use sqlx::types::JsonValue;
use time::{Duration, OffsetDateTime};

/// Now, in whole milliseconds: what the session tables keep.
pub fn now_ms() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .expect("valid")
}

/// A claim with no affinity in the way: runs of sessions held elsewhere are anyone's.
pub fn anyone(now: OffsetDateTime) -> Claimant<'static> {
    Claimant::new("elsewhere", now, std::time::Duration::ZERO)
}

fn json(text: &str) -> JsonValue {
    text.parse().expect("json")
}

async fn user(db: &Db, email: &str) -> UserId {
    let (u, s) = new_user(email, Some(Role::User));
    db.store.create_user(&u, &s).await.expect("user").id
}

async fn session(db: &Db, user_id: UserId, at: OffsetDateTime) -> Session {
    let s = Session {
        id: SessionId::new(),
        user_id,
        title: None,
        status: SessionStatus::Pending,
        latest_message: None,
        latest_message_at: None,
        unread_message_count: 0,
        is_shared: false,
        last_seq: 0,
        created_at: at,
        updated_at: at,
    };
    db.store.create_session(&s).await.expect("create session");
    s
}

fn run(s: &Session, client_message_id: Option<&str>, at: OffsetDateTime) -> Run {
    Run {
        id: RunId::new(),
        session_id: s.id,
        user_id: s.user_id,
        kind: RunKind::Task,
        status: RunStatus::Queued,
        message: "do the thing".into(),
        attachments: json(r#"[{"file_id":"f1","filename":"a.txt"}]"#),
        client_message_id: client_message_id.map(str::to_owned),
        attempts: 0,
        cancel_requested: false,
        lease_owner: None,
        lease_expires_at: None,
        created_at: at,
        started_at: None,
        finished_at: None,
    }
}

pub async fn user_for(db: &Db, email: &str) -> UserId {
    user(db, email).await
}

pub async fn session_for(db: &Db, user_id: UserId, at: OffsetDateTime) -> Session {
    session(db, user_id, at).await
}

pub fn run_for(s: &Session, client_message_id: Option<&str>, at: OffsetDateTime) -> Run {
    run(s, client_message_id, at)
}

async fn started(db: &Db, r: &Run) -> Run {
    match db.store.start_run(r, None).await.expect("start") {
        StartRun::Started(run) => run,
        other => panic!("expected Started, got {other:?}"),
    }
}

async fn get(db: &Db, id: SessionId) -> Session {
    db.store
        .session_by_id(id)
        .await
        .expect("q")
        .expect("exists")
}

pub async fn sessions_are_listed_paged_and_updated(db: Db) {
    let alice = user(&db, "alice@example.com").await;
    let bob = user(&db, "bob@example.com").await;
    let t = now_ms();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(session(&db, alice, t + Duration::seconds(i)).await.id);
    }
    // Two sessions with the same activity time: ordered by id, deterministically.
    let tie_a = session(&db, alice, t + Duration::seconds(10)).await.id;
    let tie_b = session(&db, alice, t + Duration::seconds(10)).await.id;
    session(&db, bob, t + Duration::seconds(20)).await;

    let got = get(&db, ids[0]).await;
    assert_eq!(got.user_id, alice);
    assert_eq!(got.status, SessionStatus::Pending);
    assert_eq!((got.created_at, got.updated_at), (t, t));
    assert_eq!((got.last_seq, got.unread_message_count), (0, 0));
    assert!(got.title.is_none() && !got.is_shared);
    assert!(
        db.store
            .session_by_id(SessionId::new())
            .await
            .expect("q")
            .is_none()
    );

    let first = db.store.list_sessions(alice, 3, None).await.expect("list");
    let ids_of = |v: &[Session]| v.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids_of(&first),
        vec![tie_a.max(tie_b), tie_a.min(tie_b), ids[4]]
    );
    // With the id in the cursor, a page boundary between two sessions of the same
    // millisecond skips neither.
    let top = db.store.list_sessions(alice, 1, None).await.expect("top");
    let after_tie = db
        .store
        .list_sessions(
            alice,
            1,
            Some(ListCursor {
                updated_at: top[0].updated_at,
                session_id: Some(top[0].id),
            }),
        )
        .await
        .expect("after tie");
    assert_eq!(ids_of(&after_tie), vec![tie_a.min(tie_b)]);
    let next = db
        .store
        .list_sessions(
            alice,
            3,
            Some(ListCursor {
                updated_at: first[2].updated_at,
                session_id: None,
            }),
        )
        .await
        .expect("page 2");
    assert_eq!(ids_of(&next), vec![ids[3], ids[2], ids[1]]);
    let last = db
        .store
        .list_sessions(
            alice,
            3,
            Some(ListCursor {
                updated_at: next[2].updated_at,
                session_id: None,
            }),
        )
        .await
        .expect("page 3");
    assert_eq!(ids_of(&last), vec![ids[0]]);
    assert_eq!(
        db.store
            .list_sessions(bob, 10, None)
            .await
            .expect("b")
            .len(),
        1
    );

    // Title and status are activity; sharing and reading are not.
    let later = t + Duration::seconds(30);
    db.store
        .set_session_title(ids[0], "Trip plan", later)
        .await
        .expect("title");
    db.store
        .set_session_status(ids[0], SessionStatus::Waiting, later)
        .await
        .expect("status");
    assert!(
        db.store
            .set_session_shared(ids[0], true)
            .await
            .expect("share")
    );
    assert!(
        !db.store
            .set_session_shared(SessionId::new(), true)
            .await
            .expect("share missing")
    );
    let s = get(&db, ids[0]).await;
    assert_eq!(s.title.as_deref(), Some("Trip plan"));
    assert_eq!(s.status, SessionStatus::Waiting);
    assert!(s.is_shared);
    assert_eq!(s.updated_at, later);
    assert_eq!(
        db.store.list_sessions(alice, 1, None).await.expect("l")[0].id,
        ids[0]
    );
}

pub async fn events_are_numbered_and_update_the_session(db: Db) {
    let u = user(&db, "events@example.com").await;
    let t = now_ms();
    let s = session(&db, u, t).await;
    let kinds = [
        ("message", Some("hello"), false),
        ("step", None, false),
        ("message", Some("hi, working on it"), true),
    ];
    for (i, (event, latest, unread)) in kinds.into_iter().enumerate() {
        let data = json(&format!(r#"{{"n":{i},"text":"nul \u0000 ok"}}"#));
        let at = t + Duration::seconds(i as i64 + 1);
        let stored = db
            .store
            .append_event(&NewEvent {
                session_id: s.id,
                event,
                data: &data,
                now: at,
                latest_message: latest,
                count_unread: unread,
            })
            .await
            .expect("append");
        assert_eq!(stored.seq, i as i64 + 1);
        assert_eq!((stored.event.as_str(), &stored.data), (event, &data));
        assert_eq!(stored.created_at, at);
    }
    let after = get(&db, s.id).await;
    assert_eq!(after.last_seq, 3);
    assert_eq!(after.latest_message.as_deref(), Some("hi, working on it"));
    assert_eq!(after.latest_message_at, Some(t + Duration::seconds(3)));
    assert_eq!(after.unread_message_count, 1);
    assert_eq!(after.updated_at, t + Duration::seconds(3));
    db.store.clear_unread(s.id).await.expect("clear");
    assert_eq!(get(&db, s.id).await.unread_message_count, 0);

    let all = db.store.events_after(s.id, 0, 100).await.expect("all");
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1].event, "step");
    assert_eq!(all[2].data["n"], 2);
    let page = db.store.events_after(s.id, 1, 1).await.expect("page");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    assert!(
        db.store
            .events_after(s.id, 3, 10)
            .await
            .expect("e")
            .is_empty()
    );

    let missing = db
        .store
        .append_event(&NewEvent {
            session_id: SessionId::new(),
            event: "step",
            data: &json("{}"),
            now: t,
            latest_message: None,
            count_unread: false,
        })
        .await;
    assert!(missing.is_err());
}

pub async fn the_latest_event_of_one_kind_is_found_per_session(db: Db) {
    let u = user(&db, "latest@example.com").await;
    let t = now_ms();
    let s = session(&db, u, t).await;
    let other = session(&db, u, t).await;
    let append = |id: SessionId, event: &'static str, data: &'static str| {
        let store = db.store.clone();
        async move {
            store
                .append_event(&NewEvent {
                    session_id: id,
                    event,
                    data: &json(data),
                    now: now_ms(),
                    latest_message: None,
                    count_unread: false,
                })
                .await
                .expect("append")
        }
    };
    assert!(
        db.store
            .latest_event(s.id, "takeover")
            .await
            .expect("none yet")
            .is_none()
    );
    append(s.id, "takeover", r#"{"status":"user"}"#).await;
    append(s.id, "step", "{}").await;
    let handed_back = append(s.id, "takeover", r#"{"status":"agent"}"#).await;
    append(s.id, "tool", "{}").await;
    // Another session's newer event of the same kind is not this session's.
    append(other.id, "takeover", r#"{"status":"user"}"#).await;
    let latest = db
        .store
        .latest_event(s.id, "takeover")
        .await
        .expect("latest")
        .expect("found");
    assert_eq!(latest, handed_back);
    assert_eq!(latest.data["status"], "agent");
    assert!(
        db.store
            .latest_event(s.id, "plan")
            .await
            .expect("other kind")
            .is_none()
    );
    assert!(
        db.store
            .latest_event(SessionId::new(), "takeover")
            .await
            .expect("unknown session")
            .is_none()
    );
}

pub async fn concurrent_appends_get_gap_free_numbers(db: Db) {
    let u = user(&db, "race@example.com").await;
    let s = session(&db, u, now_ms()).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let data = json(&format!(r#"{{"i":{i}}}"#));
            store
                .append_event(&NewEvent {
                    session_id: s.id,
                    event: "step",
                    data: &data,
                    now: now_ms(),
                    latest_message: None,
                    count_unread: true,
                })
                .await
                .expect("append")
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.expect("join"));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<i64>>());
    let stored = db.store.events_after(s.id, 0, 100).await.expect("events");
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<i64>>()
    );
    let after = get(&db, s.id).await;
    assert_eq!((after.last_seq, after.unread_message_count), (50, 50));
}

pub async fn memory_is_saved_replaced_and_deleted_with_the_session(db: Db) {
    let u = user(&db, "mem@example.com").await;
    let t = now_ms();
    let s = session(&db, u, t).await;
    assert!(db.store.load_memory(s.id).await.expect("load").is_none());
    let v1 = json(r#"{"plan":["a","b"],"step":0}"#);
    db.store.save_memory(s.id, &v1, t).await.expect("save");
    assert_eq!(db.store.load_memory(s.id).await.expect("load"), Some(v1));
    let v2 = json(r#"{"plan":["a","b"],"step":1,"messages":[{"role":"user"}]}"#);
    db.store.save_memory(s.id, &v2, t).await.expect("replace");
    assert_eq!(db.store.load_memory(s.id).await.expect("load"), Some(v2));

    db.store
        .append_event(&NewEvent {
            session_id: s.id,
            event: "step",
            data: &json("{}"),
            now: t,
            latest_message: None,
            count_unread: false,
        })
        .await
        .expect("append");
    let r = started(&db, &run(&s, Some("m"), t)).await;
    let other = session(&db, u, t).await;

    assert!(db.store.delete_session(s.id).await.expect("delete"));
    assert!(!db.store.delete_session(s.id).await.expect("again"));
    assert!(db.store.session_by_id(s.id).await.expect("q").is_none());
    assert!(
        db.store
            .events_after(s.id, 0, 10)
            .await
            .expect("e")
            .is_empty()
    );
    assert!(db.store.run_by_id(r.id).await.expect("r").is_none());
    assert!(db.store.load_memory(s.id).await.expect("m").is_none());
    assert!(
        db.store
            .claim_run("w", anyone(t), t, t + Duration::seconds(1))
            .await
            .expect("claim")
            .is_none()
    );
    assert!(db.store.session_by_id(other.id).await.expect("q").is_some());
}

pub async fn idle_sessions_are_found_oldest_first(db: Db) {
    let u = user(&db, "idle@example.com").await;
    let t = now_ms();
    let old = session(&db, u, t - Duration::days(40)).await;
    let older = session(&db, u, t - Duration::days(50)).await;
    let fresh = session(&db, u, t - Duration::days(40)).await;
    // Activity makes a session fresh again.
    db.store
        .append_event(&NewEvent {
            session_id: fresh.id,
            event: "message",
            data: &json("{}"),
            now: t,
            latest_message: Some("still here"),
            count_unread: false,
        })
        .await
        .expect("append");
    let cutoff = t - Duration::days(30);
    assert_eq!(
        db.store.idle_sessions(cutoff, 10).await.expect("idle"),
        vec![(older.id, u), (old.id, u)]
    );
    assert_eq!(
        db.store.idle_sessions(cutoff, 1).await.expect("idle"),
        vec![(older.id, u)]
    );
    assert!(
        db.store
            .idle_sessions(t - Duration::days(60), 10)
            .await
            .expect("idle")
            .is_empty()
    );
}

pub async fn job_locks_exclude_until_expiry(db: Db) {
    let t = now_ms();
    let until = t + Duration::seconds(60);
    assert!(db.store.try_lock("prune", "A", t, until).await.expect("a"));
    assert!(!db.store.try_lock("prune", "B", t, until).await.expect("b"));
    // Re-entrant, and extends the holder's lease.
    let longer = t + Duration::seconds(120);
    assert!(
        db.store
            .try_lock("prune", "A", t, longer)
            .await
            .expect("a2")
    );
    let after_first = t + Duration::seconds(90);
    assert!(
        !db.store
            .try_lock(
                "prune",
                "B",
                after_first,
                after_first + Duration::seconds(60)
            )
            .await
            .expect("b2")
    );
    // Other names are independent.
    assert!(
        db.store
            .try_lock("retention", "B", t, until)
            .await
            .expect("other")
    );
    // Expired: B takes it over, and A no longer holds it.
    let expired = t + Duration::seconds(121);
    assert!(
        db.store
            .try_lock("prune", "B", expired, expired + Duration::seconds(60))
            .await
            .expect("b3")
    );
    assert!(
        !db.store
            .try_lock("prune", "A", expired, expired)
            .await
            .expect("a3")
    );
    // Only the holder's unlock frees it.
    db.store.unlock("prune", "A").await.expect("unlock a");
    assert!(
        !db.store
            .try_lock("prune", "A", expired, expired)
            .await
            .expect("a4")
    );
    db.store.unlock("prune", "B").await.expect("unlock b");
    assert!(
        db.store
            .try_lock("prune", "A", expired, expired)
            .await
            .expect("a5")
    );
}
