//! Self-tests of the topology kit (`tests/common/{redis_server,sentinel,
//! cluster}.rs`): each topology loses its master to SIGKILL and keeps a
//! replicated write; a persistent server keeps what it saved and nothing after.

use std::time::{Duration, Instant};

use crate::cluster::ClusterSet;
use crate::redis_server::RedisServer;
use crate::sentinel::SentinelSet;

fn con(url: &str) -> redis::Connection {
    let con = redis::Client::open(url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    con.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    con
}

fn get(url: &str, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut con(url)).unwrap()
}

/// SETs `key` on `url` and waits until one replica has it.
fn set_replicated(url: &str, key: &str, value: &str) {
    let mut con = con(url);
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut con)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(2000).query(&mut con).unwrap();
    assert!(acked >= 1, "no replica acknowledged {key} on {url}");
}

#[test]
fn a_persistent_server_keeps_what_it_saved_across_kill9() {
    let mut server = RedisServer::start_persistent();
    let mut c = con(&server.url());
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    server.save();
    let _: () = redis::cmd("SET").arg("b").arg("2").query(&mut c).unwrap();
    drop(c);
    let pid = server.pid();
    server.kill9();
    assert_eq!(server.pid(), None);
    server.start_again();
    assert_ne!(server.pid(), pid);
    assert_eq!(get(&server.url(), "a").as_deref(), Some("1"));
    assert_eq!(get(&server.url(), "b"), None);
}

#[test]
fn a_sentinel_set_fails_over_and_keeps_a_replicated_write() {
    let started = Instant::now();
    let mut set = SentinelSet::start(2, 3, 1000);
    eprintln!("sentinel set up in {:?}", started.elapsed());
    assert_eq!(set.name(), "revokd-test");
    assert_eq!(set.sentinel_urls().len(), 3);
    let old = set.master_port();
    assert_eq!(set.replica_ports().len(), 2);
    set_replicated(&set.node_url(old), "kit:sentinel", "v1");

    set.kill9(old);
    let new = set.wait_for_new_master(old, Duration::from_secs(30));
    assert_ne!(new, old);
    assert_eq!(set.master_port(), new);
    assert_eq!(
        get(&set.node_url(new), "kit:sentinel").as_deref(),
        Some("v1")
    );

    // The old master comes back as a replica of the new one.
    set.restart(old);
    assert!(set.replica_ports().contains(&old));
    set.set_config(new, "min-replicas-to-write", "1");
}

#[test]
fn a_cluster_fails_over_and_keeps_a_replicated_write() {
    let started = Instant::now();
    let mut set = ClusterSet::start();
    eprintln!("cluster up in {:?}", started.elapsed());
    assert_eq!(set.ports().len(), 6);
    assert_eq!(set.seed_urls().len(), 6);
    assert_eq!(set.master_ports().len(), 3);
    let key = "kit:cluster";
    let slot = set.slot_of(key);
    let old = set.master_for_slot(slot);
    set_replicated(&set.node_url(old), key, "v1");

    set.kill9(old);
    let new = set.wait_for_new_master(slot, old, Duration::from_secs(30));
    assert_ne!(new, old);
    assert_eq!(set.master_for_slot(slot), new);
    assert_eq!(get(&set.node_url(new), key).as_deref(), Some("v1"));

    // The old master rejoins as a replica of the new one.
    set.restart(old);
    assert!(set.replica_ports().contains(&old));
    assert_eq!(set.master_for_slot(slot), new);
}
