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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    #[allow(clippy::result_large_err)]
    fn durations_are_integers_in_the_keys_unit_or_humantime_strings() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                "[http]\nrequest_timeout_secs = 45\nlist_cache_ms = \"2s\"\nidle_timeout_secs = \"5m\"\n\
                 [webhooks]\nretry_schedule_secs = [10, \"5m\", \"1h 30m\"]\ndefault_timeout_ms = \"1s 500ms\"\n\
                 retention_days = \"2weeks\"\n",
            )?;
            jail.set_env("HERALD_AUTH__KEY_CACHE_TTL_SECS", "1m");
            jail.set_env("HERALD_REALTIME__POLL_INTERVAL_MS", "250");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.http.request_timeout_secs, 45, "an integer is in the key's unit");
            assert_eq!(config.http.list_cache_ms, 2000);
            assert_eq!(config.http.idle_timeout_secs, 300);
            assert_eq!(config.webhooks.retry_schedule_secs, vec![10, 300, 5400]);
            assert_eq!(config.webhooks.default_timeout_ms, 1500);
            assert_eq!(config.webhooks.retention_days, 14);
            assert_eq!(config.auth.key_cache_ttl_secs, 60);
            assert_eq!(config.realtime.poll_interval_ms, 250);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn a_bad_duration_is_refused_naming_its_key() {
        figment::Jail::expect_with(|jail| {
            let error = |toml: &str| {
                std::fs::write("bad.toml", toml).expect("writes");
                Config::load(Some(std::path::Path::new("bad.toml"))).expect_err("refused").to_string()
            };
            let e = error("[http]\nidle_timeout_secs = \"soon\"\n");
            assert!(e.contains("http.idle_timeout_secs") && e.contains("`soon` is not a duration"), "{e}");
            let e = error("[auth]\nkey_cache_ttl_secs = \"1500ms\"\n");
            assert!(e.contains("auth.key_cache_ttl_secs") && e.contains("not a whole number of seconds"), "{e}");
            let e = error("[webhooks]\nretry_schedule_secs = [60, \"later\"]\n");
            assert!(e.contains("webhooks.retry_schedule_secs") && e.contains("`later`"), "{e}");
            jail.set_env("HERALD_HTTP__LIST_CACHE_MS", "-5");
            let e = Config::load(None).expect_err("refused").to_string();
            assert!(e.to_lowercase().contains("http.list_cache_ms") && e.contains("cannot be negative"), "{e}");
            Ok(())
        });
    }
}
