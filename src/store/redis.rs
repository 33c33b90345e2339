//! The Redis side of replication: rules, expiry, seq, the history's head and
//! log, and events under one hash tag, each change one Lua script
//! (`store/lua/`).
//!
//! Layout (prefix `revokd` by default; the braces make every key hash to one
//! Redis Cluster slot, so the scripts run on Cluster too):
//!
//! | key | type | what |
//! |---|---|---|
//! | `{revokd}:rules` | HASH | rule key → `<revoked_before or all>:<expires_at>` |
//! | `{revokd}:expiry` | ZSET | rule key → expires_at |
//! | `{revokd}:seq` | STRING | the seq of the last event |
//! | `{revokd}:head` | STRING | the history's head after it (40 hex digits) |
//! | `{revokd}:log` | LIST | the last [`HISTORY_WINDOW`] events, oldest first |
//! | `{revokd}:used:<jti>` | STRING | a retired refresh token, until it expires |
//! | `{revokd}:clients` | ZSET | registered client key → its expiry in ms (the registry's cap) |
//! | `{revokd}:events` | channel | `revokd.v1.RevocationEvent` protobuf messages |
//!
//! The head and the log let every process tell a dataset that came back
//! older (an RDB restart, a failover to a replica that missed writes) from
//! the one it followed: see [`crate::follow`].

use std::time::Duration;

use redis::{AsyncCommands, FromRedisValue, Script, Value};

use crate::event::{Event, Head};
use crate::follow::{HISTORY_WINDOW, SyncReply};
use crate::rule::{RevokedBefore, Rule, RuleKey};

use super::RefreshUse;
use super::grants::{CodePresenter, CodeUse, GrantRecord};
use super::link::{Connection, Link};
pub use super::link::{Topology, TopologyError};

/// The latest `expires_at` (and `revoked_before`) stored: 2106-02-07, the
/// denylist's limit too. A rule meant to stand until re-approved is kept
/// until then; a bound past it revokes every token there can be, like `all`.
/// Well below 2^53, so Lua's doubles hold every stored number exactly.
pub const LATEST_EXPIRY: u64 = u32::MAX as u64;

/// Connections for change scripts when replicas must confirm them: up to
/// this many `WAIT`s in flight at once.
const ACKED_CONNECTIONS: usize = 8;

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
    /// The change was made on the master, but fewer replicas than
    /// `replica_acks` confirmed it within `replica_ack_timeout`. It may still
    /// reach them; a retry is harmless (rules merge).
    #[error("only {acked} of {wanted} replicas confirmed the write in time")]
    NotReplicated {
        /// Replicas that confirmed.
        acked: u64,
        /// Replicas required.
        wanted: u64,
    },
}

/// `?` from a Redis call: unavailable, caused by `error`. Callers that know
/// what they were doing say so with [`StoreError::caused_by`](super::StoreError::caused_by).
impl From<RedisStoreError> for super::StoreError {
    fn from(error: RedisStoreError) -> Self {
        super::StoreError::caused_by("redis", error)
    }
}

impl From<redis::ParsingError> for RedisStoreError {
    fn from(error: redis::ParsingError) -> Self {
        RedisStoreError::Corrupt(error.to_string())
    }
}

/// The names of revokd's keys and channel under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNames {
    /// `{prefix}:rules`
    pub rules: String,
    /// `{prefix}:expiry`
    pub expiry: String,
    /// `{prefix}:seq`
    pub seq: String,
    /// `{prefix}:head`
    pub head: String,
    /// `{prefix}:log`
    pub log: String,
    /// `{prefix}:used:` (followed by a refresh token's jti)
    pub used: String,
    /// `{prefix}:events`
    pub channel: String,
    /// `{prefix}:code:` (followed by the SHA-256 hex of an authorization code)
    pub code: String,
    /// `{prefix}:grants:` (followed by a user's `sub`): their connected apps
    pub grants: String,
    /// `{prefix}:client:` (followed by a registered client's id)
    pub client: String,
    /// `{prefix}:clients`: the registered clients' keys by expiry
    pub clients: String,
    /// `{prefix}:client-grants:` (followed by a client id): its users
    pub client_grants: String,
}

impl KeyNames {
    /// The keys for `prefix` (`revokd` by default).
    pub fn new(prefix: &str) -> KeyNames {
        let tag = format!("{{{prefix}}}");
        KeyNames {
            rules: format!("{tag}:rules"),
            expiry: format!("{tag}:expiry"),
            seq: format!("{tag}:seq"),
            head: format!("{tag}:head"),
            log: format!("{tag}:log"),
            used: format!("{tag}:used:"),
            channel: format!("{tag}:events"),
            code: format!("{tag}:code:"),
            grants: format!("{tag}:grants:"),
            client: format!("{tag}:client:"),
            clients: format!("{tag}:clients"),
            client_grants: format!("{tag}:client-grants:"),
        }
    }

    /// The keys a change script takes, in its `KEYS` order.
    fn change(&self) -> [&str; 6] {
        [
            &self.rules,
            &self.expiry,
            &self.seq,
            &self.channel,
            &self.head,
            &self.log,
        ]
    }
}

/// Where one event stands in the history: its seq and the head after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The event's seq.
    pub seq: u64,
    /// The history's head after it.
    pub head: Head,
}

impl Position {
    fn new(seq: u64, head: &str) -> Result<Position, RedisStoreError> {
        let head = Head::parse(head)
            .map_err(|error| RedisStoreError::Corrupt(format!("head: {error}")))?;
        Ok(Position { seq, head })
    }
}

/// How a store talks to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Key prefix (`revokd`).
    pub prefix: String,
    /// Bound on one call.
    pub timeout: Duration,
    /// Replicas that must confirm a change (`WAIT`) before it is reported
    /// done; 0 answers once the master took it.
    pub replica_acks: u64,
    /// How long `WAIT` waits for them.
    pub replica_ack_timeout: Duration,
    /// Sentinel: subscribe on one of the master's healthy replicas (picked
    /// at random; the master when none is), so the fan-out to many
    /// subscribers leaves the master. Snapshots and sync checks still read
    /// the master. Ignored by the other topologies.
    pub subscribe_on_replica: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            prefix: "revokd".to_owned(),
            timeout: DEFAULT_TIMEOUT,
            replica_acks: 0,
            replica_ack_timeout: Duration::from_millis(250),
            subscribe_on_replica: false,
        }
    }
}

/// The scripts, loaded once and invoked by SHA (`EVALSHA`, reloaded after
/// `NOSCRIPT`, e.g. when Redis restarted or a replica was promoted).
struct Scripts {
    revoke: Script,
    remove: Script,
    snapshot: Script,
    expire: Script,
    refresh: Script,
    code: Script,
    grant: Script,
    client_grants: Script,
    register: Script,
}

/// A handle on revokd's data in one Redis topology. Cheap to clone: the
/// connection is multiplexed and follows reconnects and failovers.
#[derive(Clone)]
pub struct RedisStore {
    link: Link,
    /// Where change scripts run: with `replica_acks`, several independent
    /// connections, because `WAIT` holds its connection until the replicas
    /// answer and one connection would serialize every revocation behind
    /// it; otherwise just `link`.
    change_links: std::sync::Arc<[Link]>,
    next_change: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    keys: std::sync::Arc<KeyNames>,
    scripts: std::sync::Arc<Scripts>,
    options: std::sync::Arc<StoreOptions>,
    topology: std::sync::Arc<Topology>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.topology.to_string())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on `topology`. Does not wait for Redis: connections are made
    /// lazily, so a process can start (and issue tokens) while Redis is down.
    pub fn new(topology: Topology, options: StoreOptions) -> Result<RedisStore, RedisStoreError> {
        // A change waits for its WAIT too: bound the call by both.
        let call_bound = options.timeout + options.replica_ack_timeout;
        let with_chain = |body: &str| format!("{}\n{body}", include_str!("lua/chain.lua"));
        let link = Link::new(&topology, call_bound, options.subscribe_on_replica)?;
        let change_links: std::sync::Arc<[Link]> = if options.replica_acks > 0 {
            (0..ACKED_CONNECTIONS)
                .map(|_| Link::new(&topology, call_bound, false))
                .collect::<redis::RedisResult<Vec<_>>>()?
                .into()
        } else {
            vec![link.clone()].into()
        };
        Ok(RedisStore {
            link,
            change_links,
            next_change: std::sync::Arc::default(),
            keys: std::sync::Arc::new(KeyNames::new(&options.prefix)),
            scripts: std::sync::Arc::new(Scripts {
                revoke: Script::new(&with_chain(include_str!("lua/revoke.lua"))),
                remove: Script::new(&with_chain(include_str!("lua/remove.lua"))),
                snapshot: Script::new(include_str!("lua/snapshot.lua")),
                expire: Script::new(include_str!("lua/expire.lua")),
                refresh: Script::new(include_str!("lua/refresh.lua")),
                code: Script::new(include_str!("lua/code.lua")),
                grant: Script::new(include_str!("lua/grant.lua")),
                client_grants: Script::new(include_str!("lua/client_grants.lua")),
                register: Script::new(include_str!("lua/register.lua")),
            }),
            options: std::sync::Arc::new(options),
            topology: std::sync::Arc::new(topology),
        })
    }

    /// A store on one Redis server at `url` with default options under `prefix`.
    pub fn single(url: &str, prefix: &str) -> Result<RedisStore, RedisStoreError> {
        RedisStore::new(
            Topology::Single(url.to_owned()),
            StoreOptions {
                prefix: prefix.to_owned(),
                ..StoreOptions::default()
            },
        )
    }

    /// The key names this store uses.
    pub fn key_names(&self) -> &KeyNames {
        &self.keys
    }

    /// Where this store's Redis is.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Stores and publishes a rule (merged with the one held); returns the
    /// event's position and the merged rule. Only an `Ok` means Redis took
    /// it (and, with `replica_acks`, that many replicas did).
    pub async fn revoke(
        &self,
        rule: &Rule,
        published_at_ms: u64,
    ) -> Result<(Position, Rule), RedisStoreError> {
        let bound = match rule.revoked_before {
            RevokedBefore::All => "all".to_owned(),
            RevokedBefore::IssuedAtOrBefore(iat) => iat.min(LATEST_EXPIRY).to_string(),
        };
        let args = [
            rule.key.to_string(),
            bound,
            rule.expires_at.min(LATEST_EXPIRY).to_string(),
            published_at_ms.to_string(),
            HISTORY_WINDOW.to_string(),
        ];
        let reply = self.change(&self.scripts.revoke, &args).await?;
        let (seq, revoked_before, expires_at, head): (u64, String, u64, String) =
            FromRedisValue::from_redis_value(reply)?;
        let merged = Rule {
            key: rule.key.clone(),
            revoked_before: parse_bound(&revoked_before)?,
            expires_at,
        };
        Ok((Position::new(seq, &head)?, merged))
    }

    /// Deletes a rule and publishes the removal (also when this dataset held
    /// no such rule: a subscriber may); returns the event's position and
    /// whether Redis held the rule.
    pub async fn remove(
        &self,
        key: &RuleKey,
        published_at_ms: u64,
    ) -> Result<(Position, bool), RedisStoreError> {
        let args = [
            key.to_string(),
            published_at_ms.to_string(),
            HISTORY_WINDOW.to_string(),
        ];
        let reply = self.change(&self.scripts.remove, &args).await?;
        let (seq, held, head): (u64, u64, String) = FromRedisValue::from_redis_value(reply)?;
        Ok((Position::new(seq, &head)?, held != 0))
    }

    /// Runs a change script, then `WAIT` on the same connection when
    /// replicas must confirm it.
    async fn change(&self, script: &Script, args: &[String]) -> Result<Value, RedisStoreError> {
        let keys = self.keys.change();
        let acks = self.options.replica_acks;
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(keys.len())
            .arg(&keys[..])
            .arg(args);
        if acks > 0 {
            let wait_ms = u64::try_from(self.options.replica_ack_timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            pipe.cmd("WAIT").arg(acks).arg(wait_ms);
        }
        let turn = self
            .next_change
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let link = &self.change_links[turn % self.change_links.len()];
        let mut connection = self.bounded_on(link, link.connection()).await?;
        let first = self
            .bounded_on(link, pipe.query_async::<Vec<Value>>(&mut connection))
            .await;
        let replies = match first {
            Err(RedisStoreError::Redis(error))
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                self.bounded_on(link, script.load_async(&mut connection))
                    .await?;
                self.bounded_on(link, pipe.query_async::<Vec<Value>>(&mut connection))
                    .await?
            }
            other => other?,
        };
        let mut replies = replies.into_iter();
        let reply = replies
            .next()
            .ok_or_else(|| RedisStoreError::Corrupt("empty script reply".into()))?;
        if acks > 0 {
            let acked = replies
                .next()
                .map(u64::from_redis_value)
                .transpose()?
                .unwrap_or(0);
            if acked < acks {
                return Err(RedisStoreError::NotReplicated {
                    acked,
                    wanted: acks,
                });
            }
        }
        Ok(reply)
    }

    /// The rule Redis holds for `key`, if any.
    pub async fn get(&self, key: &RuleKey) -> Result<Option<Rule>, RedisStoreError> {
        let mut connection = self.connection().await?;
        let value: Option<String> = self
            .bounded(connection.hget(&self.keys.rules, key.to_string()))
            .await?;
        value
            .map(|value| parse_rule(key.clone(), &value))
            .transpose()
    }

    /// Claims a refresh token's `jti` for rotation `attempt` (see
    /// [`RefreshUse`]): one atomic script with the token's remaining
    /// lifetime, so concurrent issuers agree.
    pub async fn claim_refresh(
        &self,
        jti: &str,
        attempt: &str,
        ttl: Duration,
    ) -> Result<RefreshUse, RedisStoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let found: String = self.refresh_script(jti, "claim", attempt, ttl_ms).await?;
        match found.as_str() {
            "first" => Ok(RefreshUse::First),
            "retry" => Ok(RefreshUse::Retry),
            "reused" => Ok(RefreshUse::Reused),
            other => Err(RedisStoreError::Corrupt(format!("refresh claim {other:?}"))),
        }
    }

    /// Confirms `attempt`'s claim on `jti`: false when a later attempt took
    /// it over.
    pub async fn confirm_refresh(&self, jti: &str, attempt: &str) -> Result<bool, RedisStoreError> {
        let confirmed: u64 = self.refresh_script(jti, "confirm", attempt, 0).await?;
        Ok(confirmed == 1)
    }

    async fn refresh_script<T: FromRedisValue>(
        &self,
        jti: &str,
        op: &str,
        attempt: &str,
        ttl_ms: u64,
    ) -> Result<T, RedisStoreError> {
        let mut invocation = self.scripts.refresh.prepare_invoke();
        invocation
            .key(format!("{}{jti}", self.keys.used))
            .arg(op)
            .arg(attempt)
            .arg(ttl_ms);
        let mut connection = self.connection().await?;
        self.bounded(invocation.invoke_async(&mut connection)).await
    }

    /// Keeps an authorization code for `ttl` (its key is the code's digest:
    /// Redis never holds a usable code).
    pub async fn put_code(
        &self,
        code: &str,
        grant: &str,
        ttl: Duration,
    ) -> Result<(), RedisStoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut connection = self.connection().await?;
        let key = self.code_key(code);
        self.bounded(
            connection.set_options::<_, _, ()>(
                key,
                format!("fresh:{grant}"),
                redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::PX(ttl_ms)),
            ),
        )
        .await
    }

    /// Spends a code (see [`CodeUse`]): one atomic script.
    pub async fn take_code(
        &self,
        code: &str,
        presenter: CodePresenter<'_>,
        ttl: Duration,
    ) -> Result<CodeUse, RedisStoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.scripts.code.prepare_invoke();
        invocation
            .key(self.code_key(code))
            .arg(ttl_ms)
            .arg(presenter.client_id)
            .arg(presenter.redirect_uri)
            .arg(presenter.challenge);
        let mut connection = self.connection().await?;
        let (found, grant): (String, String) = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        match found.as_str() {
            "fresh" => Ok(CodeUse::Fresh(grant)),
            "reused" => Ok(CodeUse::Reused(grant)),
            "unknown" => Ok(CodeUse::Unknown),
            "mismatch" => Ok(CodeUse::Mismatch(grant)),
            other => Err(RedisStoreError::Corrupt(format!("code use {other:?}"))),
        }
    }

    fn code_key(&self, code: &str) -> String {
        let digest = crate::crypto::sha256(code.as_bytes());
        format!("{}{}", self.keys.code, crate::crypto::hex(&digest))
    }

    /// Records (or, with `only_if_known`, updates) a connected app.
    pub async fn record_grant(
        &self,
        sub: &str,
        client_id: &str,
        record: &GrantRecord,
        only_if_known: bool,
    ) -> Result<(), RedisStoreError> {
        let json = serde_json::to_string(record)
            .map_err(|e| RedisStoreError::Corrupt(format!("grant record: {e}")))?;
        let mut invocation = self.scripts.grant.prepare_invoke();
        invocation
            .key(format!("{}{sub}", self.keys.grants))
            .key(format!("{}{client_id}", self.keys.client_grants))
            .arg(client_id)
            .arg(json)
            .arg(record.expires_at.saturating_mul(1000))
            .arg(if only_if_known { "touch" } else { "record" })
            .arg(sub);
        let mut connection = self.connection().await?;
        let _: u64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(())
    }

    /// `sub`'s connected apps not expired at `now`, by client id.
    pub async fn grants(
        &self,
        sub: &str,
        now: u64,
    ) -> Result<Vec<(String, GrantRecord)>, RedisStoreError> {
        let mut connection = self.connection().await?;
        let all: Vec<(String, String)> = self
            .bounded(connection.hgetall(format!("{}{sub}", self.keys.grants)))
            .await?;
        let mut list = Vec::with_capacity(all.len());
        for (client, json) in all {
            let record: GrantRecord = serde_json::from_str(&json)
                .map_err(|e| RedisStoreError::Corrupt(format!("grant record: {e}")))?;
            if record.expires_at > now {
                list.push((client, record));
            }
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(list)
    }

    /// A client's users not expired at `now`, by `sub`.
    pub async fn grants_of_client(
        &self,
        client_id: &str,
        now: u64,
    ) -> Result<Vec<(String, GrantRecord)>, RedisStoreError> {
        let mut invocation = self.scripts.client_grants.prepare_invoke();
        invocation
            .key(format!("{}{client_id}", self.keys.client_grants))
            .arg(&self.keys.grants)
            .arg(client_id);
        let mut connection = self.connection().await?;
        let flat: Vec<String> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        let mut list = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let record: GrantRecord = serde_json::from_str(&pair[1])
                .map_err(|e| RedisStoreError::Corrupt(format!("grant record: {e}")))?;
            if record.expires_at > now {
                list.push((pair[0].clone(), record));
            }
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(list)
    }

    /// Forgets a connected app; `true` when it was recorded.
    pub async fn forget_grant(&self, sub: &str, client_id: &str) -> Result<bool, RedisStoreError> {
        let mut connection = self.connection().await?;
        let removed: u64 = self
            .bounded(connection.hdel(format!("{}{sub}", self.keys.grants), client_id))
            .await?;
        Ok(removed > 0)
    }

    /// Keeps a registered client for `ttl`, unless `max` registered
    /// clients live already (`false`, nothing written).
    pub async fn put_registered_client(
        &self,
        id: &str,
        client: &str,
        ttl: Duration,
        max: u64,
    ) -> Result<bool, RedisStoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.scripts.register.prepare_invoke();
        invocation
            .key(format!("{}{id}", self.keys.client))
            .key(&self.keys.clients)
            .arg(client)
            .arg(ttl_ms)
            .arg(crate::clock::now_millis())
            .arg(max);
        let mut connection = self.connection().await?;
        let kept: u64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(kept == 1)
    }

    /// A registered client's configuration, if it is still registered.
    pub async fn registered_client(&self, id: &str) -> Result<Option<String>, RedisStoreError> {
        let mut connection = self.connection().await?;
        self.bounded(connection.get(format!("{}{id}", self.keys.client)))
            .await
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
        let mut connection = self.connection().await?;
        self.bounded(invocation.invoke_async(&mut connection)).await
    }

    /// Every rule with the seq and head they are consistent with, and the
    /// log a follower at `position` needs (none before its first sync), read
    /// atomically. A rule Redis holds in a bad format is skipped and logged:
    /// one bad entry never hides the others.
    pub async fn snapshot(
        &self,
        position: Option<(u64, Head)>,
    ) -> Result<SyncReply, RedisStoreError> {
        let mut invocation = self.scripts.snapshot.prepare_invoke();
        invocation
            .key(&self.keys.rules)
            .key(&self.keys.seq)
            .key(&self.keys.head)
            .key(&self.keys.log);
        match position {
            Some((seq, head)) => invocation.arg(seq).arg(head.to_hex()),
            None => invocation.arg("none").arg(""),
        };
        let mut connection = self.connection().await?;
        let reply: Vec<Value> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        parse_snapshot(reply)
    }

    /// The seq of the last event Redis took and the head after it, read
    /// together.
    pub async fn position(&self) -> Result<(u64, Head), RedisStoreError> {
        let mut connection = self.connection().await?;
        let (seq, head): (Option<u64>, Option<String>) = self
            .bounded(
                redis::cmd("MGET")
                    .arg(&self.keys.seq)
                    .arg(&self.keys.head)
                    .query_async(&mut connection),
            )
            .await?;
        let head = Head::parse(head.as_deref().unwrap_or_default())
            .map_err(|error| RedisStoreError::Corrupt(format!("head: {error}")))?;
        Ok((seq.unwrap_or(0), head))
    }

    /// The seq of the last event Redis published (0 when none).
    pub async fn seq(&self) -> Result<u64, RedisStoreError> {
        Ok(self.position().await?.0)
    }

    /// A client for a node whose subscription receives every event.
    pub async fn pubsub_client(&self) -> Result<redis::Client, RedisStoreError> {
        match self.bounded(self.link.pubsub_client()).await {
            Ok(client) => Ok(client),
            Err(error) => {
                self.link.failed(None).await;
                Err(error)
            }
        }
    }

    async fn connection(&self) -> Result<Connection, RedisStoreError> {
        self.bounded(self.link.connection()).await
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisStoreError> {
        self.bounded_on(&self.link, call).await
    }

    /// Bounds a call on `link`, telling the link when it failed.
    async fn bounded_on<T>(
        &self,
        link: &Link,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisStoreError> {
        let bound = self.options.timeout + self.options.replica_ack_timeout;
        match tokio::time::timeout(bound, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                link.failed(Some(&error)).await;
                Err(error.into())
            }
            Err(_) => {
                link.failed(None).await;
                Err(RedisStoreError::Timeout(bound))
            }
        }
    }
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

fn parse_snapshot(reply: Vec<Value>) -> Result<SyncReply, RedisStoreError> {
    let mut values = reply.into_iter();
    let (Some(seq), Some(head), Some(log)) = (values.next(), values.next(), values.next()) else {
        return Err(RedisStoreError::Corrupt("short snapshot reply".into()));
    };
    let seq = u64::from_redis_value(seq)?;
    let head = Head::parse(&String::from_redis_value(head)?)
        .map_err(|error| RedisStoreError::Corrupt(format!("head: {error}")))?;
    let log: Vec<Vec<u8>> = FromRedisValue::from_redis_value(log)?;
    // One undecodable entry and the log proves nothing: the follower merges.
    let log = log
        .iter()
        .map(|bytes| Event::decode(bytes))
        .collect::<Result<Vec<_>, _>>()
        .inspect_err(|error| tracing::warn!(%error, "undecodable event in the redis log"))
        .ok();
    let mut rules = Vec::with_capacity(values.len() / 2);
    while let (Some(key), Some(value)) = (values.next(), values.next()) {
        match parse_entry(key, value) {
            Ok(rule) => rules.push(rule),
            Err(error) => tracing::warn!(%error, "skipped a malformed rule in redis"),
        }
    }
    Ok(SyncReply {
        seq,
        head,
        log,
        rules,
    })
}

fn parse_entry(key: Value, value: Value) -> Result<Rule, RedisStoreError> {
    let key = String::from_redis_value(key)?;
    let value = String::from_redis_value(value)?;
    let key: RuleKey = key
        .parse()
        .map_err(|e| RedisStoreError::Corrupt(format!("rule key {key:?}: {e}")))?;
    parse_rule(key, &value)
}

/// Sweeps expired rules out of Redis every `interval`, until dropped. Many
/// issuers may run it at once: the script is idempotent.
pub async fn expire_forever(store: RedisStore, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        // Batches of 1000 keep each script call short; loop while full.
        loop {
            match store.expire(crate::clock::now_secs(), 1000).await {
                Ok(1000) => continue,
                Ok(_) => break,
                Err(error) => {
                    let error = crate::error::Chain(&error);
                    tracing::debug!(%error, "expiring rules in redis failed; will retry");
                    break;
                }
            }
        }
    }
}
