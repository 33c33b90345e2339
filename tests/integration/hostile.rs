//! Hostile peers (issue 11): slow or idle connections, connection floods,
//! argon2 floods and credential guessing, each against a real listening
//! issuer over real sockets, with `[limits]` scaled down.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use revokd::config::Config;
use revokd::signing::{SigningAlg, SigningKeys};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::limits::{SLOWHASH, add_slowhash, read_response};
use crate::support::{ARGON, MACHINE, Server, start_with};

async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
    start_with(SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(), tweak).await
}

fn addr(server: &Server) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection to `server` from the loopback address `from` (127.0.0.x:
/// another peer as far as the issuer can tell).
async fn connect_from(server: &Server, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr(server)).await.unwrap()
}

/// A reqwest client whose connections come from `from`.
fn client_from(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from(from))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `POST /oauth2/token` by client_credentials with Basic `client`.
async fn cc_from(
    http: &reqwest::Client,
    server: &Server,
    client: (&str, &str),
) -> reqwest::Response {
    http.post(format!("{}/oauth2/token", server.base))
        .basic_auth(client.0, Some(client.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// The value of `revokd_http_refused_total{reason}`, read from the server's
/// own registry (a scrape over HTTP would count against the caps).
fn refused(server: &Server, reason: &str) -> u64 {
    server
        .state
        .metrics
        .connections
        .http_refused
        .with_label_values(&[reason])
        .get()
}

/// Reads until the peer closes the connection: `Ok(bytes read)` on a clean
/// close or a reset, `Err(())` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, ()> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(()),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Headers of a token request announcing a 60 000-byte body, and no body.
async fn headers_without_body(server: &Server) -> TcpStream {
    let auth = STANDARD.encode(format!("{}:{}", MACHINE.0, MACHINE.1));
    let mut stream = TcpStream::connect(addr(server)).await.unwrap();
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n",
        addr(server)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn bodies_that_never_arrive_hold_no_permit_and_are_answered_408() {
    let server = start(|c| {
        c.limits.max_concurrent_requests = 4;
        c.limits.body_read_timeout = Duration::from_millis(1500);
    })
    .await;
    // Five times the permits, each announcing a body it never sends.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(headers_without_body(&server).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A normal client is served, not shed.
    for _ in 0..3 {
        let resp = server
            .post_form(
                "/oauth2/token",
                Some(MACHINE),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(refused(&server, "overloaded"), 0);
    // Past the body timeout each stalled request is answered 408 and its
    // connection closed.
    let started = Instant::now();
    for stream in stalled {
        let response = read_response(stream).await;
        assert!(response.starts_with("HTTP/1.1 408"), "{response}");
        assert!(response.contains("connection: close"), "{response}");
        let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(refused(&server, "body_timeout"), 20);
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed() {
    let server = start(|c| {
        c.limits.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
        stream.write_all(b"POST /oauth2/tok").await.unwrap();
        stalled.push(stream);
    }
    // An idle keep-alive connection waiting for its next request too.
    let mut idle = TcpStream::connect(addr(&server)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    for stream in &mut stalled {
        closed_within(stream, Duration::from_secs(3))
            .await
            .expect("a connection stalled mid-headers is closed");
    }
    closed_within(&mut idle, Duration::from_secs(3))
        .await
        .expect("an idle keep-alive connection is closed");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(refused(&server, "header_timeout") >= 10);
}

/// A peer that pipelines requests and never reads what it is sent is
/// closed once a write has waited `header_read_timeout` for it: it holds
/// neither its connection slot nor the answers buffered for it.
#[tokio::test]
async fn a_peer_that_never_reads_its_answers_is_closed() {
    let server = start(|c| {
        c.limits.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr(&server)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Far more answer than the two socket buffers hold (each /metrics is
    // kilobytes); written from a task, since the server stops reading
    // requests once it cannot write.
    let writes = tokio::spawn(async move {
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5000);
        let _ = writer.write_all(&request).await;
        writer
    });
    let started = Instant::now();
    while refused(&server, "write_timeout") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a connection whose peer never reads is still open after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // Closed: what was buffered drains, then end of stream (or a reset).
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Err(_) => panic!("still open 10 s after the write timeout"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
        }
    }
    writes.abort();
    // Everyone else is served as before.
    let mut other = TcpStream::connect(addr(&server)).await.unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = other.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn the_per_peer_connection_cap_refuses_the_extra_connections() {
    let server = start(|c| {
        c.limits.max_connections_per_peer = 4;
        c.limits.max_connections = 16;
    })
    .await;
    // Four keep-alive connections from 127.0.0.1, each proven admitted.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    // The fifth from the same address is answered 503 and closed at once.
    for _ in 0..3 {
        let mut extra = TcpStream::connect(addr(&server)).await.unwrap();
        let got = closed_within(&mut extra, Duration::from_secs(2))
            .await
            .expect("the extra connection is closed at once");
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 503"),
            "{text}"
        );
        if !text.is_empty() {
            assert!(text.contains("too many connections"), "{text}");
        }
    }
    assert!(refused(&server, "max_connections_per_peer") >= 3);
    // Another host is not affected.
    let mut other = connect_from(&server, [127, 0, 0, 2]).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(other).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // A closed connection frees its place.
    drop(held.pop());
    let mut admitted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let got = closed_within(&mut stream, Duration::from_secs(2))
            .await
            .unwrap();
        if got.starts_with(b"HTTP/1.1 200") {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "a freed place is given to a new connection");
}

#[tokio::test]
async fn the_argon2_queue_is_bounded_and_answers_503_at_once() {
    let server = start(|c| {
        add_slowhash(c);
        c.limits.argon2_concurrency = 1;
        c.limits.argon2_queue = 1;
        c.limits.argon2_failures = 1000;
    })
    .await;
    // Eight guesses at once, each a different secret (no cache hit): one
    // runs, one waits, the other six are refused at once.
    let started = Instant::now();
    let requests = (0..8).map(|i| {
        let http = server.http.clone();
        let url = format!("{}/oauth2/token", server.base);
        async move {
            let resp = http
                .post(url)
                .basic_auth(SLOWHASH.0, Some(format!("wrong-{i}")))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), started.elapsed())
        }
    });
    let outcomes = futures_util::future::join_all(requests).await;
    let shed: Vec<_> = outcomes.iter().filter(|(s, _)| *s == 503).collect();
    let denied = outcomes.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!(shed.len(), 6, "{outcomes:?}");
    assert_eq!(denied, 2, "{outcomes:?}");
    let slowest_401 = outcomes
        .iter()
        .filter(|(s, _)| *s == 401)
        .map(|(_, t)| *t)
        .max()
        .unwrap();
    // The refusals did not wait for the verifications.
    for (_, at) in &shed {
        assert!(*at < slowest_401, "{outcomes:?}");
    }
    assert_eq!(refused(&server, "argon2_queue"), 6);
}

#[tokio::test]
async fn cancelled_requests_leave_no_more_argon2_work_running_than_the_bound() {
    let server = start(|c| {
        add_slowhash(c);
        c.limits.argon2_concurrency = 1;
        c.limits.argon2_queue = 16;
        c.limits.argon2_failures = 1000;
        // Every request is cancelled (503) long before its argon2 check
        // could finish.
        c.limits.request_timeout = Duration::from_millis(100);
    })
    .await;
    let running = server.state.metrics.argon2_running.clone();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            peak = peak.max(running.get());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        peak
    });
    // A steady stream of guesses, one every 40 ms, each cancelled at 100 ms.
    let mut requests = Vec::new();
    for i in 0..12 {
        let http = server.http.clone();
        let url = format!("{}/oauth2/token", server.base);
        requests.push(tokio::spawn(async move {
            http.post(url)
                .basic_auth(SLOWHASH.0, Some(format!("wrong-{i}")))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 503);
    }
    let peak = sampler.await.unwrap();
    assert_eq!(peak, 1, "argon2 verifications running at once");
}

#[tokio::test]
async fn repeated_failures_for_one_client_id_or_peer_are_limited_without_argon2_work() {
    let server = start(|c| {
        c.limits.argon2_failures = 3;
        c.limits.argon2_failure_window = Duration::from_secs(600);
        // A second argon2 client, to tell the peer's count from the id's.
        let mut second = c.clients.iter().find(|c| c.id == ARGON.0).unwrap().clone();
        second.id = "argon-b".into();
        c.clients.push(second);
    })
    .await;
    let here = client_from([127, 0, 0, 1]);
    let elsewhere = client_from([127, 0, 0, 3]);
    // The real client authenticates once (its secret is now verified).
    assert_eq!(cc_from(&here, &server, ARGON).await.status(), 200);
    for i in 0..3 {
        let resp = cc_from(&here, &server, (ARGON.0, &format!("guess-{i}"))).await;
        assert_eq!(resp.status(), 401);
    }
    // The id has used up its failures: refused without argon2 work, from
    // any host.
    for http in [&here, &elsewhere] {
        let resp = cc_from(http, &server, (ARGON.0, "guess-again")).await;
        assert_eq!(resp.status(), 429);
        assert!(resp.headers().contains_key("retry-after"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "slow_down");
    }
    // So has the peer that made them, for every client id…
    let resp = cc_from(&here, &server, ("argon-b", "guess")).await;
    assert_eq!(resp.status(), 429);
    // …but not another peer.
    let resp = cc_from(&elsewhere, &server, ("argon-b", "guess")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(refused(&server, "argon2_failures"), 3);
    // The secret verified before still authenticates: guesses under a real
    // client's id do not lock its running instances out.
    assert_eq!(cc_from(&here, &server, ARGON).await.status(), 200);
    assert_eq!(cc_from(&elsewhere, &server, ARGON).await.status(), 200);
}

/// A public client proves only its id, which anyone can send: one host
/// spending that client's bucket does not refuse its users elsewhere.
#[tokio::test]
async fn one_host_cannot_spend_a_public_clients_rate_limit_for_its_other_users() {
    let server = start(|c| {
        c.limits.burst = 3;
        c.limits.rate_per_second = 0.01;
        c.clients.push(revokd::config::ClientConfig {
            id: "public-app".into(),
            secret_hash: String::new(),
            name: None,
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            public: true,
            grants: vec![
                revokd::config::GrantType::AuthorizationCode,
                revokd::config::GrantType::RefreshToken,
            ],
            scopes: vec!["read".into()],
            default_scopes: None,
            audience: vec!["api".into()],
            access_ttl: None,
            refresh_ttl: None,
        });
    })
    .await;
    let junk_refresh = |http: reqwest::Client| {
        let url = format!("{}/oauth2/token", server.base);
        async move {
            http.post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", "public-app"),
                    ("refresh_token", "junk"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let attacker = client_from([127, 0, 0, 11]);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(junk_refresh(attacker.clone()).await);
    }
    assert_eq!(
        statuses,
        [400, 400, 400, 429, 429, 429],
        "the sender's own bucket runs dry"
    );
    let user = client_from([127, 0, 0, 12]);
    assert_eq!(
        junk_refresh(user).await,
        400,
        "another host still gets an answer"
    );
}

/// Failures are charged before the argon2 work, so guesses sent all at once
/// get no more checks than guesses sent one after another.
#[tokio::test]
async fn parallel_guesses_get_no_more_argon2_checks_than_the_bound() {
    let server = start(|c| {
        c.limits.argon2_failures = 5;
        c.limits.argon2_failure_window = Duration::from_secs(600);
        c.limits.argon2_queue = 256;
    })
    .await;
    let http = client_from([127, 0, 0, 7]);
    let guesses = (0..40).map(|i| {
        let (http, server) = (&http, &server);
        async move {
            cc_from(http, server, (ARGON.0, &format!("parallel-{i}")))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused_at_once = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused_at_once, 40, "{statuses:?}");
    assert_eq!(
        checked, 5,
        "as many checks as failures allowed: {statuses:?}"
    );
    // A check that succeeds gives its charge back: alice signs in more
    // often than five times (each an argon2 check of her password).
    for _ in 0..8 {
        server.login(crate::support::WEB).await;
    }
}

#[tokio::test]
async fn one_host_hammering_the_credential_endpoints_is_limited_before_authentication() {
    let server = start(|c| {
        c.limits.peer_rate_per_second = 0.05;
        c.limits.peer_burst = 5;
    })
    .await;
    let here = client_from([127, 0, 0, 1]);
    let elsewhere = client_from([127, 0, 0, 4]);
    let mut statuses = Vec::new();
    for i in 0..8 {
        let path = [
            "/oauth2/token",
            "/oauth2/revoke",
            "/revoke",
            "/oauth2/introspect",
        ][i % 4];
        let resp = here
            .post(format!("{}{path}", server.base))
            .basic_auth(MACHINE.0, Some("wrong"))
            .form(&[("grant_type", "client_credentials"), ("token", "x")])
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even good credentials from that host wait: the limit runs first.
    assert_eq!(cc_from(&here, &server, MACHINE).await.status(), 429);
    // Another host is served.
    assert_eq!(cc_from(&elsewhere, &server, MACHINE).await.status(), 200);
    // Endpoints without credentials are not limited.
    let health = here
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(refused(&server, "peer_rate"), 4);
}
