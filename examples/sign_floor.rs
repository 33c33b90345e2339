//! The signing floor: how many signatures per second this machine makes
//! with one key, in process, on as many threads as it has cores; the figure
//! `/oauth2/token` is measured against (DESIGN: the HTTP figure ≥ 70 % of
//! it). `scripts/bench-issuance` runs it beside wrk, rounds interleaved.
//!
//! ```text
//! cargo run --release --example sign_floor -- KEY.pem [SECONDS] [THREADS]
//! ```
//!
//! Two figures per run, both on `THREADS` threads (default: the cores):
//!
//! - `floor`: aws-lc-rs signing a real token's signing input (header and
//!   claims, as the issuer makes them) with a key pair parsed once: the
//!   signature alone, nothing a token endpoint could cut;
//! - `token`: [`SigningKey::sign`] making whole tokens (claims serialised,
//!   base64url, signature): what the issuer pays per token besides HTTP.
//!
//! Output, one line each: `floor ALG THREADS N/s` and `token ALG THREADS N/s`.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use revokd::jwt::{Audience, Claims, TokenKind};
use revokd::signing::{SigningAlg, SigningKey};

/// The raw key pair, as aws-lc-rs holds it.
enum Raw {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .context("usage: sign_floor KEY.pem [SECONDS] [THREADS]")?;
    let seconds: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let threads: usize = match args.next() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let pem = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let key = Arc::new(SigningKey::from_pem("floor", &pem)?);
    let der = pem_der(&pem)?;
    let raw = Arc::new(match key.alg() {
        SigningAlg::EdDSA => Raw::Ed25519(Ed25519KeyPair::from_pkcs8(&der)?),
        SigningAlg::ES256 => Raw::Es256(EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
        )?),
        SigningAlg::RS256 => Raw::Rs256(RsaKeyPair::from_pkcs8(&der)?),
    });
    let claims = Arc::new(claims());
    // The signing input of a real token: everything before the last dot.
    let token = key.sign(TokenKind::Access, &claims)?;
    let message: Arc<[u8]> = token
        .rsplit_once('.')
        .map(|(input, _)| input.as_bytes().into())
        .context("a token has a signature")?;
    let duration = Duration::from_secs_f64(seconds);

    let floor = run(threads, duration, {
        let raw = raw.clone();
        move || {
            let (raw, message) = (raw.clone(), message.clone());
            let rng = SystemRandom::new();
            let mut buffer = [0u8; 1024];
            move || sign_raw(&raw, &rng, &message, &mut buffer)
        }
    })?;
    println!("floor {} {threads} {floor:.0}/s", key.alg());
    let tokens = run(threads, duration, {
        let key = key.clone();
        move || {
            let (key, claims) = (key.clone(), claims.clone());
            move || {
                let token = key
                    .sign(TokenKind::Access, &claims)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                std::hint::black_box(token);
                Ok(())
            }
        }
    })?;
    println!("token {} {threads} {tokens:.0}/s", key.alg());
    Ok(())
}

fn sign_raw(
    raw: &Raw,
    rng: &SystemRandom,
    message: &[u8],
    buffer: &mut [u8],
) -> anyhow::Result<()> {
    match raw {
        Raw::Ed25519(pair) => {
            std::hint::black_box(pair.sign(message));
        }
        Raw::Es256(pair) => {
            std::hint::black_box(pair.sign(rng, message)?);
        }
        Raw::Rs256(pair) => {
            let out = &mut buffer[..pair.public_modulus_len()];
            pair.sign(&RSA_PKCS1_SHA256, rng, message, out)?;
            std::hint::black_box(out);
        }
    }
    Ok(())
}

/// Runs the operation each `make()` returns on `threads` threads for
/// `duration`; operations per second, all threads together.
fn run<M, F>(threads: usize, duration: Duration, make: M) -> anyhow::Result<f64>
where
    M: Fn() -> F + Send + Sync + 'static,
    F: FnMut() -> anyhow::Result<()>,
{
    let make = Arc::new(make);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (make, stop) = (make.clone(), stop.clone());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut op = make();
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..16 {
                        op()?;
                    }
                    done += 16;
                }
                Ok(done)
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    for handle in handles {
        total += handle
            .join()
            .map_err(|_| anyhow::anyhow!("a signing thread panicked"))??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// What the issuer signs for `client_credentials` (scripts/bench-issuance's
/// client): the same claim names and lengths.
fn claims() -> Claims {
    let now = revokd::clock::now_secs();
    Claims {
        iss: "http://127.0.0.1:18181".into(),
        sub: "bench".into(),
        aud: Audience::One("api".into()),
        client_id: "bench".into(),
        scope: "read".into(),
        iat: now,
        exp: now + 3600,
        nbf: None,
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        sid: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        resource: Vec::new(),
    }
}

fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    Ok(STANDARD.decode(body.trim())?)
}
