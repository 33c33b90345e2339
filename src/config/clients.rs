//! `[[clients]]` and `[[users]]`: who may ask for tokens, and how.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// RFC 6749 §4.1, with PKCE (RFC 7636): third-party apps.
    AuthorizationCode,
}

impl GrantType {
    /// Every grant, in the metadata's order.
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
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
            GrantType::AuthorizationCode => "authorization_code",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[clients]]` entry. `id` is required (and `secret_hash` unless the
/// client is `public`), so it has no `Default`: each optional key has its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client id.
    pub id: String,
    /// `sha256:<hex>` of a generated secret, or an argon2 PHC string (empty
    /// for a public client).
    #[serde(default)]
    pub secret_hash: String,
    /// What the consent and account pages call it (default: its id).
    #[serde(default)]
    pub name: Option<String>,
    /// Where authorization responses may go, matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// A public client (a native or browser app, an MCP client): no secret,
    /// PKCE required, it authenticates with its `client_id` alone.
    #[serde(default)]
    pub public: bool,
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
    #[serde(default, with = "super::duration::option")]
    pub access_ttl: Option<Duration>,
    /// Overrides `[tokens] refresh_ttl` for this client.
    #[serde(default, with = "super::duration::option")]
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

/// `[registration]`: RFC 7591 dynamic registration at `/oauth2/register`,
/// for public clients only (PKCE, no secret), off by default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Whether `/oauth2/register` is open (default false; on in dev mode).
    pub enabled: bool,
    /// The scopes a registered client may ask for (default none).
    pub scopes: Vec<String>,
    /// The audience of a registered client's tokens (default: the issuer).
    pub audience: Vec<String>,
    /// How long a registration lasts (default 30 days).
    #[serde(with = "super::duration")]
    pub client_ttl: Duration,
    /// Registered clients that may live at once (default 10 000): past it,
    /// 503 until some expire. Bounds the store's memory.
    pub max_clients: u64,
    /// Registrations one peer address may make per hour (default 20, all
    /// at once at most).
    pub per_peer_per_hour: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            enabled: false,
            scopes: Vec::new(),
            audience: Vec::new(),
            client_ttl: Duration::from_secs(30 * 24 * 3600),
            max_clients: 10_000,
            per_peer_per_hour: 20,
        }
    }
}
