//! Replication through real redis-server processes: the store's scripts, the
//! subscriber's protocol, and what happens when Redis crashes, comes back
//! empty, pauses, or drops a slow subscriber.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;
use crate::wait;
use prometheus::Registry;
use revokd::denylist::Denylist;
use revokd::metrics::DenylistMetrics;
use revokd::rule::{RevokedBefore, Rule, RuleKey, TokenKeys};
use revokd::store::RefreshUse;
use revokd::store::redis::{RedisStore, StoreOptions, Topology};
use revokd::subscriber::{Subscriber, SubscriberConfig};

const FAR: u64 = 4_000_000_000;

fn rule(key: &str) -> Rule {
    Rule {
        key: key.parse().unwrap(),
        revoked_before: RevokedBefore::All,
        expires_at: FAR,
    }
}

fn now() -> u64 {
    revokd::clock::now_secs()
}

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::new(
        Topology::Single(server.url()),
        StoreOptions {
            timeout: Duration::from_millis(500),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn fast_config() -> SubscriberConfig {
    SubscriberConfig {
        check_interval: Duration::from_millis(100),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        maintain_interval: Duration::from_millis(100),
        restore: false,
    }
}

struct Node {
    denylist: Denylist,
    subscriber: Subscriber,
    registry: Registry,
}

fn subscribe(server: &RedisServer, restore: bool) -> Node {
    let denylist = if restore {
        Denylist::listing()
    } else {
        Denylist::new()
    };
    let registry = Registry::new();
    let metrics = DenylistMetrics::register(&registry, &denylist).unwrap();
    let subscriber = Subscriber::spawn(
        store(server),
        denylist.clone(),
        SubscriberConfig {
            restore,
            ..fast_config()
        },
        Some(metrics),
    );
    Node {
        denylist,
        subscriber,
        registry,
    }
}

impl Node {
    fn holds(&self, key: &str) -> bool {
        self.denylist.get(&key.parse().unwrap(), now()).is_some()
    }

    fn counter(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric())
            .map(|metric| metric.get_counter().get_value())
            .sum()
    }
}

/// [`wait::eventually`] for a condition that needs no `.await`.
async fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait::eventually(what, timeout, || std::future::ready(condition())).await;
}

#[tokio::test]
async fn a_revocation_reaches_a_subscriber_and_a_reapproval_removes_it() {
    let server = RedisServer::start();
    let node = subscribe(&server, false);
    let store = store(&server);
    eventually("first sync", Duration::from_secs(5), || {
        node.subscriber.is_fresh(Duration::from_secs(1))
    })
    .await;

    let (position, merged) = store
        .revoke(&rule("jti:abc"), revokd::clock::now_millis())
        .await
        .unwrap();
    assert_eq!(position.seq, 1);
    assert_ne!(position.head, revokd::event::Head::GENESIS);
    assert_eq!(store.position().await.unwrap(), (1, position.head));
    assert_eq!(merged, rule("jti:abc"));
    eventually("rule applied", Duration::from_secs(5), || {
        node.holds("jti:abc")
    })
    .await;
    let keys = TokenKeys {
        jti: "abc",
        sid: None,
        sub: None,
        client_id: "web",
        iat: 1,
    };
    assert!(node.denylist.is_revoked(&keys, now()).is_some());

    let (removed, held) = store.remove(&"jti:abc".parse().unwrap(), 0).await.unwrap();
    assert_eq!((removed.seq, held), (2, true));
    // A removal of a rule Redis does not hold is still published: after a
    // fork a subscriber may hold it.
    let (again, held) = store.remove(&"jti:abc".parse().unwrap(), 0).await.unwrap();
    assert_eq!((again.seq, held), (3, false));
    assert_ne!(again.head, removed.head, "every event moves the head");
    eventually("both removals applied", Duration::from_secs(5), || {
        node.subscriber.last_seq() == 3
    })
    .await;
    assert!(!node.holds("jti:abc"));
    assert_eq!(node.counter("revokd_denylist_events_applied_total"), 3.0);
}

#[tokio::test]
async fn the_script_merges_rules_and_get_reads_them_back() {
    let server = RedisServer::start();
    let store = store(&server);
    let key: RuleKey = "sub:alice".parse().unwrap();
    let first = Rule {
        key: key.clone(),
        revoked_before: RevokedBefore::IssuedAtOrBefore(100),
        expires_at: 500,
    };
    let second = Rule {
        key: key.clone(),
        revoked_before: RevokedBefore::IssuedAtOrBefore(50),
        expires_at: 900,
    };
    store.revoke(&first, 0).await.unwrap();
    let (_, merged) = store.revoke(&second, 0).await.unwrap();
    let expected = Rule {
        key: key.clone(),
        revoked_before: RevokedBefore::IssuedAtOrBefore(100),
        expires_at: 900,
    };
    assert_eq!(merged, expected);
    assert_eq!(store.get(&key).await.unwrap(), Some(expected));
    let (_, all) = store
        .revoke(
            &Rule {
                revoked_before: RevokedBefore::All,
                ..first
            },
            0,
        )
        .await
        .unwrap();
    assert_eq!(all.revoked_before, RevokedBefore::All);
    assert_eq!(store.get(&"sub:bob".parse().unwrap()).await.unwrap(), None);

    // A standing rule (no expiry) is kept until the latest storable instant.
    let standing = Rule {
        key: "client:gone".parse().unwrap(),
        revoked_before: RevokedBefore::All,
        expires_at: u64::MAX,
    };
    let (_, kept) = store.revoke(&standing, 0).await.unwrap();
    assert_eq!(kept.expires_at, revokd::store::redis::LATEST_EXPIRY);
    assert_eq!(store.get(&standing.key).await.unwrap(), Some(kept));
}

#[tokio::test]
async fn expired_rules_leave_redis_and_a_refresh_claim_is_retried_until_confirmed() {
    let server = RedisServer::start();
    let store = store(&server);
    store
        .revoke(
            &Rule {
                expires_at: 100,
                ..rule("jti:old")
            },
            0,
        )
        .await
        .unwrap();
    store.revoke(&rule("jti:live"), 0).await.unwrap();
    assert_eq!(store.expire(100, 1000).await.unwrap(), 1);
    assert_eq!(store.expire(100, 1000).await.unwrap(), 0, "idempotent");
    assert_eq!(store.get(&"jti:old".parse().unwrap()).await.unwrap(), None);
    assert!(
        store
            .get(&"jti:live".parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );

    // Claim, retry, confirm, reuse: the script agrees with the memory store.
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store.claim_refresh("r1", "a1", ttl).await.unwrap(),
        RefreshUse::First
    );
    assert_eq!(
        store.claim_refresh("r1", "a2", ttl).await.unwrap(),
        RefreshUse::Retry
    );
    assert!(
        !store.confirm_refresh("r1", "a1").await.unwrap(),
        "superseded"
    );
    assert!(store.confirm_refresh("r1", "a2").await.unwrap());
    assert_eq!(
        store.claim_refresh("r1", "a3", ttl).await.unwrap(),
        RefreshUse::Reused
    );
    assert_eq!(
        store.claim_refresh("r2", "a1", ttl).await.unwrap(),
        RefreshUse::First
    );
}

#[tokio::test]
async fn a_revocation_at_one_issuer_is_visible_at_the_others() {
    let server = RedisServer::start();
    let (issuer_a, issuer_b) = (subscribe(&server, true), subscribe(&server, true));
    let resource = subscribe(&server, false);
    store(&server).revoke(&rule("sid:s-a"), 0).await.unwrap();
    store(&server).revoke(&rule("sub:bob"), 0).await.unwrap();
    for node in [&issuer_a, &issuer_b, &resource] {
        eventually("both rules everywhere", Duration::from_secs(5), || {
            node.holds("sid:s-a") && node.holds("sub:bob")
        })
        .await;
    }
}

#[tokio::test]
async fn redis_restarted_empty_gets_every_rule_back_and_nothing_is_forgotten() {
    let mut server = RedisServer::start();
    let issuer = subscribe(&server, true);
    let resource = subscribe(&server, false);
    eventually("first sync", Duration::from_secs(5), || {
        issuer.subscriber.is_fresh(Duration::from_secs(1))
    })
    .await;
    let writer = store(&server);
    for i in 0..50 {
        writer.revoke(&rule(&format!("jti:t{i}")), 0).await.unwrap();
    }
    eventually("all 50 applied", Duration::from_secs(5), || {
        issuer.denylist.len() == 50 && resource.denylist.len() == 50
    })
    .await;

    server.restart(); // empty: no persistence
    // The issuer notices the lost dataset and re-writes its rules.
    let check = store(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(snapshot) = check.snapshot(None).await
            && snapshot.rules.len() == 50
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules were not restored into redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nobody forgot anything meanwhile, and everyone is back in sync.
    for node in [&issuer, &resource] {
        eventually("in sync again", Duration::from_secs(5), || {
            node.subscriber.is_fresh(Duration::from_millis(500))
        })
        .await;
        assert_eq!(node.denylist.len(), 50);
        assert!(node.counter("revokd_denylist_resyncs_total") >= 1.0);
    }
    // New revocations flow again.
    check.revoke(&rule("jti:after"), 0).await.unwrap();
    eventually("new rule after restart", Duration::from_secs(5), || {
        resource.holds("jti:after")
    })
    .await;
}

#[tokio::test]
async fn a_paused_redis_makes_the_denylist_stale_and_it_recovers() {
    let server = RedisServer::start();
    let node = subscribe(&server, false);
    let bound = Duration::from_millis(500);
    eventually("first sync", Duration::from_secs(5), || {
        node.subscriber.is_fresh(bound)
    })
    .await;
    store(&server)
        .revoke(&rule("client:evil"), 0)
        .await
        .unwrap();
    eventually("rule applied", Duration::from_secs(5), || {
        node.holds("client:evil")
    })
    .await;

    server.signal("STOP");
    eventually("stale past the bound", Duration::from_secs(10), || {
        !node.subscriber.is_fresh(bound)
    })
    .await;
    // Fail-open or not, the last known rules are still enforced.
    assert!(node.holds("client:evil"));
    server.signal("CONT");
    eventually("fresh again", Duration::from_secs(10), || {
        node.subscriber.is_fresh(bound)
    })
    .await;
    assert!(node.holds("client:evil"));
    store(&server)
        .revoke(&rule("client:worse"), 0)
        .await
        .unwrap();
    eventually("new rule after the pause", Duration::from_secs(5), || {
        node.holds("client:worse")
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_dropped_for_falling_behind_resyncs_and_heals() {
    const BURST: usize = 20_000;
    // A tiny pub/sub output buffer: Redis disconnects the subscriber as soon
    // as a burst of events outruns it, losing what was queued.
    let server = RedisServer::start_with(&["--client-output-buffer-limit", "pubsub 256 128 1"]);
    let node = subscribe(&server, false);
    eventually("first sync", Duration::from_secs(5), || {
        node.subscriber.is_fresh(Duration::from_secs(1))
    })
    .await;
    // Publish a burst from a blocking connection on the test's only runtime
    // thread, so the subscriber cannot read until the burst is over.
    let script = redis::Script::new(concat!(
        include_str!("../../src/store/lua/chain.lua"),
        "\n",
        include_str!("../../src/store/lua/revoke.lua")
    ));
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys = revokd::store::redis::KeyNames::new("revokd");
    let mut pipe = redis::pipe();
    let padding = "x".repeat(200);
    for i in 0..BURST {
        let mut invocation = script.key(&keys.rules);
        invocation
            .key(&keys.expiry)
            .key(&keys.seq)
            .key(&keys.channel)
            .key(&keys.head)
            .key(&keys.log)
            .arg(format!("jti:{padding}{i}"))
            .arg("all")
            .arg(FAR)
            .arg(0)
            .arg(revokd::follow::HISTORY_WINDOW);
        pipe.invoke_script(&invocation).ignore();
    }
    script.prepare_invoke().load(&mut connection).unwrap();
    let () = pipe.query(&mut connection).unwrap();
    eventually(
        "every rule despite the drop",
        Duration::from_secs(15),
        || node.denylist.len() == BURST,
    )
    .await;
    assert!(
        node.counter("revokd_denylist_resyncs_total") >= 1.0,
        "the burst forced a resync"
    );
}

#[tokio::test]
async fn random_revocations_and_reapprovals_through_crashes_match_the_model() {
    let mut server = RedisServer::start();
    let issuer = subscribe(&server, true);
    let resource = subscribe(&server, false);
    eventually("first sync", Duration::from_secs(5), || {
        issuer.subscriber.is_fresh(Duration::from_secs(1))
    })
    .await;
    let mut model: BTreeMap<String, bool> = BTreeMap::new();
    // A small deterministic generator: the run is reproducible.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..6 {
        let writer = store(&server);
        for _ in 0..40 {
            let key = format!("jti:k{}", next() % 60);
            if next() % 3 == 0 {
                writer.remove(&key.parse().unwrap(), 0).await.unwrap();
                model.insert(key, false);
            } else {
                writer.revoke(&rule(&key), 0).await.unwrap();
                model.insert(key, true);
            }
        }
        let wanted = model.values().filter(|&&live| live).count();
        eventually("issuer caught up", Duration::from_secs(10), || {
            issuer.denylist.len() == wanted
        })
        .await;
        eventually("resource caught up", Duration::from_secs(10), || {
            resource.denylist.len() == wanted
        })
        .await;
        if round % 2 == 1 {
            server.restart();
            // The issuer restores; wait for Redis to hold the model again.
            let check = store(&server);
            let deadline = Instant::now() + Duration::from_secs(10);
            while check.snapshot(None).await.map(|s| s.rules.len()).ok() != Some(wanted) {
                assert!(Instant::now() < deadline, "round {round}: not restored");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Write the next round only once both follow the new dataset, so
            // the resource server sees every re-approval as an event.
            let seq = check.seq().await.unwrap();
            for node in [&issuer, &resource] {
                eventually("reconnected", Duration::from_secs(10), || {
                    node.subscriber.is_connected() && node.subscriber.last_seq() >= seq
                })
                .await;
            }
        }
    }
    for (key, &live) in &model {
        assert_eq!(issuer.holds(key), live, "issuer {key}");
        let store_holds = store(&server)
            .get(&key.parse().unwrap())
            .await
            .unwrap()
            .is_some();
        assert_eq!(store_holds, live, "redis {key}");
    }
    // The resource server never drops a rule Redis forgot; re-approvals it
    // saw as events are applied, so it matches the model too.
    for (key, &live) in &model {
        assert_eq!(resource.holds(key), live, "resource {key}");
    }
}
