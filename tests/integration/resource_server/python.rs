//! `examples/python_subscriber.py` against a live Redis fed by
//! `revokd serve --redis`: it applies the snapshot, then events, and ends
//! with the same rules as Redis.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::e2e::{Process, REVOKD, http, wait_for};
use crate::redis_server::RedisServer;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python_subscriber.py");
const WAIT: Duration = Duration::from_secs(20);

fn python_with_redis_py() {
    let ok = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with redis-py is needed: python3 -m pip install redis"
    );
}

/// The rule keys of a JSON line's `rules` member.
fn rule_keys(line: &Value) -> Vec<String> {
    line["rules"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn a_python_subscriber_applies_the_snapshot_and_the_events() {
    python_with_redis_py();
    let redis = RedisServer::start();
    // Dev mode: a demo client whose secret and issuer URL are printed.
    let issuer = Process::spawn(
        Command::new(REVOKD)
            .args(["serve", "--listen", "127.0.0.1:0", "--redis", &redis.url()])
            .env("RUST_LOG", "warn")
            .env_remove("REVOKD_CONFIG"),
    );
    let secret = issuer.line(WAIT, |l| l.starts_with("demo client_secret:"));
    let secret = secret
        .trim_start_matches("demo client_secret:")
        .trim()
        .to_owned();
    let curl = issuer.line(WAIT, |l| l.starts_with("curl "));
    let base = curl
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches("/oauth2/token")
        .to_owned();
    wait_for(&http(), &format!("{base}/readyz"), 200).await;

    let token = |scope: &'static str| {
        let (base, secret) = (base.clone(), secret.clone());
        async move {
            let body: Value = http()
                .post(format!("{base}/oauth2/token"))
                .basic_auth("demo", Some(&secret))
                .form(&[("grant_type", "client_credentials"), ("scope", scope)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let revoke = |token: String| {
        let (base, secret) = (base.clone(), secret.clone());
        async move {
            let response = http()
                .post(format!("{base}/oauth2/revoke"))
                .basic_auth("demo", Some(&secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    let jti = |token: &str| {
        super::super::support::decode_parts(token).1["jti"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let admin = token("revokd:admin").await;
    let admin_call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (base, admin) = (base.clone(), admin.clone());
        async move {
            let mut request = http()
                .request(method, format!("{base}{path}"))
                .bearer_auth(admin);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            assert!(
                status.is_success(),
                "{status} {}",
                response.text().await.unwrap()
            );
        }
    };

    // Before the subscriber starts: two rules it must get from the snapshot.
    let first = token("read").await;
    revoke(first.clone()).await;
    admin_call(
        reqwest::Method::POST,
        "/admin/revocations".into(),
        // A standing rule: no expires_at (until re-approved).
        Some(serde_json::json!({"key": "sub:bob", "revoked_before": "all"})),
    )
    .await;

    let python = Process::spawn(Command::new("python3").arg(SCRIPT).args([
        "--redis",
        &redis.url(),
        "--check-interval",
        "0.2",
    ]));
    let snapshot: Value =
        serde_json::from_str(&python.line(WAIT, |l| l.contains("\"snapshot\""))).unwrap();
    assert_eq!(snapshot["snapshot"], 2);
    assert_eq!(
        rule_keys(&snapshot),
        [format!("jti:{}", jti(&first)), "sub:bob".to_owned()]
    );
    assert_eq!(snapshot["rules"]["sub:bob"][0], "all");

    // After: an ADD event, then a REMOVE event.
    let second = token("read").await;
    revoke(second.clone()).await;
    let added: Value =
        serde_json::from_str(&python.line(WAIT, |l| l.contains("\"applied\""))).unwrap();
    assert_eq!(added["applied"], 3);
    assert_eq!(added["op"], "add");
    assert_eq!(added["key"], format!("jti:{}", jti(&second)));
    let expires_at = added["rules"][format!("jti:{}", jti(&second))][1]
        .as_u64()
        .unwrap();
    assert!(expires_at > revokd::clock::now_secs());

    admin_call(
        reqwest::Method::DELETE,
        "/admin/revocations/sub:bob".into(),
        None,
    )
    .await;
    let removed: Value =
        serde_json::from_str(&python.line(WAIT, |l| l.contains("\"applied\""))).unwrap();
    assert_eq!(removed["applied"], 4);
    assert_eq!(removed["op"], "remove");
    assert_eq!(
        rule_keys(&removed),
        [
            format!("jti:{}", jti(&first)),
            format!("jti:{}", jti(&second))
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );

    // A Redis that comes back empty: the subscriber resyncs and keeps its
    // rules (merged, not replaced).
    drop(issuer);
    let mut redis = redis;
    redis.restart();
    let resynced: Value =
        serde_json::from_str(&python.line(WAIT, |l| l.contains("\"snapshot\""))).unwrap();
    assert_eq!(rule_keys(&resynced).len(), 2, "{resynced}");
}
