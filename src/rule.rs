//! The revocation vocabulary: rule keys, rules, and the keys of a token.
//!
//! A revocation is a [`Rule`]: `(key, revoked_before, expires_at)`. A token is
//! revoked when any of its keys ([`TokenKeys`]) has a rule with
//! `token.iat <= revoked_before` that has not expired. This module does no I/O.

use std::fmt;
use std::str::FromStr;

/// The longest value a rule key may carry, in bytes (the part after `kind:`).
pub const MAX_KEY_VALUE_LEN: usize = 256;

/// What a rule applies to. The string form (`jti:<jti>`, `sid:<sid>`, …) is the
/// contract used in Redis, events and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RuleKey {
    /// One token, by its `jti`.
    Jti(String),
    /// Every token of one grant (session), by its `sid`.
    Sid(String),
    /// Every token of one user.
    Sub(String),
    /// Every token of one client.
    Client(String),
    /// One user's tokens for one client.
    SubClient {
        /// The user.
        sub: String,
        /// The client.
        client: String,
    },
}

/// The kind of a [`RuleKey`], without its value: what a check reports as the
/// reason a token is revoked, and a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// `jti:`
    Jti,
    /// `sid:`
    Sid,
    /// `sub:`
    Sub,
    /// `client:`
    Client,
    /// `subclient:`
    SubClient,
}

impl KeyKind {
    /// Every kind, in the order a check looks at them.
    pub const ALL: [KeyKind; 5] = [
        KeyKind::Jti,
        KeyKind::Sid,
        KeyKind::Sub,
        KeyKind::Client,
        KeyKind::SubClient,
    ];

    /// The prefix of the key's string form, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Jti => "jti",
            KeyKind::Sid => "sid",
            KeyKind::Sub => "sub",
            KeyKind::Client => "client",
            KeyKind::SubClient => "subclient",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a valid [`RuleKey`] or [`Rule`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The key has no `kind:` prefix, or an unknown one.
    #[error("rule key must start with jti:, sid:, sub:, client: or subclient:")]
    UnknownKind,
    /// The value after the prefix is empty.
    #[error("rule key value is empty")]
    Empty,
    /// The value is longer than [`MAX_KEY_VALUE_LEN`] bytes.
    #[error("rule key value is longer than {MAX_KEY_VALUE_LEN} bytes")]
    TooLong,
    /// The value contains a control character.
    #[error("rule key value contains a control character")]
    ControlCharacter,
    /// A `subclient:` key is not `<sub>/<client_id>` with both parts present.
    #[error("subclient key must be subclient:<sub>/<client_id>")]
    BadSubClient,
}

impl RuleKey {
    /// The kind of this key.
    pub fn kind(&self) -> KeyKind {
        match self {
            RuleKey::Jti(_) => KeyKind::Jti,
            RuleKey::Sid(_) => KeyKind::Sid,
            RuleKey::Sub(_) => KeyKind::Sub,
            RuleKey::Client(_) => KeyKind::Client,
            RuleKey::SubClient { .. } => KeyKind::SubClient,
        }
    }

    /// Builds a key from its kind and value, validating the value.
    ///
    /// For [`KeyKind::SubClient`] the value is `<sub>/<client_id>`; the client
    /// id is the part after the last `/`, so a `sub` may contain slashes.
    pub fn new(kind: KeyKind, value: &str) -> Result<RuleKey, RuleError> {
        validate_value(value)?;
        let owned = value.to_owned();
        Ok(match kind {
            KeyKind::Jti => RuleKey::Jti(owned),
            KeyKind::Sid => RuleKey::Sid(owned),
            KeyKind::Sub => RuleKey::Sub(owned),
            KeyKind::Client => RuleKey::Client(owned),
            KeyKind::SubClient => {
                let (sub, client) = value.rsplit_once('/').ok_or(RuleError::BadSubClient)?;
                if sub.is_empty() || client.is_empty() {
                    return Err(RuleError::BadSubClient);
                }
                RuleKey::SubClient {
                    sub: sub.to_owned(),
                    client: client.to_owned(),
                }
            }
        })
    }
}

fn validate_value(value: &str) -> Result<(), RuleError> {
    if value.is_empty() {
        return Err(RuleError::Empty);
    }
    if value.len() > MAX_KEY_VALUE_LEN {
        return Err(RuleError::TooLong);
    }
    if value.chars().any(char::is_control) {
        return Err(RuleError::ControlCharacter);
    }
    Ok(())
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleKey::Jti(v) | RuleKey::Sid(v) | RuleKey::Sub(v) | RuleKey::Client(v) => {
                write!(f, "{}:{v}", self.kind())
            }
            RuleKey::SubClient { sub, client } => write!(f, "subclient:{sub}/{client}"),
        }
    }
}

impl FromStr for RuleKey {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (prefix, value) = s.split_once(':').ok_or(RuleError::UnknownKind)?;
        let kind = KeyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == prefix)
            .ok_or(RuleError::UnknownKind)?;
        RuleKey::new(kind, value)
    }
}

/// Which tokens of a key a rule revokes: those issued at or before an instant,
/// or all of them. `All` is larger than any `IssuedAtOrBefore`, so merging by
/// maximum works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RevokedBefore {
    /// Tokens with `iat <=` this many seconds since the Unix epoch.
    IssuedAtOrBefore(u64),
    /// Every token of the key, whenever issued.
    All,
}

impl RevokedBefore {
    /// Whether a token issued at `iat` falls under this bound.
    pub fn covers(self, iat: u64) -> bool {
        match self {
            RevokedBefore::IssuedAtOrBefore(bound) => iat <= bound,
            RevokedBefore::All => true,
        }
    }
}

/// A revocation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What the rule applies to.
    pub key: RuleKey,
    /// Which of the key's tokens it revokes.
    pub revoked_before: RevokedBefore,
    /// Seconds since the Unix epoch after which no token the rule can affect
    /// is still valid; the rule is dropped everywhere then.
    pub expires_at: u64,
}

impl Rule {
    /// Merges another rule for the same key into this one: the larger of each
    /// field wins, so merging is commutative, associative and idempotent.
    pub fn merge(&mut self, other: &Rule) {
        self.revoked_before = self.revoked_before.max(other.revoked_before);
        self.expires_at = self.expires_at.max(other.expires_at);
    }

    /// Whether the rule is still in force at `now` (seconds since the epoch).
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// Whether this rule revokes at least what `other` does, for at least as
    /// long (what merging `other` into it would leave unchanged).
    pub fn covers(&self, other: &Rule) -> bool {
        let bound = match (self.revoked_before, other.revoked_before) {
            (RevokedBefore::All, _) => true,
            (_, RevokedBefore::All) => false,
            (RevokedBefore::IssuedAtOrBefore(a), RevokedBefore::IssuedAtOrBefore(b)) => a >= b,
        };
        bound && self.expires_at >= other.expires_at
    }
}

/// The rule keys of one verified token, borrowed from its claims, plus its
/// `iat`. This is what a checker hands to the denylist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenKeys<'a> {
    /// The token's `jti`.
    pub jti: &'a str,
    /// The token's `sid` (grant id), if it has one.
    pub sid: Option<&'a str>,
    /// The token's `sub`, if it has one (client_credentials tokens may not).
    pub sub: Option<&'a str>,
    /// The token's `client_id`.
    pub client_id: &'a str,
    /// The token's `iat`, seconds since the Unix epoch.
    pub iat: u64,
}

impl TokenKeys<'_> {
    /// Every rule key this token can be revoked by, as owned keys. Handy for
    /// models and tests; the denylist hashes the borrowed strings instead.
    pub fn rule_keys(&self) -> Vec<RuleKey> {
        let mut keys = vec![RuleKey::Jti(self.jti.to_owned())];
        if let Some(sid) = self.sid {
            keys.push(RuleKey::Sid(sid.to_owned()));
        }
        if let Some(sub) = self.sub {
            keys.push(RuleKey::Sub(sub.to_owned()));
        }
        keys.push(RuleKey::Client(self.client_id.to_owned()));
        if let Some(sub) = self.sub {
            keys.push(RuleKey::SubClient {
                sub: sub.to_owned(),
                client: self.client_id.to_owned(),
            });
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_string_form() {
        for s in [
            "jti:abc",
            "sid:s1",
            "sub:alice",
            "client:web",
            "subclient:alice/web",
            "subclient:a/b/web",
        ] {
            let key: RuleKey = s.parse().unwrap();
            assert_eq!(key.to_string(), s);
        }
    }

    #[test]
    fn subclient_splits_at_the_last_slash() {
        let key: RuleKey = "subclient:org/alice/web".parse().unwrap();
        assert_eq!(
            key,
            RuleKey::SubClient {
                sub: "org/alice".into(),
                client: "web".into()
            }
        );
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert_eq!("nope".parse::<RuleKey>(), Err(RuleError::UnknownKind));
        assert_eq!("user:x".parse::<RuleKey>(), Err(RuleError::UnknownKind));
        assert_eq!("jti:".parse::<RuleKey>(), Err(RuleError::Empty));
        assert_eq!(
            "jti:a\nb".parse::<RuleKey>(),
            Err(RuleError::ControlCharacter)
        );
        assert_eq!(
            "subclient:alice".parse::<RuleKey>(),
            Err(RuleError::BadSubClient)
        );
        assert_eq!(
            "subclient:/web".parse::<RuleKey>(),
            Err(RuleError::BadSubClient)
        );
        let long = format!("sub:{}", "x".repeat(MAX_KEY_VALUE_LEN + 1));
        assert_eq!(long.parse::<RuleKey>(), Err(RuleError::TooLong));
    }

    #[test]
    fn merge_keeps_the_larger_of_each_field() {
        let key = RuleKey::Sub("alice".into());
        let mut a = Rule {
            key: key.clone(),
            revoked_before: RevokedBefore::IssuedAtOrBefore(100),
            expires_at: 500,
        };
        let b = Rule {
            key: key.clone(),
            revoked_before: RevokedBefore::IssuedAtOrBefore(200),
            expires_at: 400,
        };
        a.merge(&b);
        assert_eq!(a.revoked_before, RevokedBefore::IssuedAtOrBefore(200));
        assert_eq!(a.expires_at, 500);
        a.merge(&Rule {
            key,
            revoked_before: RevokedBefore::All,
            expires_at: 1,
        });
        assert_eq!(a.revoked_before, RevokedBefore::All);
    }

    #[test]
    fn revoked_before_covers_tokens_issued_at_or_before_it() {
        let bound = RevokedBefore::IssuedAtOrBefore(100);
        assert!(bound.covers(99));
        assert!(bound.covers(100));
        assert!(!bound.covers(101));
        assert!(RevokedBefore::All.covers(u64::MAX));
    }

    #[test]
    fn token_keys_list_every_applicable_rule_key() {
        let keys = TokenKeys {
            jti: "j",
            sid: Some("s"),
            sub: Some("alice"),
            client_id: "web",
            iat: 1,
        };
        let listed: Vec<String> = keys.rule_keys().iter().map(ToString::to_string).collect();
        assert_eq!(
            listed,
            [
                "jti:j",
                "sid:s",
                "sub:alice",
                "client:web",
                "subclient:alice/web"
            ]
        );
        let machine = TokenKeys {
            sid: None,
            sub: None,
            ..keys
        };
        assert_eq!(machine.rule_keys().len(), 2);
    }
}
