//! Client authentication: `client_secret_basic` and `client_secret_post`,
//! exactly one per request (RFC 6749 §2.3).
//!
//! Secrets are stored as `sha256:<hex>` (generated, high-entropy secrets:
//! one SHA-256 and a constant-time compare of fixed-size digests) or as an
//! argon2 PHC string, verified once and then cached keyed by a SHA-256 of
//! (client, stored hash, presented secret), so a busy client does not pay
//! argon2 on every request and a wrong secret does not cost argon2 twice.
//!
//! argon2 work is bounded whatever the clients do: at most
//! `limits.argon2_concurrency` verifications run at once, and the slot is
//! held by the blocking task itself, so a request cancelled mid-verification
//! (timeout, closed connection) frees nothing until the work is done; at most
//! `limits.argon2_queue` wait, past that the answer is 503 at once; and a
//! client id or peer past `limits.argon2_failures` recent failures gets
//! 429 without argon2 work (see [`super::limit::RateLimits`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::OAuthError;
use super::form::{OAuthForm, decode_component};
use super::jwt::Audience;
use super::limit::{Peer, RateLimits};
use crate::config::{ClientConfig, Config, GrantType};
use crate::crypto::{self, RandomError};
use crate::metrics::IssuerMetrics;

/// Cached argon2 outcomes per kind before the cache is cleared.
const ARGON2_CACHE_MAX: usize = 4096;

/// A stored client secret.
#[derive(Clone)]
enum SecretHash {
    Sha256([u8; 32]),
    Argon2(Arc<str>),
    /// A public client: it has no secret and presents none (RFC 6749 §2.1).
    Public,
}

/// A registered client, with its configuration resolved.
#[derive(Clone)]
pub struct Client {
    /// The client id.
    pub id: String,
    secret: SecretHash,
    /// Grants it may use.
    pub grants: Vec<GrantType>,
    /// Scopes it may request.
    pub scopes: Vec<String>,
    /// Scopes granted when none are requested.
    pub default_scopes: Vec<String>,
    /// `aud` of its access tokens.
    pub audience: Audience,
    /// Access token lifetime, seconds.
    pub access_ttl: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_ttl: u64,
    /// What the pages call it.
    pub name: String,
    /// Where authorization responses may go (exact match).
    pub redirect_uris: Vec<String>,
}

impl Client {
    /// A public client: no secret, PKCE required.
    pub fn is_public(&self) -> bool {
        matches!(self.secret, SecretHash::Public)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Every client, plus the argon2 machinery.
pub struct Clients {
    by_id: HashMap<String, Arc<Client>>,
    argon2_ok: Mutex<HashSet<[u8; 32]>>,
    argon2_bad: Mutex<HashSet<[u8; 32]>>,
    /// `limits.argon2_concurrency` permits: verifications running.
    argon2_slots: Arc<Semaphore>,
    /// `argon2_concurrency + argon2_queue` permits: verifications running
    /// or waiting.
    argon2_admission: Arc<Semaphore>,
    metrics: IssuerMetrics,
}

/// Why a `secret_hash` is unusable.
#[derive(Debug, thiserror::Error)]
#[error("client {0:?}: secret_hash must be sha256:<64 hex digits> or an argon2 PHC string")]
pub struct BadSecretHash(String);

/// Why an argon2 verification gave no answer. Not an HTTP error: the
/// endpoint that asked maps it ([`From`] into [`OAuthError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Argon2Error {
    /// `limits.argon2_queue` verifications are waiting already: answered
    /// 503 at once.
    #[error("too many argon2 verifications waiting")]
    Busy,
    /// The verification slots were closed (a bug).
    #[error("the argon2 slots are closed")]
    Closed(#[source] tokio::sync::AcquireError),
    /// The blocking task running the verification failed (it panicked).
    #[error("the argon2 task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl From<Argon2Error> for OAuthError {
    fn from(error: Argon2Error) -> Self {
        match error {
            Argon2Error::Busy => OAuthError::Overloaded,
            other => OAuthError::internal(other),
        }
    }
}

// === impl Clients ===

impl Clients {
    /// Resolves `[[clients]]` against the defaults of `config`; argon2
    /// refusals and gauges go to `metrics`.
    pub fn new(config: &Config, metrics: &IssuerMetrics) -> Result<Clients, BadSecretHash> {
        let mut by_id = HashMap::new();
        for c in &config.clients {
            let client = resolve(config, c)?;
            by_id.insert(c.id.clone(), Arc::new(client));
        }
        Ok(Clients {
            by_id,
            argon2_ok: Mutex::new(HashSet::new()),
            argon2_bad: Mutex::new(HashSet::new()),
            argon2_slots: Arc::new(Semaphore::new(config.limits.argon2_concurrency)),
            argon2_admission: Arc::new(Semaphore::new(
                config
                    .limits
                    .argon2_concurrency
                    .saturating_add(config.limits.argon2_queue)
                    .min(Semaphore::MAX_PERMITS),
            )),
            metrics: metrics.clone(),
        })
    }

    /// The client with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.by_id.get(id).cloned()
    }

    /// Every client (metadata, lifetimes).
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.by_id.values().map(|c| &**c)
    }

    /// Authenticates the request's client: exactly one method, the secret
    /// checked in constant time. argon2 failures are counted in `limits`
    /// against the client id and `peer`, and no argon2 work is done for
    /// either once they are used up (429).
    pub async fn authenticate(
        &self,
        peer: Peer,
        limits: &RateLimits,
        headers: &HeaderMap,
        form: &OAuthForm,
    ) -> Result<Arc<Client>, OAuthError> {
        let (id, secret) = presented_credentials(headers, form)?;
        let Some(client) = self.by_id.get(&id) else {
            // Same work as a real check, so unknown ids do not answer faster.
            let _ = sha256_matches(&[0; 32], secret.as_deref().unwrap_or_default());
            return Err(OAuthError::InvalidClient);
        };
        let ok = match (&client.secret, secret) {
            (SecretHash::Sha256(stored), Some(secret)) => sha256_matches(stored, &secret),
            (SecretHash::Argon2(phc), Some(secret)) => {
                self.argon2_matches(&client.id, phc, secret, peer, limits)
                    .await?
            }
            // A public client names itself and presents nothing.
            (SecretHash::Public, None) => true,
            _ => false,
        };
        if ok {
            Ok(client.clone())
        } else {
            Err(OAuthError::InvalidClient)
        }
    }

    async fn argon2_matches(
        &self,
        id: &str,
        phc: &Arc<str>,
        secret: String,
        peer: Peer,
        limits: &RateLimits,
    ) -> Result<bool, OAuthError> {
        let cache_key = crypto::sha256_fields(&[id.as_bytes(), phc.as_bytes(), secret.as_bytes()]);
        if lock(&self.argon2_ok).contains(&cache_key) {
            return Ok(true);
        }
        if lock(&self.argon2_bad).contains(&cache_key) {
            return Ok(false);
        }
        if let Err(wait) = limits.argon2_reserve(id, peer, limits.now()) {
            self.metrics.refused("argon2_failures");
            return Err(OAuthError::SlowDown(wait));
        }
        let checked = self.verify_argon2(phc.clone(), secret).await;
        if !matches!(checked, Ok(false)) {
            limits.argon2_refund(id, peer);
        }
        let ok = checked?;
        let cache = if ok {
            &self.argon2_ok
        } else {
            &self.argon2_bad
        };
        let mut cache = lock(cache);
        if cache.len() >= ARGON2_CACHE_MAX {
            cache.clear();
        }
        cache.insert(cache_key);
        Ok(ok)
    }
}

impl Clients {
    /// Verifies `password` against an argon2 PHC string on the blocking
    /// pool, at most `limits.argon2_concurrency` at a time, so a flood of
    /// password or secret guesses queues instead of taking every core and
    /// ~19 MiB per attempt; with `limits.argon2_queue` already waiting, 503
    /// at once. The permits move into the blocking task: a caller that gives
    /// up (timeout, closed connection) does not free its slot before the
    /// work is done. The password grant uses it too.
    pub async fn verify_argon2(
        &self,
        phc: Arc<str>,
        password: String,
    ) -> Result<bool, Argon2Error> {
        let Ok(admitted) = self.argon2_admission.clone().try_acquire_owned() else {
            self.metrics.refused("argon2_queue");
            return Err(Argon2Error::Busy);
        };
        let waiting = GaugeGuard::inc(&self.metrics.argon2_waiting);
        let slot = self
            .argon2_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(Argon2Error::Closed)?;
        drop(waiting);
        let running = self.metrics.argon2_running.clone();
        verify_argon2(phc, password, [admitted, slot], running).await
    }
}

/// Increments a gauge, and decrements it when dropped.
struct GaugeGuard(prometheus::IntGauge);

impl GaugeGuard {
    fn inc(gauge: &prometheus::IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Verifies `password` against an argon2 PHC string on the blocking pool;
/// the task holds `permits` until it is done, and counts itself in
/// `running`.
async fn verify_argon2(
    phc: Arc<str>,
    password: String,
    permits: [OwnedSemaphorePermit; 2],
    running: prometheus::IntGauge,
) -> Result<bool, Argon2Error> {
    tokio::task::spawn_blocking(move || {
        use argon2::{Argon2, PasswordHash, PasswordVerifier};
        let _permits = permits;
        let _running = GaugeGuard::inc(&running);
        let Ok(hash) = PasswordHash::new(&phc) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
    .await
    .map_err(Argon2Error::Task)
}

fn sha256_matches(stored: &[u8; 32], secret: &str) -> bool {
    let presented = crypto::sha256(secret.as_bytes());
    // Both sides are 32 bytes, so ct_eq never returns early on length.
    bool::from(stored.ct_eq(&presented))
}

/// The client id and secret of the request, from exactly one method.
/// The client id and the secret presented (none: a public client naming
/// itself with `client_id`).
fn presented_credentials(
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<(String, Option<String>), OAuthError> {
    let basic = basic_credentials(headers)?;
    match (basic, form.get("client_secret")) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method, not two",
        )),
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Authorization header",
                ));
            }
            Ok((id, Some(secret)))
        }
        (None, Some(secret)) => {
            let id = form.get("client_id").ok_or(OAuthError::InvalidClient)?;
            Ok((id.to_owned(), Some(secret.to_owned())))
        }
        (None, None) => {
            let id = form.get("client_id").ok_or(OAuthError::InvalidClient)?;
            Ok((id.to_owned(), None))
        }
    }
}

/// `Authorization: Basic …` with the id and secret form-urldecoded
/// (RFC 6749 §2.3.1). `None` when there is no Basic header; a malformed one
/// is `invalid_client`.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("repeated Authorization header"));
    }
    let value = value.to_str().map_err(|_| OAuthError::InvalidClient)?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(OAuthError::InvalidClient);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::InvalidClient);
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| OAuthError::InvalidClient)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(OAuthError::InvalidClient)?;
    let id = decode_component(&decoded[..colon]).ok_or(OAuthError::InvalidClient)?;
    let secret = decode_component(&decoded[colon + 1..]).ok_or(OAuthError::InvalidClient)?;
    if id.is_empty() {
        return Err(OAuthError::InvalidClient);
    }
    Ok(Some((id, secret)))
}

pub(crate) fn resolve(config: &Config, c: &ClientConfig) -> Result<Client, BadSecretHash> {
    let secret = if c.public && c.secret_hash.is_empty() {
        SecretHash::Public
    } else {
        parse_secret_hash(&c.secret_hash).ok_or_else(|| BadSecretHash(c.id.clone()))?
    };
    let audience = if c.audience.is_empty() {
        Audience::One(config.issuer.clone())
    } else {
        Audience::from_list(&c.audience)
    };
    Ok(Client {
        id: c.id.clone(),
        secret,
        grants: c.grants.clone(),
        scopes: c.scopes.clone(),
        default_scopes: c.default_scopes.clone().unwrap_or_else(|| c.scopes.clone()),
        audience,
        access_ttl: c
            .access_ttl
            .unwrap_or(config.tokens.access_ttl)
            .as_secs()
            .max(1),
        refresh_ttl: c
            .refresh_ttl
            .unwrap_or(config.tokens.refresh_ttl)
            .as_secs()
            .max(1),
        name: c.name.clone().unwrap_or_else(|| c.id.clone()),
        redirect_uris: c.redirect_uris.clone(),
    })
}

fn parse_secret_hash(s: &str) -> Option<SecretHash> {
    if let Some(hex) = s.strip_prefix("sha256:") {
        let mut out = [0u8; 32];
        if hex.len() != 64 {
            return None;
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(SecretHash::Sha256(out))
    } else if s.starts_with("$argon2") {
        argon2::PasswordHash::new(s).ok()?;
        Some(SecretHash::Argon2(s.into()))
    } else {
        None
    }
}

/// A fresh client secret (256 random bits, base64url) and its
/// `sha256:<hex>` hash for the config (`revokd client new`).
pub fn new_client_secret() -> Result<(String, String), RandomError> {
    let secret = crypto::random_secret()?;
    let hash = sha256_secret_hash(&secret);
    Ok((secret, hash))
}

/// A fresh random password and its argon2id PHC string (argon2's default
/// cost, a random salt): dev mode's demo user.
pub fn new_user_password() -> Result<(String, String), Argon2HashError> {
    use argon2::PasswordHasher;
    let password = crypto::random_secret()?;
    let mut salt = [0u8; 16];
    crypto::fill(&mut salt)?;
    let hash = argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| Argon2HashError::Hash(e.to_string()))?
        .to_string();
    Ok((password, hash))
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum Argon2HashError {
    /// No random salt.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// argon2 refused.
    #[error("argon2: {0}")]
    Hash(String),
}

/// `sha256:<hex>` of a secret, the form `secret_hash` takes.
pub fn sha256_secret_hash(secret: &str) -> String {
    format!("sha256:{}", crypto::hex(&crypto::sha256(secret.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(raw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(raw));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        h
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let got = basic_credentials(&basic("my%20client:p%3Ass+word")).unwrap();
        assert_eq!(got, Some(("my client".into(), "p:ss word".into())));
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        for raw in ["nocolon", ":secret", "a:%zz"] {
            let err = basic_credentials(&basic(raw)).unwrap_err();
            assert_eq!(err.code(), "invalid_client", "{raw}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h).unwrap_err().code(), "invalid_client");
    }

    #[test]
    fn two_methods_are_an_invalid_request() {
        let form = OAuthForm::parse(b"client_id=a&client_secret=b").unwrap();
        let err = presented_credentials(&basic("a:b"), &form).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn sha256_hashes_round_trip() {
        let (secret, hash) = new_client_secret().unwrap();
        let Some(SecretHash::Sha256(stored)) = parse_secret_hash(&hash) else {
            panic!("not sha256");
        };
        assert!(sha256_matches(&stored, &secret));
        assert!(!sha256_matches(&stored, "wrong"));
        assert!(parse_secret_hash("sha256:abcd").is_none());
    }

    #[tokio::test]
    async fn argon2_errors_are_mapped_by_the_endpoint() {
        use std::error::Error;
        let busy = OAuthError::from(Argon2Error::Busy);
        assert_eq!(busy.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        let panicked = tokio::task::spawn_blocking(|| panic!("argon2 blew up"))
            .await
            .unwrap_err();
        let internal = OAuthError::from(Argon2Error::Task(panicked));
        assert_eq!(internal.code(), "server_error");
        let cause = internal.source().expect("the argon2 error is kept");
        assert!(cause.downcast_ref::<Argon2Error>().is_some());
        assert!(cause.source().is_some(), "and the join error under it");
    }
}
