//! Sandboxes in containers.
//!
//! * [`daemon`]: `ironhand sandboxd`, which serves one session's sandbox operations over
//!   HTTP inside that session's container, from the local provider's own code.
//! * [`client`]: the server's side of it, a [`Sandbox`](ironhand_core::ports::Sandbox) whose
//!   every operation is a request to the daemon.
//! * [`docker`]: `sandbox.provider = "docker"`, a container per session on a Docker Engine
//!   (local socket, `DOCKER_HOST`, or TLS to a remote engine).
//! * [`wire`]: what the two sides say.

pub mod client;
pub mod daemon;
pub mod docker;
pub mod wire;

pub use docker::{DockerConfig, DockerSandboxProvider};
