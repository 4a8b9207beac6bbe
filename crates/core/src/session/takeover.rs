//! Who drives the session's browser: the agent, or the user who took it over from the live
//! view. The status is the `status` of the session's latest `takeover` event (`agent` when
//! there is none), so every instance reads the same answer from the event log.

use serde::{Deserialize, Serialize};

/// The event name that records a change of hands.
pub const TAKEOVER_EVENT: &str = "takeover";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TakeoverStatus {
    /// The agent drives the browser; viewers only watch.
    #[default]
    Agent,
    /// The user drives it; the agent pauses before its next tool call.
    User,
}

impl TakeoverStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::User => "user",
        }
    }

    /// The status a session's latest `takeover` event records (`agent` without one).
    pub fn of(latest: Option<&super::StoredEvent>) -> Self {
        latest
            .and_then(|event| event.data.get("status")?.as_str())
            .and_then(Self::parse)
            .unwrap_or_default()
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "agent" => Self::Agent,
            "user" => Self::User,
            _ => return None,
        })
    }
}

/// What the owner asks for at `POST /sessions/{id}/takeover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TakeoverAction {
    Take,
    HandBack,
}

impl TakeoverAction {
    /// The status the action leads to.
    pub fn target(self) -> TakeoverStatus {
        match self {
            Self::Take => TakeoverStatus::User,
            Self::HandBack => TakeoverStatus::Agent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::AgentEvent;

    #[test]
    fn the_event_carries_the_status_as_the_api_names_it() {
        let event = AgentEvent::Takeover {
            status: TakeoverStatus::User,
        };
        assert_eq!(event.name(), TAKEOVER_EVENT);
        assert_eq!(event.data(), serde_json::json!({"status": "user"}));
        assert!(!event.changes_session_list());
        for status in [TakeoverStatus::Agent, TakeoverStatus::User] {
            assert_eq!(TakeoverStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TakeoverStatus::parse("nobody"), None);
        let action: TakeoverAction =
            serde_json::from_value(serde_json::json!("hand_back")).expect("hand_back");
        assert_eq!(action.target(), TakeoverStatus::Agent);
    }
}
