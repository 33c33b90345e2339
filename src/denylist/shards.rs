//! The exact map: copy-on-write shards behind atomic pointers.
//!
//! The map is split into a power-of-two number of small hash tables (about a
//! thousand entries each). A reader loads one shard's `Arc` through
//! `arc-swap` (no lock, no shared counter: arc-swap borrows through a
//! thread-local debt slot) and looks the key up in an immutable table. The
//! writer never mutates a table a reader can see: it clones the one shard it
//! changes, edits the copy and swaps it in. A change therefore costs one small
//! table copy (a few microseconds), not a copy of the whole map, and a reader
//! sees every shard either before or after a change, never half of one.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::hash::{KeyHash, PassThrough};

/// Bit value of `revoked_before` meaning "every token".
pub(crate) const ALL: u32 = u32::MAX;

/// A rule as the map stores it: 8 bytes, times in seconds since the epoch
/// clamped to `u32` (good until 2106), so a slot with its 16-byte key is 24
/// bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Tokens with `iat <=` this are revoked; [`ALL`] revokes every token.
    pub(crate) revoked_before: u32,
    /// The rule is in force while `now < expires_at`.
    pub(crate) expires_at: u32,
}

impl Entry {
    /// The larger of each field.
    pub(crate) fn merge(self, other: Entry) -> Entry {
        Entry {
            revoked_before: self.revoked_before.max(other.revoked_before),
            expires_at: self.expires_at.max(other.expires_at),
        }
    }

    /// Whether a token issued at `iat` is revoked by this entry at `now`.
    #[inline]
    pub(crate) fn revokes(self, iat: u32, now: u32) -> bool {
        now < self.expires_at && iat <= self.revoked_before
    }
}

/// One shard's table.
pub(crate) type Table = hashbrown::HashMap<KeyHash, Entry, PassThrough>;

/// The shards of one generation of the map.
pub(crate) struct Shards {
    slots: Box<[ArcSwap<Table>]>,
    mask: usize,
}

impl Shards {
    /// Splits `tables` (a power-of-two count) into shards.
    pub(crate) fn from_tables(tables: Vec<Table>) -> Shards {
        debug_assert!(tables.len().is_power_of_two());
        let mask = tables.len() - 1;
        Shards {
            slots: tables.into_iter().map(ArcSwap::from_pointee).collect(),
            mask,
        }
    }

    /// `count` empty shards, rounded up to a power of two.
    pub(crate) fn empty_tables(count: usize) -> Vec<Table> {
        (0..count.max(1).next_power_of_two())
            .map(|_| Table::with_hasher(PassThrough))
            .collect()
    }

    /// How many shards there are.
    pub(crate) fn count(&self) -> usize {
        self.slots.len()
    }

    /// The shard a key lives in, from hash bits the table does not use.
    #[inline]
    pub(crate) fn index_of(key: KeyHash, mask: usize) -> usize {
        ((key.hi >> 32) as usize) & mask
    }

    /// The shard index of `key` in this generation.
    #[inline]
    pub(crate) fn index(&self, key: KeyHash) -> usize {
        Shards::index_of(key, self.mask)
    }

    /// The entry for `key`, if any (live or not).
    #[inline]
    pub(crate) fn get(&self, key: KeyHash) -> Option<Entry> {
        self.slots[self.index(key)].load().get(&key).copied()
    }

    /// The current table of shard `index`, for the writer to copy.
    pub(crate) fn table(&self, index: usize) -> Arc<Table> {
        self.slots[index].load_full()
    }

    /// Publishes a new table for shard `index`.
    pub(crate) fn publish(&self, index: usize, table: Table) {
        self.slots[index].store(Arc::new(table));
    }

    /// Every shard's current table, for rebuilds and memory accounting.
    pub(crate) fn tables(&self) -> impl Iterator<Item = Arc<Table>> + '_ {
        self.slots.iter().map(ArcSwap::load_full)
    }
}
