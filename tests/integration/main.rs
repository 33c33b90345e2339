//! Integration tests: a real issuer on 127.0.0.1, a real HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs, unreachable_pub)]

mod support;

mod admin;
mod cli;
mod input;
mod introspect;
mod keys;
mod resource_server;
mod revoke;
mod token;
