//! `POST /oauth2/introspect`: RFC 7662, client authentication required.
//!
//! Only access tokens are reported active: a refresh token is never a
//! bearer credential, so introspecting one answers `{"active": false}` and a
//! resource server that introspects what it was handed cannot be fooled by
//! it. An inactive token answers exactly `{"active": false}`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::OAuthError;
use super::form::OAuthForm;
use super::jwt::TokenKind;
use super::limit::Peer;
use super::no_store::NoStore;
use crate::clock;

/// The handler.
pub async fn introspect(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let client = state.authenticate(peer, &headers, &form).await?;
    // Introspection is for confidential clients (resource servers): a
    // public client's id is no credential.
    if state.client_disabled(&client) || client.is_public() {
        return Err(OAuthError::InvalidClient);
    }
    let token = form.require("token")?;
    state.require_synced()?;
    let active = state
        .verify(token, Some(TokenKind::Access))
        .filter(|(_, claims)| {
            state
                .denylist
                .is_revoked(&claims.token_keys(), clock::now_secs())
                .is_none()
        });
    let body = match active {
        None => json!({"active": false}),
        Some((_, c)) => json!({
            "active": true,
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "aud": c.aud,
            "iss": c.iss,
            "exp": c.exp,
            "iat": c.iat,
            "jti": c.jti,
            "token_type": "Bearer",
        }),
    };
    Ok(NoStore(Json(body)).into_response())
}
