//! Keeps a [`Denylist`] in sync with Redis: SUBSCRIBE, then an atomic
//! snapshot, then events in seq order; any doubt means a resync. The
//! decisions (which event applies, what a snapshot proves, when the store's
//! history forked) are [`crate::follow`]'s, free of I/O; this module does
//! the I/O around them.
//!
//! One *session* is one connection's life:
//!
//! 1. `SUBSCRIBE` to the events channel (on the topology's subscription
//!    node), so nothing published from now on is missed;
//! 2. read a snapshot (seq, head, the log since our position, every rule)
//!    atomically from the master and let the follower apply it;
//! 3. apply buffered and new events through the follower: duplicates are
//!    ignored, the next one applies when it chains from our head, anything
//!    else ends the session;
//! 4. every `check_interval`, read seq and head from the master: equal to
//!    ours proves the denylist in sync (staleness drops to zero); ahead
//!    twice in a row means events were lost; lower, or equal with another
//!    head, means the history forked.
//!
//! A gap, a fork, an undecodable event, a dropped connection (including
//! Redis disconnecting a slow consumer, a node that died or lost its slots)
//! or a failed check ends the session with a reason (the
//! `revokd_denylist_resyncs_total{reason}` label); the next one starts after
//! a capped exponential backoff with jitter.
//!
//! The subscriber is also the one maintainer of the denylist it feeds
//! (expiry, filter rebuilds: [`crate::denylist::maintainer`]), every
//! `maintain_interval`, connected or not.
//!
//! A subscriber that restores (an issuer's, whose denylist lists its rules)
//! re-writes every live rule it holds that a snapshot lacks, so a Redis that
//! came back empty or older gets back what it forgot.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use crate::clock;
use crate::denylist::{Denylist, Maintainer};
use crate::event::Event;
use crate::event::Head;
use crate::follow::{Checked, Follower, HISTORY_WINDOW, Lost, Relation, head_at};
use crate::metrics::DenylistMetrics;
use crate::store::redis::{Position, RedisStore, RedisStoreError};

/// How a subscriber paces itself.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// How often `GET seq` proves the denylist in sync.
    pub check_interval: Duration,
    /// First reconnect delay; doubled per failure up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// How often expired rules are swept from the denylist. The subscriber
    /// is the one maintainer of the denylist it feeds (see
    /// [`crate::denylist::maintainer`]): nothing else should sweep it.
    pub maintain_interval: Duration,
    /// Re-write the denylist's rules to a Redis that lost its data (issuers;
    /// needs a denylist made with [`Denylist::listing`]).
    pub restore: bool,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            check_interval: Duration::from_secs(1),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            maintain_interval: Duration::from_secs(1),
            restore: false,
        }
    }
}

/// Scripts in flight while restoring rules into an emptied Redis.
const RESTORE_IN_FLIGHT: usize = 64;

/// Why a session ended: the `reason` label of the resync counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    /// Connecting, subscribing or reading the snapshot failed.
    Connect,
    /// The pub/sub connection closed (Redis restarted, or dropped a slow consumer).
    Disconnected,
    /// An event arrived with a seq past the next one.
    Gap,
    /// An event could not be decoded.
    Decode,
    /// The check stayed ahead of the applied seq: events were lost silently.
    Behind,
    /// The store's history is not the one followed (Redis came back older
    /// or empty, or a replica that missed writes was promoted).
    Fork,
    /// The periodic check failed.
    Check,
    /// Rules were restored into a Redis that lacked them; read it again.
    Restored,
}

impl From<Lost> for Resync {
    fn from(lost: Lost) -> Self {
        match lost {
            Lost::Gap => Resync::Gap,
            Lost::Fork => Resync::Fork,
            Lost::Behind => Resync::Behind,
        }
    }
}

impl Resync {
    fn label(self) -> &'static str {
        match self {
            Resync::Connect => "connect",
            Resync::Disconnected => "disconnected",
            Resync::Gap => "gap",
            Resync::Decode => "decode",
            Resync::Behind => "behind",
            Resync::Fork => "fork",
            Resync::Check => "check",
            Resync::Restored => "restored",
        }
    }
}

/// What a subscriber shares with its handle.
#[derive(Debug)]
struct SyncState {
    /// Milliseconds since the epoch when the denylist last proved in sync; 0 never.
    in_sync_at_ms: AtomicU64,
    /// Seq of the last event applied.
    last_seq: AtomicU64,
    /// The same, for waiters ([`Subscriber::wait_applied`]).
    applied: tokio::sync::watch::Sender<u64>,
    /// A copy of the follower's recent positions, so a waiter can tell its
    /// event from another history's event with the same seq. Locked once
    /// per applied event and per sync, never on the check path.
    positions: std::sync::Mutex<VecDeque<(u64, Head)>>,
    /// Whether a session is up.
    connected: AtomicBool,
}

/// A running subscriber. Cheap to clone; the background task stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Subscriber {
    state: Arc<SyncState>,
    _guard: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("state", &self.state)
            .finish()
    }
}

impl Subscriber {
    /// Starts the subscriber task on the current tokio runtime, following
    /// `store`'s topology.
    pub fn spawn(
        store: RedisStore,
        denylist: Denylist,
        config: SubscriberConfig,
        metrics: Option<DenylistMetrics>,
    ) -> Subscriber {
        let state = Arc::new(SyncState {
            in_sync_at_ms: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            applied: tokio::sync::watch::Sender::new(0),
            positions: std::sync::Mutex::new(VecDeque::new()),
            connected: AtomicBool::new(false),
        });
        let task = Task {
            follower: Follower::new(config.restore),
            store,
            maintainer: Maintainer::new(denylist.clone()),
            denylist,
            config,
            metrics,
            state: state.clone(),
        };
        let handle = tokio::spawn(task.run());
        Subscriber {
            state,
            _guard: Arc::new(AbortOnDrop(handle)),
        }
    }

    /// Time since the denylist last proved it was in sync with Redis
    /// (`Duration::MAX` before the first sync).
    pub fn staleness(&self) -> Duration {
        staleness(&self.state)
    }

    /// Whether the denylist ever completed a sync. Before that it knows
    /// nothing of revocations: every token is unknown, whatever the
    /// staleness policy says for later.
    pub fn has_synced(&self) -> bool {
        self.state.in_sync_at_ms.load(Ordering::Acquire) != 0
    }

    /// Whether the denylist proved in sync within `bound`.
    pub fn is_fresh(&self, bound: Duration) -> bool {
        self.staleness() <= bound
    }

    /// The seq of the last event applied.
    pub fn last_seq(&self) -> u64 {
        self.state.last_seq.load(Ordering::Acquire)
    }

    /// Waits until this subscriber has applied the event at `position` in
    /// the history it follows, for at most `bound`; `false` when it did not
    /// (not in time, or it follows a history with another event at that
    /// seq). An issuer answers a change only once its own denylist took it
    /// this way, in the order of the history it follows.
    pub async fn wait_applied(&self, position: Position, bound: Duration) -> bool {
        let mut applied = self.state.applied.subscribe();
        let reached = tokio::time::timeout(bound, applied.wait_for(|&last| last >= position.seq));
        if !reached.await.is_ok_and(|reached| reached.is_ok()) {
            return false;
        }
        let positions = self
            .state
            .positions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        head_at(&positions, position.seq) == Some(position.head)
    }

    /// Whether a session with Redis is up.
    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::Acquire)
    }
}

impl SyncState {
    /// Records the follower's position after a sync or an event.
    fn publish(&self, follower: &Follower, synced: bool) {
        {
            let mut positions = self
                .positions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if synced {
                positions.clone_from(follower.recent_positions());
            } else {
                if positions.len() == HISTORY_WINDOW {
                    positions.pop_front();
                }
                positions.push_back((follower.last_seq(), follower.head()));
            }
        }
        let seq = follower.last_seq();
        self.last_seq.store(seq, Ordering::Release);
        self.applied.send_replace(seq);
    }
}

fn staleness(state: &SyncState) -> Duration {
    match state.in_sync_at_ms.load(Ordering::Acquire) {
        0 => Duration::MAX,
        at => Duration::from_millis(clock::now_millis().saturating_sub(at)),
    }
}

struct Task {
    store: RedisStore,
    denylist: Denylist,
    /// The denylist's one maintainer.
    maintainer: Maintainer,
    config: SubscriberConfig,
    metrics: Option<DenylistMetrics>,
    state: Arc<SyncState>,
    /// Where the denylist stands in the store's history.
    follower: Follower,
}

impl Task {
    async fn run(mut self) {
        let mut failures = 0u32;
        let mut maintain = tokio::time::interval(self.config.maintain_interval);
        loop {
            let started = tokio::time::Instant::now();
            let reason = self.session().await;
            self.state.connected.store(false, Ordering::Release);
            if let Some(metrics) = &self.metrics {
                metrics.redis_connected.set(0);
                metrics.resyncs.with_label_values(&[reason.label()]).inc();
            }
            tracing::warn!(reason = reason.label(), "denylist resync");
            // A session that ran a while was healthy: start the backoff over.
            if started.elapsed() > self.config.max_backoff {
                failures = 0;
            }
            let delay = backoff(&self.config, failures);
            failures = failures.saturating_add(1);
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    _ = maintain.tick() => self.maintain(),
                }
            }
        }
    }

    /// One connection's life; returns why it ended.
    async fn session(&mut self) -> Resync {
        let timeout = self.config.check_interval.max(Duration::from_secs(1));
        let pubsub = tokio::time::timeout(timeout, async {
            let client = self.store.pubsub_client().await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&self.store.key_names().channel).await?;
            Ok::<_, RedisStoreError>(pubsub)
        })
        .await;
        let Ok(Ok(pubsub)) = pubsub else {
            return Resync::Connect;
        };
        let mut events = pubsub.into_on_message();
        let reply = match self.store.snapshot(self.follower.position()).await {
            Ok(reply) => reply,
            Err(_) => return Resync::Connect,
        };
        let (seq, head) = (reply.seq, reply.head);
        let synced = self
            .follower
            .on_sync(reply, &self.denylist, clock::now_secs());
        self.state.publish(&self.follower, true);
        let merged = match synced.relation {
            Relation::First | Relation::Continued => None,
            Relation::Forked => Some("forked"),
            Relation::Unproven => Some("unproven"),
        };
        if let Some(relation) = merged {
            tracing::warn!(
                relation, seq, %head, to_restore = synced.restore.len(),
                "redis holds another history than this denylist followed: merged, nothing dropped"
            );
            if let Some(metrics) = &self.metrics {
                metrics.history_merges.with_label_values(&[relation]).inc();
            }
        }
        if !synced.restore.is_empty() {
            // Close the subscription first: the restore publishes an event
            // per rule, and a subscription nobody reads would buffer them
            // all. The next session reads the restored history afresh.
            drop(events);
            return self.restore(synced.restore).await;
        }
        self.mark_in_sync(clock::now_millis());
        self.state.connected.store(true, Ordering::Release);
        if let Some(metrics) = &self.metrics {
            metrics.redis_connected.set(1);
        }
        let mut check = tokio::time::interval(self.config.check_interval);
        let mut maintain = tokio::time::interval(self.config.maintain_interval);
        loop {
            tokio::select! {
                message = events.next() => {
                    let Some(message) = message else { return Resync::Disconnected };
                    if let Err(reason) = self.apply_message(message.get_payload_bytes()) {
                        return reason;
                    }
                }
                _ = check.tick() => {
                    let Ok((seq, head)) = self.store.position().await else {
                        return Resync::Check;
                    };
                    match self.follower.on_check(seq, head, clock::now_millis()) {
                        Ok(Checked::InSyncAt(at_ms)) => self.mark_in_sync(at_ms),
                        Ok(Checked::Waiting) => {}
                        Err(lost) => return lost.into(),
                    }
                }
                _ = maintain.tick() => self.maintain(),
            }
        }
    }

    /// Re-writes `rules` (held here, missing from Redis) into Redis.
    async fn restore(&mut self, rules: Vec<crate::rule::Rule>) -> Resync {
        let count = rules.len();
        // 64 scripts in flight: Redis pipelines them, so a large rule set is
        // back in seconds (sequential calls would take minutes), shortening
        // the window in which Redis holds only part of it.
        let result = futures_util::stream::iter(rules)
            .map(|rule| {
                let store = self.store.clone();
                async move { store.revoke(&rule, clock::now_millis()).await }
            })
            .buffer_unordered(RESTORE_IN_FLIGHT)
            .try_for_each(|_| async { Ok(()) })
            .await;
        match result {
            Ok(()) => {
                tracing::warn!(rules = count, "restored rules redis had lost");
                if let Some(metrics) = &self.metrics {
                    metrics.restored_rules.inc_by(count as u64);
                }
                Resync::Restored
            }
            Err(error) => {
                let error = crate::error::Chain(&error);
                tracing::warn!(%error, "restoring rules into redis failed; will retry");
                Resync::Connect
            }
        }
    }

    fn apply_message(&mut self, payload: &[u8]) -> Result<(), Resync> {
        let event = Event::decode(payload).map_err(|_| Resync::Decode)?;
        if !self.follower.on_event(&event, &self.denylist)? {
            return Ok(());
        }
        self.state.publish(&self.follower, false);
        if let Some(metrics) = &self.metrics {
            metrics.events_applied.inc();
            let delay_ms = clock::now_millis().saturating_sub(event.published_at_ms);
            metrics.propagation.observe(delay_ms as f64 / 1000.0);
        }
        Ok(())
    }

    /// Records that the denylist was in sync with Redis at `at_ms`.
    fn mark_in_sync(&self, at_ms: u64) {
        self.state
            .in_sync_at_ms
            .fetch_max(at_ms.max(1), Ordering::AcqRel);
        self.publish_gauges();
    }

    /// A maintenance pass (with the maintainer's slack behind the clock),
    /// and the gauges it moves.
    fn maintain(&self) {
        self.maintainer.run(clock::now_secs());
        self.publish_gauges();
    }

    fn publish_gauges(&self) {
        if let Some(metrics) = &self.metrics {
            let staleness = staleness(&self.state);
            metrics.staleness.set(if staleness == Duration::MAX {
                f64::INFINITY
            } else {
                staleness.as_secs_f64()
            });
        }
    }
}

/// The delay before reconnect attempt `failures + 1`: exponential, capped,
/// with up to 50 % jitter so many subscribers do not reconnect in lockstep.
fn backoff(config: &SubscriberConfig, failures: u32) -> Duration {
    let exponential = config
        .min_backoff
        .saturating_mul(2u32.saturating_pow(failures.min(16)));
    let capped = exponential.min(config.max_backoff);
    let mut byte = [0u8; 1];
    let jitter = if crate::crypto::fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0 * 0.5
    } else {
        0.25
    };
    capped.mul_f64(1.0 - jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = SubscriberConfig::default();
        let first = backoff(&config, 0);
        assert!(first <= config.min_backoff && first >= config.min_backoff / 2);
        let late = backoff(&config, 30);
        assert!(late <= config.max_backoff && late >= config.max_backoff / 2);
    }
}
