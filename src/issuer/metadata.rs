//! Discovery and operations: RFC 8414 metadata, the JWK set, liveness,
//! readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::client_auth::Clients;
use crate::config::{Config, GrantType};
use crate::signing::SigningKeys;

const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];
/// The token endpoint also takes public clients (PKCE, no secret).
const TOKEN_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// The RFC 8414 document: every endpoint, grant, client authentication
/// method and signing algorithm this issuer supports.
pub fn document(config: &Config, keys: &SigningKeys, clients: &Clients) -> Value {
    let base = config.issuer.trim_end_matches('/');
    let mut scopes: Vec<&str> = clients
        .iter()
        .flat_map(|c| c.scopes.iter().map(String::as_str))
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let mut document = json!({
        "issuer": config.issuer,
        "token_endpoint": format!("{base}/oauth2/token"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        // RFC 9207: `iss` in every authorization response.
        "authorization_response_iss_parameter_supported": true,
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        // Not in RFC 8414: the algorithms of the keys that sign tokens.
        "access_token_signing_alg_values_supported": keys.algorithms(),
    });
    if config.registration.enabled {
        document["registration_endpoint"] = json!(format!("{base}/oauth2/register"));
    }
    document
}

/// `GET /.well-known/oauth-authorization-server`.
pub async fn metadata(State(state): State<AppState>) -> Response {
    json_text(state.metadata_json.clone(), "public, max-age=300")
}

/// `GET /.well-known/jwks.json`: the active and retiring public keys.
pub async fn jwks(State(state): State<AppState>) -> Response {
    json_text(state.keys.jwks_json().to_owned(), "public, max-age=300")
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the store answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %crate::error::Chain(&e), "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "revocation store unavailable",
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: the registry in Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    use prometheus::Encoder;
    let encoder = prometheus::TextEncoder::new();
    let mut out = Vec::new();
    if let Err(e) = encoder.encode(&state.registry.gather(), &mut out) {
        tracing::error!(error = %e, "metrics encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn json_text(body: String, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
