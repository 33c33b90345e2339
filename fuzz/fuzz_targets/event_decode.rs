//! `Event::decode` and `Snapshot::decode` on arbitrary bytes: never a panic,
//! and whatever decodes re-encodes to bytes that decode to the same value
//! (and re-encode to the same bytes). Decoded rules are then applied to a
//! denylist, which must then revoke what they cover.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revokd::denylist::Denylist;
use revokd::event::{Change, Event, Snapshot};
use revokd::rule::{RevokedBefore, Rule, RuleKey, TokenKeys};

fuzz_target!(|data: &[u8]| {
    let mut rules: Vec<Rule> = Vec::new();

    if let Ok(event) = Event::decode(data) {
        let bytes = event.encode();
        let again = Event::decode(&bytes).expect("a re-encoded event decodes");
        assert_eq!(again, event, "event round trip");
        assert_eq!(again.encode(), bytes, "event encoding is not canonical");
        assert!(event.seq >= 1);
        let _ = (event.head.to_string(), event.prev_head.to_hex());
        if let Change::Add(rule) = event.change {
            rules.push(rule);
        }
    }

    if let Ok(snapshot) = Snapshot::decode(data) {
        let bytes = snapshot.encode();
        let again = Snapshot::decode(&bytes).expect("a re-encoded snapshot decodes");
        assert_eq!(again, snapshot, "snapshot round trip");
        assert_eq!(again.encode(), bytes, "snapshot encoding is not canonical");
        rules.extend(snapshot.rules);
    }

    if rules.is_empty() {
        return;
    }
    rules.truncate(64);
    let denylist = Denylist::with_seed(7, 16);
    denylist.apply_batch(&rules);
    // The denylist keeps times as u32 seconds, clamped (by design): check
    // exactly only what fits.
    let fits = |t: u64| t < u64::from(u32::MAX) - 1;
    for rule in &rules {
        let now = rule.expires_at.saturating_sub(1);
        if !rule.is_live(now) || !fits(rule.expires_at) {
            continue;
        }
        let held = denylist
            .get(&rule.key, now)
            .expect("a live rule just applied is held");
        let iat = match rule.revoked_before {
            RevokedBefore::IssuedAtOrBefore(iat) if fits(iat) => iat,
            RevokedBefore::IssuedAtOrBefore(_) => continue,
            RevokedBefore::All => now,
        };
        assert!(
            held.covers(rule),
            "the denylist holds less than was applied"
        );
        // A token carrying the key, issued at the bound, is revoked.
        let keys = token_keys(&rule.key, iat);
        assert!(
            denylist.is_revoked(&keys, now).is_some(),
            "a token under a live rule is not revoked"
        );
    }
});

/// Keys of a token that has `key` (and made-up other keys).
fn token_keys(key: &RuleKey, iat: u64) -> TokenKeys<'_> {
    let mut keys = TokenKeys {
        jti: "\u{1}jti",
        sid: None,
        sub: None,
        client_id: "\u{1}client",
        iat,
    };
    match key {
        RuleKey::Jti(v) => keys.jti = v,
        RuleKey::Sid(v) => keys.sid = Some(v),
        RuleKey::Sub(v) => keys.sub = Some(v),
        RuleKey::Client(v) => keys.client_id = v,
        RuleKey::SubClient { sub, client } => {
            keys.sub = Some(sub);
            keys.client_id = client;
        }
        _ => {}
    }
    keys
}
