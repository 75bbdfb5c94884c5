//! `idempotency_key_user` and `idempotency_key_scope` from the `idempotencyKeyOptions` jsonb.
//!
//! Upstream uses the *unsafe* extractors (`unsafeExtractIdempotencyKeyUser` / `…Scope`):
//! `options?.key ?? ""` with no schema check. Whatever JSON value is there reaches a ClickHouse
//! `String` column, which stores a string as itself and any other value as its JSON text (the
//! `input_format_json_read_*_as_strings` defaults), so that is what we produce. `null` and a
//! missing key both give `""`, as does an options value that is not an object.

use super::json::{self, Kind, Numbers, Reject};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct IdempotencyColumns {
    pub user: String,
    pub scope: String,
}

/// `options` is the jsonb text (`None` for SQL NULL). Fails only when it is not JSON at all.
pub fn idempotency_columns(options: Option<&str>) -> Result<IdempotencyColumns, Reject> {
    let Some(options) = options else {
        return Ok(IdempotencyColumns::default());
    };
    json::validate(options)?;
    if json::kind(options) != Kind::Object {
        return Ok(IdempotencyColumns::default());
    }
    Ok(IdempotencyColumns {
        user: as_column_string(json::member(options, "key")),
        scope: as_column_string(json::member(options, "scope")),
    })
}

fn as_column_string(value: Option<&str>) -> String {
    match value.map(|v| (v, json::kind(v))) {
        None | Some((_, Kind::Null)) => String::new(),
        Some((v, Kind::String)) => json::decode_string(v).into_owned(),
        // A nested value too deep to print is not worth failing the row for.
        Some((v, _)) => json::compact(v, Numbers::Json, json::MAX_DEPTH).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
