//! Deterministic simulation of the subscriber protocol: the real
//! [`Follower`] and the real [`Denylist`] driven against a simulated store
//! that mirrors the Lua scripts (`src/store/lua/*.lua`) and loses writes,
//! rewinds, fails over and reorders, over many seeded schedules.
//!
//! Each schedule: a few hundred random steps (issuer writes, store faults,
//! sessions, events, checks, inbox faults), then a heal phase (no faults,
//! everything delivered) that must converge, then the invariants.
//!
//! - `SIM_SEEDS=n` runs `n` schedules (default [`DEFAULT_SEEDS`]);
//! - `SIM_SEED=s` runs exactly schedule `s` (a failure prints its trace);
//! - `SIM_SUMMARY=1` prints one line per failed seed.
//!
//! An issuer's write is `ReplicatedStore`'s: the script, and nothing
//! applied to its own denylist; the caller's answer waits for the issuer's
//! own follower. It is acknowledged (200) once that follower's last applied
//! seq reached the seq the script returned and, for a revocation, the
//! denylist then holds a rule covering the merged one; otherwise (reached on
//! a state that lacks the rule, or not within [`ACK_STEPS`]) it is a 503:
//! not acknowledged, whether or not the store took it.
//!
//! Built without the `issuer` feature too: only `follow`, `event`, `rule` and
//! `denylist` are used.
#![allow(missing_docs, unreachable_pub)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::rc::Rc;

use revokd::denylist::Denylist;
use revokd::event::{Change, Event, Head};
use revokd::follow::{Checked, Follower, HISTORY_WINDOW, Relation, SyncReply};
use revokd::rule::{RevokedBefore, Rule, RuleKey};
use xxhash_rust::xxh3::xxh3_128;

/// Schedules run by default.
const DEFAULT_SEEDS: u64 = 10_000;
/// Seconds since the epoch, for `Denylist::rules`/`get` and restores: every
/// rule expires far after it, so nothing expires in the simulation.
const NOW: u64 = 1_700_000_000;
/// How many distinct rule keys the issuers write (few, so keys collide:
/// merges, re-approvals and re-revocations of one key interleave).
const KEYS: usize = 10;
/// Steps of the trace printed for a failing schedule.
const TRACE: usize = 60;
/// Heal rounds before a schedule counts as not converging.
const HEAL_ROUNDS: usize = 60;
/// Steps an issuer waits for its own follower to apply a change before it
/// answers 503 (`APPLY_BOUND` in production).
const ACK_STEPS: u64 = 30;

// === PRNG ===

/// splitmix64: deterministic, no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// === The simulated store ===

/// A rule's value as the store's hash holds it (`"<revoked_before>:<expires_at>"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    revoked_before: RevokedBefore,
    expires_at: u64,
}

impl Bound {
    fn of(rule: &Rule) -> Bound {
        Bound {
            revoked_before: rule.revoked_before,
            expires_at: rule.expires_at,
        }
    }

    fn merge(self, other: Bound) -> Bound {
        Bound {
            revoked_before: self.revoked_before.max(other.revoked_before),
            expires_at: self.expires_at.max(other.expires_at),
        }
    }

    /// Whether `self` revokes at least what `other` does, for as long.
    fn covers(self, other: Bound) -> bool {
        self.revoked_before >= other.revoked_before && self.expires_at >= other.expires_at
    }
}

/// Everything one Redis dataset holds: what an RDB saves, what a replica has.
#[derive(Clone, Default)]
struct State {
    seq: u64,
    head: Head,
    /// The last `window` events, oldest first (`{revokd}:log`).
    log: VecDeque<Rc<Event>>,
    /// `{revokd}:rules`, by key index.
    rules: [Option<Bound>; KEYS],
}

struct Store {
    state: State,
    /// The log's length bound (`HISTORY_WINDOW` in production).
    window: usize,
    /// Heads of the current history by seq (`path[0]` is genesis): which
    /// saved states are ancestors of the current one.
    path: Vec<Head>,
    /// RDB saves, oldest first.
    saves: Vec<State>,
    /// The states before the last few writes: what a lagging replica holds.
    lagging: VecDeque<State>,
    keys: Rc<[RuleKey]>,
}

impl Store {
    fn new(window: usize, keys: Rc<[RuleKey]>) -> Store {
        Store {
            state: State::default(),
            window,
            path: vec![Head::GENESIS],
            saves: Vec::new(),
            lagging: VecDeque::new(),
            keys,
        }
    }

    fn rule(&self, key: usize, bound: Bound) -> Rule {
        Rule {
            key: self.keys[key].clone(),
            revoked_before: bound.revoked_before,
            expires_at: bound.expires_at,
        }
    }

    fn key_index(&self, key: &RuleKey) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// `chain.lua`'s `append`: INCR seq, chain the head, RPUSH + LTRIM the
    /// log, PUBLISH (the caller delivers the returned event).
    fn append(&mut self, change: Change, published_at_ms: u64) -> Rc<Event> {
        let seq = self.state.seq + 1;
        let prev_head = self.state.head;
        let head = chain(prev_head, seq, &change, published_at_ms);
        let event = Rc::new(Event {
            seq,
            change,
            published_at_ms,
            head,
            prev_head,
        });
        self.state.seq = seq;
        self.state.head = head;
        self.state.log.push_back(event.clone());
        while self.state.log.len() > self.window {
            self.state.log.pop_front();
        }
        self.path
            .truncate(usize::try_from(seq).unwrap_or(usize::MAX));
        self.path.push(head);
        event
    }

    /// The state before a write: what a replica lagging behind it holds.
    fn keep_for_replica(&mut self) {
        self.lagging.push_back(self.state.clone());
        if self.lagging.len() > 8 {
            self.lagging.pop_front();
        }
    }

    /// `revoke.lua`: merge (larger of each field), store, append the ADD of
    /// the merged rule. Returns the merged rule and the event.
    fn revoke(&mut self, key: usize, bound: Bound, at_ms: u64) -> (Rule, Rc<Event>) {
        self.keep_for_replica();
        let merged = self.state.rules[key].map_or(bound, |held| held.merge(bound));
        self.state.rules[key] = Some(merged);
        let rule = self.rule(key, merged);
        let event = self.append(Change::Add(rule.clone()), at_ms);
        (rule, event)
    }

    /// `remove.lua`: delete, and append the REMOVE even when not held.
    fn remove(&mut self, key: usize, at_ms: u64) -> (bool, Rc<Event>) {
        self.keep_for_replica();
        let held = self.state.rules[key].take().is_some();
        let event = self.append(Change::Remove(self.keys[key].clone()), at_ms);
        (held, event)
    }

    fn rules(&self) -> Vec<Rule> {
        self.state
            .rules
            .iter()
            .enumerate()
            .filter_map(|(key, bound)| bound.map(|bound| self.rule(key, bound)))
            .collect()
    }

    /// `snapshot.lua`: seq, head, the log part the position calls for, rules.
    fn snapshot(&self, position: Option<(u64, Head)>) -> SyncReply {
        let state = &self.state;
        let log: Vec<Event> = match position {
            None => Vec::new(),
            Some((last, head)) => {
                let length = state.log.len() as u64;
                let first = state.seq + 1 - length;
                let from = if last == state.seq && head == state.head {
                    None
                } else if last >= first
                    && last < state.seq
                    && state.log[usize::try_from(last - first).unwrap_or(usize::MAX)].head == head
                {
                    Some(usize::try_from(last - first + 1).unwrap_or(usize::MAX))
                } else {
                    Some(0)
                };
                from.map_or_else(Vec::new, |from| {
                    state.log.iter().skip(from).map(|e| (**e).clone()).collect()
                })
            }
        };
        SyncReply {
            seq: state.seq,
            head: state.head,
            log: Some(log),
            rules: self.rules(),
        }
    }

    fn is_ancestor(&self, state: &State) -> bool {
        usize::try_from(state.seq)
            .ok()
            .and_then(|seq| self.path.get(seq))
            == Some(&state.head)
    }

    /// The dataset comes back as `state`, an ancestor of the current one:
    /// every write after it is lost.
    fn rewind(&mut self, state: State) {
        self.path
            .truncate(usize::try_from(state.seq).unwrap_or(usize::MAX) + 1);
        self.state = state;
        let path = std::mem::take(&mut self.path);
        self.saves.retain(|s| ancestor_on(&path, s));
        self.lagging.retain(|s| ancestor_on(&path, s));
        self.path = path;
    }
}

fn ancestor_on(path: &[Head], state: &State) -> bool {
    usize::try_from(state.seq)
        .ok()
        .and_then(|seq| path.get(seq))
        == Some(&state.head)
}

/// The history chain: any deterministic hash over the previous head and the
/// event's content (the scripts use SHA-1 of the encoded event).
fn chain(prev: Head, seq: u64, change: &Change, published_at_ms: u64) -> Head {
    let mut bytes = Vec::with_capacity(80);
    bytes.extend_from_slice(&prev.0);
    bytes.extend_from_slice(&seq.to_le_bytes());
    match change {
        Change::Add(rule) => {
            bytes.push(1);
            bytes.extend_from_slice(rule.key.to_string().as_bytes());
            match rule.revoked_before {
                RevokedBefore::All => bytes.push(0xff),
                RevokedBefore::IssuedAtOrBefore(iat) => {
                    bytes.push(0);
                    bytes.extend_from_slice(&iat.to_le_bytes());
                }
            }
            bytes.extend_from_slice(&rule.expires_at.to_le_bytes());
        }
        Change::Remove(key) => {
            bytes.push(2);
            bytes.extend_from_slice(key.to_string().as_bytes());
        }
    }
    bytes.extend_from_slice(&published_at_ms.to_le_bytes());
    let hash = xxh3_128(&bytes).to_le_bytes();
    let mut head = [0u8; 20];
    head[..16].copy_from_slice(&hash);
    head[16..].copy_from_slice(&hash[..4]);
    head[19] |= 1; // never genesis
    Head(head)
}

// === Actors ===

/// A seq check whose reply is on its way: what the store held at the read.
struct CheckRead {
    seq: u64,
    head: Head,
    rules: Vec<Rule>,
    due: u64,
}

enum Session {
    /// Between sessions (backoff); a new one starts at step `until`.
    Down { until: u64 },
    /// Subscribed; `synced` once the snapshot was applied. `attached`:
    /// whether the subscription still receives the store's events (a fault
    /// can cut it while the session lives on, on a node that no longer
    /// hears the master).
    Open {
        inbox: VecDeque<Rc<Event>>,
        attached: bool,
        synced: bool,
        check: Option<CheckRead>,
    },
    /// Writing back what the store lacked; the session then ends.
    Restoring { rules: VecDeque<Rule> },
}

struct Actor {
    name: &'static str,
    issuer: bool,
    follower: Follower,
    denylist: Denylist,
    session: Session,
}

/// One client operation at an issuer, in real-time order.
struct Op {
    key: usize,
    /// The requested rule, `None` for a re-approval.
    revoke: Option<Bound>,
    /// Whether the caller was told it succeeded (200): the issuer's own
    /// follower applied it (see [`Pending`]). Only then is it promised.
    acked: bool,
    /// Whether the store took it (also when the caller got an error).
    applied: bool,
}

/// A write the store answered, whose caller waits for the issuer's own
/// follower to apply it.
struct Pending {
    /// Index in `Sim::ops`.
    op: usize,
    /// The issuer.
    who: usize,
    /// The seq the script returned.
    seq: u64,
    /// The head after it, as the script returned it.
    head: Head,
    /// The step after which the caller gets a 503.
    until: u64,
}

#[derive(Debug)]
#[allow(dead_code)] // fields are read through Debug, in the failure trace
enum Step {
    /// `replied`: the script's reply reached the issuer (its answer then
    /// waits, see `Answer`).
    Revoke {
        at: &'static str,
        key: usize,
        replied: bool,
        applied: bool,
        seq: u64,
    },
    Remove {
        at: &'static str,
        key: usize,
        replied: bool,
        applied: bool,
        seq: u64,
    },
    /// The caller's answer to a replied write: "200", or why a 503.
    Answer {
        at: &'static str,
        key: usize,
        seq: u64,
        answer: &'static str,
    },
    Save {
        seq: u64,
    },
    RestoreRdb {
        seq: u64,
        head: String,
    },
    RestartEmpty,
    Failover {
        lag: usize,
        seq: u64,
        head: String,
    },
    SessionAfterFault {
        at: &'static str,
        fate: &'static str,
    },
    Drop {
        at: &'static str,
        seq: u64,
    },
    Duplicate {
        at: &'static str,
        seq: u64,
    },
    Reorder {
        at: &'static str,
    },
    Delay {
        at: &'static str,
        seq: u64,
    },
    Disconnect {
        at: &'static str,
    },
    Subscribe {
        at: &'static str,
    },
    Sync {
        at: &'static str,
        relation: Relation,
        seq: u64,
        head: String,
        restore: usize,
    },
    Event {
        at: &'static str,
        seq: u64,
        result: String,
    },
    CheckRead {
        at: &'static str,
        seq: u64,
        head: String,
        delay: u64,
    },
    Checked {
        at: &'static str,
        result: String,
        ours: u64,
    },
    RestoreWrite {
        at: &'static str,
        key: String,
        ok: bool,
    },
    Heal,
}

fn short(head: Head) -> String {
    if head == Head::GENESIS {
        return "genesis".to_owned();
    }
    head.0[..4].iter().map(|b| format!("{b:02x}")).collect()
}

struct Sim {
    rng: Rng,
    store: Store,
    actors: Vec<Actor>,
    ops: Vec<Op>,
    /// Writes awaiting their answer.
    pending: Vec<Pending>,
    step: u64,
    trace: VecDeque<(u64, Step)>,
    faults: bool,
    /// How often each thing of [`COUNTED`] happened: what the seeds covered.
    counts: [u64; COUNTED.len()],
}

type Counts = [u64; COUNTED.len()];

/// What the run counts, printed with its result.
const COUNTED: [&str; 15] = [
    "first",
    "continued",
    "forked",
    "unproven",
    "restores",
    "in-sync checks",
    "rdb restores",
    "empty restarts",
    "failovers",
    "inbox faults",
    "disconnects",
    "event errors",
    "acks",
    "503 other history",
    "503 timeouts",
];

type Outcome = Result<(), String>;

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let window = usize::try_from(rng.range(8, 64)).unwrap_or(8);
        assert!(window <= HISTORY_WINDOW);
        let keys: Rc<[RuleKey]> = (0..KEYS)
            .map(|i| match i % 5 {
                0 => RuleKey::Jti(format!("j{i}")),
                1 => RuleKey::Sid(format!("s{i}")),
                2 => RuleKey::Sub(format!("u{i}")),
                3 => RuleKey::Client(format!("c{i}")),
                _ => RuleKey::SubClient {
                    sub: format!("u{i}"),
                    client: format!("c{i}"),
                },
            })
            .collect();
        let actor = |name, issuer| Actor {
            name,
            issuer,
            follower: Follower::new(issuer),
            denylist: if issuer {
                Denylist::listing()
            } else {
                Denylist::with_capacity(16)
            },
            session: Session::Down { until: 0 },
        };
        Sim {
            rng,
            store: Store::new(window, keys),
            actors: vec![
                actor("issuer-a", true),
                actor("issuer-b", true),
                actor("rs-a", false),
                actor("rs-b", false),
            ],
            ops: Vec::new(),
            pending: Vec::new(),
            step: 0,
            trace: VecDeque::new(),
            faults: true,
            counts: [0; COUNTED.len()],
        }
    }

    fn log(&mut self, step: Step) {
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace.push_back((self.step, step));
    }

    fn now_ms(&self) -> u64 {
        NOW * 1000 + self.step * 10
    }

    /// Delivers a store event to every attached subscription.
    fn publish(&mut self, event: &Rc<Event>) {
        for actor in &mut self.actors {
            if let Session::Open {
                inbox,
                attached: true,
                ..
            } = &mut actor.session
            {
                inbox.push_back(event.clone());
            }
        }
    }

    fn random_bound(&mut self) -> Bound {
        Bound {
            revoked_before: if self.rng.chance(150) {
                RevokedBefore::All
            } else {
                RevokedBefore::IssuedAtOrBefore(1_000 + self.rng.below(100))
            },
            expires_at: 4_000_000_000 + self.rng.below(1_000),
        }
    }

    /// Outcome of a store call: (replied, applied): the reply reached the
    /// issuer, or the call failed after (or before) the store took it.
    fn call_outcome(&mut self) -> (bool, bool) {
        if !self.faults {
            return (true, true);
        }
        match self.rng.below(100) {
            0..=84 => (true, true),
            85..=92 => (false, false),
            _ => (false, true),
        }
    }

    /// An issuer's revoke or re-approval: the script only; a reply makes
    /// the caller's answer wait for the issuer's own follower
    /// ([`Sim::answer`]), an error is a 503 at once.
    fn client_op(&mut self) {
        let who = self.rng.index(2);
        let key = self.rng.index(KEYS);
        let (replied, applied) = self.call_outcome();
        let at = self.actors[who].name;
        let at_ms = self.now_ms();
        let revoke = self.rng.chance(700).then(|| self.random_bound());
        let mut seq = 0;
        if applied {
            let event = match revoke {
                Some(bound) => self.store.revoke(key, bound, at_ms).1,
                None => self.store.remove(key, at_ms).1,
            };
            seq = event.seq;
            self.publish(&event);
            if replied {
                self.pending.push(Pending {
                    op: self.ops.len(),
                    who,
                    seq,
                    head: event.head,
                    until: self.step + ACK_STEPS,
                });
            }
        }
        self.ops.push(Op {
            key,
            revoke,
            acked: false,
            applied,
        });
        self.log(if revoke.is_some() {
            Step::Revoke {
                at,
                key,
                replied,
                applied,
                seq,
            }
        } else {
            Step::Remove {
                at,
                key,
                replied,
                applied,
                seq,
            }
        });
    }

    /// Answers the waiting writes whose issuer's follower reached their seq
    /// (200 when it holds that seq with the write's head, i.e. applied the
    /// write in the history it follows, as `Subscriber::wait_applied`; 503
    /// when another history's event stands there), or whose bound ran out
    /// (503; every one when `all`).
    fn answer(&mut self, all: bool) {
        let mut index = 0;
        while index < self.pending.len() {
            let wait = &self.pending[index];
            let actor = &self.actors[wait.who];
            let key = self.ops[wait.op].key;
            let answer = if actor.follower.last_seq() >= wait.seq {
                if actor.follower.recent_head(wait.seq) == Some(wait.head) {
                    Some("200")
                } else {
                    Some("503 other history")
                }
            } else if all || self.step >= wait.until {
                Some("503 timeout")
            } else {
                None
            };
            let Some(answer) = answer else {
                index += 1;
                continue;
            };
            let wait = self.pending.remove(index);
            let at = self.actors[wait.who].name;
            let counted = match answer {
                "200" => {
                    self.ops[wait.op].acked = true;
                    12
                }
                "503 other history" => 13,
                _ => 14,
            };
            self.counts[counted] += 1;
            self.log(Step::Answer {
                at,
                key,
                seq: wait.seq,
                answer,
            });
        }
    }

    /// Redis restarts, rewinds or fails over.
    fn store_fault(&mut self) {
        match self.rng.below(100) {
            0..=39 => {
                let state = self.store.state.clone();
                self.store.saves.push(state);
                if self.store.saves.len() > 8 {
                    self.store.saves.remove(0);
                }
                self.log(Step::Save {
                    seq: self.store.state.seq,
                });
                return;
            }
            40..=59 => {
                let saves: Vec<usize> = (0..self.store.saves.len())
                    .filter(|&i| self.store.is_ancestor(&self.store.saves[i]))
                    .collect();
                if saves.is_empty() {
                    return;
                }
                let pick = saves[self.rng.index(saves.len())];
                let state = self.store.saves[pick].clone();
                self.counts[6] += 1;
                self.log(Step::RestoreRdb {
                    seq: state.seq,
                    head: short(state.head),
                });
                self.store.rewind(state);
            }
            60..=69 => {
                self.counts[7] += 1;
                self.log(Step::RestartEmpty);
                self.store.rewind(State::default());
            }
            _ => {
                let len = self.store.lagging.len();
                if len == 0 {
                    return;
                }
                let lag = 1 + self.rng.index(len);
                let state = self.store.lagging[len - lag].clone();
                self.counts[8] += 1;
                self.log(Step::Failover {
                    lag,
                    seq: state.seq,
                    head: short(state.head),
                });
                self.store.rewind(state);
            }
        }
        // Every session's fate: dropped with the node, or living on with
        // its subscription cut, or still hearing the new master (a cluster
        // node, a demoted master that now replicates).
        for index in 0..self.actors.len() {
            let roll = self.rng.below(100);
            let until = self.step + self.rng.range(1, 10);
            let actor = &mut self.actors[index];
            let fate = match &mut actor.session {
                Session::Open { attached, .. } => match roll {
                    0..=39 => {
                        actor.session = Session::Down { until };
                        "ended"
                    }
                    40..=69 => {
                        *attached = false;
                        "cut"
                    }
                    _ => "attached",
                },
                _ => continue,
            };
            let at = actor.name;
            self.log(Step::SessionAfterFault { at, fate });
        }
    }

    /// One step of one actor's subscriber.
    fn actor_step(&mut self, index: usize) -> Outcome {
        let step = self.step;
        let roll = self.rng.below(1000);
        let backoff = self.rng.range(1, 12);
        let at = self.actors[index].name;
        match &mut self.actors[index].session {
            Session::Down { until } => {
                if step >= *until {
                    self.actors[index].session = Session::Open {
                        inbox: VecDeque::new(),
                        attached: true,
                        synced: false,
                        check: None,
                    };
                    self.log(Step::Subscribe { at });
                }
                Ok(())
            }
            Session::Restoring { .. } => {
                let ok = !self.faults || roll >= 50;
                self.restore_write(index, ok, backoff);
                Ok(())
            }
            Session::Open { synced: false, .. } => {
                if self.faults && roll < 30 {
                    self.disconnect(index, backoff);
                } else if roll < 600 || !self.faults {
                    self.sync(index, backoff)?;
                }
                Ok(())
            }
            Session::Open {
                check: Some(check), ..
            } => {
                if step >= check.due {
                    self.finish_check(index, backoff)?;
                }
                Ok(())
            }
            Session::Open { inbox, .. } => {
                let len = inbox.len();
                match roll {
                    0..=499 if len > 0 => self.deliver(index, backoff)?,
                    500..=649 => {
                        let delay = if self.faults && self.rng.chance(200) {
                            self.rng.range(1, 8)
                        } else {
                            0
                        };
                        self.start_check(index, delay);
                        if delay == 0 {
                            self.finish_check(index, backoff)?;
                        }
                    }
                    650..=749 if self.faults && len > 0 => self.inbox_fault(index),
                    750..=779 if self.faults => self.disconnect(index, backoff),
                    _ => {}
                }
                Ok(())
            }
        }
    }

    fn disconnect(&mut self, index: usize, backoff: u64) {
        let until = self.step + backoff;
        let actor = &mut self.actors[index];
        actor.session = Session::Down { until };
        let at = actor.name;
        self.counts[10] += 1;
        self.log(Step::Disconnect { at });
    }

    fn end_session(&mut self, index: usize, backoff: u64) {
        self.actors[index].session = Session::Down {
            until: self.step + backoff,
        };
    }

    /// Drop, duplicate, reorder or delay events in an inbox.
    fn inbox_fault(&mut self, index: usize) {
        let at = self.actors[index].name;
        let kind = self.rng.below(4);
        let (a, b) = (self.rng.next(), self.rng.next());
        let Session::Open { inbox, .. } = &mut self.actors[index].session else {
            return;
        };
        let len = inbox.len();
        if len == 0 {
            return;
        }
        let i = usize::try_from(a % len as u64).unwrap_or(0);
        let j = usize::try_from(b % len as u64).unwrap_or(0);
        let step = match kind {
            0 => {
                let Some(event) = inbox.remove(i) else { return };
                Step::Drop { at, seq: event.seq }
            }
            1 => {
                let event = inbox[i].clone();
                let seq = event.seq;
                inbox.insert(j, event);
                Step::Duplicate { at, seq }
            }
            2 => {
                inbox.swap(i, j);
                Step::Reorder { at }
            }
            _ => {
                let Some(event) = inbox.remove(i) else { return };
                let seq = event.seq;
                inbox.push_back(event);
                Step::Delay { at, seq }
            }
        };
        self.counts[9] += 1;
        self.log(step);
    }

    /// The snapshot (with the log for our position) and `on_sync`; a
    /// restoring follower's `restore` then ends the session in writes.
    fn sync(&mut self, index: usize, backoff: u64) -> Outcome {
        let actor = &mut self.actors[index];
        let reply = self.store.snapshot(actor.follower.position());
        let (seq, head, rules) = (reply.seq, reply.head, reply.rules.clone());
        let synced = actor.follower.on_sync(reply, &actor.denylist, NOW);
        let at = actor.name;
        let issuer = actor.issuer;
        let relation = synced.relation;
        let restore = synced.restore.len();
        let (ours_seq, ours_head) = (actor.follower.last_seq(), actor.follower.head());
        self.counts[relation as usize] += 1;
        self.counts[4] += u64::from(restore > 0);
        self.log(Step::Sync {
            at,
            relation,
            seq,
            head: short(head),
            restore,
        });
        if (ours_seq, ours_head) != (seq, head) {
            return Err(format!(
                "{at}: after a sync ({relation:?}) the follower is at {ours_seq}/{} but the store was at {seq}/{}",
                short(ours_head),
                short(head)
            ));
        }
        if !issuer && restore > 0 {
            return Err(format!("{at}: a non-restoring follower asked to restore"));
        }
        if restore == 0 {
            // The subscriber marks the denylist in sync here.
            self.assert_holds(
                index,
                &rules,
                &format!("after a {relation:?} sync at {seq}"),
            )?;
        }
        let actor = &mut self.actors[index];
        if restore > 0 {
            // In key order: the denylist lists in hash order, which differs
            // between runs, and a schedule must replay exactly.
            let mut rules = synced.restore;
            rules.sort_by_cached_key(|rule| rule.key.to_string());
            actor.session = Session::Restoring {
                rules: rules.into(),
            };
        } else if let Session::Open { synced, .. } = &mut actor.session {
            *synced = true;
        } else {
            self.end_session(index, backoff);
        }
        Ok(())
    }

    /// One of the restore's writes: a revoke through the store. The session
    /// ends after the last one (`Restored`) or at a failure (`Connect`).
    fn restore_write(&mut self, index: usize, ok: bool, backoff: u64) {
        let at = self.actors[index].name;
        let Session::Restoring { rules } = &mut self.actors[index].session else {
            return;
        };
        let Some(rule) = rules.pop_front() else {
            self.end_session(index, 1);
            return;
        };
        let done = rules.is_empty();
        self.log(Step::RestoreWrite {
            at,
            key: rule.key.to_string(),
            ok,
        });
        if !ok {
            self.end_session(index, backoff);
            return;
        }
        if let Some(key) = self.store.key_index(&rule.key) {
            let at_ms = self.now_ms();
            let (_, event) = self.store.revoke(key, Bound::of(&rule), at_ms);
            self.publish(&event);
        }
        if done {
            self.end_session(index, 1);
        }
    }

    fn deliver(&mut self, index: usize, backoff: u64) -> Outcome {
        let actor = &mut self.actors[index];
        let Session::Open { inbox, .. } = &mut actor.session else {
            return Ok(());
        };
        let Some(event) = inbox.pop_front() else {
            return Ok(());
        };
        let result = actor.follower.on_event(&event, &actor.denylist);
        let at = actor.name;
        self.log(Step::Event {
            at,
            seq: event.seq,
            result: format!("{result:?}"),
        });
        if result.is_err() {
            self.counts[11] += 1;
            self.end_session(index, backoff);
        }
        Ok(())
    }

    fn start_check(&mut self, index: usize, delay: u64) {
        let read = CheckRead {
            seq: self.store.state.seq,
            head: self.store.state.head,
            rules: self.store.rules(),
            due: self.step + delay,
        };
        let at = self.actors[index].name;
        self.log(Step::CheckRead {
            at,
            seq: read.seq,
            head: short(read.head),
            delay,
        });
        if let Session::Open { check, .. } = &mut self.actors[index].session {
            *check = Some(read);
        }
    }

    /// `on_check` with the (possibly delayed) read; `Ok(true)` when the
    /// check proved the denylist in sync as of now.
    fn finish_check(&mut self, index: usize, backoff: u64) -> Result<bool, String> {
        let now_ms = self.now_ms();
        let actor = &mut self.actors[index];
        let Session::Open { check, .. } = &mut actor.session else {
            return Ok(false);
        };
        let Some(read) = check.take() else {
            return Ok(false);
        };
        let result = actor.follower.on_check(read.seq, read.head, now_ms);
        let at = actor.name;
        let (ours_seq, ours_head) = (actor.follower.last_seq(), actor.follower.head());
        self.log(Step::Checked {
            at,
            result: format!("{result:?}"),
            ours: ours_seq,
        });
        match result {
            Ok(Checked::InSyncAt(t)) if t == now_ms => {
                if (ours_seq, ours_head) != (read.seq, read.head) {
                    return Err(format!(
                        "{at}: a check reported in sync at {ours_seq}/{} while the store read {}/{}",
                        short(ours_head),
                        read.seq,
                        short(read.head)
                    ));
                }
                self.counts[5] += 1;
                self.assert_holds(
                    index,
                    &read.rules,
                    &format!("at an in-sync check at {}", read.seq),
                )?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(_) => {
                self.end_session(index, backoff);
                Ok(false)
            }
        }
    }

    /// Whether actor `index`'s denylist holds every rule of `rules`.
    fn assert_holds(&self, index: usize, rules: &[Rule], when: &str) -> Outcome {
        let actor = &self.actors[index];
        for rule in rules {
            let held = actor.denylist.get(&rule.key, NOW);
            if !held
                .as_ref()
                .is_some_and(|held| Bound::of(held).covers(Bound::of(rule)))
            {
                return Err(format!(
                    "{}: {when}, the store holds {rule:?} but the denylist holds {held:?}",
                    actor.name
                ));
            }
        }
        Ok(())
    }

    fn random_step(&mut self) -> Outcome {
        self.step += 1;
        let roll = self.rng.below(1000);
        match roll {
            0..=149 => self.client_op(),
            150..=199 => self.store_fault(),
            _ => {
                let index = self.rng.index(self.actors.len());
                self.actor_step(index)?;
            }
        }
        self.answer(false);
        Ok(())
    }

    /// No more faults or writes: every follower runs sessions, events and
    /// checks until all prove in sync with an unchanged store.
    fn heal(&mut self) -> Outcome {
        self.faults = false;
        self.log(Step::Heal);
        for _ in 0..HEAL_ROUNDS {
            let before = (self.store.state.seq, self.store.state.head);
            let mut all = true;
            for index in 0..self.actors.len() {
                all &= self.heal_actor(index)?;
            }
            if all && before == (self.store.state.seq, self.store.state.head) {
                return Ok(());
            }
        }
        Err(format!("no convergence after {HEAL_ROUNDS} heal rounds"))
    }

    /// Drives one actor until a check proves it in sync (`Ok(true)`).
    fn heal_actor(&mut self, index: usize) -> Result<bool, String> {
        for _ in 0..40 {
            self.step += 1;
            self.answer(false);
            match &self.actors[index].session {
                Session::Down { .. } => {
                    self.actors[index].session = Session::Down { until: 0 };
                    self.actor_step(index)?;
                }
                Session::Restoring { .. } => self.restore_write(index, true, 1),
                Session::Open { synced: false, .. } => self.sync(index, 1)?,
                Session::Open { check: Some(_), .. } => {
                    self.finish_check(index, 1)?;
                }
                Session::Open { inbox, .. } if !inbox.is_empty() => self.deliver(index, 1)?,
                Session::Open { .. } => {
                    self.start_check(index, 0);
                    if self.finish_check(index, 1)? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// After convergence: acknowledged revocations not re-approved since
    /// are everywhere; issuers have nothing left to restore.
    fn check_final(&self) -> Outcome {
        for key in 0..KEYS {
            let ops: Vec<&Op> = self.ops.iter().filter(|op| op.key == key).collect();
            let since = ops
                .iter()
                .rposition(|op| op.revoke.is_none() && op.applied)
                .map_or(0, |i| i + 1);
            for op in &ops[since..] {
                let Some(bound) = op.revoke.filter(|_| op.acked) else {
                    continue;
                };
                let rule = self.store.rule(key, bound);
                let stored = self.store.state.rules[key];
                if !stored.is_some_and(|stored| stored.covers(bound)) {
                    return Err(format!(
                        "acknowledged {rule:?}, never re-approved since, is not in the final store: {stored:?}"
                    ));
                }
                for index in 0..self.actors.len() {
                    self.assert_holds(
                        index,
                        std::slice::from_ref(&rule),
                        "after convergence, an acknowledged revocation not re-approved since",
                    )?;
                }
            }
        }
        for actor in self.actors.iter().filter(|a| a.issuer) {
            for rule in actor.denylist.rules(NOW).unwrap_or_default() {
                let stored = self
                    .store
                    .key_index(&rule.key)
                    .and_then(|key| self.store.state.rules[key]);
                if !stored.is_some_and(|stored| stored.covers(Bound::of(&rule))) {
                    return Err(format!(
                        "{}: after convergence it holds {rule:?} that the store lacks ({stored:?}): never restored",
                        actor.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn trace_text(&self) -> String {
        let mut text = String::new();
        for (step, entry) in &self.trace {
            let _ = writeln!(text, "  #{step:<5} {entry:?}");
        }
        text
    }
}

/// Runs schedule `seed`; on failure, the message and the last steps.
fn run(seed: u64) -> Result<Counts, String> {
    let mut sim = Sim::new(seed);
    let steps = sim.rng.range(100, 400);
    let outcome = (|| {
        for _ in 0..steps {
            sim.random_step()?;
        }
        sim.heal()?;
        sim.answer(true);
        sim.check_final()
    })();
    match outcome {
        Ok(()) => Ok(sim.counts),
        Err(message) => Err(format!(
            "{message}\n  store at {}/{} (window {}); last steps:\n{}",
            sim.store.state.seq,
            short(sim.store.state.head),
            sim.store.window,
            sim.trace_text()
        )),
    }
}

/// `run`, with a panic in the library turned into a failure of this seed.
fn run_caught(seed: u64) -> Result<Counts, String> {
    std::panic::catch_unwind(|| run(seed))
        .unwrap_or_else(|_| Err("panicked (see the message above)".to_owned()))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn seeded_schedules_keep_every_acknowledged_revocation() {
    let started = std::time::Instant::now();
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let results: Vec<(u64, Result<Counts, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|&seed| (seed, run_caught(seed)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    });
    let mut failures: Vec<&(u64, Result<Counts, String>)> =
        results.iter().filter(|(_, r)| r.is_err()).collect();
    failures.sort_by_key(|(seed, _)| *seed);
    let mut counts = [0u64; COUNTED.len()];
    for (_, result) in &results {
        if let Ok(seen) = result {
            for (sum, n) in counts.iter_mut().zip(seen) {
                *sum += n;
            }
        }
    }
    let covered: Vec<String> = COUNTED
        .iter()
        .zip(counts)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!(
        "simulation: {} schedules, {} failed, in {:.1?}; covered: {}",
        results.len(),
        failures.len(),
        started.elapsed(),
        covered.join(", ")
    );
    if env_u64("SIM_SUMMARY").is_some() {
        for (seed, result) in &failures {
            if let Err(message) = result {
                let first = message.lines().next().unwrap_or_default();
                eprintln!("seed {seed}: {first}");
            }
        }
    }
    for (seed, result) in failures.iter().take(3) {
        if let Err(message) = result {
            eprintln!(
                "schedule {seed} failed: {message}\n  reproduce: SIM_SEED={seed} cargo test --test simulation -- --nocapture\n"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} schedules failed; first seeds: {:?}",
        failures.len(),
        results.len(),
        failures.iter().take(10).map(|(s, _)| s).collect::<Vec<_>>()
    );
}
