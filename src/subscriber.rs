//! Keeps a [`Denylist`] in sync with Redis: SUBSCRIBE, then an atomic
//! snapshot, then events in seq order; any doubt means a resync.
//!
//! One *session* is one connection's life:
//!
//! 1. `SUBSCRIBE` to the events channel, so nothing published from now on is
//!    missed (it waits in the connection's buffer);
//! 2. read a snapshot (seq + every rule) atomically and apply it;
//! 3. apply buffered and new events: `seq <= last` is a duplicate and is
//!    ignored, `seq == last + 1` is applied, anything else is a gap;
//! 4. every `check_interval`, `GET seq`: equal to the last applied seq proves
//!    the denylist in sync (staleness drops to zero); behind twice in a row
//!    means events were lost; lower means Redis lost data.
//!
//! A gap, an undecodable event, a dropped connection (including Redis
//! disconnecting a slow consumer) or a failed check ends the session with a
//! reason (the `revokd_denylist_resyncs_total{reason}` label); the next one
//! starts after a capped exponential backoff with jitter.
//!
//! Redis can come back empty (a restart without persistence, a failover to a
//! replica that lost writes). The dataset's epoch tells: when it changed or
//! vanished, the snapshot is *merged* into the denylist instead of replacing
//! it, so no revocation comes back to life because Redis forgot it; a
//! subscriber that restores (an issuer's, whose denylist lists its rules)
//! then re-writes every live rule it holds into Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use crate::clock;
use crate::denylist::Denylist;
use crate::event::{Change, Event};
use crate::metrics::DenylistMetrics;
use crate::store::redis::{EpochSnapshot, RedisStore, RedisStoreError};

/// How a subscriber paces itself.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// How often `GET seq` proves the denylist in sync.
    pub check_interval: Duration,
    /// First reconnect delay; doubled per failure up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// How often expired rules are swept from the denylist.
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
    /// `GET seq` stayed ahead of the applied seq: events were lost silently.
    Behind,
    /// `GET seq` went backwards or the epoch changed: Redis lost data.
    Reset,
    /// The periodic `GET seq` failed.
    Check,
    /// Rules were restored into an emptied Redis; read it again.
    Restored,
}

impl Resync {
    fn label(self) -> &'static str {
        match self {
            Resync::Connect => "connect",
            Resync::Disconnected => "disconnected",
            Resync::Gap => "gap",
            Resync::Decode => "decode",
            Resync::Behind => "behind",
            Resync::Reset => "reset",
            Resync::Check => "check",
            Resync::Restored => "restored",
        }
    }
}

/// The outcome of applying a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// The denylist is in sync with Redis as of the snapshot's seq.
    InSync,
    /// Redis lost data and this subscriber restores: re-write its rules.
    NeedsRestore,
}

/// What a subscriber shares with its handle.
#[derive(Debug, Default)]
struct SyncState {
    /// Milliseconds since the epoch when the denylist last proved in sync; 0 never.
    in_sync_at_ms: AtomicU64,
    /// Seq of the last event applied.
    last_seq: AtomicU64,
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
    /// Starts the subscriber task on the current tokio runtime.
    pub fn spawn(
        client: redis::Client,
        store: RedisStore,
        denylist: Denylist,
        config: SubscriberConfig,
        metrics: Option<DenylistMetrics>,
    ) -> Subscriber {
        let state = Arc::new(SyncState::default());
        let task = Task {
            client,
            store,
            denylist,
            config,
            metrics,
            state: state.clone(),
            epoch: None,
            synced_once: false,
            trust_snapshots: true,
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

    /// Whether the denylist proved in sync within `bound`.
    pub fn is_fresh(&self, bound: Duration) -> bool {
        self.staleness() <= bound
    }

    /// The seq of the last event applied.
    pub fn last_seq(&self) -> u64 {
        self.state.last_seq.load(Ordering::Acquire)
    }

    /// Whether a session with Redis is up.
    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::Acquire)
    }
}

fn staleness(state: &SyncState) -> Duration {
    match state.in_sync_at_ms.load(Ordering::Acquire) {
        0 => Duration::MAX,
        at => Duration::from_millis(clock::now_millis().saturating_sub(at)),
    }
}

struct Task {
    client: redis::Client,
    store: RedisStore,
    denylist: Denylist,
    config: SubscriberConfig,
    metrics: Option<DenylistMetrics>,
    state: Arc<SyncState>,
    /// The epoch of the dataset the denylist was last in sync with.
    epoch: Option<String>,
    /// Whether a snapshot was ever applied.
    synced_once: bool,
    /// Whether a snapshot of the same epoch may replace the rule set (false
    /// once Redis lost data under a subscriber that does not restore).
    trust_snapshots: bool,
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
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.store.keys().channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let Ok(Ok(pubsub)) = pubsub else {
            return Resync::Connect;
        };
        let mut events = pubsub.into_on_message();
        let snapshot = match self.store.snapshot().await {
            Ok(snapshot) => snapshot,
            Err(_) => return Resync::Connect,
        };
        if self.apply_snapshot(snapshot) == Applied::NeedsRestore {
            // Close the subscription first: the restore publishes an event
            // per rule, and a subscription nobody reads would buffer them
            // all. The next session reads the restored dataset afresh.
            drop(events);
            return self.restore().await;
        }
        self.state.connected.store(true, Ordering::Release);
        if let Some(metrics) = &self.metrics {
            metrics.redis_connected.set(1);
        }
        let mut check = tokio::time::interval(self.config.check_interval);
        let mut maintain = tokio::time::interval(self.config.maintain_interval);
        // A seq `GET seq` saw ahead of the applied one, and when: reaching it
        // by the next check proves we were in sync as of then; still short
        // of it means the events in between were lost.
        let mut awaited: Option<(u64, u64)> = None;
        loop {
            tokio::select! {
                message = events.next() => {
                    let Some(message) = message else { return Resync::Disconnected };
                    if let Err(reason) = self.apply_message(message.get_payload_bytes()) {
                        return reason;
                    }
                }
                _ = check.tick() => {
                    let seq = match self.store.seq().await {
                        Ok(seq) => seq,
                        Err(_) => return Resync::Check,
                    };
                    let last = self.state.last_seq.load(Ordering::Acquire);
                    if seq < last {
                        return Resync::Reset;
                    }
                    let now_ms = clock::now_millis();
                    if seq == last {
                        self.mark_in_sync(now_ms);
                        awaited = None;
                        continue;
                    }
                    if let Some((target, seen_at_ms)) = awaited {
                        if last < target {
                            return Resync::Behind;
                        }
                        self.mark_in_sync(seen_at_ms);
                    }
                    awaited = Some((seq, now_ms));
                }
                _ = maintain.tick() => self.maintain(),
            }
        }
    }

    /// Applies a snapshot; says whether Redis lost data that this
    /// subscriber must restore before it can follow Redis again.
    fn apply_snapshot(&mut self, snapshot: EpochSnapshot) -> Applied {
        let EpochSnapshot { snapshot, epoch } = snapshot;
        let same_dataset = match (&self.epoch, &epoch) {
            (Some(known), Some(read)) => known == read,
            (None, Some(_)) => !self.synced_once,
            (_, None) => false,
        };
        if same_dataset && self.trust_snapshots {
            // A snapshot of the dataset we followed is complete: rules it
            // lacks were re-approved or expired while we were away.
            self.denylist.replace_all(&snapshot.rules);
        } else {
            // Redis lost data (or never had any): keep every local rule.
            // Until this process restarts, snapshots are only merged, unless
            // it restores its rules into Redis itself: a later snapshot could
            // lack rules only this denylist remembers.
            self.denylist.apply_batch(&snapshot.rules);
            if self.config.restore {
                return Applied::NeedsRestore;
            }
            if self.synced_once {
                self.trust_snapshots = false;
            }
        }
        self.synced_once = true;
        self.epoch = epoch;
        self.state.last_seq.store(snapshot.seq, Ordering::Release);
        self.mark_in_sync(clock::now_millis());
        Applied::InSync
    }

    /// Re-writes every live rule into Redis under a (new) epoch.
    async fn restore(&mut self) -> Resync {
        let rules = self.denylist.rules(clock::now_secs()).unwrap_or_default();
        let result: Result<(), RedisStoreError> = async {
            let (epoch, _) = self.store.ensure_epoch().await?;
            // 64 scripts in flight: Redis pipelines them, so a large rule
            // set is back in seconds (sequential calls would take minutes),
            // shortening the window in which Redis holds only part of it.
            futures_util::stream::iter(rules.iter().cloned())
                .map(|rule| {
                    let store = self.store.clone();
                    async move { store.revoke(&rule, clock::now_millis()).await }
                })
                .buffer_unordered(RESTORE_IN_FLIGHT)
                .try_for_each(|_| async { Ok(()) })
                .await?;
            self.epoch = Some(epoch);
            Ok(())
        }
        .await;
        match result {
            Ok(()) if rules.is_empty() => {
                tracing::info!("redis had no revokd epoch: started one");
                Resync::Restored
            }
            Ok(()) => {
                tracing::warn!(rules = rules.len(), "restored rules into an emptied redis");
                Resync::Restored
            }
            Err(error) => {
                tracing::warn!(%error, "restoring rules into redis failed");
                Resync::Connect
            }
        }
    }

    fn apply_message(&mut self, payload: &[u8]) -> Result<(), Resync> {
        let event = Event::decode(payload).map_err(|_| Resync::Decode)?;
        let last = self.state.last_seq.load(Ordering::Acquire);
        if event.seq <= last {
            return Ok(());
        }
        if event.seq != last + 1 {
            return Err(Resync::Gap);
        }
        match &event.change {
            Change::Add(rule) => self.denylist.apply(rule),
            Change::Remove(key) => {
                self.denylist.remove(key);
            }
        }
        self.state.last_seq.store(event.seq, Ordering::Release);
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

    fn maintain(&self) {
        // Two seconds of slack: a reader whose clock lags a little never sees
        // a rule vanish that it still considers live.
        self.denylist.maintain(clock::now_secs().saturating_sub(2));
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
    let jitter = if getrandom::fill(&mut byte).is_ok() {
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
