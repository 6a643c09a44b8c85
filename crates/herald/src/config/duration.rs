//! Duration settings (`*_secs`, `*_ms`, `*_days`): an integer in the unit the key's name ends
//! with, as always, or a humantime string such as `"30s"`, `"5m"`, `"250ms"`, `"1h 30m"`.
//!
//! Used with `#[serde(deserialize_with = ...)]`, so the fields stay integers in their unit and
//! the code reading them is unchanged. Written here rather than taken from `humantime-serde`
//! or `serde_with`: the first reads only strings (an integer would be refused) and the
//! second's durations only numbers; neither converts to the key's unit and refuses a value
//! that is not a whole number of it (`"1500ms"` for a `_secs` key). The parsing itself is
//! `humantime`'s.

use std::{fmt, time::Duration};

use serde::{
    Deserializer,
    de::{self, SeqAccess, Visitor},
};

/// The unit a key's name ends with.
#[derive(Clone, Copy)]
struct Unit {
    name: &'static str,
    nanos: u128,
}

const SECS: Unit = Unit { name: "seconds", nanos: 1_000_000_000 };
const MS: Unit = Unit { name: "milliseconds", nanos: 1_000_000 };
const DAYS: Unit = Unit { name: "days", nanos: 86_400 * 1_000_000_000 };

impl Unit {
    /// `value` as a whole number of this unit.
    fn of<E: de::Error>(self, text: &str, value: Duration) -> Result<u64, E> {
        let nanos = value.as_nanos();
        if !nanos.is_multiple_of(self.nanos) {
            return Err(E::custom(format!("`{text}` is not a whole number of {}", self.name)));
        }
        u64::try_from(nanos / self.nanos).map_err(|_| E::custom(format!("`{text}` is too long")))
    }
}

impl<'de> Visitor<'de> for Unit {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number of {} or a duration such as \"30s\", \"5m\", \"250ms\"", self.name)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("`{v}`: a duration cannot be negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        let text = v.trim();
        if let Ok(n) = text.parse::<u64>() {
            return Ok(n);
        }
        let value = humantime::parse_duration(text).map_err(|e| {
            E::custom(format!(
                "`{v}` is not a duration ({e}); write a whole number of {}, or e.g. \"30s\", \"5m\", \"250ms\"",
                self.name
            ))
        })?;
        self.of(v, value)
    }
}

/// A list of durations in one unit (`webhooks.retry_schedule_secs`).
struct List(Unit);

impl<'de> Visitor<'de> for List {
    type Value = Vec<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of durations, each a whole number of {} or such as \"30s\"", self.0.name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(Seed(self.0))? {
            out.push(v);
        }
        Ok(out)
    }
}

struct Seed(Unit);

impl<'de> de::DeserializeSeed<'de> for Seed {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self.0)
    }
}

pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(SECS)
}

pub fn ms<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(MS)
}

pub fn ms_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = d.deserialize_any(MS)?;
    u32::try_from(v).map_err(|_| de::Error::custom(format!("{v} ms is too long (at most {} ms)", u32::MAX)))
}

pub fn days<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(DAYS)
}

pub fn secs_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    d.deserialize_seq(List(SECS))
}
