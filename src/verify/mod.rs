//! The framework-agnostic access-token [`Verifier`] a resource server embeds:
//! keys, signature, claims, then the denylist.
//!
//! # What a token must pass
//!
//! The checks of [`crate::jwt`] (the same code the issuer runs on its own
//! tokens), with:
//!
//! - `typ` `at+jwt`: a refresh token (`rt+jwt`) is never an access token;
//! - the `kid` found in the key map; an unknown `kid` makes
//!   [`Verifier::verify`] refetch the JWK set, at most once per
//!   [`VerifierConfig::refetch_interval`], so a flood of bogus kids cannot
//!   make it hammer the issuer;
//! - the algorithm is the key's, from its JWK (`EdDSA`, `ES256`, `RS256`);
//!   symmetric (`oct`) keys are never loaded;
//! - `iss` the configured issuer, `aud` containing the configured audience,
//!   `exp`/`nbf` within [`VerifierConfig::leeway`];
//! - then the denylist, with every rule key of the token
//!   ([`TokenKeys`](crate::rule::TokenKeys)), on every call: never cached.
//!
//! # The verified-token cache
//!
//! The checks before the denylist cost tens of microseconds (the signature).
//! A token that passed them is remembered: found by a keyed 64-bit XXH3 of
//! the whole token (a random secret per verifier) and confirmed by comparing
//! every byte of the token the entry holds, so a hash collision is a miss
//! and a full verification, never another token's claims. The next
//! presentation costs a hash, a map lookup and that comparison.
//!
//! So the cache holds raw bearer tokens, until their `exp` passes or they
//! are evicted: per entry the token's bytes (a few hundred; tokens over
//! 4 KiB are never cached) plus 50 to 100 bytes of table, besides the
//! shared claims. The reason is speed: SHA-256 of the token was 83 % of
//! the cached path's instructions (callgrind). The token is short-lived and passes through
//! memory with every request anyway. The cache is bounded
//! ([`VerifierConfig::cache_capacity`]) and an entry is never used once the
//! token's `exp` has passed (no leeway there: the full check, with its
//! leeway, runs again). Only the denylist check runs on a hit.
//!
//! Laid out by idea: this file holds the [`Verifier`]; `config.rs` its
//! configuration; `error.rs` why it could not be built; `jwks.rs` fetches and
//! parses the JWK set (and RFC 8414 metadata); `cache.rs` is the
//! verified-token cache.
//!
//! Time is a parameter: [`Verifier::verify_at`] takes `now`; only the async
//! [`Verifier::verify`] and the layer read the clock (through [`crate::clock`]).

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::clock;
use crate::denylist::Denylist;
use crate::jwt::{self, Expected, TokenKind};

mod cache;
mod config;
mod error;
mod jwks;

pub use crate::jwt::{Audience, Claims, MAX_TOKEN_LEN, VerifyError};
pub use config::VerifierConfig;
pub use error::DiscoveryError;

use cache::TokenCache;
use jwks::{JwkMap, KeySource, fetch, http_client, metadata_url, parse_jwks};

// === the verifier ===

/// Verifies access tokens of one issuer for one audience. Cheap to clone:
/// clones share keys, cache and denylist.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    source: KeySource,
    /// Read on every miss of the cache; replaced whole by a refetch.
    keys: ArcSwap<JwkMap>,
    /// When the last refetch started. A tokio mutex: it is held across the
    /// fetch so concurrent unknown kids cause one request, not many.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    cache: TokenCache,
    denylist: Option<Denylist>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .field("keys", &self.inner.keys.load().len())
            .finish_non_exhaustive()
    }
}

// === impl Verifier ===

impl Verifier {
    /// Discovers the issuer's `jwks_uri` from its RFC 8414 metadata
    /// (checking that the metadata's `issuer` is the configured one), then
    /// fetches the JWK set. Unknown kids refetch it later.
    pub async fn discover(
        config: VerifierConfig,
        denylist: Option<Denylist>,
    ) -> Result<Verifier, DiscoveryError> {
        let http = http_client(&config)?;
        let url = metadata_url(&config.issuer)?;
        let document = fetch(&http, &url).await?;
        let metadata: serde_json::Value =
            serde_json::from_slice(&document).map_err(|source| DiscoveryError::Json {
                what: url.clone(),
                source,
            })?;
        let found = metadata
            .get("issuer")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if found != config.issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: config.issuer.clone(),
                found: found.to_owned(),
            });
        }
        let jwks_uri = metadata
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or(DiscoveryError::NoJwksUri)?
            .to_owned();
        Verifier::with_jwks_uri_and_client(config, jwks_uri, http, denylist).await
    }

    /// Fetches the JWK set from `jwks_uri` (no discovery); unknown kids
    /// refetch it later.
    pub async fn with_jwks_uri(
        config: VerifierConfig,
        jwks_uri: impl Into<String>,
        denylist: Option<Denylist>,
    ) -> Result<Verifier, DiscoveryError> {
        let http = http_client(&config)?;
        Verifier::with_jwks_uri_and_client(config, jwks_uri.into(), http, denylist).await
    }

    async fn with_jwks_uri_and_client(
        config: VerifierConfig,
        jwks_uri: String,
        http: reqwest::Client,
        denylist: Option<Denylist>,
    ) -> Result<Verifier, DiscoveryError> {
        reqwest::Url::parse(&jwks_uri).map_err(|_| DiscoveryError::Url(jwks_uri.clone()))?;
        let keys = parse_jwks(&fetch(&http, &jwks_uri).await?)?;
        Ok(Verifier::build(
            config,
            KeySource::Remote { http, jwks_uri },
            keys,
            denylist,
            Some(Instant::now()),
        ))
    }

    /// A verifier with a fixed JWK set (JSON `{"keys": [...]}`), never
    /// refetched.
    pub fn with_static_jwks(
        config: VerifierConfig,
        jwks: &str,
        denylist: Option<Denylist>,
    ) -> Result<Verifier, DiscoveryError> {
        let keys = parse_jwks(jwks.as_bytes())?;
        Ok(Verifier::build(
            config,
            KeySource::Static,
            keys,
            denylist,
            None,
        ))
    }

    fn build(
        config: VerifierConfig,
        source: KeySource,
        keys: JwkMap,
        denylist: Option<Denylist>,
        fetched: Option<Instant>,
    ) -> Verifier {
        Verifier {
            inner: Arc::new(Inner {
                cache: TokenCache::new(config.cache_capacity),
                config,
                source,
                keys: ArcSwap::from_pointee(keys),
                last_fetch: tokio::sync::Mutex::new(fetched),
                denylist,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// The kids of the keys held now.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.inner.keys.load().keys().cloned().collect();
        kids.sort_unstable();
        kids
    }

    /// Tokens in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// Whether an unknown kid can be resolved by refetching the JWK set.
    pub fn can_refetch(&self) -> bool {
        matches!(self.inner.source, KeySource::Remote { .. })
    }

    /// Verifies `token` at `now` (seconds since the epoch) with the keys held
    /// now: no I/O. An unknown kid is [`VerifyError::UnknownKid`]; call
    /// [`Verifier::verify`] to refetch the keys in that case.
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Arc<Claims>, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::TooLong);
        }
        let cache = &self.inner.cache;
        let hash = cache.hash(token);
        let claims = match cache.get(hash, token, now) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_uncached(token, now)?);
                cache.insert(hash, token, claims.clone(), now);
                claims
            }
        };
        self.check_denylist(&claims, now)?;
        Ok(claims)
    }

    /// Verifies `token` now, refetching the JWK set once (rate-limited) if
    /// its kid is unknown.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, VerifyError> {
        match self.verify_at(token, clock::now_secs()) {
            Err(VerifyError::UnknownKid) if self.can_refetch() => {
                let kid = jwt::read_header(token)?.kid;
                if self.refetch_for(&kid).await {
                    self.verify_at(token, clock::now_secs())
                } else {
                    Err(VerifyError::UnknownKid)
                }
            }
            other => other,
        }
    }

    /// Refetches the JWK set so `kid` may be found, unless a fetch happened
    /// within the refetch interval. Returns whether `kid` is known now.
    async fn refetch_for(&self, kid: &str) -> bool {
        let KeySource::Remote { http, jwks_uri } = &self.inner.source else {
            return false;
        };
        let mut last = self.inner.last_fetch.lock().await;
        // Another request may have fetched it while this one waited.
        if self.inner.keys.load().contains_key(kid) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < self.inner.config.refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        let fetched = match fetch(http, jwks_uri).await {
            Ok(document) => parse_jwks(&document),
            Err(error) => Err(error),
        };
        match fetched {
            Ok(keys) => {
                tracing::info!(
                    kids = keys.len(),
                    "refetched the JWK set for an unknown kid"
                );
                let known = keys.contains_key(kid);
                let old = self.inner.keys.swap(Arc::new(keys));
                // A key the issuer withdrew (retired or compromised) must not
                // keep its tokens alive through the cache.
                let current = self.inner.keys.load();
                if old.keys().any(|kid| !current.contains_key(kid)) {
                    self.inner.cache.clear();
                }
                known
            }
            Err(error) => {
                tracing::warn!(%error, "refetching the JWK set failed; keeping the keys held");
                false
            }
        }
    }

    fn check_denylist(&self, claims: &Claims, now: u64) -> Result<(), VerifyError> {
        match &self.inner.denylist {
            Some(denylist) => match denylist.is_revoked(&claims.token_keys(), now) {
                Some(revoked) => Err(VerifyError::Revoked(revoked.kind)),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Everything but the denylist: header, key, signature, claims.
    fn verify_uncached(&self, token: &str, now: u64) -> Result<Claims, VerifyError> {
        let header = jwt::read_header(token)?;
        if header.kind == TokenKind::Refresh {
            return Err(VerifyError::RefreshToken);
        }
        let keys = self.inner.keys.load();
        let key = keys.get(&header.kid).ok_or(VerifyError::UnknownKid)?;
        let config = &self.inner.config;
        let expected = Expected {
            issuer: &config.issuer,
            audience: Some(&config.audience),
            leeway: config.leeway.as_secs(),
        };
        jwt::check_claims(token, &header, key, expected, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_without_usable_keys_is_refused() {
        let config = VerifierConfig::new("https://i", "api");
        let oct = r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#;
        assert!(matches!(
            Verifier::with_static_jwks(config.clone(), oct, None),
            Err(DiscoveryError::NoUsableKey)
        ));
        assert!(matches!(
            Verifier::with_static_jwks(config, "[]", None),
            Err(DiscoveryError::Json { .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let config = VerifierConfig::new("https://i", "api");
        // An Ed25519 public key (RFC 8037 A.2).
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let verifier = Verifier::with_static_jwks(config, jwks, None).unwrap();
        for token in [
            "",
            ".",
            "..",
            "a.b.c",
            "eyJhbGciOiJub25lIn0..",
            "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsifQ.e30.",
            "\u{0}\u{ffff}",
        ] {
            assert!(verifier.verify_at(token, 1).is_err(), "{token:?}");
        }
        assert_eq!(
            verifier.verify_at(&"a".repeat(MAX_TOKEN_LEN + 1), 1),
            Err(VerifyError::TooLong)
        );
    }

    /// Two tokens forced onto one cache hash: the second is verified in
    /// full, never answered with the first's claims.
    #[cfg(feature = "issuer")]
    #[test]
    fn a_hash_collision_never_skips_verification() {
        use crate::signing::{SigningAlg, SigningKeys};

        let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
        let config = VerifierConfig::new("https://i", "api");
        let mut verifier = Verifier::with_static_jwks(config, keys.jwks_json(), None).unwrap();
        Arc::get_mut(&mut verifier.inner).unwrap().cache = TokenCache::colliding(32);
        let claims = |sub: &str| Claims {
            iss: "https://i".into(),
            sub: sub.into(),
            aud: Audience::One("api".into()),
            client_id: "web".into(),
            scope: "read".into(),
            iat: 100,
            exp: 1000,
            nbf: None,
            jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            sid: "BBBBBBBBBBBBBBBBBBBBBB".into(),
            resource: Vec::new(),
        };
        let sign = |claims: &Claims| keys.active().sign(TokenKind::Access, claims).unwrap();
        let alice = sign(&claims("alice"));
        assert_eq!(verifier.verify_at(&alice, 200).unwrap().sub, "alice");
        assert_eq!(verifier.cached_tokens(), 1);
        assert_eq!(verifier.verify_at(&alice, 200).unwrap().sub, "alice");

        // The same claims with one signature byte changed: same hash, same
        // length, and refused.
        let mut forged = alice.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            verifier.verify_at(&forged, 200),
            Err(VerifyError::BadSignature)
        );
        // A valid token of someone else gets its own claims, and takes the
        // slot; alice is then verified in full again, still as alice.
        let bob = sign(&claims("bob"));
        assert_eq!(verifier.verify_at(&bob, 200).unwrap().sub, "bob");
        assert_eq!(verifier.verify_at(&alice, 200).unwrap().sub, "alice");
        assert_eq!(verifier.cached_tokens(), 1);
    }
}
