//! The JSON columns as ClickHouse receives them: `output` and `payload` (upstream's
//! `#prepareJson(data, dataType)`) and `error` (`{data: run.error}`), always a JSON object.
//!
//! `prepare_json` gives `{"data":<value>}`, or `{}` (upstream's `{data: undefined}`) when
//! - the data is NULL or empty,
//! - the type is neither `application/json` nor `application/super+json`,
//! - upstream's `detectBadJsonStrings` fires on the text ([`detect_bad_json_strings`]),
//! - the text has an unpaired UTF-16 surrogate escape that scan misses, is not valid JSON, or
//!   nests deeper than ClickHouse can store (see `json::MAX_DEPTH` and `json::MAX_ARRAY_NESTING`;
//!   upstream would send it and have the insert rejected, or, for deep arrays, leave a part
//!   ClickHouse can no longer read).
//!
//! `detectBadJsonStrings` is a byte scan: it only knows lowercase hex, and it also fires on an
//! escaped backslash followed by text like `ud800` (`"C:\\udeadbeef"`), which is valid JSON
//! without any surrogate. We run the same scan, so those documents are `{}` here too. A real lone
//! surrogate it misses (`\uD835`) reaches upstream's insert, which ClickHouse rejects; the
//! insert-side recovery (`sanitizeRowsOnParseError`) then replaces the string with
//! `"[invalid-utf16]"`. That recovery is not part of the transform: here such a document is `{}`.

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
    if !matches!(data_type, Some(APPLICATION_JSON | APPLICATION_SUPER_JSON))
        || detect_bad_json_strings(data)
    {
        return EMPTY.to_owned();
    }
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

/// Upstream's `detectBadJsonStrings` (`apps/webapp/app/utils/detectBadJsonStrings.ts`), step for
/// step: from each `\u`, a `\ud[89ab]xx` (lowercase hex) not followed by `\ud[c-f]xx`, or a
/// `\ud[c-f]xx` not preceded by `\ud[89ab]xx`, is bad. It reads the raw text and does not know
/// whether the backslash is itself escaped.
///
/// Upstream indexes UTF-16 code units and we index bytes. Every character the scan compares is
/// ASCII, and a stretch of ASCII has as many bytes as code units, so the two agree: where a bound
/// check (`idx + 12 > length`, `idx < 6`) would differ, the characters it guards are not all
/// ASCII and the comparison that follows fails the same way.
pub fn detect_bad_json_strings(text: &str) -> bool {
    let b = text.as_bytes();
    let hex = |c: u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
    let high = |c: u8| matches!(c, b'8' | b'9' | b'a' | b'b');
    let low = |c: u8| matches!(c, b'c'..=b'f');
    let mut from = 0;
    // `indexOf("\\u", from)`, as a search for the backslash (memchr) and a look at the next
    // byte: a two-byte pattern search was 2.6% of the hot path's instructions.
    while let Some(idx) = text[from..].find('\\').map(|i| from + i) {
        if b.get(idx + 1) != Some(&b'u') {
            from = idx + 1;
            continue;
        }
        if idx + 6 > b.len() {
            break;
        }
        if b[idx + 2] == b'd' {
            let third = b[idx + 3];
            if high(third) && hex(b[idx + 4]) && hex(b[idx + 5]) {
                if idx + 12 > b.len() {
                    return true;
                }
                let pair = &b[idx + 6..idx + 12];
                if !(pair[..3] == *b"\\ud" && low(pair[3]) && hex(pair[4]) && hex(pair[5])) {
                    return true;
                }
            }
            if low(third) && hex(b[idx + 4]) && hex(b[idx + 5]) {
                if idx < 6 {
                    return true;
                }
                let pair = &b[idx - 6..idx];
                if !(pair[..3] == *b"\\ud" && high(pair[3]) && hex(pair[4]) && hex(pair[5])) {
                    return true;
                }
            }
        }
        from = idx + 2;
    }
    false
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

/// Why the transform stored no data (`{}`, or `{"data":null}` for `error`) for a value that
/// was there. A plain text type (`text/plain`) is not one: upstream never stores those.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Emptied {
    /// Upstream's `detectBadJsonStrings` fired (upstream logs "Detected bad JSON strings").
    BadJsonStrings,
    /// Not JSON `JSON.parse` accepts (upstream logs "Error parsing packet").
    NotJson,
    /// A lone UTF-16 surrogate escape the byte scan misses; ClickHouse would refuse it.
    LoneSurrogate,
    /// Nested deeper than ClickHouse can store.
    TooDeep,
    /// `application/super+json` that superjson cannot read.
    UnreadableSuperJson,
}

impl Emptied {
    /// The `reason` label of `runs_replicator_fields_emptied_total`.
    pub fn label(self) -> &'static str {
        match self {
            Emptied::BadJsonStrings => "bad_json_strings",
            Emptied::NotJson => "not_json",
            Emptied::LoneSurrogate => "lone_surrogate",
            Emptied::TooDeep => "too_deep",
            Emptied::UnreadableSuperJson => "unreadable_superjson",
        }
    }

    fn from_reject(r: Reject) -> Emptied {
        match r {
            Reject::Syntax => Emptied::NotJson,
            Reject::LoneSurrogate => Emptied::LoneSurrogate,
            Reject::TooDeep => Emptied::TooDeep,
        }
    }
}

/// Why [`prepare_json`] gives `{}` for this value, when it was a JSON value that is dropped.
/// Repeats [`prepare_json`]'s steps, so it is only worth calling when that gave `{}`.
pub fn why_json_emptied(data: Option<&str>, data_type: Option<&str>) -> Option<Emptied> {
    let data = data.filter(|d| !d.is_empty())?;
    if !matches!(data_type, Some(APPLICATION_JSON | APPLICATION_SUPER_JSON)) {
        return None;
    }
    if detect_bad_json_strings(data) {
        return Some(Emptied::BadJsonStrings);
    }
    match data_type {
        Some(APPLICATION_JSON) => json::normalize(data, Numbers::Json, json::MAX_DEPTH)
            .err()
            .map(Emptied::from_reject),
        _ => matches!(superjson::superjson_data(data), SuperJsonData::Unreadable)
            .then_some(Emptied::UnreadableSuperJson),
    }
}

/// Why [`prepare_error`] gives `{"data":null}` for a non-NULL error.
pub fn why_error_emptied(error: Option<&str>) -> Option<Emptied> {
    json::normalize(error?, Numbers::Json, json::MAX_DEPTH)
        .err()
        .map(Emptied::from_reject)
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
