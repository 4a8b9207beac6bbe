//! The plan-act agent.
