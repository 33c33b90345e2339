//! What errors share: a boxed cause, and a log form that prints the whole
//! chain of causes.
//!
//! An error that keeps its cause returns it from
//! [`source`](std::error::Error::source) and leaves it out of its own
//! message; a log line shows both through [`Chain`]:
//! `tracing::warn!(error = %Chain(&e), "…")`.

use std::error::Error;
use std::fmt;

/// Any error, as a cause kept inside another.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Displays an error followed by each of its causes, `: `-separated
/// (`revocation store unavailable: revoking: redis did not answer within 2s`).
///
/// A cause whose message its parent already ends with (the `"…: {0}"`
/// style) is not repeated.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let message = error.to_string();
            if !shown.ends_with(&message) {
                write!(f, ": {message}")?;
            }
            shown = message;
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown_once() {
        let error = Outer(Middle(std::io::Error::other("disk on fire")));
        assert_eq!(
            Chain(&error).to_string(),
            "outer: middle: disk on fire",
            "the io error is already part of the middle message"
        );
        let plain = std::io::Error::other("alone");
        assert_eq!(Chain(&plain).to_string(), "alone");
    }
}
