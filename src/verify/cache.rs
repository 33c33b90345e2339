//! The verified-token cache: SHA-256 of the whole token → its claims,
//! bounded, never used at or past the token's `exp`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use super::Claims;

/// SHA-256 of a whole token.
type Digest = [u8; 32];

/// The digest is uniformly random already: its first 8 bytes are the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*b) << (8 * i);
        }
    }
}

struct CacheEntry {
    claims: Arc<Claims>,
    exp: u64,
}

/// Shards of `digest → claims`, each behind its own mutex (held for one
/// lookup or insert, never across I/O).
type CacheShard = HashMap<Digest, CacheEntry, BuildHasherDefault<DigestHasher>>;

pub(super) struct TokenCache {
    shards: Box<[Mutex<CacheShard>]>,
    per_shard: usize,
}

const CACHE_SHARDS: usize = 16;

impl TokenCache {
    pub(super) fn new(capacity: usize) -> TokenCache {
        let per_shard = capacity.div_ceil(CACHE_SHARDS);
        TokenCache {
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            per_shard,
        }
    }

    pub(super) fn digest(token: &str) -> Digest {
        crate::crypto::sha256(token.as_bytes())
    }

    fn shard(&self, digest: &Digest) -> std::sync::MutexGuard<'_, CacheShard> {
        let index = usize::from(digest[31]) % self.shards.len();
        // A panic while holding a shard cannot leave a half-written entry
        // (inserts and removals are single map calls): keep using it.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims of a token verified before, while `now < exp`.
    pub(super) fn get(&self, digest: &Digest, now: u64) -> Option<Arc<Claims>> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(digest);
        match shard.get(digest) {
            Some(entry) if now < entry.exp => Some(entry.claims.clone()),
            Some(_) => {
                shard.remove(digest);
                None
            }
            None => None,
        }
    }

    pub(super) fn insert(&self, digest: Digest, claims: Arc<Claims>, now: u64) {
        if self.per_shard == 0 || now >= claims.exp {
            return;
        }
        let mut shard = self.shard(&digest);
        if shard.len() >= self.per_shard && !shard.contains_key(&digest) {
            shard.retain(|_, entry| now < entry.exp);
            if shard.len() >= self.per_shard {
                // Full of live tokens: drop one; which one does not matter
                // much (the digests are random, so this one is too).
                if let Some(victim) = shard.keys().next().copied() {
                    shard.remove(&victim);
                }
            }
        }
        let exp = claims.exp;
        shard.insert(digest, CacheEntry { claims, exp });
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

    #[test]
    fn the_cache_is_bounded_and_honours_exp() {
        let cache = TokenCache::new(32);
        let claims = |exp| {
            Arc::new(Claims {
                iss: "i".into(),
                sub: "s".into(),
                aud: Audience::One("a".into()),
                client_id: "c".into(),
                scope: String::new(),
                iat: 0,
                exp,
                nbf: None,
                jti: "j".into(),
                sid: String::new(),
            })
        };
        for i in 0..1000 {
            cache.insert(TokenCache::digest(&i.to_string()), claims(100), 10);
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        let d = TokenCache::digest("x");
        cache.insert(d, claims(100), 10);
        assert!(cache.get(&d, 99).is_some());
        assert!(cache.get(&d, 100).is_none(), "never used at or past exp");
        cache.insert(d, claims(100), 100);
        assert!(
            cache.get(&d, 50).is_none(),
            "an expired token is not cached"
        );
    }
}
