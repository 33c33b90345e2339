//! The end of the run: each process's denylist figures, the run's totals,
//! RSS before and after, and the verdict.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use crate::traffic::Ctx;

/// The run's totals.
pub(crate) struct Totals {
    /// Seconds of traffic.
    pub(crate) seconds: u64,
    /// Tokens judged in the final pass.
    pub(crate) tokens: usize,
    /// Of them, revoked.
    pub(crate) revoked: usize,
    /// Of them, judged wrong.
    pub(crate) wrong: usize,
    /// Chaos rounds run.
    pub(crate) rounds: u32,
    /// RSS (KiB) of every process before the traffic.
    pub(crate) rss_before: Vec<u64>,
    /// RSS (KiB) of every process after the final pass.
    pub(crate) rss_after: Vec<u64>,
}

/// Prints the denylist lines of every process's `/metrics`.
pub(crate) async fn print_denylist_metrics(ctx: &Ctx) {
    for base in ctx
        .issuers
        .iter()
        .chain(std::iter::once(&ctx.resource))
        .filter(|b| !b.is_empty())
    {
        if let Ok(response) = ctx.http.get(format!("{base}/metrics")).send().await {
            let text = response.text().await.unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("revokd_denylist_rules")
                        || l.starts_with("revokd_denylist_resyncs")
                        || l.starts_with("revokd_redis_connected")
                        || l.starts_with("revokd_denylist_staleness")
                        || l.starts_with("revokd_denylist_events_applied")
                })
                .collect();
            println!("soak: {base} {lines:?}");
        }
    }
}

/// Prints the run's totals and RSS.
pub(crate) fn print_totals(ctx: &Ctx, totals: &Totals) {
    let counters = &ctx.counters;
    println!(
        "soak: {} s, {} requests, {} tokens ({} revoked), {} chaos rounds, {} documented 503s, {} violations, {} tokens judged wrong at the end",
        totals.seconds,
        counters.requests.load(Ordering::Relaxed),
        totals.tokens,
        totals.revoked,
        totals.rounds,
        counters.allowed_503.load(Ordering::Relaxed),
        counters.violations.load(Ordering::Relaxed),
        totals.wrong,
    );
    println!(
        "soak: RSS KiB before {:?} after {:?} (issuer, issuer[, resource server])",
        totals.rss_before, totals.rss_after
    );
}

/// Success only with no violation, no token judged wrong and memory flat.
pub(crate) fn exit_code(ctx: &Ctx, wrong: usize, flat: bool) -> ExitCode {
    if ctx.counters.violations.load(Ordering::Relaxed) == 0 && wrong == 0 && flat {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
