//! Redis that comes back older than it was: restarted from an RDB written
//! before the last revocations. Two issuers and the example resource server
//! as a real process; every revocation answered 200 stays enforced
//! everywhere and is written back into Redis.

use std::time::{Duration, Instant};

use revokd::signing::{SigningAlg, SigningKeys};
use serde_json::Value;

use crate::redis_server::RedisServer;
use crate::resource_server::e2e::{READY, http, start_resource_server};
use crate::support::{Server, WEB, decode_parts, start_on_redis, start_on_redis_discoverable};
use crate::wait::{eventually, wait_for_status};

/// The resource server's answer to `token`.
async fn resource_status(api: &str, token: &str) -> u16 {
    http()
        .get(format!("{api}/api/resource"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Whether Redis holds a rule for the token's `jti`.
fn redis_holds(redis: &RedisServer, token: &str) -> bool {
    let (_, claims) = decode_parts(token);
    let key = format!("jti:{}", claims["jti"].as_str().unwrap());
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let value: Option<String> = redis::cmd("HGET")
        .arg("{revokd}:rules")
        .arg(&key)
        .query(&mut connection)
        .unwrap();
    value.is_some()
}

/// Asserts `token` is revoked at both issuers and at the resource server.
async fn assert_revoked_everywhere(issuers: [&Server; 2], api: &str, token: &str, what: &str) {
    for issuer in issuers {
        assert!(
            !issuer.active(token).await,
            "{what}: active at {}",
            issuer.base
        );
    }
    assert_eq!(
        resource_status(api, token).await,
        401,
        "{what}: resource server"
    );
}

// Multi-threaded: starting the resource server blocks a thread while the
// issuers (on this runtime) answer its discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_from_an_older_rdb_keeps_every_answered_revocation() {
    let mut redis = RedisServer::start_persistent();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis_discoverable(keys.clone(), &redis.url()).await;
    let (b, _rb) = start_on_redis(&a.base, keys, &redis.url()).await;
    let (_api_process, api) = start_resource_server(&a.base, &redis.url(), &[]);
    wait_for_status(&http(), &format!("{api}/readyz"), 200, READY).await;

    let mut tokens = Vec::new();
    for i in 0..7 {
        let issuer = if i % 2 == 0 { &a } else { &b };
        tokens.push(issuer.cc_token(WEB).await);
    }
    let live = tokens.pop().unwrap();
    let after_restart = tokens.pop().unwrap();
    // Three revocations, a snapshot, two more: all five answered 200.
    for (i, token) in tokens.iter().enumerate() {
        if i == 3 {
            redis.save();
        }
        let issuer = if i % 2 == 0 { &a } else { &b };
        assert_eq!(issuer.revoke(WEB, token).await, 200);
        eventually(
            "enforced at the resource server",
            Duration::from_secs(15),
            || async { resource_status(&api, token).await == 401 },
        )
        .await;
    }
    for (i, token) in tokens.iter().enumerate() {
        assert_revoked_everywhere([&a, &b], &api, token, &format!("token {i} before")).await;
    }

    // Redis dies and comes back from the RDB: it forgot the last two.
    redis.kill9();
    redis.start_again();
    assert!(redis_holds(&redis, &tokens[0]));
    assert!(!redis_holds(&redis, &tokens[4]), "the RDB predates it");
    // Not one moment where a forgotten revocation is honoured again.
    for (i, token) in tokens.iter().enumerate() {
        assert_revoked_everywhere([&a, &b], &api, token, &format!("token {i} at restart")).await;
    }
    // The issuers notice the forked history and write back what it lacks.
    for token in &tokens {
        eventually("restored into redis", Duration::from_secs(30), || async {
            redis_holds(&redis, token)
        })
        .await;
    }
    for (i, token) in tokens.iter().enumerate() {
        assert_revoked_everywhere([&a, &b], &api, token, &format!("token {i} after")).await;
    }
    assert!(a.active(&live).await && b.active(&live).await, "live token");
    assert_eq!(resource_status(&api, &live).await, 200, "live token");

    // Everyone follows the restored history: a new revocation reaches all.
    for issuer in [&a, &b] {
        wait_for_status(&http(), &format!("{}/readyz", issuer.base), 200, READY).await;
    }
    wait_for_status(&http(), &format!("{api}/readyz"), 200, READY).await;
    assert_eq!(b.revoke(WEB, &after_restart).await, 200);
    let revoked_at = Instant::now();
    eventually(
        "new revocation at the resource server",
        Duration::from_secs(15),
        || async { resource_status(&api, &after_restart).await == 401 },
    )
    .await;
    eprintln!(
        "revocation after the restart applied in {:?}",
        revoked_at.elapsed()
    );
    assert!(
        !b.active(&after_restart).await,
        "answered at b, so held at b"
    );
    eventually(
        "new revocation at the other issuer",
        Duration::from_secs(15),
        || async { !a.active(&after_restart).await },
    )
    .await;

    // The resource server saw the fork as one, not as a plain reconnect,
    // and the issuers wrote the two forgotten rules back.
    let metrics = http()
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("revokd_denylist_history_merges_total{relation=\"forked\"} 1"),
        "{metrics}"
    );
    let restored: f64 = [&a, &b]
        .iter()
        .map(|issuer| issuer.state.registry.gather())
        .flat_map(|families| families.into_iter())
        .filter(|family| family.name() == "revokd_denylist_restored_rules_total")
        .flat_map(|family| family.get_metric().to_vec())
        .map(|metric| metric.get_counter().get_value())
        .sum();
    assert!(restored >= 2.0, "restored {restored}");
}

#[tokio::test]
async fn a_refresh_retried_after_redis_paused_keeps_the_session() {
    let redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_redis("http://revokd.test", keys, &redis.url()).await;
    let (access, refresh) = a.login(WEB).await;

    // Redis stops mid-refresh: the claim waits in its socket, the issuer
    // gives up and answers 503; Redis resumes and applies the claim.
    redis.signal("STOP");
    let lost = a.refresh(WEB, &refresh).await;
    assert_eq!(lost.status(), 503);
    redis.signal("CONT");

    // The client retries the same refresh token: a retry, not a theft.
    let mut retried = a.refresh(WEB, &refresh).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while retried.status() == 503 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        retried = a.refresh(WEB, &refresh).await;
    }
    assert_eq!(retried.status(), 200);
    let body: Value = retried.json().await.unwrap();
    let new_access = body["access_token"].as_str().unwrap().to_owned();
    let new_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(a.active(&access).await, "the session lives");
    assert!(a.active(&new_access).await);

    // The rotation was answered: the old refresh token is now spent, and
    // presenting it again is reuse that ends the session.
    assert_eq!(a.refresh(WEB, &refresh).await.status(), 400);
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.active(&new_access).await {
        assert!(Instant::now() < deadline, "reuse did not end the session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.refresh(WEB, &new_refresh).await.status(), 400);
}
