//! Soak and chaos run: mixed traffic against two issuers and a resource
//! server sharing one Redis topology (`--topology single|sentinel|cluster`,
//! default single), while Redis is killed, restarted empty or from an older
//! RDB, paused, failed over (`chaos.rs`). Run it with
//! `scripts/soak [SECONDS] [--topology T]` (default 600 s).
//!
//! Traffic (8 workers): log in at either issuer, call the resource server,
//! introspect at the other issuer, refresh, revoke access or refresh tokens,
//! re-approve a revoked access token through the admin API. Every answer is
//! checked against what the run knows (`world.rs`): a token revoked with a
//! 200 must be refused everywhere, a live one accepted. A 5xx is allowed only
//! while Redis is down or paused (and a few seconds after), and only as the
//! documented 503 of a revocation Redis could not take. With Sentinel or
//! Cluster the issuers run with `replica_acks = 1`, so an answered
//! revocation is on a replica too and survives a failover. A re-approval
//! answered after the RDB a restart comes back from may come back as a
//! revocation (documented, the fail-safe direction): such tokens are not
//! judged after that restart.
//!
//! Tokens live 60 s and refresh tokens 150 s (`--access-ttl`,
//! `--refresh-ttl`), so rules expire during the run and the live rule count
//! levels off; every process's RSS and rule count is sampled every 5 s and
//! memory must stay flat over that plateau (`memory.rs`).
//!
//! At the end: every revoked token refused at both issuers and the resource
//! server, every live one accepted, memory flat. Exits non-zero on any
//! violation.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod chaos;
#[path = "../../tests/common/cluster.rs"]
mod cluster;
mod memory;
#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
// The process kit is a child of redis_server.rs (benches include that file
// alone); the other kit files reach it as `super::process`.
use redis_server::process;
#[path = "../../tests/common/sentinel.rs"]
mod sentinel;
mod world;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos::{Effect, Kind, Redis};
use memory::{Sample, Watched};
use process::free_port;
use serde_json::Value;
use world::{Refresh, Tracked, World};

const WEB: (&str, &str) = ("web", "soak-web-secret");
const ADMIN: (&str, &str) = ("ops", "soak-admin-secret");
const USER: (&str, &str) = ("alice", "soak-password");
/// A child process killed and reaped when dropped.
struct Killed(Child);

impl Killed {
    /// Starts `command` with its output discarded.
    fn spawn(command: &mut Command) -> Killed {
        Killed(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Seconds between two memory samples.
const SAMPLE_EVERY: u64 = 5;
/// Seconds between the end of one chaos round and the next.
const CHAOS_EVERY: u64 = 45;
/// How long after a chaos round 5xx and stale answers are still excused.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    allowed_503: AtomicU64,
    violations: AtomicU64,
}

/// When Redis was last disturbed: 5xx and missed re-approvals are expected
/// until a grace period after it.
struct Chaos {
    calm_after: Mutex<Instant>,
}

impl Chaos {
    fn disturbed(&self) -> bool {
        Instant::now() < *self.calm_after.lock().unwrap()
    }

    fn disturb_until(&self, until: Instant) {
        *self.calm_after.lock().unwrap() = until;
    }
}

struct Ctx {
    http: reqwest::Client,
    issuers: [String; 2],
    resource: String,
    world: Mutex<World>,
    counters: Counters,
    chaos: Chaos,
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn violation(ctx: &Ctx, what: String) {
    ctx.counters.violations.fetch_add(1, Ordering::Relaxed);
    eprintln!("VIOLATION: {what}");
}

impl Ctx {
    async fn post(
        &self,
        base: &str,
        path: &str,
        auth: (&str, &str),
        form: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .post(format!("{base}{path}"))
            .basic_auth(auth.0, Some(auth.1))
            .form(form)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Some((status, body))
    }

    /// Checks a status: 5xx only as a 503 while Redis is disturbed.
    fn check_status(&self, what: &str, status: u16) -> bool {
        if status >= 500 {
            if status == 503 && self.chaos.disturbed() {
                self.counters.allowed_503.fetch_add(1, Ordering::Relaxed);
            } else {
                violation(self, format!("{what}: {status} outside a Redis outage"));
            }
            return false;
        }
        true
    }

    async fn login(&self, issuer: usize) {
        let form = [
            ("grant_type", "password"),
            ("username", USER.0),
            ("password", USER.1),
            ("scope", "read"),
        ];
        let Some((status, body)) = self
            .post(&self.issuers[issuer], "/oauth2/token", WEB, &form)
            .await
        else {
            return;
        };
        if status != 200 {
            violation(self, format!("login: {status} {body}"));
            return;
        }
        self.track(&body);
    }

    fn track(&self, body: &Value) {
        let access = body["access_token"].as_str().unwrap().to_owned();
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let refresh_exp = claims(&refresh)["exp"].as_u64().unwrap();
        let claims = claims(&access);
        let sid = claims["sid"].as_str().unwrap().to_owned();
        let mut world = self.world.lock().unwrap();
        world.refresh.insert(
            sid.clone(),
            Refresh {
                token: refresh,
                exp: refresh_exp,
            },
        );
        world.tokens.push(Tracked {
            access,
            jti: claims["jti"].as_str().unwrap().to_owned(),
            sid,
            exp: claims["exp"].as_u64().unwrap(),
            jti_revoked: false,
        });
    }

    fn pick(&self, n: u64) -> Option<Tracked> {
        let world = self.world.lock().unwrap();
        (!world.tokens.is_empty()).then(|| world.tokens[(n as usize) % world.tokens.len()].clone())
    }

    async fn refresh(&self, issuer: usize, n: u64) {
        let Some(token) = self.pick(n) else { return };
        // Take the refresh token out while it is in flight: no other worker
        // presents it again (that would be reuse and kill the session).
        let refresh = {
            let mut world = self.world.lock().unwrap();
            if world.dead_sessions.contains(&token.sid) {
                return;
            }
            match world.refresh.remove(&token.sid) {
                Some(refresh) => refresh.token,
                None => return,
            }
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ];
        let Some((status, body)) = self
            .post(&self.issuers[issuer], "/oauth2/token", WEB, &form)
            .await
        else {
            return;
        };
        if !self.check_status("refresh", status) {
            // A refresh that failed with a 503 may still have retired its
            // token (the marker is written when a paused Redis resumes), and
            // presenting it again would then be reuse: the session's fate is
            // unknown, so it is neither refreshed again nor judged.
            self.world.lock().unwrap().pending.insert(token.sid);
            return;
        }
        if status == 200 {
            self.track(&body);
        } else if body["error"] != "invalid_grant" {
            violation(self, format!("refresh: {status} {body}"));
        }
    }

    async fn revoke_access(&self, issuer: usize, n: u64) {
        let Some(token) = self.pick(n) else { return };
        if !self.world.lock().unwrap().pending.insert(token.jti.clone()) {
            return;
        }
        let form = [("token", token.access.as_str())];
        let answer = self
            .post(&self.issuers[issuer], "/oauth2/revoke", WEB, &form)
            .await;
        let mut world = self.world.lock().unwrap();
        if let Some((status, _)) = answer
            && self.check_status("revoke access", status)
            && status == 200
        {
            for tracked in world.tokens.iter_mut().filter(|t| t.jti == token.jti) {
                tracked.jti_revoked = true;
            }
            world.changed(&token.jti);
        }
        // A revoke with no answer or a 503 may or may not have been kept (a
        // paused Redis runs the queued script when it resumes): keep the
        // token out of judgement for good.
        if answer.is_some_and(|(status, _)| status < 500) {
            world.pending.remove(&token.jti);
        }
    }

    async fn revoke_session(&self, issuer: usize, n: u64) {
        let Some(token) = self.pick(n) else { return };
        let refresh = {
            let mut world = self.world.lock().unwrap();
            let Some(refresh) = world.refresh.remove(&token.sid) else {
                return;
            };
            world.pending.insert(token.sid.clone());
            refresh
        };
        let form = [("token", refresh.token.as_str())];
        let answer = self
            .post(&self.issuers[issuer], "/oauth2/revoke", WEB, &form)
            .await;
        let mut world = self.world.lock().unwrap();
        match answer {
            Some((status, _)) if self.check_status("revoke session", status) && status == 200 => {
                world.dead_sessions.insert(token.sid.clone());
                world.changed(&token.sid);
                world.pending.remove(&token.sid);
            }
            Some((status, _)) if status < 500 => {
                world.refresh.insert(token.sid.clone(), refresh);
                world.pending.remove(&token.sid);
            }
            // No answer or a 503: the session may or may not be revoked.
            _ => {}
        }
    }

    async fn reapprove(&self, issuer: usize, n: u64) {
        // Re-approvals that happen while a subscriber is reconnecting can be
        // missed by a resource server that saw Redis lose data (documented):
        // make them only while Redis is calm.
        if self.chaos.disturbed() {
            return;
        }
        let Some(token) = self.pick(n) else { return };
        if !token.jti_revoked || !self.world.lock().unwrap().pending.insert(token.jti.clone()) {
            return;
        }
        if self.reapprove_token(issuer, &token).await {
            self.world.lock().unwrap().pending.remove(&token.jti);
        }
    }

    /// Re-approves a revoked token; false when the outcome is unknown.
    async fn reapprove_token(&self, issuer: usize, token: &Tracked) -> bool {
        let Some((status, body)) = self
            .post(
                &self.issuers[issuer],
                "/oauth2/token",
                ADMIN,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "revokd:admin"),
                ],
            )
            .await
        else {
            return true;
        };
        if status != 200 {
            violation(self, format!("admin token: {status} {body}"));
            return true;
        }
        let admin = body["access_token"].as_str().unwrap().to_owned();
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(response) = self
            .http
            .delete(format!(
                "{}/admin/revocations/jti:{}",
                self.issuers[issuer], token.jti
            ))
            .bearer_auth(admin)
            .send()
            .await
        else {
            return false;
        };
        let status = response.status().as_u16();
        if !self.check_status("re-approve", status) {
            return false;
        }
        if status == 204 || status == 200 {
            let mut world = self.world.lock().unwrap();
            for tracked in world.tokens.iter_mut().filter(|t| t.jti == token.jti) {
                tracked.jti_revoked = false;
            }
            world.changed(&token.jti);
            if let Some(reapproved) = world.reapproved_since_save.as_mut() {
                reapproved.insert(token.jti.clone());
            }
        }
        true
    }

    /// Whether the token is still settled with the expected state: a change
    /// that started while it was being judged excuses a mismatch.
    fn still(&self, token: &Tracked, expected: bool) -> bool {
        let world = self.world.lock().unwrap();
        world.settled(token) && world.expected_active(token) == expected
    }

    /// Checks one token everywhere it can be checked right now. Revocations
    /// take milliseconds to propagate, so only tokens whose state has not
    /// changed for a while are judged: the final pass judges them all.
    async fn judge(&self, token: &Tracked, expected: bool) -> bool {
        let mut ok = true;
        for base in &self.issuers {
            let Some((status, body)) = self
                .post(
                    base,
                    "/oauth2/introspect",
                    WEB,
                    &[("token", token.access.as_str())],
                )
                .await
            else {
                continue;
            };
            self.check_status("introspect", status);
            if status == 200 && body["active"] != expected && self.still(token, expected) {
                violation(
                    self,
                    format!(
                        "introspect at {base}: active={} expected {expected}",
                        body["active"]
                    ),
                );
                ok = false;
            }
        }
        if !self.resource.is_empty() {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            if let Ok(response) = self
                .http
                .get(format!("{}/api/resource", self.resource))
                .bearer_auth(&token.access)
                .send()
                .await
            {
                let status = response.status().as_u16();
                let accepted = status == 200;
                if status != 503 && accepted != expected && self.still(token, expected) {
                    violation(
                        self,
                        format!("resource server: {status}, expected active={expected}"),
                    );
                    ok = false;
                }
            }
        }
        ok
    }
}

/// A cheap argon2id hash for the soak's user (8 KiB, one pass).
fn argon2_hash(password: &str) -> String {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let params = Params::new(8, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(password.as_bytes(), b"revokd-soak-salt")
        .unwrap()
        .to_string()
}

async fn wait_up(http: &reqwest::Client, url: &str) {
    for _ in 0..300 {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never came up");
}

/// Once a second, drops tokens about to expire from the world; every
/// [`SAMPLE_EVERY`] seconds, reads every process's memory and rules. Returns
/// the samples when the traffic ends.
async fn keep_the_books(
    ctx: Arc<Ctx>,
    watched: Vec<Watched>,
    started: Instant,
    deadline: Instant,
) -> (Vec<Sample>, Vec<Watched>) {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    while Instant::now() < deadline {
        tick.tick().await;
        let world_size = {
            let mut world = ctx.world.lock().unwrap();
            world.prune(revokd::clock::now_secs());
            world.size()
        };
        if ticks.is_multiple_of(SAMPLE_EVERY) {
            let sample = memory::sample(&ctx.http, &watched, started.elapsed()).await;
            println!(
                "soak: {}, run's own state {world_size} entries",
                memory::describe(&sample, &watched)
            );
            samples.push(sample);
        }
        ticks += 1;
    }
    (samples, watched)
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(600);
    let revokd = arg("--revokd").unwrap_or_else(|| "target/release/revokd".into());
    let resource_bin = arg("--resource-server");
    // Short lifetimes by default: rules expire within the run, so the live
    // rule count reaches a plateau and memory can be judged flat or not.
    let access_ttl: u64 = arg("--access-ttl")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let refresh_ttl: u64 = arg("--refresh-ttl")
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let topology = arg("--topology").unwrap_or_else(|| "single".into());
    let Some(kind) = Kind::parse(&topology) else {
        eprintln!("soak: --topology single|sentinel|cluster, not {topology}");
        return std::process::ExitCode::FAILURE;
    };
    let redis = Redis::start(kind);
    println!("soak: {}", redis.describe());
    let dir = std::env::temp_dir().join(format!("revokd-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = Command::new(&revokd)
        .args(["keygen", "--alg", "EdDSA"])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(dir.join("key.pem"), pem).unwrap();
    let hash = revokd::issuer::client_auth::sha256_secret_hash;
    let ports = [free_port(), free_port()];
    let issuer_url = format!("http://127.0.0.1:{}", ports[0]);
    let config = format!(
        r#"issuer = "{issuer_url}"

[tokens]
access_ttl = "{access_ttl}s"
refresh_ttl = "{refresh_ttl}s"

# One client drives all the traffic: lift its rate limit.
[limits]
rate_per_second = 1000000
burst = 1000000
peer_rate_per_second = 1000000
peer_burst = 1000000

[[signing_keys]]
kid = "soak"
private_key_file = "{key}"

[[clients]]
id = "{web}"
secret_hash = "{web_hash}"
grants = ["password", "refresh_token", "client_credentials"]
scopes = ["read"]
audience = ["api"]

[[clients]]
id = "{admin}"
secret_hash = "{admin_hash}"
grants = ["client_credentials"]
scopes = ["revokd:admin"]

[[users]]
username = "{user}"
password_hash = "{user_hash}"

{store}"#,
        key = dir.join("key.pem").display(),
        web = WEB.0,
        web_hash = hash(WEB.1),
        admin = ADMIN.0,
        admin_hash = hash(ADMIN.1),
        user = USER.0,
        user_hash = argon2_hash(USER.1),
        store = redis.store_toml(),
    );
    std::fs::write(dir.join("revokd.toml"), config).unwrap();

    let mut processes = Vec::new();
    let mut issuers = Vec::new();
    for port in ports {
        processes.push(Killed::spawn(
            Command::new(&revokd)
                .args(["serve", "--config"])
                .arg(dir.join("revokd.toml"))
                .args(["--listen", &format!("127.0.0.1:{port}")]),
        ));
        issuers.push(format!("http://127.0.0.1:{port}"));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap();
    for issuer in &issuers {
        wait_up(&http, &format!("{issuer}/readyz")).await;
    }
    let mut resource = String::new();
    if let Some(bin) = resource_bin {
        let port = free_port();
        processes.push(Killed::spawn(
            Command::new(bin)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--issuer", &issuer_url])
                .args(redis.resource_args()),
        ));
        resource = format!("http://127.0.0.1:{port}");
        wait_up(&http, &format!("{resource}/readyz")).await;
    }
    let ctx = Arc::new(Ctx {
        http,
        issuers: [issuers[0].clone(), issuers[1].clone()],
        resource,
        world: Mutex::new(World::default()),
        counters: Counters::default(),
        chaos: Chaos {
            calm_after: Mutex::new(Instant::now()),
        },
    });
    // Warm up, then take the "before" memory reading.
    for i in 0..50 {
        ctx.login(i % 2).await;
    }
    let rss_before: Vec<u64> = processes
        .iter()
        .map(|p| memory::rss_kib(p.0.id()))
        .collect();
    let watched: Vec<Watched> = processes
        .iter()
        .zip(ctx.issuers.iter().chain(std::iter::once(&ctx.resource)))
        .zip(["issuer-a", "issuer-b", "resource"])
        .map(|((process, base), name)| Watched {
            name,
            pid: process.0.id(),
            base: base.clone(),
        })
        .collect();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let sampler = tokio::spawn(keep_the_books(ctx.clone(), watched, started, deadline));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8u64 {
        let ctx = ctx.clone();
        workers.spawn(async move {
            let mut n = worker.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            while Instant::now() < deadline {
                n ^= n << 13;
                n ^= n >> 7;
                n ^= n << 17;
                let issuer = (n % 2) as usize;
                match (n >> 8) % 20 {
                    0..=3 => ctx.login(issuer).await,
                    4..=9 => {
                        if let Some(token) = ctx.pick(n >> 16) {
                            let (expected, settled) = {
                                let world = ctx.world.lock().unwrap();
                                (world.expected_active(&token), world.settled(&token))
                            };
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            let world_now = {
                                let world = ctx.world.lock().unwrap();
                                (world.expected_active(&token), world.settled(&token))
                            };
                            // While Redis is disturbed, a replica may serve its last
                            // known list (fail_open): only the final pass judges then.
                            if settled && world_now == (expected, true) && !ctx.chaos.disturbed() {
                                ctx.judge(&token, expected).await;
                            }
                        }
                    }
                    10..=13 => ctx.refresh(issuer, n >> 16).await,
                    14..=16 => ctx.revoke_access(issuer, n >> 16).await,
                    17..=18 => ctx.revoke_session(issuer, n >> 16).await,
                    _ => ctx.reapprove(issuer, n >> 16).await,
                }
            }
        });
    }

    // Chaos, on a blocking thread (rounds kill, pause and poll processes):
    // CHAOS_EVERY seconds after the last round, the topology's next round.
    let chaos = {
        let ctx = ctx.clone();
        let mut redis = redis;
        tokio::task::spawn_blocking(move || {
            let mut round = 0u32;
            while Instant::now() + Duration::from_secs(CHAOS_EVERY + 25) < deadline {
                std::thread::sleep(Duration::from_secs(CHAOS_EVERY));
                round += 1;
                ctx.chaos
                    .disturb_until(Instant::now() + Duration::from_secs(3600));
                let at = started.elapsed().as_secs();
                // Re-approvals answered from just before a SAVE on may be
                // forgotten by a later restart from that RDB.
                let before_save = || {
                    ctx.world.lock().unwrap().reapproved_since_save = Some(Default::default());
                };
                let (what, effect) = redis.round(round, &before_save);
                match effect {
                    Effect::None => {}
                    Effect::RestoredOlder => {
                        let forgotten = ctx.world.lock().unwrap().forget_reapprovals_since_save();
                        eprintln!(
                            "chaos {round}: {forgotten} re-approvals answered since the SAVE are no longer judged"
                        );
                    }
                }
                eprintln!("chaos {round} (t={at} s): {what}");
                ctx.chaos.disturb_until(Instant::now() + SETTLE);
            }
            (redis, round, started.elapsed())
        })
    };
    // The topology stays up (held here) until the final pass is done.
    let (_redis, round, chaos_over) = chaos.await.unwrap();
    while let Some(result) = workers.join_next().await {
        result.unwrap();
    }

    let (samples, watched) = sampler.await.unwrap();

    // Final pass: everything has settled; every token is judged.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tokens: Vec<(Tracked, bool)> = {
        let mut world = ctx.world.lock().unwrap();
        world.prune(revokd::clock::now_secs());
        world
            .tokens
            .iter()
            .filter(|t| world.settled(t))
            .map(|t| (t.clone(), world.expected_active(t)))
            .collect()
    };
    let revoked = tokens.iter().filter(|(_, active)| !active).count();
    let mut wrong = 0;
    for (token, expected) in &tokens {
        if !ctx.judge(token, *expected).await {
            wrong += 1;
        }
    }
    let rss_after: Vec<u64> = processes
        .iter()
        .map(|p| memory::rss_kib(p.0.id()))
        .collect();
    for base in ctx
        .issuers
        .iter()
        .chain(std::iter::once(&ctx.resource))
        .filter(|b| !b.is_empty())
    {
        if let Ok(response) = ctx.http.get(format!("{base}/metrics")).send().await {
            let text = response.text().await.unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("revokd_denylist_rules")
                        || l.starts_with("revokd_denylist_resyncs")
                        || l.starts_with("revokd_redis_connected")
                        || l.starts_with("revokd_denylist_staleness")
                        || l.starts_with("revokd_denylist_events_applied")
                })
                .collect();
            println!("soak: {base} {lines:?}");
        }
    }
    let counters = &ctx.counters;
    println!(
        "soak: {seconds} s, {} requests, {} tokens ({revoked} revoked), {} chaos rounds, {} documented 503s, {} violations, {wrong} tokens judged wrong at the end",
        counters.requests.load(Ordering::Relaxed),
        tokens.len(),
        round,
        counters.allowed_503.load(Ordering::Relaxed),
        counters.violations.load(Ordering::Relaxed),
    );
    println!(
        "soak: RSS KiB before {rss_before:?} after {rss_after:?} (issuer, issuer[, resource server])"
    );
    // Memory is judged over the steady window: from when the first rules
    // could expire at the plateau, to shortly after the last chaos round
    // (so both halves hold chaos rounds).
    let steady_from = Duration::from_secs(access_ttl + refresh_ttl);
    let steady_until = chaos_over + Duration::from_secs(30);
    let flat = memory::verdict(samples, &watched, steady_from..=steady_until);
    let _ = std::fs::remove_dir_all(&dir);
    if counters.violations.load(Ordering::Relaxed) == 0 && wrong == 0 && flat {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
