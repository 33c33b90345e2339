//! Judging tokens: each one the run follows is checked at both issuers
//! (introspection) and at the resource server against what the world says
//! it should be, during the run and in the final pass.

use std::sync::atomic::Ordering;

use crate::deployment::WEB;
use crate::traffic::{Ctx, violation};
use crate::world::Tracked;

impl Ctx {
    /// Whether the token is still settled with the expected state: a change
    /// that started while it was being judged excuses a mismatch.
    fn still(&self, token: &Tracked, expected: bool) -> bool {
        let world = self.world.lock().unwrap();
        world.settled(token) && world.expected_active(token) == expected
    }

    /// Checks one token everywhere it can be checked right now. Revocations
    /// take milliseconds to propagate, so only tokens whose state has not
    /// changed for a while are judged: the final pass judges them all.
    pub(crate) async fn judge(&self, token: &Tracked, expected: bool) -> bool {
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

/// The final pass, once everything has settled: every settled token the
/// world still follows is judged. Returns how many were judged, how many of
/// them are revoked, and how many were judged wrong.
pub(crate) async fn final_pass(ctx: &Ctx) -> (usize, usize, usize) {
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
    (tokens.len(), revoked, wrong)
}
