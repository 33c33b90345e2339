//! `revokd gate` behind a real nginx (`deploy/nginx/revokd-gate.conf`, the
//! recipe of the README), in front of an upstream that knows nothing of
//! tokens; all on 127.0.0.1, every process stopped by its pid.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::any;
use revokd::signing::{SigningAlg, SigningKeys};
use serde_json::{Value, json};

use crate::loopback::{self, ServerTask};
use crate::process::{TempDir, free_port, poll};
use crate::redis_server::RedisServer;
use crate::resource_server::e2e::{Process, READY, REVOKD, http};
use crate::resource_server::{challenge, claims, sign_access};
use crate::support::{Server, WEB, key_set, start_on_redis_discoverable};
use crate::wait::{eventually, wait_for_status};

/// The upstream: echoes what nginx passed on, counts what reached it.
struct Upstream {
    addr: String,
    hits: Arc<AtomicUsize>,
    _task: ServerTask,
}

async fn upstream() -> Upstream {
    async fn echo(State(hits): State<Arc<AtomicUsize>>, headers: HeaderMap) -> axum::Json<Value> {
        hits.fetch_add(1, Ordering::SeqCst);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        axum::Json(json!({
            "sub": header("x-auth-sub"),
            "client_id": header("x-auth-client-id"),
            "scope": header("x-auth-scope"),
            "authorization": header("authorization"),
        }))
    }
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new().fallback(any(echo)).with_state(hits.clone());
    let (base, task) = loopback::serve(app).await;
    Upstream {
        addr: base.trim_start_matches("http://").to_owned(),
        hits,
        _task: task,
    }
}

/// `revokd gate` as a real process; returns it and its base URL once ready.
async fn gate(issuer: &Server, redis: &RedisServer) -> (Process, String) {
    start_gate(
        Command::new(REVOKD)
            .args(["gate", "--listen", "127.0.0.1:0", "--audience", "api"])
            .args(["--issuer", &issuer.base, "--redis", &redis.url()])
            .args(["--scope", "/admin=revokd:admin"]),
    )
    .await
}

/// Spawns `command` (a `revokd gate`) and waits until it is ready.
async fn start_gate(command: &mut Command) -> (Process, String) {
    let process = Process::spawn(command);
    // Read off the runtime's thread: the issuer answering the gate's
    // discovery runs on it.
    let (process, line) = tokio::task::spawn_blocking(move || {
        let line = process.line(Duration::from_secs(60), |l| {
            l.starts_with("revokd gate listening on ")
        });
        (process, line)
    })
    .await
    .unwrap();
    let base = line
        .trim_start_matches("revokd gate listening on ")
        .to_owned();
    wait_for_status(&http(), &format!("{base}/readyz"), 200, READY).await;
    (process, base)
}

/// nginx running the deploy recipe with this test's addresses.
struct Nginx {
    _process: Process,
    base: String,
    _dir: TempDir,
}

fn nginx(gate: &str, upstream: &str) -> Nginx {
    let dir = TempDir::new("nginx");
    let port = free_port();
    let recipe = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx/revokd-gate.conf"
    ))
    .unwrap();
    let gate = gate.trim_start_matches("http://");
    let site = recipe
        .replace("server 127.0.0.1:8181;", &format!("server {gate};"))
        .replace("server 127.0.0.1:9000;", &format!("server {upstream};"))
        .replace(
            "listen 127.0.0.1:8000;",
            &format!("listen 127.0.0.1:{port};"),
        );
    assert_ne!(
        site, recipe,
        "the recipe's addresses moved: update this test"
    );
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.path().display();
    let main = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let process = Process::spawn(
        Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null()),
    );
    let listening = poll(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(
        listening.is_some(),
        "nginx did not start: {}",
        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
    Nginx {
        _process: process,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Debian's nginx-light puts it in /usr/sbin, often not on a user's PATH.
fn nginx_binary() -> String {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).exists())
    .unwrap_or("nginx")
    .to_owned()
}

struct World {
    _redis: RedisServer,
    issuer: Server,
    keys: SigningKeys,
    upstream: Upstream,
    gate: Option<Process>,
    gate_base: String,
    nginx: Nginx,
    _replication: revokd::issuer::replicated::Replication,
}

async fn world() -> World {
    let redis = RedisServer::start();
    let keys = key_set(SigningAlg::EdDSA, "gate-k1");
    let (issuer, replication) = start_on_redis_discoverable(keys.clone(), &redis.url()).await;
    let upstream = upstream().await;
    let (gate, gate_base) = gate(&issuer, &redis).await;
    let nginx = nginx(&gate_base, &upstream.addr);
    World {
        _redis: redis,
        issuer,
        keys,
        upstream,
        gate: Some(gate),
        gate_base,
        nginx,
        _replication: replication,
    }
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn nginx_passes_a_valid_token_on_and_refuses_the_rest_before_the_upstream() {
    let w = world().await;
    let api = format!("{}/api/orders", w.nginx.base);
    let (access, _) = w.issuer.login(WEB).await;

    // A valid token reaches the upstream with who it is for, and a forged
    // identity header from the client is replaced.
    let answer = http()
        .get(&api)
        .bearer_auth(&access)
        .header("X-Auth-Sub", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let seen: Value = answer.json().await.unwrap();
    assert_eq!(seen["sub"], "alice");
    assert_eq!(seen["client_id"], "web");
    assert_eq!(seen["scope"], "read");
    assert_eq!(seen["authorization"], "", "the token stays at the gateway");
    assert_eq!(w.upstream.hits.load(Ordering::SeqCst), 1);

    // Refused at nginx: none of these reach the upstream.
    let now = revokd::clock::now_secs();
    let mut expired = claims(&w.issuer.base);
    expired["iat"] = json!(now - 600);
    expired["exp"] = json!(now - 300);
    let mut elsewhere = claims(&w.issuer.base);
    elsewhere["aud"] = json!("another-api");
    let refused = [
        ("no token", None),
        ("junk", Some("not-a-jwt".to_owned())),
        ("expired", Some(sign_access(&w.keys, &expired))),
        ("wrong audience", Some(sign_access(&w.keys, &elsewhere))),
    ];
    for (what, token) in refused {
        let answer = get(&api, token.as_deref()).await;
        assert_eq!(answer.status(), 401, "{what}");
        let challenge = challenge(&answer);
        assert!(
            challenge.starts_with("Bearer realm=\"api\""),
            "{what}: {challenge}"
        );
        if token.is_some() {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
        }
    }
    assert_eq!(w.upstream.hits.load(Ordering::SeqCst), 1);

    // A revocation: refused at nginx within milliseconds (the gate is
    // another process: its subscriber applies the rule a hop later).
    assert_eq!(w.issuer.revoke(WEB, &access).await, 200);
    let took = eventually(
        "the revoked token refused at nginx",
        Duration::from_secs(2),
        || async { get(&api, Some(&access)).await.status() == 401 },
    )
    .await;
    eprintln!("revoked → refused at nginx in {took:?}");
    let served = w.upstream.hits.load(Ordering::SeqCst);
    assert_eq!(get(&api, Some(&access)).await.status(), 401);
    assert_eq!(w.upstream.hits.load(Ordering::SeqCst), served);
}

#[tokio::test]
async fn a_gate_on_a_unix_socket_serves_nginx_the_same_and_removes_its_socket() {
    let redis = RedisServer::start();
    let keys = key_set(SigningAlg::EdDSA, "gate-unix");
    let (issuer, _replication) = start_on_redis_discoverable(keys, &redis.url()).await;
    let upstream = upstream().await;
    let dir = TempDir::new("gate-socket");
    let socket = dir.join("gate.sock");
    // A socket file left by an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let listen = format!("unix:{}", socket.display());
    let gate = Process::spawn(
        Command::new(REVOKD)
            .args(["gate", "--listen", &listen, "--audience", "api"])
            .args(["--issuer", &issuer.base, "--redis", &redis.url()]),
    );
    let line = tokio::task::spawn_blocking(move || {
        let line = gate.line(Duration::from_secs(60), |l| {
            l.starts_with("revokd gate listening on ")
        });
        (gate, line)
    })
    .await
    .unwrap();
    let (gate, line) = line;
    assert_eq!(line, format!("revokd gate listening on {listen}"));
    let nginx = nginx(&listen, &upstream.addr);
    let api = format!("{}/api/orders", nginx.base);
    let (access, _) = issuer.login(WEB).await;

    eventually(
        "nginx lets a valid token through the socket",
        READY,
        || async { get(&api, Some(&access)).await.status() == 200 },
    )
    .await;
    let seen: Value = get(&api, Some(&access)).await.json().await.unwrap();
    assert_eq!(seen["sub"], "alice");
    assert_eq!(get(&api, Some("not-a-jwt")).await.status(), 401);
    assert_eq!(issuer.revoke(WEB, &access).await, 200);
    eventually(
        "the revoked token refused through the socket",
        Duration::from_secs(2),
        || async { get(&api, Some(&access)).await.status() == 401 },
    )
    .await;

    gate.signal("TERM");
    assert!(
        poll(Duration::from_secs(10), || (!socket.exists()).then_some(())).is_some(),
        "the gate left its socket behind"
    );
}

#[tokio::test]
async fn scope_rules_give_403_however_the_path_is_spelled() {
    let w = world().await;
    let (access, _) = w.issuer.login(WEB).await;
    let mut admin = claims(&w.issuer.base);
    admin["scope"] = json!("read revokd:admin");
    let admin = sign_access(&w.keys, &admin);
    for path in [
        "/admin",
        "/admin/users",
        "/%61dmin/users",
        "/api/../admin",
        "//admin",
    ] {
        let url = format!("{}{path}", w.nginx.base);
        let answer = get(&url, Some(&access)).await;
        assert_eq!(answer.status(), 403, "{path}");
        let challenge = challenge(&answer);
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"revokd:admin\""),
            "{path}: {challenge}"
        );
        assert_eq!(get(&url, Some(&admin)).await.status(), 200, "{path}");
    }
    assert_eq!(
        w.upstream.hits.load(Ordering::SeqCst),
        5,
        "only the admin's"
    );
    let other = format!("{}/administrator", w.nginx.base);
    assert_eq!(get(&other, Some(&access)).await.status(), 200);

    // A client naming another path in the headers the gate reads cannot
    // move the check off the path nginx serves.
    for header in ["X-Original-URI", "X-Forwarded-Uri", "X-Original-URL"] {
        let spoofed = http()
            .get(format!("{}/admin", w.nginx.base))
            .bearer_auth(&access)
            .header(header, "/orders")
            .send()
            .await
            .unwrap();
        assert_eq!(spoofed.status(), 403, "{header}");
    }

    // Asked directly, in Envoy's shape (the path appended), Traefik's
    // (X-Forwarded-Uri) and ingress-nginx's (X-Original-URL); and
    // X-Required-Scope.
    let check = |path: &str| format!("{}/check{path}", w.gate_base);
    assert_eq!(get(&check("/admin/x"), Some(&access)).await.status(), 403);
    for (header, value) in [
        ("X-Forwarded-Uri", "/admin/x?y".to_owned()),
        ("X-Original-URL", format!("{}/%2e%2e/admin", w.nginx.base)),
    ] {
        let asked = http()
            .get(check(""))
            .bearer_auth(&access)
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(asked.status(), 403, "{header}: {value}");
    }
    let answer = get(&check("/orders"), Some(&access)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-auth-sub"], "alice");
    assert_eq!(answer.headers()["x-auth-scope"], "read");
    let asked = http()
        .post(check(""))
        .bearer_auth(&access)
        .header("X-Required-Scope", "write")
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 403);
}

#[tokio::test]
async fn a_gate_that_is_down_refuses_everything_at_nginx() {
    let mut w = world().await;
    let (access, _) = w.issuer.login(WEB).await;
    let api = format!("{}/api/orders", w.nginx.base);
    assert_eq!(get(&api, Some(&access)).await.status(), 200);
    w.gate.take().expect("the gate runs").kill();
    let answer = get(&api, Some(&access)).await;
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "1");
    assert_eq!(w.upstream.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_gate_reads_its_file_and_the_flags_override_it() {
    let redis = RedisServer::start();
    let keys = key_set(SigningAlg::EdDSA, "gate-k1");
    let (issuer, _replication) = start_on_redis_discoverable(keys, &redis.url()).await;
    let dir = TempDir::new("gate-config");
    let file = dir.join("gate.toml");
    std::fs::write(
        &file,
        format!(
            "issuer = \"{}\"\naudience = \"not-api\"\n[store]\nredis_url = \"{}\"\n\
             [[scope_rules]]\npath = \"/orders\"\nscopes = [\"write\"]\n",
            issuer.base,
            redis.url()
        ),
    )
    .unwrap();
    let (_gate, base) = start_gate(
        Command::new(REVOKD)
            .args(["gate", "--listen", "127.0.0.1:0", "--audience", "api"])
            .arg("--config")
            .arg(&file),
    )
    .await;
    let (access, _) = issuer.login(WEB).await;
    // The flag's audience, the file's rule.
    assert_eq!(
        get(&format!("{base}/check/api"), Some(&access))
            .await
            .status(),
        200
    );
    let answer = get(&format!("{base}/check/orders/1"), Some(&access)).await;
    assert_eq!(answer.status(), 403);
    assert!(challenge(&answer).contains("scope=\"write\""));

    // A bad file: every problem named, exit 1.
    std::fs::write(&file, "audiance = \"api\"\nstaleness_bound = \"soon\"\n").unwrap();
    let output = Command::new(REVOKD)
        .args(["gate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for wanted in [
        "unknown key `audiance`",
        "staleness_bound",
        "issuer is required",
        "redis topology",
    ] {
        assert!(stderr.contains(wanted), "{wanted}: {stderr}");
    }
}
