//! The issuer's JWTs: claims, signing, and the strict verification every
//! endpoint uses (introspection, revocation, refresh, the admin API).
//!
//! Verification: the header must parse, carry no `crit`, a `typ` of
//! `at+jwt` or `rt+jwt` and a `kid` found in our key map; the allowed
//! algorithm is that key's (never the header's), so `none` and HS/asymmetric
//! confusion fail. Then signature, `iss`, `exp` (no leeway: these are our
//! own clocks, read once by the caller), and for refresh tokens `aud` = the
//! issuer.

use serde::{Deserialize, Serialize};

use crate::keys::KeySet;

/// Longest token we look at; anything longer is not ours.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Access or refresh token, told apart by the header's `typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `typ: at+jwt` (RFC 9068).
    Access,
    /// `typ: rt+jwt`, `aud` = the issuer.
    Refresh,
}

impl TokenKind {
    /// The `typ` header value.
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Refresh => "rt+jwt",
        }
    }

    fn from_typ(typ: &str) -> Option<TokenKind> {
        // RFC 7515 §4.1.9: `application/` may be omitted; compare ignoring case.
        let typ = typ
            .strip_prefix("application/")
            .or_else(|| typ.strip_prefix("APPLICATION/"))
            .unwrap_or(typ);
        if typ.eq_ignore_ascii_case("at+jwt") {
            Some(TokenKind::Access)
        } else if typ.eq_ignore_ascii_case("rt+jwt") {
            Some(TokenKind::Refresh)
        } else {
            None
        }
    }
}

/// `aud`: one string or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Builds the claim from a list (one entry becomes a string).
    pub fn from_list(list: &[String]) -> Audience {
        match list {
            [one] => Audience::One(one.clone()),
            many => Audience::Many(many.to_vec()),
        }
    }

    /// Whether `aud` names `who`.
    pub fn contains(&self, who: &str) -> bool {
        match self {
            Audience::One(a) => a == who,
            Audience::Many(list) => list.iter().any(|a| a == who),
        }
    }
}

/// The claims of both token kinds (the exact set in `docs/contract.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// The user, or the client id for `client_credentials` (RFC 9068 §2.2).
    pub sub: String,
    /// Who the token is for (the issuer itself for refresh tokens).
    pub aud: Audience,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// 128 random bits, base64url without padding.
    pub jti: String,
    /// The grant (session) id shared by one login's refresh chain.
    pub sid: String,
}

impl Claims {
    /// The keys the denylist checks for this token.
    pub fn token_keys(&self) -> crate::rule::TokenKeys<'_> {
        crate::rule::TokenKeys {
            jti: &self.jti,
            sid: Some(&self.sid),
            sub: Some(&self.sub),
            client_id: &self.client_id,
            iat: self.iat,
        }
    }

    /// Whether the space-separated `scope` has `wanted`.
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope.split(' ').any(|s| s == wanted)
    }
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(String);

/// Signs `claims` with the active key.
pub fn sign(keys: &KeySet, kind: TokenKind, claims: &Claims) -> Result<String, SignError> {
    let key = keys.active();
    let mut header = jsonwebtoken::Header::new(key.algorithm());
    header.typ = Some(kind.typ().to_owned());
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, claims, key.encoding_key()).map_err(|e| SignError(e.to_string()))
}

/// Verifies a token of ours at `now` (seconds since the epoch). `None` for
/// anything that is not a valid, unexpired token of `want` (or of either
/// kind when `want` is `None`). Revocation is not checked here: ask the
/// denylist.
pub fn verify(
    keys: &KeySet,
    issuer: &str,
    token: &str,
    want: Option<TokenKind>,
    now: u64,
) -> Option<(TokenKind, Claims)> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    // RFC 7515 §4.1.11: we understand no extension, so any `crit` is unknown.
    if header.crit.is_some() {
        return None;
    }
    let kind = TokenKind::from_typ(header.typ.as_deref()?)?;
    if want.is_some_and(|w| w != kind) {
        return None;
    }
    // RFC 8725 §3.10: the kid is untrusted input, looked up only in our map.
    let key = keys.get(header.kid.as_deref()?)?;
    if header.alg != key.algorithm() {
        return None;
    }
    let mut validation = jsonwebtoken::Validation::new(key.algorithm());
    // `exp` is checked below against the `now` we were given (time is a
    // parameter; jsonwebtoken would read the system clock, with leeway).
    validation.validate_exp = false;
    validation.leeway = 0;
    validation.set_issuer(&[issuer]);
    match kind {
        TokenKind::Access => {
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        }
        TokenKind::Refresh => {
            validation.set_audience(&[issuer]);
            validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        }
    }
    let data = jsonwebtoken::decode::<Claims>(token, key.decoding_key(), &validation).ok()?;
    // RFC 7519 §4.1.4: not accepted on or after `exp`.
    if now >= data.claims.exp {
        return None;
    }
    Some((kind, data.claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyAlg;

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "https://issuer.test".into(),
            sub: "alice".into(),
            aud: Audience::One("https://issuer.test".into()),
            client_id: "web".into(),
            scope: "read".into(),
            iat: 100,
            exp,
            jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            sid: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        }
    }

    #[test]
    fn a_token_is_refused_on_and_after_its_exp() {
        let keys = KeySet::ephemeral(KeyAlg::EdDSA).unwrap();
        let token = sign(&keys, TokenKind::Access, &claims(1000)).unwrap();
        let iss = "https://issuer.test";
        assert!(verify(&keys, iss, &token, Some(TokenKind::Access), 999).is_some());
        assert!(verify(&keys, iss, &token, Some(TokenKind::Access), 1000).is_none());
        assert!(verify(&keys, "https://other.test", &token, None, 999).is_none());
    }

    #[test]
    fn the_kind_comes_from_typ_and_must_match() {
        let keys = KeySet::ephemeral(KeyAlg::ES256).unwrap();
        let iss = "https://issuer.test";
        let refresh = sign(&keys, TokenKind::Refresh, &claims(1000)).unwrap();
        assert!(verify(&keys, iss, &refresh, Some(TokenKind::Access), 1).is_none());
        let (kind, _) = verify(&keys, iss, &refresh, None, 1).unwrap();
        assert_eq!(kind, TokenKind::Refresh);
        // A refresh token must name the issuer as its audience.
        let mut wrong_aud = claims(1000);
        wrong_aud.aud = Audience::One("api".into());
        let token = sign(&keys, TokenKind::Refresh, &wrong_aud).unwrap();
        assert!(verify(&keys, iss, &token, None, 1).is_none());
        assert_eq!(
            TokenKind::from_typ("application/AT+JWT"),
            Some(TokenKind::Access)
        );
    }
}
