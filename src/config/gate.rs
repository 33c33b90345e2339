//! `revokd gate --config FILE`: the gate's own file, read like `serve`'s
//! (every problem at once), its keys overridable by `REVOKD_GATE_*`
//! variables (`REVOKD_GATE_STORE__REDIS_URL=…`), and each key by its flag.
//!
//! ```toml
//! listen = "127.0.0.1:8181"              # or "unix:/run/revokd/gate.sock"
//! worker_threads = 1                      # optional: default one per core
//! issuer = "https://auth.example.com"
//! audience = "api"
//! resource = "https://api.example.com"   # optional: RFC 9728 metadata
//! fail_closed = false
//! staleness_bound = "60s"
//!
//! [store]                                 # as serve's: one topology, same prefix
//! redis_url = "redis://127.0.0.1:6379"
//!
//! [[scope_rules]]
//! path = "/admin"
//! scopes = ["revokd:admin"]
//!
//! [limits]
//! header_read_timeout = "10s"
//! max_connections = 4096
//! max_connections_per_peer = 1024
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::load::Loadable;
use super::{ListenAddr, StoreConfig};
use crate::gate::PathRule;

/// The gate's configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// Address to bind (default `127.0.0.1:8181`), or `unix:PATH`.
    pub listen: ListenAddr,
    /// Threads answering checks (default: one per core). Beside nginx on a
    /// small host, one thread spends least CPU per check (see the README).
    pub worker_threads: Option<usize>,
    /// The issuer's URL, exactly as its tokens' `iss` (required).
    pub issuer: String,
    /// The audience tokens must carry (required).
    pub audience: String,
    /// This resource's RFC 9728 identifier, when it serves metadata.
    pub resource: Option<String>,
    /// 503 while the denylist is stale past the bound, instead of serving
    /// on the last known rules (default false).
    pub fail_closed: bool,
    /// Staleness past which `/readyz` fails (default 60s).
    #[serde(with = "super::duration")]
    pub staleness_bound: Duration,
    /// The Redis topology (required) and key prefix, as the issuer's.
    pub store: StoreConfig,
    /// Paths that need scopes.
    pub scope_rules: Vec<PathRule>,
    /// Connection limits of the gate's listener.
    pub limits: GateLimits,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            listen: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8181))),
            worker_threads: None,
            issuer: String::new(),
            audience: String::new(),
            resource: None,
            fail_closed: false,
            staleness_bound: Duration::from_secs(60),
            store: StoreConfig::default(),
            scope_rules: Vec::new(),
            limits: GateLimits::default(),
        }
    }
}

/// `[limits]` of the gate: its callers are gateways, so connections are
/// capped per peer far higher than the issuer's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateLimits {
    /// Longest a connection may take to send a request's headers (and an
    /// idle keep-alive connection may wait; default 10s).
    #[serde(with = "super::duration")]
    pub header_read_timeout: Duration,
    /// Open connections, all peers together (default 4096).
    pub max_connections: usize,
    /// Open connections from one peer IP address (default 1024).
    pub max_connections_per_peer: usize,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_peer: 1024,
        }
    }
}

impl Loadable for GateConfig {
    const ENV_PREFIX: &'static str = "REVOKD_GATE_";

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.issuer.is_empty() {
            problems.push("issuer is required (--issuer or issuer = \"…\")".to_owned());
        }
        if self.audience.is_empty() {
            problems.push("audience is required (--audience or audience = \"…\")".to_owned());
        }
        if self.store.topology().is_none() {
            problems.push(
                "a redis topology is required: store.redis_url, store.sentinels + \
                 store.sentinel_master, or store.cluster (or --redis, --sentinel, --cluster)"
                    .to_owned(),
            );
        }
        super::validate::store(&self.store, &mut problems);
        if self.staleness_bound < Duration::from_secs(1) {
            problems.push("staleness_bound must be at least 1s".to_owned());
        }
        for rule in &self.scope_rules {
            if let Err(problem) = PathRule::check(&rule.path, &rule.scopes) {
                problems.push(format!("scope_rules: {problem}"));
            }
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_peer == 0 {
            problems.push("limits: connection caps must be at least 1".to_owned());
        }
        if self.worker_threads == Some(0) {
            problems.push("worker_threads must be at least 1".to_owned());
        }
        if self.limits.header_read_timeout.is_zero() {
            problems.push("limits.header_read_timeout must be positive".to_owned());
        }
        problems
    }
}

impl GateConfig {
    /// Reads `file` (if any) and the `REVOKD_GATE_*` variables of `env`,
    /// applies `overrides` (the flags), then validates: every problem, the
    /// file's included, at once.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: impl FnOnce(&mut GateConfig),
    ) -> Result<GateConfig, super::ConfigError> {
        super::load::load(file, env, overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_the_variables_and_the_flags_apply_in_that_order() {
        let dir = std::env::temp_dir().join(format!("revokd-gate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gate.toml");
        std::fs::write(
            &file,
            "issuer = \"https://auth.test\"\naudience = \"api\"\n\
             listen = \"unix:/run/revokd/gate.sock\"\n\
             [store]\nredis_url = \"redis://127.0.0.1:1\"\n\
             [[scope_rules]]\npath = \"/admin\"\nscopes = [\"admin\"]\n",
        )
        .unwrap();
        let env = [
            ("REVOKD_GATE_AUDIENCE".to_owned(), "orders".to_owned()),
            ("REVOKD_GATE_WORKER_THREADS".to_owned(), "1".to_owned()),
        ];
        let config = GateConfig::load(Some(&file), env, |c| c.fail_closed = true).unwrap();
        assert_eq!(config.issuer, "https://auth.test");
        assert_eq!(
            config.listen,
            ListenAddr::Unix("/run/revokd/gate.sock".into())
        );
        assert_eq!(config.worker_threads, Some(1));
        assert_eq!(config.audience, "orders");
        assert!(config.fail_closed);
        assert_eq!(config.scope_rules[0].scopes, ["admin"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let env = [
            ("REVOKD_GATE_STALENESS_BOUND".to_owned(), "0s".to_owned()),
            ("REVOKD_GATE_WORKER_THREADS".to_owned(), "0".to_owned()),
        ];
        let error = GateConfig::load(None, env, |c| {
            c.scope_rules.push(PathRule {
                path: "admin".into(),
                scopes: vec![],
            });
        })
        .unwrap_err();
        let text = error.to_string();
        for wanted in [
            "issuer is required",
            "audience is required",
            "redis topology",
            "staleness_bound",
            "scope_rules",
            "worker_threads",
        ] {
            assert!(text.contains(wanted), "{wanted}: {text}");
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        let dir = std::env::temp_dir().join(format!("revokd-gate-unknown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gate.toml");
        std::fs::write(&file, "issuer = \"https://a.test\"\naudiance = \"api\"\n").unwrap();
        let text = GateConfig::load(Some(&file), [], |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("unknown key `audiance`") && text.contains("line 2"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
