//! The HTTP baseline of `make bench`: a bare axum server, no middleware, no state, that
//! answers `GET /` with a small JSON. `ironhand-bench` drives it with the same client and
//! concurrency as the server's scenarios and reports theirs as a share of its throughput.
//!
//! Usage: `bare-hello 127.0.0.1:PORT`. The runtime is tokio's default multi-threaded one,
//! one worker per core, as in `ironhand serve`.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

async fn hello() -> Json<Value> {
    Json(json!({"code": 0, "msg": "success", "data": {"status": "ok"}}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8088".to_string());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    axum::serve(listener, Router::new().route("/", get(hello))).await?;
    Ok(())
}
