//! `revokd gate`: the check nginx, Envoy and Traefik ask before forwarding
//! a request (see [`revokd::gate`]). Settings come from `--config FILE`
//! ([`GateConfig`]), then `REVOKD_GATE_*` variables, then the flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use revokd::config::{GateConfig, ListenAddr};
use revokd::gate::{self, PathRule};
use revokd::issuer::server::{ConnectionLimits, Listener, serve_router};
use revokd::layer::StalePolicy;
use revokd::metrics::ConnectionMetrics;
use revokd::resource_server::ResourceServer;

/// The gate's flags; each overrides its key of the file.
#[derive(clap::Args)]
pub(crate) struct GateArgs {
    /// TOML configuration file (keys as the flags; `[store]` as serve's).
    #[arg(long, env = "REVOKD_GATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to bind (default 127.0.0.1:8181), or `unix:PATH` for a
    /// gateway on the same host.
    #[arg(long)]
    listen: Option<ListenAddr>,
    /// Threads answering checks (default: one per core).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// The issuer's URL (the `iss` of its tokens); its keys are discovered.
    #[arg(long)]
    issuer: Option<String>,
    /// The audience tokens must carry to pass.
    #[arg(long)]
    audience: Option<String>,
    /// One Redis server's URL (names the whole topology).
    #[arg(long)]
    redis: Option<String>,
    /// A Redis Sentinel URL (repeat for each sentinel); needs --sentinel-master.
    #[arg(long = "sentinel")]
    sentinels: Vec<String>,
    /// The master name the sentinels monitor.
    #[arg(long)]
    sentinel_master: Option<String>,
    /// With --sentinel: subscribe on a healthy replica, not the master.
    #[arg(long)]
    subscribe_on_replica: bool,
    /// A Redis Cluster seed node URL (repeat).
    #[arg(long = "cluster")]
    cluster: Vec<String>,
    /// The Redis key prefix, as the issuer's `store.prefix`.
    #[arg(long)]
    prefix: Option<String>,
    /// `PATH=SCOPE[,SCOPE...]`: requests under PATH need those scopes
    /// (repeat; added to the file's `[[scope_rules]]`).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// This resource's RFC 9728 identifier (a URL): serves its metadata and
    /// names it in every challenge.
    #[arg(long)]
    resource: Option<String>,
    /// Refuse requests (503) while the denylist is stale past its bound,
    /// instead of serving on the last known rules.
    #[arg(long)]
    fail_closed: bool,
    /// How stale the denylist may be before /readyz fails (and, with
    /// --fail-closed, requests are refused); default 60s.
    #[arg(long, value_parser = humantime::parse_duration)]
    staleness_bound: Option<Duration>,
}

impl GateArgs {
    /// The configuration: the file, the variables, then these flags.
    pub(crate) fn config(self) -> anyhow::Result<GateConfig> {
        let rules = self
            .scopes
            .iter()
            .map(|spec| PathRule::parse(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)
            .context("--scope")?;
        let env = std::env::vars().filter(|(name, _)| name != "REVOKD_GATE_CONFIG");
        let config = GateConfig::load(self.config.as_deref(), env, |config| {
            let topology_flag =
                self.redis.is_some() || !self.sentinels.is_empty() || !self.cluster.is_empty();
            if topology_flag {
                // A flag names the whole topology, as `serve --redis` does.
                config.store.redis_url = self.redis;
                config.store.sentinels = self.sentinels;
                config.store.sentinel_master = self.sentinel_master;
                config.store.cluster = self.cluster;
                // How to reach the master stays with the file (or the
                // environment: it holds a password), for sentinels only.
                if config.store.sentinels.is_empty() {
                    config.store.sentinel_master_url = None;
                }
            } else if self.sentinel_master.is_some() {
                config.store.sentinel_master = self.sentinel_master;
            }
            set(&mut config.listen, self.listen);
            if self.worker_threads.is_some() {
                config.worker_threads = self.worker_threads;
            }
            set(&mut config.issuer, self.issuer);
            set(&mut config.audience, self.audience);
            set(&mut config.store.prefix, self.prefix);
            set(&mut config.staleness_bound, self.staleness_bound);
            if self.resource.is_some() {
                config.resource = self.resource;
            }
            config.fail_closed |= self.fail_closed;
            config.store.subscribe_on_replica |= self.subscribe_on_replica;
            config.scope_rules.extend(rules);
        })?;
        Ok(config)
    }
}

fn set<T>(slot: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *slot = value;
    }
}

/// The runtime the gate runs on: `worker_threads` of the file, or one
/// thread per core.
pub(crate) fn runtime(config: &GateConfig) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.worker_threads {
        builder.worker_threads(threads);
    }
    builder.enable_all().build().context("starting the runtime")
}

/// Runs the gate until `shutdown` resolves.
pub(crate) async fn run(
    config: GateConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let topology = config.store.topology().context("no redis topology")?;
    let listener = Listener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    let registry = prometheus::Registry::new();
    let connections = ConnectionMetrics::register(&registry)?;
    let policy = if config.fail_closed {
        StalePolicy::FailClosed
    } else {
        StalePolicy::FailOpen
    };
    let mut builder = ResourceServer::builder()
        .issuer(config.issuer.clone())
        .audience(config.audience.clone())
        .topology(topology)
        .prefix(config.store.prefix.clone())
        .subscribe_on_replica(config.store.subscribe_on_replica)
        .stale_policy(policy)
        .staleness_bound(config.staleness_bound)
        .registry(registry);
    if let Some(resource) = config.resource.clone() {
        builder = builder.resource(resource);
    }
    let server = builder.start().await?;
    let app = gate::router(&server, config.scope_rules.clone());
    tracing::info!(listen = %local, issuer = %config.issuer, audience = %config.audience, "revokd gate listening");
    // Tests and scripts read this line for the port.
    match &local {
        ListenAddr::Tcp(addr) => println!("revokd gate listening on http://{addr}"),
        ListenAddr::Unix(_) => println!("revokd gate listening on {local}"),
    }
    let limits = ConnectionLimits {
        header_read_timeout: config.limits.header_read_timeout,
        max_connections: config.limits.max_connections,
        max_connections_per_peer: config.limits.max_connections_per_peer,
    };
    let served = serve_router(listener, app, limits, connections, shutdown).await;
    if let ListenAddr::Unix(path) = &local {
        // Drained: nobody can be connected any more.
        let _ = std::fs::remove_file(path);
    }
    served.context("serving")
}
