//! High availability with real processes on loopback: issuers and the example
//! resource server on a Sentinel set and on a Cluster lose the master to
//! SIGKILL and keep every revocation they answered 200; a master that cannot
//! reach its replicas (`min-replicas-to-write`) and an issuer that waits for
//! replicas (`replica_acks`) answer 503, never a 200 that a failover could
//! lose.

use std::sync::Arc;
use std::time::{Duration, Instant};

use revokd::config::StoreConfig;
use revokd::signing::{SigningAlg, SigningKeys};

use crate::cluster::ClusterSet;
use crate::process::{signal, try_signal};
use crate::redis_server::connect;
use crate::resource_server::KeyServer;
use crate::resource_server::e2e::{Process, http, start_resource_server_on};
use crate::sentinel::SentinelSet;
use crate::support::{Server, WEB, decode_parts, start_on_store};
use crate::wait::{eventually, wait_for_status};

/// The `iss` of the deployments that need no resource server.
const ISSUER: &str = "http://revokd.test";

/// Bound on a kit failover (it takes 2-3 s on a quiet machine).
const FAILOVER: Duration = Duration::from_secs(60);

/// Bound on a revocation retried until it answers 200.
const RETRY: Duration = Duration::from_secs(60);

/// Bound on propagation checks (introspection, the resource server).
const SETTLE: Duration = Duration::from_secs(20);

// === helpers ===

/// Revokes `token` at `server` until it answers 200; every other answer
/// must be 503. Returns the number of 503s.
async fn revoke_until_200(server: &Server, token: &str) -> u32 {
    let started = Instant::now();
    let mut unavailable = 0;
    loop {
        match server.revoke(WEB, token).await.as_u16() {
            200 => return unavailable,
            503 => unavailable += 1,
            other => panic!("revocation at {} answered {other}", server.base),
        }
        assert!(
            started.elapsed() < RETRY,
            "revocation at {} still 503 after {RETRY:?} ({unavailable} tries)",
            server.base
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `GET {base}/readyz` answers 200.
async fn eventually_ready(http: &reqwest::Client, base: &str) -> Duration {
    wait_for_status(http, &format!("{base}/readyz"), 200, SETTLE).await
}

/// A process's stopped state (SIGSTOP), resumed (SIGCONT) on drop.
struct Stopped(Option<u32>);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal(pid, "STOP");
        Stopped(Some(pid))
    }

    fn resume(&mut self) {
        if let Some(pid) = self.0.take() {
            signal(pid, "CONT");
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // Best effort: a drop must not panic.
        if let Some(pid) = self.0.take() {
            try_signal(pid, "CONT");
        }
    }
}

/// The `jti:<jti>` rule key an access token's revocation writes.
fn jti_key(token: &str) -> String {
    let (_, claims) = decode_parts(token);
    format!("jti:{}", claims["jti"].as_str().expect("a jti"))
}

/// `HGET {revokd}:rules <key>` on the node on `port`.
fn rule_on(port: u16, key: &str) -> Option<String> {
    let mut con = connect(port).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
    redis::cmd("HGET")
        .arg("{revokd}:rules")
        .arg(key)
        .query(&mut con)
        .unwrap_or_else(|e| panic!("HGET on {port}: {e}"))
}

// === the example resource server ===

/// The example resource server (a child process, killed by pid on drop).
struct Api {
    _process: Process,
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// Starts it against `issuer` with topology flags (`--sentinel URL …
    /// --sentinel-master NAME` or `--cluster URL …`). Blocks: call it from
    /// `spawn_blocking` (its discovery of `issuer` needs the test's runtime).
    fn start(issuer: &str, topology: &[String]) -> Api {
        let (process, base) = start_resource_server_on(issuer, topology, &[]);
        Api {
            _process: process,
            base,
            http: http(),
        }
    }

    /// `GET /api/resource` with `token`: the status.
    async fn call(&self, token: &str) -> u16 {
        self.http
            .get(format!("{}/api/resource", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

// === failover ===

/// A topology whose master of revokd's keys can be SIGKILLed.
trait Topology: Send + Sync + 'static {
    fn label(&self) -> &'static str;
    /// The master that holds revokd's keys now.
    fn master(&self) -> u16;
    fn kill9(&mut self, port: u16);
    /// Blocks until another node took over from `old`; returns it.
    fn wait_for_new_master(&self, old: u16) -> u16;
    /// Points an issuer's `[store]` at this topology.
    fn store(&self, store: &mut StoreConfig);
    /// The resource server's topology flags.
    fn flags(&self) -> Vec<String>;
    /// The rule the master of revokd's keys holds for `key`.
    fn rule(&self, key: &str) -> Option<String> {
        rule_on(self.master(), key)
    }
}

impl Topology for SentinelSet {
    fn label(&self) -> &'static str {
        "sentinel"
    }

    fn master(&self) -> u16 {
        self.master_port()
    }

    fn kill9(&mut self, port: u16) {
        SentinelSet::kill9(self, port);
    }

    fn wait_for_new_master(&self, old: u16) -> u16 {
        SentinelSet::wait_for_new_master(self, old, FAILOVER)
    }

    fn store(&self, store: &mut StoreConfig) {
        store.sentinels = self.sentinel_urls();
        store.sentinel_master = Some(self.name().to_owned());
    }

    fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for url in self.sentinel_urls() {
            flags.extend(["--sentinel".to_owned(), url]);
        }
        flags.extend(["--sentinel-master".to_owned(), self.name().to_owned()]);
        flags
    }
}

/// A cluster and the slot of revokd's keys.
struct RevokdSlot {
    set: ClusterSet,
    slot: u16,
}

impl Topology for RevokdSlot {
    fn label(&self) -> &'static str {
        "cluster"
    }

    fn master(&self) -> u16 {
        self.set.master_for_slot(self.slot)
    }

    fn kill9(&mut self, port: u16) {
        self.set.kill9(port);
    }

    fn wait_for_new_master(&self, old: u16) -> u16 {
        self.set.wait_for_new_master(self.slot, old, FAILOVER)
    }

    fn store(&self, store: &mut StoreConfig) {
        store.cluster = self.set.seed_urls();
    }

    fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for url in self.set.seed_urls() {
            flags.extend(["--cluster".to_owned(), url]);
        }
        flags
    }
}

/// Revokes tokens one after another (each retried until 200) until `done`;
/// at least one. Returns the revoked tokens and the 503s seen.
async fn revoke_while(
    server: &Server,
    tokens: &[String],
    done: impl Fn() -> bool,
) -> (Vec<String>, u32) {
    let mut revoked = Vec::new();
    let mut unavailable = 0;
    for token in tokens {
        unavailable += revoke_until_200(server, token).await;
        revoked.push(token.clone());
        if done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (revoked, unavailable)
}

/// Two issuers and the resource server on `topology`; its master dies while
/// revocations go on. Every revocation answered 200 (before, during, after
/// the failover) is enforced by both issuers and the resource server; the
/// tokens never revoked still work; everything is ready again and a new
/// revocation reaches the resource server within 1 s.
async fn failover_keeps_every_answered_revocation(mut topology: impl Topology) {
    let label = topology.label();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    // The resource server discovers the issuer: a key server stands for the
    // deployment (its URL is the `iss` of both issuers' tokens).
    let keyserver = KeyServer::start(&keys).await;
    let issuer = keyserver.base.clone();
    let (a, _ra) = start_on_store(&issuer, keys.clone(), |s| topology.store(s)).await;
    let (b, _rb) = start_on_store(&issuer, keys, |s| topology.store(s)).await;
    let flags = topology.flags();
    let api_process = {
        let issuer = issuer.clone();
        tokio::task::spawn_blocking(move || Api::start(&issuer, &flags))
            .await
            .unwrap()
    };
    let api = &api_process;
    eventually_ready(&a.http, &a.base).await;
    eventually_ready(&b.http, &b.base).await;
    eventually_ready(&api.http, &api.base).await;

    // Tokens of alice's sessions, half from each issuer.
    let mut minted = Vec::new();
    for i in 0..40 {
        let at = if i % 2 == 0 { &a } else { &b };
        minted.push(at.login(WEB).await.0);
    }
    let kept: Vec<String> = minted.drain(..6).collect();
    let before: Vec<String> = minted.drain(..4).collect();
    let after: Vec<String> = minted.drain(..4).collect();
    let during_a: Vec<String> = minted.drain(..13).collect();
    let during_b: Vec<String> = minted;
    for token in kept.iter().chain(&before) {
        assert_eq!(api.call(token).await, 200, "a fresh token works");
    }

    // Revoked just before the kill: the 200s least likely to have reached
    // a replica.
    for (i, token) in before.iter().enumerate() {
        let at = if i % 2 == 0 { &a } else { &b };
        assert_eq!(at.revoke(WEB, token).await, 200, "revocation before");
    }
    let old = topology.master();
    topology.kill9(old);
    let killed_at = Instant::now();
    let topology = Arc::new(topology);
    let waiter = tokio::task::spawn_blocking({
        let topology = topology.clone();
        move || {
            let new = topology.wait_for_new_master(old);
            (new, killed_at.elapsed())
        }
    });
    let done = || waiter.is_finished();
    let ((revoked_a, unavailable_a), (revoked_b, unavailable_b)) = tokio::join!(
        revoke_while(&a, &during_a, done),
        revoke_while(&b, &during_b, done),
    );
    let during_took = killed_at.elapsed();
    let (new, failover) = match waiter.await {
        Ok(found) => found,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    assert!(
        unavailable_a + unavailable_b > 0,
        "{label}: the revocations right after the kill saw the outage (503s)"
    );
    let mut after_unavailable = 0;
    for (i, token) in after.iter().enumerate() {
        let at = if i % 2 == 0 { &a } else { &b };
        after_unavailable += revoke_until_200(at, token).await;
    }
    eprintln!(
        "{label}: master {old} -> {new} in {failover:?}; during the failover \
         ({during_took:?}) {} revocations answered 200 at A and {} at B after \
         {} + {} 503s; after it {} revocations, {after_unavailable} 503s",
        revoked_a.len(),
        revoked_b.len(),
        unavailable_a,
        unavailable_b,
        after.len(),
    );

    // Everything is ready again.
    let a_ready = eventually_ready(&a.http, &a.base).await;
    let b_ready = eventually_ready(&b.http, &b.base).await;
    let api_ready = eventually_ready(&api.http, &api.base).await;
    eprintln!(
        "{label}: ready again after {:?} (A {a_ready:?}, B +{b_ready:?}, resource server +{api_ready:?})",
        killed_at.elapsed()
    );

    // Every 200 holds, everywhere.
    let answered: Vec<&String> = before
        .iter()
        .chain(&revoked_a)
        .chain(&revoked_b)
        .chain(&after)
        .collect();
    for (i, token) in answered.iter().enumerate() {
        for (name, server) in [("A", &a), ("B", &b)] {
            eventually(
                &format!("{label}: answered revocation #{i} inactive at {name}"),
                SETTLE,
                || async move { !server.active(token).await },
            )
            .await;
        }
        eventually(
            &format!("{label}: answered revocation #{i} refused by the resource server"),
            SETTLE,
            || async move { api.call(token).await == 401 },
        )
        .await;
    }
    // Redis itself (the new master) holds every one of them: a process
    // that starts now learns them too.
    let topology = &*topology;
    for (i, token) in answered.iter().enumerate() {
        let key = &jti_key(token);
        eventually(
            &format!("{label}: answered revocation #{i} ({key}) held by the new master"),
            SETTLE,
            || async move { topology.rule(key).is_some() },
        )
        .await;
    }
    // And nothing else was revoked.
    for (i, token) in kept.iter().enumerate() {
        assert!(
            a.active(token).await,
            "{label}: kept token #{i} active at A"
        );
        assert!(
            b.active(token).await,
            "{label}: kept token #{i} active at B"
        );
        assert_eq!(
            api.call(token).await,
            200,
            "{label}: kept token #{i} accepted by the resource server"
        );
    }

    // A new revocation once things settled (B ready again: its denylist
    // followed the new master) reaches the resource server fast.
    eventually_ready(&b.http, &b.base).await;
    let (fresh, _) = a.login(WEB).await;
    assert_eq!(api.call(&fresh).await, 200);
    assert_eq!(
        b.revoke(WEB, &fresh).await,
        200,
        "revocation after settling"
    );
    let revoked_at = Instant::now();
    let mut accepted = 0;
    while api.call(&fresh).await != 401 {
        accepted += 1;
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "{label}: still accepted after 5 s"
        );
    }
    let took = revoked_at.elapsed();
    eprintln!(
        "{label}: after the failover a revocation reached the resource server in {took:?} \
         ({accepted} requests accepted in between); {} answered revocations held",
        answered.len()
    );
    assert!(took < Duration::from_secs(1), "{label}: {took:?}");
    assert!(!a.active(&fresh).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_failover_keeps_every_answered_revocation() {
    let set = tokio::task::spawn_blocking(|| SentinelSet::start(2, 3, 1000))
        .await
        .unwrap();
    failover_keeps_every_answered_revocation(set).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_failover_keeps_every_answered_revocation() {
    let topology = tokio::task::spawn_blocking(|| {
        let set = ClusterSet::start();
        let slot = set.slot_of("{revokd}:seq");
        RevokdSlot { set, slot }
    })
    .await
    .unwrap();
    failover_keeps_every_answered_revocation(topology).await;
}

// === credentials ===

/// The data nodes' ACL in the credentials tests. `default`, the user of the
/// kits' helpers, the sentinels and replication, may read and administer
/// and use the sentinels' channels, but not write, run scripts or touch
/// revokd's channel; `revokd` (password `s3cret`) may do everything.
const ACL: &[&str] = &[
    "--user",
    "default",
    "on",
    "nopass",
    "~*",
    "resetchannels",
    "&__sentinel__:*",
    "+@all",
    "-@write",
    "-@scripting",
    "--user",
    "revokd",
    "on",
    ">s3cret",
    "~*",
    "&*",
    "+@all",
];

/// The master a Sentinel set names is reached with `sentinel_master_url`'s
/// credentials: for revocations, for the subscription, and again after a
/// failover. Without them revokd is only `default` there, which may not
/// write: a revocation is a 503, never a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_master_behind_a_password_is_reached_with_the_sentinel_master_url() {
    let mut set = tokio::task::spawn_blocking(|| SentinelSet::start_with(1, 1, 1000, ACL))
        .await
        .unwrap();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let on_set = |url: Option<&str>| {
        let sentinels = set.sentinel_urls();
        let name = set.name().to_owned();
        let url = url.map(str::to_owned);
        move |store: &mut StoreConfig| {
            store.sentinels = sentinels;
            store.sentinel_master = Some(name);
            store.sentinel_master_url = url;
        }
    };

    let (anonymous, _r0) = start_on_store(ISSUER, keys.clone(), on_set(None)).await;
    let token = anonymous.cc_token(WEB).await;
    assert_eq!(
        anonymous.revoke(WEB, &token).await,
        503,
        "without credentials the master refuses revokd's script"
    );
    assert!(rule_on(set.master_port(), &jti_key(&token)).is_none());

    let url = Some("redis://revokd:s3cret@master");
    let (a, _ra) = start_on_store(ISSUER, keys.clone(), on_set(url)).await;
    let (b, _rb) = start_on_store(ISSUER, keys, on_set(url)).await;
    eventually_ready(&a.http, &a.base).await;
    eventually_ready(&b.http, &b.base).await;
    assert_eq!(a.revoke(WEB, &token).await, 200, "with them it is a 200");
    assert!(rule_on(set.master_port(), &jti_key(&token)).is_some());
    eventually("B's subscription delivers A's revocation", SETTLE, || {
        let (b, token) = (&b, &token);
        async move { !b.active(token).await }
    })
    .await;

    let old = set.master_port();
    set.kill9(old);
    let new = tokio::task::spawn_blocking(move || {
        let new = set.wait_for_new_master(old, FAILOVER);
        (set, new)
    });
    let (set, new) = new.await.unwrap();
    let token = a.cc_token(WEB).await;
    revoke_until_200(&a, &token).await;
    assert!(
        rule_on(new, &jti_key(&token)).is_some(),
        "the new master, reached with the same credentials, holds the rule"
    );
    eventually("B follows the new master", SETTLE, || {
        let (b, token) = (&b, &token);
        async move { !b.active(token).await }
    })
    .await;
    drop(set);
}

/// A Cluster whose nodes refuse writes without a password is reached with
/// the seed's credentials: by the data connection, and by a subscription on
/// a node the cluster names once the one seed is gone. Without them a
/// revocation is a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_behind_a_password_is_reached_with_the_seeds_credentials_everywhere() {
    let mut set = tokio::task::spawn_blocking(|| ClusterSet::start_with(ACL))
        .await
        .unwrap();
    // The one seed is a replica: its death moves no slot, only what was
    // connected to it.
    let seed = set.replica_ports()[0];
    let anonymous_seed = set.node_url(seed);
    let seed_url = anonymous_seed.replacen("redis://", "redis://revokd:s3cret@", 1);
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();

    let (anonymous, _r0) = start_on_store(ISSUER, keys.clone(), |store| {
        store.cluster = vec![anonymous_seed];
    })
    .await;
    let token = anonymous.cc_token(WEB).await;
    assert_eq!(
        anonymous.revoke(WEB, &token).await,
        503,
        "without credentials the cluster refuses revokd's script"
    );

    let on_seed = |store: &mut StoreConfig| store.cluster = vec![seed_url.clone()];
    let (a, _ra) = start_on_store(ISSUER, keys.clone(), on_seed).await;
    let (b, _rb) = start_on_store(ISSUER, keys, on_seed).await;
    eventually_ready(&a.http, &a.base).await;
    eventually_ready(&b.http, &b.base).await;
    assert_eq!(a.revoke(WEB, &token).await, 200, "with them it is a 200");
    eventually("B's subscription delivers A's revocation", SETTLE, || {
        let (b, token) = (&b, &token);
        async move { !b.active(token).await }
    })
    .await;

    // B subscribed on the seed: now on a node the cluster named.
    set.kill9(seed);
    eventually_ready(&b.http, &b.base).await;
    let token = a.cc_token(WEB).await;
    revoke_until_200(&a, &token).await;
    eventually(
        "B, subscribed on a node the cluster named, gets the next revocation",
        SETTLE,
        || {
            let (b, token) = (&b, &token);
            async move { !b.active(token).await }
        },
    )
    .await;
}

// === subscribing on a replica ===

/// `PUBSUB NUMSUB {revokd}:events` on the node on `port`: the subscriptions
/// to revokd's events held by that very node.
fn subscriptions_on(port: u16) -> u64 {
    let mut con = connect(port).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
    let counts: (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("{revokd}:events")
        .query(&mut con)
        .unwrap_or_else(|e| panic!("PUBSUB NUMSUB on {port}: {e}"));
    counts.1
}

/// A resource server told to subscribe on a replica holds its subscription
/// there, not on the master, and enforces revocations through it; when
/// that replica pauses (delivering nothing) or dies, it moves to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resource_server_subscribed_on_a_replica_enforces_revocations_and_moves_when_it_dies() {
    let mut set = tokio::task::spawn_blocking(|| SentinelSet::start(2, 1, 1000))
        .await
        .unwrap();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let keyserver = KeyServer::start(&keys).await;
    let issuer = keyserver.base.clone();
    let (a, _ra) = start_on_store(&issuer, keys, |store| set.store(store)).await;
    let mut flags = Topology::flags(&set);
    flags.push("--subscribe-on-replica".to_owned());
    let api = {
        let issuer = issuer.clone();
        tokio::task::spawn_blocking(move || Api::start(&issuer, &flags))
            .await
            .unwrap()
    };
    eventually_ready(&a.http, &a.base).await;
    eventually_ready(&api.http, &api.base).await;

    let master = set.master_port();
    let replicas = set.replica_ports();
    let on = |port: u16| subscriptions_on(port);
    assert_eq!(on(master), 1, "only the issuer subscribes on the master");
    let held: Vec<u16> = replicas.iter().copied().filter(|p| on(*p) == 1).collect();
    assert_eq!(
        held.len(),
        1,
        "the resource server subscribes on one replica"
    );
    let first = held[0];

    let enforced_within = |token: String| {
        let (a, api) = (&a, &api);
        async move {
            assert_eq!(api.call(&token).await, 200, "a fresh token works");
            assert_eq!(a.revoke(WEB, &token).await, 200);
            let revoked_at = Instant::now();
            while api.call(&token).await != 401 {
                assert!(
                    revoked_at.elapsed() < SETTLE,
                    "still accepted after {SETTLE:?}"
                );
            }
            revoked_at.elapsed()
        }
    };
    let took = enforced_within(a.login(WEB).await.0).await;
    eprintln!("subscribed on replica {first}: a revocation enforced after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // The replica pauses: its subscription stays open and delivers
    // nothing. The sync check against the master notices, and the resync
    // subscribes elsewhere.
    let other = replicas.iter().copied().find(|p| *p != first).unwrap();
    let mut paused = Stopped::stop(set.pid(first).expect("the replica runs"));
    let took = enforced_within(a.login(WEB).await.0).await;
    eprintln!("replica {first} paused: a revocation enforced after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    eventually(
        "the resource server subscribes on the other replica",
        SETTLE,
        || async move { subscriptions_on(other) == 1 },
    )
    .await;
    assert_eq!(on(master), 1, "and still not on the master");
    paused.resume();
    // Once the sentinels see it back, that replica dies: the subscription
    // moves at once.
    tokio::task::block_in_place(|| set.wait_healthy(first, false));
    set.kill9(other);
    eventually(
        "the resource server subscribes on the first replica again",
        SETTLE,
        || async move { subscriptions_on(first) == 1 },
    )
    .await;
    assert_eq!(on(master), 1, "and still not on the master");
    eventually_ready(&api.http, &api.base).await;
    let took = enforced_within(a.login(WEB).await.0).await;
    eprintln!("moved back to replica {first}: a revocation enforced after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

// === writes the replicas must confirm ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn min_replicas_to_write_without_its_replica_answers_503_never_200() {
    let mut set = tokio::task::spawn_blocking(|| SentinelSet::start(1, 1, 1000))
        .await
        .unwrap();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_store(ISSUER, keys, |store| {
        store.sentinels = set.sentinel_urls();
        store.sentinel_master = Some(set.name().to_owned());
    })
    .await;
    eventually_ready(&a.http, &a.base).await;
    let first = a.cc_token(WEB).await;
    assert_eq!(a.revoke(WEB, &first).await, 200, "the master takes writes");

    let master = set.master_port();
    set.set_config(master, "min-replicas-to-write", "1");
    set.set_config(master, "min-replicas-max-lag", "1");
    let replica = set.replica_ports()[0];
    set.kill9(replica);
    let killed_at = Instant::now();
    // The master refuses writes once its replica's last ack is over the lag.
    let refused = eventually("the master refuses a raw SET", SETTLE, || async move {
        let mut con = connect(master).unwrap();
        let set: redis::RedisResult<()> =
            redis::cmd("SET").arg("ha:probe").arg("1").query(&mut con);
        match set {
            Ok(()) => false,
            Err(error) if error.code() == Some("NOREPLICAS") => true,
            Err(error) => panic!("SET on {master}: {error}"),
        }
    })
    .await;
    eprintln!(
        "min-replicas: master {master} refuses writes {refused:?} after polling, {:?} after the kill",
        killed_at.elapsed()
    );

    let token = a.cc_token(WEB).await;
    for attempt in 0..5 {
        let started = Instant::now();
        let status = a.revoke(WEB, &token).await;
        assert_eq!(
            status, 503,
            "attempt {attempt}: a revocation the master refused is not a 200"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bounded: {:?}",
            started.elapsed()
        );
    }
    assert!(a.active(&token).await, "nothing was revoked");

    // The master takes writes again: a retry is a 200.
    set.set_config(master, "min-replicas-to-write", "0");
    let unavailable = revoke_until_200(&a, &token).await;
    assert!(!a.active(&token).await);
    eprintln!("min-replicas: after lifting the limit, 200 after {unavailable} more 503s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_acks_answers_200_only_once_a_replica_has_the_revocation() {
    let set = tokio::task::spawn_blocking(|| SentinelSet::start(1, 1, 1000))
        .await
        .unwrap();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (a, _ra) = start_on_store(ISSUER, keys, |store| {
        store.sentinels = set.sentinel_urls();
        store.sentinel_master = Some(set.name().to_owned());
        store.replica_acks = 1;
        // Generous for a loaded machine: a healthy replica confirms in
        // well under a millisecond; a paused one never does.
        store.replica_ack_timeout = Duration::from_secs(1);
    })
    .await;
    eventually_ready(&a.http, &a.base).await;
    let replica = set.replica_ports()[0];

    // A 200: the replica already holds the rule.
    let token = a.cc_token(WEB).await;
    assert_eq!(a.revoke(WEB, &token).await, 200);
    let held = rule_on(replica, &jti_key(&token));
    assert!(
        held.as_deref().is_some_and(|v| v.starts_with("all:")),
        "the replica holds the rule once the revocation is a 200: {held:?}"
    );

    // The replica pauses: no confirmation, no 200.
    let pid = set.pid(replica).expect("the replica runs");
    let mut stopped = Stopped::stop(pid);
    let token = a.cc_token(WEB).await;
    for attempt in 0..3 {
        let started = Instant::now();
        let status = a.revoke(WEB, &token).await;
        assert_eq!(
            status, 503,
            "attempt {attempt}: no replica confirmed, so no 200"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded: {:?}",
            started.elapsed()
        );
    }

    // The replica is back: a retry is a 200, and the replica has the rule.
    stopped.resume();
    let resumed_at = Instant::now();
    let unavailable = revoke_until_200(&a, &token).await;
    eprintln!(
        "replica_acks: 200 again {:?} after SIGCONT ({unavailable} more 503s)",
        resumed_at.elapsed()
    );
    let held = rule_on(replica, &jti_key(&token));
    assert!(
        held.as_deref().is_some_and(|v| v.starts_with("all:")),
        "the replica holds the retried rule: {held:?}"
    );
    assert!(!a.active(&token).await);
}
