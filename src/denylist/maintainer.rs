//! Who maintains a denylist, and with what slack.
//!
//! Maintenance ([`Denylist::maintain`]: drop expired rules, rebuild stale
//! filters) has exactly one owner per denylist, the code that feeds it:
//!
//! - a denylist fed by a [`Subscriber`](crate::subscriber::Subscriber)
//!   (resource servers, issuers on Redis) is maintained by that subscriber,
//!   every `maintain_interval`, between events, on its own task;
//! - a denylist nobody subscribes for (the issuer's in-memory store) is
//!   maintained by a task from [`Maintainer::spawn`], started by whoever
//!   built it (`revokd serve` without Redis).
//!
//! Both go through a [`Maintainer`], so both sweep [`EXPIRY_SLACK_SECS`]
//! behind the clock: a reader whose clock lags a little never sees a rule
//! vanish that it still considers live. The slack costs nothing else: a
//! rule past its `expires_at` is not in force whether or not it was swept.

use std::future::Future;
use std::time::Duration;

use super::{Denylist, Maintenance};

/// How far behind the clock rules are swept, in seconds.
pub const EXPIRY_SLACK_SECS: u64 = 2;

/// Maintains one denylist (see the module documentation for who owns one).
#[derive(Clone)]
pub struct Maintainer {
    denylist: Denylist,
}

impl Maintainer {
    /// The maintainer of `denylist`.
    pub fn new(denylist: Denylist) -> Maintainer {
        Maintainer { denylist }
    }

    /// One pass at `now` (seconds since the epoch): rules that expired
    /// [`EXPIRY_SLACK_SECS`] or more before `now` are dropped, and the
    /// filters rebuilt if they are stale.
    pub fn run(&self, now: u64) -> Maintenance {
        let done = self
            .denylist
            .maintain(now.saturating_sub(EXPIRY_SLACK_SECS));
        if done.expired > 0 || done.rebuilt {
            tracing::debug!(
                expired = done.expired,
                rebuilt = done.rebuilt,
                "denylist maintained"
            );
        }
        done
    }

    /// Spawns the task that runs a pass every `period` on the system clock
    /// until `shutdown` resolves. Only for a denylist no subscriber feeds.
    pub fn spawn(
        self,
        period: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tick.tick() => {
                        self.run(crate::clock::now_secs());
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{RevokedBefore, Rule, RuleKey};

    fn rule(jti: &str, expires_at: u64) -> Rule {
        Rule {
            key: RuleKey::Jti(jti.to_owned()),
            revoked_before: RevokedBefore::All,
            expires_at,
        }
    }

    #[test]
    fn rules_are_swept_only_past_the_slack() {
        let denylist = Denylist::new();
        let now = 1_000;
        denylist.apply(&rule("just-expired", now - EXPIRY_SLACK_SECS + 1));
        denylist.apply(&rule("long-expired", now - EXPIRY_SLACK_SECS));
        denylist.apply(&rule("live", now + 60));
        let done = Maintainer::new(denylist.clone()).run(now);
        assert_eq!(done.expired, 1, "only the rule past the slack goes");
        // A reader lagging by less than the slack still finds the rule it
        // considers live.
        let lagging = now - EXPIRY_SLACK_SECS;
        assert!(
            denylist
                .get(&RuleKey::Jti("just-expired".into()), lagging)
                .is_some()
        );
        assert_eq!(denylist.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_spawned_task_sweeps_until_shutdown() {
        let denylist = Denylist::new();
        let long_ago = crate::clock::now_secs() - 60;
        denylist.apply(&rule("expired", long_ago));
        assert_eq!(denylist.len(), 1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = Maintainer::new(denylist.clone()).spawn(Duration::from_secs(5), async {
            let _ = stopped.await;
        });
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(denylist.len(), 0, "swept");
        assert!(!task.is_finished());
        let _ = stop.send(());
        task.await.unwrap();
    }
}
