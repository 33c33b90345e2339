//! What serde cannot check: values that parse but are not usable, and
//! entries listed twice. Every problem is collected, none stops the check.

use std::collections::HashSet;

use super::{Config, ConfigError, GrantType, LimitsConfig, StoreConfig};
use crate::store::redis::TopologyError;

impl super::load::Loadable for Config {
    const ENV_PREFIX: &'static str = "REVOKD_";

    fn problems(&self) -> Vec<String> {
        self.all_problems()
    }
}

impl Config {
    /// Checks what serde cannot: every problem is reported at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.all_problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every problem of a parsed configuration, in the order of the file.
    pub(super) fn all_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.issuer.is_empty() {
            problems.push("issuer is empty".to_owned());
        }
        if self.tokens.access_ttl.is_zero() || self.tokens.refresh_ttl.is_zero() {
            problems.push("token lifetimes must be positive".to_owned());
        }
        limits(&self.limits, &mut problems);
        store(&self.store, &mut problems);
        let registration = &self.registration;
        if registration.max_clients == 0 || registration.per_peer_per_hour == 0 {
            problems.push(
                "registration.max_clients and registration.per_peer_per_hour must be at least 1"
                    .to_owned(),
            );
        }
        if registration.client_ttl.is_zero() {
            problems.push("registration.client_ttl must be positive".to_owned());
        }
        self.principals(&mut problems);
        let mut kids = HashSet::new();
        for key in &self.signing_keys {
            if !kids.insert(key.kid.as_str()) {
                problems.push(format!("signing key kid {:?} is listed twice", key.kid));
            }
        }
        problems
    }

    /// `[[clients]]` and `[[users]]`.
    fn principals(&self, problems: &mut Vec<String>) {
        let mut seen = HashSet::new();
        for client in &self.clients {
            if client.id.is_empty() || client.id.chars().any(char::is_control) {
                problems.push("a client id is empty or has control characters".to_owned());
            }
            if !seen.insert(client.id.as_str()) {
                problems.push(format!("client {:?} is listed twice", client.id));
            }
            if client.public {
                if !client.secret_hash.is_empty() {
                    problems.push(format!(
                        "client {:?}: a public client has no secret_hash",
                        client.id
                    ));
                }
                if client
                    .grants
                    .iter()
                    .any(|g| matches!(g, GrantType::ClientCredentials | GrantType::Password))
                {
                    problems.push(format!(
                        "client {:?}: a public client may use only authorization_code and refresh_token",
                        client.id
                    ));
                }
            } else if !client.secret_hash.starts_with("sha256:")
                && !client.secret_hash.starts_with("$argon2")
            {
                problems.push(format!(
                    "client {:?}: secret_hash must be sha256:<hex> or an argon2 PHC string",
                    client.id
                ));
            }
            for uri in &client.redirect_uris {
                if !redirect_uri_is_usable(uri) {
                    problems.push(format!(
                        "client {:?}: redirect_uri {uri:?} must be an absolute http(s) URL (or a \
                         private-use scheme) without a fragment",
                        client.id
                    ));
                }
            }
            if client.grants.contains(&GrantType::AuthorizationCode)
                && client.redirect_uris.is_empty()
            {
                problems.push(format!(
                    "client {:?}: authorization_code needs redirect_uris",
                    client.id
                ));
            }
            if let Some(defaults) = &client.default_scopes
                && let Some(s) = defaults.iter().find(|s| !client.scopes.contains(s))
            {
                problems.push(format!(
                    "client {:?}: default scope {s:?} is not in its scopes",
                    client.id
                ));
            }
        }
        let mut users = HashSet::new();
        for user in &self.users {
            if !users.insert(user.username.as_str()) {
                problems.push(format!("user {:?} is listed twice", user.username));
            }
        }
    }
}

fn limits(limits: &LimitsConfig, problems: &mut Vec<String>) {
    if !(limits.rate_per_second.is_finite() && limits.rate_per_second > 0.0) {
        problems.push("limits.rate_per_second must be a positive number".to_owned());
    }
    if limits.burst == 0 {
        problems.push("limits.burst must be at least 1".to_owned());
    }
    if limits.max_concurrent_requests == 0 {
        problems.push("limits.max_concurrent_requests must be at least 1".to_owned());
    }
    if limits.request_timeout.is_zero() {
        problems.push("limits.request_timeout must be positive".to_owned());
    }
    for (name, value) in [
        ("header_read_timeout", limits.header_read_timeout),
        ("body_read_timeout", limits.body_read_timeout),
        ("argon2_failure_window", limits.argon2_failure_window),
    ] {
        if value.is_zero() {
            problems.push(format!("limits.{name} must be positive"));
        }
    }
    for (name, value) in [
        ("max_connections", limits.max_connections),
        ("max_connections_per_peer", limits.max_connections_per_peer),
        ("argon2_concurrency", limits.argon2_concurrency),
    ] {
        if value == 0 {
            problems.push(format!("limits.{name} must be at least 1"));
        }
    }
    if limits.max_connections_per_peer > limits.max_connections {
        problems.push(
            "limits.max_connections_per_peer must not exceed limits.max_connections".to_owned(),
        );
    }
    if !(limits.peer_rate_per_second.is_finite() && limits.peer_rate_per_second > 0.0) {
        problems.push("limits.peer_rate_per_second must be a positive number".to_owned());
    }
    if limits.peer_burst == 0 {
        problems.push("limits.peer_burst must be at least 1".to_owned());
    }
    if limits.argon2_failures == 0 {
        problems.push("limits.argon2_failures must be at least 1".to_owned());
    }
}

/// `[store]`'s problems (shared with the gate's configuration).
pub(super) fn store(store: &StoreConfig, problems: &mut Vec<String>) {
    match store.parts() {
        Ok(_) | Err(TopologyError::Missing) => {}
        Err(error) => problems.push(format!(
            "store: {error} (redis_url, sentinels + sentinel_master [+ sentinel_master_url], cluster)"
        )),
    }
    let urls = (store.redis_url.iter().map(|url| ("redis_url", url)))
        .chain(store.sentinels.iter().map(|url| ("sentinels", url)))
        .chain(
            store
                .sentinel_master_url
                .iter()
                .map(|url| ("sentinel_master_url", url)),
        )
        .chain(store.cluster.iter().map(|url| ("cluster", url)));
    for (key, url) in urls {
        // The error names the key, never the URL: it may hold a password.
        if let Err(error) = redis::Client::open(url.as_str()) {
            problems.push(format!("store.{key}: not a redis URL ({error})"));
        }
    }
    if store.subscribe_on_replica && store.sentinels.is_empty() {
        problems.push("store.subscribe_on_replica needs sentinels".to_owned());
    }
    if store.replica_acks > 0 && store.replica_ack_timeout.is_zero() {
        problems.push("store.replica_ack_timeout must be positive".to_owned());
    }
    if store.prefix.is_empty() || store.prefix.contains(['{', '}']) {
        problems.push("store.prefix must be non-empty, without braces".to_owned());
    }
}

/// RFC 6749 §3.1.2 and RFC 8252 §7.1: absolute, no fragment; `https`,
/// `http` (loopback and development), or a private-use scheme (`com.app:/cb`).
pub(crate) fn redirect_uri_is_usable(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let web = matches!(scheme, "http" | "https");
    scheme_ok
        && !uri.contains('#')
        && !uri.chars().any(|c| c.is_control() || c == ' ')
        && (!web || rest.strip_prefix("//").is_some_and(|r| !r.is_empty()))
}
