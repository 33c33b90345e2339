//! The one place that reads the system clock. Everything else takes time as a
//! parameter (seconds since the Unix epoch), so expiry is testable without
//! sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time since the Unix epoch, read from the system clock.
#[allow(clippy::disallowed_methods)] // this module is the sanctioned reader
pub fn since_epoch() -> Duration {
    // A clock set before 1970 is a broken host; treat it as the epoch rather
    // than panic on the request path.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Whole seconds since the Unix epoch (the unit of `iat`, `exp`, rules).
pub fn now_secs() -> u64 {
    since_epoch().as_secs()
}

/// Milliseconds since the Unix epoch (the unit of `published_at_ms`).
pub fn now_millis() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}
