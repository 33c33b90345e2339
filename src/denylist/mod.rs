//! The denylist: "is this token revoked?" in well under a microsecond.
//!
//! A [`Denylist`] is a bloom filter per kind of key in front of an exact map
//! of rules, all keyed by 128-bit hashes of rule keys. A check hashes the token's keys once
//! each; a key the filter has never seen answers without touching the map
//! (the common case), and a filter hit is confirmed in the map, so a false
//! positive never revokes anything.
//!
//! # Concurrency
//!
//! Reads never wait and never write shared memory:
//!
//! - the current *generation* (filters + shards) sits behind an `ArcSwap`;
//! - a filter is an array of atomic words the writer only ever `fetch_or`s;
//! - the map is copy-on-write shards of about a thousand entries
//!   (`shards.rs`): the writer swaps in a fresh copy of the one shard it
//!   changes.
//!
//! Writers (event application, expiry, rebuilds) take one mutex, so there is
//! exactly one writer at a time. Why this structure and not another:
//! we measured a whole-map arc-swap snapshot (36 ms to republish
//! 1 M rules per change), papaya (70 bytes a rule, over the 64-byte budget),
//! `RwLock`/dashmap (readers write the lock word and wait on the writer) and
//! evmap/left-right (two copies of the map). Copy-on-write shards keep one
//! copy, lock-free reads and a change cost of a few microseconds;
//! `benches/denylist.rs` holds the figures.
//!
//! # Expiry and rebuilds
//!
//! A rule is in force while `now < expires_at`; [`Denylist::expire`] drops
//! the ones that are not (it copies only the shards holding one). A filter
//! cannot forget keys, so removed and expired rules leave stale bits;
//! [`Denylist::maintain`] rebuilds the filters (and re-shards the map) when
//! stale bits would push one past its target false-positive rate or the rules
//! shrank far below its capacity, and [`Denylist::apply`] grows them when a
//! kind's rule count passes its filter's capacity.
//!
//! # One filter per kind
//!
//! Each kind of key (`jti`, `sid`, `sub`, `client`, `subclient`) has its own
//! filter, sized by its own rule count. Millions of `jti` and `sid` rules make
//! those two filters large (one cache miss each), while the few `sub`,
//! `client` and `subclient` rules keep theirs small enough to stay in cache,
//! so a check costs two memory round trips instead of five. A rebuild publishes a whole new generation at once, so
//! a reader never sees a live rule vanish or a state older than it had.

mod filter;
mod hash;
pub mod maintainer;
mod shards;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use crate::rule::{KeyKind, RevokedBefore, Rule, RuleKey, TokenKeys};
use filter::BlockedBloom;
use hash::{KeyHash, KeyHasher};
pub use maintainer::Maintainer;
use shards::{ALL, Entry, Shards, Table};

/// The smallest capacity of one kind's filter, in rules.
const MIN_CAPACITY: usize = 1024;
/// Rules of filter capacity per shard: a change copies one shard of about
/// half this many live rules.
const CAPACITY_PER_SHARD: usize = 1024;
/// Number of kinds of keys, each with its own filter.
const KINDS: usize = KeyKind::ALL.len();

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
    /// Size of the bloom filters in bits, all kinds together.
    pub bloom_bits: usize,
    /// Rules the filters are sized for, all kinds together.
    pub bloom_capacity: usize,
    /// Number of map shards.
    pub shards: usize,
    /// Heap bytes held by the filters and the map's tables.
    pub memory_bytes: usize,
}

/// What one [`Denylist::maintain`] pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Maintenance {
    /// Rules dropped because they expired.
    pub expired: usize,
    /// Whether the filters and shards were rebuilt.
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

/// The filters and the shards they guard, published together.
struct Generation {
    /// One filter per kind, indexed like [`KeyKind::ALL`].
    filters: [BlockedBloom; KINDS],
    shards: Shards,
}

/// State only the writer touches. Per-kind arrays are indexed like
/// [`KeyKind::ALL`].
struct Writer {
    /// Rules in the map, per kind.
    rules: [usize; KINDS],
    /// Keys inserted into each kind's current filter, counting stale ones.
    filter_load: [usize; KINDS],
    /// Per shard: the earliest `expires_at` in it (`u32::MAX` when empty),
    /// so expiry copies only the shards that hold an expired rule.
    min_expiry: Vec<u32>,
    /// The rule key behind each hash, kept only by denylists that must be
    /// able to list their rules (an issuer re-writing them to a Redis that
    /// lost its data). Never read on the request path.
    keys: Option<hashbrown::HashMap<KeyHash, RuleKey, hash::PassThrough>>,
}

impl Writer {
    fn total_rules(&self) -> usize {
        self.rules.iter().sum()
    }
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

    /// An empty denylist sized for `capacity` rules of each kind before its
    /// first rebuild.
    pub fn with_capacity(capacity: usize) -> Denylist {
        Denylist::build(KeyHasher::random(), capacity)
    }

    /// An empty denylist with a fixed hash seed (reproducible tests and benches).
    pub fn with_seed(seed: u64, capacity: usize) -> Denylist {
        Denylist::build(KeyHasher::with_seed(seed), capacity)
    }

    /// An empty denylist that also keeps every rule's key, so that
    /// [`Denylist::rules`] can list them (issuers; costs the key strings).
    pub fn listing() -> Denylist {
        let denylist = Denylist::new();
        denylist.lock_writer().keys = Some(hashbrown::HashMap::with_hasher(hash::PassThrough));
        denylist
    }

    fn build(hasher: KeyHasher, capacity: usize) -> Denylist {
        let generation = Generation::empty([capacity; KINDS]);
        let writer = Writer {
            rules: [0; KINDS],
            filter_load: [0; KINDS],
            min_expiry: vec![u32::MAX; generation.shards.count()],
            keys: None,
        };
        Denylist {
            shared: Arc::new(Shared {
                hasher,
                current: ArcSwap::from_pointee(generation),
                writer: Mutex::new(writer),
                rules: AtomicUsize::new(0),
            }),
        }
    }

    /// Whether a token with these keys is revoked at `now` (seconds since the
    /// epoch), and by which key. The hot path: each key string is hashed once,
    /// keys the filters have never seen cost no map lookup, nothing is written.
    #[inline]
    pub fn is_revoked(&self, keys: &TokenKeys<'_>, now: u64) -> Option<Revoked> {
        let hashes = self.shared.hasher.token(keys);
        let generation = self.shared.current.load();
        // Probe the filter for every key before branching once: the block
        // loads overlap, and a miss (the common case) ends here.
        let suspects = hashes.iter().enumerate().fold(0u8, |suspects, (i, key)| {
            let hit = key.is_some_and(|key| generation.filters[i].may_contain(key));
            suspects | (u8::from(hit) << i)
        });
        if suspects == 0 {
            return None;
        }
        let (iat, now) = (clamp(keys.iat), clamp(now));
        KeyKind::ALL
            .into_iter()
            .zip(hashes)
            .enumerate()
            .filter(|&(i, _)| suspects & (1 << i) != 0)
            .find_map(|(_, (kind, key))| {
                let entry = generation.shards.get(key?)?;
                entry.revokes(iat, now).then(|| Revoked {
                    kind,
                    revoked_before: revoked_before_of(entry),
                })
            })
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
        let mut changes: Vec<(usize, KeyHash, Entry)> = rules
            .iter()
            .map(|rule| (0, self.shared.hasher.key(&rule.key), entry_of(rule)))
            .collect();
        if let Some(keys) = &mut writer.keys {
            for (rule, (_, hash, _)) in rules.iter().zip(&changes) {
                keys.entry(*hash).or_insert_with(|| rule.key.clone());
            }
        }
        self.grow_for(&mut writer, &changes);
        let generation = self.shared.current.load_full();
        // Set filter bits before publishing the map: a reader that sees a bit
        // but not yet the entry answers "not revoked", as before the change.
        for (index, key, _) in &mut changes {
            generation.filters[key.kind_index()].insert(*key);
            *index = generation.shards.index(*key);
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
                        writer.rules[key.kind_index()] += 1;
                        writer.filter_load[key.kind_index()] += 1;
                        entry
                    }
                };
                min_expiry = min_expiry.min(merged.expires_at);
                table.insert(key, merged);
            }
            writer.min_expiry[index] = min_expiry;
            generation.shards.publish(index, table);
        }
        self.publish_count(&writer);
    }

    /// Replaces every rule with `rules` (a snapshot known to be complete),
    /// published as one new generation: readers see the old set or the new
    /// one, never a mix. Rules for one key are merged.
    pub fn replace_all(&self, rules: &[Rule]) {
        let mut writer = self.lock_writer();
        let mut keys = writer
            .keys
            .as_ref()
            .map(|_| hashbrown::HashMap::with_hasher(hash::PassThrough));
        let mut merged = Table::with_hasher(hash::PassThrough);
        for rule in rules {
            let hash = self.shared.hasher.key(&rule.key);
            let entry = entry_of(rule);
            let held = merged
                .get(&hash)
                .map_or(entry, |old: &Entry| old.merge(entry));
            merged.insert(hash, held);
            if let Some(keys) = &mut keys {
                keys.entry(hash).or_insert_with(|| rule.key.clone());
            }
        }
        writer.rules = [0; KINDS];
        for hash in merged.keys() {
            writer.rules[hash.kind_index()] += 1;
        }
        writer.keys = keys;
        let capacities = writer.rules.map(|rules| rules.saturating_mul(2));
        self.publish_generation(&mut writer, capacities, [merged].iter());
        self.publish_count(&writer);
    }

    /// Every rule in force at `now`, for a denylist made with
    /// [`Denylist::listing`]; `None` for one that does not keep keys.
    pub fn rules(&self, now: u64) -> Option<Vec<Rule>> {
        let writer = self.lock_writer();
        let keys = writer.keys.as_ref()?;
        let generation = self.shared.current.load_full();
        let now = clamp(now);
        Some(
            keys.iter()
                .filter_map(|(&hash, key)| {
                    let entry = generation.shards.get(hash)?;
                    (now < entry.expires_at).then(|| Rule {
                        key: key.clone(),
                        revoked_before: revoked_before_of(entry),
                        expires_at: u64::from(entry.expires_at),
                    })
                })
                .collect(),
        )
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
        writer.rules[hash.kind_index()] -= 1;
        if let Some(keys) = &mut writer.keys {
            keys.remove(&hash);
        }
        self.publish_count(&writer);
        true
    }

    /// Drops every rule with `expires_at <= now`; returns how many. Callers on
    /// a real clock pass a `now` a little behind it, so that a reader whose
    /// clock lags by a moment never sees a rule vanish it still considers live.
    pub fn expire(&self, now: u64) -> usize {
        let mut writer = self.lock_writer();
        self.expire_locked(&mut writer, clamp(now))
    }

    /// Expires rules, then rebuilds the filters and shards if one is filling
    /// up with stale bits (of removed and expired rules), or its kind's rules
    /// shrank to a small fraction of its capacity. [`Denylist::apply`]
    /// rebuilds too when a filter is full, so this keeps that work off the
    /// event path. Meant for a background task; readers never wait on it.
    pub fn maintain(&self, now: u64) -> Maintenance {
        let mut writer = self.lock_writer();
        let expired = self.expire_locked(&mut writer, clamp(now));
        let generation = self.shared.current.load_full();
        let rebuild = (0..KINDS).any(|kind| {
            let (rules, load) = (writer.rules[kind], writer.filter_load[kind]);
            let capacity = generation.filters[kind].capacity();
            // Rebuild before `apply` would have to (at capacity), once most
            // of the filter's load is stale bits that a rebuild clears.
            let filling = load.saturating_mul(4) > capacity.saturating_mul(3);
            let mostly_stale = (load - rules).saturating_mul(2) > load;
            let oversized = capacity > MIN_CAPACITY && rules.saturating_mul(8) < capacity;
            (filling && mostly_stale) || oversized
        });
        if rebuild {
            let capacities = writer.rules.map(|rules| rules.saturating_mul(2));
            self.rebuild(&mut writer, capacities);
        }
        Maintenance {
            expired,
            rebuilt: rebuild,
        }
    }

    /// Number of rules held (live, or expired and not yet swept).
    pub fn len(&self) -> usize {
        self.shared.rules.load(Ordering::Relaxed)
    }

    /// Size of the bloom filters in bits (cheap, unlike [`Denylist::stats`]).
    pub fn bloom_bits(&self) -> usize {
        let generation = self.shared.current.load();
        generation.filters.iter().map(BlockedBloom::bits).sum()
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
        let bloom_bits = generation
            .filters
            .iter()
            .map(BlockedBloom::bits)
            .sum::<usize>();
        Stats {
            rules: self.len(),
            bloom_bits,
            bloom_capacity: generation.filters.iter().map(BlockedBloom::capacity).sum(),
            shards: generation.shards.count(),
            memory_bytes: bloom_bits / 8 + table_bytes + shard_overhead,
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

    fn publish_count(&self, writer: &Writer) {
        self.shared
            .rules
            .store(writer.total_rules(), Ordering::Relaxed);
    }

    /// Rebuilds with room to spare if `changes` could overfill a filter.
    fn grow_for(&self, writer: &mut Writer, changes: &[(usize, KeyHash, Entry)]) {
        let mut incoming = [0usize; KINDS];
        for (_, key, _) in changes {
            incoming[key.kind_index()] += 1;
        }
        let generation = self.shared.current.load();
        let overfull = (0..KINDS).any(|kind| {
            writer.filter_load[kind].saturating_add(incoming[kind])
                > generation.filters[kind].capacity()
        });
        drop(generation);
        if overfull {
            let mut capacities = [0usize; KINDS];
            for (kind, capacity) in capacities.iter_mut().enumerate() {
                *capacity = (writer.rules[kind] + incoming[kind]).saturating_mul(2);
            }
            self.rebuild(writer, capacities);
        }
    }

    fn expire_locked(&self, writer: &mut Writer, now: u32) -> usize {
        let generation = self.shared.current.load_full();
        let mut expired = 0;
        for index in 0..generation.shards.count() {
            if writer.min_expiry[index] > now {
                continue;
            }
            let mut table = Table::clone(&generation.shards.table(index));
            table.retain(|key, entry| {
                let keep = entry.expires_at > now;
                if !keep {
                    writer.rules[key.kind_index()] -= 1;
                    if let Some(keys) = &mut writer.keys {
                        keys.remove(key);
                    }
                    expired += 1;
                }
                keep
            });
            writer.min_expiry[index] = min_expiry_of(&table);
            generation.shards.publish(index, table);
        }
        self.publish_count(writer);
        expired
    }

    /// Publishes a new generation holding every current rule, each kind's
    /// filter sized for its entry of `capacities`.
    fn rebuild(&self, writer: &mut Writer, capacities: [usize; KINDS]) {
        let old = self.shared.current.load_full();
        let tables: Vec<Arc<Table>> = old.shards.tables().collect();
        self.publish_generation(writer, capacities, tables.iter().map(|table| &**table));
    }

    /// Publishes a new generation made of the entries of `tables`.
    fn publish_generation<'a>(
        &self,
        writer: &mut Writer,
        capacities: [usize; KINDS],
        tables: impl Iterator<Item = &'a Table>,
    ) {
        let mut generation = Generation::empty(capacities);
        let mut shards = Shards::empty_tables(generation.shards.count());
        let mask = shards.len() - 1;
        for table in tables {
            for (&key, &entry) in table.iter() {
                generation.filters[key.kind_index()].insert(key);
                shards[Shards::index_of(key, mask)].insert(key, entry);
            }
        }
        writer.min_expiry = shards.iter().map(min_expiry_of).collect();
        writer.filter_load = writer.rules;
        generation.shards = Shards::from_tables(shards);
        self.shared.current.store(Arc::new(generation));
    }
}

impl Generation {
    /// Empty filters of the given capacities (at least [`MIN_CAPACITY`]
    /// each) and empty shards for their total.
    fn empty(capacities: [usize; KINDS]) -> Generation {
        let capacities = capacities.map(|capacity| capacity.max(MIN_CAPACITY));
        let total: usize = capacities.iter().sum();
        Generation {
            filters: capacities.map(BlockedBloom::with_capacity),
            shards: Shards::from_tables(Shards::empty_tables(total / CAPACITY_PER_SHARD)),
        }
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
