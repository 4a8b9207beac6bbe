//! The shared Redis connection (auto-reconnecting) and key naming.

use redis::aio::ConnectionManager;

/// Why Redis could not be set up (the connection, or the event bus's subscription).
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("REDIS_URL is not usable: {0}")]
    Url(#[source] redis::RedisError),
    #[error("could not connect to Redis: {0}")]
    Connect(#[source] redis::RedisError),
    #[error("could not open the Redis pub/sub connection: {0}")]
    PubSub(#[source] redis::RedisError),
    #[error("could not subscribe to Redis: {0}")]
    Subscribe(#[source] redis::RedisError),
}

#[derive(Clone)]
pub struct RedisHandle {
    pub conn: ConnectionManager,
    pub prefix: String,
}

impl RedisHandle {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisSetupError> {
        let client = redis::Client::open(url).map_err(RedisSetupError::Url)?;
        let conn = client
            .get_connection_manager()
            .await
            .map_err(RedisSetupError::Connect)?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
        })
    }

    pub fn key(&self, parts: &str) -> String {
        format!("{}{}", self.prefix, parts)
    }

    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
    }
}
