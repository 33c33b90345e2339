//! revokd: short-lived, self-encoded JWTs, and revocation that reaches every
//! resource server within milliseconds.
//!
//! # Data flow
//!
//! A token is issued (issuer), revoked (a [`rule::Rule`]), stored and
//! published (store), received by every process's subscriber, applied to its
//! [`denylist::Denylist`], and checked on every request:
//!
//! | step | module |
//! |---|---|
//! | the revocation vocabulary: rules, keys, a token's keys | [`rule`] |
//! | the hot path: bloom filter + exact map, expiry | [`denylist`] |
//! | the wire format of a change (protobuf, `proto/`) | [`event`] |
//! | Redis layout, scripts, snapshot; one server, Sentinel or Cluster | [`store::redis`] |
//! | the sync protocol, free of I/O: seq order, history heads, forks, merge | [`follow`] |
//! | SUBSCRIBE, snapshot, resync, backoff, staleness, restore | [`subscriber`] |
//! | the one JWT core: claims, header and claim checks, the bearer header | [`jwt`] |
//! | a resource server's check: JWKS, signature, claims, then the denylist | [`verify`] |
//! | the tower layer and axum extractor around it | [`layer`] |
//! | a resource server in a few lines: discovery, subscriber, metrics, ops routes, RFC 9728 | [`resource_server`] |
//! | `revokd gate`: `/check` for nginx, Envoy and Traefik, path scope rules | [`gate`] |
//! | the only reader of the system clock | [`clock`] |
//! | random ids, secrets and SHA-256 (ring), for every other module | [`crypto`] |
//! | a kept cause, and the log form of an error's whole chain | [`error`] |
//! | every Prometheus metric, on a registry the caller passes in | [`metrics`] |
//! | issuing: token, revoke, introspect, metadata, admin (feature `issuer`) | `issuer` |
//! | signing keys, `kid`s, the JWK set (feature `issuer`) | `signing` |
//! | where revocations are written: `RevocationStore`, in memory or in Redis | [`store`] |
//! | the configuration file and `REVOKD_*` overrides (feature `issuer`) | `config` |
//!
//! A resource server builds this crate without the default `issuer` feature.

pub mod clock;
pub mod crypto;
pub mod denylist;
pub mod error;
pub mod event;
pub mod follow;
pub mod gate;
pub mod jwt;
pub mod layer;
pub mod metrics;
pub mod rule;

#[cfg(feature = "issuer")]
pub mod config;
#[cfg(feature = "issuer")]
pub mod issuer;
pub mod resource_server;
#[cfg(feature = "issuer")]
pub mod signing;
pub mod store;
pub mod subscriber;
pub mod verify;
