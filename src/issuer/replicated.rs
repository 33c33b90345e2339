//! The issuer on Redis: many issuers share one Redis and see each other's
//! revocations.
//!
//! Writes go through the store's scripts ([`ReplicatedStore`]); a
//! [`Subscriber`] follows every other issuer's changes into this issuer's
//! denylist and, should Redis come back empty, re-writes the rules it holds
//! (its denylist lists its rules); a sweeper drops expired rules from Redis.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;

use super::{AppState, AppStateError};
use crate::clock;
use crate::config::Config;
use crate::denylist::Denylist;
use crate::metrics::DenylistMetrics;
use crate::rule::{Rule, RuleKey};
use crate::signing::SigningKeys;
use crate::store::redis::{Position, RedisStore, RedisStoreError, expire_forever};
use crate::store::{
    CodePresenter, CodeUse, GrantRecord, RefreshUse, RevocationStore, StoreError, StoreFuture,
};
use crate::subscriber::{Subscriber, SubscriberConfig};

/// How often expired rules are swept out of Redis.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Why an issuer on Redis could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// `[store]` names no Redis topology.
    #[error("store: no redis_url, sentinels or cluster configured")]
    NoRedis,
    /// The store could not be built (a URL that is not a Redis URL).
    #[error("store: {0}")]
    Store(#[from] RedisStoreError),
    /// The issuer itself could not be set up.
    #[error(transparent)]
    Setup(#[from] AppStateError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What keeps an issuer in step with Redis. Dropping it stops the
/// subscriber and the sweeper.
#[derive(Debug)]
pub struct Replication {
    /// The subscriber feeding this issuer's denylist.
    pub subscriber: Subscriber,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Drop for Replication {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

/// Builds the issuer's state on the Redis topology of `config.store`;
/// readiness requires the denylist proved in sync within `staleness_bound`.
/// Must run inside a tokio runtime. Does not wait for Redis: tokens are
/// issued while it is down.
pub fn on_redis(
    config: Config,
    keys: SigningKeys,
    staleness_bound: Duration,
) -> Result<(AppState, Replication), ReplicationError> {
    let topology = config.store.topology().ok_or(ReplicationError::NoRedis)?;
    let store = RedisStore::new(topology, config.store.options())?;
    let denylist = Denylist::listing();
    let registry = Registry::new();
    let metrics = DenylistMetrics::register(&registry, &denylist)?;
    let subscriber = Subscriber::spawn(
        store.clone(),
        denylist.clone(),
        SubscriberConfig {
            restore: true,
            ..SubscriberConfig::default()
        },
        Some(metrics),
    );
    let revocations = ReplicatedStore::new(store.clone(), denylist.clone())
        .with_subscriber(subscriber.clone(), staleness_bound);
    let state = AppState::new(config, keys, Arc::new(revocations), denylist, registry)?;
    let sweeper = tokio::spawn(expire_forever(store, SWEEP_INTERVAL));
    Ok((
        state,
        Replication {
            subscriber,
            sweeper,
        },
    ))
}

// === impl ReplicatedStore ===

/// The issuer's [`RevocationStore`] on Redis: every change goes through a
/// script, and is answered only once the issuer's own subscriber applied its
/// event (the seq the script returned), so the change is part of the history
/// this issuer follows: introspection here sees it at once, it is restored
/// should Redis lose it, and an older event (a re-approval before it) can
/// never be applied over it. Without a subscriber (tests) the change is
/// applied to the denylist directly.
///
/// Readiness ([`RevocationStore::ping`]) needs Redis to answer and, when a
/// subscriber is attached, the denylist to have proved in sync within the
/// staleness bound.
#[derive(Clone, Debug)]
pub struct ReplicatedStore {
    store: RedisStore,
    denylist: Denylist,
    subscriber: Option<(Subscriber, Duration)>,
}

impl ReplicatedStore {
    /// A store writing through `store` and applying to `denylist`.
    pub fn new(store: RedisStore, denylist: Denylist) -> ReplicatedStore {
        ReplicatedStore {
            store,
            denylist,
            subscriber: None,
        }
    }

    /// Makes readiness also require `subscriber` fresh within `bound`.
    pub fn with_subscriber(mut self, subscriber: Subscriber, bound: Duration) -> ReplicatedStore {
        self.subscriber = Some((subscriber, bound));
        self
    }
}

/// How long a change may take from Redis to this issuer's own denylist
/// before it is answered 503 (the client's retry is harmless).
const APPLY_BOUND: Duration = Duration::from_secs(2);

impl ReplicatedStore {
    /// Waits for this issuer's subscriber to apply the event at `position`
    /// in the history it follows.
    async fn applied(&self, position: Position) -> Result<(), StoreError> {
        let Some((subscriber, _)) = &self.subscriber else {
            return Ok(());
        };
        if subscriber.wait_applied(position, APPLY_BOUND).await {
            Ok(())
        } else {
            Err(StoreError::unavailable(format!(
                "redis took the change (seq {}) but this issuer's denylist did not, \
                 in the history it follows, within {APPLY_BOUND:?}",
                position.seq
            )))
        }
    }
}

impl RevocationStore for ReplicatedStore {
    fn revoke(&self, rule: Rule) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (position, merged) = self
                .store
                .revoke(&rule, clock::now_millis())
                .await
                .map_err(|e| StoreError::caused_by("revoking", e))?;
            if self.subscriber.is_none() {
                self.denylist.apply(&merged);
            }
            self.applied(position).await
        })
    }

    fn remove<'a>(&'a self, key: &'a RuleKey) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // After a fork only this denylist may still hold the rule.
            let held_here = self.denylist.get(key, clock::now_secs()).is_some();
            let (position, held) = self
                .store
                .remove(key, clock::now_millis())
                .await
                .map_err(|e| StoreError::caused_by("re-approving", e))?;
            if self.subscriber.is_none() {
                self.denylist.remove(key);
            }
            self.applied(position).await?;
            Ok(held || held_here)
        })
    }

    fn get<'a>(&'a self, key: &'a RuleKey) -> StoreFuture<'a, Option<Rule>> {
        Box::pin(async move {
            let rule = self
                .store
                .get(key)
                .await
                .map_err(|e| StoreError::caused_by("reading a rule", e))?;
            Ok(rule.filter(|rule| rule.is_live(clock::now_secs())))
        })
    }

    fn claim_refresh<'a>(
        &'a self,
        jti: &'a str,
        attempt: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, RefreshUse> {
        Box::pin(async move {
            self.store
                .claim_refresh(jti, attempt, ttl)
                .await
                .map_err(|e| StoreError::caused_by("claiming a refresh token", e))
        })
    }

    fn confirm_refresh<'a>(&'a self, jti: &'a str, attempt: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.store
                .confirm_refresh(jti, attempt)
                .await
                .map_err(|e| StoreError::caused_by("confirming a refresh", e))
        })
    }

    fn has_synced(&self) -> bool {
        self.subscriber
            .as_ref()
            .is_none_or(|(subscriber, _)| subscriber.has_synced())
    }

    fn put_code<'a>(&'a self, code: &'a str, grant: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .put_code(code, grant, ttl)
                .await
                .map_err(|e| StoreError::caused_by("keeping an authorization code", e))
        })
    }

    fn take_code<'a>(
        &'a self,
        code: &'a str,
        presenter: CodePresenter<'a>,
        ttl: Duration,
    ) -> StoreFuture<'a, CodeUse> {
        Box::pin(async move {
            self.store
                .take_code(code, presenter, ttl)
                .await
                .map_err(|e| StoreError::caused_by("spending an authorization code", e))
        })
    }

    fn record_grant<'a>(
        &'a self,
        sub: &'a str,
        client_id: &'a str,
        record: &'a GrantRecord,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .record_grant(sub, client_id, record, false)
                .await
                .map_err(|e| StoreError::caused_by("recording a connected app", e))
        })
    }

    fn touch_grant<'a>(
        &'a self,
        sub: &'a str,
        client_id: &'a str,
        record: &'a GrantRecord,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .record_grant(sub, client_id, record, true)
                .await
                .map_err(|e| StoreError::caused_by("updating a connected app", e))
        })
    }

    fn grants<'a>(&'a self, sub: &'a str, now: u64) -> StoreFuture<'a, Vec<(String, GrantRecord)>> {
        Box::pin(async move {
            self.store
                .grants(sub, now)
                .await
                .map_err(|e| StoreError::caused_by("listing connected apps", e))
        })
    }

    fn grants_of_client<'a>(
        &'a self,
        client_id: &'a str,
        now: u64,
    ) -> StoreFuture<'a, Vec<(String, GrantRecord)>> {
        Box::pin(async move {
            self.store
                .grants_of_client(client_id, now)
                .await
                .map_err(|e| StoreError::caused_by("listing a client's users", e))
        })
    }

    fn forget_grant<'a>(&'a self, sub: &'a str, client_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.store
                .forget_grant(sub, client_id)
                .await
                .map_err(|e| StoreError::caused_by("forgetting a connected app", e))
        })
    }

    fn put_registered_client<'a>(
        &'a self,
        id: &'a str,
        client: &'a str,
        ttl: Duration,
        max: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.store
                .put_registered_client(id, client, ttl, max)
                .await
                .map_err(|e| StoreError::caused_by("registering a client", e))
        })
    }

    fn registered_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            self.store
                .registered_client(id)
                .await
                .map_err(|e| StoreError::caused_by("reading a registered client", e))
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.store
                .seq()
                .await
                .map_err(|e| StoreError::caused_by("reading seq", e))?;
            if let Some((subscriber, bound)) = &self.subscriber
                && !subscriber.is_fresh(*bound)
            {
                let staleness = subscriber.staleness();
                return Err(StoreError::unavailable(if staleness == Duration::MAX {
                    Cow::Borrowed("denylist not yet in sync with redis")
                } else {
                    Cow::Owned(format!(
                        "denylist not proved in sync with redis for {staleness:?} (bound {bound:?})"
                    ))
                }));
            }
            Ok(())
        })
    }
}
