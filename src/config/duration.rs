//! Durations in the file: humantime strings (`"250ms"`, `"5m"`) or whole
//! seconds; written back as humantime strings. For `#[serde(with = …)]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Secs(u64),
    Text(String),
}

fn parse(raw: RawDuration) -> Result<Duration, String> {
    match raw {
        RawDuration::Secs(s) => Ok(Duration::from_secs(s)),
        RawDuration::Text(t) => humantime::parse_duration(&t).map_err(|e| format!("{t:?}: {e}")),
    }
}

pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse(RawDuration::deserialize(d)?).map_err(serde::de::Error::custom)
}

pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// The same for an optional duration.
pub(super) mod option {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<RawDuration>::deserialize(d)? {
            None => Ok(None),
            Some(raw) => parse(raw).map(Some).map_err(serde::de::Error::custom),
        }
    }

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}
