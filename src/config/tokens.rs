//! `[tokens]`, `[revocation]` and `[[signing_keys]]`: how long tokens live,
//! what signs them, and what revoking one covers.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[tokens]`: default lifetimes, overridable per client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// Access token lifetime (default 5 minutes).
    #[serde(with = "super::duration")]
    pub access_ttl: Duration,
    /// Refresh token lifetime (default 24 hours).
    #[serde(with = "super::duration")]
    pub refresh_ttl: Duration,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            access_ttl: Duration::from_secs(5 * 60),
            refresh_ttl: Duration::from_secs(24 * 60 * 60),
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
#[serde(default, deny_unknown_fields)]
pub struct RevocationConfig {
    /// Revoking a refresh token revokes … (default: its session).
    pub refresh_token: Cascade,
    /// Revoking an access token revokes … (default: that token only).
    pub access_token: Cascade,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            refresh_token: Cascade::Session,
            access_token: Cascade::Token,
        }
    }
}
