//! Revoke → applied in another process's denylist, through a loopback Redis.
//!
//! The bench starts a redis-server on a free port and re-runs itself as a
//! child process that subscribes (the "resource server"). The parent revokes
//! `jti:p<i>` one at a time; the child reports each as soon as its denylist
//! holds it; the parent records the round trip. The figure is an upper bound
//! on propagation: it includes the child's report over a pipe.
//!
//! Then it measures revocations per second through the Lua script with 64
//! calls in flight (concurrent revocations at many issuers pipeline this way).
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
use revokd::store::redis::RedisStore;
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
    RedisStore::new(
        redis::Client::open(url).unwrap(),
        "revokd",
        Duration::from_secs(2),
    )
    .unwrap()
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
            redis::Client::open(url).unwrap(),
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

    let total = events * 2;
    let in_flight = 64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..in_flight {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (worker..total).step_by(in_flight) {
                store.revoke(&rule(events + i), 0).await.unwrap();
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "propagation/script_throughput: {total} revocations, {in_flight} in flight: {rate:.0} revocations/s"
    );
}
