//! `POST /oauth2/revoke` (also `/revoke`): RFC 7009 as `docs/contract.md` decides it.
//!
//! 200 with an empty body for a revoked, already revoked, expired, malformed
//! or foreign-issuer token: only tokens whose signature verifies become
//! rules, so the denylist cannot be flooded. A token issued to another client
//! is 400 `invalid_request` and nothing is revoked. `token_type_hint` is
//! ignored: the token's own `typ` says what it is, so a wrong hint never
//! stops the search. A store that cannot keep the rule is 503.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::OAuthError;
use super::form::OAuthForm;
use super::jwt::{Claims, TokenKind};
use super::limit::Peer;
use super::no_store::NoStore;
use crate::clock;
use crate::config::Cascade;
use crate::rule::{RevokedBefore, Rule, RuleKey};

/// The handler.
pub async fn revoke(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let client = state.authenticate(peer, &headers, &form).await?;
    if state.client_disabled(&client) {
        return Err(OAuthError::InvalidClient);
    }
    let token = form.require("token")?;
    let Some((kind, claims)) = state.verify(token, None) else {
        return Ok(done());
    };
    if claims.client_id != client.id {
        return Err(OAuthError::invalid_request(
            "the token was not issued to this client",
        ));
    }
    let cascade = match kind {
        TokenKind::Access => state.config.revocation.access_token,
        TokenKind::Refresh => state.config.revocation.refresh_token,
    };
    let rule = rule_for(&claims, cascade, client.access_ttl.max(client.refresh_ttl));
    let kind_label = rule.key.kind();
    state.store.revoke(rule).await?;
    state
        .metrics
        .revocations
        .with_label_values(&[kind_label.as_str(), "revoke"])
        .inc();
    Ok(done())
}

/// The rule that revokes `claims` under `cascade`. A `jti` rule lives as
/// long as the token; a `sid` rule as long as the newest token the session
/// can have (`lifetime` from now).
fn rule_for(claims: &Claims, cascade: Cascade, lifetime: u64) -> Rule {
    match cascade {
        Cascade::Token => Rule {
            key: RuleKey::Jti(claims.jti.clone()),
            revoked_before: RevokedBefore::All,
            expires_at: claims.exp,
        },
        Cascade::Session => Rule {
            key: RuleKey::Sid(claims.sid.clone()),
            revoked_before: RevokedBefore::All,
            expires_at: clock::now_secs().saturating_add(lifetime).max(claims.exp),
        },
    }
}

fn done() -> Response {
    NoStore(StatusCode::OK).into_response()
}
