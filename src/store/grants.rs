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
