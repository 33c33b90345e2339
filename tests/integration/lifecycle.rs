//! The real binary's lifecycle: JSON logs with request ids and no secrets,
//! graceful shutdown on SIGTERM, every configuration problem at once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::config::{Client, ConfigFile};
use crate::limits::{finish, start_slow_token_request};
use crate::loopback;
use crate::process::{ChildGuard, TempDir, free_port};
use crate::wait::{answers_within, exit_within};

const BIN: &str = env!("CARGO_BIN_EXE_revokd");
const SECRET: &str = "lifecycle-secret-9f3c1e";

/// A config for one client `svc` (secret [`SECRET`]) on `port`.
fn config(port: u16) -> ConfigFile {
    ConfigFile::new()
        .issuer(&format!("http://127.0.0.1:{port}"))
        .listen(&format!("127.0.0.1:{port}"))
        .client(
            Client::new("svc", SECRET)
                .grants(&["client_credentials"])
                .scopes(&["read"]),
        )
}

/// Starts `revokd serve --config FILE --log-format json`, stderr to a file,
/// and waits for `/healthz`.
async fn spawn(file: &Path, log: &Path, port: u16) -> ChildGuard {
    let guard = ChildGuard::spawn(
        Command::new(BIN)
            .args(["serve", "--log-format", "json", "--config"])
            .arg(file)
            .env_remove("REVOKD_CONFIG")
            .env_remove("REVOKD_LOG_FORMAT")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap()),
    );
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    if answers_within(&client(), &healthz, 200, Duration::from_secs(15)).await {
        return guard;
    }
    panic!(
        "server did not start: {}",
        std::fs::read_to_string(log).unwrap()
    );
}

fn client() -> reqwest::Client {
    loopback::client(Duration::from_secs(20))
}

/// Waits for the child to exit, at most `bound`.
async fn exit_status_within(guard: &mut ChildGuard, bound: Duration) -> std::process::ExitStatus {
    exit_within(guard, bound)
        .await
        .unwrap_or_else(|| panic!("still running after {bound:?}"))
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_never_a_secret_or_token() {
    let dir = TempDir::new("logs");
    let port = free_port();
    let file = config(port).write(dir.path());
    let log = dir.join("stderr.log");
    let mut guard = spawn(&file, &log, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = client();

    let resp = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth("svc", Some(SECRET))
        .header("x-request-id", "log-test-token-1")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "log-test-token-1");
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    // The token travels in a body, a query string and a header: none of
    // them may reach the log.
    let resp = http
        .post(format!("{base}/oauth2/introspect?token={token}"))
        .form(&[
            ("token", token.as_str()),
            ("client_id", "svc"),
            ("client_secret", SECRET),
        ])
        .header("x-request-id", "log-test-introspect-2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .get(format!("{base}/admin/revocations/jti:x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    // A failed authentication, with the secret in the header.
    let resp = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth("svc", Some(format!("{SECRET}-wrong")))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    guard.signal("TERM");
    let status = exit_status_within(&mut guard, Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(SECRET), "secret in log:\n{text}");
    assert!(!text.contains(&token), "token in log:\n{text}");
    // Nor the signature alone, nor the Basic header's base64.
    assert!(!text.contains(token.rsplit('.').next().unwrap()));
    assert!(!text.contains("Basic "), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let find = |id: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}:\n{text}"))
            .clone()
    };
    let line = find("log-test-token-1");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    assert_eq!(line["fields"]["route"], "/oauth2/token", "{line}");
    assert_eq!(line["fields"]["method"], "POST", "{line}");
    assert!(line["fields"]["latency_us"].is_u64(), "{line}");
    let line = find("log-test-introspect-2");
    assert_eq!(line["fields"]["route"], "/oauth2/introspect", "{line}");
    assert!(text.contains("shutting down"), "{text}");
}

#[tokio::test]
async fn sigterm_drains_the_request_in_flight_refuses_new_ones_and_exits_0() {
    let dir = TempDir::new("drain");
    let port = free_port();
    let file = config(port).write(dir.path());
    let log = dir.join("stderr.log");
    let mut guard = spawn(&file, &log, port).await;
    let addr = format!("127.0.0.1:{port}");

    let (slow, rest) = start_slow_token_request(&addr, ("svc", SECRET)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    guard.signal("TERM");
    // The listener closes at once…
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections still accepted after SIGTERM");
    // …while the request in flight is still served, and the process waits
    // for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(guard.try_wait().is_none(), "exited before draining");
    let response = finish(slow, &rest).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("access_token"), "{response}");
    let status = exit_status_within(&mut guard, Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("revokd stopped"), "{text}");
}

#[tokio::test]
async fn a_connection_that_never_finishes_does_not_hold_shutdown_past_its_bound() {
    let dir = TempDir::new("bound");
    let port = free_port();
    let file = config(port)
        .limit("request_timeout", "1s")
        .write(dir.path());
    let log = dir.join("stderr.log");
    let mut guard = spawn(&file, &log, port).await;
    let addr = format!("127.0.0.1:{port}");
    // Half a request line: the server has not even read the headers.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stalled, b"POST /oauth2/tok")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    guard.signal("TERM");
    // request_timeout (1 s) + 5 s, with room for a loaded machine.
    let status = exit_status_within(&mut guard, Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("after the drain bound"), "{text}");
    drop(stalled);
}

#[test]
fn a_config_with_several_problems_lists_every_one_and_exits_non_zero() {
    let dir = TempDir::new("badconfig");
    let toml = r#"issuer = ""
[tokens]
access_ttl = "0s"
[limits]
burst = 0
max_concurrent_requests = 0
[[clients]]
id = "a"
secret_hash = "plain-text"
[[clients]]
id = "a"
secret_hash = "sha256:00"
"#;
    let file = dir.join("revokd.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .env_remove("REVOKD_CONFIG")
        .env_remove("REVOKD_LOG_FORMAT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for problem in [
        "issuer is empty",
        "token lifetimes must be positive",
        "limits.burst",
        "limits.max_concurrent_requests",
        "secret_hash must be",
        "listed twice",
    ] {
        assert!(
            stderr.contains(problem),
            "{problem:?} missing from:\n{stderr}"
        );
    }
}
