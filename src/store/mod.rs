//! Where revocation rules and refresh-token markers live.
//!
//! [`RevocationStore`] is what the issuer writes to. The embedded default,
//! [`memory::MemoryStore`], applies rules straight to the local
//! [`Denylist`](crate::denylist::Denylist); the Redis store runs one script
//! per change and lets every subscriber's denylist pick it up. The issuer
//! reads revocation state from the denylist, never from the store, so
//! introspection uses the same check as every resource server.
//!
//! The trait returns boxed futures so it stays object safe
//! (`Arc<dyn RevocationStore>`) without an extra macro crate.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::BoxError;
use crate::rule::{Rule, RuleKey};
pub use grants::{CodePresenter, CodeUse, GrantRecord};

pub mod grants;
mod link;
pub mod memory;
pub mod redis;

/// A boxed future returned by [`RevocationStore`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The store could not do what was asked. The issuer answers 503
/// `temporarily_unavailable`: a revocation is never reported done when it
/// was not kept.
///
/// The cause, when another error is one (a [`redis::RedisStoreError`]), is
/// kept as the [`source`](std::error::Error::source), not flattened into the
/// message: log it with [`crate::error::Chain`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable, failed, or is not known to be in sync.
    #[error("revocation store unavailable: {what}")]
    Unavailable {
        /// What could not be done, or what is wrong.
        what: Cow<'static, str>,
        /// The error that caused it, if one did.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// Unavailable for a reason of its own (no underlying error).
    pub fn unavailable(what: impl Into<Cow<'static, str>>) -> StoreError {
        StoreError::Unavailable {
            what: what.into(),
            source: None,
        }
    }

    /// Unavailable because `source` failed while doing `what`.
    pub fn caused_by(
        what: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> StoreError {
        StoreError::Unavailable {
            what: what.into(),
            source: Some(source.into()),
        }
    }
}

/// What [`RevocationStore::claim_refresh`] found.
///
/// Rotation is two steps, so that a refresh whose answer was lost can be
/// retried without looking like theft: *claim* the presented token (it is
/// retired from then on), sign the new tokens, *confirm* the claim, answer.
/// A token claimed but never confirmed handed out nothing: presenting it
/// again is a retry and takes the claim over. A confirmed token presented
/// again is reuse. Of concurrent attempts only the last claim can confirm,
/// so one refresh token yields at most one answered rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshUse {
    /// The refresh token had not been used: it is now claimed.
    First,
    /// An earlier attempt claimed it and never answered (a 503, a dropped
    /// connection, Redis paused): this attempt took the claim over.
    Retry,
    /// A rotation with it was answered before: reuse, the session must die.
    Reused,
}

/// The issuer's write side of revocation state.
pub trait RevocationStore: Send + Sync + 'static {
    /// Adds a rule, or merges it into the existing rule for its key.
    fn revoke(&self, rule: Rule) -> StoreFuture<'_, ()>;

    /// Deletes the rule for a key (re-approve). `true` when one existed.
    fn remove<'a>(&'a self, key: &'a RuleKey) -> StoreFuture<'a, bool>;

    /// The live rule for a key, if any.
    fn get<'a>(&'a self, key: &'a RuleKey) -> StoreFuture<'a, Option<Rule>>;

    /// Claims a refresh token's `jti` for the rotation `attempt` (a random
    /// id) and says what it found (see [`RefreshUse`]). Atomic. The marker is
    /// kept for `ttl` (the token's remaining lifetime).
    fn claim_refresh<'a>(
        &'a self,
        jti: &'a str,
        attempt: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, RefreshUse>;

    /// Confirms that `attempt`'s rotation is being answered: `true` when the
    /// claim was still `attempt`'s (it is now final), `false` when a later
    /// attempt took it over (this one must not answer its tokens).
    fn confirm_refresh<'a>(&'a self, jti: &'a str, attempt: &'a str) -> StoreFuture<'a, bool>;

    /// Keeps a one-time authorization code (the key is the code's digest)
    /// with what it was issued for, for `ttl`.
    fn put_code<'a>(&'a self, code: &'a str, grant: &'a str, ttl: Duration) -> StoreFuture<'a, ()>;

    /// Spends a code, atomically: the first presentation by the client,
    /// redirect URI and verifier it was issued for gets [`CodeUse::Fresh`],
    /// later ones [`CodeUse::Reused`] (for the code's lifetime again); any
    /// other presenter [`CodeUse::Mismatch`], the code untouched.
    fn take_code<'a>(
        &'a self,
        code: &'a str,
        presenter: CodePresenter<'a>,
        ttl: Duration,
    ) -> StoreFuture<'a, CodeUse>;

    /// Records that `sub` connected `client_id` (or used it again), keeping
    /// the first authorization's time.
    fn record_grant<'a>(
        &'a self,
        sub: &'a str,
        client_id: &'a str,
        record: &'a GrantRecord,
    ) -> StoreFuture<'a, ()>;

    /// Updates the record of (`sub`, `client_id`) if there is one (a refresh).
    fn touch_grant<'a>(
        &'a self,
        sub: &'a str,
        client_id: &'a str,
        record: &'a GrantRecord,
    ) -> StoreFuture<'a, ()>;

    /// `sub`'s connected apps that have not expired at `now`, by client id.
    fn grants<'a>(&'a self, sub: &'a str, now: u64) -> StoreFuture<'a, Vec<(String, GrantRecord)>>;

    /// `client_id`'s users that have not expired at `now`, by `sub`.
    fn grants_of_client<'a>(
        &'a self,
        client_id: &'a str,
        now: u64,
    ) -> StoreFuture<'a, Vec<(String, GrantRecord)>>;

    /// Forgets (`sub`, `client_id`); `true` when it was recorded.
    fn forget_grant<'a>(&'a self, sub: &'a str, client_id: &'a str) -> StoreFuture<'a, bool>;

    /// Keeps a dynamically registered client (RFC 7591) for `ttl`, unless
    /// `max` registered clients live already: `false`, nothing kept.
    fn put_registered_client<'a>(
        &'a self,
        id: &'a str,
        client: &'a str,
        ttl: Duration,
        max: u64,
    ) -> StoreFuture<'a, bool>;

    /// A dynamically registered client, if it is still registered.
    fn registered_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<String>>;

    /// Whether the store is reachable (readiness).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Whether the issuer's denylist ever completed a sync with the store;
    /// before that, introspection and refresh cannot know what is revoked
    /// and answer 503. Always true for a store that is the denylist itself.
    fn has_synced(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;
    use crate::error::Chain;
    use crate::store::redis::RedisStoreError;

    #[test]
    fn the_cause_of_a_store_error_is_its_source() {
        let timeout = RedisStoreError::Timeout(Duration::from_secs(2));
        let error = StoreError::caused_by("revoking", timeout);
        assert_eq!(error.to_string(), "revocation store unavailable: revoking");
        let source = error.source().expect("the redis error is kept");
        assert!(source.downcast_ref::<RedisStoreError>().is_some());
        assert_eq!(
            Chain(&error).to_string(),
            "revocation store unavailable: revoking: redis did not answer within 2s"
        );
        let via_question_mark = StoreError::from(RedisStoreError::Corrupt("x".into()));
        assert!(via_question_mark.source().is_some());
        assert!(StoreError::unavailable("not in sync").source().is_none());
    }
}
