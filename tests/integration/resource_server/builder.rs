//! [`ResourceServer::builder`]: a protected axum app in ten lines, against a
//! real issuer and a real redis-server, serving on 127.0.0.1.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use revokd::layer::VerifiedToken;
use revokd::resource_server::ResourceServer;
use revokd::signing::SigningAlg;
use serde_json::Value;

use super::AUDIENCE;
use crate::loopback;
use crate::redis_server::RedisServer;
use crate::support::{WEB, key_set, start_on_redis_discoverable};
use crate::wait::wait_for_status;

#[tokio::test]
async fn ten_lines_protect_an_app_and_a_revocation_is_a_401_at_once()
-> Result<(), Box<dyn std::error::Error>> {
    let redis = RedisServer::start();
    let (issuer, _replication) =
        start_on_redis_discoverable(key_set(SigningAlg::EdDSA, "k1"), &redis.url()).await;
    let (listener, base) = loopback::listener().await;

    // The embedding, as a user writes it: ten lines.
    let server = ResourceServer::builder()
        .issuer(issuer.base.clone())
        .audience(AUDIENCE)
        .redis(redis.url())
        .start()
        .await?;
    let app = Router::new()
        .route("/api/hello", get(hello))
        .layer(server.layer())
        .merge(server.ops_routes());
    let _task = loopback::serve_on(listener, app);

    let http = loopback::client(Duration::from_secs(10));
    wait_for_status(
        &http,
        &format!("{base}/readyz"),
        200,
        Duration::from_secs(10),
    )
    .await;
    let (access, _) = issuer.login(WEB).await;
    let hello = |token: String| {
        http.get(format!("{base}/api/hello"))
            .bearer_auth(token)
            .send()
    };
    let answer = hello(access.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "alice");

    assert_eq!(issuer.revoke(WEB, &access).await, 200);
    // Applied before the issuer answered: the very next request is refused.
    let refused = hello(access).await.unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(!challenge.contains("resource_metadata"), "{challenge}");
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("revokd_denylist_rules"), "{metrics}");
    Ok(())
}

/// RFC 9728: with a resource named, every challenge names the metadata
/// document, and the document lists the issuer.
#[tokio::test]
async fn a_named_resource_serves_its_metadata_and_challenges_name_it() {
    let redis = RedisServer::start();
    let (issuer, _replication) =
        start_on_redis_discoverable(key_set(SigningAlg::EdDSA, "k1"), &redis.url()).await;
    let (listener, base) = loopback::listener().await;
    let server = ResourceServer::builder()
        .issuer(issuer.base.clone())
        .audience(AUDIENCE)
        .redis(redis.url())
        .resource(format!("{base}/api"))
        .scopes_supported(["read", "write"])
        .start()
        .await
        .unwrap();
    let app = Router::new()
        .route("/api/hello", get(hello))
        .layer(server.layer())
        .merge(server.ops_routes());
    let _task = loopback::serve_on(listener, app);
    let http = loopback::client(Duration::from_secs(10));
    wait_for_status(
        &http,
        &format!("{base}/readyz"),
        200,
        Duration::from_secs(10),
    )
    .await;

    let refused = http.get(format!("{base}/api/hello")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/api");
    assert_eq!(
        challenge,
        format!("Bearer realm=\"{AUDIENCE}\", resource_metadata=\"{metadata_url}\"")
    );
    for url in [
        metadata_url,
        format!("{base}/.well-known/oauth-protected-resource"),
    ] {
        let answer = http.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{url}");
        let metadata: Value = answer.json().await.unwrap();
        assert_eq!(metadata["resource"], format!("{base}/api"));
        assert_eq!(metadata["authorization_servers"][0], issuer.base);
        assert_eq!(metadata["scopes_supported"][1], "write");
        assert_eq!(metadata["bearer_methods_supported"][0], "header");
    }
}

#[tokio::test]
async fn start_names_what_is_missing_and_gives_up_on_an_absent_issuer() {
    let missing = ResourceServer::builder().audience("api").start().await;
    assert!(
        missing.unwrap_err().to_string().contains("an issuer"),
        "the error names the missing setting"
    );
    let redis = RedisServer::start();
    let started = Instant::now();
    let absent = ResourceServer::builder()
        .issuer("http://127.0.0.1:9") // discard port: nothing listens
        .audience("api")
        .redis(redis.url())
        .discovery_timeout(Duration::from_millis(700))
        .start()
        .await;
    let error = absent.unwrap_err();
    assert!(
        matches!(error, revokd::resource_server::StartError::Discovery(..)),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

async fn hello(token: VerifiedToken) -> String {
    token.sub.clone()
}
