//! `[limits]`: per-client rate limits (429 + `Retry-After`), the load
//! shedder (503), the request timeout, and request ids.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use revokd::signing::{SigningAlg, SigningKeys};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{MACHINE, OTHER, Server, WEB, start_with};

/// An issuer whose clients may each make `burst` requests at once and then
/// one every twenty seconds (slow enough that a stalled test machine does
/// not refill a bucket mid-test).
async fn strict(burst: u32) -> Server {
    start_with(SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(), |c| {
        c.limits.rate_per_second = 0.05;
        c.limits.burst = burst;
    })
    .await
}

async fn cc(server: &Server, client: (&str, &str)) -> reqwest::Response {
    server
        .post_form(
            "/oauth2/token",
            Some(client),
            &[("grant_type", "client_credentials")],
        )
        .await
}

async fn assert_slow_down(resp: reqwest::Response) {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "slow_down", "{body}");
}

#[tokio::test]
async fn a_client_past_its_burst_gets_429_with_retry_after_on_every_endpoint() {
    let server = strict(3).await;
    let token = server.cc_token(MACHINE).await;
    assert_eq!(cc(&server, MACHINE).await.status(), 200);
    assert_eq!(
        server
            .post_form("/oauth2/introspect", Some(MACHINE), &[("token", &token)])
            .await
            .status(),
        200
    );
    // The bucket (3) is empty: token, introspect and revoke all say so.
    assert_slow_down(cc(&server, MACHINE).await).await;
    assert_slow_down(
        server
            .post_form("/oauth2/introspect", Some(MACHINE), &[("token", &token)])
            .await,
    )
    .await;
    assert_slow_down(
        server
            .post_form("/oauth2/revoke", Some(MACHINE), &[("token", &token)])
            .await,
    )
    .await;
    // Another client has its own bucket.
    assert_eq!(cc(&server, OTHER).await.status(), 200);
    // Counted like every other OAuth error.
    assert!(
        server
            .metrics()
            .await
            .contains("revokd_token_errors_total{error=\"slow_down\"} 3")
    );
}

#[tokio::test]
async fn bad_credentials_under_a_real_client_id_do_not_use_up_its_allowance() {
    let server = strict(3).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(cc(&server, (WEB.0, "wrong")).await.status().as_u16());
    }
    // Failures are charged to the peer address: 401 while it has tokens,
    // then 429.
    assert_eq!(&statuses[..3], &[401, 401, 401]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // The real `web`, from the same address, still has its whole burst.
    for _ in 0..3 {
        assert_eq!(cc(&server, WEB).await.status(), 200);
    }
    assert_eq!(cc(&server, WEB).await.status(), 429);
}

#[tokio::test]
async fn the_default_limits_do_not_bother_a_busy_client() {
    let server = crate::support::start().await;
    for _ in 0..200 {
        assert_eq!(cc(&server, MACHINE).await.status(), 200);
    }
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_made_up_otherwise() {
    let server = crate::support::start().await;
    let get = |id: Option<&'static str>| {
        let mut req = server.http.get(format!("{}/healthz", server.base));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let resp = get(Some("abc-123.DEF")).await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123.DEF");
    let made = get(None).await.unwrap().headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(made.len(), 32, "{made}");
    assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
    let other = get(None).await.unwrap().headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(made, other);
    for bad in ["has space", "quote\"d", ""] {
        let resp = get(Some(bad)).await.unwrap();
        let id = resp.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 32, "{bad:?} -> {id}");
    }
    let long: &'static str = "x".repeat(129).leak();
    let resp = get(Some(long)).await.unwrap();
    assert_eq!(resp.headers()["x-request-id"].len(), 32);
    // Errors carry it too.
    let resp = server
        .http
        .post(format!("{}/nope", server.base))
        .header("x-request-id", "err-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "err-1");
}

/// Opens a connection and sends a token request whose body is cut short:
/// the request stays in flight until [`finish`] sends the rest.
pub async fn start_slow_token_request(addr: &str, client: (&str, &str)) -> (TcpStream, String) {
    let body = "grant_type=client_credentials".to_owned();
    let auth = STANDARD.encode(format!("{}:{}", client.0, client.1));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         x-request-id: slow-1\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..5]).await.unwrap();
    stream.flush().await.unwrap();
    (stream, body[5..].to_owned())
}

/// Sends the rest of the body and reads the whole response.
pub async fn finish(mut stream: TcpStream, rest: &str) -> String {
    stream.write_all(rest.as_bytes()).await.unwrap();
    read_response(stream).await
}

/// Reads a response up to its end (Content-Length) or the connection's.
pub async fn read_response(mut stream: TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8(buf).unwrap()
}

/// A client whose argon2 secret takes about a second to verify (debug
/// build): a request that holds its load-shedding permit that long.
pub const SLOWHASH: (&str, &str) = ("slowhash", "slowhash-secret");

/// Registers [`SLOWHASH`].
pub fn add_slowhash(config: &mut revokd::config::Config) {
    config.clients.push(revokd::config::ClientConfig {
        id: SLOWHASH.0.into(),
        secret_hash: crate::config::argon2_hash(SLOWHASH.1, 16 * 1024, 3),
        grants: vec![revokd::config::GrantType::ClientCredentials],
        scopes: vec!["read".into()],
        default_scopes: None,
        audience: vec![],
        access_ttl: None,
        refresh_ttl: None,
        name: None,
        redirect_uris: vec![],
        public: false,
    });
}

#[tokio::test]
async fn requests_past_max_concurrent_are_shed_with_503_but_probes_are_not() {
    let server = start_with(SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(), |c| {
        c.limits.max_concurrent_requests = 1;
        add_slowhash(c);
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    // A request whose body has arrived and whose argon2 check takes a
    // while: it holds the only permit (a body still on its way would not).
    let (slow, rest) = start_slow_token_request(&addr, SLOWHASH).await;
    let slow = tokio::spawn(async move { finish(slow, &rest).await });
    // Wait until the slow request holds the only permit.
    let mut shed = None;
    for _ in 0..100 {
        let resp = cc(&server, MACHINE).await;
        if resp.status() == 503 {
            shed = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resp = shed.expect("a second request is shed");
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let health = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let response = slow.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("x-request-id: slow-1"), "{response}");
    assert_eq!(cc(&server, MACHINE).await.status(), 200);
}

#[tokio::test]
async fn a_request_past_the_timeout_is_answered_503_json() {
    let server = start_with(SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(), |c| {
        c.limits.request_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let (slow, _rest) = start_slow_token_request(&addr, MACHINE).await;
    let response = read_response(slow).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("retry-after: 1"), "{response}");
    assert!(response.contains("temporarily_unavailable"), "{response}");
}
