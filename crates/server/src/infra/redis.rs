//! The shared Redis connection (auto-reconnecting) and key naming.

use redis::aio::ConnectionManager;

#[derive(Clone)]
pub struct RedisHandle {
    pub conn: ConnectionManager,
    pub prefix: String,
}

impl RedisHandle {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("REDIS_URL is not usable: {e}"))?;
        let conn = client
            .get_connection_manager()
            .await
            .map_err(|e| format!("could not connect to Redis: {e}"))?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
        })
    }

    pub fn key(&self, parts: &str) -> String {
        format!("{}{}", self.prefix, parts)
    }

    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
