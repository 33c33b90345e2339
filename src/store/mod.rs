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

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::rule::{Rule, RuleKey};

mod link;
pub mod memory;
pub mod redis;

/// A boxed future returned by [`RevocationStore`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The store could not do what was asked. The issuer answers 503
/// `temporarily_unavailable`: a revocation is never reported done when it
/// was not kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable or failed.
    #[error("revocation store unavailable: {0}")]
    Unavailable(String),
}

/// What [`RevocationStore::mark_refresh_used`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshUse {
    /// The refresh token had not been used: it is now retired.
    First,
    /// It had been used before: reuse, the session must die.
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

    /// Retires a refresh token's `jti` and says whether it was already
    /// retired. Atomic: of two concurrent calls for one `jti`, exactly one
    /// sees [`RefreshUse::First`]. The marker is kept for `ttl` (the token's
    /// remaining lifetime).
    fn mark_refresh_used<'a>(&'a self, jti: &'a str, ttl: Duration) -> StoreFuture<'a, RefreshUse>;

    /// Whether the store is reachable (readiness).
    fn ping(&self) -> StoreFuture<'_, ()>;
}
