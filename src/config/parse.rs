//! Parsing the string forms of values (environment variables and flags) and showing them back
//! in messages.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Config, ConfigError};

pub(super) fn range(c: &Config, key: &str, v: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(ConfigError::Invalid {
            key: key.into(),
            value: v.to_string(),
            origin: c.origin(key),
            allowed: format!("expected a whole number from {min} to {max}"),
        });
    }
    Ok(())
}

pub(super) fn ch_ident_ok(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub(super) fn generations(v: &str) -> Result<BTreeMap<String, u8>, String> {
    let allowed =
        "expected table=generation pairs like TaskRun=0,task_run_v2=1 (generation 0 to 255)";
    list(v)
        .into_iter()
        .map(|pair| {
            let (t, g) = pair.split_once('=').ok_or_else(|| allowed.to_string())?;
            let g = g.trim().parse::<u8>().map_err(|_| allowed.to_string())?;
            Ok((t.trim().to_string(), g))
        })
        .collect()
}

/// `postgres.generations` as its environment form: `TaskRun=0,task_run_v2=1`.
pub(super) fn generations_text(gens: &BTreeMap<String, u8>) -> String {
    gens.iter()
        .map(|(t, g)| format!("{t}={g}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false (or 1 / 0)".into()),
    }
}

pub(super) fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| "expected a whole number".to_string())
}

pub(super) fn redact_url(v: &str) -> String {
    match url::Url::parse(v) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            format!("{:?}", u.as_str())
        }
        Err(_) => "(unparseable URL, not shown)".into(),
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn one_line_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {col}: {}", one_line(e.message()))
        }
        None => one_line(e.message()),
    }
}

/// A duration: `0` or `off`, a number of seconds, or a number with a unit (`ms`, `s`, `m`, `h`,
/// `d`), e.g. `90s`, `15m`, `6h`.
pub(super) fn duration(v: &str) -> Result<Duration, String> {
    let allowed = || "expected a duration like 90s, 15m, 6h or 1d (0 or off: none)".to_string();
    let v = v.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(Duration::ZERO);
    }
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().map_err(|_| allowed())?;
    let ms = match unit.trim() {
        "" | "s" => n.checked_mul(1000),
        "ms" => Some(n),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(allowed)
}

/// A duration as a person reads it back: `6h`, `15m`, `90s`, `500ms`.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}
