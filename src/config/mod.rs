//! Configuration: plain structs with defaults, read from one TOML file with
//! every key overridable by `REVOKD_*` environment variables
//! (`REVOKD_TOKENS__ACCESS_TTL=10m`, `REVOKD_STORE__REDIS_URL=…`).
//!
//! The environment is a parameter ([`Config::load`] takes the variables), so
//! tests pass a list and never touch the process environment. Unknown keys
//! are an error that names the key. Every problem, from a TOML syntax error
//! to a value that parses but is not usable, is reported at once.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`Config`], the whole file |
//! | `tokens.rs` | `[tokens]`, `[revocation]`, `[[signing_keys]]` |
//! | `store.rs` | `[store]`, the Redis topology |
//! | `clients.rs` | `[[clients]]`, `[[users]]` |
//! | `limits.rs` | `[limits]` |
//! | `gate.rs` | `revokd gate`'s own file |
//! | `listen.rs` | the gate's address: TCP or a Unix socket |
//! | `duration.rs` | durations: humantime strings or whole seconds |
//! | `validate.rs` | what serde cannot check |
//! | `load.rs` | the file, the overrides, every problem at once |
//!
//! Each section's defaults are its `Default` (`#[serde(default)]` on the
//! struct): a key left out keeps the default's value.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

mod clients;
mod duration;
mod gate;
mod limits;
mod listen;
mod load;
mod store;
mod tokens;
mod validate;

pub use clients::{ClientConfig, GrantType, RegistrationConfig, UserConfig};
pub use gate::{GateConfig, GateLimits};
pub use limits::LimitsConfig;
pub use listen::ListenAddr;
pub use load::ConfigError;
pub use store::StoreConfig;
pub use tokens::{Cascade, RevocationConfig, SigningKeyConfig, TokensConfig};
pub(crate) use validate::redirect_uri_is_usable;

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The `iss` claim and the base URL of the metadata document.
    pub issuer: String,
    /// The address the HTTP server binds.
    pub listen: SocketAddr,
    /// Token lifetimes.
    pub tokens: TokensConfig,
    /// Where revocation rules are kept.
    pub store: StoreConfig,
    /// What revoking a token at `/oauth2/revoke` revokes.
    pub revocation: RevocationConfig,
    /// Signing keys: the first signs, the rest stay in the JWKS for rotation.
    pub signing_keys: Vec<SigningKeyConfig>,
    /// The registered clients.
    pub clients: Vec<ClientConfig>,
    /// Users for the `password` grant.
    pub users: Vec<UserConfig>,
    /// Rate, concurrency and time limits of the HTTP server.
    pub limits: LimitsConfig,
    /// RFC 7591 dynamic client registration.
    pub registration: RegistrationConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "http://127.0.0.1:8080".to_owned(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tokens: TokensConfig::default(),
            store: StoreConfig::default(),
            revocation: RevocationConfig::default(),
            signing_keys: Vec::new(),
            clients: Vec::new(),
            users: Vec::new(),
            limits: LimitsConfig::default(),
            registration: RegistrationConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SAMPLE: &str = r#"
issuer = "https://auth.example.com"
listen = "0.0.0.0:8080"

[tokens]
access_ttl = "5m"
refresh_ttl = "24h"

[store]
prefix = "revokd"

[[signing_keys]]
kid = "2026-11"
private_key_file = "keys/2026-11.pem"

[[clients]]
id = "web"
secret_hash = "sha256:00"
grants = ["client_credentials", "password", "refresh_token"]
scopes = ["read", "write"]
audience = ["api"]

[[users]]
username = "alice"
password_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"
"#;

    #[test]
    fn the_design_sample_parses() {
        let config = Config::from_toml(SAMPLE).unwrap();
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(300));
        assert_eq!(config.clients[0].grants.len(), 3);
        assert_eq!(config.revocation.refresh_token, Cascade::Session);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("issuer = \"x\"\nlisten_addr = \"1\"\n").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
        let err = Config::from_toml("[tokens]\naccess = \"5m\"\n").unwrap_err();
        assert!(err.to_string().contains("access"), "{err}");
    }

    #[test]
    fn env_overrides_nested_keys() {
        let dir = std::env::temp_dir().join(format!("revokd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("revokd.toml");
        std::fs::write(&file, SAMPLE).unwrap();
        let env = [
            ("REVOKD_TOKENS__ACCESS_TTL".to_owned(), "10m".to_owned()),
            (
                "REVOKD_STORE__REDIS_URL".to_owned(),
                "redis://127.0.0.1:1".to_owned(),
            ),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let config = Config::load(Some(&file), env).unwrap();
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(600));
        assert_eq!(
            config.store.redis_url.as_deref(),
            Some("redis://127.0.0.1:1")
        );
        let err =
            Config::load(Some(&file), [("REVOKD_NOPE".to_owned(), "1".to_owned())]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn limits_have_defaults_and_are_checked() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.limits.request_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.burst, 2000);
        let config = Config::from_toml(
            "[limits]\nrate_per_second = 2.5\nburst = 5\nmax_concurrent_requests = 8\nrequest_timeout = \"1500ms\"\n",
        )
        .unwrap();
        assert_eq!(config.limits.rate_per_second, 2.5);
        assert_eq!(config.limits.request_timeout, Duration::from_millis(1500));
        let err = Config::from_toml(
            "[limits]\nrate_per_second = 0\nburst = 0\nmax_concurrent_requests = 0\nrequest_timeout = \"0s\"\n",
        )
        .unwrap_err()
        .to_string();
        for key in [
            "rate_per_second",
            "burst",
            "max_concurrent_requests",
            "request_timeout",
        ] {
            assert!(err.contains(key), "{key}: {err}");
        }
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.body_read_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.max_connections, 4096);
        assert_eq!(config.limits.max_connections_per_peer, 256);
        assert_eq!(config.limits.argon2_concurrency, 2);
        assert_eq!(config.limits.argon2_queue, 32);
        let err = Config::from_toml(
            "[limits]\nheader_read_timeout = \"0s\"\nbody_read_timeout = \"0s\"\n\
             max_connections = 4\nmax_connections_per_peer = 8\npeer_rate_per_second = -1\n\
             peer_burst = 0\nargon2_concurrency = 0\nargon2_failures = 0\n\
             argon2_failure_window = \"0s\"\n",
        )
        .unwrap_err()
        .to_string();
        for key in [
            "header_read_timeout",
            "body_read_timeout",
            "max_connections_per_peer must not exceed",
            "peer_rate_per_second",
            "peer_burst",
            "argon2_concurrency",
            "argon2_failures ",
            "argon2_failure_window",
        ] {
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let err = Config::from_toml(
            "[[clients]]\nid = \"a\"\nsecret_hash = \"plain\"\n[[clients]]\nid = \"a\"\nsecret_hash = \"sha256:00\"\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("listed twice") && text.contains("secret_hash"),
            "{text}"
        );
    }

    /// The defaults moved from functions into each section's `Default`:
    /// every default the contract's table lists is still the one in force.
    #[test]
    fn the_defaults_are_the_contracts() {
        let contract = include_str!("../../docs/contract.md");
        let defaults = serde_json::to_value(Config::from_toml("").unwrap()).unwrap();
        let mut checked = 0;
        for line in contract.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (Some(key), Some(default)) = (cells.get(1), cells.get(2)) else {
                continue;
            };
            let (Some(key), Some(default)) = (
                key.strip_prefix('`').and_then(|k| k.strip_suffix('`')),
                default.strip_prefix('`').and_then(|d| d.strip_suffix('`')),
            ) else {
                continue;
            };
            let Some(value) = key.split('.').try_fold(&defaults, |v, k| v.get(k)) else {
                continue;
            };
            let same = match value {
                serde_json::Value::Number(n) => n.as_f64() == default.parse().ok(),
                serde_json::Value::Bool(b) => Some(*b) == default.parse().ok(),
                serde_json::Value::String(s) if s == default => true,
                serde_json::Value::String(s) => {
                    humantime::parse_duration(s).ok() == humantime::parse_duration(default).ok()
                        && humantime::parse_duration(s).is_ok()
                }
                _ => false,
            };
            assert!(same, "{key}: the contract says {default}, the code {value}");
            checked += 1;
        }
        assert!(
            checked >= 23,
            "only {checked} defaults found in the contract"
        );
    }
}
