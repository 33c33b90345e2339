//! A real Redis Cluster for tests: 3 masters and 3 replicas, each a
//! `redis-server` on 127.0.0.1 with an explicit free client port and an
//! explicit free bus port, its own dir under one temp directory
//! (`<tmp>/<port>/redis.log`, `nodes-<port>.conf`), killed by pid on drop.
//!
//! Include it next to `redis_server.rs`, as a sibling module:
//! `#[path = "../common/redis_server.rs"] mod redis_server;` and
//! `#[path = "../common/cluster.rs"] mod cluster;`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{ChildGuard, TempDir, free_port, poll};
use super::redis_server::{
    append, connect, info, info_field, log_tail, role, spawn_redis, stop_child, strings, wait_ready,
};

/// How long [`ClusterSet::start`] and [`ClusterSet::restart`] wait for the
/// cluster to settle.
const SETTLE: Duration = Duration::from_secs(30);

const NODES: usize = 6;

struct ClusterNode {
    port: u16,
    bus_port: u16,
    dir: PathBuf,
    child: Option<ChildGuard>,
}

impl ClusterNode {
    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }
}

/// Six cluster nodes: three masters with one replica each.
pub struct ClusterSet {
    nodes: Vec<ClusterNode>,
    /// Extra arguments of every node (ACL users, say).
    node_args: Vec<String>,
    // Declared last: removed after the processes are gone.
    dir: TempDir,
}

impl ClusterSet {
    /// Starts six nodes, joins them with `redis-cli --cluster create
    /// --cluster-replicas 1`, and returns once every node reports
    /// `cluster_state:ok`, knows all six nodes, and every replica's link is up.
    pub fn start() -> ClusterSet {
        ClusterSet::start_with(&[])
    }

    /// [`ClusterSet::start`] with extra arguments for every node, at its
    /// first start and every restart. `redis-cli --cluster create` and the
    /// helpers here reach the nodes as the `default` user, which must keep
    /// `INFO`, `ROLE`, `CLUSTER` and replication.
    pub fn start_with(node_args: &[&str]) -> ClusterSet {
        let dir = TempDir::new("cluster");
        let nodes = (0..NODES)
            .map(|_| {
                let port = free_port();
                let node_dir = dir.path().join(port.to_string());
                std::fs::create_dir(&node_dir)
                    .unwrap_or_else(|e| panic!("create {}: {e}", node_dir.display()));
                ClusterNode {
                    port,
                    bus_port: free_port(),
                    dir: node_dir,
                    child: None,
                }
            })
            .collect();
        let mut set = ClusterSet {
            nodes,
            node_args: node_args.iter().map(ToString::to_string).collect(),
            dir,
        };
        for i in 0..NODES {
            set.spawn_node(i);
        }
        set.create();
        set.wait_settled(None);
        set
    }

    /// `redis://127.0.0.1:<port>` of all six nodes (running or not).
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| url(n.port)).collect()
    }

    /// All six client ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn node_url(&self, port: u16) -> String {
        url(port)
    }

    /// The pid of the node on `port`, if it runs.
    pub fn pid(&self, port: u16) -> Option<u32> {
        self.nodes[self.index(port)]
            .child
            .as_ref()
            .map(ChildGuard::pid)
    }

    /// The port of the master serving `slot`, from `CLUSTER SLOTS` of the
    /// first running node that answers.
    pub fn master_for_slot(&self, slot: u16) -> u16 {
        self.live_ports()
            .into_iter()
            .find_map(|port| slot_master(port, slot))
            .unwrap_or_else(|| panic!("no running node knows the master of slot {slot}"))
    }

    /// The running nodes that are masters (by `ROLE`).
    pub fn master_ports(&self) -> Vec<u16> {
        self.live_ports()
            .into_iter()
            .filter(|p| role(*p).as_deref() == Some("master"))
            .collect()
    }

    /// The running nodes that are replicas (by `ROLE`).
    pub fn replica_ports(&self) -> Vec<u16> {
        self.live_ports()
            .into_iter()
            .filter(|p| role(*p).as_deref() == Some("slave"))
            .collect()
    }

    /// `CLUSTER KEYSLOT key`, asked of a running node.
    pub fn slot_of(&self, key: &str) -> u16 {
        self.live_ports()
            .into_iter()
            .find_map(|port| {
                let mut con = connect(port).ok()?;
                redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query(&mut con)
                    .ok()
            })
            .expect("no running node answered CLUSTER KEYSLOT")
    }

    /// SIGKILLs (by pid) the node on `port`; its dir and nodes.conf stay.
    pub fn kill9(&mut self, port: u16) {
        let i = self.index(port);
        stop_child(&mut self.nodes[i].child);
    }

    /// Polls until every running node reports `cluster_state:ok` and routes
    /// `slot` to the same master other than `old_port`, which answers
    /// `ROLE` as master; returns its port.
    pub fn wait_for_new_master(&self, slot: u16, old_port: u16, timeout: Duration) -> u16 {
        let started = Instant::now();
        let mut first_seen: Option<Duration> = None;
        let found = poll(timeout, || {
            let live = self.live_ports();
            let mut views = Vec::new();
            for port in &live {
                let ok = cluster_info(*port)
                    .and_then(|text| info_field(&text, "cluster_state"))
                    .is_some_and(|state| state == "ok");
                views.push(if ok { slot_master(*port, slot) } else { None });
            }
            if first_seen.is_none() && views.iter().any(|v| v.is_some_and(|p| p != old_port)) {
                first_seen = Some(started.elapsed());
            }
            let new = views.first().copied().flatten()?;
            let agreed = new != old_port && views.iter().all(|v| *v == Some(new));
            (agreed && role(new).as_deref() == Some("master")).then_some(new)
        });
        let Some(new) = found else {
            panic!(
                "no new master for slot {slot} (old {old_port}) within {timeout:?}; logs under {}",
                self.dir.path().display()
            );
        };
        eprintln!(
            "cluster: new master {new} for slot {slot} (old {old_port}): first node after {:?}, all after {:?}",
            first_seen.unwrap_or_default(),
            started.elapsed()
        );
        new
    }

    /// Starts the killed node on `port` again with its old dir and
    /// nodes.conf (same node id, empty data): a master whose slots were
    /// failed over rejoins as a replica. Returns once every running node
    /// reports `cluster_state:ok` and no longer flags it as failed, and, if
    /// it is a replica, its link is up.
    pub fn restart(&mut self, port: u16) {
        let i = self.index(port);
        assert!(
            self.nodes[i].child.is_none(),
            "node {port} is running; kill9 it first"
        );
        self.spawn_node(i);
        self.wait_settled(Some(port));
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    fn index(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port} in this ClusterSet"))
    }

    fn spawn_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let port = node.port.to_string();
        let mut args: Vec<OsString> = strings(&["--port", &port, "--cluster-enabled", "yes"]);
        args.extend(strings(&[
            "--cluster-config-file",
            &format!("nodes-{port}.conf"),
            "--cluster-node-timeout",
            "1000",
            "--cluster-port",
            &node.bus_port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
            "--dir",
        ]));
        args.push(node.dir.clone().into_os_string());
        args.extend(self.node_args.iter().map(OsString::from));
        let mut child = spawn_redis(&args, &node.log());
        wait_ready(node.port, &mut child, &node.log());
        node.child = Some(child);
    }

    fn create(&self) {
        let log = self.dir.path().join("cluster-create.log");
        let out = append(&log);
        let mut command = Command::new("redis-cli");
        command.args(["--cluster", "create"]);
        command.args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        command.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let mut child = ChildGuard::new(
            command
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("clone log handle"))
                .stderr(out)
                .spawn()
                .expect("redis-cli must be installed"),
        );
        let status = poll(Duration::from_secs(60), || child.try_wait());
        let Some(status) = status else {
            child.kill();
            panic!(
                "redis-cli --cluster create timed out; {}:\n{}",
                log.display(),
                log_tail(&log, 30)
            );
        };
        assert!(
            status.success(),
            "redis-cli --cluster create failed ({status}); {}:\n{}",
            log.display(),
            log_tail(&log, 30)
        );
    }

    /// Waits until every running node has `cluster_state:ok`, all slots
    /// assigned, knows every node, flags no running node as failed, and
    /// every running replica's link is up.
    fn wait_settled(&self, restarted: Option<u16>) {
        let live = self.live_ports();
        let mut last = String::new();
        let ok = poll(SETTLE, || {
            for port in &live {
                let text = cluster_info(*port)?;
                let state = info_field(&text, "cluster_state");
                if state.as_deref() != Some("ok") {
                    last = format!("node {port}: cluster_state {state:?}");
                    return None;
                }
                let mut con = connect(*port).ok()?;
                let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut con).ok()?;
                let known = nodes.lines().filter(|l| !l.trim().is_empty()).count();
                if known != NODES {
                    last = format!("node {port} knows {known} nodes");
                    return None;
                }
                for line in nodes.lines() {
                    let mut fields = line.split_whitespace();
                    let addr = fields.nth(1).unwrap_or_default();
                    let flags = fields.next().unwrap_or_default();
                    let is_live = live
                        .iter()
                        .any(|p| addr.starts_with(&format!("127.0.0.1:{p}@")));
                    if is_live && flags.contains("fail") {
                        last = format!("node {port} flags {addr} as {flags}");
                        return None;
                    }
                }
                if role(*port).as_deref() == Some("slave") {
                    let repl = info(*port, "replication")?;
                    if info_field(&repl, "master_link_status").as_deref() != Some("up") {
                        last = format!("replica {port}: link not up");
                        return None;
                    }
                }
            }
            Some(())
        });
        assert!(
            ok.is_some(),
            "cluster did not settle{} within {SETTLE:?} (last: {last}); logs under {}:\n{}",
            restarted
                .map(|p| format!(" after restarting {p}"))
                .unwrap_or_default(),
            self.dir.path().display(),
            log_tail(&self.dir.path().join("cluster-create.log"), 10)
        );
    }
}

impl Drop for ClusterSet {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            stop_child(&mut n.child);
        }
    }
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// `CLUSTER INFO` of the node on `port` (`INFO cluster` lacks the state).
fn cluster_info(port: u16) -> Option<String> {
    let mut con = connect(port).ok()?;
    redis::cmd("CLUSTER").arg("INFO").query(&mut con).ok()
}

/// The master port of `slot` in `CLUSTER SLOTS` of the node on `port`.
fn slot_master(port: u16, slot: u16) -> Option<u16> {
    let mut con = connect(port).ok()?;
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).ok()?;
    ranges.into_iter().find_map(|range| {
        let redis::Value::Array(items) = range else {
            return None;
        };
        let start: u16 = redis::from_redis_value_ref(items.first()?).ok()?;
        let end: u16 = redis::from_redis_value_ref(items.get(1)?).ok()?;
        if !(start..=end).contains(&slot) {
            return None;
        }
        let redis::Value::Array(master) = items.get(2)? else {
            return None;
        };
        redis::from_redis_value_ref(master.get(1)?).ok()
    })
}
