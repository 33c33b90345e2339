//! Issuers sharing one Redis (a real redis-server on a free loopback port):
//! a revocation at one is enforced at the others, refresh rotation is
//! consistent across them, and a revocation Redis cannot take is a 503.

use std::time::{Duration, Instant};

use revokd::signing::{SigningAlg, SigningKeys};
use serde_json::Value;

use crate::config::{Client, ConfigFile};
use crate::loopback;
use crate::process::{ChildGuard, TempDir, free_port};
use crate::redis_server::RedisServer;
use crate::support::{Server, WEB, start_on_redis};
use crate::wait::wait_for_status;

const ISSUER: &str = "http://revokd.test";

async fn eventually_inactive(server: &Server, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.active(token).await {
        assert!(
            Instant::now() < deadline,
            "token still active at {}",
            server.base
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_revocation_at_one_issuer_is_enforced_at_the_other() {
    let redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis(ISSUER, keys.clone(), &redis.url()).await;
    let (b, _rb) = start_on_redis(ISSUER, keys, &redis.url()).await;

    let token = a.cc_token(WEB).await;
    assert!(b.active(&token).await, "b verifies a's tokens");
    assert_eq!(a.revoke(WEB, &token).await, 200);
    let revoked_at = Instant::now();
    eventually_inactive(&b, &token).await;
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
    assert!(!a.active(&token).await);

    // Logout at b: the session's access tokens die at a too.
    let (access, refresh) = a.login(WEB).await;
    assert_eq!(b.revoke(WEB, &refresh).await, 200);
    eventually_inactive(&a, &access).await;
}

#[tokio::test]
async fn a_refresh_token_replayed_at_another_issuer_is_reuse() {
    let redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis(ISSUER, keys.clone(), &redis.url()).await;
    let (b, _rb) = start_on_redis(ISSUER, keys, &redis.url()).await;
    // A refresh waits for an issuer's first sync (503 before it).
    a.wait_ready().await;
    b.wait_ready().await;

    let (_, refresh) = a.login(WEB).await;
    let rotated = a.refresh(WEB, &refresh).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();

    let replay = b.refresh(WEB, &refresh).await;
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // The whole session died, at both issuers.
    eventually_inactive(&a, &new_access).await;
    eventually_inactive(&b, &new_access).await;
}

#[tokio::test]
async fn without_redis_revocation_is_503_while_tokens_are_still_issued() {
    let mut redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis(ISSUER, keys, &redis.url()).await;
    let token = a.cc_token(WEB).await;
    // Never ready would be wrong: redis is up.
    let readyz = format!("{}/readyz", a.base);
    wait_for_status(&a.http, &readyz, 200, Duration::from_secs(5)).await;

    redis.kill();
    let started = Instant::now();
    let response = a
        .http
        .post(format!("{}/oauth2/revoke", a.base))
        .basic_auth(WEB.0, Some(WEB.1))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5), "bounded wait");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(a.active(&token).await, "nothing was revoked");
    let fresh = a.cc_token(WEB).await;
    assert!(a.active(&fresh).await, "issuing needs no Redis");
    let ready = a
        .http
        .get(format!("{}/readyz", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if a.revoke(WEB, &token).await == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "revocation never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!a.active(&token).await);
}

#[tokio::test]
async fn both_stores_export_the_denylist_metrics() {
    let memory = crate::support::start().await;
    let token = memory.cc_token(WEB).await;
    assert_eq!(memory.revoke(WEB, &token).await, 200);
    let text = memory.metrics().await;
    assert!(text.contains("revokd_denylist_rules 1"), "{text}");
    assert!(text.contains("revokd_denylist_bloom_bits "), "{text}");

    let redis = RedisServer::start();
    let (replica, replication) = start_on_redis(
        ISSUER,
        SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(),
        &redis.url(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !replication.subscriber.is_connected() {
        assert!(Instant::now() < deadline, "subscriber never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let token = replica.cc_token(WEB).await;
    assert_eq!(replica.revoke(WEB, &token).await, 200);
    let text = replica.metrics().await;
    for line in ["revokd_redis_connected 1", "revokd_denylist_rules 1"] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert!(text.contains("revokd_denylist_staleness_seconds"), "{text}");
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

#[tokio::test]
async fn an_issuer_replicates_through_redis_over_tls() {
    let tls = TempDir::new("tls");
    let dir = tls.path();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=revokd test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );

    let tls_port = free_port();
    let _redis = ChildGuard::spawn(
        std::process::Command::new("redis-server")
            .current_dir(dir)
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--tls-port",
                &tls_port.to_string(),
            ])
            .args([
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.pem",
            ])
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null()),
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = ConfigFile::new()
        .issuer(&base)
        .listen(&format!("127.0.0.1:{port}"))
        .client(
            Client::new(WEB.0, WEB.1)
                .grants(&["client_credentials"])
                .scopes(&["read"]),
        )
        .write(dir);
    let _issuer = ChildGuard::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_revokd"))
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--redis", &format!("rediss://127.0.0.1:{tls_port}")])
            // rustls reads its trust roots from here instead of the system store.
            .env("SSL_CERT_FILE", dir.join("ca.pem"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let http = loopback::client(Duration::from_secs(30));
    // Ready means: Redis answered over TLS and the denylist proved in sync.
    wait_for_status(
        &http,
        &format!("{base}/readyz"),
        200,
        Duration::from_secs(15),
    )
    .await;
    let body: Value = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(WEB.0, Some(WEB.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let revoke = http
        .post(format!("{base}/oauth2/revoke"))
        .basic_auth(WEB.0, Some(WEB.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200, "Redis over TLS took the rule");
}
