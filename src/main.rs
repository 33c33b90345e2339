//! `revokd`: the issuer binary.
//!
//! - `revokd serve [--config FILE] [--listen ADDR] [--redis URL]
//!   [--log-format text|json]`: with no config, dev mode (loopback only,
//!   in-memory store, ephemeral key, a demo client whose credentials and a
//!   curl line are printed). SIGTERM or ctrl-c drains in-flight requests
//!   (bounded by `limits.request_timeout` + 5 s), then exits 0.
//! - `revokd keygen [--alg EdDSA|ES256|RS256]`: a PKCS#8 PEM private key.
//! - `revokd client new ID`: a fresh secret, once, and its config stanza.
//! - `revokd gate --issuer URL --audience AUD (--redis URL | topology
//!   flags)`: `/check` for nginx `auth_request`, Envoy `ext_authz` and
//!   Traefik `forwardAuth` (`src/cli/gate.rs`, [`revokd::gate`]).

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use revokd::config::{ClientConfig, Config, GrantType};
use revokd::denylist::Maintainer;
use revokd::issuer::{self, AppState, client_auth};
use revokd::signing::{SigningAlg, SigningKeys, generate_pem};
use tracing_subscriber::EnvFilter;

/// jemalloc gives memory freed after a resync or restore back to the OS
/// within seconds; glibc's malloc kept it in its arenas (see Cargo.toml).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "revokd", version, about = "JWT issuer with fast revocation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the issuer.
    Serve {
        /// TOML configuration file; without one, dev mode.
        #[arg(long, env = "REVOKD_CONFIG")]
        config: Option<PathBuf>,
        /// Address to bind (overrides `listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Redis URL (overrides `store.redis_url`).
        #[arg(long)]
        redis: Option<String>,
        /// Log lines as text (default) or one JSON object per line.
        #[arg(long, env = "REVOKD_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Answer a gateway's `/check` (nginx auth_request, Envoy ext_authz,
    /// Traefik forwardAuth) from the request's bearer token.
    Gate {
        #[command(flatten)]
        args: Box<cli::gate::GateArgs>,
        /// Log lines as text (default) or one JSON object per line.
        #[arg(long, env = "REVOKD_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Print a new PKCS#8 PEM signing key.
    Keygen {
        /// EdDSA (default), ES256 or RS256.
        #[arg(long, default_value = "EdDSA")]
        alg: SigningAlg,
    },
    /// Manage clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Read or delete a rule directly in Redis: the break-glass for when the
    /// admin API cannot be used (every admin credential revoked, no issuer
    /// running). A deletion is published like a re-approval.
    Rules {
        /// TOML configuration file naming the Redis topology.
        #[arg(long, env = "REVOKD_CONFIG")]
        config: PathBuf,
        /// Redis URL (overrides the file's `[store]`).
        #[arg(long)]
        redis: Option<String>,
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Print the rule Redis holds for KEY (e.g. `client:admin`).
    Get {
        /// The rule key.
        key: String,
    },
    /// Delete the rule for KEY and publish the removal to every subscriber.
    Delete {
        /// The rule key.
        key: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Print a fresh secret (shown once) and the `[[clients]]` stanza.
    New {
        /// The client id.
        id: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen { alg } => {
            print!("{}", generate_pem(alg)?);
            Ok(())
        }
        Command::Client {
            command: ClientCommand::New { id },
        } => client_new(&id),
        Command::Rules {
            config,
            redis,
            command,
        } => rules(&config, redis, command),
        Command::Gate { args, log_format } => {
            init_tracing(log_format);
            let config = args.config()?;
            cli::gate::runtime(&config)?.block_on(cli::gate::run(config, shutdown_signal()))
        }
        Command::Serve {
            config,
            listen,
            redis,
            log_format,
        } => {
            init_tracing(log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(serve(config, listen, redis))
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // No colour codes in files and pipes; the subscriber escapes control
    // characters in attacker-supplied fields (RUSTSEC-2025-0055).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        // One object per line; the request span's fields (request_id,
        // method, route) ride along with every event inside it.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn client_new(id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        bail!("client id must be non-empty, without quotes, backslashes or control characters");
    }
    let (secret, hash) = client_auth::new_client_secret()?;
    println!("# client secret for {id:?} (shown once, store it now):");
    println!("# {secret}");
    println!();
    println!("[[clients]]");
    println!("id = \"{id}\"");
    println!("secret_hash = \"{hash}\"");
    println!("grants = [\"client_credentials\"]");
    println!("scopes = []");
    println!("audience = []");
    Ok(())
}

/// `revokd rules get|delete KEY`: straight to the store of `config`.
fn rules(
    config: &std::path::Path,
    redis: Option<String>,
    command: RulesCommand,
) -> anyhow::Result<()> {
    use revokd::rule::RuleKey;
    use revokd::store::redis::RedisStore;
    let env = std::env::vars().filter(|(name, _)| name != "REVOKD_CONFIG");
    let mut config = Config::load(Some(config), env)?;
    if let Some(url) = redis {
        config.store.name_only(url);
    }
    let topology = config
        .store
        .topology()
        .context("no Redis in [store]: the in-memory store's rules live only in its process")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let store = RedisStore::new(topology, config.store.options())?;
        match command {
            RulesCommand::Get { key } => {
                let key: RuleKey = key.parse()?;
                match store.get(&key).await? {
                    Some(rule) => println!(
                        "{key} revoked_before={:?} expires_at={}",
                        rule.revoked_before, rule.expires_at
                    ),
                    None => println!("{key}: no rule"),
                }
            }
            RulesCommand::Delete { key } => {
                let key: RuleKey = key.parse()?;
                let (position, held) = store.remove(&key, revokd::clock::now_millis()).await?;
                let what = if held {
                    "deleted"
                } else {
                    "held no rule; removal published anyway"
                };
                println!("{key}: {what} (seq {})", position.seq);
            }
        }
        anyhow::Ok(())
    })
}

/// How long the denylist may go without proving it is in sync with Redis
/// before `/readyz` turns false (the contract's default bound, `docs/contract.md`).
const STALENESS_BOUND: Duration = Duration::from_secs(60);

/// How often the in-memory store's denylist is maintained.
const MEMORY_MAINTAIN_PERIOD: Duration = Duration::from_secs(5);

async fn serve(
    file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    redis: Option<String>,
) -> anyhow::Result<()> {
    let dev = file.is_none();
    // REVOKD_CONFIG and REVOKD_LOG_FORMAT are options (clap reads them);
    // every other REVOKD_* variable overrides a configuration key.
    let env =
        std::env::vars().filter(|(name, _)| name != "REVOKD_CONFIG" && name != "REVOKD_LOG_FORMAT");
    let mut config = Config::load(file.as_deref(), env)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(url) = redis {
        // --redis names the whole topology: a Sentinel or Cluster in the
        // file would otherwise leave two, and none would be chosen.
        config.store.name_only(url);
    }
    if dev {
        if listen.is_none() {
            config.listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        }
        if !config.listen.ip().is_loopback() {
            bail!(
                "dev mode (no --config) binds loopback only; got {}",
                config.listen
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;

    let demo = if dev {
        config.issuer = format!("http://{local}");
        let (secret, hash) = client_auth::new_client_secret()?;
        config.clients.push(ClientConfig {
            id: "demo".into(),
            secret_hash: hash,
            grants: vec![
                GrantType::ClientCredentials,
                GrantType::Password,
                GrantType::RefreshToken,
            ],
            scopes: vec!["read".into(), "write".into(), "revokd:admin".into()],
            default_scopes: Some(vec!["read".into()]),
            audience: vec!["api".into()],
            access_ttl: None,
            refresh_ttl: None,
            name: None,
            redirect_uris: Vec::new(),
            public: false,
        });
        // A third-party app and a user to connect it (README: "Connecting
        // an app"). Nothing listens at its loopback redirect URI: the code
        // is read from the browser's address bar.
        config.clients.push(ClientConfig {
            id: "demo-app".into(),
            secret_hash: String::new(),
            grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: vec!["read".into(), "write".into()],
            default_scopes: Some(vec!["read".into()]),
            audience: vec!["api".into()],
            access_ttl: None,
            refresh_ttl: None,
            name: Some("Demo App".into()),
            redirect_uris: vec![DEMO_APP_REDIRECT.into()],
            public: true,
        });
        // RFC 7591 for MCP clients and other apps that register themselves.
        config.registration.enabled = true;
        config.registration.scopes = vec!["read".into(), "write".into()];
        config.registration.audience = vec!["api".into()];
        let (password, password_hash) = client_auth::new_user_password()?;
        config.users.push(revokd::config::UserConfig {
            username: "demo".into(),
            password_hash,
        });
        Some((secret, password))
    } else {
        None
    };

    let keys = if config.signing_keys.is_empty() {
        tracing::warn!(
            "NO SIGNING KEY CONFIGURED: using an EPHEMERAL EdDSA key. Tokens die with this process; \
             never run like this in production (see `revokd keygen` and [[signing_keys]])"
        );
        SigningKeys::ephemeral(SigningAlg::EdDSA)?
    } else {
        SigningKeys::load(&config.signing_keys)?
    };

    let (state, replication) = match config.store.topology() {
        None => (AppState::in_memory(config, keys)?, None),
        Some(topology) => {
            tracing::info!(%topology, "replicating through redis");
            let (state, replication) = issuer::replicated::on_redis(config, keys, STALENESS_BOUND)?;
            (state, Some(replication))
        }
    };
    if let Some((secret, password)) = demo {
        let store = match &replication {
            Some(_) => "rules replicated through Redis",
            None => "in-memory store",
        };
        print_dev_banner(&state.config.issuer, &secret, &password, store);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The denylist has one maintainer: on Redis, the subscriber that feeds
    // it; in memory, this task.
    let expiry = replication.is_none().then(|| {
        let mut expiry_stop = stop_rx.clone();
        Maintainer::new(state.denylist.clone()).spawn(MEMORY_MAINTAIN_PERIOD, async move {
            let _ = expiry_stop.changed().await;
        })
    });
    tracing::info!(listen = %local, issuer = %state.config.issuer, "revokd issuer listening");
    // Every request is answered within request_timeout (503 past it), so a
    // drain longer than that plus a margin is a connection that will never
    // finish (a client stalled mid-headers): stop waiting for it.
    let drain_bound = state.config.limits.request_timeout + Duration::from_secs(5);
    let signalled = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = signalled.clone();
    // The issuer's own accept loop: connection caps, header read timeout.
    let serving = issuer::serve(listener, state, async move {
        shutdown_signal().await;
        notify.notify_one();
    });
    tokio::select! {
        served = serving => served.context("serving")?,
        _ = async {
            signalled.notified().await;
            tokio::time::sleep(drain_bound).await;
        } => {
            tracing::warn!(bound = ?drain_bound, "connections still open after the drain bound; exiting anyway");
        }
    }
    let _ = stop_tx.send(true);
    if let Some(expiry) = expiry {
        let _ = expiry.await;
    }
    tracing::info!("revokd stopped");
    Ok(())
}

/// A fixed PKCE pair for the dev banner's copy-paste walk-through (dev
/// only: a real app makes a fresh verifier per request).
const DEMO_VERIFIER: &str = "dev-mode-demo-verifier-0123456789-abcdefghijklmnop";
/// base64url(SHA-256(DEMO_VERIFIER)).
const DEMO_CHALLENGE: &str = "dYVmSKXnnEsRS-m57f12LUbFELJOBieQ2eaIeHobJaw";

/// Dev mode's third-party app's redirect URI (loopback, nothing listens).
const DEMO_APP_REDIRECT: &str = "http://127.0.0.1:9/callback";

fn print_dev_banner(issuer: &str, secret: &str, password: &str, store: &str) {
    println!("================================================================");
    println!(" revokd DEV MODE: {store}, EPHEMERAL signing key.");
    println!(" Not for production: run `revokd serve --config FILE`.");
    println!("================================================================");
    println!("demo client_id:     demo");
    println!("demo client_secret: {secret}");
    println!("demo scopes:        read write revokd:admin (default: read)");
    println!("get a token:");
    println!("curl -s -u demo:{secret} -d grant_type=client_credentials {issuer}/oauth2/token");
    println!("demo user:          demo / {password}   (sign in at {issuer}/account)");
    println!(
        "connect demo-app:   {issuer}/oauth2/authorize?response_type=code&client_id=demo-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=read&state=xyz&code_challenge={DEMO_CHALLENGE}&code_challenge_method=S256"
    );
    println!(
        "then:               curl -s -d grant_type=authorization_code -d client_id=demo-app -d redirect_uri={DEMO_APP_REDIRECT} -d code_verifier={DEMO_VERIFIER} -d code=CODE {issuer}/oauth2/token"
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_banners_pkce_pair_matches() {
        use base64::Engine;
        let digest = revokd::crypto::sha256(DEMO_VERIFIER.as_bytes());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        assert_eq!(challenge, DEMO_CHALLENGE);
    }
}
