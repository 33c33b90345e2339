//! `[store]`: where revocation rules live, and the Redis topology.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::redis::{StoreOptions, Topology};

/// `[store]`: where rules live. No Redis (`redis_url`, `sentinels` and
/// `cluster` all absent) means the in-memory store (one process); otherwise
/// exactly one of the three names the Redis topology.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// One Redis server's URL.
    pub redis_url: Option<String>,
    /// Redis Sentinel URLs: the master is found (and followed) through them.
    pub sentinels: Vec<String>,
    /// With `sentinels`: the monitored master's name.
    pub sentinel_master: Option<String>,
    /// With `sentinels`: how to reach the master they name. This URL's
    /// scheme, credentials, database and `#insecure` apply, its host and
    /// port are replaced (`rediss://revokd:secret@master/0`). Default: plain
    /// `redis://`, no credentials.
    pub sentinel_master_url: Option<String>,
    /// Seed nodes of a Redis Cluster.
    pub cluster: Vec<String>,
    /// Replicas that must confirm a revocation or re-approval (`WAIT`)
    /// before it is answered 200; 0 answers once the master took it.
    pub replica_acks: u64,
    /// How long to wait for those replicas before answering 503.
    #[serde(with = "super::duration")]
    pub replica_ack_timeout: Duration,
    /// Prefix of every Redis key (inside the `{…}` hash tag).
    pub prefix: String,
    /// With `sentinels`: subscribe on a healthy replica (one at random)
    /// instead of the master, which then only serves snapshots, checks and
    /// writes. For fleets of resource servers or gates.
    pub subscribe_on_replica: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            redis_url: None,
            sentinels: Vec::new(),
            sentinel_master: None,
            sentinel_master_url: None,
            cluster: Vec::new(),
            replica_acks: 0,
            replica_ack_timeout: Duration::from_millis(250),
            prefix: "revokd".to_owned(),
            subscribe_on_replica: false,
        }
    }
}

impl StoreConfig {
    /// The Redis topology configured, `None` for the in-memory store (or
    /// settings [`Config::validate`](super::Config::validate) refuses).
    pub fn topology(&self) -> Option<Topology> {
        self.parts().ok()
    }

    /// The store options these settings give.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            prefix: self.prefix.clone(),
            replica_acks: self.replica_acks,
            replica_ack_timeout: self.replica_ack_timeout,
            subscribe_on_replica: self.subscribe_on_replica,
            ..StoreOptions::default()
        }
    }

    /// Makes one Redis server, `url`, the whole topology (a `--redis` flag
    /// over a file that names a Sentinel set or a Cluster).
    pub fn name_only(&mut self, url: String) {
        self.redis_url = Some(url);
        self.sentinels.clear();
        self.sentinel_master = None;
        self.sentinel_master_url = None;
        self.cluster.clear();
    }

    /// The topology the five keys name, or why they name none.
    pub(super) fn parts(&self) -> Result<Topology, crate::store::redis::TopologyError> {
        Topology::from_parts(
            self.redis_url.clone(),
            self.sentinels.clone(),
            self.sentinel_master.clone(),
            self.sentinel_master_url.clone(),
            self.cluster.clone(),
        )
    }
}
