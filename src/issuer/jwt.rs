//! The issuer's own tokens: signed with the active key, verified with any
//! key of ours through the one JWT core ([`crate::jwt`]), the same checks a
//! resource server's verifier runs, with the issuer's expectations: `iss`
//! is this issuer, a refresh token's `aud` is this issuer too, no leeway
//! (these are our own clocks, read once by the caller), and a `sid`.

use crate::jwt::{self, Expected, VerifyError};
use crate::signing::SigningKeys;

pub use crate::jwt::{Audience, Claims, TokenKind};
pub use crate::signing::SignError;

/// Signs `claims` with the active key.
pub fn sign(keys: &SigningKeys, kind: TokenKind, claims: &Claims) -> Result<String, SignError> {
    keys.active().sign(kind, claims)
}

/// Verifies a token of ours at `now` (seconds since the epoch): a valid,
/// unexpired token of `want` (or of either kind when `want` is `None`).
/// Revocation is not checked here: ask the denylist.
pub fn verify(
    keys: &SigningKeys,
    issuer: &str,
    token: &str,
    want: Option<TokenKind>,
    now: u64,
) -> Result<(TokenKind, Claims), VerifyError> {
    let header = jwt::read_header(token)?;
    if want.is_some_and(|w| w != header.kind) {
        return Err(VerifyError::WrongType);
    }
    let key = keys.get(&header.kid).ok_or(VerifyError::UnknownKid)?;
    let expected = Expected {
        issuer,
        audience: (header.kind == TokenKind::Refresh).then_some(issuer),
        leeway: 0,
    };
    let claims = jwt::check_claims(token, &header, key.verifying_key(), expected, now)?;
    if claims.sid.is_empty() {
        // Every token this issuer signs carries its session.
        return Err(VerifyError::InvalidClaims);
    }
    Ok((header.kind, claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningAlg;

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "https://issuer.test".into(),
            sub: "alice".into(),
            aud: Audience::One("https://issuer.test".into()),
            client_id: "web".into(),
            scope: "read".into(),
            iat: 100,
            exp,
            nbf: None,
            jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            sid: "BBBBBBBBBBBBBBBBBBBBBB".into(),
            resource: Vec::new(),
        }
    }

    #[test]
    fn a_token_is_refused_on_and_after_its_exp() {
        let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
        let token = sign(&keys, TokenKind::Access, &claims(1000)).unwrap();
        let iss = "https://issuer.test";
        assert!(verify(&keys, iss, &token, Some(TokenKind::Access), 999).is_ok());
        assert!(verify(&keys, iss, &token, Some(TokenKind::Access), 1000).is_err());
        assert!(verify(&keys, "https://other.test", &token, None, 999).is_err());
    }

    #[test]
    fn the_kind_comes_from_typ_and_must_match() {
        let keys = SigningKeys::ephemeral(SigningAlg::ES256).unwrap();
        let iss = "https://issuer.test";
        let refresh = sign(&keys, TokenKind::Refresh, &claims(1000)).unwrap();
        assert!(verify(&keys, iss, &refresh, Some(TokenKind::Access), 1).is_err());
        let (kind, _) = verify(&keys, iss, &refresh, None, 1).unwrap();
        assert_eq!(kind, TokenKind::Refresh);
        // A refresh token must name the issuer as its audience.
        let mut wrong_aud = claims(1000);
        wrong_aud.aud = Audience::One("api".into());
        let token = sign(&keys, TokenKind::Refresh, &wrong_aud).unwrap();
        assert!(verify(&keys, iss, &token, None, 1).is_err());
        // A token without a session is not one of ours.
        let mut no_sid = claims(1000);
        no_sid.sid.clear();
        let token = sign(&keys, TokenKind::Access, &no_sid).unwrap();
        assert_eq!(
            verify(&keys, iss, &token, None, 1).map(|_| ()),
            Err(VerifyError::InvalidClaims)
        );
    }
}
