//! `examples/python_subscriber.py` against a live Redis fed by
//! `revokd serve --redis`: it applies the snapshot, then events, and ends
//! with the same rules as Redis; a Redis that comes back empty or older
//! (restarted from an old RDB: a forked history) takes none of its rules.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::e2e::{Process, READY, REVOKD, http};
use crate::redis_server::RedisServer;
use crate::wait::wait_for_status;

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

/// `revokd serve --redis` in dev mode: a demo client whose secret and issuer
/// URL it prints.
struct Issuer {
    _process: Process,
    base: String,
    secret: String,
}

impl Issuer {
    async fn start(redis: &str) -> Issuer {
        let process = Process::spawn(
            Command::new(REVOKD)
                .args(["serve", "--listen", "127.0.0.1:0", "--redis", redis])
                .env("RUST_LOG", "warn")
                .env_remove("REVOKD_CONFIG"),
        );
        let secret = process.line(WAIT, |l| l.starts_with("demo client_secret:"));
        let secret = secret
            .trim_start_matches("demo client_secret:")
            .trim()
            .to_owned();
        let curl = process.line(WAIT, |l| l.starts_with("curl "));
        let base = curl
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches("/oauth2/token")
            .to_owned();
        wait_for_status(&http(), &format!("{base}/readyz"), 200, READY).await;
        Issuer {
            _process: process,
            base,
            secret,
        }
    }

    async fn token(&self, scope: &str) -> String {
        let body: Value = http()
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth("demo", Some(&self.secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Revokes `token`, retrying a 503 as a client should (right after
    /// Redis came back older, the issuer answers 503 until it follows the
    /// new history).
    async fn revoke(&self, token: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let response = http()
                .post(format!("{}/oauth2/revoke", self.base))
                .basic_auth("demo", Some(&self.secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            let status = response.status();
            if status == 503 && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            assert_eq!(status, 200);
            return;
        }
    }

    async fn admin(&self, admin: &str, method: reqwest::Method, path: &str, body: Option<Value>) {
        let mut request = http()
            .request(method, format!("{}{path}", self.base))
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
}

/// The rule key of a token's `jti`.
fn jti_key(token: &str) -> String {
    let jti = super::super::support::decode_parts(token).1["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    format!("jti:{jti}")
}

fn python(redis: &str) -> Process {
    Process::spawn(Command::new("python3").arg(SCRIPT).args([
        "--redis",
        redis,
        "--check-interval",
        "0.2",
    ]))
}

/// The next JSON line of `python` that has the member `member`.
fn next(python: &Process, member: &str) -> Value {
    let wanted = format!("\"{member}\"");
    serde_json::from_str(&python.line(WAIT, |l| l.contains(&wanted))).unwrap()
}

#[tokio::test]
async fn a_python_subscriber_applies_the_snapshot_and_the_events() {
    python_with_redis_py();
    let redis = RedisServer::start();
    let issuer = Issuer::start(&redis.url()).await;
    let admin = issuer.token("revokd:admin").await;

    // Before the subscriber starts: two rules it must get from the snapshot.
    let first = issuer.token("read").await;
    issuer.revoke(&first).await;
    issuer
        .admin(
            &admin,
            reqwest::Method::POST,
            "/admin/revocations",
            // A standing rule: no expires_at (until re-approved).
            Some(serde_json::json!({"key": "sub:bob", "revoked_before": "all"})),
        )
        .await;

    let python = python(&redis.url());
    let snapshot = next(&python, "snapshot");
    assert_eq!(snapshot["snapshot"], 2);
    assert_eq!(snapshot["relation"], "first");
    assert_eq!(snapshot["head"].as_str().unwrap().len(), 40, "{snapshot}");
    assert_eq!(
        rule_keys(&snapshot),
        [jti_key(&first), "sub:bob".to_owned()]
    );
    assert_eq!(snapshot["rules"]["sub:bob"][0], "all");

    // After: an ADD event, then a REMOVE event.
    let second = issuer.token("read").await;
    issuer.revoke(&second).await;
    let added = next(&python, "applied");
    assert_eq!(added["applied"], 3);
    assert_eq!(added["op"], "add");
    assert_eq!(added["key"], jti_key(&second));
    let expires_at = added["rules"][jti_key(&second)][1].as_u64().unwrap();
    assert!(expires_at > revokd::clock::now_secs());

    issuer
        .admin(
            &admin,
            reqwest::Method::DELETE,
            "/admin/revocations/sub:bob",
            None,
        )
        .await;
    let removed = next(&python, "applied");
    assert_eq!(removed["applied"], 4);
    assert_eq!(removed["op"], "remove");
    let mut both = vec![jti_key(&first), jti_key(&second)];
    both.sort();
    assert_eq!(rule_keys(&removed), both);

    // A Redis that comes back empty: the subscriber resyncs, no shared
    // history can be proven, and it keeps its rules (merged, not replaced).
    drop(issuer);
    let mut redis = redis;
    redis.restart();
    let resynced = next(&python, "snapshot");
    assert_eq!(resynced["relation"], "unproven", "{resynced}");
    assert_eq!(rule_keys(&resynced), both, "{resynced}");
}

#[tokio::test]
async fn a_python_subscriber_keeps_its_rules_when_redis_comes_back_older() {
    python_with_redis_py();
    let mut redis = RedisServer::start_persistent();
    let issuer = Issuer::start(&redis.url()).await;
    let python = python(&redis.url());
    assert_eq!(next(&python, "snapshot")["snapshot"], 0);

    // One revocation in the RDB, one after it.
    let saved = issuer.token("read").await;
    issuer.revoke(&saved).await;
    assert_eq!(next(&python, "applied")["applied"], 1);
    redis.save();
    let lost = issuer.token("read").await;
    issuer.revoke(&lost).await;
    let applied = next(&python, "applied");
    assert_eq!(applied["applied"], 2);
    let applied_before = applied.to_string();

    // Redis restarts from the RDB: seq 1, without the second revocation.
    // The subscriber finds where the histories forked (after seq 1, which
    // both hold) and merges: it holds both rules.
    redis.kill9();
    redis.start_again();
    let resynced = next(&python, "snapshot");
    assert_eq!(
        resynced["relation"], "forked",
        "{resynced} after {applied_before}"
    );
    let mut both = vec![jti_key(&saved), jti_key(&lost)];
    both.sort();
    assert_eq!(rule_keys(&resynced), both, "{resynced}");

    // It follows the new history from there: a third revocation applies.
    let third = issuer.token("read").await;
    issuer.revoke(&third).await;
    let after = python.line(WAIT, |l| l.contains(&jti_key(&third)));
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(rule_keys(&after).len(), 3, "{after}");
}
