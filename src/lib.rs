//! revokd: short-lived JWTs with revocation that reaches every resource
//! server within milliseconds.
//!
//! # Data flow
//!
//! 1. A client asks the issuer ([`issuer`]) for tokens at `/oauth2/token`;
//!    the issuer authenticates it ([`issuer::client_auth`]) and signs JWTs
//!    with the active key ([`keys`]).
//! 2. A revocation (`/oauth2/revoke`, refresh-token reuse, the admin API)
//!    becomes a [`rule::Rule`] that the issuer hands to its
//!    [`store::RevocationStore`] (in-process memory by default).
//! 3. The store applies it to the [`denylist::Denylist`], which
//!    introspection, refresh and admin checks ask, the same code a resource
//!    server embeds.
//! 4. Time is read only in [`clock`]; metrics are declared once in
//!    [`metrics`] on a registry the caller passes in.

pub mod clock;
pub mod denylist;
pub mod metrics;
pub mod rule;
#[cfg(feature = "issuer")]
pub mod store;

#[cfg(feature = "issuer")]
pub mod config;
#[cfg(feature = "issuer")]
pub mod issuer;
#[cfg(feature = "issuer")]
pub mod keys;
