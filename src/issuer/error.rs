//! One error type for every issuer endpoint, and the one place that turns it
//! into an HTTP response: RFC 6749 §5.2 JSON, marked uncacheable
//! ([`super::no_store`]).
//!
//! 5xx bodies stay generic; their cause, with its whole chain, is logged
//! here and only here (never a token or a secret: no variant carries one).

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::no_store::NoStore;
use crate::crypto::RandomError;
use crate::error::{BoxError, Chain};
use crate::store::StoreError;

/// Every way an issuer request can fail. The `Display` form starts with the
/// RFC 6749 error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// 400 `invalid_request`: missing, repeated or malformed parameters.
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// 401 `invalid_client`: client authentication failed.
    #[error("invalid_client")]
    InvalidClient,
    /// 400 `invalid_grant`: a bad, expired, revoked or foreign grant.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// 400 `unauthorized_client`: the client may not use this grant, or is
    /// disabled.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(&'static str),
    /// 400 `unsupported_grant_type`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// 400 `invalid_client_metadata` (RFC 7591 §3.2.2): a registration
    /// asked for something not offered.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// 400 `invalid_redirect_uri` (RFC 7591 §3.2.2).
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// 400 `invalid_scope`.
    #[error("invalid_scope")]
    InvalidScope,
    /// 400 `invalid_target` (RFC 8707 §2): a `resource` the client or the
    /// grant may not reach.
    #[error("invalid_target: {0}")]
    InvalidTarget(&'static str),
    /// 401 `invalid_token` (RFC 6750): the admin API's bearer token is bad.
    #[error("invalid_token")]
    InvalidToken,
    /// 403 `insufficient_scope` (RFC 6750).
    #[error("insufficient_scope")]
    InsufficientScope,
    /// 413: the body is over the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 404: no such rule (admin API) or route.
    #[error("not_found")]
    NotFound,
    /// 503 `temporarily_unavailable`: the revocation store failed (the
    /// source says how).
    #[error("temporarily_unavailable")]
    Store(#[from] StoreError),
    /// 429 `slow_down`: the client's rate limit (see [`super::limit`]);
    /// answered with `Retry-After`, in seconds.
    #[error("slow_down")]
    SlowDown(std::time::Duration),
    /// 503 `temporarily_unavailable`: too many requests in flight, or one
    /// took longer than `limits.request_timeout`; answered with
    /// `Retry-After: 1`.
    #[error("temporarily_unavailable: overloaded")]
    Overloaded,
    /// 503 `temporarily_unavailable`: as many registered clients live as
    /// `registration.max_clients` allows; answered with `Retry-After: 60`.
    #[error("temporarily_unavailable: the client registry is full")]
    RegistryFull,
    /// 500 `server_error`: a bug or a broken host; the cause (the source)
    /// is logged. Made with [`OAuthError::internal`].
    #[error("server_error")]
    Internal(#[source] BoxError),
}

impl From<RandomError> for OAuthError {
    fn from(error: RandomError) -> Self {
        OAuthError::internal(error)
    }
}

/// The error code a response carried, left in the response's extensions so
/// the metrics middleware can count it.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl OAuthError {
    /// A shorthand for [`OAuthError::InvalidRequest`].
    pub fn invalid_request(why: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::InvalidRequest(why.into())
    }

    /// A shorthand for [`OAuthError::Internal`]: any error, or a message
    /// (`OAuthError::internal("handler panicked")`).
    pub fn internal(cause: impl Into<BoxError>) -> OAuthError {
        OAuthError::Internal(cause.into())
    }

    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) | OAuthError::PayloadTooLarge => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            OAuthError::InvalidToken => "invalid_token",
            OAuthError::InsufficientScope => "insufficient_scope",
            OAuthError::NotFound => "not_found",
            OAuthError::Store(_) | OAuthError::Overloaded | OAuthError::RegistryFull => {
                "temporarily_unavailable"
            }
            OAuthError::SlowDown(_) => "slow_down",
            OAuthError::Internal(_) => "server_error",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            OAuthError::InsufficientScope => StatusCode::FORBIDDEN,
            OAuthError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::NotFound => StatusCode::NOT_FOUND,
            OAuthError::Store(_) | OAuthError::Overloaded | OAuthError::RegistryFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            OAuthError::SlowDown(_) => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn description(&self) -> Option<&str> {
        match self {
            OAuthError::InvalidRequest(why) => Some(why),
            OAuthError::InvalidClient => Some("client authentication failed"),
            OAuthError::InvalidGrant(why)
            | OAuthError::UnauthorizedClient(why)
            | OAuthError::InvalidTarget(why) => Some(why),
            OAuthError::InvalidClientMetadata(why) | OAuthError::InvalidRedirectUri(why) => {
                Some(why)
            }
            OAuthError::UnsupportedGrantType => Some("unsupported grant_type"),
            OAuthError::InvalidScope => Some("the requested scope is not allowed"),
            OAuthError::InvalidToken => Some("a valid bearer access token is required"),
            OAuthError::InsufficientScope => Some("the token lacks the required scope"),
            OAuthError::PayloadTooLarge => Some("request body too large"),
            OAuthError::NotFound => Some("not found"),
            OAuthError::Store(_) => Some("revocation store unavailable, retry later"),
            OAuthError::SlowDown(_) => Some("rate limit exceeded, retry after Retry-After seconds"),
            OAuthError::Overloaded => Some("server busy, retry later"),
            OAuthError::RegistryFull => {
                Some("the client registry is full, retry once registrations expire")
            }
            OAuthError::Internal(_) => None,
        }
    }
}

/// `text` in the characters RFC 6749 §5.2 allows an `error_description`
/// (printable ASCII but `"` and `\`): a description that quotes the request
/// stays within them, whatever the request held.
fn error_description(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        match &self {
            OAuthError::Store(e) => tracing::warn!(error = %Chain(e), "revocation store failed"),
            OAuthError::Internal(e) => tracing::error!(error = %Chain(&**e), "internal error"),
            _ => tracing::debug!(error = self.code(), "request refused"),
        }
        let description = self.description().map(error_description);
        let body = Body {
            error: self.code(),
            error_description: description.as_deref(),
        };
        let mut response = NoStore((self.status(), Json(body))).into_response();
        let headers = response.headers_mut();
        match self {
            OAuthError::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"revokd\", charset=\"UTF-8\""),
                );
            }
            OAuthError::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"revokd\", error=\"invalid_token\""),
                );
            }
            OAuthError::InsufficientScope => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"revokd\", error=\"insufficient_scope\", scope=\"revokd:admin\"",
                    ),
                );
            }
            OAuthError::SlowDown(wait) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(super::limit::retry_after_secs(wait)),
                );
            }
            OAuthError::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            OAuthError::RegistryFull => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        response.extensions_mut().insert(ErrorCode(self.code()));
        response
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn a_description_keeps_to_the_characters_rfc_6749_allows() {
        let text = error_description("scope \"\\\"é\" is not offered\n");
        assert_eq!(text, "scope '/'?' is not offered?");
        assert!(
            text.chars()
                .all(|c| matches!(c, ' '..='!' | '#'..='[' | ']'..='~'))
        );
    }

    #[tokio::test]
    async fn an_internal_error_keeps_its_cause_out_of_the_body() {
        let error = OAuthError::internal(std::io::Error::other("disk on fire"));
        let cause = error.source().map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("disk on fire"));
        assert_eq!(Chain(&error).to_string(), "server_error: disk on fire");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"error":"server_error"}"#);
    }

    #[test]
    fn a_store_error_keeps_its_cause() {
        let error = OAuthError::from(StoreError::unavailable("not in sync"));
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("revocation store unavailable: not in sync")
        );
    }
}
