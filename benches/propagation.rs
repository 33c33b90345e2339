//! Revoke → applied in another process's denylist, through a loopback Redis.
//!
//! The bench starts a redis-server on a free port and re-runs itself as a
//! child process that subscribes (the "resource server"). The parent revokes
//! `jti:p<i>` one at a time; the child reports each as soon as its denylist
//! holds it; the parent records the round trip. The figure is an upper bound
//! on propagation: it includes the child's report over a pipe.
//!
//! Then it measures revocations per second through the Lua script with 64
//! calls in flight (concurrent revocations at many issuers pipeline this way),
//! with 0, 16 and 64 subscribers that must each receive every event: the
//! fan-out one Redis sustains.
//!
//! Last, with a master and one replica: revocations per second through the
//! script with `replica_acks` 0 and 1 (`WAIT 1` after each script, 64 in
//! flight), and revoke → received by a subscription on the replica (the
//! replication hop a subscriber on a Sentinel replica adds).
//!
//! Run: `cargo bench --bench propagation` (EVENTS=n to change the count).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use revokd::denylist::Denylist;
use revokd::rule::{RevokedBefore, Rule, RuleKey};
use revokd::store::redis::{RedisStore, StoreOptions, Topology};
use revokd::subscriber::{Subscriber, SubscriberConfig};

const CHILD_ENV: &str = "REVOKD_PROPAGATION_CHILD_REDIS";

fn rule(i: usize) -> Rule {
    Rule {
        key: RuleKey::Jti(format!("p{i}")),
        revoked_before: RevokedBefore::All,
        expires_at: revokd::clock::now_secs() + 3600,
    }
}

fn store(url: &str) -> RedisStore {
    RedisStore::single(url, "revokd").unwrap()
}

fn main() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return child(&url);
    }
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo bench -- --list` and test discovery: nothing to list.
    }
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let server = redis_server::RedisServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(parent(&server.url(), events));
    drop(server);
    runtime.block_on(replicated(events));
}

/// The figures with a replica: script throughput with `replica_acks` 0 and
/// 1, and the hop to a subscriber on the replica.
async fn replicated(events: usize) {
    use futures_util::StreamExt;
    let master = redis_server::RedisServer::start();
    let master_port = master.port().to_string();
    let replica =
        redis_server::RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !redis_server::info(replica.port(), "replication")
        .is_some_and(|info| info.contains("master_link_status:up"))
    {
        assert!(Instant::now() < deadline, "replica never linked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut first = 1_000_000;
    // Interleaved rounds, so drift on a shared machine hits both alike.
    for round in 0..2 {
        for acks in [0, 1] {
            let store = RedisStore::new(
                Topology::Single(master.url()),
                StoreOptions {
                    replica_acks: acks,
                    replica_ack_timeout: Duration::from_secs(1),
                    ..StoreOptions::default()
                },
            )
            .unwrap();
            let rate = fan_out(&master.url(), &store, first, events, 0).await;
            first += events;
            println!(
                "propagation/script_throughput/replica_acks_{acks} (round {round}): {events} revocations, 64 in flight: {rate:.0} revocations/s"
            );
        }
    }
    let store = RedisStore::single(&master.url(), "revokd").unwrap();
    let client = redis::Client::open(replica.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&store.key_names().channel).await.unwrap();
    let mut messages = pubsub.into_on_message();
    let mut latencies = Vec::with_capacity(events);
    for i in 0..events {
        let started = Instant::now();
        store
            .revoke(&rule(first + i), revokd::clock::now_millis())
            .await
            .unwrap();
        messages.next().await.unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "propagation/revoke_to_received_on_replica: n={events} p50={:?} p99={:?} max={:?}",
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1]
    );
}

/// Subscribes, then prints `i` as soon as `jti:p<i>` is in the denylist.
fn child(url: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let denylist = Denylist::new();
    let _subscriber = runtime.block_on(async {
        Subscriber::spawn(
            store(url),
            denylist.clone(),
            SubscriberConfig::default(),
            None,
        )
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    let now = revokd::clock::now_secs();
    let mut next = 0usize;
    loop {
        if denylist.get(&rule(next).key, now).is_some() {
            writeln!(stdout, "{next}").unwrap();
            stdout.flush().unwrap();
            next += 1;
        } else {
            std::hint::spin_loop();
        }
    }
}

async fn parent(url: &str, events: usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let store = store(url);
    // Let the child's first snapshot land before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut latencies = Vec::with_capacity(events);
    for i in 0..events {
        let started = Instant::now();
        store
            .revoke(&rule(i), revokd::clock::now_millis())
            .await
            .unwrap();
        let reported: usize = lines.next().unwrap().unwrap().parse().unwrap();
        assert_eq!(reported, i);
        latencies.push(started.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "propagation/revoke_to_applied_other_process: n={events} p50={:?} p99={:?} max={:?}",
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1]
    );

    let mut first = events;
    for subscribers in [0, 16, 64] {
        let total = events * 2;
        let rate = fan_out(url, &store, first, total, subscribers).await;
        first += total;
        println!(
            "propagation/script_throughput/{subscribers}_subscribers: {total} revocations, 64 in flight: {rate:.0} revocations/s delivered to every subscriber"
        );
    }
}

/// Revokes `total` rules with 64 calls in flight while `subscribers` plain
/// pub/sub connections each receive every event; returns events per second
/// until the last subscriber has them all.
async fn fan_out(
    url: &str,
    store: &RedisStore,
    first: usize,
    total: usize,
    subscribers: usize,
) -> f64 {
    use futures_util::StreamExt;
    let client = redis::Client::open(url).unwrap();
    let mut receivers = tokio::task::JoinSet::new();
    for _ in 0..subscribers {
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(&store.key_names().channel).await.unwrap();
        receivers.spawn(async move {
            let mut messages = pubsub.into_on_message();
            for _ in 0..total {
                messages.next().await.unwrap();
            }
        });
    }
    let in_flight = 64;
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for worker in 0..in_flight {
        let store = store.clone();
        writers.spawn(async move {
            for i in (worker..total).step_by(in_flight) {
                store.revoke(&rule(first + i), 0).await.unwrap();
            }
        });
    }
    while let Some(result) = writers.join_next().await {
        result.unwrap();
    }
    while let Some(result) = receivers.join_next().await {
        result.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}
