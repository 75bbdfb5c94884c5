//! A config value read from its text form: URLs and the like are strings in TOML and parse with
//! their own `FromStr`, so a bad one is reported with that parser's message. Shared by the
//! sections and the `[[postgres.sources]]` entries, which both hold such values.

use std::fmt;

use serde::Deserialize;

/// A `deserialize_with` for any `FromStr` value written as a string.
pub(super) fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}
