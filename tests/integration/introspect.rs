//! `/oauth2/introspect` (RFC 7662) and the JWT checks behind it.

use crate::support::{self, ADMIN, WEB, assemble, decode_parts, key_set};
use revokd::issuer::jwt::{self, Claims, TokenKind};
use revokd::signing::SigningAlg;
use serde_json::{Value, json};

#[tokio::test]
async fn an_active_token_reports_the_rfc7662_members() {
    let server = support::start().await;
    let (access, _) = server.login(WEB).await;
    let body = server.introspect(&access).await;
    let (_, claims) = decode_parts(&access);
    assert_eq!(body["active"], true);
    for member in [
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "jti",
    ] {
        assert_eq!(body[member], claims[member], "{member}");
    }
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn introspection_needs_client_authentication_and_a_token() {
    let server = support::start().await;
    let access = server.cc_token(WEB).await;
    let resp = server
        .post_form("/oauth2/introspect", None, &[("token", access.as_str())])
        .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = server.post_form("/oauth2/introspect", Some(WEB), &[]).await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn garbage_is_exactly_active_false() {
    let server = support::start().await;
    let resp = server
        .post_form("/oauth2/introspect", Some(ADMIN), &[("token", "not-a-jwt")])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.text().await.unwrap(), r#"{"active":false}"#);
}

#[tokio::test]
async fn alg_none_is_inactive() {
    let server = support::start().await;
    let access = server.cc_token(WEB).await;
    let (mut header, claims) = decode_parts(&access);
    header["alg"] = json!("none");
    assert!(!server.active(&assemble(&header, &claims, b"")).await);
    header["alg"] = json!("None");
    assert!(!server.active(&assemble(&header, &claims, b"")).await);
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_inactive() {
    let server = support::start().await;
    let access = server.cc_token(WEB).await;
    let (_, claims) = decode_parts(&access);
    let jwk = server.state.keys.active().jwk().clone();
    let public = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        jwk["x"].as_str().unwrap(),
    )
    .unwrap();
    let jwks_text = server.state.keys.jwks_json().to_owned();
    for secret in [
        public.as_slice(),
        jwks_text.as_bytes(),
        jwk["x"].as_str().unwrap().as_bytes(),
    ] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(server.state.keys.active().kid().into());
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert!(!server.active(&forged).await);
    }
}

#[tokio::test]
async fn an_unknown_kid_or_a_foreign_key_is_inactive() {
    let server = support::start().await;
    let access = server.cc_token(WEB).await;
    let (_, claims) = decode_parts(&access);
    let claims: Claims = serde_json::from_value(claims).unwrap();
    let stranger = key_set(SigningAlg::EdDSA, "stranger");
    let token = jwt::sign(&stranger, TokenKind::Access, &claims).unwrap();
    assert!(!server.active(&token).await);
    // Our kid, someone else's key.
    let impostor = key_set(SigningAlg::EdDSA, server.state.keys.active().kid());
    let token = jwt::sign(&impostor, TokenKind::Access, &claims).unwrap();
    assert!(!server.active(&token).await);
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token() {
    let server = support::start().await;
    let (_, refresh) = server.login(WEB).await;
    assert!(!server.active(&refresh).await);
}

#[tokio::test]
async fn a_wrong_typ_or_a_crit_header_is_inactive() {
    use base64::Engine;
    let server = support::start().await;
    let access = server.cc_token(WEB).await;
    let (_, claims) = decode_parts(&access);
    let claims: Claims = serde_json::from_value(claims).unwrap();
    let key = server.state.keys.active();
    for (typ, crit) in [
        (Some("JWT"), None),
        (None, None),
        (Some("at+jwt"), Some(vec!["exp".to_owned()])),
    ] {
        let mut header = jsonwebtoken::Header::new(key.algorithm());
        header.typ = typ.map(str::to_owned);
        header.kid = Some(key.kid().to_owned());
        header.crit = crit;
        let token = jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap();
        assert!(!server.active(&token).await, "{typ:?}");
    }
    // Tampered claims under a valid signature header: inactive.
    let (header, mut c) = decode_parts(&access);
    c["scope"] = json!("read write revokd:admin");
    let sig = access.rsplit('.').next().unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    assert!(!server.active(&assemble(&header, &c, &sig)).await);
}

/// The issuer and the resource servers read `typ` with the same code: a
/// `typ` they accept at one they accept at the other.
#[tokio::test]
async fn introspection_and_the_verifier_agree_on_typ() {
    use revokd::verify::{Verifier, VerifierConfig};
    let server = support::start().await;
    let access = server.cc_token(WEB).await;
    let (_, claims) = decode_parts(&access);
    let audience = claims["aud"].as_str().unwrap().to_owned();
    let claims: Claims = serde_json::from_value(claims).unwrap();
    let key = server.state.keys.active();
    let config = VerifierConfig::new(server.base.clone(), audience);
    let verifier = Verifier::with_static_jwks(config, server.state.keys.jwks_json(), None).unwrap();
    let now = revokd::clock::now_secs();
    for (typ, accepted) in [
        ("at+jwt", true),
        ("AT+JWT", true),
        ("application/at+jwt", true),
        ("Application/at+jwt", true),
        ("APPLICATION/AT+JWT", true),
        ("application/jwt", false),
        ("rt+jwt", false),
    ] {
        let mut header = jsonwebtoken::Header::new(key.algorithm());
        header.typ = Some(typ.to_owned());
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap();
        assert_eq!(server.active(&token).await, accepted, "introspect {typ}");
        assert_eq!(
            verifier.verify_at(&token, now).is_ok(),
            accepted,
            "verify {typ}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_inactive() {
    let server = support::start().await;
    let now = revokd::clock::now_secs();
    let access = server.cc_token(WEB).await;
    let (_, claims) = decode_parts(&access);
    let mut claims: Claims = serde_json::from_value(claims).unwrap();
    claims.exp = now - 1;
    let token = jwt::sign(&server.state.keys, TokenKind::Access, &claims).unwrap();
    assert!(!server.active(&token).await);
    let _: Value = server.introspect(&token).await;
}
