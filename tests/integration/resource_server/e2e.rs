//! End to end with real processes: `revokd serve --redis` (the issuer), a
//! redis-server, and the `resource_server` example, all on 127.0.0.1.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use revokd::signing::{SigningAlg, SigningKey, generate_pem};
use serde_json::{Value, json};

use super::{claims, now, sign_with};
use crate::config::{Client, ConfigFile};
use crate::loopback;
use crate::process::{ChildGuard, StdoutLines, TempDir, free_port};
use crate::redis_server::RedisServer;
use crate::support::{assemble, decode_parts};
use crate::wait::wait_for_status;

pub const REVOKD: &str = env!("CARGO_BIN_EXE_revokd");

/// How long a process started here may take to answer `/readyz` as a test
/// expects (200, or 503 once Redis is away).
pub const READY: Duration = Duration::from_secs(30);

/// A child process (killed by pid on drop) whose stdout lines are read.
pub struct Process {
    _child: ChildGuard,
    lines: StdoutLines,
}

impl Process {
    /// Spawns `command` with stdout piped and stderr inherited.
    pub fn spawn(command: &mut Command) -> Process {
        let mut child = ChildGuard::spawn(command.stdout(Stdio::piped()).stderr(Stdio::inherit()));
        let lines = StdoutLines::new(child.take_stdout());
        Process {
            _child: child,
            lines,
        }
    }

    /// The next stdout line for which `wanted` is true (others are skipped).
    pub fn line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        self.lines.next_matching(timeout, wanted)
    }

    /// Sends `kill -<name>` to its pid.
    pub fn signal(&self, name: &str) {
        self._child.signal(name);
    }

    /// Kills the process by its pid and reaps it.
    pub fn kill(self) {
        self._child.kill();
    }
}

/// An example's binary (`resource_server`, `mcp_server`), brought up to
/// date once per test run (`cargo test --test integration` does not build
/// examples; when `cargo test` did, this is a quick no-op).
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--example", name])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        // Cargo sets these for this test process (OUT_DIR too: the package
        // has a build script), not in the shell that ran `cargo test`:
        // ring's build script watches some of them, and passing them on
        // would rebuild ring and revokd here, then again at the next
        // `cargo test`.
        for (var, _) in std::env::vars_os() {
            let var = var.to_string_lossy();
            let set_by_cargo = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|prefix| var.starts_with(prefix))
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*var);
            if set_by_cargo {
                build.env_remove(&*var);
            }
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building the {name} example");
        built.push(name.to_owned());
    }
    std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join(name)
}

/// Starts the example against `issuer` and `redis`; returns it and its base URL.
pub fn start_resource_server(issuer: &str, redis: &str, extra: &[&str]) -> (Process, String) {
    start_resource_server_on(issuer, &["--redis", redis], extra)
}

/// Starts the example against `issuer` on the Redis topology that
/// `topology` names (`--redis URL`, `--sentinel URL`… with
/// `--sentinel-master NAME`, or `--cluster URL`…); returns it and its base
/// URL. Blocks until it listens (discovery of `issuer` comes first).
pub fn start_resource_server_on<S: AsRef<std::ffi::OsStr>>(
    issuer: &str,
    topology: &[S],
    extra: &[&str],
) -> (Process, String) {
    let process = Process::spawn(
        Command::new(example_binary("resource_server"))
            .args(["--listen", "127.0.0.1:0", "--issuer", issuer])
            .args(topology)
            .args(extra),
    );
    let line = process.line(Duration::from_secs(60), |l| {
        l.starts_with("resource server listening on ")
    });
    let base = line
        .trim_start_matches("resource server listening on ")
        .to_owned();
    (process, base)
}

pub fn http() -> reqwest::Client {
    loopback::client(Duration::from_secs(10))
}

struct Issuer {
    _process: Process,
    base: String,
    key: SigningKey,
    _dir: TempDir,
}

/// `revokd serve --config FILE --redis URL` with a key file, a `web` client
/// (audience api), an `elsewhere` client (audience other-api) and alice.
async fn start_issuer(redis: &str) -> Issuer {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = TempDir::new(&format!("e2e-{port}"));
    let pem = generate_pem(SigningAlg::EdDSA).unwrap();
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, &pem).unwrap();
    let config_file = ConfigFile::new()
        .issuer(&base)
        .listen(&format!("127.0.0.1:{port}"))
        .signing_key("e2e", &key_file)
        .client(
            Client::new("web", "web-secret")
                .grants(&["client_credentials", "password", "refresh_token"])
                .scopes(&["read", "write"])
                .default_scopes(&["read"])
                .audience(&["api"]),
        )
        .client(
            Client::new("elsewhere", "elsewhere-secret")
                .grants(&["client_credentials"])
                .scopes(&["read"])
                .audience(&["other-api"]),
        )
        .user("alice", "correct horse")
        .write(dir.path());
    let process = Process::spawn(
        Command::new(REVOKD)
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .args(["--redis", redis])
            .env("RUST_LOG", "warn")
            .env_remove("REVOKD_CONFIG"),
    );
    wait_for_status(&http(), &format!("{base}/readyz"), 200, READY).await;
    Issuer {
        _process: process,
        base,
        key: SigningKey::from_pem("e2e", &pem).unwrap(),
        _dir: dir,
    }
}

impl Issuer {
    async fn token(&self, client: (&str, &str), form: &[(&str, &str)]) -> Value {
        let response = http()
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth(client.0, Some(client.1))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn login(&self) -> (String, String) {
        let body = self
            .token(
                ("web", "web-secret"),
                &[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", "correct horse"),
                ],
            )
            .await;
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn revoke(&self, token: &str) {
        let response = http()
            .post(format!("{}/oauth2/revoke", self.base))
            .basic_auth("web", Some("web-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

async fn call(api: &str, token: Option<&str>) -> reqwest::Response {
    // One client (and one kept-alive connection) for the whole test: a
    // client per call would time its TLS set-up, not the revocation.
    thread_local! {
        static CLIENT: reqwest::Client = http();
    }
    let mut request = CLIENT
        .with(|c| c.clone())
        .get(format!("{api}/api/resource"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn issuer_redis_and_resource_server_as_real_processes() {
    let redis = RedisServer::start();
    let issuer = start_issuer(&redis.url()).await;
    let (_api, api) = start_resource_server(&issuer.base, &redis.url(), &[]);
    wait_for_status(&http(), &format!("{api}/readyz"), 200, READY).await;

    let (access, refresh) = issuer.login().await;
    let ok = call(&api, Some(&access)).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["scope"], "read");

    // Everything that is not a valid access token for `api` is a 401.
    let no_token = call(&api, None).await;
    assert_eq!(no_token.status(), 401);
    assert_eq!(
        no_token.headers()["www-authenticate"],
        "Bearer realm=\"api\""
    );
    let elsewhere = issuer
        .token(
            ("elsewhere", "elsewhere-secret"),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let mut expired = claims(&issuer.base);
    expired["exp"] = json!(now() - 3600);
    let foreign = claims("http://evil.example");
    let (header, body) = decode_parts(&access);
    let mut none = header.clone();
    none["alg"] = json!("none");
    let refused = [
        ("refresh token", refresh.clone()),
        ("junk", "junk".to_owned()),
        (
            "expired",
            sign_with(&issuer.key, Some("at+jwt"), Some("e2e"), &expired),
        ),
        (
            "wrong issuer",
            sign_with(&issuer.key, Some("at+jwt"), Some("e2e"), &foreign),
        ),
        (
            "wrong audience",
            elsewhere["access_token"].as_str().unwrap().to_owned(),
        ),
        ("alg none", assemble(&none, &body, b"")),
    ];
    for (what, token) in &refused {
        let response = call(&api, Some(token)).await;
        assert_eq!(response.status(), 401, "{what}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }

    // Revoke at the issuer: the resource server refuses within milliseconds.
    assert_eq!(call(&api, Some(&access)).await.status(), 200);
    issuer.revoke(&access).await;
    let revoked_at = Instant::now();
    let mut accepted = 0;
    while call(&api, Some(&access)).await.status() != 401 {
        accepted += 1;
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "still accepted"
        );
    }
    let took = revoked_at.elapsed();
    eprintln!(
        "revoked access token refused by the resource server after {took:?} \
         ({accepted} requests accepted in between)"
    );
    assert!(took < Duration::from_millis(500), "{took:?}");

    // Logout (revoking the refresh token) kills the session's access tokens.
    let (access, refresh) = issuer.login().await;
    assert_eq!(call(&api, Some(&access)).await.status(), 200);
    issuer.revoke(&refresh).await;
    let revoked_at = Instant::now();
    while call(&api, Some(&access)).await.status() != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "session still alive"
        );
    }

    let metrics = http()
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let applied = metrics
        .lines()
        .find_map(|l| l.strip_prefix("revokd_denylist_events_applied_total "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(applied.parse::<f64>().unwrap() >= 2.0, "{applied}");
    assert!(metrics.contains("revokd_redis_connected 1"), "{metrics}");
}

#[tokio::test]
async fn fail_closed_answers_503_while_redis_is_away_and_recovers() {
    let mut redis = RedisServer::start();
    let issuer = start_issuer(&redis.url()).await;
    let (_api, api) = start_resource_server(
        &issuer.base,
        &redis.url(),
        &["--fail-closed", "--staleness-bound-secs", "1"],
    );
    let http = http();
    wait_for_status(&http, &format!("{api}/readyz"), 200, READY).await;
    let (access, _) = issuer.login().await;
    assert_eq!(call(&api, Some(&access)).await.status(), 200);

    // Redis pauses (a partition): past the bound, valid tokens get 503 and
    // the replica reports itself not ready; bad tokens are still 401s.
    redis.signal("STOP");
    wait_for_status(&http, &format!("{api}/readyz"), 503, READY).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&api, Some(&access)).await.status() != 503 {
        assert!(Instant::now() < deadline, "never failed closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(call(&api, Some("junk")).await.status(), 401);

    // Redis is back: the subscriber proves it is in sync again.
    redis.signal("CONT");
    wait_for_status(&http, &format!("{api}/readyz"), 200, READY).await;
    assert_eq!(call(&api, Some(&access)).await.status(), 200);
    drop(issuer);
    redis.kill();
}
