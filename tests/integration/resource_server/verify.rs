//! The verifier against a real issuer's tokens and crafted ones.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use revokd::rule::KeyKind;
use revokd::signing::{SigningAlg, SigningKeys};
use revokd::verify::{DiscoveryError, Verifier, VerifierConfig, VerifyError};
use serde_json::json;

use super::{AUDIENCE, KeyServer, claims, key, now, sign_access, sign_with, verifier_for};
use crate::support::{self, WEB, assemble, decode_parts};

#[tokio::test]
async fn a_real_access_token_verifies_and_carries_its_claims() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let (access, _) = issuer.login(WEB).await;
    let claims = verifier.verify(&access).await.unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.client_id, "web");
    assert!(claims.has_scope("read"));
    assert!(claims.aud.contains(AUDIENCE));
    assert!(!claims.sid.is_empty());
    let machine = issuer.cc_token(WEB).await;
    assert_eq!(verifier.verify(&machine).await.unwrap().sub, "web");
}

#[tokio::test]
async fn every_supported_algorithm_verifies() {
    for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
        let issuer = support::start_with(support::key_set(alg, "k"), |_| {}).await;
        let verifier = verifier_for(&issuer).await;
        let token = issuer.cc_token(WEB).await;
        assert!(verifier.verify(&token).await.is_ok(), "{alg}");
    }
}

#[tokio::test]
async fn a_refresh_token_is_never_an_access_token() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let (_, refresh) = issuer.login(WEB).await;
    assert_eq!(
        verifier.verify(&refresh).await,
        Err(VerifyError::RefreshToken)
    );
    // Even re-labelled at+jwt, its audience is the issuer, not us; and the
    // label change breaks the signature anyway.
    let (mut header, body) = decode_parts(&refresh);
    header["typ"] = json!("at+jwt");
    let sig = URL_SAFE_NO_PAD
        .decode(refresh.rsplit('.').next().unwrap())
        .unwrap();
    assert!(
        verifier
            .verify(&assemble(&header, &body, &sig))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn alg_none_and_hs256_with_the_public_key_are_refused() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let token = issuer.cc_token(WEB).await;
    let (header, body) = decode_parts(&token);

    // `none` is not even an algorithm jsonwebtoken parses: a malformed header.
    for alg in ["none", "None", "NONE", "eddsa"] {
        let mut none = header.clone();
        none["alg"] = json!(alg);
        for sig in [&b""[..], b"sig"] {
            let result = verifier.verify(&assemble(&none, &body, sig)).await;
            assert!(
                matches!(
                    result,
                    Err(VerifyError::Malformed | VerifyError::AlgorithmMismatch)
                ),
                "{alg}: {result:?}"
            );
        }
    }

    // HMAC keyed with the public key, in every form an attacker might try.
    let jwk = issuer.state.keys.active().jwk().clone();
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.typ = header["typ"].as_str().map(str::to_owned);
    hs.kid = header["kid"].as_str().map(str::to_owned);
    for secret in [x.clone(), jwk.to_string().into_bytes()] {
        let forged =
            jsonwebtoken::encode(&hs, &body, &jsonwebtoken::EncodingKey::from_secret(&secret))
                .unwrap();
        assert_eq!(
            verifier.verify(&forged).await,
            Err(VerifyError::AlgorithmMismatch)
        );
    }
}

#[tokio::test]
async fn header_rules_typ_kid_and_crit() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let key = issuer.state.keys.active();
    let body = claims(&issuer.base);
    let kid = Some(key.kid());
    assert!(
        verifier
            .verify(&sign_with(key, Some("at+jwt"), kid, &body))
            .await
            .is_ok()
    );
    assert!(
        verifier
            .verify(&sign_with(key, Some("application/AT+JWT"), kid, &body))
            .await
            .is_ok()
    );
    assert_eq!(
        verifier
            .verify(&sign_with(key, Some("JWT"), kid, &body))
            .await,
        Err(VerifyError::WrongType)
    );
    assert_eq!(
        verifier.verify(&sign_with(key, None, kid, &body)).await,
        Err(VerifyError::WrongType)
    );
    assert_eq!(
        verifier
            .verify(&sign_with(key, Some("rt+jwt"), kid, &body))
            .await,
        Err(VerifyError::RefreshToken)
    );
    assert_eq!(
        verifier
            .verify(&sign_with(key, Some("at+jwt"), None, &body))
            .await,
        Err(VerifyError::MissingKid)
    );
    let good = sign_with(key, Some("at+jwt"), kid, &body);
    let (mut header, body) = decode_parts(&good);
    header["crit"] = json!(["exp"]);
    assert_eq!(
        verifier.verify(&assemble(&header, &body, b"sig")).await,
        Err(VerifyError::Crit)
    );
}

#[tokio::test]
async fn claims_rules_iss_aud_exp_nbf_and_required_claims() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let keys = &issuer.state.keys;
    let check = |mutate: &dyn Fn(&mut serde_json::Value)| {
        let mut body = claims(&issuer.base);
        mutate(&mut body);
        verifier.verify_at(&sign_access(keys, &body), now())
    };
    assert!(check(&|_| {}).is_ok());
    assert_eq!(
        check(&|c| c["iss"] = json!("http://evil.example")),
        Err(VerifyError::WrongIssuer)
    );
    assert_eq!(
        check(&|c| c["aud"] = json!("other-api")),
        Err(VerifyError::WrongAudience)
    );
    assert!(check(&|c| c["aud"] = json!(["other-api", AUDIENCE])).is_ok());
    assert_eq!(
        check(&|c| c["exp"] = json!(now() - 60)),
        Err(VerifyError::Expired)
    );
    assert!(
        check(&|c| c["exp"] = json!(now() - 2)).is_ok(),
        "within the 5 s leeway"
    );
    assert_eq!(
        check(&|c| c["nbf"] = json!(now() + 60)),
        Err(VerifyError::NotYetValid)
    );
    for claim in ["jti", "client_id", "iat", "sub", "exp", "aud", "iss"] {
        let result = check(&|c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        assert!(result.is_err(), "{claim} is required");
    }
    assert_eq!(
        check(&|c| c["exp"] = json!("tomorrow")),
        Err(VerifyError::InvalidClaims)
    );
    // Signed by a key the issuer does not publish, under its kid.
    let stranger = key(SigningAlg::EdDSA, keys.active().kid());
    let forged = sign_with(
        &stranger,
        Some("at+jwt"),
        Some(keys.active().kid()),
        &claims(&issuer.base),
    );
    assert_eq!(
        verifier.verify(&forged).await,
        Err(VerifyError::BadSignature)
    );
}

#[tokio::test]
async fn revocation_is_checked_on_every_call_even_for_cached_tokens() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let (access, refresh) = issuer.login(WEB).await;
    assert!(verifier.verify(&access).await.is_ok());
    assert!(verifier.verify(&access).await.is_ok());
    assert_eq!(verifier.cached_tokens(), 1);
    // Revoking the refresh token revokes the session: the cached access token too.
    assert_eq!(issuer.revoke(WEB, &refresh).await, 200);
    assert_eq!(
        verifier.verify(&access).await,
        Err(VerifyError::Revoked(KeyKind::Sid))
    );
    let other = issuer.cc_token(WEB).await;
    assert!(verifier.verify(&other).await.is_ok());
    assert_eq!(issuer.revoke(WEB, &other).await, 200);
    assert_eq!(
        verifier.verify(&other).await,
        Err(VerifyError::Revoked(KeyKind::Jti))
    );
}

#[tokio::test]
async fn an_expired_token_is_not_served_from_the_cache() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let mut body = claims(&issuer.base);
    body["exp"] = json!(now() + 100);
    let token = sign_access(&issuer.state.keys, &body);
    assert!(verifier.verify_at(&token, now()).is_ok());
    assert_eq!(
        verifier.verify_at(&token, now() + 100 + 5),
        Err(VerifyError::Expired)
    );
}

#[tokio::test]
async fn unknown_kids_refetch_the_keys_at_most_once_per_interval() {
    let k1 = key(SigningAlg::EdDSA, "k1");
    let k2 = key(SigningAlg::ES256, "k2");
    let first = SigningKeys::new(vec![k1]).unwrap();
    let server = KeyServer::start(&first).await;
    let mut config = VerifierConfig::new(server.base.clone(), AUDIENCE);
    config.refetch_interval = Duration::from_millis(500);
    let verifier = Verifier::discover(config, None).await.unwrap();
    assert_eq!(server.fetches(), 1);
    assert_eq!(verifier.kids(), ["k1"]);

    let body = claims(&server.base);
    let by_k2 = sign_with(&k2, Some("at+jwt"), Some("k2"), &body);
    // Unknown kid right after the initial fetch: no refetch yet.
    assert_eq!(verifier.verify(&by_k2).await, Err(VerifyError::UnknownKid));
    assert_eq!(server.fetches(), 1);

    tokio::time::sleep(Duration::from_millis(600)).await;
    // A flood of bogus kids: one refetch, not one per token.
    for i in 0..50 {
        let bogus = sign_with(&k2, Some("at+jwt"), Some(&format!("bogus-{i}")), &body);
        assert_eq!(verifier.verify(&bogus).await, Err(VerifyError::UnknownKid));
    }
    assert_eq!(server.fetches(), 2);

    // The issuer rotates in k2; after the interval its tokens verify.
    server.set_keys(&SigningKeys::new(vec![key(SigningAlg::EdDSA, "k1"), k2]).unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rotated = verifier.verify(&by_k2).await;
    assert!(rotated.is_ok(), "{rotated:?}");
    assert_eq!(server.fetches(), 3);
    assert_eq!(verifier.kids(), ["k1", "k2"]);
}

#[tokio::test]
async fn discovery_checks_the_issuer_and_static_keys_work() {
    let issuer = support::start().await;
    let wrong = VerifierConfig::new(format!("{}/", issuer.base), AUDIENCE);
    assert!(matches!(
        Verifier::discover(wrong, None).await,
        Err(DiscoveryError::IssuerMismatch { .. })
    ));
    let down = VerifierConfig::new("http://127.0.0.1:9", AUDIENCE);
    assert!(matches!(
        Verifier::discover(down, None).await,
        Err(DiscoveryError::Http { .. })
    ));
    let config = VerifierConfig::new(issuer.base.clone(), AUDIENCE);
    let fixed = Verifier::with_static_jwks(config, issuer.state.keys.jwks_json(), None).unwrap();
    assert!(!fixed.can_refetch());
    let token = issuer.cc_token(WEB).await;
    assert!(fixed.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_withdrawn_key_stops_its_cached_tokens() {
    let a = key(SigningAlg::EdDSA, "a");
    let server =
        KeyServer::start(&SigningKeys::new(vec![key(SigningAlg::EdDSA, "x")]).unwrap()).await;
    let body = claims(&server.base);
    let by_a = sign_with(&a, Some("at+jwt"), Some("a"), &body);
    server.set_keys(&SigningKeys::new(vec![a]).unwrap());
    let mut config = VerifierConfig::new(server.base.clone(), AUDIENCE);
    config.refetch_interval = Duration::ZERO;
    let verifier = Verifier::discover(config, None).await.unwrap();
    assert!(verifier.verify(&by_a).await.is_ok());
    assert_eq!(verifier.cached_tokens(), 1);

    // The issuer withdraws `a` and publishes `b`; a token by `b` makes the
    // verifier refetch, which drops `a` and every token it had cached.
    let b = key(SigningAlg::EdDSA, "b");
    let by_b = sign_with(&b, Some("at+jwt"), Some("b"), &body);
    server.set_keys(&SigningKeys::new(vec![b]).unwrap());
    assert!(verifier.verify(&by_b).await.is_ok());
    assert_eq!(verifier.verify(&by_a).await, Err(VerifyError::UnknownKid));
}
