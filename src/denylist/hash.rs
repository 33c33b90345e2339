//! Rule keys hashed to 128 bits: what the filter and the exact map store.
//!
//! Each kind of key is hashed with its own seed, derived from a per-denylist
//! random seed, so the string never needs its `kind:` prefix on the hot path
//! and an attacker who picks `sub` values cannot aim at chosen buckets.
//! A `subclient` key is derived from the `sub` and `client` hashes that the
//! check computes anyway, so a token's five keys cost four string hashes.

use xxhash_rust::xxh3::xxh3_128_with_seed;

use crate::rule::{KeyKind, RuleKey, TokenKeys};

/// A rule key hashed to 128 bits. `lo` feeds the exact map's buckets, `hi`
/// the shard index and the bloom filter, so the structures stay independent.
/// The low three bits of `hi` hold the key's kind (which filter it belongs
/// to), leaving 125 bits of hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyHash {
    pub(crate) lo: u64,
    pub(crate) hi: u64,
}

impl KeyHash {
    /// The index of the key's kind in [`KeyKind::ALL`].
    #[inline]
    pub(crate) fn kind_index(self) -> usize {
        (self.hi & 0b111) as usize
    }

    fn with_kind(self, kind: KeyKind) -> KeyHash {
        KeyHash {
            lo: self.lo,
            hi: (self.hi & !0b111) | kind_index(kind) as u64,
        }
    }
}

/// The index of `kind` in [`KeyKind::ALL`].
#[inline]
pub(crate) fn kind_index(kind: KeyKind) -> usize {
    match kind {
        KeyKind::Jti => 0,
        KeyKind::Sid => 1,
        KeyKind::Sub => 2,
        KeyKind::Client => 3,
        KeyKind::SubClient => 4,
    }
}

impl std::hash::Hash for KeyHash {
    /// The key is already a uniform hash: hand its low word to the table as is.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.lo);
    }
}

/// A [`std::hash::BuildHasher`] for tables keyed by [`KeyHash`]: the hash is
/// the key's own low word, no rehashing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassThrough;

/// The hasher [`PassThrough`] builds.
#[derive(Debug, Default)]
pub(crate) struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `KeyHash`; fold anything else so the
        // hasher stays correct if it is ever fed other data.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl std::hash::BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

/// The seeded hash function of one denylist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHasher {
    seeds: [u64; 5],
}

impl KeyHasher {
    /// A hasher with a fresh random seed.
    pub(crate) fn random() -> KeyHasher {
        // The OS RNG failing is not a reason to stop checking tokens: a fixed
        // seed still hashes well; it only loses resistance to chosen keys.
        let seed = crate::crypto::random_u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
        KeyHasher::with_seed(seed)
    }

    /// A hasher with a fixed seed (tests and benches).
    pub(crate) fn with_seed(seed: u64) -> KeyHasher {
        let mut seeds = [0u64; 5];
        for (i, s) in seeds.iter_mut().enumerate() {
            // splitmix64 steps: distinct, well-mixed per-kind seeds.
            *s = mix64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1)));
        }
        KeyHasher { seeds }
    }

    fn seed(&self, kind: KeyKind) -> u64 {
        self.seeds[kind_index(kind)]
    }

    /// The hash of one string-valued key of the given kind.
    #[inline]
    pub(crate) fn value(&self, kind: KeyKind, value: &str) -> KeyHash {
        split(xxh3_128_with_seed(value.as_bytes(), self.seed(kind))).with_kind(kind)
    }

    /// The `subclient` hash, from the `sub` and `client` hashes: a seeded
    /// mix of two uniform 128-bit values, no second pass over the strings.
    #[inline]
    pub(crate) fn sub_client(&self, sub: KeyHash, client: KeyHash) -> KeyHash {
        let seed = self.seed(KeyKind::SubClient);
        KeyHash {
            lo: mix64(sub.lo ^ client.hi.rotate_left(23) ^ seed),
            hi: mix64(sub.hi ^ client.lo.rotate_left(41) ^ seed.rotate_left(32)),
        }
        .with_kind(KeyKind::SubClient)
    }

    /// The hash of a rule key.
    pub(crate) fn key(&self, key: &RuleKey) -> KeyHash {
        match key {
            RuleKey::Jti(v) => self.value(KeyKind::Jti, v),
            RuleKey::Sid(v) => self.value(KeyKind::Sid, v),
            RuleKey::Sub(v) => self.value(KeyKind::Sub, v),
            RuleKey::Client(v) => self.value(KeyKind::Client, v),
            RuleKey::SubClient { sub, client } => self.sub_client(
                self.value(KeyKind::Sub, sub),
                self.value(KeyKind::Client, client),
            ),
        }
    }

    /// The hashes of every key of a token, each string hashed once. Absent
    /// keys (no `sid`, no `sub`) are `None`.
    #[inline]
    pub(crate) fn token(&self, keys: &TokenKeys<'_>) -> [Option<KeyHash>; 5] {
        let sub = keys.sub.map(|s| self.value(KeyKind::Sub, s));
        let client = self.value(KeyKind::Client, keys.client_id);
        [
            Some(self.value(KeyKind::Jti, keys.jti)),
            keys.sid.map(|s| self.value(KeyKind::Sid, s)),
            sub,
            Some(client),
            sub.map(|s| self.sub_client(s, client)),
        ]
    }
}

/// The splitmix64 / murmur3 finaliser: a bijective avalanche of 64 bits.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn split(h: u128) -> KeyHash {
    KeyHash {
        lo: h as u64,
        hi: (h >> 64) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hashes_match_rule_key_hashes() {
        let hasher = KeyHasher::with_seed(7);
        let keys = TokenKeys {
            jti: "j",
            sid: Some("s"),
            sub: Some("alice"),
            client_id: "web",
            iat: 0,
        };
        let from_token: Vec<KeyHash> = hasher.token(&keys).into_iter().flatten().collect();
        let from_rules: Vec<KeyHash> = keys.rule_keys().iter().map(|k| hasher.key(k)).collect();
        assert_eq!(from_token, from_rules);
    }

    #[test]
    fn the_same_value_under_two_kinds_hashes_differently() {
        let hasher = KeyHasher::with_seed(7);
        assert_ne!(
            hasher.value(KeyKind::Sub, "x"),
            hasher.value(KeyKind::Client, "x")
        );
    }

    #[test]
    fn hashes_carry_their_kind() {
        let hasher = KeyHasher::with_seed(7);
        for kind in KeyKind::ALL {
            let value = if kind == KeyKind::SubClient {
                "a/b"
            } else {
                "x"
            };
            let key = RuleKey::new(kind, value).unwrap();
            assert_eq!(hasher.key(&key).kind_index(), kind_index(kind));
        }
    }

    #[test]
    fn seeds_change_the_hash() {
        let a = KeyHasher::with_seed(1).value(KeyKind::Jti, "x");
        let b = KeyHasher::with_seed(2).value(KeyKind::Jti, "x");
        assert_ne!(a, b);
    }
}
