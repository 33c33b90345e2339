//! `[limits]`: rate, concurrency, size and time limits of the HTTP server.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[limits]`: what one client, and everyone together, may ask of the issuer.
///
/// The per-client token bucket covers `/oauth2/token`, `/oauth2/revoke`
/// (and `/revoke`) and `/oauth2/introspect`. A request whose client
/// authenticates is charged to that client; a request that fails client
/// authentication is charged to its peer IP address, never to the client id
/// it claimed, so a flood of bad credentials cannot use up a real client's
/// allowance (see `issuer::limit`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sustained requests per second per client (default 1000).
    pub rate_per_second: f64,
    /// Requests a client may make at once after being idle (default 2000).
    pub burst: u32,
    /// Requests served at once, all clients together; above it the answer
    /// is 503 `temporarily_unavailable` at once (default 1024). Health,
    /// readiness and metrics are exempt.
    pub max_concurrent_requests: usize,
    /// Longest a request may take before it is answered 503 (default 10s).
    #[serde(with = "super::duration")]
    pub request_timeout: Duration,
    /// Longest a connection may take to send a request's headers (and an
    /// idle keep-alive connection may wait for the next request's); past it
    /// the connection is closed (default 10s).
    #[serde(with = "super::duration")]
    pub header_read_timeout: Duration,
    /// Longest a request's body may take to arrive once its headers have;
    /// past it the answer is 408 and the connection is closed (default 10s).
    /// A body still arriving holds no `max_concurrent_requests` permit.
    #[serde(with = "super::duration")]
    pub body_read_timeout: Duration,
    /// Open connections, all peers together; past it a new connection is
    /// answered 503 and closed at once (default 4096).
    pub max_connections: usize,
    /// Open connections from one peer IP address (default 256).
    pub max_connections_per_peer: usize,
    /// Sustained requests per second from one peer IP address to the
    /// endpoints that take client credentials, counted before
    /// authentication (default 2000; behind a proxy, every client shares it).
    pub peer_rate_per_second: f64,
    /// Requests one peer may make at once to those endpoints (default 4000).
    pub peer_burst: u32,
    /// argon2 verifications running at once (default 2; each takes ~19 MiB
    /// and a core).
    pub argon2_concurrency: usize,
    /// argon2 verifications waiting for a slot; past it the answer is 503
    /// at once (default 32).
    pub argon2_queue: usize,
    /// Failed argon2 verifications allowed per client id, and per peer,
    /// within `argon2_failure_window`; past it that client id (or peer) is
    /// answered 429 `slow_down` without argon2 work, except for a secret
    /// already verified (default 10).
    pub argon2_failures: u32,
    /// The window of `argon2_failures` (default 60s).
    #[serde(with = "super::duration")]
    pub argon2_failure_window: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate_per_second: 1000.0,
            burst: 2000,
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_peer: 256,
            peer_rate_per_second: 2000.0,
            peer_burst: 4000,
            argon2_concurrency: 2,
            argon2_queue: 32,
            argon2_failures: 10,
            argon2_failure_window: Duration::from_secs(60),
        }
    }
}
