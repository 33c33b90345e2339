//! One request through the `RequireToken` layer, no socket: the service is
//! called and its future polled once, in process.
//!
//! Ids (stable: directories under `target/criterion/`):
//! - `layer/cached_valid_token`: a token the verifier has seen before (the
//!   verified-token cache: SHA-256 of the token, a map lookup, then the
//!   denylist check, never cached); target median ≤ 1 µs;
//! - `layer/fresh_token`: a token never seen (the cache is off, so the
//!   signature check, EdDSA, runs every time);
//! - `layer/no_layer`: the same inner service without the layer.
//!
//! The denylist holds 100 000 rules, none for the token. Building each
//! request (its header map) is outside the measurement.
//! Run: `cargo bench --bench layer`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::{Request, Response};
use revokd::denylist::Denylist;
use revokd::layer::{RequireTokenLayer, VerifiedToken};
use revokd::rule::{RevokedBefore, Rule, RuleKey};
use revokd::signing::{SigningAlg, SigningKeys};
use revokd::verify::{Verifier, VerifierConfig};
use serde_json::json;
use tower::{Layer, Service, ServiceExt};

const ISSUER: &str = "https://auth.example.com";

fn token(keys: &SigningKeys) -> String {
    let now = revokd::clock::now_secs();
    let claims = json!({
        "iss": ISSUER, "sub": "alice", "aud": "api", "client_id": "web",
        "scope": "read write", "iat": now, "exp": now + 3600,
        "jti": "AAAAAAAAAAAAAAAAAAAAAA", "sid": "BBBBBBBBBBBBBBBBBBBBBB",
    });
    let key = keys.active();
    let mut header = jsonwebtoken::Header::new(key.algorithm());
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid().into());
    jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap()
}

fn denylist() -> Denylist {
    let denylist = Denylist::new();
    let rules: Vec<Rule> = (0..100_000)
        .map(|i| Rule {
            key: RuleKey::Jti(format!("revoked-{i}")),
            revoked_before: RevokedBefore::All,
            expires_at: revokd::clock::now_secs() + 3600,
        })
        .collect();
    denylist.apply_batch(&rules);
    denylist
}

fn request(token: &str) -> Request<String> {
    Request::builder()
        .uri("/api/resource")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

/// The handler: answers with the caller's `sub` (or nobody, without the layer).
fn inner()
-> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|request: Request<String>| async move {
        let sub = request
            .extensions()
            .get::<VerifiedToken>()
            .map_or(0, |t| t.sub.len());
        Ok::<_, Infallible>(Response::new(if sub > 0 {
            String::new()
        } else {
            "anonymous".to_owned()
        }))
    })
}

fn once<S>(service: &mut S, request: Request<String>) -> Response<String>
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
{
    service
        .ready()
        .now_or_never()
        .expect("ready")
        .unwrap()
        .call(request)
        .now_or_never()
        .expect("no I/O on these paths")
        .unwrap()
}

fn layer(c: &mut Criterion) {
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let token = token(&keys);
    let denylist = denylist();
    let verifier = |capacity| {
        let mut config = VerifierConfig::new(ISSUER, "api");
        config.cache_capacity = capacity;
        Verifier::with_static_jwks(config, keys.jwks_json(), Some(denylist.clone())).unwrap()
    };
    let mut cached = RequireTokenLayer::new(verifier(10_000)).layer(inner());
    let mut fresh = RequireTokenLayer::new(verifier(0)).layer(inner());
    let mut bare = inner();
    for service in [&mut cached, &mut fresh] {
        assert_eq!(once(service, request(&token)).status(), 200);
    }

    let mut group = c.benchmark_group("layer");
    group.bench_function("cached_valid_token", |b| {
        b.iter_batched(
            || request(&token),
            |r| black_box(once(&mut cached, r)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("fresh_token", |b| {
        b.iter_batched(
            || request(&token),
            |r| black_box(once(&mut fresh, r)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("no_layer", |b| {
        b.iter_batched(
            || request(&token),
            |r| black_box(once(&mut bare, r)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
