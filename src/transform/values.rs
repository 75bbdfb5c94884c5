//! Postgres text renderings → Rust values: the scalar and array forms pgoutput sends for the
//! columns the transform reads, with the walsender pinned to `DateStyle=ISO, TimeZone=UTC`.
//!
//! Every parser returns `None` for text it cannot read; the caller turns that into
//! `TransformError::InvalidValue` with the column name. Parsers work on the borrowed text and do
//! not allocate, except [`text_array`], whose result owns its elements.
//!
//! Conversions into the narrower ClickHouse column types give what ClickHouse stores for the
//! JSON number upstream sends ([`wrap_u8`], [`wrap_u32`], [`json_float`]).

/// `infinity` in a `timestamp(3)` column: the last instant `DateTime64(3)` represents,
/// 2299-12-31 23:59:59.999 UTC. Postgres' `infinity` means "later than anything"; the column's
/// maximum keeps that ordering without an out-of-range value.
pub const TIMESTAMP_INFINITY_MS: i64 = 10_413_791_999_999;

/// `-infinity` in a `timestamp(3)` column: the first instant `DateTime64(3)` represents,
/// 1900-01-01 00:00:00.000 UTC (same reasoning as [`TIMESTAMP_INFINITY_MS`]).
pub const TIMESTAMP_NEG_INFINITY_MS: i64 = -2_208_988_800_000;

const MS_PER_DAY: i64 = 86_400_000;

/// A `timestamp` / `timestamptz` text (`2026-11-26 11:19:00.821`, `10000-01-01 00:00:00`,
/// `0044-03-15 12:00:00 BC`, `infinity`) as Unix epoch milliseconds, UTC.
///
/// The columns are `timestamp(3)` (no zone) and the session zone is UTC, so the wall-clock value
/// *is* UTC. A trailing UTC offset (`+00`, `+05:30`) is honoured so a column migrated to
/// `timestamptz` still reads correctly. Fractional digits beyond milliseconds are truncated.
/// Finite values outside the `DateTime64(3)` range are kept as they are (no clamping): they are
/// real instants, and clamping them would make two different instants equal.
pub fn timestamp_ms(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(TIMESTAMP_INFINITY_MS),
        "-infinity" => return Some(TIMESTAMP_NEG_INFINITY_MS),
        _ => {}
    }
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let b = text.as_bytes();
    let mut p = Cursor { b, i: 0 };

    let year_digits = p.digits_while(7)?;
    if year_digits.0 < 4 {
        return None;
    }
    let mut year = year_digits.1 as i64;
    if bc {
        // Postgres has no year 0: 1 BC is astronomical year 0.
        if year == 0 {
            return None;
        }
        year = 1 - year;
    }
    p.expect(b'-')?;
    let month = p.fixed(2)?;
    p.expect(b'-')?;
    let day = p.fixed(2)?;
    if !matches!(p.next(), Some(b' ' | b'T')) {
        return None;
    }
    let hour = p.fixed(2)?;
    p.expect(b':')?;
    let minute = p.fixed(2)?;
    p.expect(b':')?;
    let second = p.fixed(2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut millis = 0i64;
    if p.peek() == Some(b'.') {
        p.i += 1;
        let start = p.i;
        while let Some(c @ b'0'..=b'9') = p.peek() {
            if p.i - start < 3 {
                millis = millis * 10 + i64::from(c - b'0');
            }
            p.i += 1;
        }
        let n = p.i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }

    let mut offset_seconds = 0i64;
    if let Some(sign @ (b'+' | b'-')) = p.peek() {
        p.i += 1;
        let hours = p.fixed(2)?;
        let mut minutes = 0;
        let mut seconds = 0;
        if p.peek() == Some(b':') {
            p.i += 1;
            minutes = p.fixed(2)?;
            if p.peek() == Some(b':') {
                p.i += 1;
                seconds = p.fixed(2)?;
            }
        }
        offset_seconds = (hours * 3600 + minutes * 60 + seconds) as i64;
        if sign == b'-' {
            offset_seconds = -offset_seconds;
        }
    }
    if p.i != b.len() {
        return None;
    }

    let days = days_from_civil(year, month, day);
    let seconds_of_day = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some(days * MS_PER_DAY + (seconds_of_day - offset_seconds) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year numbering), which is
/// the calendar Postgres uses for every date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01: the inverse of [`days_from_civil`] (Howard
/// Hinnant's `civil_from_days`), for showing a stored time as Postgres would.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.rem_euclid(4) == 0
            && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0) =>
        {
            29
        }
        2 => 28,
        _ => 31,
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// Exactly `n` ASCII digits.
    fn fixed(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }

    /// One to `max` ASCII digits: (count, value).
    fn digits_while(&mut self, max: usize) -> Option<(usize, u64)> {
        let start = self.i;
        let mut v = 0u64;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start == max {
                return None;
            }
            v = v * 10 + u64::from(c - b'0');
            self.i += 1;
        }
        let n = self.i - start;
        (n > 0).then_some((n, v))
    }
}

/// An `integer` / `bigint` text (`-12`, `300`).
pub fn integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        all => (false, all),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        v = v.checked_mul(10)?;
        v = if negative {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// A `double precision` text (`0`, `1.5`, `1e+100`, `-1.5e-07`, `NaN`, `Infinity`, `-Infinity`).
/// The non-finite values are kept: `Float64` stores them.
pub fn float8(text: &str) -> Option<f64> {
    match text {
        "NaN" => return Some(f64::NAN),
        "Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    // Rust's parser also takes `inf` and `nan` spellings Postgres never sends; only numerals pass.
    if text.is_empty()
        || !text
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse().ok()
}

/// A `boolean` text (`t` / `f`; the long spellings are accepted too).
pub fn boolean(text: &str) -> Option<bool> {
    match text {
        "t" | "true" => Some(true),
        "f" | "false" => Some(false),
        _ => None,
    }
}

/// An integer as a `UInt8` column stores it. Upstream sends the number as it is, and ClickHouse
/// reads an integer too large for the column modulo 2^8 (`300` → `44`). A negative one it
/// refuses, failing upstream's insert, so there is no stored value to copy: it becomes 0.
pub fn wrap_u8(v: i64) -> u8 {
    if v < 0 { 0 } else { v as u8 }
}

/// An integer as a `UInt32` column stores it: modulo 2^32, negative values 0 (see [`wrap_u8`]).
pub fn wrap_u32(v: i64) -> u32 {
    if v < 0 { 0 } else { v as u32 }
}

/// A `double precision` as a `Float64` column stores it after upstream's client serializes the
/// row with `JSON.stringify`: NaN and ±Infinity print as `null`, which ClickHouse reads into a
/// non-nullable column as its default 0, and `-0` prints as `0`.
pub fn json_float(v: f64) -> f64 {
    if v.is_finite() && v != 0.0 { v } else { 0.0 }
}

/// A `text[]` text (`{a,b,"c d","x\"y",NULL}`, `{}`) as the elements upstream's insert leaves
/// in an `Array(String)` column.
///
/// - A `NULL` element becomes `""`: ClickHouse stores a null inside `Array(String)` as the
///   element type's default, which is what upstream ends up with.
/// - Quoted elements keep their content verbatim after `\x` → `x` unescaping; unquoted elements
///   are trimmed of surrounding whitespace (Postgres never emits any, but accepts it on input).
/// - A multi-dimensional value (`{{a,b},{c,NULL}}`; `text[]` does not enforce a dimension count)
///   has arrays as elements. node-postgres reads them as nested arrays, the client sends them
///   through `JSON.stringify`, and ClickHouse keeps each inner array's JSON text as the string
///   element: `["a","b"]`, `["c",null]`.
/// - A lower-bound decoration (`[0:1]={a,b}`) is skipped; only the elements matter here.
pub fn text_array(text: &str) -> Option<Vec<String>> {
    let b = text.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'[') {
        i = text.find('=')? + 1;
    }
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    // The JSON text of the inner array being read, while `depth > 1`.
    let mut inner = String::new();
    let mut depth = 1usize;
    // After `{` or `,` an element (or a nested array) must follow; after an element, `,` or `}`.
    let mut expect_element = true;
    let mut just_opened = true;
    while depth > 0 {
        while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        let c = *b.get(i)?;
        if expect_element {
            let element = match c {
                b'}' if just_opened => {
                    close(&mut depth, &mut inner, &mut out);
                    i += 1;
                    expect_element = false;
                    just_opened = false;
                    continue;
                }
                b'{' => {
                    if depth > 1 {
                        json_separator(&mut inner);
                    }
                    inner.push('[');
                    depth += 1;
                    i += 1;
                    just_opened = true;
                    continue;
                }
                b'"' => {
                    let mut s = String::new();
                    i += 1;
                    let mut run = i;
                    loop {
                        match *b.get(i)? {
                            b'"' => break,
                            b'\\' => {
                                s.push_str(&text[run..i]);
                                i += 1;
                                // The escaped character may be multi-byte: copy it whole.
                                let ch = text.get(i..)?.chars().next()?;
                                s.push(ch);
                                i += ch.len_utf8();
                                run = i;
                            }
                            _ => i += 1,
                        }
                    }
                    s.push_str(&text[run..i]);
                    i += 1;
                    Some(s)
                }
                b',' | b'}' => return None,
                _ => {
                    let start = i;
                    let mut s = String::new();
                    let mut run = i;
                    let mut escaped = false;
                    while let Some(&c) = b.get(i) {
                        match c {
                            b',' | b'}' => break,
                            b'{' | b'"' => return None,
                            b'\\' => {
                                escaped = true;
                                s.push_str(&text[run..i]);
                                i += 1;
                                let ch = text.get(i..)?.chars().next()?;
                                s.push(ch);
                                i += ch.len_utf8();
                                run = i;
                            }
                            _ => i += 1,
                        }
                    }
                    if !escaped {
                        let raw = text[start..i].trim_matches([' ', '\t', '\n', '\r']);
                        (!raw.eq_ignore_ascii_case("NULL")).then(|| raw.to_owned())
                    } else {
                        s.push_str(&text[run..i]);
                        Some(s.trim_end_matches([' ', '\t', '\n', '\r']).to_owned())
                    }
                }
            };
            if depth == 1 {
                out.push(element.unwrap_or_default());
            } else {
                json_separator(&mut inner);
                match element {
                    Some(s) => push_json_string(&mut inner, &s),
                    None => inner.push_str("null"),
                }
            }
            expect_element = false;
            just_opened = false;
        } else {
            match c {
                b',' => expect_element = true,
                b'}' => close(&mut depth, &mut inner, &mut out),
                _ => return None,
            }
            i += 1;
        }
    }
    (i == b.len()).then_some(out)
}

/// Closes the innermost open array; an inner array that ends at the top level is one element.
fn close(depth: &mut usize, inner: &mut String, out: &mut Vec<String>) {
    *depth -= 1;
    if *depth >= 1 {
        inner.push(']');
        if *depth == 1 {
            out.push(std::mem::take(inner));
        }
    }
}

/// A `,` before the next member of a JSON array under construction, unless it is the first.
fn json_separator(json: &mut String) {
    if !json.ends_with('[') {
        json.push(',');
    }
}

/// `s` as `JSON.stringify` prints a string: `"` and `\` escaped, the control characters as
/// `\b \f \n \r \t` or `\u00xx`, everything else as it is.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
