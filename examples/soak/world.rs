//! What the soak run knows: every token it follows, which ones an answered
//! revocation or re-approval changed, and which changes are still in flight.
//!
//! Tokens leave the world a few seconds before they expire, so nothing is
//! judged near its expiry and the run's own memory stays bounded however
//! long it runs.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long after an answered change a check holds every process to it.
pub(crate) const PROPAGATION_GRACE: Duration = Duration::from_millis(500);
/// A token is dropped from the world this many seconds before it expires.
pub(crate) const EXPIRY_MARGIN_SECS: u64 = 5;

/// One access token the run follows.
#[derive(Clone)]
pub(crate) struct Tracked {
    pub(crate) access: String,
    pub(crate) jti: String,
    pub(crate) sid: String,
    /// The access token's `exp`.
    pub(crate) exp: u64,
    /// A `jti:` rule revokes it (answered 200, not re-approved since).
    pub(crate) jti_revoked: bool,
}

/// The current refresh token of a live session.
pub(crate) struct Refresh {
    pub(crate) token: String,
    pub(crate) exp: u64,
}

#[derive(Default)]
pub(crate) struct World {
    pub(crate) tokens: Vec<Tracked>,
    /// Sessions revoked with a 200 (by refresh revocation).
    pub(crate) dead_sessions: HashSet<String>,
    /// Current refresh token per live session.
    pub(crate) refresh: HashMap<String, Refresh>,
    /// Tokens (by jti) and sessions whose revocation or re-approval is in
    /// flight, or whose outcome is unknown: they are not judged.
    pub(crate) pending: HashSet<String>,
    /// When each jti or sid last changed state: a change needs a moment to
    /// propagate before a check may hold it to the new state.
    changed_at: HashMap<String, Instant>,
    /// While Redis holds an RDB that a later round restarts from: the jtis
    /// re-approved (answered) since it was written. Such a re-approval may
    /// come back as a revocation (the documented fail-safe direction).
    pub(crate) reapproved_since_save: Option<HashSet<String>>,
}

impl World {
    pub(crate) fn expected_active(&self, token: &Tracked) -> bool {
        !token.jti_revoked && !self.dead_sessions.contains(&token.sid)
    }

    pub(crate) fn settled(&self, token: &Tracked) -> bool {
        let propagated = |id: &String| {
            self.changed_at
                .get(id)
                .is_none_or(|at| at.elapsed() > PROPAGATION_GRACE)
        };
        !self.pending.contains(&token.jti)
            && !self.pending.contains(&token.sid)
            && propagated(&token.jti)
            && propagated(&token.sid)
    }

    pub(crate) fn changed(&mut self, id: &str) {
        self.changed_at.insert(id.to_owned(), Instant::now());
    }

    /// Drops tokens within [`EXPIRY_MARGIN_SECS`] of their expiry (at `now`,
    /// seconds since the epoch), and every session, refresh token and
    /// bookkeeping entry no followed token can reach any more.
    pub(crate) fn prune(&mut self, now: u64) {
        let horizon = now + EXPIRY_MARGIN_SECS;
        self.tokens.retain(|token| token.exp > horizon);
        let live: HashSet<&str> = self
            .tokens
            .iter()
            .flat_map(|token| [token.jti.as_str(), token.sid.as_str()])
            .collect();
        self.refresh
            .retain(|sid, refresh| refresh.exp > horizon && live.contains(sid.as_str()));
        self.dead_sessions.retain(|sid| live.contains(sid.as_str()));
        self.pending.retain(|id| live.contains(id.as_str()));
        self.changed_at.retain(|id, _| live.contains(id.as_str()));
        if let Some(reapproved) = self.reapproved_since_save.as_mut() {
            reapproved.retain(|id| live.contains(id.as_str()));
        }
    }

    /// Redis was restarted from an older RDB: every re-approval answered
    /// since it was written may have come back as a revocation, so those
    /// tokens leave judgement for good. Returns how many.
    pub(crate) fn forget_reapprovals_since_save(&mut self) -> usize {
        let reapproved = self.reapproved_since_save.take().unwrap_or_default();
        let count = reapproved.len();
        self.pending.extend(reapproved);
        count
    }

    /// Number of entries the world holds, to show the run itself stays bounded.
    pub(crate) fn size(&self) -> usize {
        self.tokens.len()
            + self.dead_sessions.len()
            + self.refresh.len()
            + self.pending.len()
            + self.changed_at.len()
            + self.reapproved_since_save.as_ref().map_or(0, HashSet::len)
    }
}
