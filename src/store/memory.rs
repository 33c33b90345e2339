//! The embedded in-memory store: one process, no replication.
//!
//! Rules go straight into the local [`Denylist`]; refresh-token markers live
//! in a map with their expiry, swept as the map grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::grants::{CodePresenter, CodeUse, GrantRecord};
use super::{RefreshUse, RevocationStore, StoreFuture};
use crate::clock;
use crate::denylist::Denylist;
use crate::rule::{Rule, RuleKey};

/// In-process [`RevocationStore`]; cheap to clone.
#[derive(Clone)]
pub struct MemoryStore {
    denylist: Denylist,
    used: Arc<Mutex<UsedMarkers>>,
    apps: Arc<Mutex<Apps>>,
}

/// Authorization codes and connected apps (a plain mutex: a login or a
/// refresh is rare next to the denylist reads, which take no lock here).
#[derive(Default)]
struct Apps {
    /// Code digest → (what it was for, until when, spent).
    codes: HashMap<[u8; 32], (String, u64, bool)>,
    /// sub → client id → record.
    grants: HashMap<String, HashMap<String, GrantRecord>>,
    /// Registered client id → (its configuration, until when).
    clients: HashMap<String, (String, u64)>,
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
            apps: Arc::default(),
        }
    }

    fn apps(&self) -> std::sync::MutexGuard<'_, Apps> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, code: &str, presenter: CodePresenter<'_>, ttl: Duration, now: u64) -> CodeUse {
        let mut apps = self.apps();
        apps.codes.retain(|_, (_, until, _)| *until > now);
        match apps.codes.get_mut(&crate::crypto::sha256(code.as_bytes())) {
            Some((grant, _, _)) if !presenter.matches(grant) => CodeUse::Mismatch(grant.clone()),
            Some((grant, until, spent)) if *spent => {
                *until = now.saturating_add(ttl.as_secs().max(1));
                CodeUse::Reused(grant.clone())
            }
            Some((grant, until, spent)) => {
                *spent = true;
                *until = now.saturating_add(ttl.as_secs().max(1));
                CodeUse::Fresh(grant.clone())
            }
            None => CodeUse::Unknown,
        }
    }

    fn record(&self, sub: &str, client_id: &str, record: &GrantRecord, only_if_known: bool) {
        let mut apps = self.apps();
        let now = clock::now_secs();
        let mine = apps.grants.entry(sub.to_owned()).or_default();
        mine.retain(|_, record| record.expires_at > now);
        match mine.get_mut(client_id) {
            Some(old) => *old = old.merged(record),
            None if only_if_known => {}
            None => {
                mine.insert(client_id.to_owned(), record.clone());
            }
        }
        if mine.is_empty() {
            apps.grants.remove(sub);
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

    fn put_code<'a>(&'a self, code: &'a str, grant: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        let until = clock::now_secs().saturating_add(ttl.as_secs().max(1));
        let digest = crate::crypto::sha256(code.as_bytes());
        self.apps()
            .codes
            .insert(digest, (grant.to_owned(), until, false));
        Box::pin(async { Ok(()) })
    }

    fn take_code<'a>(
        &'a self,
        code: &'a str,
        presenter: CodePresenter<'a>,
        ttl: Duration,
    ) -> StoreFuture<'a, CodeUse> {
        let found = self.take(code, presenter, ttl, clock::now_secs());
        Box::pin(async move { Ok(found) })
    }

    fn record_grant<'a>(
        &'a self,
        sub: &'a str,
        client_id: &'a str,
        record: &'a GrantRecord,
    ) -> StoreFuture<'a, ()> {
        self.record(sub, client_id, record, false);
        Box::pin(async { Ok(()) })
    }

    fn touch_grant<'a>(
        &'a self,
        sub: &'a str,
        client_id: &'a str,
        record: &'a GrantRecord,
    ) -> StoreFuture<'a, ()> {
        self.record(sub, client_id, record, true);
        Box::pin(async { Ok(()) })
    }

    fn grants<'a>(&'a self, sub: &'a str, now: u64) -> StoreFuture<'a, Vec<(String, GrantRecord)>> {
        let mut list: Vec<(String, GrantRecord)> = self
            .apps()
            .grants
            .get(sub)
            .into_iter()
            .flatten()
            .filter(|(_, record)| record.expires_at > now)
            .map(|(client, record)| (client.clone(), record.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Box::pin(async move { Ok(list) })
    }

    fn grants_of_client<'a>(
        &'a self,
        client_id: &'a str,
        now: u64,
    ) -> StoreFuture<'a, Vec<(String, GrantRecord)>> {
        let mut list: Vec<(String, GrantRecord)> = self
            .apps()
            .grants
            .iter()
            .filter_map(|(sub, apps)| {
                apps.get(client_id)
                    .filter(|record| record.expires_at > now)
                    .map(|record| (sub.clone(), record.clone()))
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Box::pin(async move { Ok(list) })
    }

    fn forget_grant<'a>(&'a self, sub: &'a str, client_id: &'a str) -> StoreFuture<'a, bool> {
        let mut apps = self.apps();
        let forgotten = apps
            .grants
            .get_mut(sub)
            .is_some_and(|mine| mine.remove(client_id).is_some());
        drop(apps);
        Box::pin(async move { Ok(forgotten) })
    }

    fn put_registered_client<'a>(
        &'a self,
        id: &'a str,
        client: &'a str,
        ttl: Duration,
        max: u64,
    ) -> StoreFuture<'a, bool> {
        let now = clock::now_secs();
        let mut apps = self.apps();
        apps.clients.retain(|_, (_, until)| *until > now);
        let full = u64::try_from(apps.clients.len()).unwrap_or(u64::MAX) >= max;
        if !full {
            let until = now.saturating_add(ttl.as_secs().max(1));
            apps.clients
                .insert(id.to_owned(), (client.to_owned(), until));
        }
        drop(apps);
        Box::pin(async move { Ok(!full) })
    }

    fn registered_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<String>> {
        let now = clock::now_secs();
        let found = self
            .apps()
            .clients
            .get(id)
            .filter(|(_, until)| *until > now)
            .map(|(client, _)| client.clone());
        Box::pin(async move { Ok(found) })
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
    fn a_code_is_fresh_once_then_reused_and_unknown_codes_are_unknown() {
        let store = MemoryStore::new(Denylist::new());
        let ttl = Duration::from_secs(60);
        let grant = r#"{"client_id":"app","redirect_uri":"https://app/cb","code_challenge":"ch"}"#;
        store
            .apps()
            .codes
            .insert(crate::crypto::sha256(b"c1"), (grant.into(), 1000, false));
        let issued_to = CodePresenter {
            client_id: "app",
            redirect_uri: "https://app/cb",
            challenge: "ch",
        };
        for other in [
            CodePresenter {
                client_id: "other",
                ..issued_to
            },
            CodePresenter {
                redirect_uri: "https://app/other",
                ..issued_to
            },
            CodePresenter {
                challenge: "",
                ..issued_to
            },
            CodePresenter {
                challenge: "wrong",
                ..issued_to
            },
        ] {
            assert_eq!(
                store.take("c1", other, ttl, 100),
                CodeUse::Mismatch(grant.into())
            );
        }
        let fresh = CodeUse::Fresh(grant.into());
        assert_eq!(store.take("c1", issued_to, ttl, 100), fresh, "still fresh");
        assert_eq!(
            store.take("c1", issued_to, ttl, 101),
            CodeUse::Reused(grant.into())
        );
        let stranger = CodePresenter {
            client_id: "other",
            ..issued_to
        };
        assert_eq!(
            store.take("c1", stranger, ttl, 101),
            CodeUse::Mismatch(grant.into())
        );
        assert_eq!(store.take("c2", issued_to, ttl, 101), CodeUse::Unknown);
        assert_eq!(
            store.take("c1", issued_to, ttl, 10_000),
            CodeUse::Unknown,
            "expired"
        );
    }

    #[tokio::test]
    async fn a_grant_keeps_its_first_authorization_and_touch_never_creates_one() {
        let store = MemoryStore::new(Denylist::new());
        let now = clock::now_secs();
        let record = |first, last| GrantRecord {
            scope: "read".into(),
            first_authorized: first,
            last_refreshed: last,
            expires_at: now + 100,
        };
        store
            .touch_grant("alice", "app", &record(now, now))
            .await
            .unwrap();
        assert!(store.grants("alice", now).await.unwrap().is_empty());
        store
            .record_grant("alice", "app", &record(now - 5, now - 5))
            .await
            .unwrap();
        store
            .touch_grant("alice", "app", &record(now, now))
            .await
            .unwrap();
        let list = store.grants("alice", now).await.unwrap();
        assert_eq!(list, vec![("app".to_owned(), record(now - 5, now))]);
        assert!(store.grants("bob", now).await.unwrap().is_empty());
        assert!(store.forget_grant("alice", "app").await.unwrap());
        assert!(!store.forget_grant("alice", "app").await.unwrap());
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
