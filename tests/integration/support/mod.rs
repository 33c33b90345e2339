//! Test helpers: an issuer on 127.0.0.1 port 0 with a fixed set of clients
//! and users, and a reqwest client that talks to it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use revokd::config::Config;
use revokd::issuer::{self, AppState};
use revokd::signing::{SigningAlg, SigningKey, SigningKeys, generate_pem};
use serde_json::Value;

pub mod browser;

use crate::config::{Client, ConfigFile};
use crate::loopback::{self, ServerTask};
use crate::wait::wait_for_status;

/// `web`: every grant, scopes read/write, audience api.
pub const WEB: (&str, &str) = ("web", "web-secret");
/// `other`: another client with the same rights.
pub const OTHER: (&str, &str) = ("other", "other-secret");
/// `admin`: client_credentials with `revokd:admin`.
pub const ADMIN: (&str, &str) = ("admin", "admin-secret");
/// `machine`: client_credentials only.
pub const MACHINE: (&str, &str) = ("machine", "machine-secret");
/// `argon`: an argon2-hashed secret.
pub const ARGON: (&str, &str) = ("argon", "argon-secret");
/// A client whose id needs form-urlencoding inside Basic.
pub const ODD: (&str, &str) = ("odd:client id", "s3cr:t &+%");
/// The password grant's user.
pub const ALICE: (&str, &str) = ("alice", "correct horse");

/// The test configuration for an issuer at `base`.
pub fn config(base: &str) -> Config {
    let all_grants: &[&str] = &["client_credentials", "password", "refresh_token"];
    let toml = ConfigFile::new()
        .issuer(base)
        .tokens("5m", "1h")
        .client(
            Client::new(WEB.0, WEB.1)
                .grants(all_grants)
                .scopes(&["read", "write"])
                .default_scopes(&["read"])
                .audience(&["api"]),
        )
        .client(
            Client::new(OTHER.0, OTHER.1)
                .grants(all_grants)
                .scopes(&["read", "write"])
                .audience(&["api"]),
        )
        .client(
            Client::new(ADMIN.0, ADMIN.1)
                .grants(&["client_credentials"])
                .scopes(&["revokd:admin", "read"])
                .audience(&[base]),
        )
        .client(
            Client::new(MACHINE.0, MACHINE.1)
                .grants(&["client_credentials"])
                .scopes(&["read"]),
        )
        .client(
            Client::argon2(ARGON.0, ARGON.1)
                .grants(&["client_credentials"])
                .scopes(&["read"]),
        )
        .client(
            Client::new(ODD.0, ODD.1)
                .grants(&["client_credentials"])
                .scopes(&["read"]),
        )
        .user(ALICE.0, ALICE.1)
        .user("bob", "bob-password")
        .to_toml();
    Config::from_toml(&toml).unwrap()
}

/// A running issuer.
pub struct Server {
    /// `http://127.0.0.1:<port>`, also the issuer.
    pub base: String,
    /// The client tests use.
    pub http: reqwest::Client,
    /// The app's state (keys, denylist, metrics).
    pub state: AppState,
    _task: ServerTask,
}

/// Starts an issuer with one EdDSA key.
pub async fn start() -> Server {
    start_with(SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(), |_| {}).await
}

/// Starts an issuer with `keys` and a tweak of the test configuration.
pub async fn start_with(keys: SigningKeys, tweak: impl FnOnce(&mut Config)) -> Server {
    let (listener, base) = loopback::listener().await;
    let mut config = config(&base);
    tweak(&mut config);
    serve(listener, AppState::in_memory(config, keys).unwrap())
}

/// Starts an issuer replicating through the Redis at `redis_url`. Replicas
/// of one deployment share `issuer` (the `iss` of their tokens) and `keys`.
pub async fn start_on_redis(
    issuer: &str,
    keys: SigningKeys,
    redis_url: &str,
) -> (Server, issuer::replicated::Replication) {
    start_on_store(issuer, keys, |store| {
        store.redis_url = Some(redis_url.to_owned());
    })
    .await
}

/// Starts an issuer replicating through the Redis at `redis_url` whose `iss`
/// is its own address, so a resource server can discover its keys.
pub async fn start_on_redis_discoverable(
    keys: SigningKeys,
    redis_url: &str,
) -> (Server, issuer::replicated::Replication) {
    let (listener, base) = loopback::listener().await;
    let mut config = config(&base);
    config.store.redis_url = Some(redis_url.to_owned());
    let (state, replication) =
        issuer::replicated::on_redis(config, keys, Duration::from_secs(2)).unwrap();
    first_sync(&replication).await;
    (serve(listener, state), replication)
}

/// Starts an issuer replicating through the Redis topology that `store`
/// sets in `[store]` (`redis_url`, `sentinels` + `sentinel_master`,
/// `cluster`, `replica_acks`, …).
pub async fn start_on_store(
    issuer: &str,
    keys: SigningKeys,
    store: impl FnOnce(&mut revokd::config::StoreConfig),
) -> (Server, issuer::replicated::Replication) {
    start_replicated_with(issuer, keys, |config| store(&mut config.store)).await
}

/// Starts an issuer replicating through the Redis topology that `tweak`
/// sets in its configuration (which it may change otherwise too).
pub async fn start_replicated_with(
    issuer: &str,
    keys: SigningKeys,
    tweak: impl FnOnce(&mut Config),
) -> (Server, issuer::replicated::Replication) {
    let (listener, _) = loopback::listener().await;
    let mut config = config(issuer);
    tweak(&mut config);
    config.validate().unwrap();
    let (state, replication) =
        issuer::replicated::on_redis(config, keys, Duration::from_secs(2)).unwrap();
    first_sync(&replication).await;
    (serve(listener, state), replication)
}

/// Gives a new issuer a moment for its first sync (before it, introspection
/// and refresh answer 503); does not insist, since some tests start issuers
/// while Redis is down.
async fn first_sync(replication: &issuer::replicated::Replication) {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !replication.subscriber.has_synced() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Serves `state` on `listener` (with peer addresses, for rate limits) and
/// hands back a client for it.
fn serve(listener: tokio::net::TcpListener, state: AppState) -> Server {
    let base = format!("http://{}", listener.local_addr().unwrap());
    // The binary's own accept loop, so tests exercise its connection limits.
    let served = state.clone();
    let task = ServerTask::spawn(async move {
        issuer::serve(listener, served, std::future::pending())
            .await
            .unwrap();
    });
    Server {
        base,
        http: loopback::client(Duration::from_secs(30)),
        state,
        _task: task,
    }
}

/// A key set of one freshly generated key.
pub fn key_set(alg: SigningAlg, kid: &str) -> SigningKeys {
    SigningKeys::new(vec![
        SigningKey::from_pem(kid, &generate_pem(alg).unwrap()).unwrap(),
    ])
    .unwrap()
}

impl Server {
    /// `POST path` with a form body and Basic client authentication.
    pub async fn post_form(
        &self,
        path: &str,
        client: Option<(&str, &str)>,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(params);
        if let Some((id, secret)) = client {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.unwrap()
    }

    /// A successful token response's JSON.
    pub async fn token_ok(&self, client: (&str, &str), params: &[(&str, &str)]) -> Value {
        let resp = self.post_form("/oauth2/token", Some(client), params).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    /// An access token by client_credentials.
    pub async fn cc_token(&self, client: (&str, &str)) -> String {
        let body = self
            .token_ok(client, &[("grant_type", "client_credentials")])
            .await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// alice's tokens for `client` by the password grant: (access, refresh).
    pub async fn login(&self, client: (&str, &str)) -> (String, String) {
        let body = self
            .token_ok(
                client,
                &[
                    ("grant_type", "password"),
                    ("username", ALICE.0),
                    ("password", ALICE.1),
                ],
            )
            .await;
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// The refresh grant's raw response.
    pub async fn refresh(&self, client: (&str, &str), refresh: &str) -> reqwest::Response {
        self.post_form(
            "/oauth2/token",
            Some(client),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await
    }

    /// Introspection by `web`.
    pub async fn introspect(&self, token: &str) -> Value {
        let resp = self
            .post_form("/oauth2/introspect", Some(WEB), &[("token", token)])
            .await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Whether introspection says active.
    pub async fn active(&self, token: &str) -> bool {
        let body = self.introspect(token).await;
        match body["active"].as_bool() {
            Some(true) => true,
            Some(false) => {
                assert_eq!(body, serde_json::json!({"active": false}));
                false
            }
            None => panic!("no active member: {body}"),
        }
    }

    /// `/oauth2/revoke` by `client`: the status.
    pub async fn revoke(&self, client: (&str, &str), token: &str) -> reqwest::StatusCode {
        self.post_form("/oauth2/revoke", Some(client), &[("token", token)])
            .await
            .status()
    }

    /// An access token with `revokd:admin`.
    pub async fn admin_token(&self) -> String {
        let body = self
            .token_ok(
                ADMIN,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "revokd:admin"),
                ],
            )
            .await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `POST /admin/revocations` with a JSON body and an admin bearer token.
    pub async fn admin_post(&self, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/admin/revocations", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Waits (at most 20 s) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.base);
        wait_for_status(&self.http, &url, 200, Duration::from_secs(20)).await;
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The decoded header and claims of a JWT (no verification).
pub fn decode_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let bytes = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let header = next();
    let claims = next();
    (header, claims)
}

/// Assembles a JWT from a header, claims and raw signature bytes.
pub fn assemble(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}
