//! The per-workspace limit on calls to Clockify's API (50 requests per second per add-on per
//! workspace). Every caller in the process shares one limiter; with `REDIS_URL` every replica
//! shares one budget per workspace through Redis.
//!
//! Both limiters are GCRA with a burst of one: requests are spaced evenly, so no one-second
//! window holds more than `rate` requests. The spacing is [`HEADROOM_PER_MILLE`] wider than `1/rate`:
//! a request's wake-up and network delay vary by milliseconds, and exact spacing would let
//! Clockify's clock see `rate + 1` requests inside one of its seconds.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};
use redis::aio::ConnectionManager;
use secrecy::{ExposeSecret, SecretString};

/// Reserves the next free slot for a key and answers how long to wait for it, in microseconds.
/// Uses Redis' clock so replicas with skewed clocks still agree.
const GCRA_RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
return tat - now
";

#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    local: DefaultKeyedRateLimiter<String>,
    redis: Option<RedisBackend>,
    calls: AtomicU64,
}

struct RedisBackend {
    conn: ConnectionManager,
    script: redis::Script,
    interval_micros: u64,
    prefix: String,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("shared", &self.inner.redis.is_some())
            .finish()
    }
}

/// Extra spacing between requests, in parts per thousand (2%: 20.4 ms at 50/s).
pub const HEADROOM_PER_MILLE: u64 = 20;

/// The time between two requests of one workspace.
pub fn emission_interval(per_second: u32) -> Duration {
    let nanos = 1_000_000_000u64.div_ceil(u64::from(per_second.max(1)));
    Duration::from_nanos(nanos + nanos * HEADROOM_PER_MILLE / 1000)
}

fn quota(per_second: u32) -> Quota {
    Quota::with_period(emission_interval(per_second))
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::MIN)
}

impl RateLimiter {
    /// A limiter shared by every caller in this process.
    pub fn local(per_second: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: Governor::keyed(quota(per_second)),
                redis: None,
                calls: AtomicU64::new(0),
            }),
        }
    }

    /// A limiter shared by every replica through Redis; `namespace` separates add-ons.
    pub async fn redis(
        url: &SecretString,
        per_second: u32,
        namespace: &str,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url.expose_secret())?;
        let conn = ConnectionManager::new(client).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                local: Governor::keyed(quota(per_second)),
                redis: Some(RedisBackend {
                    conn,
                    script: redis::Script::new(GCRA_RESERVE),
                    interval_micros: emission_interval(per_second).as_micros() as u64,
                    prefix: format!("clockify-addons:ratelimit:{namespace}:"),
                }),
                calls: AtomicU64::new(0),
            }),
        })
    }

    pub fn is_shared(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// Waits until `workspace_id` may make one more call; returns how long it waited.
    pub async fn acquire(&self, workspace_id: &str) -> Duration {
        let started = Instant::now();
        if self.inner.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.inner.local.retain_recent();
        }
        if let Some(redis) = &self.inner.redis {
            let mut conn = redis.conn.clone();
            // Boxed: every call waiting here would otherwise carry the Redis client's future
            // in its own, even with the limiter local.
            let reserved: Result<i64, _> = Box::pin(
                redis
                    .script
                    .key(format!("{}{workspace_id}", redis.prefix))
                    .arg(redis.interval_micros)
                    .invoke_async(&mut conn),
            )
            .await;
            match reserved {
                Ok(wait) => {
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_micros(wait as u64)).await;
                    }
                    return started.elapsed();
                }
                Err(e) => {
                    // Redis down: keep limiting inside this process rather than failing calls.
                    tracing::warn!(error = %e, "shared rate limiter unavailable; limiting locally");
                }
            }
        }
        self.inner
            .local
            .until_key_ready(&workspace_id.to_owned())
            .await;
        started.elapsed()
    }
}
