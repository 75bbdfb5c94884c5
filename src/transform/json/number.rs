//! How a JSON number literal comes out of upstream's round trip: `JSON.parse` reads it as the
//! nearest double and the last serializer (`JSON.stringify` or `superjson.serialize`) prints it
//! the JavaScript way. Separate from the scanner because it is the one part of normalization that
//! needs JavaScript's number formatting (`transform::js`).

use crate::transform::js;

/// How numbers are rendered, i.e. which JavaScript serializer upstream runs last.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Numbers {
    /// `JSON.stringify`: `-0` → `0`, ±Infinity → `null`.
    Json,
    /// `superjson.serialize`: `-0` → `"-0"`, ±Infinity → `"Infinity"` / `"-Infinity"`.
    SuperJson,
}

/// Whether JavaScript prints a number literal without exponent exactly as written, decided
/// from the digits alone: the common case, so it must not cost a float conversion.
///
/// A decimal with at most 15 significant digits is the shortest form of the double nearest to
/// it (no other decimal that short maps to the same double), so JavaScript prints those digits
/// back, in plain notation while the value is at least 10^-6 (and below 10^21, which 15 digits
/// cannot reach). A trailing fractional zero, `-0`, and anything longer take the slow path.
pub(super) fn prints_unchanged(negative: bool, int_digits: &[u8], fraction: Option<&[u8]>) -> bool {
    let int_is_zero = int_digits == b"0";
    let Some(fraction) = fraction else {
        return int_digits.len() <= 15 && !(negative && int_is_zero);
    };
    if fraction.last() == Some(&b'0') {
        return false;
    }
    if int_is_zero {
        let leading_zeros = fraction.iter().take_while(|&&c| c == b'0').count();
        leading_zeros < 6 && fraction.len() - leading_zeros <= 15
    } else {
        int_digits.len() + fraction.len() <= 15
    }
}

/// What the last serializer prints for a number literal.
pub(super) enum Rendered {
    Js(js::JsNumber),
    Fixed(&'static str),
}

impl Rendered {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Rendered::Js(n) => n.as_str(),
            Rendered::Fixed(s) => s,
        }
    }
}

pub(super) fn render_number(token: &str, numbers: Numbers) -> Rendered {
    // JSON's number grammar is a subset of Rust's float grammar, and both round to nearest like
    // JSON.parse; an overflow comes back as ±inf.
    let v: f64 = token.parse().unwrap_or(f64::NAN);
    match numbers {
        Numbers::Json if v.is_infinite() => Rendered::Fixed("null"),
        Numbers::SuperJson if v == f64::INFINITY => Rendered::Fixed("\"Infinity\""),
        Numbers::SuperJson if v == f64::NEG_INFINITY => Rendered::Fixed("\"-Infinity\""),
        Numbers::SuperJson if v == 0.0 && v.is_sign_negative() => Rendered::Fixed("\"-0\""),
        _ => Rendered::Js(js::number_to_string(v)),
    }
}
