//! The framework-agnostic access-token [`Verifier`] a resource server embeds:
//! keys, signature, claims, then the denylist.
//!
//! # What a token must pass
//!
//! 1. at most [`MAX_TOKEN_LEN`] bytes, a JWS header that parses, no `crit`
//!    (RFC 7515 §4.1.11: we understand no extension);
//! 2. `typ` is `at+jwt` (RFC 9068; `application/` prefix and case ignored):
//!    a refresh token (`rt+jwt`) is never an access token;
//! 3. a `kid` found in the key map (RFC 8725 §3.10: the `kid` is untrusted
//!    input, looked up only here; `jku`, `x5u` and `jwk` are never followed);
//!    an unknown `kid` makes [`Verifier::verify`] refetch the JWK set, at most
//!    once per [`VerifierConfig::refetch_interval`], so a flood of bogus kids
//!    cannot make it hammer the issuer;
//! 4. the algorithm is the key's, from its JWK (`EdDSA`, `ES256`, `RS256`):
//!    the header's `alg` must equal it, so `none` and HS256-with-the-public-key
//!    fail; symmetric (`oct`) keys are never loaded;
//! 5. the signature, `iss` (the configured issuer), `aud` (contains the
//!    configured audience), the claims `sub`, `client_id`, `iat`, `exp`, `jti`
//!    present, `exp`/`nbf` within [`VerifierConfig::leeway`];
//! 6. the denylist, with every rule key of the token ([`TokenKeys`]), on
//!    every call: never cached.
//!
//! # The verified-token cache
//!
//! Steps 1–5 cost tens of microseconds (the signature). A token that passed
//! them is remembered under the SHA-256 of the whole token, so the next
//! presentation costs a hash and a map lookup. The cache is bounded
//! ([`VerifierConfig::cache_capacity`]) and an entry is never used once the
//! token's `exp` has passed (no leeway there: the full check, with its
//! leeway, runs again). Only step 6 runs on a hit.
//!
//! Laid out by idea: this file holds the claims, the errors, the
//! configuration and the [`Verifier`]; `keys.rs` fetches and parses the JWK
//! set (and RFC 8414 metadata); `cache.rs` is the verified-token cache.
//!
//! Time is a parameter: [`Verifier::verify_at`] takes `now`; only the async
//! [`Verifier::verify`] and the layer read the clock (through [`crate::clock`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::denylist::Denylist;
use crate::rule::{KeyKind, TokenKeys};

mod cache;
mod keys;

use cache::TokenCache;
use keys::{KeyMap, KeySource, fetch, http_client, metadata_url, parse_jwks};

/// Longest token looked at; anything longer is refused unparsed.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

// === claims ===

/// `aud`: one string or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names `who`.
    pub fn contains(&self, who: &str) -> bool {
        match self {
            Audience::One(a) => a == who,
            Audience::Many(list) => list.iter().any(|a| a == who),
        }
    }
}

/// The claims of a verified access token (RFC 9068, revokd's set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessClaims {
    /// The issuer.
    pub iss: String,
    /// The user, or the client id for `client_credentials`.
    pub sub: String,
    /// Who the token is for.
    pub aud: Audience,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes (empty when absent).
    #[serde(default)]
    pub scope: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The token's id.
    pub jti: String,
    /// The grant (session) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AccessClaims {
    /// The keys the denylist checks for this token.
    pub fn token_keys(&self) -> TokenKeys<'_> {
        TokenKeys {
            jti: &self.jti,
            sid: self.sid.as_deref(),
            sub: Some(&self.sub),
            client_id: &self.client_id,
            iat: self.iat,
        }
    }

    /// The scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token carries `wanted`.
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes().any(|s| s == wanted)
    }
}

// === errors ===

/// Why a token was refused. Every variant maps to RFC 6750's
/// `invalid_token`; the text says why, for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// Not a JWS compact serialisation with a JSON header.
    #[error("token is not a well-formed JWT")]
    Malformed,
    /// The header has a `crit` parameter.
    #[error("token header has a crit parameter")]
    Crit,
    /// `typ` is `rt+jwt`: a refresh token is never an access token.
    #[error("a refresh token is not an access token")]
    RefreshToken,
    /// `typ` is missing or not `at+jwt`.
    #[error("token typ is not at+jwt")]
    WrongType,
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// No key with this `kid`, even after a refetch (or a refetch was not
    /// allowed yet).
    #[error("no key with the token's kid")]
    UnknownKid,
    /// The header's `alg` is not the key's.
    #[error("token alg does not match its key's algorithm")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not the configured one")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("token audience does not include this resource server")]
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    #[error("token claims are missing or malformed")]
    InvalidClaims,
    /// `exp` passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// A revocation rule covers the token.
    #[error("token is revoked (by a {0} rule)")]
    Revoked(KeyKind),
}

impl VerifyError {
    /// A short reason safe to show a client (`error_description`).
    pub fn description(&self) -> &'static str {
        match self {
            VerifyError::Expired => "the access token expired",
            VerifyError::Revoked(_) => "the access token was revoked",
            VerifyError::RefreshToken => "a refresh token is not an access token",
            VerifyError::WrongAudience => "the access token is not for this resource",
            _ => "the access token is invalid",
        }
    }
}

/// Why a [`Verifier`] could not be built or its keys fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The issuer URL or `jwks_uri` is not a usable URL.
    #[error("bad URL {0:?}")]
    Url(String),
    /// The HTTP request failed.
    #[error("fetching {url}: {source}")]
    Http {
        /// What was fetched.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The issuer answered with an error status.
    #[error("fetching {url}: HTTP {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The document is larger than 1 MiB.
    #[error("fetching {0}: document too large")]
    TooLarge(String),
    /// The document is not the expected JSON.
    #[error("{0}: malformed document")]
    Json(String),
    /// The metadata's `issuer` is not the configured issuer (RFC 8414 §3.3).
    #[error("metadata issuer {found:?} is not the configured issuer {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the metadata says.
        found: String,
    },
    /// The metadata has no `jwks_uri`.
    #[error("metadata has no jwks_uri")]
    NoJwksUri,
    /// The JWK set has no key this verifier can use.
    #[error("the JWK set has no usable signing key (EdDSA, ES256 or RS256 with a kid)")]
    NoUsableKey,
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(reqwest::Error),
}

// === configuration ===

/// What a [`Verifier`] accepts and how it caches.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The expected `iss`, exactly as the issuer writes it.
    pub issuer: String,
    /// This resource server's name: `aud` must contain it.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Verified tokens remembered at most (0 disables the cache).
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
    keys: ArcSwap<KeyMap>,
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
    ) -> Result<Verifier, SetupError> {
        let http = http_client(&config)?;
        let url = metadata_url(&config.issuer)?;
        let document = fetch(&http, &url).await?;
        let metadata: serde_json::Value =
            serde_json::from_slice(&document).map_err(|_| SetupError::Json(url.clone()))?;
        let found = metadata
            .get("issuer")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if found != config.issuer {
            return Err(SetupError::IssuerMismatch {
                expected: config.issuer.clone(),
                found: found.to_owned(),
            });
        }
        let jwks_uri = metadata
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or(SetupError::NoJwksUri)?
            .to_owned();
        Verifier::with_jwks_uri_and_client(config, jwks_uri, http, denylist).await
    }

    /// Fetches the JWK set from `jwks_uri` (no discovery); unknown kids
    /// refetch it later.
    pub async fn with_jwks_uri(
        config: VerifierConfig,
        jwks_uri: impl Into<String>,
        denylist: Option<Denylist>,
    ) -> Result<Verifier, SetupError> {
        let http = http_client(&config)?;
        Verifier::with_jwks_uri_and_client(config, jwks_uri.into(), http, denylist).await
    }

    async fn with_jwks_uri_and_client(
        config: VerifierConfig,
        jwks_uri: String,
        http: reqwest::Client,
        denylist: Option<Denylist>,
    ) -> Result<Verifier, SetupError> {
        reqwest::Url::parse(&jwks_uri).map_err(|_| SetupError::Url(jwks_uri.clone()))?;
        let keys = parse_jwks(&fetch(&http, &jwks_uri).await?, &config)?;
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
    ) -> Result<Verifier, SetupError> {
        let keys = parse_jwks(jwks.as_bytes(), &config)?;
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
        keys: KeyMap,
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
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Arc<AccessClaims>, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::TooLong);
        }
        let digest = TokenCache::digest(token);
        let claims = match self.inner.cache.get(&digest, now) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_uncached(token, now)?);
                self.inner.cache.insert(digest, claims.clone(), now);
                claims
            }
        };
        self.check_denylist(&claims, now)?;
        Ok(claims)
    }

    /// Verifies `token` now, refetching the JWK set once (rate-limited) if
    /// its kid is unknown.
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, VerifyError> {
        match self.verify_at(token, clock::now_secs()) {
            Err(VerifyError::UnknownKid) if self.can_refetch() => {
                let kid = jsonwebtoken::decode_header(token)
                    .ok()
                    .and_then(|h| h.kid)
                    .ok_or(VerifyError::MissingKid)?;
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
            Ok(document) => parse_jwks(&document, &self.inner.config),
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

    fn check_denylist(&self, claims: &AccessClaims, now: u64) -> Result<(), VerifyError> {
        match &self.inner.denylist {
            Some(denylist) => match denylist.is_revoked(&claims.token_keys(), now) {
                Some(revoked) => Err(VerifyError::Revoked(revoked.kind)),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Steps 1–5: header, key, signature, claims.
    fn verify_uncached(&self, token: &str, now: u64) -> Result<AccessClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.crit.is_some() {
            return Err(VerifyError::Crit);
        }
        match header.typ.as_deref().map(token_type) {
            Some(TokenType::Access) => {}
            Some(TokenType::Refresh) => return Err(VerifyError::RefreshToken),
            Some(TokenType::Other) | None => return Err(VerifyError::WrongType),
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::MissingKid)?;
        let keys = self.inner.keys.load();
        let key = keys.get(kid).ok_or(VerifyError::UnknownKid)?;
        if header.alg != key.alg {
            return Err(VerifyError::AlgorithmMismatch);
        }
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &key.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => VerifyError::BadSignature,
                ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
                ErrorKind::InvalidAudience => VerifyError::WrongAudience,
                ErrorKind::InvalidAlgorithm => VerifyError::AlgorithmMismatch,
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => VerifyError::InvalidClaims,
                _ => VerifyError::Malformed,
            })?;
        let claims = data.claims;
        let leeway = self.inner.config.leeway.as_secs();
        if claims.exp.saturating_add(leeway) <= now {
            return Err(VerifyError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(VerifyError::NotYetValid);
        }
        Ok(claims)
    }
}

enum TokenType {
    Access,
    Refresh,
    Other,
}

/// RFC 7515 §4.1.9: the `application/` prefix may be omitted; compare
/// ignoring case.
fn token_type(typ: &str) -> TokenType {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    if typ.eq_ignore_ascii_case("at+jwt") {
        TokenType::Access
    } else if typ.eq_ignore_ascii_case("rt+jwt") {
        TokenType::Refresh
    } else {
        TokenType::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_ignores_case_and_the_application_prefix() {
        assert!(matches!(token_type("at+jwt"), TokenType::Access));
        assert!(matches!(
            token_type("application/AT+JWT"),
            TokenType::Access
        ));
        assert!(matches!(token_type("rt+jwt"), TokenType::Refresh));
        assert!(matches!(token_type("JWT"), TokenType::Other));
        assert!(matches!(token_type("applicationé/x"), TokenType::Other));
    }

    #[test]
    fn jwks_without_usable_keys_is_refused() {
        let config = VerifierConfig::new("https://i", "api");
        let oct = r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#;
        assert!(matches!(
            Verifier::with_static_jwks(config.clone(), oct, None),
            Err(SetupError::NoUsableKey)
        ));
        assert!(matches!(
            Verifier::with_static_jwks(config, "[]", None),
            Err(SetupError::Json(_))
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
}
