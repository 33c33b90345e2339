//! A real Sentinel topology for tests: one master, N replicas and M
//! sentinels, every process a `redis-server` on 127.0.0.1 with its own temp
//! directory (`redis.log` in it), killed by pid on drop.
//!
//! Include it next to `redis_server.rs`, as a sibling module:
//! `#[path = "../common/redis_server.rs"] mod redis_server;` and
//! `#[path = "../common/sentinel.rs"] mod sentinel;`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use super::process::{ChildGuard, TempDir, free_port, poll};
use super::redis_server::{
    connect, info, info_field, log_tail, role, spawn_redis, stop_child, strings, wait_ready,
};

/// How long [`SentinelSet::start`] and [`SentinelSet::restart`] wait for the
/// topology to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// One process of the set (a data node or a sentinel).
struct Proc {
    port: u16,
    dir: TempDir,
    child: Option<ChildGuard>,
}

impl Proc {
    fn new(label: &str) -> Proc {
        let port = free_port();
        Proc {
            port,
            dir: TempDir::new(&format!("{label}-{port}")),
            child: None,
        }
    }

    fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.log")
    }
}

/// A master, its replicas and the sentinels monitoring them.
pub struct SentinelSet {
    name: String,
    /// Extra arguments of every data node (ACL users, say).
    node_args: Vec<String>,
    nodes: Vec<Proc>,
    sentinels: Vec<Proc>,
}

impl SentinelSet {
    /// Starts one master, `replicas` replicas and `sentinels` sentinels
    /// (quorum: a majority of them) with `down-after-milliseconds
    /// down_after_ms` and `failover-timeout 5000`; returns once every replica
    /// has `master_link_status:up` and every sentinel names the master, knows
    /// every replica and every other sentinel.
    pub fn start(replicas: usize, sentinels: usize, down_after_ms: u64) -> SentinelSet {
        SentinelSet::start_with(replicas, sentinels, down_after_ms, &[])
    }

    /// [`SentinelSet::start`] with extra arguments for every data node, at
    /// its first start and every restart. The helpers here and the sentinels
    /// reach the nodes as the `default` user, which must keep `INFO`,
    /// `ROLE`, replication, `CONFIG` and the `__sentinel__:*` channels.
    pub fn start_with(
        replicas: usize,
        sentinels: usize,
        down_after_ms: u64,
        node_args: &[&str],
    ) -> SentinelSet {
        assert!(sentinels > 0, "a SentinelSet needs at least one sentinel");
        let mut set = SentinelSet {
            name: "revokd-test".to_string(),
            node_args: node_args.iter().map(ToString::to_string).collect(),
            nodes: (0..=replicas).map(|_| Proc::new("sentinel-node")).collect(),
            sentinels: (0..sentinels).map(|_| Proc::new("sentinel")).collect(),
        };
        let master = set.nodes[0].port;
        set.spawn_node(0, None);
        for i in 1..=replicas {
            set.spawn_node(i, Some(master));
        }
        for i in 1..=replicas {
            set.wait_link_up(set.nodes[i].port);
        }
        // Sentinels learn the replicas from the master's INFO, which they
        // ask for on connect and then only every 10 s: let the master list
        // them all as online first.
        let online = poll(SETTLE, || {
            let text = info(master, "replication")?;
            let count = (0..replicas)
                .filter(|i| {
                    info_field(&text, &format!("slave{i}")).is_some_and(|v| v.contains("online"))
                })
                .count();
            (count == replicas).then_some(())
        });
        assert!(
            online.is_some(),
            "master {master} never listed {replicas} online replicas"
        );

        let quorum = sentinels / 2 + 1;
        for i in 0..sentinels {
            set.spawn_sentinel(i, master, quorum, down_after_ms);
        }
        let replica_ports: Vec<u16> = set.nodes[1..].iter().map(|n| n.port).collect();
        for i in 0..sentinels {
            let port = set.sentinels[i].port;
            let ok = poll(SETTLE, || {
                let mut con = connect(port).ok()?;
                (sentinel_master(&mut con, &set.name)? == master).then_some(())?;
                let known = sentinel_list(&mut con, "REPLICAS", &set.name)?;
                let all_replicas = replica_ports
                    .iter()
                    .all(|p| known.iter().any(|r| healthy(r) && port_of(r) == Some(*p)));
                let others = sentinel_list(&mut con, "SENTINELS", &set.name)?;
                let all_sentinels = others.iter().filter(|s| healthy(s)).count() == sentinels - 1;
                (all_replicas && all_sentinels).then_some(())
            });
            assert!(
                ok.is_some(),
                "sentinel {port} did not see master {master}, replicas {replica_ports:?} and {} other sentinels; {}:\n{}",
                sentinels - 1,
                set.sentinels[i].log().display(),
                log_tail(&set.sentinels[i].log(), 20)
            );
        }
        set
    }

    /// The monitored master's name (`revokd-test`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `redis://127.0.0.1:<port>` of every sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(|s| url(s.port)).collect()
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The current master's port, asked of the first sentinel that answers
    /// `SENTINEL get-master-addr-by-name`.
    pub fn master_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|s| sentinel_master(&mut connect(s.port).ok()?, &self.name))
            .expect("no sentinel answered get-master-addr-by-name")
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn node_url(&self, port: u16) -> String {
        url(port)
    }

    /// The URL of the current master.
    pub fn master_url(&self) -> String {
        url(self.master_port())
    }

    /// Every data node's port (master and replicas, running or not).
    pub fn node_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The running data nodes other than the current master.
    pub fn replica_ports(&self) -> Vec<u16> {
        let master = self.master_port();
        self.nodes
            .iter()
            .filter(|n| n.child.is_some() && n.port != master)
            .map(|n| n.port)
            .collect()
    }

    /// The pid of the data node on `port`, if it runs.
    pub fn pid(&self, port: u16) -> Option<u32> {
        self.nodes[self.index(port)]
            .child
            .as_ref()
            .map(ChildGuard::pid)
    }

    /// SIGKILLs (by pid) the data node on `port`, master or replica.
    pub fn kill9(&mut self, port: u16) {
        let i = self.index(port);
        stop_child(&mut self.nodes[i].child);
    }

    /// Polls every sentinel until all name the same master other than
    /// `old_port` and that node answers `ROLE` as master; returns its port.
    pub fn wait_for_new_master(&self, old_port: u16, timeout: Duration) -> u16 {
        let started = Instant::now();
        let mut first_seen: Option<Duration> = None;
        let found = poll(timeout, || {
            let mut named = Vec::new();
            for s in &self.sentinels {
                let port = connect(s.port)
                    .ok()
                    .and_then(|mut con| sentinel_master(&mut con, &self.name));
                named.push(port);
            }
            if first_seen.is_none() && named.iter().any(|p| p.is_some_and(|p| p != old_port)) {
                first_seen = Some(started.elapsed());
            }
            let new = named.first().copied().flatten()?;
            let agreed = new != old_port && named.iter().all(|p| *p == Some(new));
            (agreed && role(new).as_deref() == Some("master")).then_some(new)
        });
        let Some(new) = found else {
            panic!(
                "sentinels did not agree on a new master (old {old_port}) within {timeout:?}; logs in {}",
                self.sentinels
                    .iter()
                    .map(|s| s.log().display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        eprintln!(
            "sentinel: new master {new} (old {old_port}): first sentinel after {:?}, all after {:?}",
            first_seen.unwrap_or_default(),
            started.elapsed()
        );
        new
    }

    /// Starts the killed data node on `port` again, on the same port and dir
    /// (empty: no persistence), as a replica of the current master, unless
    /// the sentinels still name it the master (no failover happened), in
    /// which case it comes back as an empty master. Returns once its
    /// replication link is up and every sentinel sees it healthy.
    pub fn restart(&mut self, port: u16) {
        let i = self.index(port);
        assert!(
            self.nodes[i].child.is_none(),
            "node {port} is running; kill9 it first"
        );
        let master = self.master_port();
        let replicaof = (master != port).then_some(master);
        self.spawn_node(i, replicaof);
        if replicaof.is_some() {
            self.wait_link_up(port);
        }
        self.wait_healthy(port, replicaof.is_none());
    }

    /// Waits until every sentinel sees the node on `port` healthy: as the
    /// master if `as_master`, else as a replica.
    pub fn wait_healthy(&self, port: u16, as_master: bool) {
        for s in &self.sentinels {
            let ok = poll(SETTLE, || {
                let mut con = connect(s.port).ok()?;
                if as_master {
                    return (sentinel_master(&mut con, &self.name)? == port).then_some(());
                }
                let known = sentinel_list(&mut con, "REPLICAS", &self.name)?;
                known
                    .iter()
                    .any(|r| healthy(r) && port_of(r) == Some(port))
                    .then_some(())
            });
            assert!(
                ok.is_some(),
                "sentinel {} did not see node {port} healthy; {}",
                s.port,
                s.log().display()
            );
        }
    }

    /// `CONFIG SET key value` on the data node on `port`.
    pub fn set_config(&self, port: u16, key: &str, value: &str) {
        let mut con = connect(port).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("CONFIG SET {key} {value} on {port}: {e}"));
    }

    fn index(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("no data node on port {port} in this SentinelSet"))
    }

    fn spawn_node(&mut self, i: usize, replicaof: Option<u16>) {
        let node = &mut self.nodes[i];
        let mut args: Vec<OsString> = strings(&["--port", &node.port.to_string()]);
        args.extend(strings(&["--save", "", "--appendonly", "no"]));
        args.extend(strings(&["--repl-diskless-sync-delay", "0", "--dir"]));
        args.push(node.dir.path().as_os_str().to_owned());
        if let Some(master) = replicaof {
            args.extend(strings(&["--replicaof", "127.0.0.1", &master.to_string()]));
        }
        args.extend(self.node_args.iter().map(OsString::from));
        let mut child = spawn_redis(&args, &node.log());
        wait_ready(node.port, &mut child, &node.log());
        node.child = Some(child);
    }

    fn spawn_sentinel(&mut self, i: usize, master: u16, quorum: usize, down_after_ms: u64) {
        let name = &self.name;
        let s = &mut self.sentinels[i];
        let conf = s.dir.path().join("sentinel.conf");
        let text = format!(
            "port {port}\n\
             bind 127.0.0.1\n\
             dir {dir}\n\
             sentinel monitor {name} 127.0.0.1 {master} {quorum}\n\
             sentinel down-after-milliseconds {name} {down_after_ms}\n\
             sentinel failover-timeout {name} 5000\n\
             sentinel parallel-syncs {name} 1\n",
            port = s.port,
            dir = s.dir.path().display(),
        );
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let args = vec![conf.into_os_string(), OsString::from("--sentinel")];
        let mut child = spawn_redis(&args, &s.log());
        wait_ready(s.port, &mut child, &s.log());
        s.child = Some(child);
    }

    fn wait_link_up(&self, port: u16) {
        let up = poll(SETTLE, || {
            let text = info(port, "replication")?;
            (info_field(&text, "master_link_status")? == "up").then_some(())
        });
        let log = self.nodes[self.index(port)].log();
        assert!(
            up.is_some(),
            "replica {port} never reported master_link_status:up; {}:\n{}",
            log.display(),
            log_tail(&log, 20)
        );
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        // Sentinels first, so they do not react to the nodes going away.
        for s in &mut self.sentinels {
            stop_child(&mut s.child);
        }
        for n in &mut self.nodes {
            stop_child(&mut n.child);
        }
    }
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// `SENTINEL get-master-addr-by-name`'s port.
fn sentinel_master(con: &mut redis::Connection, name: &str) -> Option<u16> {
    let addr: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query(con)
        .ok()?;
    addr?.1.parse().ok()
}

/// `SENTINEL REPLICAS|SENTINELS <name>`, one field map per instance.
fn sentinel_list(
    con: &mut redis::Connection,
    what: &str,
    name: &str,
) -> Option<Vec<HashMap<String, String>>> {
    redis::cmd("SENTINEL").arg(what).arg(name).query(con).ok()
}

/// Neither subjectively down nor disconnected, as the sentinel sees it.
fn healthy(instance: &HashMap<String, String>) -> bool {
    instance.get("flags").is_some_and(|f| {
        !f.contains("s_down") && !f.contains("o_down") && !f.contains("disconnected")
    })
}

fn port_of(instance: &HashMap<String, String>) -> Option<u16> {
    instance.get("port")?.parse().ok()
}
