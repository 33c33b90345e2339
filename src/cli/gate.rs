//! `revokd gate`: the check nginx, Envoy and Traefik ask before forwarding
//! a request (see [`revokd::gate`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use revokd::gate::{self, PathRule};
use revokd::layer::StalePolicy;
use revokd::resource_server::ResourceServer;
use revokd::store::redis::Topology;

/// The gate's flags.
#[derive(clap::Args)]
pub(crate) struct GateArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:8181")]
    listen: SocketAddr,
    /// The issuer's URL (the `iss` of its tokens); its keys are discovered.
    #[arg(long)]
    issuer: String,
    /// The audience tokens must carry to pass.
    #[arg(long)]
    audience: String,
    /// One Redis server's URL.
    #[arg(long)]
    redis: Option<String>,
    /// A Redis Sentinel URL (repeat for each sentinel); needs --sentinel-master.
    #[arg(long = "sentinel")]
    sentinels: Vec<String>,
    /// The master name the sentinels monitor.
    #[arg(long)]
    sentinel_master: Option<String>,
    /// A Redis Cluster seed node URL (repeat).
    #[arg(long = "cluster")]
    cluster: Vec<String>,
    /// The Redis key prefix, as the issuer's `store.prefix`.
    #[arg(long, default_value = "revokd")]
    prefix: String,
    /// `PATH=SCOPE[,SCOPE...]`: requests under PATH need those scopes (repeat).
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
    /// --fail-closed, requests are refused).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    staleness_bound: Duration,
}

/// Runs the gate until SIGTERM or ctrl-c.
pub(crate) async fn run(
    args: GateArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let topology = Topology::from_parts(
        args.redis,
        args.sentinels,
        args.sentinel_master,
        args.cluster,
    )?;
    let rules = args
        .scopes
        .iter()
        .map(|spec| PathRule::parse(spec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)
        .context("--scope")?;
    let policy = if args.fail_closed {
        StalePolicy::FailClosed
    } else {
        StalePolicy::FailOpen
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    let mut builder = ResourceServer::builder()
        .issuer(args.issuer)
        .audience(args.audience)
        .topology(topology)
        .prefix(args.prefix)
        .stale_policy(policy)
        .staleness_bound(args.staleness_bound.max(Duration::from_secs(1)));
    if let Some(resource) = args.resource {
        builder = builder.resource(resource);
    }
    let server = builder.start().await?;
    let app = gate::router(&server, rules);
    tracing::info!(listen = %local, "revokd gate listening");
    // Tests and scripts read this line for the port.
    println!("revokd gate listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")
}
