use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;

fn rule(key: &str, revoked_before: RevokedBefore, expires_at: u64) -> Rule {
    Rule {
        key: key.parse().unwrap(),
        revoked_before,
        expires_at,
    }
}

fn token<'a>(jti: &'a str, sub: &'a str, iat: u64) -> TokenKeys<'a> {
    TokenKeys {
        jti,
        sid: Some("s1"),
        sub: Some(sub),
        client_id: "web",
        iat,
    }
}

#[test]
fn each_kind_of_key_revokes_and_reports_itself() {
    let cases = [
        ("jti:j1", KeyKind::Jti),
        ("sid:s1", KeyKind::Sid),
        ("sub:alice", KeyKind::Sub),
        ("client:web", KeyKind::Client),
        ("subclient:alice/web", KeyKind::SubClient),
    ];
    for (key, kind) in cases {
        let denylist = Denylist::new();
        assert_eq!(denylist.is_revoked(&token("j1", "alice", 10), 50), None);
        denylist.apply(&rule(key, RevokedBefore::All, 100));
        let revoked = denylist.is_revoked(&token("j1", "alice", 10), 50);
        assert_eq!(revoked.map(|r| r.kind), Some(kind), "{key}");
        assert_eq!(
            denylist
                .is_revoked(&token("j2", "bob", 10), 50)
                .map(|r| r.kind),
            matches!(kind, KeyKind::Sid | KeyKind::Client).then_some(kind),
            "{key}"
        );
    }
}

#[test]
fn revoked_before_spares_tokens_issued_later() {
    let denylist = Denylist::new();
    denylist.apply(&rule(
        "sub:alice",
        RevokedBefore::IssuedAtOrBefore(100),
        1000,
    ));
    assert!(denylist.is_revoked(&token("a", "alice", 99), 500).is_some());
    assert!(
        denylist
            .is_revoked(&token("b", "alice", 100), 500)
            .is_some()
    );
    assert!(
        denylist
            .is_revoked(&token("c", "alice", 101), 500)
            .is_none()
    );
}

#[test]
fn a_rule_stops_applying_when_it_expires_and_expire_drops_it() {
    let denylist = Denylist::new();
    denylist.apply(&rule("jti:j1", RevokedBefore::All, 100));
    assert!(denylist.is_revoked(&token("j1", "u", 1), 99).is_some());
    assert!(denylist.is_revoked(&token("j1", "u", 1), 100).is_none());
    assert_eq!(denylist.expire(99), 0);
    assert_eq!(denylist.len(), 1);
    assert_eq!(denylist.expire(100), 1);
    assert_eq!(denylist.len(), 0);
    assert!(denylist.get(&"jti:j1".parse().unwrap(), 0).is_none());
}

#[test]
fn merge_keeps_the_larger_bound_and_expiry() {
    let denylist = Denylist::new();
    denylist.apply(&rule(
        "sub:alice",
        RevokedBefore::IssuedAtOrBefore(100),
        1000,
    ));
    denylist.apply(&rule(
        "sub:alice",
        RevokedBefore::IssuedAtOrBefore(50),
        2000,
    ));
    let key = "sub:alice".parse().unwrap();
    let held = denylist.get(&key, 0).unwrap();
    assert_eq!(held.revoked_before, RevokedBefore::IssuedAtOrBefore(100));
    assert_eq!(held.expires_at, 2000);
    assert_eq!(denylist.len(), 1);
}

#[test]
fn remove_re_approves() {
    let denylist = Denylist::new();
    denylist.apply(&rule("jti:j1", RevokedBefore::All, 100));
    assert!(denylist.remove(&"jti:j1".parse().unwrap()));
    assert!(!denylist.remove(&"jti:j1".parse().unwrap()));
    assert!(denylist.is_revoked(&token("j1", "u", 1), 50).is_none());
    assert!(denylist.is_empty());
}

#[test]
fn the_filter_grows_past_its_capacity_and_shrinks_after_expiry() {
    let denylist = Denylist::with_seed(1, 0);
    let initial = denylist.stats();
    let rules: Vec<Rule> = (0..10 * MIN_CAPACITY)
        .map(|i| rule(&format!("jti:{i}"), RevokedBefore::All, 100))
        .collect();
    for chunk in rules.chunks(100) {
        denylist.apply_batch(chunk);
    }
    let grown = denylist.stats();
    assert!(grown.bloom_capacity >= rules.len(), "{grown:?}");
    assert!(grown.shards > initial.shards, "{grown:?}");
    assert!(rules.iter().all(|r| denylist.get(&r.key, 0).is_some()));

    let report = denylist.maintain(100);
    assert_eq!(report.expired, rules.len());
    assert!(report.rebuilt);
    assert_eq!(denylist.stats().bloom_capacity, KINDS * MIN_CAPACITY);
}

#[test]
fn stale_bits_from_removed_rules_trigger_a_rebuild() {
    let denylist = Denylist::with_seed(2, 0);
    let capacity = denylist.stats().bloom_capacity / KINDS;
    // Churn: add and re-approve most of the filter's capacity in keys, while
    // the live count stays at one.
    denylist.apply(&rule("jti:keep", RevokedBefore::All, 100));
    for i in 0..capacity * 7 / 8 {
        let r = rule(&format!("jti:{i}"), RevokedBefore::All, 100);
        denylist.apply(&r);
        denylist.remove(&r.key);
    }
    assert!(denylist.maintain(0).rebuilt);
    assert!(
        !denylist.maintain(0).rebuilt,
        "the rebuild cleared the stale bits"
    );
    assert!(denylist.is_revoked(&token("keep", "u", 1), 50).is_some());
    assert_eq!(denylist.len(), 1);
}

#[test]
fn filter_false_positives_never_revoke() {
    let denylist = Denylist::with_seed(3, 0);
    let rules: Vec<Rule> = (0..5000)
        .map(|i| rule(&format!("jti:in-{i}"), RevokedBefore::All, 100))
        .collect();
    denylist.apply_batch(&rules);
    let generation = denylist.shared.current.load_full();
    let mut filter_hits = 0;
    for i in 0..200_000 {
        let jti = format!("out-{i}");
        let hash = denylist.shared.hasher.value(KeyKind::Jti, &jti);
        filter_hits += usize::from(generation.filters[0].may_contain(hash));
        let keys = TokenKeys {
            jti: &jti,
            sid: None,
            sub: None,
            client_id: "c",
            iat: 1,
        };
        assert_eq!(denylist.is_revoked(&keys, 50), None, "{jti}");
    }
    // The assertion above exercised the map's confirmation, not only the filter.
    assert!(filter_hits > 0);
}

#[test]
fn stats_report_memory_within_budget() {
    let denylist = Denylist::with_seed(4, 0);
    let rules: Vec<Rule> = (0..100_000)
        .map(|i| rule(&format!("jti:{i}"), RevokedBefore::All, 100))
        .collect();
    denylist.apply_batch(&rules);
    let stats = denylist.stats();
    assert_eq!(stats.rules, 100_000);
    let per_rule = stats.memory_bytes / stats.rules;
    assert!(per_rule <= 64, "{per_rule} bytes per rule: {stats:?}");
}

// === model-based property test ===

#[derive(Debug, Clone)]
enum Op {
    Apply(Rule),
    Remove(RuleKey),
    Expire(u64),
    Maintain(u64),
    Check { token: usize, iat: u64, now: u64 },
}

const SUBS: [&str; 3] = ["alice", "bob", "carol"];
const CLIENTS: [&str; 2] = ["web", "cli"];

fn key_strategy() -> impl Strategy<Value = RuleKey> {
    prop_oneof![
        (0..40u32).prop_map(|i| RuleKey::Jti(format!("j{i}"))),
        (0..6u32).prop_map(|i| RuleKey::Sid(format!("s{i}"))),
        (0..3usize).prop_map(|i| RuleKey::Sub(SUBS[i].into())),
        (0..2usize).prop_map(|i| RuleKey::Client(CLIENTS[i].into())),
        (0..3usize, 0..2usize).prop_map(|(s, c)| RuleKey::SubClient {
            sub: SUBS[s].into(),
            client: CLIENTS[c].into()
        }),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let bound = prop_oneof![
        (0..200u64).prop_map(RevokedBefore::IssuedAtOrBefore),
        Just(RevokedBefore::All)
    ];
    prop_oneof![
        4 => (key_strategy(), bound, 0..300u64).prop_map(|(key, revoked_before, expires_at)| {
            Op::Apply(Rule { key, revoked_before, expires_at })
        }),
        1 => key_strategy().prop_map(Op::Remove),
        1 => (0..300u64).prop_map(Op::Expire),
        1 => (0..300u64).prop_map(Op::Maintain),
        4 => (0..40usize, 0..200u64, 0..300u64)
            .prop_map(|(token, iat, now)| Op::Check { token, iat, now }),
    ]
}

/// The obvious implementation the denylist must agree with.
#[derive(Default)]
struct Model(BTreeMap<RuleKey, Rule>);

impl Model {
    fn apply(&mut self, rule: &Rule) {
        self.0
            .entry(rule.key.clone())
            .and_modify(|held| held.merge(rule))
            .or_insert_with(|| rule.clone());
    }

    fn expire(&mut self, now: u64) -> usize {
        let before = self.0.len();
        self.0.retain(|_, rule| rule.is_live(now));
        before - self.0.len()
    }

    fn is_revoked(&self, keys: &TokenKeys<'_>, now: u64) -> Option<KeyKind> {
        keys.rule_keys().into_iter().find_map(|key| {
            let rule = self.0.get(&key)?;
            (rule.is_live(now) && rule.revoked_before.covers(keys.iat)).then(|| key.kind())
        })
    }
}

/// Token `i`: jti `j<i>`, one of six sessions, users and clients mixed.
fn token_of(i: usize, iat: u64) -> (String, String, &'static str, &'static str, u64) {
    (
        format!("j{i}"),
        format!("s{}", i % 6),
        SUBS[i % 3],
        CLIENTS[i % 2],
        iat,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn agrees_with_a_btreemap_model(ops in proptest::collection::vec(op_strategy(), 1..200)) {
        let denylist = Denylist::with_seed(5, 0);
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Apply(rule) => {
                    denylist.apply(&rule);
                    model.apply(&rule);
                }
                Op::Remove(key) => {
                    prop_assert_eq!(denylist.remove(&key), model.0.remove(&key).is_some());
                }
                Op::Expire(now) => prop_assert_eq!(denylist.expire(now), model.expire(now)),
                Op::Maintain(now) => prop_assert_eq!(denylist.maintain(now).expired, model.expire(now)),
                Op::Check { token, iat, now } => {
                    let (jti, sid, sub, client, iat) = token_of(token, iat);
                    let keys = TokenKeys { jti: &jti, sid: Some(&sid), sub: Some(sub), client_id: client, iat };
                    prop_assert_eq!(denylist.is_revoked(&keys, now).map(|r| r.kind), model.is_revoked(&keys, now));
                    // A machine token (no sid, no sub) uses only jti and client.
                    let machine = TokenKeys { sid: None, sub: None, ..keys };
                    prop_assert_eq!(denylist.is_revoked(&machine, now).map(|r| r.kind), model.is_revoked(&machine, now));
                }
            }
            prop_assert_eq!(denylist.len(), model.0.len());
        }
        for (key, rule) in &model.0 {
            let held = denylist.get(key, 0);
            prop_assert_eq!(held.as_ref(), rule.is_live(0).then_some(rule));
        }
    }
}

// === concurrency ===

#[test]
fn readers_never_miss_a_live_rule_while_the_writer_churns() {
    const ANCHORS: usize = 2000;
    const NEW: usize = 20_000;
    let denylist = Denylist::with_seed(6, 0);
    let anchors: Vec<Rule> = (0..ANCHORS)
        .map(|i| rule(&format!("jti:anchor-{i}"), RevokedBefore::All, 1_000_000))
        .collect();
    denylist.apply_batch(&anchors);
    // Number of `jti:new-*` rules the writer has finished applying.
    let applied = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (denylist, applied, done) = (denylist.clone(), applied.clone(), done.clone());
            std::thread::spawn(move || {
                let mut checks = 0u64;
                let mut i = reader;
                while !done.load(Ordering::Acquire) {
                    let n = applied.load(Ordering::Acquire);
                    if n > 0 {
                        let jti = format!("new-{}", (i * 7919) % n);
                        let keys = TokenKeys {
                            jti: &jti,
                            sid: None,
                            sub: None,
                            client_id: "c",
                            iat: 1,
                        };
                        assert!(denylist.is_revoked(&keys, 10).is_some(), "{jti} missing");
                    }
                    let jti = format!("anchor-{}", i % ANCHORS);
                    let keys = TokenKeys {
                        jti: &jti,
                        sid: None,
                        sub: None,
                        client_id: "c",
                        iat: 1,
                    };
                    assert!(denylist.is_revoked(&keys, 10).is_some(), "{jti} missing");
                    i += 1;
                    checks += 1;
                }
                checks
            })
        })
        .collect();

    for i in 0..NEW {
        denylist.apply(&rule(
            &format!("jti:new-{i}"),
            RevokedBefore::All,
            1_000_000,
        ));
        applied.store(i + 1, Ordering::Release);
        // Churn that forces removals, expiry and rebuilds around the live rules.
        let churn = rule(&format!("sid:churn-{i}"), RevokedBefore::All, 5);
        denylist.apply(&churn);
        if i % 3 == 0 {
            denylist.remove(&churn.key);
        }
        if i % 1000 == 999 {
            denylist.maintain(10);
        }
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    denylist.maintain(10);
    assert_eq!(
        denylist.len(),
        ANCHORS + NEW,
        "only the churn rules expired"
    );
    assert!(denylist.stats().bloom_capacity >= ANCHORS + NEW);
}

#[test]
fn replace_all_swaps_the_whole_rule_set() {
    let denylist = Denylist::new();
    denylist.apply(&rule("jti:old", RevokedBefore::All, 100));
    denylist.replace_all(&[
        rule("jti:new", RevokedBefore::All, 100),
        rule("sub:alice", RevokedBefore::IssuedAtOrBefore(5), 100),
        rule("sub:alice", RevokedBefore::IssuedAtOrBefore(7), 90),
    ]);
    assert!(denylist.is_revoked(&token("old", "u", 1), 50).is_none());
    assert!(denylist.is_revoked(&token("new", "u", 1), 50).is_some());
    let alice = denylist.get(&"sub:alice".parse().unwrap(), 0).unwrap();
    assert_eq!(alice.revoked_before, RevokedBefore::IssuedAtOrBefore(7));
    assert_eq!(alice.expires_at, 100);
    assert_eq!(denylist.len(), 2);
}

#[test]
fn a_listing_denylist_lists_its_live_rules() {
    assert_eq!(Denylist::new().rules(0), None);
    let denylist = Denylist::listing();
    denylist.apply(&rule("jti:a", RevokedBefore::All, 100));
    denylist.apply(&rule("sid:b", RevokedBefore::All, 50));
    denylist.apply(&rule("jti:c", RevokedBefore::All, 100));
    denylist.remove(&"jti:c".parse().unwrap());
    let mut listed: Vec<String> = denylist
        .rules(60)
        .unwrap()
        .iter()
        .map(|r| r.key.to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, ["jti:a"]);
    denylist.replace_all(&[rule("client:web", RevokedBefore::All, 100)]);
    let listed = denylist.rules(0).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.to_string(), "client:web");
}
