//! The Redis side of replication: rules, expiry, seq and events under one
//! hash tag, each change one Lua script (`store/lua/`).
//!
//! Layout (prefix `revokd` by default; the braces make every key hash to one
//! Redis Cluster slot, so the scripts run on Cluster too):
//!
//! | key | type | what |
//! |---|---|---|
//! | `{revokd}:rules` | HASH | rule key → `<revoked_before or all>:<expires_at>` |
//! | `{revokd}:expiry` | ZSET | rule key → expires_at |
//! | `{revokd}:seq` | STRING | the seq of the last event |
//! | `{revokd}:epoch` | STRING | random id of this Redis dataset's lifetime |
//! | `{revokd}:used:<jti>` | STRING | a retired refresh token, until it expires |
//! | `{revokd}:events` | channel | `revokd.v1.RevocationEvent` protobuf messages |
//!
//! The epoch key lets every process notice a Redis that came back empty (a
//! restart without persistence, a failover to a replica that lost writes):
//! its epoch is gone or different.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{RefreshUse, RevocationStore, StoreError, StoreFuture};
use crate::clock;
use crate::denylist::Denylist;
use crate::event::Snapshot;
use crate::rule::{RevokedBefore, Rule, RuleKey};
use crate::subscriber::Subscriber;

/// The latest `expires_at` stored (2106-02-07, the denylist's limit too): a
/// rule meant to stand until re-approved is kept until then. Lua's numbers
/// are doubles, so larger values would not survive the script anyway.
pub const LATEST_EXPIRY: u64 = u32::MAX as u64;

/// Default bound on one Redis call: a revocation that cannot be stored by
/// then fails (503) rather than hangs.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a Redis operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the configured bound.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis holds data revokd cannot read (a stored rule in a bad format).
    #[error("malformed data in redis: {0}")]
    Corrupt(String),
}

impl From<redis::ParsingError> for RedisStoreError {
    fn from(error: redis::ParsingError) -> Self {
        RedisStoreError::Corrupt(error.to_string())
    }
}

/// The names of revokd's keys and channel under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `{prefix}:rules`
    pub rules: String,
    /// `{prefix}:expiry`
    pub expiry: String,
    /// `{prefix}:seq`
    pub seq: String,
    /// `{prefix}:epoch`
    pub epoch: String,
    /// `{prefix}:used:` (followed by a refresh token's jti)
    pub used: String,
    /// `{prefix}:events`
    pub channel: String,
}

impl Keys {
    /// The keys for `prefix` (`revokd` by default).
    pub fn new(prefix: &str) -> Keys {
        let tag = format!("{{{prefix}}}");
        Keys {
            rules: format!("{tag}:rules"),
            expiry: format!("{tag}:expiry"),
            seq: format!("{tag}:seq"),
            epoch: format!("{tag}:epoch"),
            used: format!("{tag}:used:"),
            channel: format!("{tag}:events"),
        }
    }
}

/// The scripts, loaded once and invoked by SHA (`EVALSHA`, reloaded by the
/// redis crate after `NOSCRIPT`, e.g. when Redis restarted).
struct Scripts {
    revoke: Script,
    remove: Script,
    snapshot: Script,
    expire: Script,
}

/// A handle on revokd's data in one Redis. Cheap to clone: the connection
/// is multiplexed and reconnects on its own.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    keys: std::sync::Arc<Keys>,
    scripts: std::sync::Arc<Scripts>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A snapshot with the epoch of the dataset it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochSnapshot {
    /// The rules and their seq.
    pub snapshot: Snapshot,
    /// The dataset's epoch, `None` when Redis has none (new or emptied).
    pub epoch: Option<String>,
}

impl RedisStore {
    /// A store on `client`'s Redis under `prefix`. Does not wait for Redis:
    /// the connection is made lazily, so a process can start (and issue
    /// tokens) while Redis is down.
    pub fn new(
        client: redis::Client,
        prefix: &str,
        timeout: Duration,
    ) -> Result<RedisStore, RedisStoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(RedisStore {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            keys: std::sync::Arc::new(Keys::new(prefix)),
            scripts: std::sync::Arc::new(Scripts {
                revoke: Script::new(include_str!("lua/revoke.lua")),
                remove: Script::new(include_str!("lua/remove.lua")),
                snapshot: Script::new(include_str!("lua/snapshot.lua")),
                expire: Script::new(include_str!("lua/expire.lua")),
            }),
            timeout,
        })
    }

    /// The key names this store uses.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Stores and publishes a rule (merged with the one held); returns the
    /// event's seq and the merged rule. Only an `Ok` means Redis took it.
    pub async fn revoke(
        &self,
        rule: &Rule,
        published_at_ms: u64,
    ) -> Result<(u64, Rule), RedisStoreError> {
        let bound = match rule.revoked_before {
            RevokedBefore::All => "all".to_owned(),
            RevokedBefore::IssuedAtOrBefore(iat) => iat.to_string(),
        };
        let mut invocation = self.scripts.revoke.prepare_invoke();
        invocation
            .key(&self.keys.rules)
            .key(&self.keys.expiry)
            .key(&self.keys.seq)
            .key(&self.keys.channel)
            .arg(rule.key.to_string())
            .arg(bound)
            .arg(rule.expires_at.min(LATEST_EXPIRY))
            .arg(published_at_ms);
        let mut connection = self.connection.clone();
        let (seq, revoked_before, expires_at): (u64, String, u64) = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        let merged = Rule {
            key: rule.key.clone(),
            revoked_before: parse_bound(&revoked_before)?,
            expires_at,
        };
        Ok((seq, merged))
    }

    /// Deletes and publishes the removal of a rule; returns the event's seq,
    /// or `None` when Redis held no such rule.
    pub async fn remove(
        &self,
        key: &RuleKey,
        published_at_ms: u64,
    ) -> Result<Option<u64>, RedisStoreError> {
        let mut invocation = self.scripts.remove.prepare_invoke();
        invocation
            .key(&self.keys.rules)
            .key(&self.keys.expiry)
            .key(&self.keys.seq)
            .key(&self.keys.channel)
            .arg(key.to_string())
            .arg(published_at_ms);
        let mut connection = self.connection.clone();
        let seq: u64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok((seq != 0).then_some(seq))
    }

    /// The rule Redis holds for `key`, if any.
    pub async fn get(&self, key: &RuleKey) -> Result<Option<Rule>, RedisStoreError> {
        let mut connection = self.connection.clone();
        let value: Option<String> = self
            .bounded(connection.hget(&self.keys.rules, key.to_string()))
            .await?;
        value
            .map(|value| parse_rule(key.clone(), &value))
            .transpose()
    }

    /// Retires a refresh token: true the first time `jti` is presented, false
    /// on every later presentation (reuse). One atomic `SET NX` with the
    /// token's remaining lifetime, so concurrent issuers agree.
    pub async fn mark_refresh_used(
        &self,
        jti: &str,
        ttl: Duration,
    ) -> Result<bool, RedisStoreError> {
        let mut connection = self.connection.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .bounded(
                redis::cmd("SET")
                    .arg(format!("{}{jti}", self.keys.used))
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut connection),
            )
            .await?;
        Ok(set.is_some())
    }

    /// Drops up to `limit` rules that expired at `now`; returns how many.
    /// Safe to run from any number of processes at once.
    pub async fn expire(&self, now: u64, limit: usize) -> Result<usize, RedisStoreError> {
        let mut invocation = self.scripts.expire.prepare_invoke();
        invocation
            .key(&self.keys.rules)
            .key(&self.keys.expiry)
            .arg(now)
            .arg(limit);
        let mut connection = self.connection.clone();
        self.bounded(invocation.invoke_async(&mut connection)).await
    }

    /// Every rule with the seq it is consistent with and the dataset's epoch,
    /// read atomically.
    pub async fn snapshot(&self) -> Result<EpochSnapshot, RedisStoreError> {
        let mut invocation = self.scripts.snapshot.prepare_invoke();
        invocation
            .key(&self.keys.rules)
            .key(&self.keys.seq)
            .key(&self.keys.epoch);
        let mut connection = self.connection.clone();
        let reply: Vec<redis::Value> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        parse_snapshot(reply)
    }

    /// The seq of the last event Redis published (0 when none).
    pub async fn seq(&self) -> Result<u64, RedisStoreError> {
        let mut connection = self.connection.clone();
        let seq: Option<u64> = self.bounded(connection.get(&self.keys.seq)).await?;
        Ok(seq.unwrap_or(0))
    }

    /// The dataset's epoch, creating one if Redis has none. Returns the epoch
    /// and whether this call created it.
    pub async fn ensure_epoch(&self) -> Result<(String, bool), RedisStoreError> {
        let mut connection = self.connection.clone();
        let fresh = random_epoch();
        let created: Option<String> = self
            .bounded(
                redis::cmd("SET")
                    .arg(&self.keys.epoch)
                    .arg(&fresh)
                    .arg("NX")
                    .query_async(&mut connection),
            )
            .await?;
        if created.is_some() {
            return Ok((fresh, true));
        }
        let epoch: Option<String> = self.bounded(connection.get(&self.keys.epoch)).await?;
        Ok((epoch.unwrap_or(fresh), false))
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisStoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisStoreError::Timeout(self.timeout)),
        }
    }
}

fn random_epoch() -> String {
    let mut bytes = [0u8; 16];
    // Without OS randomness, time still tells two lifetimes apart.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..16].copy_from_slice(&u128::from(crate::clock::now_millis()).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_bound(text: &str) -> Result<RevokedBefore, RedisStoreError> {
    if text == "all" {
        return Ok(RevokedBefore::All);
    }
    text.parse()
        .map(RevokedBefore::IssuedAtOrBefore)
        .map_err(|_| RedisStoreError::Corrupt(format!("revoked_before {text:?}")))
}

fn parse_rule(key: RuleKey, value: &str) -> Result<Rule, RedisStoreError> {
    let corrupt = || RedisStoreError::Corrupt(format!("rule {key}: {value:?}"));
    let (bound, expires_at) = value.split_once(':').ok_or_else(corrupt)?;
    Ok(Rule {
        revoked_before: parse_bound(bound)?,
        expires_at: expires_at.parse().map_err(|_| corrupt())?,
        key,
    })
}

fn parse_snapshot(reply: Vec<redis::Value>) -> Result<EpochSnapshot, RedisStoreError> {
    use redis::FromRedisValue;
    let mut values = reply.into_iter();
    let (Some(seq), Some(epoch)) = (values.next(), values.next()) else {
        return Err(RedisStoreError::Corrupt("short snapshot reply".into()));
    };
    let seq = u64::from_redis_value(seq)?;
    let epoch = Option::<String>::from_redis_value(epoch)?;
    let mut rules = Vec::with_capacity(values.len() / 2);
    while let (Some(key), Some(value)) = (values.next(), values.next()) {
        let key = String::from_redis_value(key)?;
        let value = String::from_redis_value(value)?;
        let key: RuleKey = key
            .parse()
            .map_err(|e| RedisStoreError::Corrupt(format!("rule key {key:?}: {e}")))?;
        rules.push(parse_rule(key, &value)?);
    }
    Ok(EpochSnapshot {
        snapshot: Snapshot { seq, rules },
        epoch,
    })
}

// === the issuer's store ===

/// The issuer's [`RevocationStore`] on Redis: every change goes through a
/// script, and only once Redis took it is it applied to the issuer's own
/// denylist (so introspection at this issuer sees it at once, and the rule
/// can be restored should Redis lose it). The subscriber brings in every
/// other issuer's changes.
///
/// Readiness ([`RevocationStore::ping`]) needs Redis to answer and, when a
/// subscriber is attached, the denylist to have proved in sync within the
/// staleness bound.
#[derive(Clone, Debug)]
pub struct RedisRevocationStore {
    store: RedisStore,
    denylist: Denylist,
    subscriber: Option<(Subscriber, Duration)>,
}

impl RedisRevocationStore {
    /// A store writing through `store` and applying to `denylist`.
    pub fn new(store: RedisStore, denylist: Denylist) -> RedisRevocationStore {
        RedisRevocationStore {
            store,
            denylist,
            subscriber: None,
        }
    }

    /// Makes readiness also require `subscriber` fresh within `bound`.
    pub fn with_subscriber(
        mut self,
        subscriber: Subscriber,
        bound: Duration,
    ) -> RedisRevocationStore {
        self.subscriber = Some((subscriber, bound));
        self
    }
}

impl From<RedisStoreError> for StoreError {
    fn from(error: RedisStoreError) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

impl RevocationStore for RedisRevocationStore {
    fn revoke(&self, rule: Rule) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (_, merged) = self.store.revoke(&rule, clock::now_millis()).await?;
            self.denylist.apply(&merged);
            Ok(())
        })
    }

    fn remove<'a>(&'a self, key: &'a RuleKey) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let removed = self.store.remove(key, clock::now_millis()).await?.is_some();
            self.denylist.remove(key);
            Ok(removed)
        })
    }

    fn get<'a>(&'a self, key: &'a RuleKey) -> StoreFuture<'a, Option<Rule>> {
        Box::pin(async move {
            let rule = self.store.get(key).await?;
            Ok(rule.filter(|rule| rule.is_live(clock::now_secs())))
        })
    }

    fn mark_refresh_used<'a>(&'a self, jti: &'a str, ttl: Duration) -> StoreFuture<'a, RefreshUse> {
        Box::pin(async move {
            Ok(match self.store.mark_refresh_used(jti, ttl).await? {
                true => RefreshUse::First,
                false => RefreshUse::Reused,
            })
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.store.seq().await?;
            if let Some((subscriber, bound)) = &self.subscriber
                && !subscriber.is_fresh(*bound)
            {
                let staleness = subscriber.staleness();
                return Err(StoreError::Unavailable(if staleness == Duration::MAX {
                    "denylist not yet in sync with redis".to_owned()
                } else {
                    format!(
                        "denylist not proved in sync with redis for {staleness:?} (bound {bound:?})"
                    )
                }));
            }
            Ok(())
        })
    }
}

/// Sweeps expired rules out of Redis every `interval`, until dropped. Many
/// issuers may run it at once: the script is idempotent.
pub async fn expire_forever(store: RedisStore, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        // Batches of 1000 keep each script call short; loop while full.
        loop {
            match store.expire(clock::now_secs(), 1000).await {
                Ok(1000) => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::debug!(%error, "expiring rules in redis failed; will retry");
                    break;
                }
            }
        }
    }
}
