//! The verified-token cache: a token that passed every check but the
//! denylist → its claims, bounded, never used at or past the token's `exp`.
//!
//! # Lookup: a keyed hash finds, the token's bytes confirm
//!
//! An entry is found by a 64-bit XXH3 of the whole token, keyed with a
//! 192-byte secret drawn from the operating system's generator
//! ([`crate::crypto::fill`]) when the cache is made, and confirmed by
//! comparing the token it stores with the one presented, every byte. The
//! hash only picks a slot; it never vouches for a token. Two tokens with the
//! same hash share one slot (the later replaces the earlier), and a token
//! that finds another's bytes there is a miss: it goes through full
//! verification. A collision costs a signature check, never a skipped one.
//! The comparison is not constant-time: it tells the caller whether the
//! token it already holds was seen, nothing about a secret it lacks.
//!
//! XXH3 keyed this way is not a MAC, and it does not need to be: only tokens
//! that passed the signature check are inserted, so an attacker who wanted
//! to crowd one slot would have to obtain tokens from the issuer, and would
//! still only turn hits into misses.
//!
//! # What it holds
//!
//! The raw bearer tokens, until their `exp` passes (the entry is dropped
//! when a lookup or an insert into a full shard finds it expired) or they
//! are evicted. This is the price of speed: SHA-256 of the bench's token
//! was 16.9 k of the 20.5 k instructions of a cached request through the
//! layer (callgrind), about 340 ns; the keyed XXH3 is 0.4 k. A bearer token
//! is short-lived and passes through the process's memory on every request
//! anyway (the request's headers hold it); the cache keeps it longer, for
//! at most its remaining lifetime. Tokens longer than
//! [`MAX_CACHED_TOKEN_LEN`] are not cached (they are verified in full each
//! time), so the bytes held are bounded by capacity × 4 KiB.
//!
//! Per entry: the map slot (8-byte hash, then the token's box, the claims'
//! `Arc` and `exp`: 40 bytes, plus a control byte; at 44 to 87 % load, 47
//! to 94 bytes, where SHA-256 keys took 56 to 112), the token's heap copy
//! (its length, rounded up to the allocator's size class) and the shared
//! `Claims`, which the request path hands out anyway.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use xxhash_rust::xxh3::{SecretInput, xxh3_64_with_secret_input};

use super::Claims;

/// Tokens longer than this are verified in full every time, never cached:
/// it bounds the bytes a full cache holds. Access tokens are a few hundred
/// bytes; the verifier accepts up to [`MAX_TOKEN_LEN`](super::MAX_TOKEN_LEN).
pub(super) const MAX_CACHED_TOKEN_LEN: usize = 4 * 1024;

/// The XXH3 secret's length (its default secret's size; at least 136).
const SECRET_LEN: usize = 192;

/// The keyed hash of a token: which slot it would occupy.
pub(super) type TokenHash = u64;

/// The key is a keyed hash already: hand it to the table as is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key is a `u64`); fold anything else
        // so the hasher stays correct if it is ever fed other data.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct CacheEntry {
    /// The whole token, compared in full on every hit.
    token: Box<[u8]>,
    claims: Arc<Claims>,
    exp: u64,
}

/// Shards of `hash → (token, claims)`, each behind its own mutex (held for
/// one lookup or insert, never across I/O).
type CacheShard = HashMap<TokenHash, CacheEntry, BuildHasherDefault<PassThrough>>;

pub(super) struct TokenCache {
    shards: Box<[Mutex<CacheShard>]>,
    per_shard: usize,
    secret: SecretInput<[u8; SECRET_LEN]>,
    /// Every token hashes alike (tests of the collision path).
    #[cfg(test)]
    colliding: bool,
}

const CACHE_SHARDS: usize = 16;

impl TokenCache {
    pub(super) fn new(capacity: usize) -> TokenCache {
        let mut secret = [0u8; SECRET_LEN];
        if crate::crypto::fill(&mut secret).is_err() {
            // The OS RNG failing is not a reason to stop caching: a fixed
            // secret still spreads tokens well, and the byte comparison
            // keeps the cache correct; it only loses its key.
            for (i, b) in secret.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(0x9d) ^ 0x5c;
            }
        }
        TokenCache {
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            per_shard: capacity.div_ceil(CACHE_SHARDS),
            secret: SecretInput::new(secret),
            #[cfg(test)]
            colliding: false,
        }
    }

    /// A cache where every token has the same hash: the slot always holds
    /// the last token inserted, and only the byte comparison tells them
    /// apart.
    #[cfg(test)]
    pub(super) fn colliding(capacity: usize) -> TokenCache {
        TokenCache {
            colliding: true,
            ..TokenCache::new(capacity)
        }
    }

    /// The keyed hash of `token`.
    pub(super) fn hash(&self, token: &str) -> TokenHash {
        #[cfg(test)]
        if self.colliding {
            return 0;
        }
        xxh3_64_with_secret_input(token.as_bytes(), &self.secret)
    }

    fn shard(&self, hash: TokenHash) -> std::sync::MutexGuard<'_, CacheShard> {
        // Bits 32.. : the table's bucket index uses the low bits and its
        // tag the top seven, so the shard does not thin either out.
        let index = (hash >> 32) as usize % self.shards.len();
        // A panic while holding a shard cannot leave a half-written entry
        // (inserts and removals are single map calls): keep using it.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims of `token` (whose hash is `hash`) if it was verified
    /// before, while `now < exp`.
    pub(super) fn get(&self, hash: TokenHash, token: &str, now: u64) -> Option<Arc<Claims>> {
        if self.per_shard == 0 || token.len() > MAX_CACHED_TOKEN_LEN {
            return None;
        }
        let mut shard = self.shard(hash);
        let entry = shard.get(&hash)?;
        if *entry.token != *token.as_bytes() {
            // Another token with the same hash: not this one's claims.
            return None;
        }
        if now < entry.exp {
            return Some(entry.claims.clone());
        }
        shard.remove(&hash);
        None
    }

    /// Remembers that `token` (whose hash is `hash`) verified to `claims`.
    pub(super) fn insert(&self, hash: TokenHash, token: &str, claims: Arc<Claims>, now: u64) {
        if self.per_shard == 0 || now >= claims.exp || token.len() > MAX_CACHED_TOKEN_LEN {
            return;
        }
        let mut shard = self.shard(hash);
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            shard.retain(|_, entry| now < entry.exp);
            if shard.len() >= self.per_shard {
                // Full of live tokens: drop one; which one does not matter
                // much (the keys are keyed hashes, so this one is random).
                if let Some(victim) = shard.keys().next().copied() {
                    shard.remove(&victim);
                }
            }
        }
        let exp = claims.exp;
        let token = token.as_bytes().into();
        shard.insert(hash, CacheEntry { token, claims, exp });
    }

    pub(super) fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Audience;

    fn claims(sub: &str, exp: u64) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "i".into(),
            sub: sub.into(),
            aud: Audience::One("a".into()),
            client_id: "c".into(),
            scope: String::new(),
            iat: 0,
            exp,
            nbf: None,
            jti: "j".into(),
            sid: String::new(),
            resource: Vec::new(),
        })
    }

    fn insert(cache: &TokenCache, token: &str, claims: Arc<Claims>, now: u64) {
        cache.insert(cache.hash(token), token, claims, now);
    }

    fn get(cache: &TokenCache, token: &str, now: u64) -> Option<Arc<Claims>> {
        cache.get(cache.hash(token), token, now)
    }

    #[test]
    fn the_cache_is_bounded_and_honours_exp() {
        let cache = TokenCache::new(32);
        for i in 0..1000 {
            insert(&cache, &i.to_string(), claims("s", 100), 10);
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        insert(&cache, "x", claims("s", 100), 10);
        assert!(get(&cache, "x", 99).is_some());
        assert!(get(&cache, "x", 100).is_none(), "never used at or past exp");
        insert(&cache, "x", claims("s", 100), 100);
        assert!(
            get(&cache, "x", 50).is_none(),
            "an expired token is not cached"
        );
    }

    #[test]
    fn a_token_is_found_only_by_its_own_bytes() {
        let cache = TokenCache::colliding(32);
        assert_eq!(cache.hash("alice's"), cache.hash("mallory's"));
        insert(&cache, "alice's", claims("alice", 100), 10);
        assert_eq!(get(&cache, "alice's", 10).unwrap().sub, "alice");
        // Same hash, same length, one byte apart: still a miss.
        assert!(get(&cache, "alice'S", 10).is_none());
        assert!(get(&cache, "mallory's", 10).is_none());
        assert!(
            get(&cache, "alice", 10).is_none(),
            "a prefix is not the token"
        );
        // The later token takes the slot; each still gets only its own.
        insert(&cache, "mallory's", claims("mallory", 100), 10);
        assert_eq!(get(&cache, "mallory's", 10).unwrap().sub, "mallory");
        assert!(get(&cache, "alice's", 10).is_none());
    }

    #[test]
    fn long_tokens_are_not_cached() {
        let cache = TokenCache::new(32);
        let long = "a".repeat(MAX_CACHED_TOKEN_LEN + 1);
        insert(&cache, &long, claims("s", 100), 10);
        assert_eq!(cache.len(), 0);
        assert!(get(&cache, &long, 10).is_none());
        let longest = "a".repeat(MAX_CACHED_TOKEN_LEN);
        insert(&cache, &longest, claims("s", 100), 10);
        assert!(get(&cache, &longest, 10).is_some());
    }

    #[test]
    fn caches_are_keyed_differently() {
        let (a, b) = (TokenCache::new(1), TokenCache::new(1));
        assert_ne!(a.hash("token"), b.hash("token"));
    }
}
