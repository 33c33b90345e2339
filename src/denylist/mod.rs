//! The denylist: "is this token revoked?" in well under a microsecond.
//!
//! A [`Denylist`] is a bloom filter in front of an exact map of rules, both
//! keyed by 128-bit hashes of rule keys. A check hashes the token's keys once
//! each; a key the filter has never seen answers without touching the map
//! (the common case), and a filter hit is confirmed in the map, so a false
//! positive never revokes anything.
//!
//! # Concurrency
//!
//! Reads never wait and never write shared memory:
//!
//! - the current *generation* (filter + shards) sits behind an `ArcSwap`;
//! - the filter is an array of atomic words the writer only ever `fetch_or`s;
//! - the map is copy-on-write shards of about a thousand entries
//!   ([`shards`]): the writer swaps in a fresh copy of the one shard it
//!   changes.
//!
//! Writers (event application, expiry, rebuilds) take one mutex, so there is
//! exactly one writer at a time. Why this structure and not another:
//! `CRATES.md` measured a whole-map arc-swap snapshot (36 ms to republish
//! 1 M rules per change), papaya (70 bytes a rule, over the 64-byte budget),
//! `RwLock`/dashmap (readers write the lock word and wait on the writer) and
//! evmap/left-right (two copies of the map). Copy-on-write shards keep one
//! copy, lock-free reads and a change cost of a few microseconds;
//! `benches/denylist.rs` holds the figures.
//!
//! # Expiry and rebuilds
//!
//! A rule is in force while `now < expires_at`; [`Denylist::expire`] drops
//! the ones that are not (it copies only the shards holding one). The filter
//! cannot forget keys, so removed and expired rules leave stale bits;
//! [`Denylist::maintain`] rebuilds it (and re-shards the map) when stale bits
//! would push it past its target false-positive rate, when it shrinks far
//! below its capacity, and [`Denylist::apply`] grows it when the rule count
//! passes its capacity. A rebuild publishes a whole new generation at once, so
//! a reader never sees a live rule vanish or a state older than it had.

mod filter;
mod hash;
mod shards;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use crate::rule::{KeyKind, RevokedBefore, Rule, RuleKey, TokenKeys};
use filter::BlockedBloom;
use hash::{KeyHash, KeyHasher};
use shards::{ALL, Entry, Shards, Table};

/// The smallest filter capacity, in rules.
const MIN_CAPACITY: usize = 1024;
/// Rules of filter capacity per shard: a change copies one shard of about
/// half this many live rules.
const CAPACITY_PER_SHARD: usize = 1024;

/// Why a token is revoked: the kind of key that matched and its rule's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// The kind of the key whose rule matched (`jti`, `sid`, …).
    pub kind: KeyKind,
    /// That rule's `revoked_before`.
    pub revoked_before: RevokedBefore,
}

/// Figures about a denylist, for metrics and benches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Rules in the map (live, or expired but not yet swept).
    pub rules: usize,
    /// Size of the bloom filter in bits.
    pub bloom_bits: usize,
    /// Rules the filter is sized for before it must grow.
    pub bloom_capacity: usize,
    /// Number of map shards.
    pub shards: usize,
    /// Heap bytes held by the filter and the map's tables.
    pub memory_bytes: usize,
}

/// What one [`Denylist::maintain`] pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Maintenance {
    /// Rules dropped because they expired.
    pub expired: usize,
    /// Whether the filter and shards were rebuilt.
    pub rebuilt: bool,
}

/// A cheap-to-clone handle on one denylist. Clones share the same rules.
#[derive(Clone)]
pub struct Denylist {
    shared: Arc<Shared>,
}

struct Shared {
    hasher: KeyHasher,
    /// The generation readers use; replaced whole by rebuilds.
    current: ArcSwap<Generation>,
    /// The single writer's bookkeeping; readers never take this lock.
    writer: Mutex<Writer>,
    /// Rule count, written by the writer only, read by metrics.
    rules: AtomicUsize,
}

/// A filter and the shards it guards, published together.
struct Generation {
    filter: BlockedBloom,
    shards: Shards,
}

/// State only the writer touches.
struct Writer {
    /// Rules in the map.
    rules: usize,
    /// Keys inserted into the current filter, counting stale ones.
    filter_load: usize,
    /// Per shard: the earliest `expires_at` in it (`u32::MAX` when empty),
    /// so expiry copies only the shards that hold an expired rule.
    min_expiry: Vec<u32>,
}

impl Default for Denylist {
    fn default() -> Self {
        Denylist::new()
    }
}

impl std::fmt::Debug for Denylist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denylist")
            .field("rules", &self.len())
            .finish_non_exhaustive()
    }
}

// === impl Denylist ===

impl Denylist {
    /// An empty denylist with a random hash seed.
    pub fn new() -> Denylist {
        Denylist::with_capacity(MIN_CAPACITY)
    }

    /// An empty denylist sized for `capacity` rules before its first rebuild.
    pub fn with_capacity(capacity: usize) -> Denylist {
        Denylist::build(KeyHasher::random(), capacity)
    }

    /// An empty denylist with a fixed hash seed (reproducible tests and benches).
    pub fn with_seed(seed: u64, capacity: usize) -> Denylist {
        Denylist::build(KeyHasher::with_seed(seed), capacity)
    }

    fn build(hasher: KeyHasher, capacity: usize) -> Denylist {
        let capacity = capacity.max(MIN_CAPACITY);
        let tables = Shards::empty_tables(capacity / CAPACITY_PER_SHARD);
        let writer = Writer {
            rules: 0,
            filter_load: 0,
            min_expiry: vec![u32::MAX; tables.len()],
        };
        Denylist {
            shared: Arc::new(Shared {
                hasher,
                current: ArcSwap::from_pointee(Generation {
                    filter: BlockedBloom::with_capacity(capacity),
                    shards: Shards::from_tables(tables),
                }),
                writer: Mutex::new(writer),
                rules: AtomicUsize::new(0),
            }),
        }
    }

    /// Whether a token with these keys is revoked at `now` (seconds since the
    /// epoch), and by which key. The hot path: each key string is hashed once,
    /// keys the filter has never seen cost no map lookup, nothing is written.
    #[inline]
    pub fn is_revoked(&self, keys: &TokenKeys<'_>, now: u64) -> Option<Revoked> {
        let hashes = self.shared.hasher.token(keys);
        let generation = self.shared.current.load();
        let (iat, now) = (clamp(keys.iat), clamp(now));
        for (kind, key) in KeyKind::ALL.into_iter().zip(hashes) {
            let Some(key) = key else { continue };
            if !generation.filter.may_contain(key) {
                continue;
            }
            if let Some(entry) = generation.shards.get(key)
                && entry.revokes(iat, now)
            {
                return Some(Revoked {
                    kind,
                    revoked_before: revoked_before_of(entry),
                });
            }
        }
        None
    }

    /// The rule for `key`, if one is in force at `now`. Times come back as
    /// stored (clamped to `u32` seconds).
    pub fn get(&self, key: &RuleKey, now: u64) -> Option<Rule> {
        let hash = self.shared.hasher.key(key);
        let entry = self.shared.current.load().shards.get(hash)?;
        (clamp(now) < entry.expires_at).then(|| Rule {
            key: key.clone(),
            revoked_before: revoked_before_of(entry),
            expires_at: u64::from(entry.expires_at),
        })
    }

    /// Adds a rule, or merges it into the rule already held for its key.
    pub fn apply(&self, rule: &Rule) {
        self.apply_batch(std::slice::from_ref(rule));
    }

    /// Adds or merges many rules, copying each touched shard once: how a
    /// snapshot is loaded.
    pub fn apply_batch(&self, rules: &[Rule]) {
        if rules.is_empty() {
            return;
        }
        let mut writer = self.lock_writer();
        let needed = writer.filter_load.saturating_add(rules.len());
        if needed > self.shared.current.load().filter.capacity() {
            let target = writer.rules.saturating_add(rules.len());
            self.rebuild(&mut writer, target.saturating_mul(2));
        }
        let generation = self.shared.current.load_full();
        let mut changes: Vec<(usize, KeyHash, Entry)> = rules
            .iter()
            .map(|rule| {
                let key = self.shared.hasher.key(&rule.key);
                (generation.shards.index(key), key, entry_of(rule))
            })
            .collect();
        // Set filter bits before publishing the map: a reader that sees a bit
        // but not yet the entry answers "not revoked", as before the change.
        for &(_, key, _) in &changes {
            generation.filter.insert(key);
        }
        changes.sort_unstable_by_key(|&(index, _, _)| index);
        for group in changes.chunk_by(|a, b| a.0 == b.0) {
            let index = group[0].0;
            let mut table = Table::clone(&generation.shards.table(index));
            let mut min_expiry = writer.min_expiry[index];
            for &(_, key, entry) in group {
                let merged = match table.get(&key) {
                    Some(old) => old.merge(entry),
                    None => {
                        writer.rules += 1;
                        writer.filter_load += 1;
                        entry
                    }
                };
                min_expiry = min_expiry.min(merged.expires_at);
                table.insert(key, merged);
            }
            writer.min_expiry[index] = min_expiry;
            generation.shards.publish(index, table);
        }
        self.shared.rules.store(writer.rules, Ordering::Relaxed);
    }

    /// Deletes the rule for `key` (re-approval). Returns whether there was one.
    pub fn remove(&self, key: &RuleKey) -> bool {
        let mut writer = self.lock_writer();
        let hash = self.shared.hasher.key(key);
        let generation = self.shared.current.load_full();
        let index = generation.shards.index(hash);
        let current = generation.shards.table(index);
        if !current.contains_key(&hash) {
            return false;
        }
        let mut table = Table::clone(&current);
        table.remove(&hash);
        generation.shards.publish(index, table);
        writer.rules -= 1;
        self.shared.rules.store(writer.rules, Ordering::Relaxed);
        true
    }

    /// Drops every rule with `expires_at <= now`; returns how many. Callers on
    /// a real clock pass a `now` a little behind it, so that a reader whose
    /// clock lags by a moment never sees a rule vanish it still considers live.
    pub fn expire(&self, now: u64) -> usize {
        let mut writer = self.lock_writer();
        self.expire_locked(&mut writer, clamp(now))
    }

    /// Expires rules, then rebuilds the filter and shards if it is filling up
    /// with stale bits (of removed and expired rules), or the rules shrank to a
    /// small fraction of its capacity. [`Denylist::apply`] rebuilds too when the
    /// filter is full, so this keeps that work off the event path. Meant for a background task; readers never wait on it.
    pub fn maintain(&self, now: u64) -> Maintenance {
        let mut writer = self.lock_writer();
        let expired = self.expire_locked(&mut writer, clamp(now));
        let capacity = self.shared.current.load().filter.capacity();
        // Rebuild before `apply` would have to (at capacity), once most of the
        // filter's load is stale bits that a rebuild clears.
        let stale = writer.filter_load - writer.rules;
        let filling = writer.filter_load.saturating_mul(4) > capacity.saturating_mul(3);
        let mostly_stale = stale.saturating_mul(2) > writer.filter_load;
        let oversized = capacity > MIN_CAPACITY && writer.rules.saturating_mul(8) < capacity;
        let rebuilt = (filling && mostly_stale) || oversized;
        if rebuilt {
            let target = writer.rules.saturating_mul(2);
            self.rebuild(&mut writer, target);
        }
        Maintenance { expired, rebuilt }
    }

    /// Number of rules held (live, or expired and not yet swept).
    pub fn len(&self) -> usize {
        self.shared.rules.load(Ordering::Relaxed)
    }

    /// Whether no rule is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sizes and memory, for metrics and benches. Walks every shard: not for
    /// the request path.
    pub fn stats(&self) -> Stats {
        let generation = self.shared.current.load_full();
        let table_bytes: usize = generation
            .shards
            .tables()
            .map(|table| table.allocation_size() + std::mem::size_of::<Table>())
            .sum();
        let shard_overhead = generation.shards.count() * std::mem::size_of::<ArcSwap<Table>>();
        Stats {
            rules: self.len(),
            bloom_bits: generation.filter.bits(),
            bloom_capacity: generation.filter.capacity(),
            shards: generation.shards.count(),
            memory_bytes: generation.filter.bits() / 8 + table_bytes + shard_overhead,
        }
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // The writer's state stays consistent between statements that can
        // panic, so a poisoned lock is safe to keep using.
        self.shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn expire_locked(&self, writer: &mut Writer, now: u32) -> usize {
        let generation = self.shared.current.load_full();
        let mut expired = 0;
        for index in 0..generation.shards.count() {
            if writer.min_expiry[index] > now {
                continue;
            }
            let mut table = Table::clone(&generation.shards.table(index));
            let before = table.len();
            table.retain(|_, entry| entry.expires_at > now);
            expired += before - table.len();
            writer.min_expiry[index] = min_expiry_of(&table);
            generation.shards.publish(index, table);
        }
        writer.rules -= expired;
        self.shared.rules.store(writer.rules, Ordering::Relaxed);
        expired
    }

    /// Publishes a new generation: a filter sized for `capacity` rules and
    /// shards to match, holding every current rule.
    fn rebuild(&self, writer: &mut Writer, capacity: usize) {
        let capacity = capacity.max(MIN_CAPACITY);
        let old = self.shared.current.load_full();
        let filter = BlockedBloom::with_capacity(capacity);
        let mut tables = Shards::empty_tables(capacity / CAPACITY_PER_SHARD);
        let mask = tables.len() - 1;
        for table in old.shards.tables() {
            for (&key, &entry) in table.iter() {
                filter.insert(key);
                tables[Shards::index_of(key, mask)].insert(key, entry);
            }
        }
        writer.min_expiry = tables.iter().map(min_expiry_of).collect();
        writer.filter_load = writer.rules;
        self.shared.current.store(Arc::new(Generation {
            filter,
            shards: Shards::from_tables(tables),
        }));
    }
}

/// Seconds since the epoch as the map stores them.
fn clamp(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(ALL - 1).min(ALL - 1)
}

fn entry_of(rule: &Rule) -> Entry {
    Entry {
        revoked_before: match rule.revoked_before {
            RevokedBefore::IssuedAtOrBefore(iat) => clamp(iat),
            RevokedBefore::All => ALL,
        },
        expires_at: clamp(rule.expires_at),
    }
}

fn revoked_before_of(entry: Entry) -> RevokedBefore {
    match entry.revoked_before {
        ALL => RevokedBefore::All,
        iat => RevokedBefore::IssuedAtOrBefore(u64::from(iat)),
    }
}

fn min_expiry_of(table: &Table) -> u32 {
    table
        .values()
        .map(|entry| entry.expires_at)
        .min()
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
