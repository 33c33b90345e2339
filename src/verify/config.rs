//! What a [`Verifier`](super::Verifier) accepts and how it caches.

use std::time::Duration;

/// What a [`Verifier`](super::Verifier) accepts and how it caches.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The expected `iss`, exactly as the issuer writes it.
    pub issuer: String,
    /// This resource server's name: `aud` must contain it.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Verified tokens remembered at most (0 disables the cache). Each entry
    /// holds the raw token (at most 4 KiB; longer ones are not cached) until
    /// its `exp` or eviction: the token's bytes plus 50 to 100 of table.
    pub cache_capacity: usize,
    /// Shortest time between two JWK set fetches caused by unknown kids.
    pub refetch_interval: Duration,
    /// Bound on each HTTP request to the issuer.
    pub http_timeout: Duration,
}

impl VerifierConfig {
    /// Defaults: 5 s leeway, 10 000 cached tokens, one refetch per 10 s,
    /// 5 s HTTP timeout.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierConfig {
        VerifierConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(5),
            cache_capacity: 10_000,
            refetch_interval: Duration::from_secs(10),
            http_timeout: Duration::from_secs(5),
        }
    }
}
