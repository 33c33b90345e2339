//! [`RequireTokenLayer`]: builds [`RequireToken`] services that share one
//! verifier and one configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::{Challenges, DEFAULT_STALENESS_BOUND, Freshness, RequireToken, Shared, StalePolicy};
use crate::verify::Verifier;

/// Applies [`RequireToken`] to a service.
///
/// ```no_run
/// # async fn example(verifier: revokd::verify::Verifier, subscriber: revokd::subscriber::Subscriber) {
/// use revokd::layer::{RequireTokenLayer, StalePolicy, VerifiedToken};
/// let app: axum::Router = axum::Router::new()
///     .route("/api/resource", axum::routing::get(|token: VerifiedToken| async move {
///         token.sub.clone()
///     }))
///     .layer(
///         RequireTokenLayer::new(verifier)
///             .realm("api")
///             .require_scope("read")
///             .freshness(subscriber, std::time::Duration::from_secs(60))
///             .stale_policy(StalePolicy::FailOpen),
///     );
/// # }
/// ```
#[derive(Clone)]
pub struct RequireTokenLayer {
    verifier: Verifier,
    realm: String,
    required_scopes: Vec<String>,
    freshness: Option<(Arc<dyn Freshness>, Duration)>,
    policy: StalePolicy,
    resource_metadata: Option<String>,
}

impl fmt::Debug for RequireTokenLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireTokenLayer")
            .field("verifier", &self.verifier)
            .field("realm", &self.realm)
            .field("required_scopes", &self.required_scopes)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

// === impl RequireTokenLayer ===

impl RequireTokenLayer {
    /// A layer verifying tokens with `verifier`; realm `revokd`, no scope
    /// required, no freshness source, [`StalePolicy::FailOpen`].
    pub fn new(verifier: Verifier) -> RequireTokenLayer {
        RequireTokenLayer {
            verifier,
            realm: "revokd".into(),
            required_scopes: Vec::new(),
            freshness: None,
            policy: StalePolicy::FailOpen,
            resource_metadata: None,
        }
    }

    /// The `realm` of `WWW-Authenticate` challenges.
    pub fn realm(mut self, realm: impl Into<String>) -> RequireTokenLayer {
        self.realm = realm.into();
        self
    }

    /// Names this resource's RFC 9728 metadata document in every
    /// challenge (`resource_metadata="…"`), as MCP clients expect; serve
    /// the document itself with
    /// [`ProtectedResource`](crate::resource_server::ProtectedResource).
    pub fn resource_metadata(mut self, url: impl Into<String>) -> RequireTokenLayer {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Requires `scope` on every request (403 `insufficient_scope` without
    /// it). May be called several times: all are required.
    pub fn require_scope(mut self, scope: impl Into<String>) -> RequireTokenLayer {
        self.required_scopes.push(scope.into());
        self
    }

    /// Where the denylist's staleness comes from (usually the
    /// [`Subscriber`](crate::subscriber::Subscriber)), and the bound past
    /// which the [`StalePolicy`] applies ([`DEFAULT_STALENESS_BOUND`] is
    /// 60 s, the default of `docs/contract.md`).
    pub fn freshness(mut self, source: impl Freshness, bound: Duration) -> RequireTokenLayer {
        self.freshness = Some((Arc::new(source), bound));
        self
    }

    /// Like [`RequireTokenLayer::freshness`] with [`DEFAULT_STALENESS_BOUND`].
    pub fn freshness_default_bound(self, source: impl Freshness) -> RequireTokenLayer {
        self.freshness(source, DEFAULT_STALENESS_BOUND)
    }

    /// What a stale denylist means for requests.
    pub fn stale_policy(mut self, policy: StalePolicy) -> RequireTokenLayer {
        self.policy = policy;
        self
    }

    fn shared(&self) -> Arc<Shared> {
        Arc::new(Shared {
            verifier: self.verifier.clone(),
            challenges: Challenges::new(
                &self.realm,
                &self.required_scopes,
                self.resource_metadata.as_deref(),
            ),
            required_scopes: self.required_scopes.clone(),
            freshness: self.freshness.clone(),
            policy: self.policy,
        })
    }
}

impl<S> Layer<S> for RequireTokenLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> RequireToken<S> {
        RequireToken::from_shared(inner, self.shared())
    }
}
