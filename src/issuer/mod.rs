//! The authorization server: an axum app over an [`AppState`].
//!
//! | path | module |
//! |---|---|
//! | `POST /oauth2/token` | [`token`] |
//! | `POST /oauth2/revoke`, `POST /revoke` | [`revoke`] |
//! | `POST /oauth2/introspect` | [`introspect`] |
//! | `GET /.well-known/oauth-authorization-server`, `GET /.well-known/jwks.json`, `/healthz`, `/readyz`, `/metrics` | [`metadata`] |
//! | `POST/DELETE /admin/revocations`, `GET /admin/revocations/{key}` | [`admin`] |
//!
//! Every error goes through [`error::OAuthError`]; every request body is
//! capped at [`BODY_LIMIT`] bytes (413 above it).
//!
//! # Layers, outermost first
//!
//! 1. `observe`: the request id (`x-request-id`: kept when the client sent
//!    a sane one, made up otherwise, echoed on the response), a `tracing`
//!    span carrying it, one log line per request (id, method, route
//!    template, status, latency; never a header, a query string or a body,
//!    so no token or secret), the latency histogram, RFC 6749 JSON for the
//!    framework's bare errors.
//! 0. Before any of them, [`serve`] (the accept loop): caps on open
//!    connections (`limits.max_connections`, `limits.max_connections_per_peer`)
//!    and the header read timeout (`limits.header_read_timeout`).
//! 2. `read_body`: on the endpoints that take client credentials, the
//!    per-peer limit first (`limits.peer_rate_per_second`, 429); then the
//!    whole body is read, at most [`BODY_LIMIT`] bytes (413) within
//!    `limits.body_read_timeout` (408), *before* the request may take a
//!    load-shedding permit: a peer that sends headers and no body holds a
//!    connection (capped), never a permit.
//! 3. `shed`: at most `limits.max_concurrent_requests` in flight; above it
//!    503 `temporarily_unavailable` with `Retry-After: 1` at once, rather
//!    than a queue that only adds latency. Probes and `/metrics` are exempt,
//!    so an overloaded replica is not also declared dead.
//! 4. Panics become 500; `limits.request_timeout` bounds every request once
//!    its body has arrived (503).
//! 5. Per-client rate limits run in the handlers, right after client
//!    authentication ([`App::authenticate`], [`limit`]).
//!
//! Every refusal is counted in `revokd_http_refused_total{reason}`.

use std::sync::Arc;
use std::time::Instant;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus::Registry;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use crate::clock;
use crate::config::{Config, UserConfig};
use crate::denylist::Denylist;
use crate::metrics::IssuerMetrics;
use crate::rule::{RevokedBefore, RuleKey, TokenKeys};
use crate::signing::SigningKeys;
use crate::store::memory::MemoryStore;
use crate::store::{RevocationStore, StoreError};

pub mod account;
pub mod admin;
pub mod authorize;
pub mod client_auth;
pub mod error;
pub mod form;
pub mod introspect;
pub mod jwt;
pub mod limit;
pub mod metadata;
pub mod no_store;
pub mod pages;
pub mod register;
pub mod replicated;
pub mod revoke;
pub mod server;
pub mod session;
pub mod token;

pub use server::serve;

use client_auth::{Client, Clients};
use error::{ErrorCode, OAuthError};
use form::OAuthForm;
use limit::{Peer, RateLimits};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The request id header, read and echoed.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Routes the load shedder never refuses: a busy replica must still answer
/// its liveness probe and be scraped.
const NEVER_SHED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Routes that take client credentials: limited per peer before
/// authentication.
const CREDENTIAL_ROUTES: [&str; 4] = [
    "/oauth2/token",
    "/oauth2/revoke",
    "/revoke",
    "/oauth2/introspect",
];

/// Everything the handlers share; built once at start-up.
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// Signing and verification keys.
    pub keys: SigningKeys,
    /// Where revocations are written.
    pub store: Arc<dyn RevocationStore>,
    /// The revocation check, the same one resource servers embed.
    pub denylist: Denylist,
    /// Registered clients and their authentication.
    pub clients: Clients,
    /// Users of the password grant, by name.
    pub users: std::collections::HashMap<String, Arc<str>>,
    /// A real user's hash, checked for unknown usernames so they cost the
    /// same as known ones.
    pub dummy_password_hash: Option<Arc<str>>,
    /// Issuer metrics.
    pub metrics: IssuerMetrics,
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// The latest `exp` any token can have, relative to its `iat` (seconds):
    /// how long a rule must live to cover every token it can affect.
    pub max_token_lifetime: u64,
    /// The RFC 8414 document, serialised once.
    pub metadata_json: String,
    /// Per-client token buckets (`[limits]`).
    pub rate_limits: RateLimits,
    /// Permits for requests in flight (`limits.max_concurrent_requests`).
    pub in_flight: Arc<Semaphore>,
    /// Where made-up request ids come from.
    pub request_ids: RequestIds,
    /// The pages' signed session cookies and CSRF tokens.
    pub sessions: session::Sessions,
    /// Registered clients read from the store lately.
    pub registered: register::RecentClients,
}

/// Request ids for requests that came without one: a random per-process
/// prefix and a counter, so ids are unique across replicas without a random
/// draw per request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    /// A fresh prefix.
    pub fn new() -> RequestIds {
        // A failed draw only makes ids less unique across processes.
        RequestIds {
            prefix: crate::crypto::random_u64().unwrap_or(0),
            next: AtomicU64::new(0),
        }
    }

    /// The next id: 32 hex digits.
    pub fn next_id(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let text = format!("{:016x}{n:016x}", self.prefix);
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

/// The shared state handed to every handler: a cheap clone of an `Arc<App>`.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Whether a `client:` rule refuses tokens issued now for `client`
    /// (an administrator disabled it): such a client is refused at every
    /// endpoint, not only at the token endpoint.
    pub fn client_disabled(&self, client: &Client) -> bool {
        let now = clock::now_secs();
        self.denylist
            .get(&RuleKey::Client(client.id.clone()), now)
            .is_some_and(|rule| match rule.revoked_before {
                RevokedBefore::All => true,
                RevokedBefore::IssuedAtOrBefore(bound) => bound >= now,
            })
    }

    /// The signed-in user of this request: a valid session cookie whose
    /// sign-in no rule for the user has revoked since ("sign out
    /// everywhere", an administrator revoking the user). Sessions are
    /// stateless cookies, so the denylist is what ends the other ones.
    pub fn session(&self, headers: &HeaderMap, now: u64) -> Option<session::Session> {
        let session = self.sessions.read(headers, now)?;
        let signed_in = TokenKeys {
            // No token has an empty jti or client id: only the user's rules apply.
            jti: "",
            sid: None,
            sub: Some(&session.sub),
            client_id: "",
            iat: session.signed_in_at(),
        };
        self.denylist
            .is_revoked(&signed_in, now)
            .is_none()
            .then_some(session)
    }

    /// The client with this id: configured, or registered (RFC 7591).
    pub async fn client(&self, id: &str) -> Result<Option<Arc<Client>>, OAuthError> {
        match self.clients.get(id) {
            Some(client) => Ok(Some(client)),
            None => self.registered_client(id).await,
        }
    }

    /// A registered client, from a short-lived local cache or the store.
    async fn registered_client(&self, id: &str) -> Result<Option<Arc<Client>>, OAuthError> {
        if !self.config.registration.enabled || !id.starts_with(register::ID_PREFIX) {
            return Ok(None);
        }
        if let Some(client) = self.registered.get(id) {
            return Ok(Some(client));
        }
        let Some(json) = self.store.registered_client(id).await? else {
            return Ok(None);
        };
        let config: crate::config::ClientConfig =
            serde_json::from_str(&json).map_err(OAuthError::internal)?;
        let client =
            Arc::new(client_auth::resolve(&self.config, &config).map_err(OAuthError::internal)?);
        self.registered.put(id, client.clone());
        Ok(Some(client))
    }

    /// Whether `password` is `username`'s (`[[users]]`, argon2), with the
    /// argon2 bounds and the failure limits counted per user and per peer:
    /// past `limits.argon2_failures` recent failures either way, 429
    /// without argon2 work. An unknown user costs what a known one does.
    pub async fn user_password_ok(
        &self,
        peer: limit::Peer,
        username: &str,
        password: &str,
    ) -> Result<bool, OAuthError> {
        let account = format!("user:{username}");
        let now = self.rate_limits.now();
        if let Err(wait) = self.rate_limits.argon2_reserve(&account, peer, now) {
            self.metrics.refused("argon2_failures");
            return Err(OAuthError::SlowDown(wait));
        }
        let known = self.users.get(username);
        let Some(hash) = known.or(self.dummy_password_hash.as_ref()).cloned() else {
            return Ok(false);
        };
        let checked = self
            .clients
            .verify_argon2(hash, password.to_owned())
            .await
            .map(|ok| ok && known.is_some());
        if !matches!(checked, Ok(false)) {
            self.rate_limits.argon2_refund(&account, peer);
        }
        Ok(checked?)
    }

    /// Refuses with 503 until the denylist completed its first sync: before
    /// it nothing is known of revocations.
    pub fn require_synced(&self) -> Result<(), OAuthError> {
        if self.store.has_synced() {
            Ok(())
        } else {
            Err(OAuthError::Store(StoreError::unavailable(
                "the denylist has not synced with redis yet",
            )))
        }
    }

    /// Verifies a token of ours now (see [`jwt::verify`]); revocation is not
    /// checked.
    pub fn verify(
        &self,
        token: &str,
        want: Option<jwt::TokenKind>,
    ) -> Option<(jwt::TokenKind, jwt::Claims)> {
        jwt::verify(
            &self.keys,
            &self.config.issuer,
            token,
            want,
            crate::clock::now_secs(),
        )
        .ok()
    }

    /// Authenticates the request's client, then charges the request to the
    /// client's rate limit; a request that fails authentication is charged
    /// to its peer address instead, never to the client id it claimed (see
    /// [`limit`]). An exhausted limit is 429 `slow_down`.
    pub async fn authenticate(
        &self,
        peer: Peer,
        headers: &HeaderMap,
        form: &OAuthForm,
    ) -> Result<Arc<Client>, OAuthError> {
        let mut result = self
            .clients
            .authenticate(peer, &self.rate_limits, headers, form)
            .await;
        // A registered (public) client names itself and presents nothing.
        if matches!(result, Err(OAuthError::InvalidClient))
            && form.get("client_secret").is_none()
            && !headers.contains_key(axum::http::header::AUTHORIZATION)
            && let Some(id) = form.get("client_id")
            && let Some(client) = self.registered_client(id).await?
        {
            result = Ok(client);
        }
        let now = self.rate_limits.now();
        match result {
            Ok(client) => {
                // A public client proves nothing but its id, which anyone can
                // send: its bucket is per peer, or one host could spend it
                // for every user of the app.
                let key = match (client.is_public(), peer.0) {
                    (true, Some(ip)) => std::borrow::Cow::Owned(format!("{}@{ip}", client.id)),
                    _ => std::borrow::Cow::Borrowed(client.id.as_str()),
                };
                self.rate_limits
                    .charge_client(&key, now)
                    .map_err(OAuthError::SlowDown)?;
                Ok(client)
            }
            Err(e) => {
                self.rate_limits
                    .charge_peer(peer, now)
                    .map_err(OAuthError::SlowDown)?;
                Err(e)
            }
        }
    }
}

/// Why the app could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppStateError {
    /// A client's secret hash is unusable.
    #[error(transparent)]
    Client(#[from] client_auth::BadSecretHash),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A user's password hash is not an argon2 PHC string.
    #[error("user {0:?}: password_hash must be an argon2 PHC string")]
    User(String),
}

// === impl AppState ===

impl AppState {
    /// Builds the state from its parts.
    pub fn new(
        config: Config,
        keys: SigningKeys,
        store: Arc<dyn RevocationStore>,
        denylist: Denylist,
        registry: Registry,
    ) -> Result<AppState, AppStateError> {
        let metrics = IssuerMetrics::register(&registry)?;
        let clients = Clients::new(&config, &metrics)?;
        let mut users = std::collections::HashMap::new();
        for UserConfig {
            username,
            password_hash,
        } in &config.users
        {
            if argon2::PasswordHash::new(password_hash).is_err() {
                return Err(AppStateError::User(username.clone()));
            }
            users.insert(username.clone(), Arc::<str>::from(password_hash.as_str()));
        }
        let dummy_password_hash = config
            .users
            .first()
            .map(|u| Arc::<str>::from(u.password_hash.as_str()));
        let max_token_lifetime = clients
            .iter()
            .map(|c| c.access_ttl.max(c.refresh_ttl))
            .chain([
                config.tokens.access_ttl.as_secs(),
                config.tokens.refresh_ttl.as_secs(),
            ])
            .max()
            .unwrap_or(0);
        let metadata_json = metadata::document(&config, &keys, &clients).to_string();
        let rate_limits = RateLimits::new(&config.limits, config.registration.per_peer_per_hour);
        let in_flight = Arc::new(Semaphore::new(config.limits.max_concurrent_requests));
        let sessions = session::Sessions::new(
            &keys.derived_secret("pages session"),
            config.issuer.starts_with("https://"),
        );
        Ok(AppState(Arc::new(App {
            config,
            keys,
            store,
            denylist,
            clients,
            users,
            dummy_password_hash,
            metrics,
            registry,
            max_token_lifetime,
            metadata_json,
            rate_limits,
            in_flight,
            request_ids: RequestIds::new(),
            sessions,
            registered: register::RecentClients::default(),
        })))
    }

    /// The embedded default: an in-memory store feeding a fresh denylist,
    /// metrics on a fresh registry.
    pub fn in_memory(config: Config, keys: SigningKeys) -> Result<AppState, AppStateError> {
        let denylist = Denylist::new();
        let store = Arc::new(MemoryStore::new(denylist.clone()));
        let registry = Registry::new();
        crate::metrics::register_denylist_gauges(&registry, &denylist)?;
        AppState::new(config, keys, store, denylist, registry)
    }
}

/// The issuer's routes with every layer.
///
/// Serve it with [`serve`] (or `into_make_service_with_connect_info::<SocketAddr>()`,
/// without the connection caps and the header timeout): failed client
/// authentications are then rate-limited per peer address; without the peer
/// address they all share one bucket.
pub fn router(state: AppState) -> Router {
    let timeout = state.config.limits.request_timeout;
    Router::new()
        .route("/oauth2/token", post(token::token))
        .route(
            "/oauth2/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/oauth2/register", post(register::register))
        .route("/account", get(account::account))
        .route("/account/login", post(account::login))
        .route(
            "/account/apps/{client_id}/disconnect",
            post(account::disconnect),
        )
        .route(
            "/account/signout-everywhere",
            post(account::sign_out_everywhere),
        )
        .route("/oauth2/revoke", post(revoke::revoke))
        .route("/revoke", post(revoke::revoke))
        .route("/oauth2/introspect", post(introspect::introspect))
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::metadata),
        )
        .route("/.well-known/jwks.json", get(metadata::jwks))
        .route(
            "/admin/revocations",
            post(admin::create).delete(admin::delete_by_body),
        )
        .route(
            "/admin/revocations/{*key}",
            get(admin::read).delete(admin::delete_by_path),
        )
        .route("/admin/users/{sub}/apps", get(admin::user_apps))
        .route("/admin/clients/{client_id}/users", get(admin::client_users))
        .route("/healthz", get(metadata::healthz))
        .route("/readyz", get(metadata::readyz))
        .route("/metrics", get(metadata::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                OAuthError::internal("handler panicked").into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(state.clone(), shed))
        .layer(middleware::from_fn_with_state(state.clone(), read_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found() -> OAuthError {
    OAuthError::NotFound
}

/// Gives the request its id and span, logs it, records its duration and any
/// OAuth error code, and turns the framework's own bare 4xx/5xx answers
/// (405, timeouts, …) into RFC 6749 JSON.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = match req.headers().get(X_REQUEST_ID) {
        Some(id) if acceptable_request_id(id) => id.clone(),
        _ => {
            let id = state.request_ids.next_id();
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    // Only ids that pass `acceptable_request_id` get here: printable ASCII.
    let id_text = id.to_str().unwrap_or("invalid");
    let method = req.method().clone();
    // The route template, never the raw path or query string (a token
    // could ride in either).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = id_text,
        method = %method,
        route = route.as_str()
    );
    let mut response = next.run(req).instrument(span).await;
    let status = response.status();
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    if let Some(code) = code {
        state.metrics.token_errors.with_label_values(&[code]).inc();
    } else if (status.is_client_error() || status.is_server_error())
        && response.extensions().get::<pages::Page>().is_none()
    {
        response = jsonify(response);
    }
    state
        .metrics
        .http_request_duration
        .with_label_values(&[route.as_str(), status.as_str()])
        .observe(started.elapsed().as_secs_f64());
    tracing::info!(
        request_id = id_text,
        method = %method,
        route = route.as_str(),
        status = status.as_u16(),
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

/// A client's own request id is kept when it is 1 to 128 characters of
/// `[A-Za-z0-9._:+/=-]`; anything else is replaced, so a log line cannot be
/// forged or bloated through it.
fn acceptable_request_id(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:+/=-".contains(b))
}

/// Refuses a request at once (503 `temporarily_unavailable`,
/// `Retry-After: 1`) when `limits.max_concurrent_requests` are in flight.
async fn shed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if NEVER_SHED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        state.metrics.refused("overloaded");
        return OAuthError::Overloaded.into_response();
    };
    next.run(req).await
}

/// Charges a request to a credential endpoint to its peer (429 past
/// `limits.peer_rate_per_second`), then reads its whole body, at most
/// [`BODY_LIMIT`] bytes (413) within `limits.body_read_timeout` (408, and
/// the connection is closed), so that only requests whose body has arrived
/// go on to [`shed`] and take a permit. When `limits.request_timeout` is the
/// shorter of the two it bounds the read instead (503, as past it anywhere).
async fn read_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    use futures_util::StreamExt;

    if CREDENTIAL_ROUTES.contains(&req.uri().path()) {
        let peer = Peer(
            req.extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        );
        let now = state.rate_limits.now();
        if let Err(wait) = state.rate_limits.charge_request(peer, now) {
            state.metrics.refused("peer_rate");
            return OAuthError::SlowDown(wait).into_response();
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        state.metrics.refused("body_too_large");
        return closing(OAuthError::PayloadTooLarge.into_response());
    }
    let limits = &state.config.limits;
    let (parts, body) = req.into_parts();
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| None)?;
            if bytes.len() + chunk.len() > BODY_LIMIT {
                return Err(Some(OAuthError::PayloadTooLarge));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bound = limits.body_read_timeout.min(limits.request_timeout);
    match tokio::time::timeout(bound, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(Some(too_large))) => {
            state.metrics.refused("body_too_large");
            closing(too_large.into_response())
        }
        // The peer closed or broke the connection mid-body: nobody reads
        // the answer.
        Ok(Err(None)) => closing(
            OAuthError::invalid_request("the request body could not be read").into_response(),
        ),
        Err(_) if limits.body_read_timeout <= limits.request_timeout => {
            state.metrics.refused("body_timeout");
            closing(StatusCode::REQUEST_TIMEOUT.into_response())
        }
        Err(_) => closing(StatusCode::SERVICE_UNAVAILABLE.into_response()),
    }
}

/// Marks a response as the connection's last (its request body was not
/// read to the end).
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Replaces the body of a bare error response with RFC 6749 JSON, keeping
/// its status and headers (`Allow` on a 405).
fn jsonify(response: Response) -> Response {
    let (mut parts, _) = response.into_parts();
    let error = match parts.status {
        StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "server_error",
        _ => "invalid_request",
    };
    let reason = parts.status.canonical_reason().unwrap_or("error");
    let body = serde_json::json!({"error": error, "error_description": reason}).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    no_store::mark(&mut parts.headers);
    if parts.status == StatusCode::SERVICE_UNAVAILABLE {
        parts
            .headers
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from_static("1"));
    }
    Response::from_parts(parts, axum::body::Body::from(body))
}
