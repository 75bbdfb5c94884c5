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
mod tests {
    use super::*;

    fn s(v: f64) -> String {
        number_to_string(v).as_str().to_owned()
    }

    #[test]
    fn number_to_string_matches_v8() {
        // Expected values printed by node v20: String(x).
        for (v, expected) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3.0, "0.3333333333333333"),
            (100.0, "100"),
            (123456789.0, "123456789"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (1.2345678901234568e29, "1.2345678901234568e+29"),
            (1e-6, "0.000001"),
            (1.5e-6, "0.0000015"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (123e-20, "1.23e-18"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (-5e-324, "-5e-324"),
            (9007199254740993.0, "9007199254740992"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (-1.2345678901234567e-300, "-1.2345678901234568e-300"),
            (-0.000001234567890123456, "-0.000001234567890123456"),
        ] {
            assert_eq!(s(v), expected, "{v:e}");
        }
    }

    #[test]
    fn truthiness() {
        for falsy in ["false", "null", "\"\"", "0", "-0", "0.0", "0e5", "1e-400"] {
            assert!(!truthy(falsy), "{falsy}");
        }
        for t in [
            "true",
            "\"0\"",
            "\" \"",
            "\"false\"",
            "1",
            "-1",
            "1e400",
            "{}",
            "[]",
            "[0]",
        ] {
            assert!(truthy(t), "{t}");
        }
    }

    #[test]
    fn string_conversion() {
        for (value, expected) in [
            (r#""TypeError""#, "TypeError"),
            (r#""a\nb""#, "a\nb"),
            ("42", "42"),
            ("1.50", "1.5"),
            ("1e21", "1e+21"),
            ("1e400", "Infinity"),
            ("-0", "0"),
            ("true", "true"),
            ("false", "false"),
            ("null", "null"),
            (r#"{"a":1}"#, "[object Object]"),
            ("[]", ""),
            ("[1,2]", "1,2"),
            (
                r#"[1,[2,[3,null]],"x",{"a":[9]},true,null]"#,
                "1,2,3,,x,[object Object],true,",
            ),
            ("[[],[]]", ","),
            ("[null]", ""),
            ("[null,null]", ","),
            (r#"["a,b", "c"]"#, "a,b,c"),
            ("[1.0, 2e0]", "1,2"),
        ] {
            assert_eq!(to_string(value), expected, "{value}");
        }
        let deep = format!("{}1{}", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(to_string(&deep), "1");
    }
}
