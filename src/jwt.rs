//! The one JWT core: the claims of revokd's tokens, the header checks, the
//! claim checks and the bearer header, shared by the resource servers'
//! [`Verifier`](crate::verify::Verifier) and the issuer (introspection,
//! revocation, refresh, the admin API), so the two cannot disagree on what
//! a token is.
//!
//! # What a token must pass
//!
//! 1. [`read_header`]: at most [`MAX_TOKEN_LEN`] bytes, a JWS header that
//!    parses, no `crit` (RFC 7515 §4.1.11: we understand no extension), a
//!    `typ` of `at+jwt` or `rt+jwt` ([`TokenKind::from_typ`]: the
//!    `application/` prefix and case ignored), a `kid`;
//! 2. the caller looks the `kid` up in its own key map (RFC 8725 §3.10: the
//!    `kid` is untrusted input; `jku`, `x5u` and `jwk` are never followed);
//! 3. [`check_claims`]: the header's `alg` is the key's own (so `none` and
//!    HS256-with-the-public-key fail), the signature, `iss`, `aud` when one is
//!    expected, the claims present, `exp` and `nbf` against the caller's
//!    `now` within its leeway.
//!
//! A [`VerifyingKey`] carries its `Validation`, built once when the key is
//! loaded, never per token.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::rule::{KeyKind, TokenKeys};

/// Longest token looked at; anything longer is refused unparsed.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

// === claims ===

/// Access or refresh token, told apart by the header's `typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `typ: at+jwt` (RFC 9068).
    Access,
    /// `typ: rt+jwt`, `aud` = the issuer.
    Refresh,
}

impl TokenKind {
    /// The `typ` header value the issuer writes.
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Refresh => "rt+jwt",
        }
    }

    /// Reads a `typ` header value. RFC 7515 §4.1.9: the `application/`
    /// prefix may be omitted; compared ignoring case.
    pub fn from_typ(typ: &str) -> Option<TokenKind> {
        const PREFIX: &str = "application/";
        let typ = match typ.get(..PREFIX.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
            _ => typ,
        };
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

    /// The audiences, as a list.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(list) => list,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// The user, or the client id for `client_credentials` (RFC 9068 §2.2).
    pub sub: String,
    /// Who the token is for (the issuer itself for refresh tokens).
    pub aud: Audience,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes (empty when absent).
    #[serde(default)]
    pub scope: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch (the issuer never writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The token's id: 128 random bits, base64url without padding.
    pub jti: String,
    /// The grant (session) id shared by one login's refresh chain (empty
    /// when absent). The issuer writes it in every token and refuses its own
    /// tokens without one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    /// Refresh tokens only: the resources (RFC 8707) the grant was narrowed
    /// to at authorization, which every access token of its refresh chain
    /// keeps as its audience; empty when the grant named none (the client's
    /// whole audience).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
}

impl Claims {
    /// The keys the denylist checks for this token.
    pub fn token_keys(&self) -> TokenKeys<'_> {
        TokenKeys {
            jti: &self.jti,
            sid: (!self.sid.is_empty()).then_some(self.sid.as_str()),
            sub: Some(&self.sub),
            client_id: &self.client_id,
            iat: self.iat,
        }
    }

    /// The scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token carries `wanted`.
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes().any(|s| s == wanted)
    }
}

// === errors ===

/// Why a token was refused. Every variant maps to RFC 6750's
/// `invalid_token`; the text says why, for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// Not a JWS compact serialisation with a JSON header.
    #[error("token is not a well-formed JWT")]
    Malformed,
    /// The header has a `crit` parameter.
    #[error("token header has a crit parameter")]
    Crit,
    /// `typ` is `rt+jwt` where an access token was wanted.
    #[error("a refresh token is not an access token")]
    RefreshToken,
    /// `typ` is missing, not `at+jwt` or `rt+jwt`, or not the kind wanted.
    #[error("token typ is not the kind wanted")]
    WrongType,
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// No key with this `kid` (for a verifier: even after a refetch, or a
    /// refetch was not allowed yet).
    #[error("no key with the token's kid")]
    UnknownKid,
    /// The header's `alg` is not the key's.
    #[error("token alg does not match its key's algorithm")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `iss` is not the expected issuer.
    #[error("token issuer is not the configured one")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("token audience does not include this resource server")]
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    #[error("token claims are missing or malformed")]
    InvalidClaims,
    /// `exp` passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// A revocation rule covers the token.
    #[error("token is revoked (by a {0} rule)")]
    Revoked(KeyKind),
}

impl VerifyError {
    /// A short reason safe to show a client (`error_description`).
    pub fn description(&self) -> &'static str {
        match self {
            VerifyError::Expired => "the access token expired",
            VerifyError::Revoked(_) => "the access token was revoked",
            VerifyError::RefreshToken => "a refresh token is not an access token",
            VerifyError::WrongAudience => "the access token is not for this resource",
            _ => "the access token is invalid",
        }
    }
}

// === keys and checks ===

/// A public key with the `Validation` that goes with it, built once.
pub struct VerifyingKey {
    alg: Algorithm,
    decoding: DecodingKey,
    validation: Validation,
}

impl VerifyingKey {
    /// Wraps `decoding`, a key of `alg`. `exp`, `nbf`, `iss` and `aud` are
    /// checked by [`check_claims`] against the caller's expectations and
    /// clock (time is a parameter; jsonwebtoken would read the system clock).
    pub fn new(alg: Algorithm, decoding: DecodingKey) -> VerifyingKey {
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        VerifyingKey {
            alg,
            decoding,
            validation,
        }
    }

    /// The key's algorithm: the only one its tokens may name.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// What a token's header said, once [`read_header`] accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    /// From `typ`.
    pub kind: TokenKind,
    /// The key id, untrusted: look it up in your own map only.
    pub kid: String,
    /// The algorithm the header names.
    pub alg: Algorithm,
}

/// Step 1: size, header, `crit`, `typ`, `kid`.
pub fn read_header(token: &str) -> Result<TokenHeader, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::TooLong);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.crit.is_some() {
        return Err(VerifyError::Crit);
    }
    let kind = header
        .typ
        .as_deref()
        .and_then(TokenKind::from_typ)
        .ok_or(VerifyError::WrongType)?;
    let kid = header.kid.ok_or(VerifyError::MissingKid)?;
    Ok(TokenHeader {
        kind,
        kid,
        alg: header.alg,
    })
}

/// What the claims must say, beyond being well formed.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// `iss`, exactly.
    pub issuer: &'a str,
    /// A name `aud` must contain, if any.
    pub audience: Option<&'a str>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

/// Step 3: algorithm, signature, claims, `iss`, `aud`, `exp` and `nbf` at
/// `now` (seconds since the epoch). RFC 7519 §4.1.4: not accepted on or
/// after `exp` (plus the leeway).
pub fn check_claims(
    token: &str,
    header: &TokenHeader,
    key: &VerifyingKey,
    expected: Expected<'_>,
    now: u64,
) -> Result<Claims, VerifyError> {
    if header.alg != key.alg {
        return Err(VerifyError::AlgorithmMismatch);
    }
    let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => VerifyError::BadSignature,
            ErrorKind::InvalidAlgorithm => VerifyError::AlgorithmMismatch,
            ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => VerifyError::InvalidClaims,
            _ => VerifyError::Malformed,
        })?
        .claims;
    if claims.iss != expected.issuer {
        return Err(VerifyError::WrongIssuer);
    }
    if expected
        .audience
        .is_some_and(|audience| !claims.aud.contains(audience))
    {
        return Err(VerifyError::WrongAudience);
    }
    if claims.exp.saturating_add(expected.leeway) <= now {
        return Err(VerifyError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(expected.leeway))
    {
        return Err(VerifyError::NotYetValid);
    }
    Ok(claims)
}

// === the bearer header ===

/// Why the `Authorization` header could not be read as a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// Several `Authorization` headers (RFC 6750 §2: one method, once).
    #[error("several Authorization headers")]
    Several,
    /// The header is not UTF-8: no token of ours.
    #[error("the Authorization header is not UTF-8")]
    Malformed,
}

/// The bearer token of a request, RFC 6750 §2.1 (`Bearer` case-insensitive,
/// spaces around the token ignored). `Ok(None)` when there is no
/// `Authorization` header or it names another scheme (Basic, …).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Several);
    }
    // UTF-8 validation has a word-at-a-time ASCII fast path; `to_str`'s
    // per-byte visible-ASCII check costs more on a 500-byte token. Anything
    // that is not a token fails verification anyway.
    let value = std::str::from_utf8(value.as_bytes()).map_err(|_| BearerError::Malformed)?;
    match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => {
            Ok(Some(value[7..].trim_matches(' ')))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn typ_ignores_case_and_the_application_prefix() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert_eq!(TokenKind::from_typ(typ), Some(TokenKind::Access), "{typ}");
        }
        assert_eq!(
            TokenKind::from_typ("APPLICATION/rt+jwt"),
            Some(TokenKind::Refresh)
        );
        for typ in ["JWT", "applicationé/x", "application/", "at+jwt ", ""] {
            assert_eq!(TokenKind::from_typ(typ), None, "{typ}");
        }
    }

    #[test]
    fn scopes_ignore_empty_entries() {
        let mut claims = Claims {
            iss: "i".into(),
            sub: "alice".into(),
            aud: Audience::One("api".into()),
            client_id: "web".into(),
            scope: " read  write ".into(),
            iat: 1,
            exp: 2,
            nbf: None,
            jti: "j".into(),
            sid: String::new(),
            resource: Vec::new(),
        };
        assert!(claims.has_scope("read") && claims.has_scope("write"));
        assert!(!claims.has_scope(""));
        assert_eq!(claims.scopes().count(), 2);
        claims.scope.clear();
        assert!(!claims.has_scope("read"));
    }

    #[test]
    fn bearer_is_case_insensitive_single_and_utf8() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), Ok(None));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bEaReR  abc "));
        assert_eq!(bearer_token(&headers), Ok(Some("abc")));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), Ok(None));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(bearer_token(&headers), Err(BearerError::Several));
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(bearer_token(&headers), Err(BearerError::Malformed));
    }

    #[test]
    fn oversized_and_malformed_headers_are_refused_unparsed() {
        assert_eq!(
            read_header(&"a".repeat(MAX_TOKEN_LEN + 1)),
            Err(VerifyError::TooLong)
        );
        assert_eq!(read_header("a.b.c"), Err(VerifyError::Malformed));
        // {"alg":"EdDSA","typ":"JWT","kid":"k"}
        let jwt = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6ImsifQ.e30.";
        assert_eq!(read_header(jwt), Err(VerifyError::WrongType));
        // {"alg":"EdDSA","typ":"at+jwt"}
        let no_kid = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9.e30.";
        assert_eq!(read_header(no_kid), Err(VerifyError::MissingKid));
    }
}
