//! Where revokd's Redis is and how to reach it: one server, a master
//! monitored by Redis Sentinel, or a Redis Cluster. A [`Link`] hands out a
//! connection to whichever node holds revokd's keys now and follows
//! failovers; [`Link::pubsub`] opens a subscription on a node that receives
//! revokd's events.
//!
//! - **Single**: a [`ConnectionManager`] that reconnects by itself.
//! - **Sentinel**: the master's address is asked of the sentinels, again at
//!   most every [`SENTINEL_RECHECK`] and at once after an error that means
//!   the node is gone or no longer master (I/O, timeout, `READONLY`), so a
//!   failover (`+switch-master`) is followed within a second, and a demoted
//!   master is left even while it still answers reads.
//! - **Cluster**: redis-rs's cluster connection, which routes every command
//!   to the master of revokd's one hash slot and follows `MOVED`, `ASK` and
//!   failovers. Events are published with plain `PUBLISH`, which a cluster
//!   broadcasts to every node, so a subscription on any node sees them all;
//!   a node that dies drops the subscription, which makes the subscriber
//!   resync on another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::Mutex;

/// How often a Sentinel link asks again which node is master.
pub(crate) const SENTINEL_RECHECK: Duration = Duration::from_secs(1);

/// Bound on the `ROLE` that checks a replica before subscribing on it.
const REPLICA_PROBE: Duration = Duration::from_millis(250);

/// Where revokd's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One Redis server (`redis://` or `rediss://` URL).
    Single(String),
    /// A master found through Redis Sentinel.
    Sentinel {
        /// Sentinel URLs (`redis://host:26379`).
        sentinels: Vec<String>,
        /// The monitored master's name.
        master: String,
        /// How to reach the master the sentinels name: this URL's scheme,
        /// credentials, database and `#insecure` fragment, with its host and
        /// port replaced by the master's (`rediss://revokd:secret@master/0`).
        /// `None`: plain `redis://`, no credentials.
        master_url: Option<String>,
    },
    /// A Redis Cluster, by some of its nodes.
    Cluster(Vec<String>),
}

/// Why settings do not name one Redis topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// None of the three is given.
    #[error("no redis topology: give a redis URL, sentinels with a master name, or cluster nodes")]
    Missing,
    /// More than one is given.
    #[error("name one redis topology: a redis URL, sentinels or cluster nodes")]
    Several,
    /// Sentinels without a master name, or a master name without sentinels.
    #[error("sentinels and the sentinel master name go together")]
    SentinelMaster,
    /// A sentinel master URL without sentinels.
    #[error("a sentinel master URL needs sentinels")]
    SentinelMasterUrl,
}

impl Topology {
    /// The one topology named by these settings (a config file's `[store]`,
    /// or a command line's `--redis`, `--sentinel` + `--sentinel-master`
    /// [+ `--sentinel-master-url`], `--cluster`).
    pub fn from_parts(
        redis_url: Option<String>,
        sentinels: Vec<String>,
        sentinel_master: Option<String>,
        sentinel_master_url: Option<String>,
        cluster: Vec<String>,
    ) -> Result<Topology, TopologyError> {
        if sentinels.is_empty() != sentinel_master.is_none() {
            return Err(TopologyError::SentinelMaster);
        }
        if sentinels.is_empty() && sentinel_master_url.is_some() {
            return Err(TopologyError::SentinelMasterUrl);
        }
        match (redis_url, sentinel_master, cluster.is_empty()) {
            (Some(url), None, true) => Ok(Topology::Single(url)),
            (None, Some(master), true) => Ok(Topology::Sentinel {
                sentinels,
                master,
                master_url: sentinel_master_url,
            }),
            (None, None, false) => Ok(Topology::Cluster(cluster)),
            (None, None, true) => Err(TopologyError::Missing),
            _ => Err(TopologyError::Several),
        }
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topology::Single(url) => write!(f, "redis {}", redact(url)),
            Topology::Sentinel {
                sentinels, master, ..
            } => {
                write!(
                    f,
                    "sentinel master {master:?} via {} sentinels",
                    sentinels.len()
                )
            }
            Topology::Cluster(seeds) => write!(f, "cluster via {} seed nodes", seeds.len()),
        }
    }
}

/// A URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// One connection to the node that holds revokd's keys, of whichever kind
/// the topology needs. Cheap to clone (all three multiplex).
#[derive(Clone)]
pub(crate) enum Connection {
    /// Single.
    Manager(ConnectionManager),
    /// Sentinel's current master.
    Multiplexed(MultiplexedConnection),
    /// Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Manager(c) => c.req_packed_command(cmd),
            Connection::Multiplexed(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Manager(c) => c.get_db(),
            Connection::Multiplexed(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// A handle on the Redis of a [`Topology`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Link {
    inner: Arc<Inner>,
}

enum Inner {
    Single {
        client: redis::Client,
        connection: ConnectionManager,
    },
    Sentinel {
        sentinels: Sentinels,
        master: String,
        current: Mutex<Option<Resolved>>,
        timeout: Duration,
        /// Subscribe on a replica rather than on the master.
        subscribe_on_replica: bool,
    },
    Cluster {
        client: redis::cluster::ClusterClient,
        seeds: Vec<String>,
        current: Mutex<Option<ClusterConnection>>,
    },
}

/// The master a Sentinel link last resolved.
struct Resolved {
    client: redis::Client,
    connection: MultiplexedConnection,
    at: Instant,
}

impl Link {
    /// A link to `topology` whose calls are bounded by `timeout`, whose
    /// subscriptions go to a replica when `subscribe_on_replica` (Sentinel
    /// only). Connects lazily: nothing is dialled until the first call.
    pub(crate) fn new(
        topology: &Topology,
        timeout: Duration,
        subscribe_on_replica: bool,
    ) -> redis::RedisResult<Link> {
        let inner = match topology {
            Topology::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
                Inner::Single { client, connection }
            }
            Topology::Sentinel {
                sentinels,
                master,
                master_url,
            } => Inner::Sentinel {
                sentinels: Sentinels::new(sentinels, master_url.as_deref(), timeout)?,
                master: master.clone(),
                current: Mutex::new(None),
                timeout,
                subscribe_on_replica,
            },
            Topology::Cluster(seeds) => Inner::Cluster {
                client: redis::cluster::ClusterClient::builder(seeds.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()?,
                seeds: seeds.clone(),
                current: Mutex::new(None),
            },
        };
        Ok(Link {
            inner: Arc::new(inner),
        })
    }

    /// A connection to the node that holds revokd's keys now.
    pub(crate) async fn connection(&self) -> redis::RedisResult<Connection> {
        match &*self.inner {
            Inner::Single { connection, .. } => Ok(Connection::Manager(connection.clone())),
            Inner::Sentinel {
                sentinels,
                master,
                current,
                timeout,
                ..
            } => {
                let mut current = current.lock().await;
                if let Some(resolved) = current.as_ref()
                    && resolved.at.elapsed() < SENTINEL_RECHECK
                {
                    return Ok(Connection::Multiplexed(resolved.connection.clone()));
                }
                let client = sentinels.master(master).await?;
                let same = current.as_ref().filter(|held| {
                    held.client.get_connection_info().addr() == client.get_connection_info().addr()
                });
                let connection = match same {
                    Some(held) => held.connection.clone(),
                    None => {
                        if current.is_some() {
                            tracing::warn!(master = %master, "sentinel named a new master: following it");
                        }
                        let config = redis::AsyncConnectionConfig::new()
                            .set_connection_timeout(Some(*timeout))
                            .set_response_timeout(Some(*timeout));
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?
                    }
                };
                *current = Some(Resolved {
                    client,
                    connection: connection.clone(),
                    at: Instant::now(),
                });
                Ok(Connection::Multiplexed(connection))
            }
            Inner::Cluster {
                client, current, ..
            } => {
                let mut current = current.lock().await;
                if let Some(connection) = current.as_ref() {
                    return Ok(Connection::Cluster(connection.clone()));
                }
                let connection = client.get_async_connection().await?;
                *current = Some(connection.clone());
                Ok(Connection::Cluster(connection))
            }
        }
    }

    /// Tells the link a call failed, so a Sentinel link asks for the master
    /// again before the next call when the node is gone or was demoted.
    pub(crate) async fn failed(&self, error: Option<&redis::RedisError>) {
        if let Inner::Sentinel { current, .. } = &*self.inner {
            let node_gone = error.is_none_or(|error| {
                error.is_io_error()
                    || error.is_timeout()
                    || error.is_connection_dropped()
                    || error.is_connection_refusal()
                    || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
            });
            if node_gone {
                *current.lock().await = None;
            }
        }
    }

    /// A client for a node whose subscription receives revokd's events: the
    /// server, Sentinel's master (or one of its healthy replicas, which
    /// receive every `PUBLISH` through replication), or any reachable
    /// cluster node (tried in turn from the seeds and the nodes the cluster
    /// names).
    pub(crate) async fn pubsub_client(&self) -> redis::RedisResult<redis::Client> {
        match &*self.inner {
            Inner::Single { client, .. } => Ok(client.clone()),
            Inner::Sentinel {
                sentinels,
                master,
                subscribe_on_replica,
                ..
            } => {
                if *subscribe_on_replica {
                    match sentinels.replica(master).await {
                        Ok(client) => return Ok(client),
                        Err(error) => tracing::warn!(
                            master = %master, %error,
                            "no healthy replica to subscribe on: subscribing on the master"
                        ),
                    }
                }
                sentinels.master(master).await
            }
            Inner::Cluster { seeds, .. } => {
                let mut candidates = seeds.clone();
                let seed = seeds.first().map_or("redis://", String::as_str);
                candidates.extend(self.cluster_nodes(seed).await);
                let mut last_error = None;
                for url in candidates {
                    let client = redis::Client::open(url.as_str())?;
                    match client.get_multiplexed_async_connection().await {
                        Ok(mut probe) => {
                            let pong: redis::RedisResult<String> =
                                redis::cmd("PING").query_async(&mut probe).await;
                            if pong.is_ok() {
                                return Ok(client);
                            }
                        }
                        Err(error) => last_error = Some(error),
                    }
                }
                Err(last_error.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Io, "no cluster node reachable"))
                }))
            }
        }
    }

    /// The URLs of the nodes the cluster names now (empty when none
    /// answers), reached like `seed` (see [`node_url`]), so a subscription
    /// outlives the seeds.
    async fn cluster_nodes(&self, seed: &str) -> Vec<String> {
        let Ok(mut connection) = self.connection().await else {
            return Vec::new();
        };
        let slots: redis::RedisResult<Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut connection)
            .await;
        let mut urls = Vec::new();
        if let Ok(Value::Array(ranges)) = slots {
            for range in ranges {
                let Value::Array(parts) = range else { continue };
                for node in parts.into_iter().skip(2) {
                    let Value::Array(fields) = node else { continue };
                    let mut fields = fields.into_iter();
                    if let (Some(host), Some(Value::Int(port))) = (fields.next(), fields.next()) {
                        let host: Result<String, _> = redis::FromRedisValue::from_redis_value(host);
                        if let Ok(host) = host {
                            urls.push(node_url(seed, &host, port));
                        }
                    }
                }
            }
        }
        urls
    }
}

/// The URL of a node the cluster or the sentinels named, reached like
/// `seed` (a seed node, or the sentinel master URL): with its scheme
/// (`rediss` for TLS), credentials, path (the database) and TLS fragment
/// (`#insecure`), as redis-rs's cluster connection reaches every node.
fn node_url(seed: &str, host: &str, port: i64) -> String {
    let (scheme, rest) = seed.split_once("://").unwrap_or(("redis", seed));
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, format!("#{fragment}")),
        None => (rest, String::new()),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let path = &rest[authority.len()..];
    let userinfo = authority
        .rsplit_once('@')
        .map(|(userinfo, _)| format!("{userinfo}@"))
        .unwrap_or_default();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("{scheme}://{userinfo}{host}:{port}{path}{fragment}")
}

/// The sentinels of a topology, asked in turn (each bounded on its own, so
/// one unreachable sentinel only delays the answer) for the master's
/// address; the one that answered is asked first next time.
struct Sentinels {
    clients: Vec<redis::Client>,
    /// The master URL's template (see [`node_url`]).
    master_url: String,
    preferred: std::sync::atomic::AtomicUsize,
    config: redis::AsyncConnectionConfig,
    timeout: Duration,
}

impl Sentinels {
    fn new(
        urls: &[String],
        master_url: Option<&str>,
        timeout: Duration,
    ) -> redis::RedisResult<Sentinels> {
        let clients = urls
            .iter()
            .map(|url| redis::Client::open(url.as_str()))
            .collect::<redis::RedisResult<Vec<_>>>()?;
        let master_url = master_url.unwrap_or("redis://master").to_owned();
        // Refused now rather than at the first failover.
        redis::Client::open(master_url.as_str())?;
        // A share of the call's bound for each sentinel, at least 100 ms.
        let each = (timeout / u32::try_from(clients.len().max(1)).unwrap_or(u32::MAX))
            .max(Duration::from_millis(100));
        Ok(Sentinels {
            clients,
            master_url,
            preferred: std::sync::atomic::AtomicUsize::new(0),
            config: redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(each))
                .set_response_timeout(Some(each)),
            timeout: each,
        })
    }

    /// A client for the node the sentinels name master of `name`, checked
    /// with `ROLE` (a sentinel may lag a failover by a moment).
    async fn master(&self, name: &str) -> redis::RedisResult<redis::Client> {
        use std::sync::atomic::Ordering;
        let count = self.clients.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..count {
            let index = (first + offset) % count;
            match tokio::time::timeout(self.timeout, self.ask(index, name)).await {
                Ok(Ok(client)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(client);
                }
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => {
                    last_error = Some(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "sentinel did not answer in time",
                    )));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Io, "no sentinel configured"))
        }))
    }

    /// A client for a replica of `name` that the first sentinel to answer
    /// sees healthy with its replication link up, and that answers `ROLE`
    /// as a replica. The first one tried is picked at random, so many
    /// subscribers spread over all of them.
    async fn replica(&self, name: &str) -> redis::RedisResult<redis::Client> {
        let first = self.preferred.load(std::sync::atomic::Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..self.clients.len() {
            let index = (first + offset) % self.clients.len();
            match self.ask_replica(index, name).await {
                Ok(client) => return Ok(client),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Io, "no sentinel configured"))
        }))
    }

    async fn ask_replica(&self, index: usize, name: &str) -> redis::RedisResult<redis::Client> {
        let mut sentinel = self.clients[index]
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg(name)
            .query_async(&mut sentinel)
            .await?;
        let healthy: Vec<(String, u16)> = replicas
            .iter()
            .filter(|replica| replica_is_healthy(replica))
            .filter_map(|replica| {
                Some((
                    replica.get("ip")?.clone(),
                    replica.get("port")?.parse().ok()?,
                ))
            })
            .collect();
        if healthy.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "sentinel lists no healthy replica",
            )));
        }
        let start = random_below(healthy.len());
        let mut last_error = None;
        for offset in 0..healthy.len() {
            let (host, port) = &healthy[(start + offset) % healthy.len()];
            let client = redis::Client::open(node_url(&self.master_url, host, (*port).into()))?;
            // Bounded on its own: a replica that hangs (paused, overloaded)
            // must leave time to try the next one.
            let error = match tokio::time::timeout(REPLICA_PROBE, self.role(&client)).await {
                Ok(Ok(Some(role))) if role == "slave" => return Ok(client),
                Ok(Ok(_)) => redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "the replica sentinel named is not a replica (any more)",
                )),
                Ok(Err(error)) => error,
                Err(_) => redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "the replica sentinel named did not answer in time",
                )),
            };
            last_error = Some(error);
        }
        Err(last_error.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Io, "no replica answered"))
        }))
    }

    /// The first element of `ROLE` on the node `client` reaches.
    async fn role(&self, client: &redis::Client) -> redis::RedisResult<Option<String>> {
        let mut node = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut node).await?;
        Ok(match role.first() {
            Some(Value::BulkString(kind)) => Some(String::from_utf8_lossy(kind).into_owned()),
            Some(Value::SimpleString(kind)) => Some(kind.clone()),
            _ => None,
        })
    }

    async fn ask(&self, index: usize, name: &str) -> redis::RedisResult<redis::Client> {
        let mut sentinel = self.clients[index]
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let address: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(name)
            .query_async(&mut sentinel)
            .await?;
        let Some((host, port)) = address else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "sentinel knows no such master",
            )));
        };
        let client = redis::Client::open(node_url(&self.master_url, &host, port.into()))?;
        match self.role(&client).await?.as_deref() {
            Some("master") => Ok(client),
            _ => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the node sentinel named is not master (yet)",
            ))),
        }
    }
}

/// A replica as `SENTINEL REPLICAS` lists it is usable for a subscription
/// when no sentinel thinks it down, it is connected, and its link to the
/// master is up (a replica cut off from its master would deliver nothing).
fn replica_is_healthy(replica: &std::collections::HashMap<String, String>) -> bool {
    let flags = replica.get("flags").map_or("", String::as_str);
    let down = ["s_down", "o_down", "disconnected"]
        .iter()
        .any(|flag| flags.split(',').any(|f| f == *flag));
    !down && replica.get("master-link-status").is_some_and(|s| s == "ok")
}

/// A number below `n` (> 0), different from one call to the next: enough to
/// spread subscribers over replicas. (Each `RandomState` gets new keys: a
/// random per-thread seed, advanced at every call.)
fn random_below(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let hash = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    usize::try_from(hash % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{node_url, random_below, replica_is_healthy};

    #[test]
    fn a_replica_is_subscribed_on_only_when_up_connected_and_linked() {
        let replica = |flags: &str, link: &str| {
            [("flags", flags), ("master-link-status", link)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        assert!(replica_is_healthy(&replica("slave", "ok")));
        assert!(!replica_is_healthy(&replica("slave", "err")));
        assert!(!replica_is_healthy(&replica("s_down,slave", "ok")));
        assert!(!replica_is_healthy(&replica("slave,o_down", "ok")));
        assert!(!replica_is_healthy(&replica("slave,disconnected", "ok")));
        assert!(!replica_is_healthy(&std::collections::HashMap::new()));
    }

    #[test]
    fn random_below_stays_below_and_spreads() {
        let picks: std::collections::HashSet<usize> = (0..200).map(|_| random_below(3)).collect();
        assert!(picks.iter().all(|p| *p < 3));
        assert_eq!(picks.len(), 3, "{picks:?}");
        assert_eq!(random_below(1), 0);
    }

    #[test]
    fn named_nodes_are_reached_with_the_seeds_scheme_credentials_and_database() {
        assert_eq!(
            node_url("redis://10.0.0.1:7000", "10.0.0.2", 7001),
            "redis://10.0.0.2:7001"
        );
        assert_eq!(
            node_url(
                "rediss://revokd:s%40cret@seed.example:7000/",
                "10.0.0.2",
                7001
            ),
            "rediss://revokd:s%40cret@10.0.0.2:7001/"
        );
        assert_eq!(
            node_url("rediss://:pw@seed:7000/#insecure", "node", 7002),
            "rediss://:pw@node:7002/#insecure"
        );
        assert_eq!(
            node_url("redis://seed:7000", "::1", 7003),
            "redis://[::1]:7003"
        );
        assert_eq!(
            node_url("redis://revokd:pw@master/2", "10.0.0.3", 6380),
            "redis://revokd:pw@10.0.0.3:6380/2"
        );
    }
}
