//! JSON text: strict validation (exactly what `JSON.parse` accepts), normalization to what
//! upstream's `JSON.parse` → `JSON.stringify` round trip sends to ClickHouse, and cheap member
//! access on text already known to be valid.
//!
//! Upstream parses every JSON value in Node and lets the ClickHouse client stringify it again. We
//! keep the original text whenever that round trip would not change what ClickHouse stores (almost
//! always), and rewrite only what it would change:
//! - Numbers take their JavaScript form: `1.50` → `1.5`, `1e2` → `100`, integers beyond 2^53 are
//!   rounded as a double, `-0` → `0`, and an overflow (`1e400`) → `null`. ClickHouse infers a
//!   path's type from the literal (`1.0` is Float64, `1` Int64, a 30-digit integer a String) and
//!   rejects the whole document on an overflowing literal, so the literal matters.
//! - Duplicate object keys keep the last value, as `JSON.parse` does: the earlier members are
//!   cut out. ClickHouse rejects a duplicate path outright (unless
//!   `type_json_skip_duplicated_paths`, which keeps the *first*).
//!
//! Key order and insignificant whitespace may differ from upstream (`JSON.parse` keeps a
//! duplicated key at its first position and puts integer-like keys first; we keep the last
//! member where it is); a ClickHouse JSON column keeps neither.
//!
//! Rejections: a syntax error, an unpaired UTF-16 surrogate escape (ClickHouse refuses the
//! document; upstream's `detectBadJsonStrings` drops it) and nesting ClickHouse cannot keep:
//! - more than [`MAX_DEPTH`] containers: ClickHouse 26.9 refuses the insert beyond ~1022 levels;
//! - more than [`MAX_ARRAY_NESTING`](scan::MAX_ARRAY_NESTING) arrays directly inside one
//!   another: the insert *succeeds*, but the inferred type `Array(Array(…))` is too deep to parse
//!   back (`TOO_DEEP_AST`, measured from 149 levels), so every later read or merge of that part
//!   fails. Objects reset the count: an array of objects is `Array(JSON)` whose paths are typed
//!   separately.
//!
//! This file owns the entry points; the work is split by concept, bottom up:
//! - `read`: reading valid text (kinds, members, elements, strings). Depends on nothing;
//!   `transform::js` builds JavaScript's view of a value on it, and imports it directly rather
//!   than through this file, which depends on `js` (via `number`);
//! - `number`: what the last serializer prints for a number literal, using `js`;
//! - `edit`: the rewrites as edits to the source, duplicate members, applying them;
//! - `scan`: the single pass that validates and places the edits.
//!
//! Callers outside use the names re-exported here.

use std::borrow::Cow;

mod edit;
mod number;
pub mod read;
mod scan;

pub use number::Numbers;
pub use read::{Kind, decode_string, elements, key_is, kind, member, members};
pub use scan::{MAX_DEPTH, Reject};
// Enforced inside the scanner; outside it only tests name the limit.
#[cfg(test)]
pub use scan::MAX_ARRAY_NESTING;

use edit::apply;
use scan::Scanner;

/// Validates `text` and returns what upstream would send for it: the text itself, or a rewrite
/// when a number or a duplicate key would come out differently.
pub fn normalize(text: &str, numbers: Numbers, max_depth: usize) -> Result<Cow<'_, str>, Reject> {
    let mut scanner = Scanner::new(text, max_depth, Some(numbers));
    scanner.run()?;
    Ok(apply(text, std::mem::take(&mut scanner.edits)))
}

/// Validates `text` with no depth limit and no rewriting (for values we only read from).
pub fn validate(text: &str) -> Result<(), Reject> {
    Scanner::new(text, usize::MAX, None).run()
}

/// Validates `text`, allowing at most `max_depth` nested containers.
pub fn check_depth(text: &str, max_depth: usize) -> Result<(), Reject> {
    Scanner::new(text, max_depth, None).run()
}

/// The `JSON.stringify` form of a value: [`normalize`]d, without insignificant whitespace.
pub fn compact(text: &str, numbers: Numbers, max_depth: usize) -> Result<String, Reject> {
    let normalized = normalize(text, numbers, max_depth)?;
    let b = normalized.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    let mut run = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = read::skip_string(b, i),
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&normalized[run..i]);
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&normalized[run..]);
    Ok(out)
}

#[cfg(test)]
mod randomized;
#[cfg(test)]
mod tests;
