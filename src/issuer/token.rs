//! `POST /oauth2/token`: `authorization_code` (with PKCE), `client_credentials`,
//! `password` and `refresh_token` with rotation and reuse detection.
//!
//! Rotation: every refresh returns a new refresh token (same `sid`, new
//! `jti`) and retires the presented one in the store. A retired refresh
//! token presented again is reuse: the answer is `invalid_grant` and the
//! whole session (`sid` rule) is revoked, so the thief's and the victim's
//! tokens all die.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::client_auth::Client;
use super::error::OAuthError;
use super::form::OAuthForm;
use super::jwt::{self, Audience, Claims, TokenKind};
use super::limit::Peer;
use super::no_store::NoStore;
use crate::clock;
use crate::config::GrantType;
use crate::crypto::random_id;
use crate::rule::{KeyKind, RevokedBefore, Rule, RuleKey, TokenKeys};
use crate::store::{CodePresenter, CodeUse, GrantRecord, RefreshUse};
use base64::Engine;

use super::authorize::{CodeGrant, SPENT_CODE_TTL, is_pkce_value};

/// RFC 6749 §5.1 success body.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The access token (a JWT, `typ: at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The refresh token (a JWT, `typ: rt+jwt`), for grants that get one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        NoStore(Json(self)).into_response()
    }
}

/// The handler.
pub async fn token(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<TokenResponse, OAuthError> {
    let client = state.authenticate(peer, &headers, &form).await?;
    let grant = match form.require("grant_type")? {
        "client_credentials" => GrantType::ClientCredentials,
        "password" => GrantType::Password,
        "refresh_token" => GrantType::RefreshToken,
        "authorization_code" => GrantType::AuthorizationCode,
        _ => return Err(OAuthError::UnsupportedGrantType),
    };
    if !client.grants.contains(&grant) {
        return Err(OAuthError::UnauthorizedClient(
            "the client may not use this grant type",
        ));
    }
    let response = match grant {
        GrantType::ClientCredentials => client_credentials(&state, &client, &form)?,
        GrantType::Password => password(&state, peer, &client, &form).await?,
        GrantType::RefreshToken => refresh(&state, &client, &form).await?,
        GrantType::AuthorizationCode => authorization_code(&state, &client, &form).await?,
    };
    state
        .metrics
        .tokens_issued
        .with_label_values(&[grant.as_str(), client.id.as_str()])
        .inc();
    Ok(response)
}

fn client_credentials(
    state: &AppState,
    client: &Client,
    form: &OAuthForm,
) -> Result<TokenResponse, OAuthError> {
    let scope = granted_scope(form.get("scope"), &client.scopes, &client.default_scopes)?;
    // RFC 9068 §2.2: with no resource owner, `sub` names the client.
    // RFC 6749 §4.4.3: no refresh token.
    let resources = Resources::requested(form);
    issue(
        state,
        client,
        &client.id,
        (scope, None),
        &random_id()?,
        resources,
    )
}

async fn password(
    state: &AppState,
    peer: Peer,
    client: &Client,
    form: &OAuthForm,
) -> Result<TokenResponse, OAuthError> {
    let username = form.require("username")?;
    let password = form.require("password")?;
    let scope = granted_scope(form.get("scope"), &client.scopes, &client.default_scopes)?;
    if !state.user_password_ok(peer, username, password).await? {
        return Err(OAuthError::InvalidGrant(
            "invalid resource owner credentials",
        ));
    }
    let refresh_scope = Some(scope.clone());
    let resources = Resources::requested(form);
    issue(
        state,
        client,
        username,
        (scope, refresh_scope),
        &random_id()?,
        resources,
    )
}

/// RFC 6749 §4.1.3: a code of this client, for this redirect URI, with
/// the PKCE verifier of its challenge, once. A code presented again
/// revokes the session it started.
async fn authorization_code(
    state: &AppState,
    client: &Client,
    form: &OAuthForm,
) -> Result<TokenResponse, OAuthError> {
    const BAD: OAuthError = OAuthError::InvalidGrant("invalid authorization code");
    let code = form.require("code")?;
    if code.len() > 256 {
        return Err(BAD);
    }
    // The challenge the verifier hashes to: the store spends the code only
    // for the client, redirect URI and challenge it was issued with.
    let challenge = match form.get("code_verifier") {
        Some(verifier) if is_pkce_value(verifier) => {
            let digest = crate::crypto::sha256(verifier.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        }
        Some(_) => {
            return Err(OAuthError::InvalidGrant(
                "code_verifier is missing or malformed",
            ));
        }
        None => String::new(),
    };
    let presenter = CodePresenter {
        client_id: &client.id,
        redirect_uri: form.get("redirect_uri").unwrap_or_default(),
        challenge: &challenge,
    };
    state.require_synced()?;
    let decode = |json: &str| serde_json::from_str::<CodeGrant>(json).map_err(OAuthError::internal);
    let grant = match state
        .store
        .take_code(code, presenter, SPENT_CODE_TTL)
        .await?
    {
        CodeUse::Fresh(json) => decode(&json)?,
        CodeUse::Reused(json) => return Err(code_reused(state, client, &decode(&json)?).await),
        CodeUse::Mismatch(json) => return Err(mismatch(&decode(&json)?, &presenter)),
        CodeUse::Unknown => return Err(BAD),
    };
    let resources = Resources {
        granted: &grant.audience,
        requested: form.get("resource"),
    };
    let refresh_scope = client
        .grants
        .contains(&GrantType::RefreshToken)
        .then(|| grant.scope.clone());
    let response = issue(
        state,
        client,
        &grant.sub,
        (grant.scope.clone(), refresh_scope),
        &grant.sid,
        resources,
    )?;
    let now = clock::now_secs();
    let record = GrantRecord {
        scope: grant.scope.clone(),
        first_authorized: now,
        last_refreshed: now,
        expires_at: now.saturating_add(client.refresh_ttl.max(client.access_ttl)),
    };
    if let Err(error) = state
        .store
        .record_grant(&grant.sub, &client.id, &record)
        .await
    {
        let error = crate::error::Chain(&error);
        tracing::warn!(%error, client_id = %client.id, "recording a connected app");
    }
    Ok(response)
}

/// Why a code issued for `grant` is not `presenter`'s to spend.
fn mismatch(grant: &CodeGrant, presenter: &CodePresenter<'_>) -> OAuthError {
    if grant.client_id != presenter.client_id {
        OAuthError::InvalidGrant("invalid authorization code")
    } else if grant.redirect_uri != presenter.redirect_uri {
        OAuthError::InvalidGrant("redirect_uri does not match the authorization request")
    } else if grant.code_challenge.is_none() {
        OAuthError::InvalidGrant("no code_challenge was sent")
    } else if presenter.challenge.is_empty() {
        OAuthError::InvalidGrant("code_verifier is missing or malformed")
    } else {
        OAuthError::InvalidGrant("code_verifier does not match")
    }
}

/// A code presented twice: the session it started dies (RFC 6749 §4.1.2).
async fn code_reused(state: &AppState, client: &Client, grant: &CodeGrant) -> OAuthError {
    let rule = Rule {
        key: RuleKey::Sid(grant.sid.clone()),
        revoked_before: RevokedBefore::All,
        expires_at: clock::now_secs().saturating_add(client.access_ttl.max(client.refresh_ttl)),
    };
    if let Err(error) = state.store.revoke(rule).await {
        return error.into();
    }
    state
        .metrics
        .revocations
        .with_label_values(&[KeyKind::Sid.as_str(), "code_reuse"])
        .inc();
    tracing::warn!(client_id = %client.id, "authorization code reused: its session revoked");
    OAuthError::InvalidGrant("authorization code already used: its tokens are revoked")
}

async fn refresh(
    state: &AppState,
    client: &Client,
    form: &OAuthForm,
) -> Result<TokenResponse, OAuthError> {
    const BAD: OAuthError = OAuthError::InvalidGrant("invalid refresh token");
    let presented = form.require("refresh_token")?;
    let Some((_, old)) = state.verify(presented, Some(TokenKind::Refresh)) else {
        return Err(BAD);
    };
    // Another client's refresh token changes nothing.
    if old.client_id != client.id {
        return Err(BAD);
    }
    state.require_synced()?;
    // The session's user must still exist (password and, later,
    // authorization-code sessions are a user's).
    if old.sub != client.id && !state.users.contains_key(&old.sub) {
        return Err(OAuthError::InvalidGrant("the user no longer exists"));
    }
    let now = clock::now_secs();
    // The session, user and client rules (a `jti` key no rule can have,
    // since rule values are never empty, leaves the token's own out).
    let session = crate::rule::TokenKeys {
        jti: "",
        ..old.token_keys()
    };
    if state.denylist.is_revoked(&session, now).is_some() {
        return Err(BAD);
    }
    // A `jti:` rule on a refresh token is its retirement (or a revocation of
    // that token alone): the one mark of a rotation that Redis replicates,
    // snapshots and restores like every rule.
    let retired = state
        .denylist
        .get(&RuleKey::Jti(old.jti.clone()), now)
        .is_some();
    // The session keeps only the scopes the client still has.
    let allowed: Vec<String> = old
        .scope
        .split(' ')
        .filter(|s| !s.is_empty() && client.scopes.iter().any(|held| held == s))
        .map(str::to_owned)
        .collect();
    let scope = granted_scope(form.get("scope"), &allowed, &allowed)?;
    // RFC 8707 §2.2: the grant's resources, narrowed by the request's;
    // refused here, before the token is claimed, when it may not reach them.
    let resources = Resources {
        granted: &old.resource,
        requested: form.get("resource"),
    };
    resources.audience(client)?;
    let ttl = Duration::from_secs(old.exp.saturating_sub(now).max(1));
    // Claim, sign, confirm, retire, answer (see `RefreshUse`): an attempt
    // whose answer was lost before the confirm can be retried; one that was
    // confirmed cannot. A retired token is reuse whatever its claim says
    // (Redis lost the claim and the restored rule remains, or a reuse whose
    // session revocation failed is presented again).
    let attempt = random_id()?;
    let found = state.store.claim_refresh(&old.jti, &attempt, ttl).await?;
    if found == RefreshUse::Reused || retired {
        return Err(reuse(state, client, &old, now).await);
    }
    // RFC 6749 §6: the new refresh token keeps the presented one's scope
    // (less what the client lost since) and its resources; only the access
    // token is narrowed.
    let response = issue(
        state,
        client,
        &old.sub,
        (scope, Some(allowed.join(" "))),
        &old.sid,
        resources,
    )?;
    if !state.store.confirm_refresh(&old.jti, &attempt).await? {
        // A concurrent presentation of the same token took the claim over.
        return Err(OAuthError::InvalidGrant(
            "refresh token already being rotated by another request",
        ));
    }
    // The rotation is answered from here on (the confirmed claim already
    // makes a replay reuse); the retirement rule is the copy that survives
    // Redis losing its data, so its failure is logged, not answered 503.
    let retirement = Rule {
        key: RuleKey::Jti(old.jti.clone()),
        revoked_before: RevokedBefore::All,
        expires_at: old.exp,
    };
    if let Err(error) = state.store.revoke(retirement).await {
        let error = crate::error::Chain(&error);
        tracing::warn!(%error, client_id = %client.id, "retiring a rotated refresh token");
    }
    // A connected app's record follows its latest refresh token.
    let record = GrantRecord {
        scope: allowed.join(" "),
        first_authorized: now,
        last_refreshed: now,
        expires_at: now.saturating_add(client.refresh_ttl),
    };
    if let Err(error) = state.store.touch_grant(&old.sub, &client.id, &record).await {
        let error = crate::error::Chain(&error);
        tracing::warn!(%error, client_id = %client.id, "updating a connected app");
    }
    Ok(response)
}

/// A retired refresh token presented again: the session dies (RFC 9700
/// §4.14.2), the thief's tokens and the victim's alike.
async fn reuse(state: &AppState, client: &Client, old: &Claims, now: u64) -> OAuthError {
    state.metrics.refresh_reuse_detected.inc();
    let rule = Rule {
        key: RuleKey::Sid(old.sid.clone()),
        revoked_before: RevokedBefore::All,
        expires_at: now.saturating_add(client.access_ttl.max(client.refresh_ttl)),
    };
    if let Err(error) = state.store.revoke(rule).await {
        return error.into();
    }
    state
        .metrics
        .revocations
        .with_label_values(&[KeyKind::Sid.as_str(), "reuse"])
        .inc();
    tracing::warn!(client_id = %client.id, "refresh token reuse: session revoked");
    OAuthError::InvalidGrant("refresh token reused: the session is revoked")
}

/// The resources (RFC 8707) a grant is bound to, and the one a token
/// request names.
#[derive(Debug, Clone, Copy)]
struct Resources<'a> {
    /// The grant's, from the authorization request or the refresh token
    /// (empty: none named, the client's whole audience).
    granted: &'a [String],
    /// The token request's `resource`.
    requested: Option<&'a str>,
}

impl<'a> Resources<'a> {
    /// A grant bound to no resource, narrowed by the request's `resource`.
    fn requested(form: &'a OAuthForm) -> Resources<'a> {
        Resources {
            granted: &[],
            requested: form.get("resource"),
        }
    }

    /// The access token's audience: the granted resources the client still
    /// holds (all its audience when none were granted), narrowed to the
    /// requested one, which must be among them.
    fn audience(self, client: &Client) -> Result<Audience, OAuthError> {
        if self.granted.is_empty() && self.requested.is_none() {
            return Ok(client.audience.clone());
        }
        let held: Vec<String> = if self.granted.is_empty() {
            client.audience.as_slice().to_vec()
        } else {
            self.granted
                .iter()
                .filter(|resource| client.audience.contains(resource))
                .cloned()
                .collect()
        };
        let audience = match self.requested {
            None => held,
            Some(resource) if held.iter().any(|h| h == resource) => vec![resource.to_owned()],
            Some(_) => {
                return Err(OAuthError::InvalidTarget(
                    "the resource is not one this grant may access",
                ));
            }
        };
        if audience.is_empty() {
            return Err(OAuthError::InvalidTarget(
                "the client may no longer access the resource it was granted",
            ));
        }
        Ok(Audience::from_list(&audience))
    }
}

/// Signs an access token with `scope` for `resources` (and a refresh token
/// with `refresh_scope`, when given, bound to the same resources) for `sub`
/// in session `sid`, unless a rule already revokes tokens for its keys (a
/// disabled client, a revoked user).
fn issue(
    state: &AppState,
    client: &Client,
    sub: &str,
    (scope, refresh_scope): (String, Option<String>),
    sid: &str,
    resources: Resources<'_>,
) -> Result<TokenResponse, OAuthError> {
    let audience = resources.audience(client)?;
    let now = clock::now_secs();
    let jti = random_id()?;
    let keys = TokenKeys {
        jti: &jti,
        sid: Some(sid),
        sub: Some(sub),
        client_id: &client.id,
        iat: now,
    };
    if let Some(revoked) = state.denylist.is_revoked(&keys, now) {
        return Err(match revoked.kind {
            KeyKind::Client => OAuthError::UnauthorizedClient("the client is disabled"),
            _ => OAuthError::InvalidGrant("tokens for this grant are revoked"),
        });
    }
    let issuer = &state.config.issuer;
    let access = Claims {
        iss: issuer.clone(),
        sub: sub.to_owned(),
        aud: audience,
        client_id: client.id.clone(),
        scope,
        iat: now,
        exp: now.saturating_add(client.access_ttl),
        nbf: None,
        jti,
        sid: sid.to_owned(),
        resource: Vec::new(),
    };
    let access_token = sign(state, TokenKind::Access, &access)?;
    let refresh_token = match refresh_scope {
        Some(refresh_scope) => {
            let refresh = Claims {
                aud: Audience::One(issuer.clone()),
                scope: refresh_scope,
                exp: now.saturating_add(client.refresh_ttl),
                jti: random_id()?,
                resource: resources.granted.to_vec(),
                ..access.clone()
            };
            Some(sign(state, TokenKind::Refresh, &refresh)?)
        }
        None => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: client.access_ttl,
        scope: access.scope,
        refresh_token,
    })
}

fn sign(state: &AppState, kind: TokenKind, claims: &Claims) -> Result<String, OAuthError> {
    jwt::sign(&state.keys, kind, claims).map_err(OAuthError::internal)
}

/// RFC 6749 §3.3: the requested scopes must all be allowed; none requested
/// means the defaults. The result keeps the request's order, deduplicated.
pub fn granted_scope(
    requested: Option<&str>,
    allowed: &[String],
    defaults: &[String],
) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(defaults.join(" "));
    };
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ') {
        let valid = !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid || !allowed.iter().any(|a| a == s) {
            return Err(OAuthError::InvalidScope);
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok(granted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_must_be_a_subset() {
        let allowed = vec!["read".to_owned(), "write".to_owned()];
        let defaults = vec!["read".to_owned()];
        assert_eq!(granted_scope(None, &allowed, &defaults).unwrap(), "read");
        assert_eq!(
            granted_scope(Some("write read write"), &allowed, &defaults).unwrap(),
            "write read"
        );
        for bad in ["admin", "read  write", "read\"", ""] {
            assert_eq!(
                granted_scope(Some(bad), &allowed, &defaults)
                    .unwrap_err()
                    .code(),
                "invalid_scope",
                "{bad:?}"
            );
        }
    }
}
