//! An MCP host's view, end to end: the official Python MCP SDK
//! (`tests/mcp/client.py`) connects to `examples/mcp_server` (rmcp behind
//! the resource server's layer), finds revokd from the 401's RFC 9728
//! metadata, registers itself (RFC 7591), signs alice in through the login
//! and consent pages, and calls tools; alice then disconnects the app on
//! `/account`, and the client's very next call is a 401.
//!
//! Real processes: a private redis-server, the example, python3; the issuer
//! runs in-process on the same Redis (its registered clients' audience is
//! the MCP server's URL).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use revokd::issuer;
use revokd::signing::{SigningAlg, SigningKeys};
use serde_json::Value;

use crate::loopback::{self, ServerTask};
use crate::process::{ChildGuard, StdoutLines, free_port};
use crate::redis_server::RedisServer;
use crate::resource_server::e2e::{Process, READY, http};
use crate::support::browser::{Browser, form_fields};
use crate::support::{ALICE, config, decode_parts};
use crate::wait::wait_for_status;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
/// Registration, two page round trips, the code exchange and three calls.
const CONNECT: Duration = Duration::from_secs(60);

fn python_with_mcp() {
    let ok = Command::new("python3")
        .args(["-c", "import mcp, httpx2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with the MCP SDK is needed: python3 -m pip install mcp (scripts/test installs it)"
    );
}

/// Alice signs in on `/account` and disconnects `client_id`.
async fn disconnect(issuer: &str, client_id: &str) {
    let mut alice = Browser::new();
    let account = format!("{issuer}/account");
    let (status, _, login) = alice.get(&account).await;
    assert_eq!(status, 200);
    assert!(login.contains("name=\"password\""), "{login}");
    let mut fields = form_fields(&login);
    fields.extend(
        [
            ("action", "login"),
            ("username", ALICE.0),
            ("password", ALICE.1),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let (status, _, _) = alice
        .post(&format!("{issuer}/account/login"), &fields)
        .await;
    assert_eq!(status, 303, "signed in");
    let (status, _, page) = alice.get(&account).await;
    assert_eq!(status, 200);
    let action = format!("/account/apps/{client_id}/disconnect");
    let at = page.find(&action).unwrap_or_else(|| {
        panic!("the registered MCP client is listed with a Disconnect form: {page}")
    });
    let form = &page[page[..at].rfind("<form").unwrap()..];
    let (status, _, _) = alice
        .post(&format!("{issuer}{action}"), &form_fields(form))
        .await;
    assert_eq!(status, 303, "disconnected");
}

// Multi-threaded: the in-process issuer answers while the test blocks
// reading a child's stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_signs_in_calls_tools_and_is_refused_once_disconnected() {
    python_with_mcp();
    let binary = crate::resource_server::e2e::example_binary("mcp_server");
    let started = Instant::now();
    let redis = RedisServer::start();
    // The MCP server's URL is the registered clients' audience: its port
    // is chosen before the issuer starts.
    let mcp_port = free_port();
    let mcp_url = format!("http://127.0.0.1:{mcp_port}/mcp");

    // The issuer, discoverable (its `iss` is its own address), on that Redis.
    let (listener, issuer_base) = loopback::listener().await;
    let mut issuer_config = config(&issuer_base);
    issuer_config.store.redis_url = Some(redis.url());
    issuer_config.registration.enabled = true;
    issuer_config.registration.scopes = vec!["read".into()];
    issuer_config.registration.audience = vec![mcp_url.clone()];
    issuer_config.validate().unwrap();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let (state, _replication) =
        issuer::replicated::on_redis(issuer_config, keys, Duration::from_secs(2)).unwrap();
    let _issuer = ServerTask::spawn(async move {
        issuer::serve(listener, state, std::future::pending())
            .await
            .unwrap();
    });
    wait_for_status(&http(), &format!("{issuer_base}/readyz"), 200, READY).await;

    let mcp_server = Process::spawn(
        Command::new(&binary)
            .args(["--listen", &format!("127.0.0.1:{mcp_port}")])
            .args(["--issuer", &issuer_base, "--redis", &redis.url()])
            .env("RUST_LOG", "warn"),
    );
    let line = mcp_server.line(READY, |l| l.starts_with("mcp server listening on "));
    let mcp_base = line.trim_start_matches("mcp server listening on ");
    assert_eq!(format!("{mcp_base}/mcp"), mcp_url);
    wait_for_status(&http(), &format!("{mcp_base}/readyz"), 200, READY).await;

    let mut child = Command::new("python3")
        .args([CLIENT, &mcp_url, ALICE.0, ALICE.1])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning python3 tests/mcp/client.py");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut client = ChildGuard::new(child);
    let lines = StdoutLines::new(stdout);

    let connected: Value =
        serde_json::from_str(&lines.next_matching(CONNECT, |l| l.starts_with('{'))).unwrap();
    assert_eq!(connected["connected"], true, "{connected}");
    assert_eq!(connected["whoami"], ALICE.0, "{connected}");
    assert_eq!(connected["add"], "42", "{connected}");
    assert_eq!(connected["tools"], serde_json::json!(["add", "whoami"]));
    let client_id = connected["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("dyn-"), "registered: {client_id}");
    let access = connected["access_token"].as_str().unwrap();
    // RFC 8707: the token is for this MCP server, and only it.
    let (_, claims) = decode_parts(access);
    assert_eq!(claims["aud"], mcp_url, "{claims}");
    assert_eq!(claims["client_id"], client_id, "{claims}");

    disconnect(&issuer_base, client_id).await;
    // The revocation is in Redis before the issuer answers; the MCP
    // server's denylist applies it within milliseconds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    writeln!(stdin, "disconnected").unwrap();
    stdin.flush().unwrap();

    let refused: Value =
        serde_json::from_str(&lines.next_matching(CONNECT, |l| l.starts_with('{'))).unwrap();
    assert_eq!(refused["refused"], true, "{refused}");
    assert_eq!(refused["status"], 401, "{refused}");
    eprintln!("after the disconnect: {}", refused["requests"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = client.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the client exits");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "client exit: {status}");
    // A direct call with the token is refused too, and names the metadata.
    let direct = http()
        .post(&mcp_url)
        .bearer_auth(access)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 401);
    let challenge = direct.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("/.well-known/oauth-protected-resource/mcp"),
        "{challenge}"
    );
    drop(client);
    mcp_server.kill();
    eprintln!("mcp end to end: {:?}", started.elapsed());
}
