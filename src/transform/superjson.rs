//! `application/super+json` documents: what `superjson.serialize(superjson.parse(text)).json`
//! (upstream's `parsePacketAsJson`, superjson 2.2.1 as vendored by `@trigger.dev/core`) yields.
//!
//! A superjson document is `{"json": <plain JSON>, "meta": {"values": <type annotations>,
//! "referentialEqualities": …}}`. `parse` revives BigInts, Dates, Maps, … from `json` using
//! `meta`; `serialize` turns them back into the same plain JSON. For a document superjson wrote,
//! that round trip gives back its `json` member, so that is what we take, with superjson's number
//! rendering (`-0` → `"-0"`, overflow → `"Infinity"`).
//!
//! What upstream does with other documents, and we reproduce:
//! - top-level `null`: `parse` throws → no data;
//! - any other non-object, or no `json` member: the result is `undefined`, serialized as `null`;
//! - `meta` that makes `parse` throw → no data: an annotation superjson does not know (classes
//!   and symbols are never registered in the webapp; the only custom transformer is `buffer`),
//!   and malformed annotation trees (a non-empty string where a tree is expected recurses until
//!   the stack overflows; referential-equality paths that are not arrays).
//!
//! A `meta` nested deeper than [`META_MAX_DEPTH`] is treated as unreadable: superjson nests it
//! only for Maps and Sets inside Maps and Sets, and walking it costs its size times its depth.
//!
//! Not reproduced: re-validating the values annotations point at (a `bigint` annotation on text
//! that is not an integer, a Date that does not parse) and the re-normalization superjson would
//! apply to non-canonical values (a Set written with duplicates). superjson never writes those.

use super::js;
use super::json::{self, Kind, Numbers, Reject};

/// The `data` a superjson document contributes, before wrapping.
#[derive(Debug, PartialEq, Eq)]
pub enum SuperJsonData<'a> {
    /// The `json` member, normalized.
    Json(std::borrow::Cow<'a, str>),
    /// `undefined` → serialized as `null`.
    Null,
    /// `parse` throws (or the text cannot be stored): no data at all.
    Unreadable,
}

/// Deepest `meta` we walk, in JSON containers (each Map/Set level of the data adds three).
pub const META_MAX_DEPTH: usize = 128;

/// Simple annotation names superjson can revive.
const SIMPLE: [&str; 9] = [
    "undefined",
    "bigint",
    "number",
    "Date",
    "regexp",
    "set",
    "map",
    "Error",
    "URL",
];

const TYPED_ARRAYS: [&str; 9] = [
    "Int8Array",
    "Uint8Array",
    "Int16Array",
    "Uint16Array",
    "Int32Array",
    "Uint32Array",
    "Float32Array",
    "Float64Array",
    "Uint8ClampedArray",
];

pub fn superjson_data(document: &str) -> SuperJsonData<'_> {
    if json::validate(document).is_err() {
        return SuperJsonData::Unreadable;
    }
    match json::kind(document) {
        Kind::Null => return SuperJsonData::Unreadable,
        Kind::Object => {}
        _ => return SuperJsonData::Null,
    }
    if let Some(meta) = json::member(document, "meta")
        && (json::check_depth(meta, META_MAX_DEPTH).is_err() || !meta_parses(meta))
    {
        return SuperJsonData::Unreadable;
    }
    match json::member(document, "json") {
        None => SuperJsonData::Null,
        Some(value) => match json::normalize(value, Numbers::SuperJson, json::MAX_DEPTH) {
            Ok(value) => SuperJsonData::Json(value),
            Err(Reject::Syntax | Reject::LoneSurrogate | Reject::TooDeep) => {
                SuperJsonData::Unreadable
            }
        },
    }
}

/// Whether `deserialize` gets through `meta` without throwing (see the module comment).
fn meta_parses(meta: &str) -> bool {
    // `meta?.values` / `meta?.referentialEqualities` are undefined on anything but an object.
    if json::kind(meta) != Kind::Object {
        return true;
    }
    if let Some(values) = json::member(meta, "values")
        && js::truthy(values)
        && !values_parse(values)
    {
        return false;
    }
    if let Some(equalities) = json::member(meta, "referentialEqualities")
        && js::truthy(equalities)
        && !equalities_parse(equalities)
    {
        return false;
    }
    true
}

/// superjson's `traverse(tree, walker)` over a `meta.values` tree. A worklist instead of
/// recursion: the order of checks does not matter, any failure means `parse` throws.
fn values_parse(values: &str) -> bool {
    let mut work = vec![values];
    while let Some(tree) = work.pop() {
        if !js::truthy(tree) {
            continue;
        }
        match json::kind(tree) {
            Kind::Array => {
                let mut parts = json::elements(tree);
                let annotation = parts.next();
                if let Some(children) = parts.next().filter(|c| js::truthy(c)) {
                    match json::kind(children) {
                        Kind::Object => work.extend(json::members(children).map(|(_, v)| v)),
                        Kind::Array => work.extend(json::elements(children)),
                        // `forEach` over a string walks its characters, each of which is
                        // again a string: unbounded recursion.
                        Kind::String => return false,
                        _ => {}
                    }
                }
                if !annotation_known(annotation) {
                    return false;
                }
            }
            Kind::Object => work.extend(json::members(tree).map(|(_, v)| v)),
            Kind::String => return false,
            _ => {}
        }
    }
    true
}

/// `untransformValue`'s dispatch: a simple annotation name, or `[kind, name]`.
fn annotation_known(annotation: Option<&str>) -> bool {
    // `const [nodeValue] = []` is `undefined`, which indexes the "undefined" rule.
    let Some(annotation) = annotation else {
        return true;
    };
    match json::kind(annotation) {
        Kind::String => SIMPLE.contains(&&*json::decode_string(annotation)),
        Kind::Array => {
            let mut parts = json::elements(annotation);
            let kind = parts.next().filter(|k| json::kind(k) == Kind::String);
            let name = parts.next().filter(|n| json::kind(n) == Kind::String);
            let name = name.map(json::decode_string);
            match kind.map(json::decode_string).as_deref() {
                Some("custom") => name.as_deref() == Some("buffer"),
                Some("typed-array") => name.is_some_and(|n| TYPED_ARRAYS.contains(&&*n)),
                // "class", "symbol" (nothing is registered) and anything else throw.
                _ => false,
            }
        }
        // `String(null)`, `String(5)`, … are no annotation names.
        _ => false,
    }
}

/// `applyReferentialEqualityAnnotations`: `[rootPaths, others?]` or `{path: identicalPaths}`,
/// where every list must be an array (it is `.map`ped / `.forEach`ed).
fn equalities_parse(equalities: &str) -> bool {
    let all_arrays = |entries: &str| match json::kind(entries) {
        Kind::Object => json::members(entries).all(|(_, v)| json::kind(v) == Kind::Array),
        Kind::Array => json::elements(entries).all(|v| json::kind(v) == Kind::Array),
        Kind::String => false,
        _ => true,
    };
    match json::kind(equalities) {
        Kind::Array => {
            let mut parts = json::elements(equalities);
            let root_is_array = parts.next().is_some_and(|r| json::kind(r) == Kind::Array);
            let others_ok = parts
                .next()
                .filter(|o| js::truthy(o))
                .is_none_or(all_arrays);
            root_is_array && others_ok
        }
        _ => all_arrays(equalities),
    }
}

#[cfg(test)]
mod tests;
