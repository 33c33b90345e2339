//! The two token verifiers on arbitrary input: the resource server's
//! `Verifier::verify_at` (with and without its verified-token cache, which
//! must agree) and the issuer's `jwt::verify` (introspection, revocation,
//! refresh), which must agree with itself across the `want` filter.
//!
//! The first byte picks the mode:
//! - even: the rest is the token string, as is;
//! - odd: the rest is `header JSON \n payload JSON`, signed here with a
//!   fixture key (bit 1 picks Ed25519 or P-256), so inputs get past the
//!   signature into the header and claim checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revokd::issuer::jwt::{self, TokenKind};
use revokd_fuzz::{
    CACHED_VERIFIER, ED25519_KID, ISSUER, KEYS, NOW, P256_KID, UNCACHED_VERIFIER, sign_raw,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let (header, payload) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
        let kid = if mode & 2 == 0 { ED25519_KID } else { P256_KID };
        sign_raw(kid, header, payload)
    };

    // The resource server: the cache never changes an answer at one instant.
    let uncached = UNCACHED_VERIFIER.verify_at(&token, NOW);
    let cached = CACHED_VERIFIER.verify_at(&token, NOW);
    assert_eq!(
        uncached, cached,
        "the verified-token cache changed the answer"
    );
    // A second look (now a cache hit when it verified) answers the same.
    assert_eq!(CACHED_VERIFIER.verify_at(&token, NOW), cached);
    // The clock's extremes: no overflow in the exp/nbf/leeway arithmetic.
    let _ = UNCACHED_VERIFIER.verify_at(&token, 0);
    let _ = UNCACHED_VERIFIER.verify_at(&token, u64::MAX);

    // The issuer's own check.
    let any = jwt::verify(&KEYS, ISSUER, &token, None, NOW);
    let access = jwt::verify(&KEYS, ISSUER, &token, Some(TokenKind::Access), NOW);
    let refresh = jwt::verify(&KEYS, ISSUER, &token, Some(TokenKind::Refresh), NOW);
    match &any {
        None => assert!(access.is_none() && refresh.is_none()),
        Some((TokenKind::Access, _)) => assert!(access.is_some() && refresh.is_none()),
        Some((TokenKind::Refresh, _)) => assert!(refresh.is_some() && access.is_none()),
    }
    if let Some((kind, claims)) = &any {
        assert!(NOW < claims.exp, "an expired token verified");
        assert_eq!(claims.iss, ISSUER);
        if *kind == TokenKind::Refresh {
            assert!(
                claims.aud.contains(ISSUER),
                "a refresh token for someone else"
            );
        }
        let _ = claims.token_keys().rule_keys();
    }
    // An access token the resource server accepts is one the issuer's
    // introspection accepts too (it is stricter only about the audience,
    // which the issuer does not check for access tokens, and the leeway).
    if let Ok(claims) = &uncached {
        assert!(NOW < claims.exp.saturating_add(5));
        let _ = claims.token_keys().rule_keys();
        let _ = claims.has_scope("read");
    }
    let _ = jwt::verify(&KEYS, ISSUER, &token, None, 0);
    let _ = jwt::verify(&KEYS, ISSUER, &token, None, u64::MAX);
});
