//! `POST /oauth2/register`: RFC 7591 dynamic client registration, for
//! public clients only (an MCP client, a native app): no secret, PKCE,
//! `authorization_code` and `refresh_token`. Off unless
//! `[registration] enabled`; on in dev mode.
//!
//! Registration is unauthenticated, so it is bounded: a body of at most the
//! issuer's body limit, at most 10 redirect URIs of at most 512 bytes, a
//! name of at most 100 characters, each request charged to its peer's
//! bucket, and a registration lives `client_ttl`. Registered clients are
//! kept in the store, so every issuer sees them; ids start with `dyn-`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::client_auth::Client;
use super::error::OAuthError;
use super::limit::Peer;
use crate::clock;
use crate::config::{ClientConfig, GrantType, redirect_uri_is_usable};
use crate::crypto;

/// Every registered client's id starts with this: no configured client's
/// id is looked up in the store.
pub const ID_PREFIX: &str = "dyn-";

/// How long a registered client read from the store is reused locally.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// Registered clients remembered locally at most.
const CACHE_MAX: usize = 4096;

/// Registered clients read lately, each reused for a minute.
#[derive(Default)]
pub struct RecentClients(Mutex<HashMap<String, (Arc<Client>, Instant)>>);

impl RecentClients {
    /// The client, if read within the last minute.
    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.get(id)
            .filter(|(_, at)| at.elapsed() < CACHE_FOR)
            .map(|(client, _)| client.clone())
    }

    /// Remembers `client`.
    pub fn put(&self, id: &str, client: Arc<Client>) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() >= CACHE_MAX {
            held.retain(|_, (_, at)| at.elapsed() < CACHE_FOR);
            if held.len() >= CACHE_MAX {
                held.clear();
            }
        }
        held.insert(id.to_owned(), (client, Instant::now()));
    }
}

/// RFC 7591 §2: the metadata a client may send (others are ignored).
#[derive(Debug, Deserialize)]
struct Metadata {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
}

/// The handler.
pub async fn register(State(state): State<AppState>, peer: Peer, request: Request) -> Response {
    match registered(&state, peer, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn registered(
    state: &AppState,
    peer: Peer,
    request: Request,
) -> Result<Response, OAuthError> {
    let registration = &state.config.registration;
    if !registration.enabled {
        return Err(OAuthError::NotFound);
    }
    state
        .rate_limits
        .charge_registration(peer, state.rate_limits.now())
        .map_err(OAuthError::SlowDown)?;
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(invalid("the body must be application/json"));
    }
    let body = super::form::read_body(request, state).await?;
    let metadata: Metadata =
        serde_json::from_slice(&body).map_err(|e| invalid(&format!("malformed metadata: {e}")))?;
    let client = checked(state, metadata)?;
    let id = format!("{ID_PREFIX}{}", crypto::random_id()?);
    let config = ClientConfig {
        id: id.clone(),
        ..client
    };
    let json = serde_json::to_string(&config).map_err(OAuthError::internal)?;
    let kept = state
        .store
        .put_registered_client(
            &id,
            &json,
            registration.client_ttl,
            registration.max_clients,
        )
        .await?;
    if !kept {
        tracing::warn!(
            max = registration.max_clients,
            "registration refused: the registry is full"
        );
        return Err(OAuthError::RegistryFull);
    }
    tracing::info!(client_id = %id, name = ?config.name, "client registered");
    let body = json!({
        "client_id": id,
        "client_id_issued_at": clock::now_secs(),
        "client_name": config.name,
        "redirect_uris": config.redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": config.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": ["code"],
        "scope": config.scopes.join(" "),
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    super::no_store::mark(response.headers_mut());
    Ok(response)
}

/// Zero-width and bidirectional formatting characters: in a name shown on
/// the consent page they can make it read as another app's
/// (`U+202E` turns "ppA omeD" into "Demo App").
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The client the metadata asks for, within what registration allows.
fn checked(state: &AppState, metadata: Metadata) -> Result<ClientConfig, OAuthError> {
    let registration = &state.config.registration;
    let redirect_uris = metadata.redirect_uris.unwrap_or_default();
    if redirect_uris.is_empty() || redirect_uris.len() > 10 {
        return Err(invalid_redirect(
            "between 1 and 10 redirect_uris are required",
        ));
    }
    if let Some(bad) = redirect_uris
        .iter()
        .find(|uri| uri.len() > 512 || !redirect_uri_is_usable(uri))
    {
        return Err(invalid_redirect(&format!(
            "redirect_uri {bad:?} is not usable"
        )));
    }
    match metadata.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(_) => {
            return Err(invalid(
                "only public clients register: token_endpoint_auth_method none",
            ));
        }
    }
    let grants = match metadata.grant_types {
        None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        Some(list) => {
            let mut grants = Vec::new();
            for grant in list {
                match grant.as_str() {
                    "authorization_code" => grants.push(GrantType::AuthorizationCode),
                    "refresh_token" => grants.push(GrantType::RefreshToken),
                    other => return Err(invalid(&format!("grant type {other:?} is not offered"))),
                }
            }
            if !grants.contains(&GrantType::AuthorizationCode) {
                grants.push(GrantType::AuthorizationCode);
            }
            grants
        }
    };
    if metadata
        .response_types
        .is_some_and(|types| types.iter().any(|t| t != "code"))
    {
        return Err(invalid("only response_type code is offered"));
    }
    let scopes: Vec<String> = match metadata.scope {
        None => registration.scopes.clone(),
        Some(scope) => {
            let asked: Vec<String> = scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(bad) = asked.iter().find(|s| !registration.scopes.contains(s)) {
                return Err(invalid(&format!("scope {bad:?} is not offered")));
            }
            asked
        }
    };
    let name = metadata
        .client_name
        .map(|name| {
            name.chars()
                .filter(|c| !c.is_control() && !is_invisible_format(*c))
                .take(100)
                .collect::<String>()
        })
        .filter(|name| !name.trim().is_empty());
    Ok(ClientConfig {
        id: String::new(),
        secret_hash: String::new(),
        name,
        redirect_uris,
        public: true,
        grants,
        default_scopes: Some(scopes.clone()),
        scopes,
        audience: registration.audience.clone(),
        access_ttl: None,
        refresh_ttl: None,
    })
}

fn invalid(description: &str) -> OAuthError {
    OAuthError::InvalidClientMetadata(description.to_owned())
}

fn invalid_redirect(description: &str) -> OAuthError {
    OAuthError::InvalidRedirectUri(description.to_owned())
}
