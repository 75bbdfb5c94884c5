//! `error_fingerprint`: upstream's `calculateErrorFingerprint`
//! (`apps/webapp/app/utils/errorFingerprinting.ts`), bit for bit, so errors grouped before and
//! after the switch land in the same `errors_v1` group.
//!
//! `sha256("<type>:<normalized message>:<normalized stack>")`, first 16 hex digits, where
//! - type = `String(error.type || error.name || "Error")`,
//! - message = `String(error.message || error.name || error.raw || "")` (upstream #4225: a
//!   messageless error falls back to its class name, a non-Error throw to its raw value, so they
//!   no longer collapse into one group), with dynamic parts replaced in a fixed order,
//! - stack = `String(error.stack || error.stacktrace || "")`, first five lines, numbers and
//!   directories removed, joined with `|`.
//!
//! Porting notes (JavaScript regexes in non-Unicode mode):
//! - `\b` and `\d` are ASCII there, so `(?-u:\b)` and `[0-9]`; `\s` is JavaScript's set
//!   ([`JS_SPACE`]), which differs from Unicode's `White_Space` in U+0085 and U+FEFF;
//! - quantifiers count UTF-16 code units, which matters only for the two "long quoted string"
//!   rules (`{20,}` of arbitrary characters); they are hand-written to count that way;
//! - `String.prototype.trim` removes JavaScript's white space set, not Rust's.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{NoExpand, Regex};
use sha2::{Digest, Sha256};

use super::js;
use super::json::{self, Kind};

/// The run statuses whose error is fingerprinted (the error-group views read only these).
pub const FINGERPRINTED_STATUSES: [&str; 5] = [
    "SYSTEM_FAILURE",
    "CRASHED",
    "INTERRUPTED",
    "COMPLETED_WITH_ERRORS",
    "TIMED_OUT",
];

/// JavaScript's `\s`: WhiteSpace and LineTerminator code points, as a character-class body.
const JS_SPACE: &str = r"\t\n\x0B\x0C\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

struct Patterns {
    /// Message rules in upstream's order, each with its replacement.
    message: Vec<(Regex, &'static str)>,
    frame_line_col: Regex,
    frame_number: Regex,
    frame_path: Regex,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("fingerprint pattern compiles");
    Patterns {
        message: vec![
            (
                re("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
                "<uuid>",
            ),
            (re("run_[a-zA-Z0-9]+"), "<run-id>"),
            (re(r"(?-u:\b)[a-z]+_[a-zA-Z0-9]{8,}(?-u:\b)"), "<id>"),
            (
                re(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?Z?"),
                "<timestamp>",
            ),
            (re(r"(?-u:\b)[0-9]{10,13}(?-u:\b)"), "<timestamp>"),
            (re(&format!("https?://[^{JS_SPACE}]+")), "<url>"),
            (re(r"(?-u:\b)[0-9]{4,}(?-u:\b)"), "<id>"),
            (re(&format!("(?:/[^/{JS_SPACE}]+){{2,}}")), "<path>"),
            (re(r"[A-Z]:\\(?:[^\\]+\\)+[^\\]+"), "<path>"),
            (
                re(r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}(?-u:\b)"),
                "<email>",
            ),
            (re("0x[0-9a-fA-F]{8,}"), "<addr>"),
        ],
        frame_line_col: re(":[0-9]+:[0-9]+"),
        frame_number: re(r"(?-u:\b)[0-9]+(?-u:\b)"),
        frame_path: re(&format!("(?:/[^/{JS_SPACE}]+)+/([^/{JS_SPACE}]+)")),
    }
});

/// The fingerprint of an `error` jsonb value; `""` unless it is a JSON object.
pub fn error_fingerprint(error: &str) -> String {
    let Some((error_type, message, stack)) = inputs(error) else {
        return String::new();
    };
    let normalized_message = normalize_message(&message);
    let normalized_stack = normalize_stack(&stack);

    let mut hasher = Sha256::new();
    hasher.update(error_type.as_bytes());
    hasher.update(b":");
    hasher.update(normalized_message.as_bytes());
    hasher.update(b":");
    hasher.update(normalized_stack.as_bytes());
    let digest = hasher.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(16);
    for byte in &digest[..8] {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

/// `(String(type || name || "Error"), String(message || name || raw || ""),
/// String(stack || stacktrace || ""))`, or `None` when the error is not an object.
fn inputs(error: &str) -> Option<(Cow<'_, str>, Cow<'_, str>, Cow<'_, str>)> {
    if json::kind(error) != Kind::Object {
        return None;
    }
    const NAMES: [&str; 6] = ["type", "name", "message", "raw", "stack", "stacktrace"];
    let mut fields: [Option<&str>; 6] = [None; 6];
    for (key, value) in json::members(error) {
        if let Some(slot) = NAMES.iter().position(|name| json::key_is(key, name)) {
            fields[slot] = Some(value);
        }
    }
    let [ty, name, message, raw, stack, stacktrace] = fields;
    Some((
        first_truthy(&[ty, name]).map_or(Cow::Borrowed("Error"), js::to_string),
        first_truthy(&[message, name, raw]).map_or(Cow::Borrowed(""), js::to_string),
        first_truthy(&[stack, stacktrace]).map_or(Cow::Borrowed(""), js::to_string),
    ))
}

/// `a || b || …` over present members.
fn first_truthy<'a>(candidates: &[Option<&'a str>]) -> Option<&'a str> {
    candidates.iter().flatten().copied().find(|v| js::truthy(v))
}

/// `normalizeErrorMessage`.
pub fn normalize_message(message: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(message);
    for (pattern, replacement) in &PATTERNS.message {
        if let Cow::Owned(replaced) = pattern.replace_all(&out, NoExpand(replacement)) {
            out = Cow::Owned(replaced);
        }
    }
    for quote in ['"', '\''] {
        if let Some(replaced) = replace_long_quoted(&out, quote) {
            out = Cow::Owned(replaced);
        }
    }
    out
}

/// `/"[^"]{20,}"/g` → `"<string>"` (and the same with `'`), counting UTF-16 code units.
///
/// From each quote, `[^"]{20,}` takes every character up to the next quote, so a match is a
/// quote, a run of at least 20 units, and the next quote; when the run is too short, matching
/// resumes at that next quote, which may open a match of its own.
fn replace_long_quoted(text: &str, quote: char) -> Option<String> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(open) = text[from..].find(quote).map(|i| from + i) {
        let Some(close) = text[open + 1..].find(quote).map(|i| open + 1 + i) else {
            break;
        };
        let units: usize = text[open + 1..close].chars().map(char::len_utf16).sum();
        if units >= 20 {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..open]);
            out.push(quote);
            out.push_str("<string>");
            out.push(quote);
            copied = close + 1;
            from = close + 1;
        } else {
            from = close;
        }
    }
    out.map(|mut out| {
        out.push_str(&text[copied..]);
        out
    })
}

/// `normalizeStackTrace`.
pub fn normalize_stack(stack: &str) -> String {
    let mut out = String::new();
    if stack.is_empty() {
        return out;
    }
    let p = &*PATTERNS;
    for line in stack.split('\n').take(5) {
        let line = p.frame_line_col.replace_all(line, NoExpand(":_:_"));
        let line = p.frame_number.replace_all(&line, NoExpand("_"));
        let line = p.frame_path.replace_all(&line, "${1}");
        let line = js_trim(&line);
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('|');
        }
        out.push_str(line);
    }
    out
}

/// `String.prototype.trim`.
fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| {
        matches!(
            c,
            '\t' | '\n' | '\u{B}' | '\u{C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200A}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202F}'
                    | '\u{205F}'
                    | '\u{3000}'
                    | '\u{FEFF}'
        )
    })
}

#[cfg(test)]
mod tests;
