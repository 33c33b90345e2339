//! Why a [`Verifier`](super::Verifier) could not be built or its keys fetched.

/// Why a [`Verifier`](super::Verifier) could not be built or its keys
/// fetched: discovery, the JWK set, the HTTP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer URL or `jwks_uri` is not a usable URL.
    #[error("bad URL {0:?}")]
    Url(String),
    /// The HTTP request failed.
    #[error("fetching {url}")]
    Http {
        /// What was fetched.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The issuer answered with an error status.
    #[error("fetching {url}: HTTP {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The document is larger than 1 MiB.
    #[error("fetching {0}: document too large")]
    TooLarge(String),
    /// The document is not the expected JSON.
    #[error("{what}: malformed document")]
    Json {
        /// Which document.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The metadata's `issuer` is not the configured issuer (RFC 8414 §3.3).
    #[error("metadata issuer {found:?} is not the configured issuer {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the metadata says.
        found: String,
    },
    /// The metadata has no `jwks_uri`.
    #[error("metadata has no jwks_uri")]
    NoJwksUri,
    /// The JWK set has no key this verifier can use.
    #[error("the JWK set has no usable signing key (EdDSA, ES256 or RS256 with a kid)")]
    NoUsableKey,
    /// The HTTP client could not be built.
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
}
