//! Integration tests: a real issuer on 127.0.0.1, a real HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs, unreachable_pub)]

mod support;

#[path = "../common/redis_server.rs"]
mod redis_server;

mod admin;
mod cli;
mod input;
mod introspect;
mod keys;
mod lifecycle;
mod limits;
mod replicated;
mod revoke;
mod token;
