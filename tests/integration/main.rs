//! Integration tests, one binary: a real issuer on 127.0.0.1 and a real HTTP
//! client; real redis-server processes on free loopback ports for replication;
//! the deploy/ files checked against the code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs, unreachable_pub)]

mod support;

#[path = "../common/redis_server.rs"]
mod redis_server;

// The process kit is a child of redis_server.rs (benches include that file
// alone); the other kit files reach it as `super::process`.
use redis_server::process;

#[path = "../common/config.rs"]
mod config;

#[path = "../common/loopback.rs"]
mod loopback;

#[path = "../common/wait.rs"]
mod wait;

#[path = "../common/sentinel.rs"]
mod sentinel;

#[path = "../common/cluster.rs"]
mod cluster;

mod admin;
mod apps;
mod browser;
mod cli;
mod deploy;
mod forked;
mod gate;
mod ha;
mod hostile;
mod input;
mod introspect;
mod lifecycle;
mod limits;
mod mcp;
mod poison;
mod replicated;
mod replication;
mod resource_server;
mod revoke;
mod signing_keys;
mod token;
mod topology_kit;
