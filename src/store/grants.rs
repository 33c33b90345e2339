//! What third-party apps leave in the store: one-time authorization codes,
//! and one record per connected app (user, client), listed on `/account`.
//! Nothing per access token: a record expires with its refresh token.

use serde::{Deserialize, Serialize};

/// What presenting an authorization code found ([`super::RevocationStore::take_code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// The code had not been used: here is what it was issued for (now
    /// spent).
    Fresh(String),
    /// The code was used before: what it was issued for, so the session it
    /// started can be revoked (RFC 6749 §4.1.2).
    Reused(String),
    /// No such code (never issued, or expired).
    Unknown,
    /// The code was issued to another client, redirect URI or PKCE
    /// challenge than the presenter's: left as it was (neither spent nor
    /// judged reused), so whoever merely saw a code cannot spend it or end
    /// its session. What it was issued for, to say what did not match.
    Mismatch(String),
}

/// Who presents an authorization code: the store spends it only for the
/// client, redirect URI and PKCE challenge it was issued with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePresenter<'a> {
    /// The authenticated (or named, for a public client) client.
    pub client_id: &'a str,
    /// The token request's `redirect_uri` (empty when absent).
    pub redirect_uri: &'a str,
    /// The S256 challenge of the presented `code_verifier` (empty when
    /// absent).
    pub challenge: &'a str,
}

impl CodePresenter<'_> {
    /// Whether a code issued for `grant` (its JSON: `client_id`,
    /// `redirect_uri`, `code_challenge`) may be spent by this presenter.
    /// The Redis script (`store/lua/code.lua`) decides the same.
    pub fn matches(&self, grant: &str) -> bool {
        let Ok(grant) = serde_json::from_str::<serde_json::Value>(grant) else {
            return false;
        };
        let field = |name: &str| grant.get(name).and_then(serde_json::Value::as_str);
        field("client_id") == Some(self.client_id)
            && field("redirect_uri") == Some(self.redirect_uri)
            && field("code_challenge").unwrap_or("") == self.challenge
    }
}

/// One connected app of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// The scopes granted (space-separated).
    pub scope: String,
    /// When the user first authorized the app (seconds since the epoch).
    pub first_authorized: u64,
    /// When the app last obtained tokens with it (code or refresh).
    pub last_refreshed: u64,
    /// When its latest refresh token expires: the record goes then.
    pub expires_at: u64,
}

impl GrantRecord {
    /// The record after a newer use: the first authorization kept, the rest
    /// from `newer`.
    pub fn merged(&self, newer: &GrantRecord) -> GrantRecord {
        GrantRecord {
            first_authorized: self.first_authorized.min(newer.first_authorized),
            ..newer.clone()
        }
    }
}
