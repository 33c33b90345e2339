//! The binary: dev mode, keygen, client new.

use std::process::{Command, Stdio};
use std::time::Duration;

use revokd::config::Config;
use revokd::signing::{SigningAlg, SigningKey};
use serde_json::Value;

use crate::config::{Client, ConfigFile};
use crate::loopback;
use crate::process::{ChildGuard, StdoutLines, TempDir, free_port};
use crate::wait::{exit_within, wait_for_status};

const BIN: &str = env!("CARGO_BIN_EXE_revokd");

/// Parses `curl -s -u ID:SECRET -d grant_type=… URL`.
fn parse_curl(line: &str) -> (String, String, String, String) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "curl");
    let pos = |flag: &str| words.iter().position(|w| *w == flag).unwrap() + 1;
    let (id, secret) = words[pos("-u")].split_once(':').unwrap();
    let data = words[pos("-d")];
    let url = words.last().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (id.into(), secret.into(), data.into(), url.to_string())
}

#[tokio::test]
async fn dev_mode_prints_a_curl_line_that_works() {
    let mut guard = ChildGuard::spawn(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "debug")
            .env_remove("REVOKD_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let stdout = StdoutLines::new(guard.take_stdout());
    let stderr = guard.take_stderr();
    let curl = stdout.next_matching(Duration::from_secs(60), |l| l.starts_with("curl "));
    let (id, secret, data, url) = parse_curl(&curl);
    let (name, value) = data.split_once('=').unwrap();
    let http = loopback::client(Duration::from_secs(30));
    let resp = http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[(name, value)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let base = url.trim_end_matches("/oauth2/token");
    let resp = http
        .post(format!("{base}/oauth2/introspect"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["active"], true);

    // The banner's app walk-through: a demo user, and an authorize URL
    // that opens the login page (the rest of the flow: tests/integration/apps.rs).
    let user = stdout.next_matching(Duration::from_secs(5), |l| l.starts_with("demo user:"));
    let password = user.split_whitespace().nth(4).unwrap().to_owned();
    assert!(password.len() >= 32, "{user}");
    let connect = stdout.next_matching(Duration::from_secs(5), |l| {
        l.starts_with("connect demo-app:")
    });
    let authorize = connect.trim_start_matches("connect demo-app:").trim();
    let page = http.get(authorize).send().await.unwrap();
    assert_eq!(page.status(), 200, "{authorize}");
    let page = page.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "{page}");

    // Stop it and check the log: a loud warning, no token, no secret.
    guard.signal("TERM");
    let _ = exit_within(&mut guard, Duration::from_secs(30)).await;
    drop(guard);
    let log = std::io::read_to_string(stderr).unwrap();
    assert!(log.contains("EPHEMERAL"), "{log}");
    assert!(!log.contains(&secret), "secret in log");
    assert!(!log.contains(&password), "password in log");
    assert!(!log.contains(&token), "token in log");
}

#[test]
fn dev_mode_refuses_a_public_address() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("REVOKD_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn keygen_prints_a_loadable_pkcs8_key_for_each_alg() {
    for (arg, alg) in [
        ("EdDSA", SigningAlg::EdDSA),
        ("ES256", SigningAlg::ES256),
        ("RS256", SigningAlg::RS256),
    ] {
        let out = Command::new(BIN)
            .args(["keygen", "--alg", arg])
            .output()
            .unwrap();
        assert!(out.status.success());
        let pem = String::from_utf8(out.stdout).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(SigningKey::from_pem("k", &pem).unwrap().alg(), alg);
    }
    let out = Command::new(BIN).args(["keygen"]).output().unwrap();
    let pem = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        SigningKey::from_pem("k", &pem).unwrap().alg(),
        SigningAlg::EdDSA
    );
}

#[test]
fn client_new_prints_a_secret_and_a_stanza_that_parses() {
    let out = Command::new(BIN)
        .args(["client", "new", "svc"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let secret = text
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("# ")
        .to_owned();
    assert!(secret.len() >= 43);
    let config = Config::from_toml(&text).unwrap();
    assert_eq!(config.clients[0].id, "svc");
    assert_eq!(
        config.clients[0].secret_hash,
        revokd::issuer::client_auth::sha256_secret_hash(&secret)
    );
}

#[tokio::test]
async fn serve_reads_the_config_file_its_key_files_and_env_overrides() {
    let dir = TempDir::new("cli");
    let pem = Command::new(BIN)
        .args(["keygen", "--alg", "ES256"])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(dir.join("k.pem"), pem).unwrap();
    let port = free_port();
    let file = ConfigFile::new()
        .issuer(&format!("http://127.0.0.1:{port}"))
        .listen(&format!("127.0.0.1:{port}"))
        .signing_key("file-key", &dir.join("k.pem"))
        .client(
            Client::new("svc", "s3cret")
                .grants(&["client_credentials"])
                .scopes(&["read"]),
        )
        .write(dir.path());

    // An unknown override is an error that names the key.
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .env("REVOKD_NO_SUCH_KEY", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));

    let _guard = ChildGuard::spawn(
        Command::new(BIN)
            .arg("serve")
            .env("REVOKD_CONFIG", &file)
            .env("REVOKD_TOKENS__ACCESS_TTL", "90s")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let http = loopback::client(Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{port}");
    wait_for_status(
        &http,
        &format!("{base}/healthz"),
        200,
        Duration::from_secs(30),
    )
    .await;
    let resp = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth("svc", Some("s3cret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 90);
    let (header, _) = crate::support::decode_parts(body["access_token"].as_str().unwrap());
    assert_eq!(header["kid"], "file-key");
    assert_eq!(header["alg"], "ES256");
}
