//! The issuer on Redis: many issuers share one Redis and see each other's
//! revocations.
//!
//! Writes go through the store's scripts ([`RedisRevocationStore`]); a
//! [`Subscriber`] follows every other issuer's changes into this issuer's
//! denylist and, should Redis come back empty, re-writes the rules it holds
//! (its denylist lists its rules); a sweeper drops expired rules from Redis.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;

use super::{AppState, SetupError};
use crate::config::Config;
use crate::denylist::Denylist;
use crate::keys::KeySet;
use crate::metrics::DenylistMetrics;
use crate::store::redis::{
    DEFAULT_TIMEOUT, RedisRevocationStore, RedisStore, RedisStoreError, expire_forever,
};
use crate::subscriber::{Subscriber, SubscriberConfig};

/// How often expired rules are swept out of Redis.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Why an issuer on Redis could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// `store.redis_url` is not a Redis URL.
    #[error("store.redis_url: {0}")]
    Url(#[from] redis::RedisError),
    /// The store could not be built.
    #[error(transparent)]
    Store(#[from] RedisStoreError),
    /// The issuer itself could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
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

/// Builds the issuer's state on the Redis at `url`; readiness requires the
/// denylist proved in sync within `staleness_bound`. Must run inside a tokio
/// runtime. Does not wait for Redis: tokens are issued while it is down.
pub fn on_redis(
    config: Config,
    keys: KeySet,
    url: &str,
    staleness_bound: Duration,
) -> Result<(AppState, Replication), ReplicationError> {
    let client = redis::Client::open(url)?;
    let store = RedisStore::new(client.clone(), &config.store.prefix, DEFAULT_TIMEOUT)?;
    let denylist = Denylist::listing();
    let registry = Registry::new();
    let metrics = DenylistMetrics::register(&registry, &denylist)?;
    let subscriber = Subscriber::spawn(
        client,
        store.clone(),
        denylist.clone(),
        SubscriberConfig {
            restore: true,
            ..SubscriberConfig::default()
        },
        Some(metrics),
    );
    let revocations = RedisRevocationStore::new(store.clone(), denylist.clone())
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
