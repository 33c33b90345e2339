//! Metadata, JWKS, rotation and the three algorithms.

use crate::support::{self, WEB, decode_parts};
use revokd::issuer::jwt::{self, Claims, TokenKind};
use revokd::signing::{SigningAlg, SigningKey, SigningKeys, generate_pem};
use serde_json::Value;

#[tokio::test]
async fn metadata_lists_every_endpoint_grant_method_and_alg() {
    let server = support::start().await;
    let resp = server
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    let base = &server.base;
    assert_eq!(doc["issuer"], base.as_str());
    assert_eq!(doc["token_endpoint"], format!("{base}/oauth2/token"));
    assert_eq!(doc["revocation_endpoint"], format!("{base}/oauth2/revoke"));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{base}/oauth2/introspect")
    );
    assert_eq!(doc["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token"
        ])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"]),
        "public clients (PKCE) authenticate with none"
    );
    for field in [
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        assert_eq!(
            doc[field],
            serde_json::json!(["client_secret_basic", "client_secret_post"]),
            "{field}"
        );
    }
    assert_eq!(
        doc["access_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
}

#[tokio::test]
async fn jwks_publishes_active_and_retiring_keys_and_both_verify() {
    let active = SigningKey::from_pem("new", &generate_pem(SigningAlg::EdDSA).unwrap()).unwrap();
    let retiring_pem = generate_pem(SigningAlg::ES256).unwrap();
    let retiring = SigningKey::from_pem("old", &retiring_pem).unwrap();
    let server =
        support::start_with(SigningKeys::new(vec![active, retiring]).unwrap(), |_| {}).await;
    let jwks: Value = server
        .http
        .get(format!("{}/.well-known/jwks.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], "new");
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[1]["kid"], "old");
    assert_eq!(keys[1]["kty"], "EC");
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "no private parts"
    );

    // New tokens use the first key; a token in flight from the old one
    // still verifies.
    let access = server.cc_token(WEB).await;
    assert_eq!(decode_parts(&access).0["kid"], "new");
    let (_, claims) = decode_parts(&access);
    let claims: Claims = serde_json::from_value(claims).unwrap();
    let old_only =
        SigningKeys::new(vec![SigningKey::from_pem("old", &retiring_pem).unwrap()]).unwrap();
    let in_flight = jwt::sign(&old_only, TokenKind::Access, &claims).unwrap();
    assert_eq!(decode_parts(&in_flight).0["alg"], "ES256");
    assert!(server.active(&in_flight).await);
}

async fn round_trip(alg: SigningAlg) {
    let server = support::start_with(support::key_set(alg, "k"), |_| {}).await;
    let (access, refresh) = server.login(WEB).await;
    assert_eq!(decode_parts(&access).0["alg"], alg.as_str());
    assert!(server.active(&access).await);
    assert_eq!(server.refresh(WEB, &refresh).await.status(), 200);
    let jwks: Value = serde_json::from_str(server.state.keys.jwks_json()).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], alg.as_str());
}

#[tokio::test]
async fn es256_keys_work() {
    round_trip(SigningAlg::ES256).await;
}

#[tokio::test]
async fn rs256_keys_work() {
    round_trip(SigningAlg::RS256).await;
}
