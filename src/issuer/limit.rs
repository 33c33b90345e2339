//! Per-client rate limits on `/oauth2/token`, `/oauth2/revoke` and
//! `/oauth2/introspect`, and the load shedder in front of every route.
//!
//! # Who is charged
//!
//! A request is charged *after* client authentication, because only then do
//! we know who sent it:
//!
//! - the client authenticated: one token from that client's bucket;
//! - it did not (wrong secret, unknown id, no credentials): one token from
//!   the bucket of its **peer IP address**.
//!
//! The client id a request merely *claims* is never a key: if it were, anyone
//! could send bad secrets under `client_id=web` and use up `web`'s allowance
//! (a denial of service needing no secret). Keying failures by peer address
//! means an unauthenticated flood only throttles its own source, and a good
//! client sharing that address still gets through, because its requests
//! authenticate and are charged to its own bucket. Behind a proxy every
//! failure shares the proxy's address; that only makes failures stricter.
//!
//! The client buckets hold at most one entry per configured client (only
//! authenticated ids become keys). The peer buckets are bounded: a full
//! shard first drops idle buckets (a bucket that has refilled to `burst` is
//! indistinguishable from no bucket, so dropping it loses nothing); if none
//! is idle, a *new* failing peer is refused (429) rather than admitted
//! unmetered.
//!
//! Client authentication itself stays cheap enough to run before the check:
//! a `sha256:` secret costs one hash, and argon2 secrets are verified at most
//! `limits.argon2_concurrency` at a time, from a bounded queue, and cached
//! (see [`super::client_auth`]). Before authentication, the credential
//! endpoints are also limited per peer, and argon2 failures per client id
//! and per peer (see [`RateLimits`]).
//!
//! # Hot path
//!
//! Buckets live in 64 shards, each behind its own mutex held for a few
//! arithmetic operations: no global lock. Time is a parameter (a
//! [`Duration`] on a monotonic scale), so tests drive the refill without
//! sleeping.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::config::LimitsConfig;

const SHARDS: usize = 64;
/// Buckets per shard before idle ones are dropped (64 × 1024 = 65 536 keys,
/// a few MiB at most).
const SHARD_CAPACITY: usize = 1024;

/// The peer address of a request, when the server was started with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The per-client limiter of an issuer, and the per-peer ones that run
/// before authentication.
///
/// # Before authentication
///
/// - Every request to an endpoint that takes client credentials first takes
///   a token from its peer's `requests` bucket (`limits.peer_rate_per_second`,
///   `limits.peer_burst`): one host hammering those endpoints is refused 429
///   before any credential is even looked at, and other hosts are not.
/// - argon2 failures are counted per client id and per peer
///   (`limits.argon2_failures` per `limits.argon2_failure_window`, a bucket
///   that refills at that rate). A client id or peer whose count is used up
///   gets 429 `slow_down` *without argon2 work* for a secret not verified
///   before; a secret already verified (cached) still authenticates, so
///   guesses under a real client's id cannot lock out its running instances.
#[derive(Debug)]
pub struct RateLimits {
    clients: Buckets<String>,
    peers: Buckets<Option<IpAddr>>,
    requests: Buckets<Option<IpAddr>>,
    argon2_clients: Buckets<String>,
    argon2_peers: Buckets<Option<IpAddr>>,
    registrations: Buckets<Option<IpAddr>>,
    origin: Instant,
}

impl RateLimits {
    /// Limits from `[limits]`, and `registrations_per_hour` for one peer's
    /// dynamic registrations.
    pub fn new(config: &LimitsConfig, registrations_per_hour: u32) -> RateLimits {
        let registrations = f64::from(registrations_per_hour.max(1));
        let rate = config.rate_per_second;
        let burst = f64::from(config.burst);
        let failures = f64::from(config.argon2_failures);
        let failure_rate = failures / config.argon2_failure_window.as_secs_f64();
        RateLimits {
            clients: Buckets::new(rate, burst, SHARD_CAPACITY),
            peers: Buckets::new(rate, burst, SHARD_CAPACITY),
            requests: Buckets::new(
                config.peer_rate_per_second,
                f64::from(config.peer_burst),
                SHARD_CAPACITY,
            ),
            argon2_clients: Buckets::new(failure_rate, failures, SHARD_CAPACITY),
            argon2_peers: Buckets::new(failure_rate, failures, SHARD_CAPACITY),
            registrations: Buckets::new(registrations / 3600.0, registrations, SHARD_CAPACITY),
            origin: Instant::now(),
        }
    }

    /// Charges one request to a credential endpoint to its peer, before
    /// anything else is done with it.
    pub fn charge_request(&self, peer: Peer, now: Duration) -> Result<(), Duration> {
        self.requests.take(&peer.0, now)
    }

    /// Reserves one failure of `client_id` and of `peer` before argon2
    /// work is spent on a secret one presents for the other: `Err(wait)`
    /// when either has used up its failures. Charged up front, so parallel
    /// attempts cannot run more checks than the bound; a check that did not
    /// fail gives it back ([`RateLimits::argon2_refund`]).
    pub fn argon2_reserve(
        &self,
        client_id: &str,
        peer: Peer,
        now: Duration,
    ) -> Result<(), Duration> {
        self.argon2_clients.take(client_id, now)?;
        if let Err(wait) = self.argon2_peers.take(&peer.0, now) {
            self.argon2_clients.give_back(client_id);
            return Err(wait);
        }
        Ok(())
    }

    /// Gives back what [`RateLimits::argon2_reserve`] took: the check
    /// succeeded, or never ran.
    pub fn argon2_refund(&self, client_id: &str, peer: Peer) {
        self.argon2_clients.give_back(client_id);
        self.argon2_peers.give_back(&peer.0);
    }

    /// Now, on the limiter's monotonic scale.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Charges one request to an authenticated client: `Err(wait)` when its
    /// bucket is empty, `wait` being how long until a token is back.
    pub fn charge_client(&self, client_id: &str, now: Duration) -> Result<(), Duration> {
        self.clients.take(client_id, now)
    }

    /// Charges one dynamic registration to the peer it came from.
    pub fn charge_registration(&self, peer: Peer, now: Duration) -> Result<(), Duration> {
        self.registrations.take(&peer.0, now)
    }

    /// Charges one failed authentication to the peer it came from.
    pub fn charge_peer(&self, peer: Peer, now: Duration) -> Result<(), Duration> {
        self.peers.take(&peer.0, now)
    }
}

/// Token buckets by key, sharded.
#[derive(Debug)]
struct Buckets<K> {
    shards: Box<[Mutex<HashMap<K, Bucket>>]>,
    hasher: std::collections::hash_map::RandomState,
    /// Tokens added per second.
    rate: f64,
    /// Bucket size.
    burst: f64,
    capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Duration,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new(rate: f64, burst: f64, capacity: usize) -> Buckets<K> {
        Buckets {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            rate,
            burst,
            capacity,
        }
    }

    /// Takes one token for `key` at `now`, or says how long until one is
    /// available.
    fn take<Q>(&self, key: &Q, now: Duration) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = shard.get_mut(key) {
            return self.take_from(bucket, now);
        }
        if shard.len() >= self.capacity {
            let full_after = Duration::from_secs_f64(self.burst / self.rate);
            shard.retain(|_, b| now.saturating_sub(b.updated) < full_after);
            if shard.len() >= self.capacity {
                // Every bucket is in use: refuse the newcomer rather than
                // grow without bound or reset someone else's bucket.
                return Err(Duration::from_secs(1));
            }
        }
        let mut bucket = Bucket {
            tokens: self.burst,
            updated: now,
        };
        let result = self.take_from(&mut bucket, now);
        shard.insert(key.to_owned(), bucket);
        result
    }

    /// Returns one token taken from `key` (never past the burst).
    fn give_back<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = shard.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }

    fn take_from(&self, bucket: &mut Bucket, now: Duration) -> Result<(), Duration> {
        let elapsed = now.saturating_sub(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = bucket.updated.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// `Retry-After` in whole seconds: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let b: Buckets<String> = Buckets::new(2.0, 3.0, 16);
        let t0 = Duration::from_secs(100);
        for _ in 0..3 {
            assert!(b.take("web", t0).is_ok());
        }
        let wait = b.take("web", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Half a second later, exactly one more.
        assert!(b.take("web", t0 + 500 * MS).is_ok());
        assert!(b.take("web", t0 + 500 * MS).is_err());
        // Long idle: back to the burst, never above it.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take("web", later).is_ok());
        }
        assert!(b.take("web", later).is_err());
    }

    #[test]
    fn keys_do_not_share_buckets() {
        let b: Buckets<String> = Buckets::new(1.0, 1.0, 16);
        assert!(b.take("a", Duration::ZERO).is_ok());
        assert!(b.take("a", Duration::ZERO).is_err());
        assert!(b.take("b", Duration::ZERO).is_ok());
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let b: Buckets<String> = Buckets::new(1.0, 1.0, 16);
        assert!(b.take("a", Duration::from_secs(10)).is_ok());
        assert!(b.take("a", Duration::from_secs(5)).is_err());
        assert!(b.take("a", Duration::from_secs(10)).is_err());
        assert!(b.take("a", Duration::from_secs(11)).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_idle_buckets_are_dropped() {
        let b: Buckets<u32> = Buckets::new(10.0, 10.0, 2);
        let t0 = Duration::ZERO;
        for key in 0..10_000u32 {
            let _ = b.take(&key, t0);
        }
        assert!(b.len() <= 2 * SHARDS, "{}", b.len());
        // A newcomer to a shard full of busy buckets is refused…
        let refused = (10_000..20_000u32)
            .filter(|k| b.take(k, t0).is_err())
            .count();
        assert!(refused > 0);
        // …and admitted once they have refilled (1 s at 10/s for a burst of 10).
        let later = t0 + Duration::from_secs(2);
        assert!(b.take(&20_000, later).is_ok());
        assert!(b.take(&20_001, later).is_ok());
        assert!(b.len() <= 2 * SHARDS);
    }

    #[test]
    fn a_token_given_back_is_taken_again_but_never_past_the_burst() {
        let b: Buckets<String> = Buckets::new(0.001, 2.0, 16);
        assert!(b.take("a", Duration::ZERO).is_ok());
        assert!(b.take("a", Duration::ZERO).is_ok());
        assert!(b.take("a", Duration::ZERO).is_err());
        b.give_back("a");
        assert!(b.take("a", Duration::ZERO).is_ok());
        assert!(b.take("a", Duration::ZERO).is_err());
        for _ in 0..5 {
            b.give_back("a");
        }
        assert!(b.take("a", Duration::ZERO).is_ok());
        assert!(b.take("a", Duration::ZERO).is_ok());
        assert!(
            b.take("a", Duration::ZERO).is_err(),
            "the burst caps what comes back"
        );
        b.give_back("nobody");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
