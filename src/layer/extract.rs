//! [`VerifiedToken`]: the claims the layer verified, as a request extension
//! and an axum extractor; [`VerifiedToken::require_scope`] for per-handler
//! scopes.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};

use crate::verify::Claims;

/// The claims of the request's verified access token, put in the request's
/// extensions by [`RequireToken`](super::RequireToken). Derefs to
/// [`Claims`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct VerifiedToken(pub Arc<Claims>);

impl Deref for VerifiedToken {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl VerifiedToken {
    /// `Ok` when the token carries `scope`; otherwise a 403
    /// `insufficient_scope` response to return from the handler.
    pub fn require_scope(&self, scope: &str) -> Result<(), InsufficientScope> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(InsufficientScope {
                scope: scope.to_owned(),
            })
        }
    }
}

/// A 403 `insufficient_scope` refusal (RFC 6750 §3.1) naming the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsufficientScope {
    /// The scope the request needed.
    pub scope: String,
}

impl IntoResponse for InsufficientScope {
    fn into_response(self) -> Response {
        let scope: String = self
            .scope
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
            .collect();
        let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
        let mut response = StatusCode::FORBIDDEN.into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The extractor found no [`VerifiedToken`]: the route is not behind
/// [`RequireToken`](super::RequireToken). A server bug, answered 500 (and
/// logged) so it is noticed, never served as if authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingToken;

impl IntoResponse for MissingToken {
    fn into_response(self) -> Response {
        tracing::error!("VerifiedToken extracted on a route without the RequireToken layer");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = MissingToken;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<VerifiedToken>()
            .cloned()
            .ok_or(MissingToken)
    }
}
