//! The processes under test: two issuers (`revokd serve`) sharing one config
//! and signing key, and the example resource server when its binary is
//! given, all on free loopback ports of the Redis topology the run started.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::args::Args;
use crate::chaos::Redis;
use crate::config::{Client, ConfigFile};
use crate::memory::{self, Watched};
use crate::process::{ChildGuard, TempDir, free_port};
use crate::wait::wait_for_status;

/// The client that drives the traffic.
pub(crate) const WEB: (&str, &str) = ("web", "soak-web-secret");
/// The client that re-approves through the admin API.
pub(crate) const ADMIN: (&str, &str) = ("ops", "soak-admin-secret");
/// The password grant's user.
pub(crate) const USER: (&str, &str) = ("alice", "soak-password");

/// How long a process may take to answer `/readyz` 200 after it started.
const READY: Duration = Duration::from_secs(30);

/// The running issuers and resource server (killed by pid on drop).
pub(crate) struct Deployment {
    /// Issuer A, issuer B, then the resource server if there is one.
    processes: Vec<ChildGuard>,
    /// The issuers' base URLs.
    pub(crate) issuers: [String; 2],
    /// The resource server's base URL (empty without one).
    pub(crate) resource: String,
    /// Config and key file; removed after the processes are gone.
    _dir: TempDir,
}

impl Deployment {
    /// Writes the config, starts both issuers and the resource server, and
    /// returns once every one answers `/readyz` 200.
    pub(crate) async fn start(args: &Args, redis: &Redis, http: &reqwest::Client) -> Deployment {
        let dir = TempDir::new("soak");
        let pem = Command::new(&args.revokd)
            .args(["keygen", "--alg", "EdDSA"])
            .output()
            .unwrap()
            .stdout;
        std::fs::write(dir.join("key.pem"), pem).unwrap();
        let ports = [free_port(), free_port()];
        let issuer_url = format!("http://127.0.0.1:{}", ports[0]);
        let config = redis
            .store(issuers_config(args, &issuer_url, &dir))
            .write(dir.path());

        let mut processes = Vec::new();
        let mut issuers = Vec::new();
        for port in ports {
            processes.push(spawn_quiet(
                Command::new(&args.revokd)
                    .args(["serve", "--config"])
                    .arg(&config)
                    .args(["--listen", &format!("127.0.0.1:{port}")]),
            ));
            issuers.push(format!("http://127.0.0.1:{port}"));
        }
        for issuer in &issuers {
            wait_for_status(http, &format!("{issuer}/readyz"), 200, READY).await;
        }
        let mut resource = String::new();
        if let Some(bin) = &args.resource_server {
            let port = free_port();
            processes.push(spawn_quiet(
                Command::new(bin)
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .args(["--issuer", &issuer_url])
                    .args(redis.resource_args()),
            ));
            resource = format!("http://127.0.0.1:{port}");
            wait_for_status(http, &format!("{resource}/readyz"), 200, READY).await;
        }
        Deployment {
            processes,
            issuers: [issuers[0].clone(), issuers[1].clone()],
            resource,
            _dir: dir,
        }
    }

    /// Every process's resident set size now, in KiB.
    pub(crate) fn rss_kib(&self) -> Vec<u64> {
        self.processes
            .iter()
            .map(|p| memory::rss_kib(p.pid()))
            .collect()
    }

    /// The processes as the memory books watch them.
    pub(crate) fn watched(&self) -> Vec<Watched> {
        self.processes
            .iter()
            .zip(self.issuers.iter().chain(std::iter::once(&self.resource)))
            .zip(["issuer-a", "issuer-b", "resource"])
            .map(|((process, base), name)| Watched {
                name,
                pid: process.pid(),
                base: base.clone(),
            })
            .collect()
    }
}

/// The issuers' config, `[store]` aside: short token lifetimes, no rate
/// limit, the soak's key, clients and user.
fn issuers_config(args: &Args, issuer_url: &str, dir: &TempDir) -> ConfigFile {
    let unlimited = 1_000_000_u64;
    ConfigFile::new()
        .issuer(issuer_url)
        .tokens(
            &format!("{}s", args.access_ttl),
            &format!("{}s", args.refresh_ttl),
        )
        // One client drives all the traffic: lift its rate limit.
        .limit("rate_per_second", unlimited)
        .limit("burst", unlimited)
        .limit("peer_rate_per_second", unlimited)
        .limit("peer_burst", unlimited)
        .signing_key("soak", &dir.join("key.pem"))
        .client(
            Client::new(WEB.0, WEB.1)
                .grants(&["password", "refresh_token", "client_credentials"])
                .scopes(&["read"])
                .audience(&["api"]),
        )
        .client(
            Client::new(ADMIN.0, ADMIN.1)
                .grants(&["client_credentials"])
                .scopes(&["revokd:admin"]),
        )
        .user(USER.0, USER.1)
}

/// Starts `command` with its output discarded.
fn spawn_quiet(command: &mut Command) -> ChildGuard {
    ChildGuard::spawn(command.stdout(Stdio::null()).stderr(Stdio::null()))
}
