//! The denylist's hot path, measured.
//!
//! Ids are stable on purpose (they are directories under `target/criterion/`):
//! - `check/miss/{1000,1000000,10000000}`, `check/hit/1000000`: a full
//!   `is_revoked` of a user token's five keys, hashing included.
//! - `concurrent/miss_2_readers_10k_writes/1000000`: the same miss while a
//!   second reader thread checks and a writer applies 10 k events/s.
//! - `filter/{blocked,bloomfilter_crate,std_hashset}/1000000`: the same
//!   five-key miss through our per-kind blocked filters (`is_revoked`), through
//!   the `bloomfilter` crate, and through a std `HashSet` alone (no filter).
//! - `naive/redis_exists`: one Redis `EXISTS` per check, the design of "look
//!   it up in the database", against a redis-server this bench starts.
//!
//! Memory per rule at 1 M and 10 M is printed before the groups run.
//! Run: `cargo bench --bench denylist`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use revokd::denylist::Denylist;
use revokd::rule::{RevokedBefore, Rule, RuleKey, TokenKeys};

/// Checks are made at this time; every rule lives past it.
const NOW: u64 = 1_800_000_000;
/// Distinct tokens cycled through, so lookups are not all in one cache line.
const PROBES: usize = 1 << 16;

/// A token as a resource server holds it after verifying the JWT.
struct Token {
    jti: String,
    sid: String,
    sub: String,
    client_id: String,
}

impl Token {
    fn new(prefix: &str, i: usize) -> Token {
        Token {
            jti: format!("{prefix}{i:022}"),
            sid: format!("sid-{prefix}{i}"),
            sub: format!("user-{}", i % 100_000),
            client_id: format!("client-{}", i % 50),
        }
    }

    fn keys(&self) -> TokenKeys<'_> {
        TokenKeys {
            jti: &self.jti,
            sid: Some(&self.sid),
            sub: Some(&self.sub),
            client_id: &self.client_id,
            iat: NOW - 10,
        }
    }
}

/// A denylist holding `n` jti rules for tokens `Token::new("r", 0..n)`, loaded
/// in snapshot-sized batches the way a subscriber loads it.
fn denylist_with(n: usize) -> Denylist {
    let denylist = Denylist::with_seed(42, 0);
    let mut batch = Vec::with_capacity(100_000);
    for i in 0..n {
        batch.push(Rule {
            key: RuleKey::Jti(Token::new("r", i).jti),
            revoked_before: RevokedBefore::All,
            expires_at: NOW + 3600,
        });
        if batch.len() == batch.capacity() {
            denylist.apply_batch(&batch);
            batch.clear();
        }
    }
    denylist.apply_batch(&batch);
    denylist
}

fn tokens(prefix: &str, n: usize) -> Vec<Token> {
    (0..PROBES)
        .map(|i| Token::new(prefix, i % n.max(1)))
        .collect()
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn report_memory() {
    for n in [1_000_000, 10_000_000] {
        let before = rss_bytes();
        let denylist = denylist_with(n);
        let after = rss_bytes();
        let stats = denylist.stats();
        println!(
            "memory/{n}: {:.1} bytes per rule by structure ({} shards, bloom {} bits for capacity {}), {:.1} bytes per rule by RSS growth",
            stats.memory_bytes as f64 / n as f64,
            stats.shards,
            stats.bloom_bits,
            stats.bloom_capacity,
            after.saturating_sub(before) as f64 / n as f64,
        );
    }
}

fn check(c: &mut Criterion) {
    report_memory();
    let mut group = c.benchmark_group("check");
    for n in [1_000, 1_000_000, 10_000_000] {
        let denylist = denylist_with(n);
        let misses = tokens("m", PROBES);
        group.bench_with_input(BenchmarkId::new("miss", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % PROBES;
                black_box(denylist.is_revoked(&misses[i].keys(), NOW))
            });
        });
        if n == 1_000_000 {
            let hits = tokens("r", n);
            group.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % PROBES;
                    let revoked = denylist.is_revoked(&hits[i].keys(), NOW);
                    debug_assert!(revoked.is_some());
                    black_box(revoked)
                });
            });
        }
    }
    group.finish();
}

fn concurrent(c: &mut Criterion) {
    let n = 1_000_000;
    let denylist = denylist_with(n);
    let misses = Arc::new(tokens("m", PROBES));
    let mut group = c.benchmark_group("concurrent");
    group.bench_function(BenchmarkId::new("miss_2_readers_10k_writes", n), |b| {
        b.iter_custom(|iters| {
            let stop = Arc::new(AtomicBool::new(false));
            let other_reader = {
                let (denylist, misses, stop) = (denylist.clone(), misses.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i = (i + 7) % PROBES;
                        black_box(denylist.is_revoked(&misses[i].keys(), NOW));
                    }
                })
            };
            let writer = {
                let (denylist, stop) = (denylist.clone(), stop.clone());
                std::thread::spawn(move || write_10k_per_second(&denylist, &stop))
            };
            let start = Instant::now();
            let mut i = 0;
            for _ in 0..iters {
                i = (i + 1) % PROBES;
                black_box(denylist.is_revoked(&misses[i].keys(), NOW));
            }
            let elapsed = start.elapsed();
            stop.store(true, Ordering::Relaxed);
            other_reader.join().unwrap();
            writer.join().unwrap();
            elapsed
        });
    });
    group.finish();
}

/// Applies ten new rules every millisecond until told to stop.
fn write_10k_per_second(denylist: &Denylist, stop: &AtomicBool) {
    let mut next = Instant::now();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10 {
            denylist.apply(&Rule {
                key: RuleKey::Jti(format!("w{i}")),
                revoked_before: RevokedBefore::All,
                expires_at: NOW + 3600,
            });
            i += 1;
        }
        next += Duration::from_millis(1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// The five keys of a token hashed the way the denylist hashes them, for the
/// reference designs.
fn hashed_keys(token: &Token) -> [u128; 5] {
    use xxhash_rust::xxh3::xxh3_128_with_seed;
    let sub = xxh3_128_with_seed(token.sub.as_bytes(), 3);
    let client = xxh3_128_with_seed(token.client_id.as_bytes(), 4);
    [
        xxh3_128_with_seed(token.jti.as_bytes(), 1),
        xxh3_128_with_seed(token.sid.as_bytes(), 2),
        sub,
        client,
        (sub.rotate_left(17) ^ client).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    ]
}

fn filter(c: &mut Criterion) {
    let n = 1_000_000;
    let misses = tokens("m", PROBES);
    let mut group = c.benchmark_group("filter");

    let denylist = denylist_with(n);
    group.bench_function(BenchmarkId::new("blocked", n), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % PROBES;
            black_box(denylist.is_revoked(&misses[i].keys(), NOW))
        });
    });
    drop(denylist);

    // The same check with the `bloomfilter` crate (1 % false positives) in
    // front; a miss never reaches a map, so none is built.
    let mut bloom = bloomfilter::Bloom::new_for_fp_rate(n, 0.01).unwrap();
    for i in 0..n {
        bloom.set(&hashed_keys(&Token::new("r", i))[0]);
    }
    group.bench_function(BenchmarkId::new("bloomfilter_crate", n), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % PROBES;
            let keys = hashed_keys(&misses[i]);
            black_box(keys.iter().any(|key| bloom.check(key)))
        });
    });
    drop(bloom);

    // No filter: the exact map alone (std `HashSet`, SipHash).
    let set: std::collections::HashSet<u128> = (0..n)
        .map(|i| hashed_keys(&Token::new("r", i))[0])
        .collect();
    group.bench_function(BenchmarkId::new("std_hashset", n), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % PROBES;
            let keys = hashed_keys(&misses[i]);
            black_box(keys.iter().any(|key| set.contains(key)))
        });
    });
    group.finish();
}

fn naive(c: &mut Criterion) {
    let server = redis_server::RedisServer::start();
    let mut connection = redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("connect to the bench's redis-server");
    let mut pipe = redis::pipe();
    for i in 0..10_000 {
        pipe.cmd("SET")
            .arg(format!("revoked:{}", Token::new("r", i).jti))
            .arg(1)
            .ignore();
    }
    let () = pipe.query(&mut connection).unwrap();
    let misses: Vec<String> = (0..PROBES)
        .map(|i| format!("revoked:{}", Token::new("m", i).jti))
        .collect();
    let mut group = c.benchmark_group("naive");
    group.bench_function("redis_exists", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % PROBES;
            let exists: bool = redis::cmd("EXISTS")
                .arg(&misses[i])
                .query(&mut connection)
                .unwrap();
            black_box(exists)
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = check, concurrent, filter, naive
}
criterion_main!(benches);
