//! Rate limiting: a GCRA over keys, in-process or in Redis (same algorithm, same answers).

use async_trait::async_trait;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// `count` requests per `period`, all of which may come at once (burst = count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub period: Duration,
}

impl Quota {
    pub const fn per_minute(count: u32) -> Self {
        Self {
            count,
            period: Duration::from_secs(60),
        }
    }

    pub const fn per_hour(count: u32) -> Self {
        Self {
            count,
            period: Duration::from_secs(3600),
        }
    }

    /// Time between two admitted requests once the burst is spent.
    pub fn emission_interval(&self) -> Duration {
        self.period / self.count.max(1)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period.as_secs() {
            1 => write!(f, "{}/second", self.count),
            60 => write!(f, "{}/minute", self.count),
            3600 => write!(f, "{}/hour", self.count),
            86400 => write!(f, "{}/day", self.count),
            s => write!(f, "{}/{}s", self.count, s),
        }
    }
}

/// A rate that is not written like `5/minute`; the text quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuota {
    #[error("`{0}` is not a rate; write it like `5/minute` or `3/hour`")]
    NotARate(String),
    #[error("`{0}`: the count must be at least 1")]
    ZeroCount(String),
}

/// Parses `"5/minute"`, `"3/hour"`, `"10/second"`, `"2/day"` or `"4/90s"`.
impl FromStr for Quota {
    type Err = InvalidQuota;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidQuota::NotARate(s.to_owned());
        let (count, per) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(InvalidQuota::ZeroCount(s.to_owned()));
        }
        let secs = match per.trim() {
            "second" | "sec" | "s" => 1,
            "minute" | "min" | "m" => 60,
            "hour" | "h" => 3600,
            "day" | "d" => 86400,
            other => other
                .strip_suffix('s')
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(bad)?,
        };
        Ok(Self {
            count,
            period: Duration::from_secs(secs),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    Limited { retry_after: Duration },
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request against `key` under `quota`.
    async fn check(&self, key: &str, quota: Quota) -> RateDecision;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_and_print() {
        assert_eq!("5/minute".parse::<Quota>(), Ok(Quota::per_minute(5)));
        assert_eq!("3/hour".parse::<Quota>(), Ok(Quota::per_hour(3)));
        assert_eq!(
            "4/90s".parse::<Quota>().map(|q| q.period),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            "0/minute".parse::<Quota>().map_err(|e| e.to_string()),
            Err("`0/minute`: the count must be at least 1".to_string())
        );
        assert_eq!(
            "five per minute"
                .parse::<Quota>()
                .map_err(|e| e.to_string()),
            Err(
                "`five per minute` is not a rate; write it like `5/minute` or `3/hour`".to_string()
            )
        );
        assert_eq!(Quota::per_hour(3).to_string(), "3/hour");
    }
}
