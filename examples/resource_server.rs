//! A resource server protected by revokd, built without the `issuer`
//! feature's code: [`ResourceServer`] keeps a local denylist in sync with
//! Redis, and its layer verifies every bearer token locally.
//!
//! ```text
//! resource_server --listen 127.0.0.1:8081 --issuer http://127.0.0.1:8080 --redis redis://127.0.0.1:6379
//!     [--audience api] [--prefix revokd] [--fail-closed] [--staleness-bound-secs 60]
//! ```
//!
//! Instead of `--redis`: `--sentinel URL` (repeated) with `--sentinel-master
//! NAME` (and `--sentinel-master-url URL` for the master's credentials or
//! TLS, `--subscribe-on-replica` to take the fan-out off the master), or
//! `--cluster URL` (repeated, seed nodes).
//!
//! - `GET /api/resource`: 200 `{"sub": …, "scope": …, "client_id": …}` for a
//!   valid, unrevoked access token (audience `api` by default), else the
//!   layer's RFC 6750 refusal;
//! - `GET /metrics`: the denylist and subscriber metrics (Prometheus text);
//! - `GET /readyz`: 200 while the denylist is connected and in sync within
//!   its bound, else 503 (a load balancer routes around this replica);
//! - `GET /healthz`: 200.

#![allow(clippy::print_stderr)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use revokd::error::Chain;
use revokd::layer::{StalePolicy, VerifiedToken};
use revokd::resource_server::ResourceServer;
use revokd::store::redis::Topology;
use serde_json::json;

/// A long-running resource server does well with jemalloc: it gives the
/// memory of a snapshot or resync back to the OS within seconds, where
/// glibc's malloc keeps it in its arenas. One line in your own binary.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Args {
    listen: SocketAddr,
    issuer: String,
    topology: Topology,
    subscribe_on_replica: bool,
    audience: String,
    prefix: String,
    policy: StalePolicy,
    bound: Duration,
}

const USAGE: &str = "usage: resource_server --listen ADDR --issuer URL \
(--redis URL | --sentinel URL... --sentinel-master NAME [--sentinel-master-url URL] [--subscribe-on-replica] | --cluster URL...) \
[--audience api] [--prefix revokd] [--fail-closed] [--staleness-bound-secs 60]";

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut issuer = None;
    let mut redis = None;
    let mut sentinels = Vec::new();
    let mut sentinel_master = None;
    let mut sentinel_master_url = None;
    let mut cluster = Vec::new();
    let mut subscribe_on_replica = false;
    let mut audience = "api".to_owned();
    let mut prefix = "revokd".to_owned();
    let mut policy = StalePolicy::FailOpen;
    let mut bound = Duration::from_secs(60);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => {
                listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?);
            }
            "--issuer" => issuer = Some(value()?),
            "--redis" => redis = Some(value()?),
            "--sentinel" => sentinels.push(value()?),
            "--sentinel-master" => sentinel_master = Some(value()?),
            "--sentinel-master-url" => sentinel_master_url = Some(value()?),
            "--cluster" => cluster.push(value()?),
            "--subscribe-on-replica" => subscribe_on_replica = true,
            "--audience" => audience = value()?,
            "--prefix" => prefix = value()?,
            "--fail-closed" => policy = StalePolicy::FailClosed,
            "--staleness-bound-secs" => {
                let secs: u64 = value()?.parse().map_err(|e| format!("{arg}: {e}"))?;
                bound = Duration::from_secs(secs);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or(USAGE)?,
        issuer: issuer.ok_or(USAGE)?,
        topology: Topology::from_parts(
            redis,
            sentinels,
            sentinel_master,
            sentinel_master_url,
            cluster,
        )
        .map_err(|e| format!("{e}\n{USAGE}"))?,
        subscribe_on_replica,
        audience,
        prefix,
        policy,
        bound,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("resource_server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    // The builder owns the denylist, the subscriber, the metrics and the
    // issuer's discovery (retried while the issuer starts).
    let server = ResourceServer::builder()
        .issuer(args.issuer.clone())
        .audience(args.audience.clone())
        .topology(args.topology.clone())
        .prefix(args.prefix.clone())
        .subscribe_on_replica(args.subscribe_on_replica)
        .stale_policy(args.policy)
        .staleness_bound(args.bound)
        .start()
        .await
        .map_err(|e| Chain(&e).to_string())?;
    let app = Router::new()
        .route("/api/resource", get(resource))
        .layer(server.layer())
        .merge(server.ops_routes());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts read this line for the port.
    println!("resource server listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// `GET /api/resource`: who is calling, with what scope.
async fn resource(token: VerifiedToken) -> Json<serde_json::Value> {
    Json(json!({
        "sub": token.sub,
        "scope": token.scope,
        "client_id": token.client_id,
    }))
}
