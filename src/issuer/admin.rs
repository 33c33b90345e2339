//! The admin API: rules by key. Every call needs a bearer access token from
//! this issuer, not revoked, with scope `revokd:admin`.
//!
//! - `POST /admin/revocations` `{"key": "sub:alice", "revoked_before": "all" | <iat>, "expires_at": <secs>}`:
//!   add or merge a rule. `revoked_before` defaults to now; `expires_at`
//!   defaults to now + the longest token lifetime, or never (until
//!   re-approved) for an `all` rule on a user, client or user/client: such a
//!   rule also refuses new tokens (a disabled client).
//! - `DELETE /admin/revocations` `{"key": "…"}` or
//!   `DELETE /admin/revocations/{key}`: re-approve (delete the rule).
//! - `GET /admin/revocations/{key}`: the live rule.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::OAuthError;
use super::form::read_body;
use super::jwt::TokenKind;
use super::no_store::NoStore;
use crate::clock;
use crate::rule::{KeyKind, RevokedBefore, Rule, RuleKey};
use crate::store::redis::LATEST_EXPIRY;

/// The scope an admin token must carry.
pub const ADMIN_SCOPE: &str = "revokd:admin";

/// `revoked_before` in JSON: `"all"` or an `iat` bound.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RevokedBeforeJson {
    /// `"all"`.
    Word(AllWord),
    /// Seconds since the epoch.
    At(u64),
}

/// The literal `"all"`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AllWord {
    /// Every token of the key.
    All,
}

impl From<RevokedBeforeJson> for RevokedBefore {
    fn from(v: RevokedBeforeJson) -> Self {
        match v {
            RevokedBeforeJson::Word(AllWord::All) => RevokedBefore::All,
            RevokedBeforeJson::At(t) => RevokedBefore::IssuedAtOrBefore(t),
        }
    }
}

impl From<RevokedBefore> for RevokedBeforeJson {
    fn from(v: RevokedBefore) -> Self {
        match v {
            RevokedBefore::All => RevokedBeforeJson::Word(AllWord::All),
            RevokedBefore::IssuedAtOrBefore(t) => RevokedBeforeJson::At(t),
        }
    }
}

/// `POST /admin/revocations` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    key: String,
    #[serde(default)]
    revoked_before: Option<RevokedBeforeJson>,
    #[serde(default)]
    expires_at: Option<u64>,
}

/// `DELETE /admin/revocations` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleKeyBody {
    key: String,
}

/// A rule as the API shows it.
#[derive(Debug, Serialize)]
pub struct RuleJson {
    key: String,
    revoked_before: RevokedBeforeJson,
    expires_at: u64,
}

impl From<Rule> for RuleJson {
    fn from(rule: Rule) -> Self {
        RuleJson {
            key: rule.key.to_string(),
            revoked_before: rule.revoked_before.into(),
            expires_at: rule.expires_at,
        }
    }
}

/// `POST /admin/revocations`.
pub async fn create(State(state): State<AppState>, req: Request) -> Result<Response, OAuthError> {
    authorize(&state, req.headers())?;
    let body: CreateRule = json_body(req, &state).await?;
    let key = parse_key(&body.key)?;
    let now = clock::now_secs();
    let revoked_before = body
        .revoked_before
        .map(RevokedBefore::from)
        .unwrap_or(RevokedBefore::IssuedAtOrBefore(now));
    let standing = revoked_before == RevokedBefore::All
        && matches!(
            key.kind(),
            KeyKind::Sub | KeyKind::Client | KeyKind::SubClient
        );
    let expires_at = body.expires_at.unwrap_or(if standing {
        LATEST_EXPIRY
    } else {
        now.saturating_add(state.max_token_lifetime)
    });
    if expires_at <= now {
        return Err(OAuthError::invalid_request("expires_at is in the past"));
    }
    // What the rule set can hold exactly, everywhere (Redis, events, every
    // denylist): seconds up to 2106-02-07. Anything past it is refused
    // here rather than stored as something else.
    if expires_at > LATEST_EXPIRY {
        return Err(OAuthError::invalid_request(format!(
            "expires_at must be at most {LATEST_EXPIRY} (2106-02-07)"
        )));
    }
    if let RevokedBefore::IssuedAtOrBefore(bound) = revoked_before
        && bound > LATEST_EXPIRY
    {
        return Err(OAuthError::invalid_request(format!(
            "revoked_before must be \"all\" or at most {LATEST_EXPIRY} (2106-02-07)"
        )));
    }
    let rule = Rule {
        key: key.clone(),
        revoked_before,
        expires_at,
    };
    if locks_out_every_admin(&state, &rule, now) {
        return Err(OAuthError::invalid_request(
            "this rule would refuse every admin client's new tokens; \
             lift it with `revokd rules delete` if one is already in force",
        ));
    }
    state.store.revoke(rule.clone()).await?;
    state
        .metrics
        .revocations
        .with_label_values(&[key.kind().as_str(), "admin"])
        .inc();
    tracing::info!(key = %key, "admin revocation");
    let stored = state.store.get(&key).await?.unwrap_or(rule);
    Ok(NoStore(Json(RuleJson::from(stored))).into_response())
}

/// `GET /admin/revocations/{key}`.
pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<NoStore<Json<RuleJson>>, OAuthError> {
    authorize(&state, &headers)?;
    let key = parse_key(&key)?;
    let rule = state.store.get(&key).await?.ok_or(OAuthError::NotFound)?;
    Ok(NoStore(Json(rule.into())))
}

/// `GET /admin/users/{sub}/apps`: a user's connected apps.
pub async fn user_apps(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(sub): Path<String>,
) -> Result<NoStore<Json<serde_json::Value>>, OAuthError> {
    authorize(&state, &headers)?;
    let apps = state.store.grants(&sub, clock::now_secs()).await?;
    Ok(NoStore(Json(listing("client_id", apps))))
}

/// `GET /admin/clients/{client_id}/users`: who connected a client.
pub async fn client_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<NoStore<Json<serde_json::Value>>, OAuthError> {
    authorize(&state, &headers)?;
    let users = state
        .store
        .grants_of_client(&client_id, clock::now_secs())
        .await?;
    Ok(NoStore(Json(listing("sub", users))))
}

/// `[{"<name>": …, "scope", "first_authorized", "last_refreshed", "expires_at"}]`.
fn listing(name: &str, records: Vec<(String, crate::store::GrantRecord)>) -> serde_json::Value {
    records
        .into_iter()
        .map(|(id, record)| {
            serde_json::json!({
                name: id,
                "scope": record.scope,
                "first_authorized": record.first_authorized,
                "last_refreshed": record.last_refreshed,
                "expires_at": record.expires_at,
            })
        })
        .collect()
}

/// `DELETE /admin/revocations/{key}`.
pub async fn delete_by_path(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<NoStore<StatusCode>, OAuthError> {
    authorize(&state, &headers)?;
    remove(&state, &key).await
}

/// `DELETE /admin/revocations` with `{"key": …}`.
pub async fn delete_by_body(
    State(state): State<AppState>,
    req: Request,
) -> Result<NoStore<StatusCode>, OAuthError> {
    authorize(&state, req.headers())?;
    let body: RuleKeyBody = json_body(req, &state).await?;
    remove(&state, &body.key).await
}

async fn remove(state: &AppState, key: &str) -> Result<NoStore<StatusCode>, OAuthError> {
    let key = parse_key(key)?;
    if state.store.remove(&key).await? {
        tracing::info!(key = %key, "admin re-approval");
        Ok(NoStore(StatusCode::NO_CONTENT))
    } else {
        Err(OAuthError::NotFound)
    }
}

/// Whether, with `rule` added, no client holding the admin scope could get
/// a working token any more (each is disabled, or its own tokens revoked for
/// longer than a minute ahead).
fn locks_out_every_admin(state: &AppState, rule: &Rule, now: u64) -> bool {
    let refuses_new = |candidate: &Rule| match candidate.revoked_before {
        RevokedBefore::All => true,
        RevokedBefore::IssuedAtOrBefore(bound) => bound > now.saturating_add(60),
    };
    let admin_keys = |id: &str| {
        [
            RuleKey::Client(id.to_owned()),
            RuleKey::Sub(id.to_owned()),
            RuleKey::SubClient {
                sub: id.to_owned(),
                client: id.to_owned(),
            },
        ]
    };
    let mut admins = state
        .clients
        .iter()
        .filter(|client| client.scopes.iter().any(|scope| scope == ADMIN_SCOPE))
        .peekable();
    if admins.peek().is_none() {
        return false;
    }
    admins.all(|client| {
        admin_keys(&client.id).iter().any(|key| {
            (key == &rule.key && refuses_new(rule))
                || state
                    .denylist
                    .get(key, now)
                    .is_some_and(|held| refuses_new(&held))
        })
    })
}

fn parse_key(key: &str) -> Result<RuleKey, OAuthError> {
    key.parse()
        .map_err(|e: crate::rule::RuleError| OAuthError::invalid_request(e.to_string()))
}

/// The bearer token must be an active access token of ours with the admin
/// scope.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), OAuthError> {
    // Before the first sync a revoked admin token would look live.
    state.require_synced()?;
    let token = crate::jwt::bearer_token(headers)
        .ok()
        .flatten()
        .ok_or(OAuthError::InvalidToken)?;
    let (_, claims) = state
        .verify(token, Some(TokenKind::Access))
        .ok_or(OAuthError::InvalidToken)?;
    if state
        .denylist
        .is_revoked(&claims.token_keys(), clock::now_secs())
        .is_some()
    {
        return Err(OAuthError::InvalidToken);
    }
    if !claims.has_scope(ADMIN_SCOPE) {
        return Err(OAuthError::InsufficientScope);
    }
    Ok(())
}

async fn json_body<T: serde::de::DeserializeOwned>(
    req: Request,
    state: &AppState,
) -> Result<T, OAuthError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(OAuthError::invalid_request(
            "content type must be application/json",
        ));
    }
    let body = read_body(req, state).await?;
    serde_json::from_slice(&body)
        .map_err(|e| OAuthError::invalid_request(format!("malformed JSON body: {e}")))
}
