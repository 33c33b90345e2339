//! Memory over the run: every process's RSS and denylist size, sampled at a
//! fixed interval, and the verdict whether memory stayed flat once the rule
//! count stopped growing.
//!
//! Rules live until the last token they can affect expires, so with short
//! token lifetimes the live rule count reaches a plateau one refresh
//! lifetime (plus one access lifetime) into the run. From then on a process
//! whose memory only follows its rules holds steady; one that leaks keeps
//! growing. The steady window is cut in two halves and each process's peak
//! RSS in the second half is compared with its peak in the first: peaks,
//! not averages, because every half holds Redis kills and empty restarts,
//! whose resyncs and restores are the transients most likely to leave
//! memory behind.

use std::time::Duration;

/// A peak may grow by this fraction from the first half to the second…
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

/// One process's peaks in the two halves of the steady window.
pub(crate) struct Peaks {
    pub(crate) name: &'static str,
    pub(crate) first_kib: u64,
    pub(crate) second_kib: u64,
    pub(crate) rules_first: u64,
    pub(crate) rules_second: u64,
}

impl Peaks {
    /// Whether the second half's peak stayed within the allowed growth.
    pub(crate) fn flat(&self) -> bool {
        let bound = (self.first_kib as f64 * (1.0 + GROWTH_ALLOWED)) as u64 + SLACK_KIB;
        self.second_kib <= bound
    }
}

/// Peaks per process over the samples taken at or after `steady_from`;
/// `None` when the steady window is too short to hold two halves with
/// samples in each.
pub(crate) fn peaks(
    samples: &[Sample],
    watched: &[Watched],
    steady_from: Duration,
) -> Option<Vec<Peaks>> {
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at >= steady_from).collect();
    if steady.len() < 4 {
        return None;
    }
    let (first, second) = steady.split_at(steady.len() / 2);
    let peak = |half: &[&Sample], f: &dyn Fn(&Sample) -> u64| half.iter().map(|s| f(s)).max();
    Some(
        watched
            .iter()
            .enumerate()
            .map(|(i, process)| {
                let rss = |s: &Sample| s.rss_kib[i];
                let rules = |s: &Sample| s.rules[i].unwrap_or(0);
                Peaks {
                    name: process.name,
                    first_kib: peak(first, &rss).unwrap_or(0),
                    second_kib: peak(second, &rss).unwrap_or(0),
                    rules_first: peak(first, &rules).unwrap_or(0),
                    rules_second: peak(second, &rules).unwrap_or(0),
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
