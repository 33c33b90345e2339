//! The subscriber's protocol, free of I/O: what a [`Follower`] knows of the
//! history it follows, and what it does with a snapshot, an event or a seq
//! check. [`crate::subscriber`] drives it against Redis; the deterministic
//! simulation (`tests/simulation`) drives the same code against a store that
//! loses writes, rewinds and reorders.
//!
//! # Forked histories
//!
//! Every change Redis takes is one event with the next seq and a **head**:
//! a hash chained through every event before it (the scripts compute it).
//! Redis can come back *older* than it was: restarted from an RDB written
//! before the last writes, or failed over to a replica that had not received
//! them. The dataset then has a lower seq, or the same seq reached by other
//! events, and its head differs from the one the follower holds. So:
//!
//! - an event applies only when it is the next seq *and* its `prev_head` is
//!   the follower's head; any other event of a newer seq is a gap or a fork;
//! - the periodic check reads seq and head together: same seq and another
//!   head, or a lower seq, is a fork; never "in sync";
//! - a resync reads the store's log (its last events) with the snapshot.
//!   When the log continues the follower's own head, its events are applied
//!   in order, re-approvals (REMOVE) included: they are proven to follow what
//!   the follower holds. Otherwise the history forked (or the follower is
//!   older than the log): the follower finds the last point both histories
//!   share in its recent heads, applies the store's events after it (they
//!   happened after the fork, so a REMOVE among them is a re-approval made
//!   after the rules the follower holds), then **merges** the snapshot. A
//!   rule the store forgot is never dropped: rules leave a denylist only by
//!   a proven REMOVE or by expiry;
//! - a follower that restores (an issuer's) then re-writes every live rule
//!   it holds that the snapshot lacks or holds weaker, so the store gets
//!   back what it forgot.
//!
//! What is not promised: a re-approval that only a lost part of the history
//! held can come back as a revocation (the fail-safe direction), and a rule
//! is only as durable as the processes holding it (see the README's
//! guarantees).

use std::collections::VecDeque;

use crate::denylist::Denylist;
use crate::event::{Change, Event, Head};
use crate::rule::Rule;

/// How many recent heads a follower remembers, and how many events the
/// store's log keeps: the window in which a resync proves continuation or
/// finds the fork point.
pub const HISTORY_WINDOW: usize = 10_000;

/// Why a follower lost track of the history: the `reason` of a resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// An event arrived with a seq past the next one.
    Gap,
    /// The store's history is not the one the follower holds.
    Fork,
    /// A check saw the store ahead twice: events were lost silently.
    Behind,
}

/// What a store's snapshot holds, as a follower reads it.
#[derive(Debug, Clone, Default)]
pub struct SyncReply {
    /// The store's seq.
    pub seq: u64,
    /// The store's head at `seq`.
    pub head: Head,
    /// Events from the store's log, in seq order (see `store/lua/snapshot.lua`
    /// for which). `None` where an entry could not be decoded: the log then
    /// proves nothing.
    pub log: Option<Vec<Event>>,
    /// Every rule the store holds.
    pub rules: Vec<Rule>,
}

/// How a sync related the store's history to the follower's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The follower's first sync: the snapshot was taken as it is.
    First,
    /// The store's history continues the follower's; its log was applied.
    Continued,
    /// The histories forked at a point the log shows; the store's events
    /// after it were applied and the snapshot merged.
    Forked,
    /// No shared point could be proven (a fork older than the log, an
    /// emptied store, or a follower away longer than the log): the snapshot
    /// was merged and nothing local was dropped.
    Unproven,
}

/// The outcome of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// How the histories related.
    pub relation: Relation,
    /// Rules to write back into the store (restoring followers only): live
    /// rules held locally that the snapshot lacks or holds weaker.
    pub restore: Vec<Rule>,
}

/// What a seq check proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// In sync with the store as of this time (milliseconds since the epoch).
    InSyncAt(u64),
    /// The store is ahead; the next check tells.
    Waiting,
}

/// A follower's position in the history it follows.
#[derive(Debug, Clone)]
pub struct Follower {
    /// Seq of the last event applied.
    last_seq: u64,
    /// The head after it.
    head: Head,
    /// `(seq, head)` of the last [`HISTORY_WINDOW`] positions, oldest first.
    recent: VecDeque<(u64, Head)>,
    /// A seq and head a check saw ahead of us, and when.
    awaited: Option<(u64, Head, u64)>,
    /// Whether a snapshot was ever applied.
    synced: bool,
    /// Whether this follower writes back what the store forgot.
    restores: bool,
}

impl Follower {
    /// A follower that has never synced; `restores` for issuers.
    pub fn new(restores: bool) -> Follower {
        Follower {
            last_seq: 0,
            head: Head::GENESIS,
            recent: VecDeque::new(),
            awaited: None,
            synced: false,
            restores,
        }
    }

    /// Seq of the last event applied.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The head of the history followed.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Whether a snapshot was ever applied.
    pub fn has_synced(&self) -> bool {
        self.synced
    }

    /// What to ask the store's snapshot for: the last seq and head, `None`
    /// before the first sync (no log is needed then).
    pub fn position(&self) -> Option<(u64, Head)> {
        self.synced.then_some((self.last_seq, self.head))
    }

    /// Applies a snapshot read after subscribing; see the module docs.
    pub fn on_sync(&mut self, reply: SyncReply, denylist: &Denylist, now: u64) -> Synced {
        self.awaited = None;
        let log = reply.log.as_deref().filter(|log| chained(log));
        // Which of our recent positions stay true in the store's history,
        // and the store's events after them.
        let (relation, keep_until, events): (_, Option<u64>, &[Event]) = if !self.synced {
            (Relation::First, None, log.unwrap_or_default())
        } else if let Some(events) = self.continuation(log, reply.seq, reply.head) {
            (Relation::Continued, Some(self.last_seq), events)
        } else if let Some((shared, events)) = log.and_then(|log| self.fork_point(log)) {
            (Relation::Forked, Some(shared), events)
        } else {
            (Relation::Unproven, None, log.unwrap_or_default())
        };
        match relation {
            Relation::Continued | Relation::Forked => {
                for event in events {
                    apply(event, denylist);
                }
            }
            Relation::First | Relation::Unproven => {}
        }
        if relation != Relation::Continued {
            // Merge, never replace: rules leave only by a proven REMOVE
            // (applied above) or by expiry.
            denylist.apply_batch(&reply.rules);
        }
        self.adopt(keep_until, events, reply.seq, reply.head);
        let restore = if self.restores {
            missing_from(&reply.rules, denylist, now)
        } else {
            Vec::new()
        };
        Synced { relation, restore }
    }

    /// Applies one event from the subscription. `Ok(true)` when applied,
    /// `Ok(false)` for a duplicate; an error ends the session.
    pub fn on_event(&mut self, event: &Event, denylist: &Denylist) -> Result<bool, Lost> {
        if event.seq <= self.last_seq {
            // A duplicate, unless its head says it belongs to another history.
            return match self.recent_head(event.seq) {
                Some(head) if head != event.head => Err(Lost::Fork),
                _ => Ok(false),
            };
        }
        if event.seq != self.last_seq + 1 {
            return Err(Lost::Gap);
        }
        if event.prev_head != self.head {
            return Err(Lost::Fork);
        }
        apply(event, denylist);
        self.advance(event.seq, event.head);
        Ok(true)
    }

    /// Judges the store's seq and head read at `now_ms`.
    pub fn on_check(&mut self, seq: u64, head: Head, now_ms: u64) -> Result<Checked, Lost> {
        if seq < self.last_seq || (seq == self.last_seq && head != self.head) {
            return Err(Lost::Fork);
        }
        // A position seen ahead before: reached since, on the same history,
        // it proves we were in sync as of then.
        let mut proved = None;
        if let Some((target, target_head, seen_at_ms)) = self.awaited.take() {
            if self.last_seq < target {
                return Err(Lost::Behind);
            }
            match self.recent_head(target) {
                Some(held) if held != target_head => return Err(Lost::Fork),
                _ => proved = Some(seen_at_ms),
            }
        }
        if seq == self.last_seq {
            return Ok(Checked::InSyncAt(now_ms));
        }
        self.awaited = Some((seq, head, now_ms));
        Ok(proved.map_or(Checked::Waiting, Checked::InSyncAt))
    }

    /// The log's events after our position, when they lead from our head
    /// to the store's (`seq`, `head`).
    fn continuation<'a>(
        &self,
        log: Option<&'a [Event]>,
        seq: u64,
        head: Head,
    ) -> Option<&'a [Event]> {
        if seq == self.last_seq && head == self.head {
            return Some(&[]);
        }
        let log = log?;
        let start = log.iter().position(|e| e.seq == self.last_seq + 1)?;
        let events = &log[start..];
        let last = events.last()?;
        (events[0].prev_head == self.head && last.seq == seq && last.head == head).then_some(events)
    }

    /// The last position both histories share (as the log proves it) and
    /// the log's events after it.
    fn fork_point<'a>(&self, log: &'a [Event]) -> Option<(u64, &'a [Event])> {
        let shared = |seq: u64, head: Head| self.recent_head(seq) == Some(head);
        for (index, event) in log.iter().enumerate().rev() {
            if shared(event.seq, event.head) {
                return Some((event.seq, &log[index + 1..]));
            }
        }
        let first = log.first()?;
        let before = first.seq.checked_sub(1)?;
        shared(before, first.prev_head).then_some((before, log))
    }

    /// Takes the store's position: our recent positions up to `keep_until`
    /// stay (the histories share them), then the store's `events`, then its
    /// current seq and head.
    fn adopt(&mut self, keep_until: Option<u64>, events: &[Event], seq: u64, head: Head) {
        match keep_until {
            Some(until) => self.recent.retain(|&(held, _)| held <= until),
            None => self.recent.clear(),
        }
        for event in events.iter().filter(|e| e.seq < seq) {
            self.push_recent(event.seq, event.head);
        }
        self.last_seq = seq;
        self.head = head;
        self.push_recent(seq, head);
        self.synced = true;
    }

    fn advance(&mut self, seq: u64, head: Head) {
        self.last_seq = seq;
        self.head = head;
        self.push_recent(seq, head);
    }

    /// Records a position; `recent` only ever holds consecutive seqs.
    fn push_recent(&mut self, seq: u64, head: Head) {
        if self
            .recent
            .back()
            .is_some_and(|&(last, _)| last.checked_add(1) != Some(seq))
        {
            self.recent.clear();
        }
        if self.recent.len() == HISTORY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, head));
    }

    /// The head we hold for `seq`, if it is recent enough to be known.
    pub fn recent_head(&self, seq: u64) -> Option<Head> {
        head_at(&self.recent, seq)
    }

    /// The recent `(seq, head)` positions of the history followed, oldest
    /// first, consecutive.
    pub fn recent_positions(&self) -> &VecDeque<(u64, Head)> {
        &self.recent
    }
}

/// The head `positions` (consecutive, oldest first) hold for `seq`.
pub fn head_at(positions: &VecDeque<(u64, Head)>, seq: u64) -> Option<Head> {
    let (first, _) = *positions.front()?;
    let index = usize::try_from(seq.checked_sub(first)?).ok()?;
    positions
        .get(index)
        .filter(|&&(held, _)| held == seq)
        .map(|&(_, head)| head)
}

/// Whether consecutive events chain: each seq one more and each prev_head
/// the head before.
fn chained(events: &[Event]) -> bool {
    events
        .windows(2)
        .all(|pair| pair[1].seq == pair[0].seq + 1 && pair[1].prev_head == pair[0].head)
}

fn apply(event: &Event, denylist: &Denylist) {
    match &event.change {
        Change::Add(rule) => denylist.apply(rule),
        Change::Remove(key) => {
            denylist.remove(key);
        }
    }
}

/// Live rules of `denylist` (at `now`) that `held` lacks or holds weaker.
fn missing_from(held: &[Rule], denylist: &Denylist, now: u64) -> Vec<Rule> {
    let Some(local) = denylist.rules(now) else {
        return Vec::new();
    };
    let held: std::collections::HashMap<_, _> = held.iter().map(|rule| (&rule.key, rule)).collect();
    local
        .into_iter()
        .filter(|rule| match held.get(&rule.key) {
            None => true,
            Some(stored) => !stored.covers(rule),
        })
        .collect()
}
