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
mod tests {
    use super::*;

    fn ms(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, milli: i64) -> i64 {
        days_from_civil(y, mo, d) * MS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1000 + milli
    }

    #[test]
    fn civil_days_anchor_points() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1900, 1, 1), -25_567);
        assert_eq!(days_from_civil(0, 1, 1), -719_528);
        // 2026-11-26 checked against `date -u -d 2026-11-26 +%s` / 86400.
        assert_eq!(days_from_civil(2026, 11, 26), 20_783);
    }

    #[test]
    fn timestamp_common_forms() {
        assert_eq!(timestamp_ms("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            timestamp_ms("2026-11-26 11:19:00.821"),
            Some(1_795_691_940_821)
        );
        assert_eq!(
            timestamp_ms("2026-11-26 11:19:00.82"),
            Some(1_795_691_940_820)
        );
        assert_eq!(
            timestamp_ms("2026-11-26 11:19:00.8"),
            Some(1_795_691_940_800)
        );
        assert_eq!(timestamp_ms("2026-11-26 11:19:00"), Some(1_795_691_940_000));
        assert_eq!(
            timestamp_ms("2026-11-26T11:19:00.821"),
            Some(1_795_691_940_821)
        );
        // Extra precision (a plain `timestamp` column) is truncated, never rounded up.
        assert_eq!(
            timestamp_ms("2026-11-26 11:19:00.821999"),
            Some(1_795_691_940_821)
        );
    }

    #[test]
    fn timestamp_before_epoch_and_calendar_edges() {
        assert_eq!(timestamp_ms("1969-12-31 23:59:59.999"), Some(-1));
        assert_eq!(
            timestamp_ms("1900-01-01 00:00:00"),
            Some(TIMESTAMP_NEG_INFINITY_MS)
        );
        assert_eq!(
            timestamp_ms("2299-12-31 23:59:59.999"),
            Some(TIMESTAMP_INFINITY_MS)
        );
        assert_eq!(
            timestamp_ms("2024-02-29 00:00:00"),
            Some(ms(2024, 2, 29, 0, 0, 0, 0))
        );
        assert_eq!(
            timestamp_ms("2000-02-29 12:00:00"),
            Some(ms(2000, 2, 29, 12, 0, 0, 0))
        );
        assert_eq!(timestamp_ms("2023-02-29 00:00:00"), None);
        assert_eq!(timestamp_ms("1900-02-29 00:00:00"), None);
        assert_eq!(timestamp_ms("2024-04-31 00:00:00"), None);
        assert_eq!(timestamp_ms("2024-13-01 00:00:00"), None);
        assert_eq!(timestamp_ms("2024-00-01 00:00:00"), None);
        assert_eq!(timestamp_ms("2024-01-00 00:00:00"), None);
        assert_eq!(timestamp_ms("2024-01-01 24:00:00"), None);
        assert_eq!(timestamp_ms("2024-01-01 00:60:00"), None);
    }

    #[test]
    fn timestamp_large_years_and_bc() {
        assert_eq!(
            timestamp_ms("10000-01-01 00:00:00"),
            Some(ms(10000, 1, 1, 0, 0, 0, 0))
        );
        assert_eq!(
            timestamp_ms("294276-12-31 23:59:59.999"),
            Some(ms(294_276, 12, 31, 23, 59, 59, 999))
        );
        assert_eq!(
            timestamp_ms("0099-06-01 00:00:00"),
            Some(ms(99, 6, 1, 0, 0, 0, 0))
        );
        // 1 BC is astronomical year 0 (a leap year), 44 BC is -43.
        assert_eq!(
            timestamp_ms("0001-01-01 00:00:00 BC"),
            Some(ms(0, 1, 1, 0, 0, 0, 0))
        );
        assert_eq!(
            timestamp_ms("0001-02-29 00:00:00 BC"),
            Some(ms(0, 2, 29, 0, 0, 0, 0))
        );
        assert_eq!(
            timestamp_ms("0044-03-15 12:30:00.5 BC"),
            Some(ms(-43, 3, 15, 12, 30, 0, 500))
        );
        assert_eq!(
            timestamp_ms("4714-11-24 00:00:00 BC"),
            Some(ms(-4713, 11, 24, 0, 0, 0, 0))
        );
        assert_eq!(timestamp_ms("0000-01-01 00:00:00 BC"), None);
        assert_eq!(
            timestamp_ms("1234567-01-01 00:00:00"),
            Some(ms(1_234_567, 1, 1, 0, 0, 0, 0))
        );
        assert_eq!(timestamp_ms("12345678-01-01 00:00:00"), None);
        assert_eq!(timestamp_ms("999-01-01 00:00:00"), None);
    }

    #[test]
    fn timestamp_infinities_map_to_the_column_range() {
        assert_eq!(timestamp_ms("infinity"), Some(TIMESTAMP_INFINITY_MS));
        assert_eq!(timestamp_ms("-infinity"), Some(TIMESTAMP_NEG_INFINITY_MS));
        assert_eq!(TIMESTAMP_INFINITY_MS, ms(2299, 12, 31, 23, 59, 59, 999));
        assert_eq!(TIMESTAMP_NEG_INFINITY_MS, ms(1900, 1, 1, 0, 0, 0, 0));
        assert_eq!(timestamp_ms("Infinity"), None);
    }

    #[test]
    fn timestamp_offsets() {
        let utc = ms(2026, 11, 26, 11, 19, 0, 821);
        assert_eq!(timestamp_ms("2026-11-26 11:19:00.821+00"), Some(utc));
        assert_eq!(timestamp_ms("2026-11-26 16:49:00.821+05:30"), Some(utc));
        assert_eq!(timestamp_ms("2026-11-26 03:19:00.821-08"), Some(utc));
        assert_eq!(timestamp_ms("2026-11-26 11:19:10.821+00:00:10"), Some(utc));
        assert_eq!(
            timestamp_ms("0044-03-15 12:00:00+00 BC"),
            Some(ms(-43, 3, 15, 12, 0, 0, 0))
        );
    }

    #[test]
    fn timestamp_rejects_other_renderings() {
        for bad in [
            "",
            "2026-11-26",
            "2026-11-26 11:19",
            "2026-11-26 11:19:00.",
            "2026-11-26 11:19:00.1234567890",
            "2026-11-26 11:19:00 ",
            "26/11/2026 11:19:00",
            "Thu Nov 26 11:19:00 2026",
            "2026-11-26 11:19:00 AD",
            "2026-1-26 11:19:00",
            "2026-11-26 11:19:00+5",
            "now",
        ] {
            assert_eq!(timestamp_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(integer("0"), Some(0));
        assert_eq!(integer("-12"), Some(-12));
        assert_eq!(integer("+7"), Some(7));
        assert_eq!(integer("2147483647"), Some(2_147_483_647));
        assert_eq!(integer("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(integer("9223372036854775807"), Some(i64::MAX));
        assert_eq!(integer("9223372036854775808"), None);
        for bad in ["", "-", "1.0", "1e3", " 1", "1 ", "0x10", "abc"] {
            assert_eq!(integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn narrowing_wraps_like_clickhouse() {
        // What ClickHouse 26.9 stores for these JSON numbers in UInt8 / UInt32 columns.
        assert_eq!(wrap_u8(-1), 0);
        assert_eq!(wrap_u8(0), 0);
        assert_eq!(wrap_u8(255), 255);
        assert_eq!(wrap_u8(256), 0);
        assert_eq!(wrap_u8(300), 44);
        assert_eq!(wrap_u8(i64::MAX), 255);
        assert_eq!(wrap_u32(-5), 0);
        assert_eq!(wrap_u32(4_294_967_295), u32::MAX);
        assert_eq!(wrap_u32(4_294_967_296), 0);
        assert_eq!(wrap_u32(4_294_967_297), 1);
        assert_eq!(wrap_u32(2_147_483_647), 2_147_483_647);
    }

    #[test]
    fn floats_as_json_stringify_sends_them() {
        assert_eq!(json_float(1.5), 1.5);
        assert_eq!(json_float(-2.5e-7), -2.5e-7);
        assert_eq!(json_float(f64::MAX), f64::MAX);
        assert_eq!(json_float(f64::NAN).to_bits(), 0.0f64.to_bits());
        assert_eq!(json_float(f64::INFINITY).to_bits(), 0.0f64.to_bits());
        assert_eq!(json_float(f64::NEG_INFINITY).to_bits(), 0.0f64.to_bits());
        assert_eq!(json_float(-0.0).to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn floats() {
        assert_eq!(float8("0"), Some(0.0));
        assert_eq!(float8("-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(float8("1.5"), Some(1.5));
        assert_eq!(float8("1e+100"), Some(1e100));
        assert_eq!(float8("-1.5e-07"), Some(-1.5e-7));
        assert_eq!(float8("0.1"), Some(0.1));
        assert_eq!(float8("1.7976931348623157e+308"), Some(f64::MAX));
        assert!(float8("NaN").unwrap().is_nan());
        assert_eq!(float8("Infinity"), Some(f64::INFINITY));
        assert_eq!(float8("-Infinity"), Some(f64::NEG_INFINITY));
        for bad in ["", "inf", "nan", "infinity", "1,5", "abc", " 1", "1.5x"] {
            assert_eq!(float8(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(boolean("t"), Some(true));
        assert_eq!(boolean("f"), Some(false));
        assert_eq!(boolean("true"), Some(true));
        assert_eq!(boolean("false"), Some(false));
        assert_eq!(boolean("1"), None);
        assert_eq!(boolean(""), None);
    }

    fn arr(text: &str) -> Option<Vec<String>> {
        text_array(text)
    }

    fn v(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn arrays_plain_and_quoted() {
        assert_eq!(arr("{}"), v(&[]));
        assert_eq!(arr("{a}"), v(&["a"]));
        assert_eq!(arr("{a,b}"), v(&["a", "b"]));
        assert_eq!(
            arr(r#"{a,b,"c d","x\"y",NULL}"#),
            v(&["a", "b", "c d", "x\"y", ""])
        );
        assert_eq!(arr(r#"{"a\\b","",","}"#), v(&["a\\b", "", ","]));
        assert_eq!(arr(r#"{"NULL",null,Null}"#), v(&["NULL", "", ""]));
        assert_eq!(arr(r#"{"{x}","}"}"#), v(&["{x}", "}"]));
        assert_eq!(
            arr("{tag:prod,env=eu-1,ünïcödé,🚀}"),
            v(&["tag:prod", "env=eu-1", "ünïcödé", "🚀"])
        );
        assert_eq!(arr(r#"{"é\é"}"#), v(&["éé"]));
        assert_eq!(arr(r#"{" lead and trail "}"#), v(&[" lead and trail "]));
        assert_eq!(arr(r#"{NULLs,"NULLs"}"#), v(&["NULLs", "NULLs"]));
    }

    #[test]
    fn arrays_input_only_forms() {
        // Forms Postgres accepts on input and never prints, read the way Postgres would read them.
        assert_eq!(arr("{ a , b }"), v(&["a", "b"]));
        assert_eq!(arr(r"{a\,b,c\}}"), v(&["a,b", "c}"]));
        assert_eq!(arr("[0:1]={a,b}"), v(&["a", "b"]));
    }

    #[test]
    fn multidimensional_arrays_have_inner_arrays_as_json_text() {
        // Expected values: node-postgres' text[] parser, then `JSON.stringify` of each inner
        // array (which ClickHouse keeps as the string element).
        assert_eq!(
            arr("{{a,b},{c,NULL}}"),
            v(&[r#"["a","b"]"#, r#"["c",null]"#])
        );
        assert_eq!(arr("[1:2][1:1]={{a},{b}}"), v(&[r#"["a"]"#, r#"["b"]"#]));
        assert_eq!(
            arr(r#"{{{a,NULL}},{{"b\"c",x}}}"#),
            v(&[r#"[["a",null]]"#, r#"[["b\"c","x"]]"#])
        );
        assert_eq!(arr("{{{a}}}"), v(&[r#"[["a"]]"#]));
        // Escapes: a backslash, a control character, a tab, U+2028 (printed as it is), a quote.
        assert_eq!(
            arr("{{\"é\\\\x\",\"\u{1}\t\"},{\"\u{2028}\",\"\\\"\"}}"),
            v(&["[\"é\\\\x\",\"\\u0001\\t\"]", "[\"\u{2028}\",\"\\\"\"]"])
        );
        assert_eq!(
            arr(r#"{{"{x}","a,b"},{"",NULL}}"#),
            v(&[r#"["{x}","a,b"]"#, r#"["",null]"#])
        );
    }

    #[test]
    fn arrays_reject_malformed() {
        for bad in [
            "", "a", "{", "}", "{a", "{a,}", "{,a}", "{a,,b}", "{a}x", "{\"a}", "{a\"b}", "{a}}",
            "[0:1]{a}", "{{a}", "{a{b}}",
        ] {
            assert_eq!(arr(bad), None, "{bad:?}");
        }
    }
}
