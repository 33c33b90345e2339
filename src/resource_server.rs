//! A protected resource in a few lines: [`ResourceServer::builder`] owns the
//! denylist, the subscriber that keeps it in sync with Redis, the metrics and
//! the issuer's discovery (retried while the issuer starts), and hands back
//! the layer and the operational routes.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use revokd::{layer::VerifiedToken, resource_server::ResourceServer};
//! let server = ResourceServer::builder()
//!     .issuer("https://auth.example.com")
//!     .audience("api")
//!     .redis("redis://127.0.0.1:6379")
//!     .start()
//!     .await?;
//! let app = Router::new()
//!     .route("/api/hello", get(|token: VerifiedToken| async move { token.sub.clone() }))
//!     .layer(server.layer())
//!     .merge(server.ops_routes());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! The ops routes: `GET /metrics` (Prometheus text), `GET /readyz` (200
//! while the denylist is connected and in sync within its bound, else 503),
//! `GET /healthz`, and RFC 9728's `GET /.well-known/oauth-protected-resource`
//! when a [`ResourceServerBuilder::resource`] is named (the layer then names
//! the document in every `WWW-Authenticate` challenge).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Serialize;

use crate::denylist::Denylist;
use crate::error::Chain;
use crate::layer::{DEFAULT_STALENESS_BOUND, RequireTokenLayer, StalePolicy};
use crate::metrics::DenylistMetrics;
use crate::store::redis::{RedisStore, RedisStoreError, StoreOptions, Topology};
use crate::subscriber::{Subscriber, SubscriberConfig};
use crate::verify::{DiscoveryError, Verifier, VerifierConfig};

/// The RFC 9728 well-known path.
pub const PROTECTED_RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource";

/// Why a [`ResourceServer`] did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A required setting was not given.
    #[error("the resource server needs {0}")]
    Missing(&'static str),
    /// The metrics could not be registered (a name already taken).
    #[error("registering the metrics")]
    Metrics(#[source] prometheus::Error),
    /// The Redis topology is unusable.
    #[error("the redis store")]
    Store(#[source] RedisStoreError),
    /// The issuer's metadata or keys could not be fetched in time.
    #[error("discovering the issuer (retried for {0:?})")]
    Discovery(Duration, #[source] DiscoveryError),
}

/// Settings of a [`ResourceServer`]; see [`ResourceServer::builder`].
#[derive(Debug, Clone)]
pub struct ResourceServerBuilder {
    issuer: Option<String>,
    audience: Option<String>,
    topology: Option<Topology>,
    prefix: String,
    subscribe_on_replica: bool,
    policy: StalePolicy,
    bound: Duration,
    resource: Option<String>,
    scopes: Vec<String>,
    registry: Option<Registry>,
    discovery_timeout: Duration,
}

impl ResourceServerBuilder {
    /// The issuer's URL, exactly as its tokens' `iss` (required).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// This resource's name: tokens' `aud` must contain it (required). It is
    /// also the challenges' realm.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// One Redis server (`redis://` or `rediss://`).
    pub fn redis(self, url: impl Into<String>) -> Self {
        self.topology(Topology::Single(url.into()))
    }

    /// Any topology the store supports: one server, Sentinel or Cluster.
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = Some(topology);
        self
    }

    /// The Redis key prefix (`revokd` by default), as the issuer's.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// With a Sentinel topology: subscribe on one of the master's healthy
    /// replicas (at random; the master when none is), so a fleet's fan-out
    /// leaves the master. Off by default.
    pub fn subscribe_on_replica(mut self, on_replica: bool) -> Self {
        self.subscribe_on_replica = on_replica;
        self
    }

    /// What requests get while the denylist is stale past its bound.
    pub fn stale_policy(mut self, policy: StalePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The staleness bound ([`DEFAULT_STALENESS_BOUND`] by default).
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.bound = bound;
        self
    }

    /// This resource's RFC 9728 identifier, an `https` (or `http`) URL:
    /// serves its metadata and names it in every challenge.
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// The scopes the metadata lists (`scopes_supported`).
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The registry the metrics go to (a new one by default).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// How long discovery is retried before [`StartError::Discovery`]
    /// (60 s by default).
    pub fn discovery_timeout(mut self, timeout: Duration) -> Self {
        self.discovery_timeout = timeout;
        self
    }

    /// Starts the subscriber, then discovers the issuer's keys, retrying
    /// with backoff while the issuer is unreachable.
    pub async fn start(self) -> Result<ResourceServer, StartError> {
        let issuer = self.issuer.ok_or(StartError::Missing("an issuer"))?;
        let audience = self.audience.ok_or(StartError::Missing("an audience"))?;
        let topology = self
            .topology
            .ok_or(StartError::Missing("a redis topology"))?;
        let registry = self.registry.unwrap_or_default();
        let denylist = Denylist::new();
        let metrics =
            DenylistMetrics::register(&registry, &denylist).map_err(StartError::Metrics)?;
        let options = StoreOptions {
            prefix: self.prefix,
            subscribe_on_replica: self.subscribe_on_replica,
            ..StoreOptions::default()
        };
        let store = RedisStore::new(topology, options).map_err(StartError::Store)?;
        let subscriber = Subscriber::spawn(
            store,
            denylist.clone(),
            SubscriberConfig::default(),
            Some(metrics),
        );
        let config = VerifierConfig::new(issuer.clone(), audience.clone());
        let verifier = discover(config, &denylist, self.discovery_timeout).await?;
        let metadata = self.resource.map(|resource| ProtectedResource {
            resource,
            authorization_servers: vec![issuer],
            scopes_supported: self.scopes,
            bearer_methods_supported: vec!["header".to_owned()],
        });
        Ok(ResourceServer {
            verifier,
            subscriber,
            registry,
            policy: self.policy,
            bound: self.bound,
            audience,
            metadata: metadata.map(Arc::new),
        })
    }
}

/// RFC 8414 discovery, retried with a capped backoff until `timeout`.
async fn discover(
    config: VerifierConfig,
    denylist: &Denylist,
    timeout: Duration,
) -> Result<Verifier, StartError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        match Verifier::discover(config.clone(), Some(denylist.clone())).await {
            Ok(verifier) => return Ok(verifier),
            Err(error) if tokio::time::Instant::now() + pause < deadline => {
                let error = Chain(&error);
                tracing::warn!(%error, issuer = %config.issuer, "discovery failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(StartError::Discovery(timeout, error)),
        }
    }
}

/// RFC 9728 §2: what a client learns about this resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResource {
    /// The resource identifier.
    pub resource: String,
    /// The issuers whose tokens it accepts.
    pub authorization_servers: Vec<String>,
    /// The scopes it understands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How it takes a token: the `Authorization` header only.
    pub bearer_methods_supported: Vec<String>,
}

impl ProtectedResource {
    /// RFC 9728 §3.1: the well-known path goes between the host and the
    /// resource's path (`https://a.test/mcp` →
    /// `https://a.test/.well-known/oauth-protected-resource/mcp`).
    pub fn metadata_url(&self) -> String {
        metadata_url(&self.resource)
    }
}

fn metadata_url(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("https", resource));
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    format!("{scheme}://{authority}{PROTECTED_RESOURCE_PATH}{path}")
}

/// A running resource server's parts: the layer to put in front of the
/// routes it protects, the ops routes, and what they are built from.
#[derive(Debug, Clone)]
pub struct ResourceServer {
    verifier: Verifier,
    subscriber: Subscriber,
    registry: Registry,
    policy: StalePolicy,
    bound: Duration,
    audience: String,
    metadata: Option<Arc<ProtectedResource>>,
}

impl ResourceServer {
    /// Starts a builder: give it an issuer, an audience and a Redis
    /// topology, then [`ResourceServerBuilder::start`].
    pub fn builder() -> ResourceServerBuilder {
        ResourceServerBuilder {
            issuer: None,
            audience: None,
            topology: None,
            prefix: "revokd".to_owned(),
            subscribe_on_replica: false,
            policy: StalePolicy::FailOpen,
            bound: DEFAULT_STALENESS_BOUND,
            resource: None,
            scopes: Vec::new(),
            registry: None,
            discovery_timeout: Duration::from_secs(60),
        }
    }

    /// The layer that verifies every request's bearer token: realm = the
    /// audience, the subscriber's freshness with the configured bound and
    /// policy, the RFC 9728 metadata named in challenges when configured.
    pub fn layer(&self) -> RequireTokenLayer {
        let layer = RequireTokenLayer::new(self.verifier.clone())
            .realm(self.audience.clone())
            .freshness(self.subscriber.clone(), self.bound)
            .stale_policy(self.policy);
        match &self.metadata {
            Some(metadata) => layer.resource_metadata(metadata.metadata_url()),
            None => layer,
        }
    }

    /// `/metrics`, `/readyz`, `/healthz` and, when configured, the RFC 9728
    /// document (at its well-known path, with the resource's path appended
    /// when it has one).
    pub fn ops_routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let mut routes = Router::new()
            .route("/metrics", get(metrics_text))
            .route("/readyz", get(readyz))
            .route("/healthz", get(|| async { "ok" }));
        if let Some(metadata) = &self.metadata {
            let url = metadata.metadata_url();
            let path = url
                .find(PROTECTED_RESOURCE_PATH)
                .map_or(PROTECTED_RESOURCE_PATH, |at| &url[at..]);
            routes = routes.route(path, get(protected_resource));
            if path != PROTECTED_RESOURCE_PATH {
                routes = routes.route(PROTECTED_RESOURCE_PATH, get(protected_resource));
            }
        }
        routes.with_state(self.clone())
    }

    /// Whether the denylist is connected and in sync within its bound.
    pub fn is_ready(&self) -> bool {
        self.subscriber.is_connected() && self.subscriber.is_fresh(self.bound)
    }

    /// The verifier (with the denylist inside).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The subscriber keeping the denylist in sync.
    pub fn subscriber(&self) -> &Subscriber {
        &self.subscriber
    }

    /// The registry holding the denylist and subscriber metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The RFC 9728 document, when a resource was named.
    pub fn metadata(&self) -> Option<&ProtectedResource> {
        self.metadata.as_deref()
    }
}

async fn readyz(State(server): State<ResourceServer>) -> Response {
    if server.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "denylist not in sync").into_response()
    }
}

async fn metrics_text(State(server): State<ResourceServer>) -> Response {
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&server.registry.gather(), &mut out) {
        tracing::error!(%error, "encoding the metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

async fn protected_resource(State(server): State<ResourceServer>) -> Response {
    match server.metadata() {
        Some(metadata) => axum::Json(metadata.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_url_follows_rfc_9728() {
        assert_eq!(
            metadata_url("https://api.test"),
            "https://api.test/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            metadata_url("https://api.test/"),
            "https://api.test/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8081/mcp?x=1"),
            "http://127.0.0.1:8081/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn the_metadata_lists_the_issuer_and_header_bearer_only() {
        let metadata = ProtectedResource {
            resource: "https://api.test".into(),
            authorization_servers: vec!["https://auth.test".into()],
            scopes_supported: vec!["read".into()],
            bearer_methods_supported: vec!["header".into()],
        };
        let json = serde_json::to_value(&metadata).unwrap();
        assert_eq!(json["resource"], "https://api.test");
        assert_eq!(json["authorization_servers"][0], "https://auth.test");
        assert_eq!(json["scopes_supported"][0], "read");
        assert_eq!(
            json["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
    }
}
