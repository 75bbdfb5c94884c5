//! The JavaScript value semantics upstream gets from V8 and that its column rules depend on:
//! `Number.prototype.toString`, truthiness (`a || b`), and `String(value)` for values that
//! `JSON.parse` produced. Inputs are valid JSON value texts, read with `json::read`.

use std::borrow::Cow;
use std::fmt::Write as _;

// The reader itself, not `json`'s re-exports: `json` renders numbers with this module, so going
// through it would make the two files import each other.
use super::json::read::{self, Kind};

/// A number as JavaScript prints it, on the stack. The longest form is 25 bytes
/// (`-1.2345678901234567e-308`, `-0.000001234567890123456`).
pub struct JsNumber {
    buf: [u8; 32],
    len: usize,
}

impl JsNumber {
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("NaN")
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }
}

impl std::fmt::Write for JsNumber {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.len + s.len() > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.push(s.as_bytes());
        Ok(())
    }
}

/// `Number.prototype.toString()` (ECMA-262 Number::toString with radix 10).
pub fn number_to_string(v: f64) -> JsNumber {
    let mut out = JsNumber {
        buf: [0; 32],
        len: 0,
    };
    if v.is_nan() {
        out.push(b"NaN");
        return out;
    }
    if v == 0.0 {
        out.push(b"0");
        return out;
    }
    if v.is_infinite() {
        out.push(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
        return out;
    }
    if v < 0.0 {
        out.push(b"-");
    }
    // Rust's `{:e}` prints the shortest digits that round-trip, as ECMA-262 requires:
    // `d[.ddd]e<exp>`.
    let mut sci = JsNumber {
        buf: [0; 32],
        len: 0,
    };
    let _ = write!(sci, "{:e}", v.abs());
    let sci = sci.as_str();
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits = [0u8; 20];
    let mut k = 0;
    for &c in mantissa.as_bytes() {
        if c != b'.' && k < digits.len() {
            digits[k] = c;
            k += 1;
        }
    }
    let digits = &digits[..k];
    let k = k as i32;
    // Value = 0.d1d2…dk × 10^n.
    let n = exp + 1;
    if k <= n && n <= 21 {
        out.push(digits);
        for _ in 0..n - k {
            out.push(b"0");
        }
    } else if 0 < n && n <= 21 {
        out.push(&digits[..n as usize]);
        out.push(b".");
        out.push(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push(b"0.");
        for _ in 0..-n {
            out.push(b"0");
        }
        out.push(digits);
    } else {
        out.push(&digits[..1]);
        if k > 1 {
            out.push(b".");
            out.push(&digits[1..]);
        }
        let e = n - 1;
        out.push(if e < 0 { b"e-" } else { b"e+" });
        let _ = write!(out, "{}", e.unsigned_abs());
    }
    out
}

/// The number a JSON number literal parses to (`JSON.parse`: nearest double, ±Infinity on
/// overflow).
pub fn parse_number(token: &str) -> f64 {
    token.trim().parse().unwrap_or(f64::NAN)
}

/// Whether `JSON.parse(value)` is truthy.
pub fn truthy(value: &str) -> bool {
    match read::kind(value) {
        Kind::False | Kind::Null => false,
        Kind::String => value.trim() != "\"\"",
        Kind::Number => parse_number(value) != 0.0,
        Kind::True | Kind::Object | Kind::Array => true,
    }
}

/// `String(JSON.parse(value))`.
pub fn to_string(value: &str) -> Cow<'_, str> {
    let value = value.trim_matches([' ', '\t', '\n', '\r']);
    match read::kind(value) {
        Kind::String => read::decode_string(value),
        Kind::Number => Cow::Owned(number_to_string(parse_number(value)).as_str().to_owned()),
        Kind::True => Cow::Borrowed("true"),
        Kind::False => Cow::Borrowed("false"),
        Kind::Null => Cow::Borrowed("null"),
        Kind::Object => Cow::Borrowed("[object Object]"),
        Kind::Array => Cow::Owned(join_array(value)),
    }
}

/// `Array.prototype.join(",")` applied recursively, as `String(array)` does: nested arrays are
/// joined in place, `null` elements print as nothing, objects as `[object Object]`. Walks the
/// text once without recursion, since nested arrays only contribute their elements and commas.
fn join_array(array: &str) -> String {
    let b = array.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'[' | b']' | b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b',' => {
                out.push(',');
                i += 1;
            }
            _ => {
                let end = read::skip_value(b, i);
                let element = &array[i..end];
                if read::kind(element) != Kind::Null {
                    out.push_str(&to_string(element));
                }
                i = end;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
