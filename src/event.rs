//! Rule changes on the wire: [`Event`] and [`Snapshot`] to and from the
//! protobuf messages of `proto/revokd/v1/events.proto`.
//!
//! Decoding never panics: garbage, an unknown op, a malformed key or a
//! missing field is an [`EventError`], which a subscriber treats as a reason
//! to resync.

use prost::Message;

use crate::rule::{RevokedBefore, Rule, RuleError, RuleKey};

/// The generated protobuf types (`revokd.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/revokd.v1.rs"));
}

/// What one event does to the rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add the rule, or merge it into the one held for its key.
    Add(Rule),
    /// Delete the rule for this key (re-approval).
    Remove(RuleKey),
}

/// One change, with its position in the stream and in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the total order of changes (consecutive from 1).
    pub seq: u64,
    /// The change.
    pub change: Change,
    /// When it was published, milliseconds since the epoch.
    pub published_at_ms: u64,
    /// The history's head after this event.
    pub head: Head,
    /// The history's head before it ([`Head::GENESIS`] for seq 1).
    pub prev_head: Head,
}

/// Every live rule, consistent with the stream at `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The seq of the last event the snapshot includes.
    pub seq: u64,
    /// The history's head at `seq`.
    pub head: Head,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// The head of a dataset's history: a hash chained through every event
/// (`head = SHA-1(event encoded with prev_head)`, computed by the Redis
/// scripts). Equal seqs with different heads are different histories: the
/// dataset came back older than it was, and what a subscriber holds beyond
/// the fork may be missing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Head(pub [u8; 20]);

impl Head {
    /// The head of an empty history (seq 0).
    pub const GENESIS: Head = Head([0; 20]);

    /// Parses the 40 hex digits of the wire form; the empty string is
    /// [`Head::GENESIS`].
    pub fn parse(text: &str) -> Result<Head, EventError> {
        if text.is_empty() {
            return Ok(Head::GENESIS);
        }
        let bytes = text.as_bytes();
        if bytes.len() != 40 {
            return Err(EventError::Head);
        }
        let mut head = [0u8; 20];
        for (out, pair) in head.iter_mut().zip(bytes.chunks_exact(2)) {
            let digit = |b: u8| (b as char).to_digit(16).ok_or(EventError::Head);
            *out = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?)
                .map_err(|_| EventError::Head)?;
        }
        Ok(Head(head))
    }

    /// The wire form: 40 lowercase hex digits, empty for [`Head::GENESIS`].
    pub fn to_hex(&self) -> String {
        if *self == Head::GENESIS {
            return String::new();
        }
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Head::GENESIS {
            return f.write_str("genesis");
        }
        f.write_str(&self.to_hex())
    }
}

/// Why bytes are not a valid event or snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not a protobuf message of the expected type.
    #[error("malformed protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The op is unspecified or unknown.
    #[error("unknown event op {0}")]
    UnknownOp(i32),
    /// The rule key is malformed.
    #[error("bad rule key: {0}")]
    Key(#[from] RuleError),
    /// Seq 0 is never assigned.
    #[error("event seq must be at least 1")]
    ZeroSeq,
    /// A head is not 40 hex digits.
    #[error("history head must be 40 hex digits")]
    Head,
}

impl Event {
    /// The protobuf encoding of this event.
    pub fn encode(&self) -> Vec<u8> {
        let (op, key, bound, expires_at) = match &self.change {
            Change::Add(rule) => (
                proto::revocation_event::Op::Add,
                &rule.key,
                Some(rule.revoked_before),
                rule.expires_at,
            ),
            Change::Remove(key) => (proto::revocation_event::Op::Remove, key, None, 0),
        };
        let (revoked_before, all) = bound.map_or((0, false), encode_bound);
        proto::RevocationEvent {
            seq: self.seq,
            op: op.into(),
            key: key.to_string(),
            revoked_before,
            expires_at,
            published_at_ms: self.published_at_ms,
            all,
            head: self.head.to_hex(),
            prev_head: self.prev_head.to_hex(),
        }
        .encode_to_vec()
    }

    /// Decodes and validates an event.
    pub fn decode(bytes: &[u8]) -> Result<Event, EventError> {
        let message = proto::RevocationEvent::decode(bytes)?;
        if message.seq == 0 {
            return Err(EventError::ZeroSeq);
        }
        let key: RuleKey = message.key.parse()?;
        let change = match proto::revocation_event::Op::try_from(message.op) {
            Ok(proto::revocation_event::Op::Add) => Change::Add(Rule {
                key,
                revoked_before: decode_bound(message.revoked_before, message.all),
                expires_at: message.expires_at,
            }),
            Ok(proto::revocation_event::Op::Remove) => Change::Remove(key),
            Ok(proto::revocation_event::Op::Unspecified) | Err(_) => {
                return Err(EventError::UnknownOp(message.op));
            }
        };
        Ok(Event {
            seq: message.seq,
            change,
            published_at_ms: message.published_at_ms,
            head: Head::parse(&message.head)?,
            prev_head: Head::parse(&message.prev_head)?,
        })
    }
}

impl Snapshot {
    /// The protobuf encoding of this snapshot.
    pub fn encode(&self) -> Vec<u8> {
        proto::RuleSnapshot {
            seq: self.seq,
            rules: self.rules.iter().map(encode_rule).collect(),
            head: self.head.to_hex(),
        }
        .encode_to_vec()
    }

    /// Decodes and validates a snapshot; one bad rule fails the whole snapshot.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, EventError> {
        let message = proto::RuleSnapshot::decode(bytes)?;
        let rules = message
            .rules
            .into_iter()
            .map(decode_rule)
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            seq: message.seq,
            head: Head::parse(&message.head)?,
            rules,
        })
    }
}

/// One rule in its protobuf form.
pub fn encode_rule(rule: &Rule) -> proto::Rule {
    let (revoked_before, all) = encode_bound(rule.revoked_before);
    proto::Rule {
        key: rule.key.to_string(),
        revoked_before,
        expires_at: rule.expires_at,
        all,
    }
}

/// One rule from its protobuf form.
pub fn decode_rule(rule: proto::Rule) -> Result<Rule, EventError> {
    Ok(Rule {
        key: rule.key.parse()?,
        revoked_before: decode_bound(rule.revoked_before, rule.all),
        expires_at: rule.expires_at,
    })
}

fn encode_bound(bound: RevokedBefore) -> (u64, bool) {
    match bound {
        RevokedBefore::IssuedAtOrBefore(iat) => (iat, false),
        RevokedBefore::All => (0, true),
    }
}

fn decode_bound(revoked_before: u64, all: bool) -> RevokedBefore {
    if all {
        RevokedBefore::All
    } else {
        RevokedBefore::IssuedAtOrBefore(revoked_before)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn add(key: &str, revoked_before: RevokedBefore) -> Event {
        Event {
            seq: 7,
            change: Change::Add(Rule {
                key: key.parse().unwrap(),
                revoked_before,
                expires_at: 1_800_000_000,
            }),
            published_at_ms: 1_799_999_000_123,
            head: Head([7; 20]),
            prev_head: Head([6; 20]),
        }
    }

    #[test]
    fn events_round_trip() {
        for event in [
            add("jti:abc", RevokedBefore::All),
            add("subclient:alice/web", RevokedBefore::IssuedAtOrBefore(42)),
            Event {
                seq: u64::MAX,
                change: Change::Remove("sid:s1".parse().unwrap()),
                published_at_ms: 0,
                head: Head([0xab; 20]),
                prev_head: Head::GENESIS,
            },
        ] {
            assert_eq!(Event::decode(&event.encode()).unwrap(), event);
        }
    }

    #[test]
    fn snapshots_round_trip() {
        let snapshot = Snapshot {
            seq: 99,
            head: Head([1; 20]),
            rules: vec![
                Rule {
                    key: "sub:alice".parse().unwrap(),
                    revoked_before: RevokedBefore::IssuedAtOrBefore(5),
                    expires_at: 10,
                },
                Rule {
                    key: "client:web".parse().unwrap(),
                    revoked_before: RevokedBefore::All,
                    expires_at: 11,
                },
            ],
        };
        assert_eq!(Snapshot::decode(&snapshot.encode()).unwrap(), snapshot);
        assert_eq!(
            Snapshot::decode(&Snapshot::default().encode()).unwrap(),
            Snapshot::default()
        );
    }

    #[test]
    fn invalid_events_are_errors() {
        let unspecified = proto::RevocationEvent {
            seq: 1,
            key: "jti:x".into(),
            ..Default::default()
        };
        assert!(matches!(
            Event::decode(&unspecified.encode_to_vec()),
            Err(EventError::UnknownOp(0))
        ));
        let bad_key = proto::RevocationEvent {
            seq: 1,
            op: 1,
            key: "nope".into(),
            ..Default::default()
        };
        assert!(matches!(
            Event::decode(&bad_key.encode_to_vec()),
            Err(EventError::Key(_))
        ));
        let zero = proto::RevocationEvent {
            op: 1,
            key: "jti:x".into(),
            ..Default::default()
        };
        assert!(matches!(
            Event::decode(&zero.encode_to_vec()),
            Err(EventError::ZeroSeq)
        ));
        assert!(matches!(
            Event::decode(&[0xff, 0xff, 0xff]),
            Err(EventError::Protobuf(_))
        ));
        let bad_head = proto::RevocationEvent {
            seq: 1,
            op: 1,
            key: "jti:x".into(),
            head: "not hex".into(),
            ..Default::default()
        };
        assert!(matches!(
            Event::decode(&bad_head.encode_to_vec()),
            Err(EventError::Head)
        ));
    }

    #[test]
    fn heads_round_trip_through_hex() {
        let head = Head([0x0f; 20]);
        assert_eq!(head.to_hex(), "0f".repeat(20));
        assert_eq!(Head::parse(&head.to_hex()).unwrap(), head);
        assert_eq!(Head::parse("").unwrap(), Head::GENESIS);
        assert!(Head::parse(&"g".repeat(40)).is_err());
        assert!(Head::parse("abc").is_err());
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Event::decode(&bytes);
            let _ = Snapshot::decode(&bytes);
        }

        #[test]
        fn any_valid_add_round_trips(seq in 1u64.., jti in "[A-Za-z0-9_-]{1,40}", bound in any::<Option<u64>>(), expires_at in any::<u64>()) {
            let event = Event {
                seq,
                change: Change::Add(Rule {
                    key: RuleKey::Jti(jti),
                    revoked_before: bound.map_or(RevokedBefore::All, RevokedBefore::IssuedAtOrBefore),
                    expires_at,
                }),
                published_at_ms: 1,
                head: Head([3; 20]),
                prev_head: Head::GENESIS,
            };
            prop_assert_eq!(Event::decode(&event.encode()).unwrap(), event);
        }
    }
}
