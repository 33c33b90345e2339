//! The traffic: eight workers log in at either issuer, call the resource
//! server, introspect, refresh, revoke access or refresh tokens and
//! re-approve revoked ones, and record every answered change in the world.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chaos::Chaos;
use crate::deployment::{ADMIN, USER, WEB};
use crate::world::{Refresh, Tracked, World};

/// What the run counted.
#[derive(Default)]
pub(crate) struct Counters {
    /// Requests sent.
    pub(crate) requests: AtomicU64,
    /// 503s excused by a Redis outage.
    pub(crate) allowed_503: AtomicU64,
    /// Answers that contradict what the run knows.
    pub(crate) violations: AtomicU64,
}

/// Everything the workers, the books and the chaos thread share.
pub(crate) struct Ctx {
    pub(crate) http: reqwest::Client,
    /// The issuers' base URLs.
    pub(crate) issuers: [String; 2],
    /// The resource server's base URL (empty without one).
    pub(crate) resource: String,
    pub(crate) world: Mutex<World>,
    pub(crate) counters: Counters,
    pub(crate) chaos: Chaos,
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

/// Counts and prints a violation.
pub(crate) fn violation(ctx: &Ctx, what: String) {
    ctx.counters.violations.fetch_add(1, Ordering::Relaxed);
    eprintln!("VIOLATION: {what}");
}

impl Ctx {
    pub(crate) async fn post(
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
    pub(crate) fn check_status(&self, what: &str, status: u16) -> bool {
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

    pub(crate) async fn login(&self, issuer: usize) {
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

    pub(crate) fn pick(&self, n: u64) -> Option<Tracked> {
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
}

/// One worker's loop until `deadline`: a pseudo-random mix (xorshift,
/// seeded by `worker`) of logins, checks, refreshes, revocations and
/// re-approvals.
pub(crate) async fn work(ctx: &Ctx, worker: u64, deadline: Instant) {
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
}
