//! One token signature, in process, per algorithm.
//!
//! Ids (stable: directories under `target/criterion/`):
//! - `signing/raw/{EdDSA,ES256,RS256}`: aws-lc-rs signing a real token's
//!   signing input with a key pair parsed once: the floor per core;
//! - `signing/token/{EdDSA,ES256,RS256}`: [`SigningKey::sign`], a whole
//!   token (claims serialised, base64url, the signature), what the issuer
//!   pays per access token besides HTTP;
//! - `signing/jsonwebtoken_encode/{EdDSA,ES256,RS256}`: the same token with
//!   `jsonwebtoken::encode`, which parses the key for every token (the way
//!   the issuer signed before; kept as the reference row).
//!
//! The floor on all cores is `examples/sign_floor.rs`
//! (`scripts/bench-issuance`). Run: `cargo bench --bench signing`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use revokd::jwt::{Audience, Claims, TokenKind};
use revokd::signing::{SigningAlg, SigningKey, generate_pem};

fn claims() -> Claims {
    Claims {
        iss: "http://127.0.0.1:18181".into(),
        sub: "bench".into(),
        aud: Audience::One("api".into()),
        client_id: "bench".into(),
        scope: "read".into(),
        iat: 1_800_000_000,
        exp: 1_800_003_600,
        nbf: None,
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        sid: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        resource: Vec::new(),
    }
}

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn signing(c: &mut Criterion) {
    let mut group = c.benchmark_group("signing");
    let claims = claims();
    for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
        let pem = generate_pem(alg).unwrap();
        let key = SigningKey::from_pem("bench", &pem).unwrap();
        let token = key.sign(TokenKind::Access, &claims).unwrap();
        let message = token.rsplit_once('.').unwrap().0.as_bytes().to_vec();
        let der = der(&pem);
        let rng = SystemRandom::new();
        let name = alg.as_str();
        match alg {
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(&der).unwrap();
                group.bench_function(format!("raw/{name}"), |b| {
                    b.iter(|| black_box(pair.sign(black_box(&message))))
                });
            }
            SigningAlg::ES256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
                group.bench_function(format!("raw/{name}"), |b| {
                    b.iter(|| black_box(pair.sign(&rng, black_box(&message)).unwrap()))
                });
            }
            SigningAlg::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
                let mut out = vec![0u8; pair.public_modulus_len()];
                group.bench_function(format!("raw/{name}"), |b| {
                    b.iter(|| {
                        pair.sign(&RSA_PKCS1_SHA256, &rng, black_box(&message), &mut out)
                            .unwrap();
                        black_box(&out);
                    })
                });
            }
        }
        group.bench_function(format!("token/{name}"), |b| {
            b.iter(|| black_box(key.sign(TokenKind::Access, black_box(&claims)).unwrap()))
        });
        let mut header = jsonwebtoken::Header::new(key.algorithm());
        header.typ = Some("at+jwt".into());
        header.kid = Some("bench".into());
        group.bench_function(format!("jsonwebtoken_encode/{name}"), |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::encode(&header, black_box(&claims), key.encoding_key()).unwrap(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
