//! Soak and chaos run: mixed traffic against two issuers and a resource
//! server sharing one Redis topology (`--topology single|sentinel|cluster`,
//! default single; `args.rs`, `deployment.rs`), while Redis is killed,
//! restarted empty or from an older RDB, paused, failed over (`chaos.rs`).
//! Run it with `scripts/soak [SECONDS] [--topology T]` (default 600 s).
//!
//! Traffic (8 workers, `traffic.rs`): log in at either issuer, call the resource server,
//! introspect at the other issuer, refresh, revoke access or refresh tokens,
//! re-approve a revoked access token through the admin API. Every answer is
//! checked against what the run knows (`world.rs`): a token revoked with a
//! 200 must be refused everywhere, a live one accepted. A 5xx is allowed only
//! while Redis is down or paused (and a few seconds after), and only as the
//! documented 503 of a revocation Redis could not take. With Sentinel or
//! Cluster the issuers run with `replica_acks = 1`, so an answered
//! revocation is on a replica too and survives a failover. A re-approval
//! answered after the RDB a restart comes back from may come back as a
//! revocation (documented, the fail-safe direction): such tokens are not
//! judged after that restart.
//!
//! Tokens live 60 s and refresh tokens 150 s (`--access-ttl`,
//! `--refresh-ttl`), so rules expire during the run and the live rule count
//! levels off; every process's RSS and rule count is sampled every 5 s and
//! memory must stay flat over that plateau (`memory.rs`).
//!
//! At the end: every revoked token refused at both issuers and the resource
//! server (`judge.rs`), every live one accepted, memory flat (`report.rs`).
//! Exits non-zero on any violation.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod args;
mod chaos;
#[path = "../../tests/common/cluster.rs"]
mod cluster;
#[path = "../../tests/common/config.rs"]
mod config;
mod deployment;
mod judge;
#[path = "../../tests/common/loopback.rs"]
mod loopback;
mod memory;
#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
mod report;
#[path = "../../tests/common/sentinel.rs"]
mod sentinel;
mod traffic;
#[path = "../../tests/common/wait.rs"]
mod wait;
mod world;

// The process kit is a child of redis_server.rs (benches include that file
// alone); the other kit files reach it as `super::process`.
use redis_server::process;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use args::Args;
use chaos::{Chaos, Redis};
use deployment::Deployment;
use memory::{Sample, Watched};
use report::Totals;
use traffic::{Counters, Ctx};
use world::World;

/// Seconds between two memory samples.
const SAMPLE_EVERY: u64 = 5;

/// Once a second, drops tokens about to expire from the world; every
/// [`SAMPLE_EVERY`] seconds, reads every process's memory and rules. Returns
/// the samples when the traffic ends.
async fn keep_the_books(
    ctx: Arc<Ctx>,
    watched: Vec<Watched>,
    started: Instant,
    deadline: Instant,
) -> (Vec<Sample>, Vec<Watched>) {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    while Instant::now() < deadline {
        tick.tick().await;
        let world_size = {
            let mut world = ctx.world.lock().unwrap();
            world.prune(revokd::clock::now_secs());
            world.size()
        };
        if ticks.is_multiple_of(SAMPLE_EVERY) {
            let sample = memory::sample(&ctx.http, &watched, started.elapsed()).await;
            println!(
                "soak: {}, run's own state {world_size} entries",
                memory::describe(&sample, &watched)
            );
            samples.push(sample);
        }
        ticks += 1;
    }
    (samples, watched)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let redis = Redis::start(args.kind);
    println!("soak: {}", redis.describe());
    let http = loopback::client(Duration::from_secs(10));
    let deployment = Deployment::start(&args, &redis, &http).await;
    let ctx = Arc::new(Ctx {
        http,
        issuers: deployment.issuers.clone(),
        resource: deployment.resource.clone(),
        world: Mutex::new(World::default()),
        counters: Counters::default(),
        chaos: Chaos::calm(),
    });
    // Warm up, then take the "before" memory reading.
    for i in 0..50 {
        ctx.login(i % 2).await;
    }
    let rss_before = deployment.rss_kib();
    let watched = deployment.watched();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let sampler = tokio::spawn(keep_the_books(ctx.clone(), watched, started, deadline));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8u64 {
        let ctx = ctx.clone();
        workers.spawn(async move { traffic::work(&ctx, worker, deadline).await });
    }
    // Chaos, on a blocking thread (rounds kill, pause and poll processes).
    let chaos = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || chaos::run_rounds(redis, &ctx, started, deadline))
    };
    // The topology stays up (held here) until the final pass is done.
    let (_redis, rounds, chaos_over) = chaos.await.unwrap();
    while let Some(result) = workers.join_next().await {
        result.unwrap();
    }

    let (samples, watched) = sampler.await.unwrap();

    // Final pass: everything has settled; every token is judged.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (tokens, revoked, wrong) = judge::final_pass(&ctx).await;
    let rss_after = deployment.rss_kib();
    report::print_denylist_metrics(&ctx).await;
    let totals = Totals {
        seconds: args.seconds,
        tokens,
        revoked,
        wrong,
        rounds,
        rss_before,
        rss_after,
    };
    report::print_totals(&ctx, &totals);
    // Memory is judged over the steady window: from when the first rules
    // could expire at the plateau, to shortly after the last chaos round
    // (so both halves hold chaos rounds).
    let steady_from = Duration::from_secs(args.access_ttl + args.refresh_ttl);
    let steady_until = chaos_over + Duration::from_secs(30);
    let flat = memory::verdict(samples, &watched, steady_from..=steady_until);
    report::exit_code(&ctx, wrong, flat)
}
