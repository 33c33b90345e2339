//! The Redis the soak runs on (`--topology single|sentinel|cluster`), its
//! chaos rounds, their schedule, and the window after each in which 5xx and
//! stale answers are excused. Every round blocks (it kills, pauses and polls
//! real processes): the soak runs them on a blocking thread.
//!
//! - single: one persistent redis-server. Rounds cycle through kill -9 and
//!   an empty restart; `SAVE`, then SIGSTOP for 10 s; kill -9 and a restart
//!   from that older RDB (every revocation answered since must stay
//!   enforced: the issuers write back what Redis forgot).
//! - sentinel: one master, two replicas, three sentinels (down-after 1 s).
//!   Rounds cycle through kill -9 of the master (failover, then the old node
//!   rejoins as a replica); SIGSTOP of the master for 5 s (Sentinel fails
//!   over meanwhile and demotes the old master when it resumes: a moment
//!   with two masters); kill -9 of a replica and its restart.
//! - cluster: three masters with one replica each (node timeout 1 s).
//!   Rounds alternate kill -9 of the master of revokd's slot (its replica
//!   takes over, the old node rejoins as a replica) and SIGSTOP of that
//!   master for 5 s.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cluster::ClusterSet;
use crate::config::ConfigFile;
use crate::process::{poll, signal};
use crate::redis_server::{RedisServer, connect, info, info_field, role};
use crate::sentinel::SentinelSet;
use crate::traffic::Ctx;

/// How long a failover or a rejoin may take before the run gives up.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds between the end of one chaos round and the next.
const CHAOS_EVERY: u64 = 45;
/// How long after a chaos round 5xx and stale answers are still excused.
const SETTLE: Duration = Duration::from_secs(10);

/// When Redis was last disturbed: 5xx and missed re-approvals are expected
/// until a grace period after it.
pub(crate) struct Chaos {
    calm_after: Mutex<Instant>,
}

impl Chaos {
    /// Calm from now on (until the first round).
    pub(crate) fn calm() -> Chaos {
        Chaos {
            calm_after: Mutex::new(Instant::now()),
        }
    }

    /// Whether Redis is disturbed or was a moment ago.
    pub(crate) fn disturbed(&self) -> bool {
        Instant::now() < *self.calm_after.lock().unwrap()
    }

    /// Excuses outages until `until`.
    pub(crate) fn disturb_until(&self, until: Instant) {
        *self.calm_after.lock().unwrap() = until;
    }
}

/// Which Redis the run uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Single,
    Sentinel,
    Cluster,
}

impl Kind {
    pub(crate) fn parse(name: &str) -> Option<Kind> {
        match name {
            "single" => Some(Kind::Single),
            "sentinel" => Some(Kind::Sentinel),
            "cluster" => Some(Kind::Cluster),
            _ => None,
        }
    }
}

/// What a round did that the run's own books must follow.
pub(crate) enum Effect {
    /// Nothing beyond the disturbance.
    None,
    /// Redis came back from the RDB of the last `SAVE`: a
    /// re-approval answered since may come back as a revocation (the
    /// documented fail-safe direction).
    RestoredOlder,
}

/// The running Redis topology.
pub(crate) enum Redis {
    Single(RedisServer),
    Sentinel(SentinelSet),
    Cluster { set: ClusterSet, slot: u16 },
}

impl Redis {
    pub(crate) fn start(kind: Kind) -> Redis {
        match kind {
            Kind::Single => Redis::Single(RedisServer::start_persistent()),
            Kind::Sentinel => Redis::Sentinel(SentinelSet::start(2, 3, 1000)),
            Kind::Cluster => {
                let set = ClusterSet::start();
                let slot = set.slot_of("{revokd}:seq");
                Redis::Cluster { set, slot }
            }
        }
    }

    /// Points the issuers' `[store]` at this topology (with Sentinel or
    /// Cluster, a revocation waits for one replica).
    pub(crate) fn store(&self, config: ConfigFile) -> ConfigFile {
        match self {
            Redis::Single(server) => config.redis_url(&server.url()),
            Redis::Sentinel(set) => config
                .store("sentinels", set.sentinel_urls())
                .store("sentinel_master", set.name())
                .store("replica_acks", 1_u64)
                .store("replica_ack_timeout", "250ms"),
            Redis::Cluster { set, .. } => config
                .store("cluster", set.seed_urls())
                .store("replica_acks", 1_u64)
                .store("replica_ack_timeout", "250ms"),
        }
    }

    /// The example resource server's Redis arguments.
    pub(crate) fn resource_args(&self) -> Vec<String> {
        match self {
            Redis::Single(server) => vec!["--redis".into(), server.url()],
            Redis::Sentinel(set) => {
                let mut args = Vec::new();
                for url in set.sentinel_urls() {
                    args.extend(["--sentinel".to_owned(), url]);
                }
                args.extend(["--sentinel-master".to_owned(), set.name().to_owned()]);
                args
            }
            Redis::Cluster { set, .. } => {
                let mut args = Vec::new();
                for url in set.seed_urls() {
                    args.extend(["--cluster".to_owned(), url]);
                }
                args
            }
        }
    }

    /// One line describing the topology.
    pub(crate) fn describe(&self) -> String {
        match self {
            Redis::Single(server) => format!("single redis-server on {}", server.port()),
            Redis::Sentinel(set) => format!(
                "sentinel: master {}, replicas {:?}, sentinels {:?}",
                set.master_port(),
                set.replica_ports(),
                set.sentinel_ports()
            ),
            Redis::Cluster { set, slot } => format!(
                "cluster: masters {:?}, replicas {:?}, revokd's slot {slot} on {}",
                set.master_ports(),
                set.replica_ports(),
                set.master_for_slot(*slot)
            ),
        }
    }

    /// Runs chaos round `round` (1-based), calling `before_save` right
    /// before a `SAVE`; returns what was done and its effect.
    pub(crate) fn round(&mut self, round: u32, before_save: &dyn Fn()) -> (String, Effect) {
        match self {
            Redis::Single(server) => single_round(server, round, before_save),
            Redis::Sentinel(set) => (sentinel_round(set, round), Effect::None),
            Redis::Cluster { set, slot } => (cluster_round(set, *slot, round), Effect::None),
        }
    }
}

/// The chaos schedule, blocking (rounds kill, pause and poll processes):
/// [`CHAOS_EVERY`] seconds after the last round, the topology's next round,
/// while one more fits before `deadline`. Marks Redis disturbed during a
/// round and [`SETTLE`] after it. Returns the topology (kept up for the
/// final pass), the rounds run and when the last ended.
pub(crate) fn run_rounds(
    mut redis: Redis,
    ctx: &Ctx,
    started: Instant,
    deadline: Instant,
) -> (Redis, u32, Duration) {
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
}

fn single_round(server: &mut RedisServer, round: u32, before_save: &dyn Fn()) -> (String, Effect) {
    match round % 3 {
        1 => {
            server.kill9();
            // A persistent server: drop its RDB so it comes back empty.
            let _ = std::fs::remove_file(server.dir().join("dump.rdb"));
            std::thread::sleep(Duration::from_secs(2));
            server.start_again();
            (
                format!(
                    "redis killed and restarted empty (seq now {})",
                    seq(server.port())
                ),
                Effect::None,
            )
        }
        2 => {
            before_save();
            server.save();
            let saved = seq(server.port());
            server.signal("STOP");
            std::thread::sleep(Duration::from_secs(10));
            server.signal("CONT");
            (
                format!("redis SAVEd at seq {saved}, then paused for 10 s"),
                Effect::None,
            )
        }
        _ => {
            let before = seq(server.port());
            server.kill9();
            std::thread::sleep(Duration::from_secs(2));
            server.start_again();
            let after = seq(server.port());
            (
                format!(
                    "redis killed at seq {before} and restarted from the older RDB (seq {after})"
                ),
                Effect::RestoredOlder,
            )
        }
    }
}

fn sentinel_round(set: &mut SentinelSet, round: u32) -> String {
    let started = Instant::now();
    let master = set.master_port();
    match round % 3 {
        1 => {
            let seq_before = seq(master);
            set.kill9(master);
            let new = set.wait_for_new_master(master, FAILOVER_TIMEOUT);
            let seq_new = seq(new);
            set.restart(master);
            wait_replicas_follow(&set.node_ports(), new);
            format!(
                "master {master} killed (seq {seq_before}), {new} promoted (seq {seq_new}), {master} rejoined as a replica; {:.1} s",
                started.elapsed().as_secs_f64()
            )
        }
        2 => {
            let seq_before = seq(master);
            signal(set.pid(master).expect("master runs"), "STOP");
            std::thread::sleep(Duration::from_secs(5));
            let during = set.master_port();
            signal(set.pid(master).expect("master runs"), "CONT");
            let failed_over = poll(FAILOVER_TIMEOUT, || {
                let now = set.master_port();
                (now != master).then_some(now)
            });
            match failed_over {
                Some(_) => {
                    let new = set.wait_for_new_master(master, FAILOVER_TIMEOUT);
                    wait_replicas_follow(&set.node_ports(), new);
                    format!(
                        "master {master} paused 5 s (seq {seq_before}); sentinels named {during} during the pause; {new} is master, {master} demoted (old master's seq at demotion unknown, new master seq {}); {:.1} s",
                        seq(new),
                        started.elapsed().as_secs_f64()
                    )
                }
                None => format!(
                    "master {master} paused 5 s: no failover happened; {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
            }
        }
        _ => {
            let replica = set.replica_ports()[0];
            set.kill9(replica);
            std::thread::sleep(Duration::from_secs(2));
            set.restart(replica);
            wait_replicas_follow(&set.node_ports(), master);
            format!(
                "replica {replica} killed and restarted (master {master}); {:.1} s",
                started.elapsed().as_secs_f64()
            )
        }
    }
}

fn cluster_round(set: &mut ClusterSet, slot: u16, round: u32) -> String {
    let started = Instant::now();
    let master = set.master_for_slot(slot);
    let seq_before = seq(master);
    if round % 2 == 1 {
        set.kill9(master);
        let new = set.wait_for_new_master(slot, master, FAILOVER_TIMEOUT);
        let seq_new = seq(new);
        set.restart(master);
        wait_replicas_follow(&[master], new);
        format!(
            "master {master} of slot {slot} killed (seq {seq_before}), {new} promoted (seq {seq_new}), {master} rejoined as its replica; {:.1} s",
            started.elapsed().as_secs_f64()
        )
    } else {
        signal(set.pid(master).expect("master runs"), "STOP");
        std::thread::sleep(Duration::from_secs(5));
        signal(set.pid(master).expect("master runs"), "CONT");
        let failed_over = poll(FAILOVER_TIMEOUT, || {
            let now = set.master_for_slot(slot);
            (now != master).then_some(now)
        });
        match failed_over {
            Some(_) => {
                let new = set.wait_for_new_master(slot, master, FAILOVER_TIMEOUT);
                wait_replicas_follow(&[master], new);
                format!(
                    "master {master} of slot {slot} paused 5 s (seq {seq_before}); {new} promoted (seq {}), {master} demoted to its replica; {:.1} s",
                    seq(new),
                    started.elapsed().as_secs_f64()
                )
            }
            None => format!(
                "master {master} of slot {slot} paused 5 s: no failover happened; {:.1} s",
                started.elapsed().as_secs_f64()
            ),
        }
    }
}

/// Waits until every node in `ports` other than `master` answers as its
/// replica with the link up.
fn wait_replicas_follow(ports: &[u16], master: u16) {
    for &port in ports.iter().filter(|p| **p != master) {
        let ok = poll(FAILOVER_TIMEOUT, || {
            (role(port).as_deref() == Some("slave")).then_some(())?;
            let text = info(port, "replication")?;
            let follows = info_field(&text, "master_port")? == master.to_string()
                && info_field(&text, "master_link_status")? == "up";
            follows.then_some(())
        });
        assert!(
            ok.is_some(),
            "node {port} did not become a replica of {master} with its link up"
        );
    }
}

/// `{revokd}:seq` on the node on `port` ("-" when it does not answer).
fn seq(port: u16) -> String {
    connect(port)
        .ok()
        .and_then(|mut con| {
            redis::cmd("GET")
                .arg("{revokd}:seq")
                .query::<Option<String>>(&mut con)
                .ok()
        })
        .map_or_else(|| "-".to_owned(), |s| s.unwrap_or_else(|| "0".to_owned()))
}
