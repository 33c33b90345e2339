//! `/oauth2/revoke` (RFC 7009 as `docs/contract.md` decides it).

use crate::support::{self, OTHER, WEB, decode_parts, key_set};
use revokd::issuer::jwt::{self, Audience, Claims, TokenKind};
use revokd::signing::SigningAlg;
use serde_json::Value;

#[tokio::test]
async fn revoking_an_access_token_revokes_that_token_only() {
    let server = support::start().await;
    let (access, refresh) = server.login(WEB).await;
    let resp = server
        .post_form("/oauth2/revoke", Some(WEB), &[("token", access.as_str())])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    assert!(!server.active(&access).await);
    // Revoking it again is still 200.
    assert_eq!(server.revoke(WEB, &access).await, 200);
    // The session lives on: the refresh token still works.
    let resp = server.refresh(WEB, &refresh).await;
    assert_eq!(resp.status(), 200);
    let metrics = server.metrics().await;
    assert!(metrics.contains("revokd_revocations_total{kind=\"jti\",source=\"revoke\"}"));
}

#[tokio::test]
async fn logout_revoking_the_refresh_token_kills_the_sessions_access_tokens() {
    let server = support::start().await;
    let (access, refresh) = server.login(WEB).await;
    let body: Value = server.refresh(WEB, &refresh).await.json().await.unwrap();
    let access2 = body["access_token"].as_str().unwrap().to_owned();
    let refresh2 = body["refresh_token"].as_str().unwrap().to_owned();
    let (other_session, _) = server.login(WEB).await;

    assert_eq!(server.revoke(WEB, &refresh2).await, 200);

    assert!(!server.active(&access).await);
    assert!(!server.active(&access2).await);
    assert_eq!(server.refresh(WEB, &refresh2).await.status(), 400);
    assert!(
        server.active(&other_session).await,
        "other sessions untouched"
    );
}

/// `/oauth2/revoke` of `token` by `web` with `token_type_hint=hint`: the status.
async fn revoke_with_hint(server: &support::Server, token: &str, hint: &str) -> u16 {
    server
        .post_form(
            "/oauth2/revoke",
            Some(WEB),
            &[("token", token), ("token_type_hint", hint)],
        )
        .await
        .status()
        .as_u16()
}

/// The `jti` and `sid` claims of a token.
fn jti_and_sid(token: &str) -> (String, String) {
    let (_, claims) = decode_parts(token);
    let claim = |name: &str| claims[name].as_str().unwrap().to_owned();
    (claim("jti"), claim("sid"))
}

#[tokio::test]
async fn a_wrong_or_unknown_hint_never_stops_the_search() {
    use revokd::rule::RuleKey;
    let server = support::start().await;
    let listed = |key: RuleKey| {
        server
            .state
            .denylist
            .get(&key, revokd::clock::now_secs())
            .is_some()
    };

    // An access token revoked under a wrong or an unknown hint: exactly that
    // token is revoked (an access token's revocation is its `jti` only), so
    // the session's other tokens tell whether the hint changed anything.
    let (first, refresh) = server.login(WEB).await;
    let body: Value = server.refresh(WEB, &refresh).await.json().await.unwrap();
    let second = body["access_token"].as_str().unwrap().to_owned();
    let body: Value = server
        .refresh(WEB, body["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let live = body["access_token"].as_str().unwrap().to_owned();
    let live_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let (_, sid) = jti_and_sid(&live);
    for (token, hint) in [(&first, "refresh_token"), (&second, "bogus")] {
        assert!(server.active(token).await);
        assert_eq!(revoke_with_hint(&server, token, hint).await, 200, "{hint}");
        assert!(!server.active(token).await, "hint {hint}: not revoked");
        let (jti, _) = jti_and_sid(token);
        assert!(listed(RuleKey::Jti(jti)), "hint {hint}: no jti rule");
    }
    assert!(
        !listed(RuleKey::Sid(sid.clone())),
        "the hints did not make an access token revoke its session"
    );
    assert!(
        server.active(&live).await,
        "the session's other access token"
    );
    let (refresh_jti, _) = jti_and_sid(&live_refresh);
    assert!(!listed(RuleKey::Jti(refresh_jti)));
    assert_eq!(
        server.refresh(WEB, &live_refresh).await.status(),
        200,
        "the session's refresh token"
    );

    // A refresh token revoked under a wrong or an unknown hint: its session
    // dies, and only its session.
    for hint in ["access_token", "bogus"] {
        let (access, refresh) = server.login(WEB).await;
        let (bystander, bystander_refresh) = server.login(WEB).await;
        assert_eq!(
            revoke_with_hint(&server, &refresh, hint).await,
            200,
            "{hint}"
        );
        let (_, sid) = jti_and_sid(&refresh);
        assert!(listed(RuleKey::Sid(sid)), "hint {hint}: no sid rule");
        assert!(!server.active(&access).await, "hint {hint}: session lives");
        assert_eq!(server.refresh(WEB, &refresh).await.status(), 400, "{hint}");
        assert!(
            server.active(&bystander).await,
            "hint {hint}: other session"
        );
        assert_eq!(
            server.refresh(WEB, &bystander_refresh).await.status(),
            200,
            "hint {hint}: other session's refresh token"
        );
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("revokd_revocations_total{kind=\"jti\",source=\"revoke\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("revokd_revocations_total{kind=\"sid\",source=\"revoke\"} 2\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_malformed_expired_and_foreign_tokens_answer_200_and_list_nothing() {
    let server = support::start().await;
    let now = revokd::clock::now_secs();
    let claims = |iss: &str, exp: u64| Claims {
        iss: iss.to_owned(),
        sub: "alice".into(),
        aud: Audience::One("api".into()),
        client_id: "web".into(),
        scope: "read".into(),
        iat: now - 100,
        exp,
        nbf: None,
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        sid: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        resource: Vec::new(),
    };
    let expired = jwt::sign(
        &server.state.keys,
        TokenKind::Access,
        &claims(&server.base, now - 10),
    )
    .unwrap();
    let foreign_issuer = jwt::sign(
        &server.state.keys,
        TokenKind::Access,
        &claims("https://evil.example", now + 100),
    )
    .unwrap();
    let foreign_key = jwt::sign(
        &key_set(SigningAlg::EdDSA, server.state.keys.active().kid()),
        TokenKind::Access,
        &claims(&server.base, now + 100),
    )
    .unwrap();
    let before = server.state.denylist.len();
    for token in [
        "garbage",
        "a.b.c",
        expired.as_str(),
        foreign_issuer.as_str(),
        foreign_key.as_str(),
    ] {
        assert_eq!(server.revoke(WEB, token).await, 200, "{token}");
    }
    assert_eq!(server.state.denylist.len(), before, "nothing was listed");
}

#[tokio::test]
async fn a_token_of_another_client_is_refused_and_stays_active() {
    let server = support::start().await;
    let (access, refresh) = server.login(WEB).await;
    for token in [&access, &refresh] {
        let resp = server
            .post_form("/oauth2/revoke", Some(OTHER), &[("token", token.as_str())])
            .await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
    assert!(server.active(&access).await);
    assert_eq!(server.refresh(WEB, &refresh).await.status(), 200);
}

#[tokio::test]
async fn revoke_needs_client_authentication_and_a_token() {
    let server = support::start().await;
    let access = server.cc_token(WEB).await;
    let resp = server
        .post_form("/oauth2/revoke", None, &[("token", access.as_str())])
        .await;
    assert_eq!(resp.status(), 401);
    let resp = server.post_form("/oauth2/revoke", Some(WEB), &[]).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(server.active(&access).await);
}

#[tokio::test]
async fn the_short_revoke_path_works_too() {
    let server = support::start().await;
    let access = server.cc_token(WEB).await;
    let resp = server
        .post_form("/revoke", Some(WEB), &[("token", access.as_str())])
        .await;
    assert_eq!(resp.status(), 200);
    assert!(!server.active(&access).await);
}

#[tokio::test]
async fn the_cascade_is_configurable() {
    use revokd::config::Cascade;
    let server = support::start_with(
        revokd::signing::SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(),
        |c| {
            c.revocation.access_token = Cascade::Session;
            c.revocation.refresh_token = Cascade::Token;
        },
    )
    .await;
    // Refresh → that refresh token only: the access token lives.
    let (access, refresh) = server.login(WEB).await;
    assert_eq!(server.revoke(WEB, &refresh).await, 200);
    assert!(server.active(&access).await);
    assert_eq!(server.refresh(WEB, &refresh).await.status(), 400);
    // Access → its whole session.
    let (access, refresh) = server.login(WEB).await;
    let (_, claims) = decode_parts(&access);
    assert_eq!(server.revoke(WEB, &access).await, 200);
    assert!(
        server
            .state
            .denylist
            .get(
                &revokd::rule::RuleKey::Sid(claims["sid"].as_str().unwrap().into()),
                revokd::clock::now_secs()
            )
            .is_some()
    );
    assert_eq!(server.refresh(WEB, &refresh).await.status(), 400);
}
