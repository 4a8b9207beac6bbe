//! The caps on live sandboxes (per instance, and per user), shared by every provider:
//! before a sandbox starts, which live ones must make room, and what to tell the user when
//! none can.

use ironhand_core::ids::{SessionId, UserId};
use std::time::Duration;

/// `sandbox.max_live_sandboxes` and `max_live_sandboxes_per_user`.
#[derive(Debug, Clone, Copy)]
pub struct LiveCaps {
    pub per_instance: usize,
    pub per_user: usize,
}

/// A live sandbox other than the one about to start.
#[derive(Debug, Clone)]
pub struct LiveSandbox<T> {
    pub session: SessionId,
    pub owner: Option<UserId>,
    pub idle: Duration,
    pub sandbox: T,
}

/// `None` when `owner`'s new sandbox fits under the caps beside `live`; otherwise the
/// sandboxes one of which must stop first (the user's own when the user is at their cap),
/// longest idle first, and the sentence for the user should none of them be able to.
pub fn must_make_room<T>(
    caps: LiveCaps,
    owner: Option<UserId>,
    live: Vec<LiveSandbox<T>>,
) -> Option<(Vec<LiveSandbox<T>>, String)> {
    let mine = owner.map_or(0, |user| {
        live.iter().filter(|l| l.owner == Some(user)).count()
    });
    let (mut candidates, why) = if owner.is_some() && mine >= caps.per_user {
        (
            live.into_iter()
                .filter(|l| l.owner == owner)
                .collect::<Vec<_>>(),
            format!(
                "you already have {} sandboxes busy at once (the limit per user); \
                 wait for one of your other tasks to finish",
                caps.per_user
            ),
        )
    } else if live.len() >= caps.per_instance {
        (
            live,
            format!(
                "this server already runs {} busy sandboxes (its limit); try again shortly",
                caps.per_instance
            ),
        )
    } else {
        return None;
    };
    candidates.sort_by_key(|l| std::cmp::Reverse(l.idle));
    Some((candidates, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(owner: Option<UserId>, idle_secs: u64) -> LiveSandbox<()> {
        LiveSandbox {
            session: SessionId::new(),
            owner,
            idle: Duration::from_secs(idle_secs),
            sandbox: (),
        }
    }

    #[test]
    fn the_users_own_cap_comes_first_then_the_instances() {
        let caps = LiveCaps {
            per_instance: 3,
            per_user: 2,
        };
        let (alice, bob) = (UserId::new(), UserId::new());
        assert!(must_make_room(caps, Some(alice), vec![live(Some(alice), 1)]).is_none());
        let (candidates, why) = must_make_room(
            caps,
            Some(alice),
            vec![
                live(Some(alice), 1),
                live(Some(bob), 99),
                live(Some(alice), 5),
            ],
        )
        .expect("alice is at her cap");
        assert!(why.contains("limit per user"));
        assert_eq!(candidates.len(), 2, "only her own");
        assert_eq!(
            candidates[0].idle,
            Duration::from_secs(5),
            "longest idle first"
        );
        let (candidates, why) = must_make_room(
            caps,
            Some(bob),
            vec![live(Some(alice), 1), live(None, 7), live(Some(alice), 5)],
        )
        .expect("the instance is full");
        assert!(why.contains("its limit"));
        assert_eq!(candidates.len(), 3);
        assert_eq!(candidates[0].idle, Duration::from_secs(7));
    }
}
