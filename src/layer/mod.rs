//! A tower middleware for resource servers: [`RequireToken`] verifies the
//! bearer token of every request with a [`Verifier`] and puts its claims in
//! the request's extensions ([`VerifiedToken`], also an axum extractor).
//!
//! Laid out like tower's `timeout`: this file is the [`Service`],
//! [`RequireTokenLayer`] is in `layer.rs`, [`ResponseFuture`] in
//! `future.rs`, the extractor and the scope helper in `extract.rs`.
//!
//! A refusal is a response, never an `Err` (RFC 6750 §3):
//!
//! | case | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no `Authorization: Bearer` | 401 | `Bearer realm="…"` (no error attribute) |
//! | several `Authorization` headers | 400 | `Bearer realm="…", error="invalid_request"` |
//! | a token that fails [`Verifier`] (revoked included) | 401 | `Bearer realm="…", error="invalid_token", error_description="…"` |
//! | a scope the layer requires is missing | 403 | `Bearer realm="…", error="insufficient_scope", scope="…"` |
//! | denylist stale past its bound, [`StalePolicy::FailClosed`] | 503 | none (`Retry-After: 1`) |
//! | denylist never synced (any policy) | 503 | none (`Retry-After: 1`) |
//!
//! Refusals have an empty body (`ResBody::default()`), so the layer wraps
//! any service whose response body has a default: axum's, hyper's, tonic's.
//!
//! # The request path
//!
//! A token seen before costs a keyed XXH3 of the token, a map lookup and a
//! comparison with the token bytes the verifier's cache holds (it keeps raw
//! tokens until their `exp` or eviction: see [`Verifier`]) plus the
//! denylist check; a new one its signature check, inline.
//! Only a token whose `kid` is unknown makes the future wait for a
//! (rate-limited) refetch of the issuer's keys.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use tower::Service;

use crate::clock;
use crate::jwt::{self, BearerError};
use crate::subscriber::Subscriber;
use crate::verify::{Claims, Verifier, VerifyError};

mod extract;
mod future;
// The layer of the `layer` module, named like tower's `timeout/layer.rs`.
#[allow(clippy::module_inception)]
mod layer;

pub use extract::{InsufficientScope, MissingToken, VerifiedToken};
pub use future::ResponseFuture;
pub use layer::RequireTokenLayer;

/// Default bound on the denylist's staleness before [`StalePolicy`] applies.
pub const DEFAULT_STALENESS_BOUND: Duration = Duration::from_secs(60);

/// What requests get while the denylist is stale past its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StalePolicy {
    /// Keep serving with the last known denylist (the default): an outage
    /// of Redis does not take the API down.
    #[default]
    FailOpen,
    /// 503 for every request with an otherwise valid token: no request is
    /// served on a denylist that may miss revocations.
    FailClosed,
}

/// Something that knows how stale the denylist is: the [`Subscriber`]
/// feeding it, or a test double.
pub trait Freshness: Send + Sync + 'static {
    /// Time since the denylist last proved it was in sync.
    fn staleness(&self) -> Duration;

    /// Whether the denylist ever completed a sync (one atomic load: it is
    /// asked on every request).
    fn has_synced(&self) -> bool {
        self.staleness() != Duration::MAX
    }
}

impl Freshness for Subscriber {
    fn staleness(&self) -> Duration {
        Subscriber::staleness(self)
    }

    fn has_synced(&self) -> bool {
        Subscriber::has_synced(self)
    }
}

/// Everything a [`RequireToken`] service shares with its clones.
pub(crate) struct Shared {
    pub(crate) verifier: Verifier,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) freshness: Option<(Arc<dyn Freshness>, Duration)>,
    pub(crate) policy: StalePolicy,
    pub(crate) challenges: Challenges,
}

/// The `WWW-Authenticate` values, built once.
pub(crate) struct Challenges {
    no_token: HeaderValue,
    invalid_request: HeaderValue,
    insufficient_scope: HeaderValue,
    /// `realm="…"`, and `resource_metadata="…"` when configured.
    realm: String,
}

impl Challenges {
    /// The challenges for `realm`, the scopes the layer requires and, when
    /// given, the RFC 9728 metadata URL (`resource_metadata`).
    pub(crate) fn new(
        realm: &str,
        required_scopes: &[String],
        resource_metadata: Option<&str>,
    ) -> Challenges {
        let mut realm = format!("realm=\"{}\"", quoted_safe(realm));
        if let Some(url) = resource_metadata {
            realm.push_str(&format!(", resource_metadata=\"{}\"", quoted_safe(url)));
        }
        let scope = required_scopes
            .iter()
            .map(|s| quoted_safe(s))
            .collect::<Vec<_>>()
            .join(" ");
        let value = |s: String| {
            HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
        };
        Challenges {
            no_token: value(format!("Bearer {realm}")),
            invalid_request: value(format!("Bearer {realm}, error=\"invalid_request\"")),
            insufficient_scope: value(format!(
                "Bearer {realm}, error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            realm,
        }
    }

    fn invalid_token(&self, error: &VerifyError) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "Bearer {}, error=\"invalid_token\", error_description=\"{}\"",
            self.realm,
            error.description()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
    }
}

/// Keeps the characters a quoted-string and a header value may carry
/// (visible ASCII and space, no `"` or `\`).
fn quoted_safe(s: &str) -> String {
    s.chars()
        .filter(|c| (c.is_ascii_graphic() || *c == ' ') && *c != '"' && *c != '\\')
        .collect()
}

/// What the layer decided for one request.
pub(crate) enum Outcome {
    /// Serve it with these claims.
    Allow(Arc<Claims>),
    /// Answer this instead.
    Reject(Refusal),
}

/// A refusal, turned into a response of the inner service's body type.
#[derive(Debug)]
pub(crate) enum Refusal {
    NoToken,
    InvalidRequest,
    InvalidToken(VerifyError),
    InsufficientScope,
    Stale,
}

impl Shared {
    /// Scopes and freshness, once the token verified.
    pub(crate) fn admit(&self, verified: Result<Arc<Claims>, VerifyError>) -> Outcome {
        let claims = match verified {
            Ok(claims) => claims,
            Err(error) => {
                tracing::debug!(%error, "bearer token refused");
                return Outcome::Reject(Refusal::InvalidToken(error));
            }
        };
        if !self.required_scopes.iter().all(|s| claims.has_scope(s)) {
            return Outcome::Reject(Refusal::InsufficientScope);
        }
        if let Some((freshness, bound)) = &self.freshness {
            // Never synced: nothing is known of revocations, so every token
            // is unknown whatever the policy; past the bound, the policy.
            let stale = !freshness.has_synced()
                || (self.policy == StalePolicy::FailClosed && freshness.staleness() > *bound);
            if stale {
                return Outcome::Reject(Refusal::Stale);
            }
        }
        Outcome::Allow(claims)
    }

    pub(crate) fn response<B: Default>(&self, refusal: Refusal) -> Response<B> {
        let mut response = Response::new(B::default());
        let (status, challenge) = match &refusal {
            Refusal::NoToken => (StatusCode::UNAUTHORIZED, self.challenges.no_token.clone()),
            Refusal::InvalidRequest => (
                StatusCode::BAD_REQUEST,
                self.challenges.invalid_request.clone(),
            ),
            Refusal::InvalidToken(error) => (
                StatusCode::UNAUTHORIZED,
                self.challenges.invalid_token(error),
            ),
            Refusal::InsufficientScope => (
                StatusCode::FORBIDDEN,
                self.challenges.insufficient_scope.clone(),
            ),
            Refusal::Stale => {
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        };
        *response.status_mut() = status;
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        response
    }
}

/// The bearer token of a request ([`jwt::bearer_token`]), as the layer
/// answers its failures.
fn bearer_token<B>(request: &Request<B>) -> Result<Option<&str>, Refusal> {
    jwt::bearer_token(request.headers()).map_err(|error| match error {
        BearerError::Several => Refusal::InvalidRequest,
        BearerError::Malformed => Refusal::InvalidToken(VerifyError::Malformed),
    })
}

/// The middleware: verifies the bearer token, then calls the inner service
/// with a [`VerifiedToken`] in the request's extensions.
pub struct RequireToken<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for RequireToken<S> {
    fn clone(&self) -> Self {
        RequireToken {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RequireToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireToken")
            .field("inner", &self.inner)
            .field("verifier", &self.shared.verifier)
            .field("required_scopes", &self.shared.required_scopes)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

// === impl RequireToken ===

impl<S> RequireToken<S> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> RequireToken<S> {
        RequireToken { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireToken<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let token = match bearer_token(&request) {
            Ok(Some(token)) => token,
            Ok(None) => return ResponseFuture::reject(shared.response(Refusal::NoToken)),
            Err(refusal) => return ResponseFuture::reject(shared.response(refusal)),
        };
        let verified = shared.verifier.verify_at(token, clock::now_secs());
        if matches!(verified, Err(VerifyError::UnknownKid)) && shared.verifier.can_refetch() {
            // The keys may have rotated: wait for a refetch. The ready
            // service goes with the request; this one takes a clone.
            let token = token.to_owned();
            let clone = self.inner.clone();
            let service = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture::refetch(self.shared.clone(), token, service, request);
        }
        match shared.admit(verified) {
            Outcome::Allow(claims) => {
                request.extensions_mut().insert(VerifiedToken(claims));
                ResponseFuture::inner(self.inner.call(request))
            }
            Outcome::Reject(refusal) => ResponseFuture::reject(shared.response(refusal)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[&str]) -> Request<()> {
        let mut builder = Request::builder();
        for h in headers {
            builder = builder.header(http::header::AUTHORIZATION, *h);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn bearer_tokens_are_read_per_rfc_6750() {
        assert_eq!(bearer_token(&request(&[])).unwrap(), None);
        assert_eq!(bearer_token(&request(&["Basic abc"])).unwrap(), None);
        assert_eq!(bearer_token(&request(&["Bearer"])).unwrap(), None);
        assert_eq!(
            bearer_token(&request(&["Bearer abc"])).unwrap(),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&request(&["bEARER  abc "])).unwrap(),
            Some("abc")
        );
        assert!(matches!(
            bearer_token(&request(&["Bearer a", "Bearer b"])),
            Err(Refusal::InvalidRequest)
        ));
    }

    #[test]
    fn challenges_never_carry_unsafe_characters() {
        let r = Challenges::new("a\"b\\c\nd", &["read".into(), "x\"y".into()], None);
        assert_eq!(r.no_token, "Bearer realm=\"abcd\"");
        assert_eq!(
            r.insufficient_scope,
            "Bearer realm=\"abcd\", error=\"insufficient_scope\", scope=\"read xy\""
        );
    }

    #[test]
    fn every_challenge_names_the_resource_metadata_when_configured() {
        let url = "https://api.test/.well-known/oauth-protected-resource";
        let r = Challenges::new("api", &["read".into()], Some(url));
        let named = format!("Bearer realm=\"api\", resource_metadata=\"{url}\"");
        assert_eq!(r.no_token, named.as_str());
        assert_eq!(
            r.invalid_request,
            format!("{named}, error=\"invalid_request\"").as_str()
        );
        assert!(r.insufficient_scope.to_str().unwrap().starts_with(&named));
        let invalid = r.invalid_token(&VerifyError::Expired);
        assert!(invalid.to_str().unwrap().starts_with(&named), "{invalid:?}");
    }
}
