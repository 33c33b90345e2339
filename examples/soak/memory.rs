//! Memory over the run: every process's RSS and denylist size, sampled at a
//! fixed interval, and the verdict whether memory stayed flat once the rule
//! count stopped growing.
//!
//! Rules live until the last token they can affect expires, so with short
//! token lifetimes the live rule count reaches a plateau one refresh
//! lifetime (plus one access lifetime) into the run. From then on a process
//! whose memory only follows its rules holds steady; one that leaks keeps
//! growing. The steady window is cut in two halves and each process's median
//! RSS in the second half is compared with its median in the first: the
//! median is the resting level a leak raises, while every half's peak is a
//! resync or restore transient of a chaos round, which a good allocator
//! gives back within seconds (the peaks are printed too).

use std::ops::RangeInclusive;
use std::time::Duration;

/// The median may grow by this fraction from the first half to the second…
const GROWTH_ALLOWED: f64 = 0.10;
/// …plus this much, for allocator noise on small processes.
const SLACK_KIB: u64 = 4 * 1024;

/// One process the run watches.
pub(crate) struct Watched {
    pub(crate) name: &'static str,
    pub(crate) pid: u32,
    /// Base URL whose `/metrics` reports `revokd_denylist_rules`.
    pub(crate) base: String,
}

/// One reading of every watched process.
pub(crate) struct Sample {
    /// Time since the run's traffic started.
    pub(crate) at: Duration,
    pub(crate) rss_kib: Vec<u64>,
    /// Rules in each process's denylist (`None` when `/metrics` did not answer).
    pub(crate) rules: Vec<Option<u64>>,
}

/// The resident set size of a process, in KiB (0 when it is gone).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Reads every watched process once.
pub(crate) async fn sample(http: &reqwest::Client, watched: &[Watched], at: Duration) -> Sample {
    let mut rules = Vec::with_capacity(watched.len());
    for process in watched {
        rules.push(denylist_rules(http, &process.base).await);
    }
    Sample {
        at,
        rss_kib: watched.iter().map(|process| rss_kib(process.pid)).collect(),
        rules,
    }
}

async fn denylist_rules(http: &reqwest::Client, base: &str) -> Option<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("revokd_denylist_rules "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
}

/// One process's RSS and rules in the two halves of the steady window.
struct Halves {
    name: &'static str,
    /// Median RSS of each half, KiB.
    median_kib: [u64; 2],
    /// Peak RSS of each half, KiB.
    peak_kib: [u64; 2],
    /// Peak rule count of each half.
    rules: [u64; 2],
}

impl Halves {
    /// Whether the second half's median stayed within the allowed growth.
    fn flat(&self) -> bool {
        let bound = (self.median_kib[0] as f64 * (1.0 + GROWTH_ALLOWED)) as u64 + SLACK_KIB;
        self.median_kib[1] <= bound
    }
}

/// Judges memory over the samples taken within `steady` (the rule plateau),
/// prints one line per process, and says whether every one stayed flat. A
/// window too short to cut in two halves with samples in each is reported
/// and not held against the run.
pub(crate) fn verdict(
    samples: Vec<Sample>,
    watched: &[Watched],
    steady: RangeInclusive<Duration>,
) -> bool {
    let steady_samples: Vec<Sample> = samples
        .into_iter()
        .filter(|s| steady.contains(&s.at))
        .collect();
    let window = format!("{}-{} s", steady.start().as_secs(), steady.end().as_secs());
    let Some(halves) = halves(&steady_samples, watched) else {
        println!("soak: memory not judged: the rule plateau ({window}) is too short; run longer");
        return true;
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    for h in &halves {
        println!(
            "soak: memory {} over {window}: median RSS {:.1} -> {:.1} MiB, peak {:.1} -> {:.1} MiB, rules {} -> {}: {}",
            h.name,
            mib(h.median_kib[0]),
            mib(h.median_kib[1]),
            mib(h.peak_kib[0]),
            mib(h.peak_kib[1]),
            h.rules[0],
            h.rules[1],
            if h.flat() { "flat" } else { "GROWING" },
        );
    }
    halves.iter().all(Halves::flat)
}

/// Each process's figures in the two halves of `steady`; `None` when there
/// are too few samples to cut it in two.
fn halves(steady: &[Sample], watched: &[Watched]) -> Option<Vec<Halves>> {
    if steady.len() < 4 {
        return None;
    }
    let (first, second) = steady.split_at(steady.len() / 2);
    Some(
        watched
            .iter()
            .enumerate()
            .map(|(i, process)| {
                let rss = |half: &[Sample]| -> Vec<u64> {
                    let mut rss: Vec<u64> = half.iter().map(|s| s.rss_kib[i]).collect();
                    rss.sort_unstable();
                    rss
                };
                let rules = |half: &[Sample]| {
                    half.iter()
                        .map(|s| s.rules[i].unwrap_or(0))
                        .max()
                        .unwrap_or(0)
                };
                let (a, b) = (rss(first), rss(second));
                Halves {
                    name: process.name,
                    median_kib: [a[a.len() / 2], b[b.len() / 2]],
                    peak_kib: [a[a.len() - 1], b[b.len() - 1]],
                    rules: [rules(first), rules(second)],
                }
            })
            .collect(),
    )
}

/// One line per sample: seconds, then RSS (MiB) and rules per process.
pub(crate) fn describe(sample: &Sample, watched: &[Watched]) -> String {
    let parts: Vec<String> = watched
        .iter()
        .enumerate()
        .map(|(i, process)| {
            let rules = sample.rules[i].map_or("-".to_owned(), |r| r.to_string());
            format!(
                "{} {:.1} MiB {rules} rules",
                process.name,
                sample.rss_kib[i] as f64 / 1024.0
            )
        })
        .collect();
    format!("t={:>4}s {}", sample.at.as_secs(), parts.join(", "))
}
