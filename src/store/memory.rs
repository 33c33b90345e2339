//! The embedded in-memory store: one process, no replication.
//!
//! Rules go straight into the local [`Denylist`]; refresh-token markers live
//! in a map with their expiry, swept as the map grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{RefreshUse, RevocationStore, StoreFuture};
use crate::clock;
use crate::denylist::Denylist;
use crate::rule::{Rule, RuleKey};

/// In-process [`RevocationStore`]; cheap to clone.
#[derive(Clone)]
pub struct MemoryStore {
    denylist: Denylist,
    used: Arc<Mutex<UsedMarkers>>,
}

/// Retired refresh-token jtis with the time their marker may go.
///
/// A plain mutex: the critical section is one hash-map insert, and a refresh
/// is rare next to the denylist reads, which take no lock here.
#[derive(Default)]
struct UsedMarkers {
    expires: HashMap<String, u64>,
    /// Sweep expired markers when the map reaches this size.
    sweep_at: usize,
}

impl MemoryStore {
    /// A store that applies rules to `denylist`.
    pub fn new(denylist: Denylist) -> MemoryStore {
        MemoryStore {
            denylist,
            used: Arc::new(Mutex::new(UsedMarkers {
                expires: HashMap::new(),
                sweep_at: 1024,
            })),
        }
    }

    fn mark(&self, jti: &str, ttl: Duration, now: u64) -> RefreshUse {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let until = now.saturating_add(ttl.as_secs().max(1));
        if used.expires.get(jti).is_some_and(|&expiry| expiry > now) {
            return RefreshUse::Reused;
        }
        used.expires.insert(jti.to_owned(), until);
        if used.expires.len() >= used.sweep_at {
            used.expires.retain(|_, &mut expiry| expiry > now);
            // Amortised: the next sweep waits until the map doubles.
            used.sweep_at = (used.expires.len() * 2).max(1024);
        }
        RefreshUse::First
    }
}

impl RevocationStore for MemoryStore {
    fn revoke(&self, rule: Rule) -> StoreFuture<'_, ()> {
        self.denylist.apply(&rule);
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, key: &'a RuleKey) -> StoreFuture<'a, bool> {
        let removed = self.denylist.remove(key);
        Box::pin(async move { Ok(removed) })
    }

    fn get<'a>(&'a self, key: &'a RuleKey) -> StoreFuture<'a, Option<Rule>> {
        let rule = self.denylist.get(key, clock::now_secs());
        Box::pin(async move { Ok(rule) })
    }

    fn mark_refresh_used<'a>(&'a self, jti: &'a str, ttl: Duration) -> StoreFuture<'a, RefreshUse> {
        let seen = self.mark(jti, ttl, clock::now_secs());
        Box::pin(async move { Ok(seen) })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RevokedBefore;

    #[tokio::test]
    async fn rules_reach_the_denylist() {
        let denylist = Denylist::new();
        let store = MemoryStore::new(denylist.clone());
        let key = RuleKey::Sid("s".into());
        store
            .revoke(Rule {
                key: key.clone(),
                revoked_before: RevokedBefore::All,
                expires_at: u64::MAX,
            })
            .await
            .unwrap();
        assert!(denylist.get(&key, clock::now_secs()).is_some());
        assert!(store.get(&key).await.unwrap().is_some());
        assert!(store.remove(&key).await.unwrap());
        assert!(!store.remove(&key).await.unwrap());
        assert!(store.get(&key).await.unwrap().is_none());
    }

    #[test]
    fn a_refresh_marker_is_first_once_then_reused_until_it_expires() {
        let store = MemoryStore::new(Denylist::new());
        let ttl = Duration::from_secs(10);
        assert_eq!(store.mark("j", ttl, 100), RefreshUse::First);
        assert_eq!(store.mark("j", ttl, 105), RefreshUse::Reused);
        assert_eq!(store.mark("j", ttl, 111), RefreshUse::First);
    }

    #[test]
    fn expired_markers_are_swept() {
        let store = MemoryStore::new(Denylist::new());
        for i in 0..1500 {
            store.mark(&i.to_string(), Duration::from_secs(1), 0);
        }
        for i in 1500..2100 {
            store.mark(&i.to_string(), Duration::from_secs(1), 10);
        }
        let used = store.used.lock().unwrap();
        assert!(used.expires.len() < 1100, "{}", used.expires.len());
    }
}
