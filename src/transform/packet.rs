//! The JSON columns as ClickHouse receives them: `output` and `payload` (upstream's
//! `#prepareJson(data, dataType)`) and `error` (`{data: run.error}`), always a JSON object.
//!
//! `prepare_json` gives `{"data":<value>}`, or `{}` (upstream's `{data: undefined}`) when
//! - the data is NULL or empty,
//! - the type is neither `application/json` nor `application/super+json`,
//! - the text has an unpaired UTF-16 surrogate escape, is not valid JSON, or nests deeper than
//!   ClickHouse can store (see `json::MAX_DEPTH` and `json::MAX_ARRAY_NESTING`; upstream would
//!   send it and either have the insert rejected, after which its poison-row recovery stores
//!   `{}`, or, for deep arrays, leave a part ClickHouse can no longer read).
//!
//! Upstream's `detectBadJsonStrings` is a byte scan that only knows lowercase hex and also fires
//! on an escaped backslash followed by `ud800`; we check real escapes, any case (see `json`).
//! Both outcomes of a real lone surrogate are `{}`.

use super::json::{self, Numbers, Reject};
use super::superjson::{self, SuperJsonData};

pub const APPLICATION_JSON: &str = "application/json";
pub const APPLICATION_SUPER_JSON: &str = "application/super+json";

const EMPTY: &str = "{}";
const NULL_DATA: &str = r#"{"data":null}"#;

/// `#prepareJson(data, dataType)` as the JSON text ClickHouse stores.
pub fn prepare_json(data: Option<&str>, data_type: Option<&str>) -> String {
    let Some(data) = data.filter(|d| !d.is_empty()) else {
        return EMPTY.to_owned();
    };
    match data_type {
        Some(APPLICATION_JSON) => match json::normalize(data, Numbers::Json, json::MAX_DEPTH) {
            Ok(value) => wrap(&value),
            Err(_) => EMPTY.to_owned(),
        },
        Some(APPLICATION_SUPER_JSON) => match superjson::superjson_data(data) {
            SuperJsonData::Json(value) => wrap(&value),
            SuperJsonData::Null => NULL_DATA.to_owned(),
            SuperJsonData::Unreadable => EMPTY.to_owned(),
        },
        _ => EMPTY.to_owned(),
    }
}

/// The `error` column: `{"data":<error jsonb>}`, `{"data":null}` for NULL.
///
/// jsonb is always valid JSON without lone surrogates, so the only error is text that is not
/// JSON at all (the rendering is not what we expect). A value nested too deep for ClickHouse
/// becomes `{"data":null}`, which ClickHouse stores exactly like `{}`. Its fingerprint is still
/// computed from the full value.
pub fn prepare_error(error: Option<&str>) -> Result<String, Reject> {
    let Some(error) = error else {
        return Ok(NULL_DATA.to_owned());
    };
    match json::normalize(error, Numbers::Json, json::MAX_DEPTH) {
        Ok(value) => Ok(wrap(&value)),
        Err(Reject::Syntax) => Err(Reject::Syntax),
        // The scan stopped early; the fingerprint still reads this text, so it must be JSON.
        Err(Reject::TooDeep | Reject::LoneSurrogate) => {
            json::validate(error)?;
            Ok(NULL_DATA.to_owned())
        }
    }
}

fn wrap(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 9);
    out.push_str("{\"data\":");
    out.push_str(value);
    out.push('}');
    out
}

#[cfg(test)]
mod tests;
