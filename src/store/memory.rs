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

/// Claimed refresh-token jtis: until when the marker stays, and the claim.
///
/// A plain mutex: the critical section is one hash-map insert, and a refresh
/// is rare next to the denylist reads, which take no lock here.
#[derive(Default)]
struct UsedMarkers {
    expires: HashMap<String, Marker>,
    /// Sweep expired markers when the map reaches this size.
    sweep_at: usize,
}

/// One claimed refresh token.
struct Marker {
    /// Seconds since the epoch when the marker may go.
    until: u64,
    /// The attempt holding the claim.
    attempt: String,
    /// Whether that attempt's rotation was answered.
    confirmed: bool,
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

    fn claim(&self, jti: &str, attempt: &str, ttl: Duration, now: u64) -> RefreshUse {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let until = now.saturating_add(ttl.as_secs().max(1));
        let found = match used.expires.get(jti).filter(|marker| marker.until > now) {
            Some(marker) if marker.confirmed => return RefreshUse::Reused,
            Some(_) => RefreshUse::Retry,
            None => RefreshUse::First,
        };
        let marker = Marker {
            until,
            attempt: attempt.to_owned(),
            confirmed: false,
        };
        used.expires.insert(jti.to_owned(), marker);
        if used.expires.len() >= used.sweep_at {
            used.expires.retain(|_, marker| marker.until > now);
            // Amortised: the next sweep waits until the map doubles.
            used.sweep_at = (used.expires.len() * 2).max(1024);
        }
        found
    }

    fn confirm(&self, jti: &str, attempt: &str) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        match used.expires.get_mut(jti) {
            Some(marker) if marker.attempt == attempt && !marker.confirmed => {
                marker.confirmed = true;
                true
            }
            _ => false,
        }
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

    fn claim_refresh<'a>(
        &'a self,
        jti: &'a str,
        attempt: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, RefreshUse> {
        let found = self.claim(jti, attempt, ttl, clock::now_secs());
        Box::pin(async move { Ok(found) })
    }

    fn confirm_refresh<'a>(&'a self, jti: &'a str, attempt: &'a str) -> StoreFuture<'a, bool> {
        let confirmed = self.confirm(jti, attempt);
        Box::pin(async move { Ok(confirmed) })
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
    fn a_confirmed_claim_is_reuse_until_it_expires() {
        let store = MemoryStore::new(Denylist::new());
        let ttl = Duration::from_secs(10);
        assert_eq!(store.claim("j", "a1", ttl, 100), RefreshUse::First);
        assert!(store.confirm("j", "a1"));
        assert!(!store.confirm("j", "a1"), "confirmed once");
        assert_eq!(store.claim("j", "a2", ttl, 105), RefreshUse::Reused);
        assert_eq!(store.claim("j", "a3", ttl, 111), RefreshUse::First);
    }

    #[test]
    fn an_unconfirmed_claim_is_taken_over_by_a_retry_and_only_the_last_confirms() {
        let store = MemoryStore::new(Denylist::new());
        let ttl = Duration::from_secs(10);
        assert_eq!(store.claim("j", "a1", ttl, 100), RefreshUse::First);
        assert_eq!(store.claim("j", "a2", ttl, 101), RefreshUse::Retry);
        assert!(!store.confirm("j", "a1"), "superseded");
        assert!(store.confirm("j", "a2"));
        assert_eq!(store.claim("j", "a3", ttl, 102), RefreshUse::Reused);
    }

    #[test]
    fn expired_markers_are_swept() {
        let store = MemoryStore::new(Denylist::new());
        for i in 0..1500 {
            store.claim(&i.to_string(), "a", Duration::from_secs(1), 0);
        }
        for i in 1500..2100 {
            store.claim(&i.to_string(), "a", Duration::from_secs(1), 10);
        }
        let used = store.used.lock().unwrap();
        assert!(used.expires.len() < 1100, "{}", used.expires.len());
    }
}
