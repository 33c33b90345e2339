//! Configuration: plain structs with defaults, read from one TOML file with
//! every key overridable by `REVOKD_*` environment variables
//! (`REVOKD_TOKENS__ACCESS_TTL=10m`, `REVOKD_STORE__REDIS_URL=…`).
//!
//! The environment is a parameter ([`Config::load`] takes the variables), so
//! tests pass a list and never touch the process environment. Unknown keys
//! are an error that names the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `iss` claim and the base URL of the metadata document.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The address the HTTP server binds.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Token lifetimes.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// Where revocation rules are kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// What revoking a token at `/oauth2/revoke` revokes.
    #[serde(default)]
    pub revocation: RevocationConfig,
    /// Signing keys: the first signs, the rest stay in the JWKS for rotation.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyConfig>,
    /// The registered clients.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Users for the `password` grant.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Rate, concurrency and time limits of the HTTP server.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[limits]`: what one client, and everyone together, may ask of the issuer.
///
/// The per-client token bucket covers `/oauth2/token`, `/oauth2/revoke`
/// (and `/revoke`) and `/oauth2/introspect`. A request whose client
/// authenticates is charged to that client; a request that fails client
/// authentication is charged to its peer IP address, never to the client id
/// it claimed, so a flood of bad credentials cannot use up a real client's
/// allowance (see `issuer::limit`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sustained requests per second per client (default 1000).
    #[serde(default = "default_rate_per_second")]
    pub rate_per_second: f64,
    /// Requests a client may make at once after being idle (default 2000).
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Requests served at once, all clients together; above it the answer
    /// is 503 `temporarily_unavailable` at once (default 1024). Health,
    /// readiness and metrics are exempt.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Longest a request may take before it is answered 503 (default 10s).
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub request_timeout: Duration,
    /// Longest a connection may take to send a request's headers (and an
    /// idle keep-alive connection may wait for the next request's); past it
    /// the connection is closed (default 10s).
    #[serde(
        default = "default_header_read_timeout",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub header_read_timeout: Duration,
    /// Longest a request's body may take to arrive once its headers have;
    /// past it the answer is 408 and the connection is closed (default 10s).
    /// A body still arriving holds no `max_concurrent_requests` permit.
    #[serde(
        default = "default_body_read_timeout",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub body_read_timeout: Duration,
    /// Open connections, all peers together; past it a new connection is
    /// answered 503 and closed at once (default 4096).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one peer IP address (default 256).
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
    /// Sustained requests per second from one peer IP address to the
    /// endpoints that take client credentials, counted before
    /// authentication (default 2000; behind a proxy, every client shares it).
    #[serde(default = "default_peer_rate_per_second")]
    pub peer_rate_per_second: f64,
    /// Requests one peer may make at once to those endpoints (default 4000).
    #[serde(default = "default_peer_burst")]
    pub peer_burst: u32,
    /// argon2 verifications running at once (default 2; each takes ~19 MiB
    /// and a core).
    #[serde(default = "default_argon2_concurrency")]
    pub argon2_concurrency: usize,
    /// argon2 verifications waiting for a slot; past it the answer is 503
    /// at once (default 32).
    #[serde(default = "default_argon2_queue")]
    pub argon2_queue: usize,
    /// Failed argon2 verifications allowed per client id, and per peer,
    /// within `argon2_failure_window`; past it that client id (or peer) is
    /// answered 429 `slow_down` without argon2 work, except for a secret
    /// already verified (default 10).
    #[serde(default = "default_argon2_failures")]
    pub argon2_failures: u32,
    /// The window of `argon2_failures` (default 60s).
    #[serde(
        default = "default_argon2_failure_window",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub argon2_failure_window: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate_per_second: default_rate_per_second(),
            burst: default_burst(),
            max_concurrent_requests: default_max_concurrent_requests(),
            request_timeout: default_request_timeout(),
            header_read_timeout: default_header_read_timeout(),
            body_read_timeout: default_body_read_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_peer: default_max_connections_per_peer(),
            peer_rate_per_second: default_peer_rate_per_second(),
            peer_burst: default_peer_burst(),
            argon2_concurrency: default_argon2_concurrency(),
            argon2_queue: default_argon2_queue(),
            argon2_failures: default_argon2_failures(),
            argon2_failure_window: default_argon2_failure_window(),
        }
    }
}

/// `[tokens]`: default lifetimes, overridable per client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Access token lifetime (default 5 minutes).
    #[serde(
        default = "default_access_ttl",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub access_ttl: Duration,
    /// Refresh token lifetime (default 24 hours).
    #[serde(
        default = "default_refresh_ttl",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub refresh_ttl: Duration,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            access_ttl: default_access_ttl(),
            refresh_ttl: default_refresh_ttl(),
        }
    }
}

/// `[store]`: where rules live. No Redis (`redis_url`, `sentinels` and
/// `cluster` all absent) means the in-memory store (one process); otherwise
/// exactly one of the three names the Redis topology.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// One Redis server's URL.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Redis Sentinel URLs: the master is found (and followed) through them.
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// With `sentinels`: the monitored master's name.
    #[serde(default)]
    pub sentinel_master: Option<String>,
    /// Seed nodes of a Redis Cluster.
    #[serde(default)]
    pub cluster: Vec<String>,
    /// Replicas that must confirm a revocation or re-approval (`WAIT`)
    /// before it is answered 200; 0 answers once the master took it.
    #[serde(default)]
    pub replica_acks: u64,
    /// How long to wait for those replicas before answering 503.
    #[serde(
        default = "default_replica_ack_timeout",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub replica_ack_timeout: Duration,
    /// Prefix of every Redis key (inside the `{…}` hash tag).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            redis_url: None,
            sentinels: Vec::new(),
            sentinel_master: None,
            cluster: Vec::new(),
            replica_acks: 0,
            replica_ack_timeout: default_replica_ack_timeout(),
            prefix: default_prefix(),
        }
    }
}

impl StoreConfig {
    /// The Redis topology configured, `None` for the in-memory store (or
    /// settings [`Config::validate`] refuses).
    pub fn topology(&self) -> Option<crate::store::redis::Topology> {
        crate::store::redis::Topology::from_parts(
            self.redis_url.clone(),
            self.sentinels.clone(),
            self.sentinel_master.clone(),
            self.cluster.clone(),
        )
        .ok()
    }

    /// The store options these settings give.
    pub fn options(&self) -> crate::store::redis::StoreOptions {
        crate::store::redis::StoreOptions {
            prefix: self.prefix.clone(),
            replica_acks: self.replica_acks,
            replica_ack_timeout: self.replica_ack_timeout,
            ..crate::store::redis::StoreOptions::default()
        }
    }

    fn problems(&self, problems: &mut Vec<String>) {
        use crate::store::redis::{Topology, TopologyError};
        match Topology::from_parts(
            self.redis_url.clone(),
            self.sentinels.clone(),
            self.sentinel_master.clone(),
            self.cluster.clone(),
        ) {
            Ok(_) | Err(TopologyError::Missing) => {}
            Err(error) => problems.push(format!(
                "store: {error} (redis_url, sentinels + sentinel_master, cluster)"
            )),
        }
        if self.replica_acks > 0 && self.replica_ack_timeout.is_zero() {
            problems.push("store.replica_ack_timeout must be positive".to_owned());
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            problems.push("store.prefix must be non-empty, without braces".to_owned());
        }
    }
}

fn default_replica_ack_timeout() -> Duration {
    Duration::from_millis(250)
}

/// What a revocation at `/oauth2/revoke` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cascade {
    /// Only the presented token (`jti:` rule).
    Token,
    /// Every token of the presented token's session (`sid:` rule).
    Session,
}

/// `[revocation]`: the cascade of `/oauth2/revoke`, per token type.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Revoking a refresh token revokes … (default: its session).
    #[serde(default = "default_refresh_cascade")]
    pub refresh_token: Cascade,
    /// Revoking an access token revokes … (default: that token only).
    #[serde(default = "default_access_cascade")]
    pub access_token: Cascade,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            refresh_token: default_refresh_cascade(),
            access_token: default_access_cascade(),
        }
    }
}

/// One `[[signing_keys]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The `kid` header of tokens it signs.
    pub kid: String,
    /// PKCS#8 PEM file; the algorithm follows the key (Ed25519 → EdDSA).
    pub private_key_file: PathBuf,
}

/// A grant type a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §4.3.
    Password,
    /// RFC 6749 §6.
    RefreshToken,
}

impl GrantType {
    /// Every grant, in the metadata's order.
    pub const ALL: [GrantType; 3] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
    ];

    /// The `grant_type` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[clients]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client id.
    pub id: String,
    /// `sha256:<hex>` of a generated secret, or an argon2 PHC string.
    pub secret_hash: String,
    /// Grants the client may use.
    #[serde(default)]
    pub grants: Vec<GrantType>,
    /// Scopes the client may request.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes granted when a request names none (default: all of `scopes`).
    #[serde(default)]
    pub default_scopes: Option<Vec<String>>,
    /// The `aud` of its access tokens (default: the issuer).
    #[serde(default)]
    pub audience: Vec<String>,
    /// Overrides `[tokens] access_ttl` for this client.
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub access_ttl: Option<Duration>,
    /// Overrides `[tokens] refresh_ttl` for this client.
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub refresh_ttl: Option<Duration>,
}

/// One `[[users]]` entry, for the `password` grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The `username` parameter, and the `sub` of the user's tokens.
    pub username: String,
    /// An argon2 PHC string.
    pub password_hash: String,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file or an override is malformed, or names an unknown key.
    #[error("configuration: {0}")]
    Parse(String),
    /// The configuration parses but is not usable; every problem is listed.
    #[error("configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: default_issuer(),
            listen: default_listen(),
            tokens: TokensConfig::default(),
            store: StoreConfig::default(),
            revocation: RevocationConfig::default(),
            signing_keys: Vec::new(),
            clients: Vec::new(),
            users: Vec::new(),
            limits: LimitsConfig::default(),
        }
    }
}

// === impl Config ===

impl Config {
    /// Reads `file` (if any), then applies every `REVOKD_*` variable of `env`
    /// (`__` separates nesting levels), then validates the result.
    ///
    /// Pass `std::env::vars()` in production and a list in tests.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?;
            figment = figment.merge(Toml::string(&text));
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("REVOKD_") else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            let value: figment::value::Value = value
                .parse()
                .map_err(|_| ConfigError::Parse(format!("{name}: unreadable value")))?;
            figment = figment.merge(Serialized::default(&key, value));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document with no environment overrides (tests, tools).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: every problem is reported at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.issuer.is_empty() {
            problems.push("issuer is empty".to_owned());
        }
        if self.tokens.access_ttl.is_zero() || self.tokens.refresh_ttl.is_zero() {
            problems.push("token lifetimes must be positive".to_owned());
        }
        let limits = &self.limits;
        if !(limits.rate_per_second.is_finite() && limits.rate_per_second > 0.0) {
            problems.push("limits.rate_per_second must be a positive number".to_owned());
        }
        if limits.burst == 0 {
            problems.push("limits.burst must be at least 1".to_owned());
        }
        if limits.max_concurrent_requests == 0 {
            problems.push("limits.max_concurrent_requests must be at least 1".to_owned());
        }
        if limits.request_timeout.is_zero() {
            problems.push("limits.request_timeout must be positive".to_owned());
        }
        for (name, value) in [
            ("header_read_timeout", limits.header_read_timeout),
            ("body_read_timeout", limits.body_read_timeout),
            ("argon2_failure_window", limits.argon2_failure_window),
        ] {
            if value.is_zero() {
                problems.push(format!("limits.{name} must be positive"));
            }
        }
        for (name, value) in [
            ("max_connections", limits.max_connections),
            ("max_connections_per_peer", limits.max_connections_per_peer),
            ("argon2_concurrency", limits.argon2_concurrency),
        ] {
            if value == 0 {
                problems.push(format!("limits.{name} must be at least 1"));
            }
        }
        if limits.max_connections_per_peer > limits.max_connections {
            problems.push(
                "limits.max_connections_per_peer must not exceed limits.max_connections".to_owned(),
            );
        }
        if !(limits.peer_rate_per_second.is_finite() && limits.peer_rate_per_second > 0.0) {
            problems.push("limits.peer_rate_per_second must be a positive number".to_owned());
        }
        if limits.peer_burst == 0 {
            problems.push("limits.peer_burst must be at least 1".to_owned());
        }
        if limits.argon2_failures == 0 {
            problems.push("limits.argon2_failures must be at least 1".to_owned());
        }
        self.store.problems(&mut problems);
        let mut seen = std::collections::HashSet::new();
        for client in &self.clients {
            if client.id.is_empty() || client.id.chars().any(char::is_control) {
                problems.push("a client id is empty or has control characters".to_owned());
            }
            if !seen.insert(client.id.as_str()) {
                problems.push(format!("client {:?} is listed twice", client.id));
            }
            if !client.secret_hash.starts_with("sha256:")
                && !client.secret_hash.starts_with("$argon2")
            {
                problems.push(format!(
                    "client {:?}: secret_hash must be sha256:<hex> or an argon2 PHC string",
                    client.id
                ));
            }
            if let Some(defaults) = &client.default_scopes
                && let Some(s) = defaults.iter().find(|s| !client.scopes.contains(s))
            {
                problems.push(format!(
                    "client {:?}: default scope {s:?} is not in its scopes",
                    client.id
                ));
            }
        }
        let mut users = std::collections::HashSet::new();
        for user in &self.users {
            if !users.insert(user.username.as_str()) {
                problems.push(format!("user {:?} is listed twice", user.username));
            }
        }
        let mut kids = std::collections::HashSet::new();
        for key in &self.signing_keys {
            if !kids.insert(key.kid.as_str()) {
                problems.push(format!("signing key kid {:?} is listed twice", key.kid));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn default_issuer() -> String {
    "http://127.0.0.1:8080".to_owned()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

fn default_access_ttl() -> Duration {
    Duration::from_secs(5 * 60)
}

fn default_refresh_ttl() -> Duration {
    Duration::from_secs(24 * 60 * 60)
}

fn default_prefix() -> String {
    "revokd".to_owned()
}

fn default_rate_per_second() -> f64 {
    1000.0
}

fn default_burst() -> u32 {
    2000
}

fn default_max_concurrent_requests() -> usize {
    1024
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_body_read_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_connections() -> usize {
    4096
}

fn default_max_connections_per_peer() -> usize {
    256
}

fn default_peer_rate_per_second() -> f64 {
    2000.0
}

fn default_peer_burst() -> u32 {
    4000
}

fn default_argon2_concurrency() -> usize {
    2
}

fn default_argon2_queue() -> usize {
    32
}

fn default_argon2_failures() -> u32 {
    10
}

fn default_argon2_failure_window() -> Duration {
    Duration::from_secs(60)
}

fn default_refresh_cascade() -> Cascade {
    Cascade::Session
}

fn default_access_cascade() -> Cascade {
    Cascade::Token
}

// === durations: humantime strings, or whole seconds ===

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Secs(u64),
    Text(String),
}

fn parse_duration(raw: RawDuration) -> Result<Duration, String> {
    match raw {
        RawDuration::Secs(s) => Ok(Duration::from_secs(s)),
        RawDuration::Text(t) => humantime::parse_duration(&t).map_err(|e| format!("{t:?}: {e}")),
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(RawDuration::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<RawDuration>::deserialize(d)? {
        None => Ok(None),
        Some(raw) => parse_duration(raw)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
issuer = "https://auth.example.com"
listen = "0.0.0.0:8080"

[tokens]
access_ttl = "5m"
refresh_ttl = "24h"

[store]
prefix = "revokd"

[[signing_keys]]
kid = "2026-11"
private_key_file = "keys/2026-11.pem"

[[clients]]
id = "web"
secret_hash = "sha256:00"
grants = ["client_credentials", "password", "refresh_token"]
scopes = ["read", "write"]
audience = ["api"]

[[users]]
username = "alice"
password_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"
"#;

    #[test]
    fn the_design_sample_parses() {
        let config = Config::from_toml(SAMPLE).unwrap();
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(300));
        assert_eq!(config.clients[0].grants.len(), 3);
        assert_eq!(config.revocation.refresh_token, Cascade::Session);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("issuer = \"x\"\nlisten_addr = \"1\"\n").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
        let err = Config::from_toml("[tokens]\naccess = \"5m\"\n").unwrap_err();
        assert!(err.to_string().contains("access"), "{err}");
    }

    #[test]
    fn env_overrides_nested_keys() {
        let dir = std::env::temp_dir().join(format!("revokd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("revokd.toml");
        std::fs::write(&file, SAMPLE).unwrap();
        let env = [
            ("REVOKD_TOKENS__ACCESS_TTL".to_owned(), "10m".to_owned()),
            (
                "REVOKD_STORE__REDIS_URL".to_owned(),
                "redis://127.0.0.1:1".to_owned(),
            ),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let config = Config::load(Some(&file), env).unwrap();
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(600));
        assert_eq!(
            config.store.redis_url.as_deref(),
            Some("redis://127.0.0.1:1")
        );
        let err =
            Config::load(Some(&file), [("REVOKD_NOPE".to_owned(), "1".to_owned())]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn limits_have_defaults_and_are_checked() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.limits.request_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.burst, 2000);
        let config = Config::from_toml(
            "[limits]\nrate_per_second = 2.5\nburst = 5\nmax_concurrent_requests = 8\nrequest_timeout = \"1500ms\"\n",
        )
        .unwrap();
        assert_eq!(config.limits.rate_per_second, 2.5);
        assert_eq!(config.limits.request_timeout, Duration::from_millis(1500));
        let err = Config::from_toml(
            "[limits]\nrate_per_second = 0\nburst = 0\nmax_concurrent_requests = 0\nrequest_timeout = \"0s\"\n",
        )
        .unwrap_err()
        .to_string();
        for key in [
            "rate_per_second",
            "burst",
            "max_concurrent_requests",
            "request_timeout",
        ] {
            assert!(err.contains(key), "{key}: {err}");
        }
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.body_read_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.max_connections, 4096);
        assert_eq!(config.limits.max_connections_per_peer, 256);
        assert_eq!(config.limits.argon2_concurrency, 2);
        assert_eq!(config.limits.argon2_queue, 32);
        let err = Config::from_toml(
            "[limits]\nheader_read_timeout = \"0s\"\nbody_read_timeout = \"0s\"\n\
             max_connections = 4\nmax_connections_per_peer = 8\npeer_rate_per_second = -1\n\
             peer_burst = 0\nargon2_concurrency = 0\nargon2_failures = 0\n\
             argon2_failure_window = \"0s\"\n",
        )
        .unwrap_err()
        .to_string();
        for key in [
            "header_read_timeout",
            "body_read_timeout",
            "max_connections_per_peer must not exceed",
            "peer_rate_per_second",
            "peer_burst",
            "argon2_concurrency",
            "argon2_failures ",
            "argon2_failure_window",
        ] {
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let err = Config::from_toml(
            "[[clients]]\nid = \"a\"\nsecret_hash = \"plain\"\n[[clients]]\nid = \"a\"\nsecret_hash = \"sha256:00\"\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("listed twice") && text.contains("secret_hash"),
            "{text}"
        );
    }
}
