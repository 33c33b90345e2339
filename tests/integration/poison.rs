//! One call must not poison the rule set or lock everyone out, and a
//! denylist that knows nothing must not answer as if nothing were revoked
//! (issue: hostile input, cases 3 to 6 and 8).

use std::time::{Duration, Instant};

use revokd::signing::{SigningAlg, SigningKeys};
use serde_json::{Value, json};

use crate::config::ConfigFile;
use crate::process::TempDir;
use crate::redis_server::RedisServer;
use crate::support::{self, ADMIN, ALICE, Server, WEB, start_on_redis};

const ISSUER: &str = "http://revokd.test";

async fn admin_post(server: &Server, token: &str, body: Value) -> reqwest::Response {
    server.admin_post(token, &body).await
}

#[tokio::test]
async fn numbers_the_rule_set_cannot_hold_are_refused_and_nothing_is_stored() {
    let redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis(ISSUER, keys.clone(), &redis.url()).await;
    a.wait_ready().await;
    let admin = a.admin_token().await;
    for body in [
        json!({"key": "sub:zed", "revoked_before": 100_000_000_000_000u64}),
        json!({"key": "sub:zed", "revoked_before": u64::MAX}),
        json!({"key": "sub:zed", "expires_at": 100_000_000_000_000u64}),
        json!({"key": "sub:zed", "revoked_before": 1.5}),
        json!({"key": "sub:zed", "revoked_before": -1}),
    ] {
        for _ in 0..2 {
            let response = admin_post(&a, &admin, body.clone()).await;
            assert_eq!(response.status(), 400, "{body}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"], "invalid_request", "{body}");
        }
    }
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let held: Option<String> = redis::cmd("HGET")
        .arg("{revokd}:rules")
        .arg("sub:zed")
        .query(&mut connection)
        .unwrap();
    assert_eq!(held, None);
    // The largest storable values are kept exactly, and an issuer started
    // afterwards syncs and becomes ready.
    let edge = json!({"key": "sub:zed", "revoked_before": 4_294_967_295u64, "expires_at": 4_294_967_295u64});
    assert_eq!(admin_post(&a, &admin, edge).await.status(), 200);
    let held: Option<String> = redis::cmd("HGET")
        .arg("{revokd}:rules")
        .arg("sub:zed")
        .query(&mut connection)
        .unwrap();
    assert_eq!(held.as_deref(), Some("4294967295:4294967295"));
    let (b, _rb) = start_on_redis(ISSUER, keys, &redis.url()).await;
    b.wait_ready().await;
}

#[tokio::test]
async fn an_issuer_that_never_synced_answers_introspection_and_refresh_503() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    redis.kill();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis(ISSUER, keys, &format!("redis://127.0.0.1:{port}")).await;
    // Tokens are still issued (no Redis needed for that)...
    let (access, refresh) = a.login(WEB).await;
    // ...but what is revoked is unknown: never "active", never a rotation.
    let response = a
        .post_form("/oauth2/introspect", Some(WEB), &[("token", &access)])
        .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(a.refresh(WEB, &refresh).await.status(), 503);

    redis.restart();
    a.wait_ready().await;
    assert!(a.active(&access).await);
    assert_eq!(a.refresh(WEB, &refresh).await.status(), 200);
}

#[tokio::test]
async fn a_disabled_client_is_refused_at_introspection_and_revocation_too() {
    let server = support::start().await;
    let admin = server.admin_token().await;
    let other_token = server.cc_token(support::OTHER).await;
    let own = server.cc_token(WEB).await;
    let response = admin_post(
        &server,
        &admin,
        json!({"key": "client:web", "revoked_before": "all"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    for (path, token) in [
        ("/oauth2/introspect", &other_token),
        ("/oauth2/revoke", &own),
    ] {
        let response = server.post_form(path, Some(WEB), &[("token", token)]).await;
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{path}");
    }
    // Another client is unaffected.
    let response = server
        .post_form(
            "/oauth2/introspect",
            Some(support::OTHER),
            &[("token", &other_token)],
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_rule_that_would_lock_out_every_admin_is_refused() {
    let server = support::start().await;
    let admin = server.admin_token().await;
    for key in ["client:admin", "sub:admin", "subclient:admin/admin"] {
        let response = admin_post(
            &server,
            &admin,
            json!({"key": key, "revoked_before": "all"}),
        )
        .await;
        assert_eq!(response.status(), 400, "{key}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("every admin"),
            "{body}"
        );
    }
    // Revoking the admin's current tokens (issued up to now) is allowed: a
    // new token can be minted a moment later.
    let response = admin_post(&server, &admin, json!({"key": "client:admin"})).await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = server.admin_token().await;
    let probe = admin_post(&server, &fresh, json!({"key": "sub:somebody"})).await;
    assert_eq!(probe.status(), 200);
    let _ = ADMIN;
}

#[tokio::test]
async fn a_refresh_keeps_only_what_the_client_and_user_still_have() {
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let first = support::start_with(keys.clone(), |_| {}).await;
    let body = first
        .token_ok(
            WEB,
            &[
                ("grant_type", "password"),
                ("username", ALICE.0),
                ("password", ALICE.1),
                ("scope", "read write"),
            ],
        )
        .await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // The operator takes `write` away from the client (same deployment:
    // same issuer name and keys).
    let iss = first.base.clone();
    let narrowed = support::start_with(keys.clone(), |config| {
        config.issuer = iss.clone();
        let web = config.clients.iter_mut().find(|c| c.id == WEB.0).unwrap();
        web.scopes = vec!["read".into()];
    })
    .await;
    let rotated = narrowed
        .token_ok(
            WEB,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(rotated["scope"], "read");
    let (_, claims) = support::decode_parts(rotated["refresh_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "read", "the session lost write for good");

    // The user is removed: the session cannot be refreshed.
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();
    let without_alice = support::start_with(keys, |config| {
        config.issuer = iss.clone();
        config.users.retain(|u| u.username != ALICE.0);
    })
    .await;
    let response = without_alice.refresh(WEB, &next).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn the_break_glass_deletes_a_rule_straight_from_redis() {
    let redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis(ISSUER, keys, &redis.url()).await;
    a.wait_ready().await;
    let admin = a.admin_token().await;
    let token = a.cc_token(WEB).await;
    assert_eq!(
        admin_post(
            &a,
            &admin,
            json!({"key": "client:web", "revoked_before": "all"})
        )
        .await
        .status(),
        200
    );
    // Introspected by another client: web itself is disabled.
    let active = |token: String| {
        let a = &a;
        async move {
            let response = a
                .post_form(
                    "/oauth2/introspect",
                    Some(support::OTHER),
                    &[("token", &token)],
                )
                .await;
            let body: Value = response.json().await.unwrap();
            body["active"] == true
        }
    };
    assert!(!active(token.clone()).await);
    let dir = TempDir::new("breakglass");
    let file = ConfigFile::new().redis_url(&redis.url()).write(dir.path());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_revokd"))
        .args(["rules", "--config"])
        .arg(&file)
        .args(["delete", "client:web"])
        .output()
        .unwrap();
    drop(dir);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("client:web: deleted"));
    // Published like a re-approval: the running issuer lifts it too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !active(token.clone()).await {
        assert!(
            Instant::now() < deadline,
            "the deletion never reached the issuer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_stays_spent_after_redis_loses_its_data() {
    let mut redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis(ISSUER, keys, &redis.url()).await;
    a.wait_ready().await;
    let (_, refresh) = a.login(WEB).await;
    let rotated = a.refresh(WEB, &refresh).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();

    // Redis forgets everything, the claim markers included.
    redis.restart();
    a.wait_ready().await;
    // The retirement is a rule: restored, and the replay is still reuse
    // (503 while the issuer has not yet followed the new history, and a
    // replay retried after a 503 is still reuse, never a rotation).
    let deadline = Instant::now() + Duration::from_secs(15);
    let replay = loop {
        let replay = a.refresh(WEB, &refresh).await;
        if replay.status() != 503 || Instant::now() > deadline {
            break replay;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // Detected as reuse (the first attempt may have answered 503 after its
    // session revocation landed; the retry then finds the session dead).
    let metrics = a.metrics().await;
    assert!(
        !metrics.contains("revokd_refresh_reuse_detected_total 0"),
        "{metrics}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.active(&new_access).await {
        assert!(Instant::now() < deadline, "the session survived the replay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
