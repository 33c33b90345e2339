//! Async waits: a condition polled until it holds, an HTTP endpoint until it
//! answers a status, a child process until it exits.

#![allow(dead_code, unreachable_pub, clippy::panic)]

use std::future::Future;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::process::ChildGuard;

/// How often the waits here poll.
const EVERY: Duration = Duration::from_millis(20);

/// Polls `check` every 20 ms until it is true; panics naming `what` after
/// `bound`. Returns how long it took.
pub async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(EVERY).await;
    }
}

/// Polls `probe` every `every` until it returns `Some` or `bound` passes
/// (it runs at least once).
pub async fn poll_async<T, F, Fut>(bound: Duration, every: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// The status of `GET url`, `None` when the request fails.
pub async fn status_of(http: &reqwest::Client, url: &str) -> Option<u16> {
    let response = http.get(url).send().await.ok()?;
    Some(response.status().as_u16())
}

/// Polls `GET url` every 20 ms until it answers `status`; whether it did
/// within `bound`.
pub async fn answers_within(
    http: &reqwest::Client,
    url: &str,
    status: u16,
    bound: Duration,
) -> bool {
    poll_async(bound, EVERY, || async {
        (status_of(http, url).await == Some(status)).then_some(())
    })
    .await
    .is_some()
}

/// Waits until `GET url` answers `status` (`/readyz` 200, say); panics after
/// `bound`. Returns how long it took.
pub async fn wait_for_status(
    http: &reqwest::Client,
    url: &str,
    status: u16,
    bound: Duration,
) -> Duration {
    let started = Instant::now();
    assert!(
        answers_within(http, url, status, bound).await,
        "{url} never answered {status} within {bound:?}"
    );
    started.elapsed()
}

/// Waits (polling every 20 ms) until `child` exits: its status, `None` if
/// it still runs after `bound`.
pub async fn exit_within(child: &mut ChildGuard, bound: Duration) -> Option<ExitStatus> {
    poll_async(bound, EVERY, || std::future::ready(child.try_wait())).await
}
